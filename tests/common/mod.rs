//! Shared fixtures: registered clients, a controllable clock, codes minted
//! through the real issuing side, and services whose inner handler either
//! panics (rejection paths: proof it never ran) or records what it received.

#![allow(dead_code, unreachable_pub)]

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use serde_json::Value;
use tokengate::{
    Builder, Client, Dialect, GrantType, MemoryStore, Rejection, RequestBody, ResponseFormat,
    TokenGateLayer, ValidatedGrant, authorize::CodeRecord, client::RedirectPolicy,
    clock::ManualClock, refresh::RefreshRecord,
};
use tower::{ServiceBuilder, ServiceExt, service_fn};

pub mod demo;

pub const TOKEN: &str = "/login/oauth/access_token";
pub const CB: &str = "https://client.example.com/cb";
pub const CB_ENC: &str = "https%3A%2F%2Fclient.example.com%2Fcb";
/// RFC 7636 Appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const FORM: &str = "application/x-www-form-urlencoded";
pub const DEVICE: &str = "/login/device/code";
pub const DEVICE_GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code";

pub type Store = MemoryStore;

pub struct Harness {
    pub store: MemoryStore,
    pub clock: ManualClock,
    pub layer: TokenGateLayer,
    pub replays: Arc<Mutex<Vec<CodeRecord>>>,
    pub refresh_replays: Arc<Mutex<Vec<RefreshRecord>>>,
}

impl Harness {
    pub fn new(dialect: Dialect) -> Self {
        Self::with(dialect, |b| b)
    }

    pub fn with(
        dialect: Dialect,
        configure: impl FnOnce(
            Builder<Store, Store, Store, Store>,
        ) -> Builder<Store, Store, Store, Store>,
    ) -> Self {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(clock.clone());
        store.insert_client(
            Client::confidential("app")
                .with_secret("s3cret")
                .with_secret("rotated-s3cret")
                .with_redirect_uri(CB),
        );
        store.insert_client(
            Client::confidential("s6BhdRkqt3")
                .with_secret("7Fjfp0ZBr1KtDRbnfVdmIw")
                .with_redirect_uri(CB),
        );
        store.insert_client(
            Client::confidential("other")
                .with_secret("other-s3cret")
                .with_redirect_uri(CB),
        );
        store.insert_client(
            Client::confidential("unicode")
                .with_secret(" %&+£€")
                .with_redirect_uri(CB),
        );
        store.insert_client(
            Client::public("native")
                .with_redirect_uri("http://127.0.0.1/cb")
                .with_redirect_policy(RedirectPolicy::Loopback),
        );
        store.insert_client(
            Client::confidential("gh")
                .with_secret("gh-s3cret")
                .with_redirect_uri("http://example.com/path")
                .with_redirect_policy(RedirectPolicy::GitHub),
        );
        store.insert_client(
            Client::confidential("no-code")
                .with_secret("s3cret")
                .with_redirect_uri(CB)
                .with_grant_types([]),
        );
        store.insert_client(
            Client::confidential("svc")
                .with_secret("svc-s3cret")
                .with_grant_types([GrantType::ClientCredentials])
                .with_scopes(["read", "write"]),
        );
        store.insert_client(
            Client::public("tv")
                .with_grant_types([GrantType::DeviceCode, GrantType::RefreshToken])
                .with_scopes(["repo", "user"]),
        );
        store.insert_client(
            Client::confidential("gh-tv")
                .with_secret("gh-tv-s3cret")
                .with_device_flow(true),
        );
        store.insert_client(
            Client::public("native-no-refresh")
                .with_redirect_uri("http://127.0.0.1/cb")
                .with_redirect_policy(RedirectPolicy::Loopback)
                .with_grant_types([GrantType::AuthorizationCode]),
        );
        let replays = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&replays);
        let refresh_replays = Arc::new(Mutex::new(Vec::new()));
        let seen_refresh = Arc::clone(&refresh_replays);
        let builder = TokenGateLayer::builder()
            .store(store.clone())
            .issuer("https://auth.example.com")
            .dialect(dialect)
            .clock(clock.clone())
            .realm("tokengate-test")
            .on_code_replay(move |record| seen.lock().unwrap().push(record.clone()))
            .on_refresh_replay(move |record| seen_refresh.lock().unwrap().push(record.clone()));
        let layer = configure(builder).try_build().unwrap();
        Self {
            store,
            clock,
            layer,
            replays,
            refresh_replays,
        }
    }

    /// Mints a code through the issuing side for the authorization request
    /// `query` (`response_type=code` is added).
    pub async fn code(&self, query: &str) -> String {
        let authorizer = self.layer.authorizer();
        let request = authorizer
            .validate(&format!("response_type=code&{query}"))
            .await
            .unwrap_or_else(|e| panic!("authorization request refused: {e}"));
        let approval = authorizer.approve(&request, "user-1").await.unwrap();
        let location = approval.location();
        let query = location.split_once('?').unwrap().1;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned()
    }

    /// A code for `app`, bound to `CB` and the RFC 7636 challenge.
    pub async fn app_code(&self) -> String {
        self.code(&format!(
            "client_id=app&redirect_uri={CB_ENC}&code_challenge={CHALLENGE}&code_challenge_method=S256&scope=read"
        ))
        .await
    }

    /// A valid exchange of a fresh code for `app`; the grant the inner
    /// service received.
    pub async fn exchanged_grant(&self) -> ValidatedGrant {
        let code = self.app_code().await;
        let (answer, seen) = self.forwarded(post(&exchange(&code))).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        seen.grant.unwrap()
    }

    /// A refresh token for `app`, issued after a code exchange.
    pub async fn app_refresh_token(&self) -> String {
        let grant = self.exchanged_grant().await;
        self.layer.refresh_tokens().issue(&grant).await.unwrap()
    }

    /// Sends `request` through the gate to an inner service that panics.
    pub async fn refused<B>(&self, request: Request<B>) -> Answer
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Debug,
    {
        let service = ServiceBuilder::new()
            .layer(self.layer.clone())
            .service(service_fn(|_: Request<RequestBody<B>>| async move {
                panic!("the inner service ran on a rejection path");
                #[allow(unreachable_code)]
                Ok::<_, Infallible>(Response::new(String::new()))
            }));
        Answer::read(service.oneshot(request).await.unwrap()).await
    }

    /// Sends `request` through the gate to an inner service that answers
    /// `inner`; the body of whatever came back.
    pub async fn refused_or_forwarded(&self, request: Request<String>) -> String {
        self.answered_by(StatusCode::OK, request)
            .await
            .text()
            .to_owned()
    }

    /// Sends `request` through the gate to an inner service that answers
    /// `status` with the body `inner`; whatever came back.
    pub async fn answered_by(&self, status: StatusCode, request: Request<String>) -> Answer {
        let service = ServiceBuilder::new()
            .layer(self.layer.clone())
            .service(service_fn(
                move |_: Request<RequestBody<String>>| async move {
                    let mut response = Response::new("inner".to_owned());
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                },
            ));
        Answer::read(service.oneshot(request).await.unwrap()).await
    }

    /// Sends `request` through the gate to an inner service that records
    /// what it received and answers 200 `inner`.
    pub async fn forwarded<B>(&self, request: Request<B>) -> (Answer, Seen)
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Debug,
    {
        let seen = Arc::new(Mutex::new(None));
        let record = Arc::clone(&seen);
        let service = ServiceBuilder::new()
            .layer(self.layer.clone())
            .service(service_fn(move |request: Request<RequestBody<B>>| {
                let record = Arc::clone(&record);
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.unwrap().to_bytes();
                    *record.lock().unwrap() = Some(Seen {
                        path: parts.uri.to_string(),
                        headers: parts.headers.clone(),
                        body,
                        grant: parts.extensions.get::<ValidatedGrant>().cloned(),
                        format: parts.extensions.get::<ResponseFormat>().copied(),
                        action: parts.extensions.get::<tokengate::TokenAction>().cloned(),
                    });
                    Ok::<_, Infallible>(Response::new("inner".to_owned()))
                }
            }));
        let answer = Answer::read(service.oneshot(request).await.unwrap()).await;
        let seen = seen
            .lock()
            .unwrap()
            .take()
            .expect("the inner service did not run");
        (answer, seen)
    }
}

/// What the inner service received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub grant: Option<ValidatedGrant>,
    pub format: Option<ResponseFormat>,
    pub action: Option<tokengate::TokenAction>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub rejection: Option<Rejection>,
}

impl Answer {
    pub async fn read<B>(response: Response<B>) -> Self
    where
        B: Body<Data = Bytes>,
        B::Error: std::fmt::Debug,
    {
        let (parts, body) = response.into_parts();
        Self {
            status: parts.status,
            rejection: parts.extensions.get::<Rejection>().cloned(),
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn form(&self) -> HashMap<String, String> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// The `error` field, whatever the format.
    pub fn error(&self) -> String {
        let ct = self.header("content-type").unwrap_or("");
        if ct.starts_with("application/json") {
            self.json()["error"].as_str().unwrap().to_owned()
        } else if ct.starts_with("application/x-www-form-urlencoded") {
            self.form()["error"].clone()
        } else {
            let text = self.text();
            let start = text.find("<error>").unwrap() + "<error>".len();
            let end = text.find("</error>").unwrap();
            text[start..end].to_owned()
        }
    }

    /// Asserts an RFC 6749 error answer: status, code, the no-store headers,
    /// a JSON body with a description, and the rejection in the extensions.
    pub fn assert_rfc(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
        let body = self.json();
        assert_eq!(body["error"], error, "{body}");
        let description = body["error_description"].as_str().expect("a description");
        assert!(!description.is_empty());
        self.assert_no_store();
        let rejection = self.rejection.as_ref().expect("rejection in extensions");
        assert_eq!(rejection.error(), error);
        assert_eq!(rejection.status(), self.status);
        if status == 401 {
            assert_eq!(
                self.header("www-authenticate"),
                Some("Basic realm=\"tokengate-test\"")
            );
        } else {
            assert_eq!(self.header("www-authenticate"), None);
        }
    }

    /// Asserts a GitHub-dialect error answer (status 200, form body by
    /// default) with `error`.
    pub fn assert_github(&self, error: &str) {
        assert_eq!(self.status, 200, "{}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/x-www-form-urlencoded; charset=utf-8")
        );
        let body = self.form();
        assert_eq!(
            body.get("error").map(String::as_str),
            Some(error),
            "{body:?}"
        );
        assert!(body.contains_key("error_description"));
        self.assert_no_store();
        assert_eq!(self.rejection.as_ref().unwrap().error(), error);
    }

    pub fn assert_no_store(&self) {
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert_eq!(self.header("pragma"), Some("no-cache"));
    }
}

/// A form-encoded token request.
pub fn post(body: &str) -> Request<String> {
    post_to(TOKEN, body)
}

/// A form-encoded device authorization request.
pub fn post_device(body: &str) -> Request<String> {
    let mut request = post_to(DEVICE, body);
    request
        .headers_mut()
        .insert("host", "auth.example.com".parse().unwrap());
    request
}

/// The address every test request comes from unless it says otherwise
/// (TEST-NET-1): the lockout counts per peer.
pub const PEER: [u8; 4] = [192, 0, 2, 1];

/// A form-encoded POST to `path`, from [`PEER`] as the connection's address.
pub fn post_to(path: &str, body: &str) -> Request<String> {
    let mut request = Request::post(path)
        .header("content-type", FORM)
        .body(body.to_owned())
        .unwrap();
    request
        .extensions_mut()
        .insert(std::net::SocketAddr::from((PEER, 40_000)));
    request
}

/// `request`, from `peer` instead.
pub fn from_peer<B>(mut request: Request<B>, peer: &str) -> Request<B> {
    let ip: std::net::IpAddr = peer.parse().unwrap();
    request
        .extensions_mut()
        .insert(std::net::SocketAddr::new(ip, 40_000));
    request
}

/// A form-encoded token request with Basic credentials (each half
/// form-encoded first, RFC 6749 §2.3.1).
pub fn post_basic(client_id: &str, secret: &str, body: &str) -> Request<String> {
    let mut request = post(body);
    request
        .headers_mut()
        .insert("authorization", basic(client_id, secret).parse().unwrap());
    request
}

pub fn basic(client_id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret)))
    )
}

/// The body of a valid exchange of `code` for `app` with client_secret_post.
pub fn exchange(code: &str) -> String {
    format!(
        "grant_type=authorization_code&code={code}&redirect_uri={CB_ENC}&code_verifier={VERIFIER}&client_id=app&client_secret=s3cret"
    )
}

pub fn with_accept(mut request: Request<String>, accept: &str) -> Request<String> {
    request
        .headers_mut()
        .insert("accept", accept.parse().unwrap());
    request
}
