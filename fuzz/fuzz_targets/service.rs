//! The whole gate on arbitrary requests: any method, path, headers and body
//! (in chunks, as a network delivers it), in both dialects. The gate must
//! answer every one without panicking; no request without the one known
//! code reaches the inner service; no answer is a 500 (the store here never
//! fails); every answer on a gated path carries `Cache-Control: no-store`.
//!
//! The revocation and introspection endpoints too, with a refresh store
//! holding a live token and one rotated a moment ago (bit 1 of the settings
//! byte, an even chunk size, turns the reuse window on, so that the rotated
//! one may come back): a refusal never reaches the inner service, and a
//! token handed on to it is authenticated, never one the gate keeps and
//! never one with a control character; the revocation endpoint answers an
//! empty `200` or an error in JSON, the introspection endpoint JSON with a
//! boolean `active` (nothing else when it is `false`) or an error in JSON.
#![no_main]

mod common;

use std::{
    collections::VecDeque,
    convert::Infallible,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tokengate::{
    Client, Dialect, GrantType, MemoryStore, TokenAction, TokenGateLayer, ValidatedGrant,
    authorize::CodeRecord,
    lifecycle::{Introspection, TokenActionKind},
    refresh::RefreshRecord,
    store::{Claim, CodeKey, CodeStore, RefreshStore},
};
use tower::{Layer, ServiceExt, service_fn};

/// The code the store holds; a seed carries it, so the fuzzer also
/// explores the paths past a successful redemption.
const CODE: &str = "fuzz-known-code";

/// The live refresh token the store holds.
const REFRESH: &str = "fuzz-live-refresh";
/// A refresh token rotated away just before the request: a replay, or a
/// reuse within the window when it is on.
const ROTATED: &str = "fuzz-rotated-refresh";

/// The parameters the gate reads: never from a lifecycle request's query.
const GATE_PARAMS: [&str; 13] = [
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "code_verifier",
    "refresh_token",
    "scope",
    "device_code",
    "client_assertion",
    "client_assertion_type",
    "token",
    "token_type_hint",
];

const TOKEN_PATH: &str = "/login/oauth/access_token";
const REVOKE: &str = "/login/oauth/revoke";
const INTROSPECT: &str = "/login/oauth/introspect";

/// A body delivered in the fuzzer's chunks, one frame each.
struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(
            self.0
                .pop_front()
                .map(|chunk| Ok(http_body::Frame::data(chunk))),
        )
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = common::parse(data) else {
        return;
    };
    let path = input.request.uri().path();
    let lifecycle = match path {
        REVOKE => Some(TokenActionKind::Revocation),
        INTROSPECT => Some(TokenActionKind::Introspection),
        _ => None,
    };
    let gated = path == TOKEN_PATH || path == "/login/device/code" || lifecycle.is_some();
    let reuse = input.chunk % 2 == 0;
    // A token or secret in the URL is refused, never read (nor handed on).
    let query_names_ours = lifecycle.is_some()
        && form_urlencoded::parse(input.request.uri().query().unwrap_or("").as_bytes())
            .any(|(name, _)| GATE_PARAMS.contains(&&*name));
    let (parts, body) = input.request.into_parts();
    let chunks = body
        .chunks(input.chunk)
        .map(Bytes::copy_from_slice)
        .collect();
    let request = http::Request::from_parts(parts, Chunks(chunks));
    runtime().block_on(async move {
        let store = MemoryStore::new();
        store.insert_client(
            Client::confidential("app")
                .with_secret("s3cret")
                .with_redirect_uri("https://app.example/cb")
                .with_grant_types([
                    GrantType::AuthorizationCode,
                    GrantType::RefreshToken,
                    GrantType::ClientCredentials,
                    GrantType::DeviceCode,
                ])
                .with_device_flow(true),
        );
        store.insert_client(
            Client::confidential("rs")
                .with_secret("rs-s3cret")
                .with_introspection(true),
        );
        store.insert_client(Client::public("native").with_redirect_uri("http://127.0.0.1/cb"));
        let now = SystemTime::now();
        CodeStore::issue(
            &store,
            CodeKey::of(CODE),
            CodeRecord {
                client_id: "app".to_owned(),
                subject: "user".to_owned(),
                scopes: vec!["read".to_owned()],
                redirect_uri: Some("https://app.example/cb".to_owned()),
                pkce: None,
                issued_at: now,
                expires_at: now + Duration::from_secs(600),
                dpop_jkt: None,
            },
        )
        .await
        .expect("the memory store issues");
        for (token, family) in [(REFRESH, "live"), (ROTATED, "rotated")] {
            let record = RefreshRecord {
                client_id: "app".to_owned(),
                subject: "user".to_owned(),
                scopes: vec!["read".to_owned()],
                family: family.to_owned(),
                issued_at: now,
                expires_at: now + Duration::from_secs(3600),
                dpop_jkt: None,
            };
            RefreshStore::issue(&store, CodeKey::of(token), record)
                .await
                .expect("the memory store issues");
        }
        let claim = Claim::new(Duration::from_secs(30)).expect("a claim");
        let key = CodeKey::of(ROTATED);
        RefreshStore::claim(&store, &key, &claim)
            .await
            .expect("the memory store claims");
        assert!(
            RefreshStore::confirm(&store, &key, &claim)
                .await
                .expect("the memory store confirms")
        );
        let dialect = if input.github {
            Dialect::GitHub
        } else {
            Dialect::Rfc6749
        };
        let builder = TokenGateLayer::builder()
            .store(store)
            .issuer("https://auth.example.com")
            .dialect(dialect)
            .body_limit(4096);
        let layer = if reuse {
            builder.refresh_reuse(Duration::from_secs(60), 2)
        } else {
            builder
        }
        .build();
        let inner = service_fn(
            move |request: http::Request<tokengate::RequestBody<Chunks>>| async move {
                if let Some(kind) = lifecycle {
                    let action = request
                        .extensions()
                        .get::<TokenAction>()
                        .expect("a lifecycle request forwarded without its action");
                    assert_eq!(action.kind(), kind);
                    assert!(request.extensions().get::<ValidatedGrant>().is_none());
                    let client = action.client();
                    assert!(["app", "rs", "native"].contains(&client.client_id()));
                    if kind == TokenActionKind::Introspection {
                        assert!(client.may_introspect(), "{}", client.client_id());
                    }
                    let token = action.token();
                    assert!(!token.is_empty());
                    assert!(
                        token != REFRESH && token != ROTATED,
                        "a token the gate keeps handed on"
                    );
                    assert!(!token.chars().any(char::is_control));
                    assert!(!query_names_ours, "a lifecycle request's query read");
                    // What an application that knows no such token answers.
                    let response = match kind {
                        TokenActionKind::Revocation => http::Response::new(String::new()),
                        _ => Introspection::inactive()
                            .response()
                            .map(|body| String::from_utf8(body.to_vec()).expect("JSON")),
                    };
                    return Ok::<_, Infallible>(response);
                }
                let Some(grant) = request.extensions().get::<ValidatedGrant>() else {
                    // Only requests for other paths pass through ungated.
                    assert!(!gated, "a gated request forwarded without its grant");
                    let mut response = http::Response::new(String::new());
                    *response.status_mut() = http::StatusCode::NOT_FOUND;
                    return Ok::<_, Infallible>(response);
                };
                assert_eq!(grant.client().client_id(), "app");
                // Without the window, a rotated token back is a replay.
                assert!(reuse || !grant.is_refresh_reuse());
                Ok(http::Response::new(String::from(
                    "{\"access_token\":\"t\"}",
                )))
            },
        );
        let service = layer.layer(inner);
        let response = service.oneshot(request).await.expect("infallible");
        let status = response.status();
        assert_ne!(
            status,
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "a 500 without a store fault"
        );
        if gated && status != http::StatusCode::NOT_FOUND {
            assert_eq!(
                response
                    .headers()
                    .get(http::header::CACHE_CONTROL)
                    .map(|v| v.as_bytes()),
                Some(&b"no-store"[..]),
                "{status}"
            );
        }
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a gate body")
            .to_bytes();
        if dialect == Dialect::Rfc6749
            && (status == http::StatusCode::BAD_REQUEST || status == http::StatusCode::UNAUTHORIZED)
        {
            let json: serde_json::Value =
                serde_json::from_slice(&body).expect("a refusal's body is JSON");
            assert!(json["error"].is_string());
        }
        // Either endpoint answers in RFC style in both dialects.
        if let Some(kind) = lifecycle {
            assert!(
                !query_names_ours || status.is_client_error(),
                "{status} to a lifecycle request with the gate's parameters in its query"
            );
            if status == http::StatusCode::OK {
                match kind {
                    TokenActionKind::Revocation => {
                        assert!(body.is_empty(), "a revocation answered with a body");
                    }
                    _ => {
                        let json: serde_json::Value =
                            serde_json::from_slice(&body).expect("an introspection is JSON");
                        let active = json["active"].as_bool().expect("a boolean active");
                        let fields = json.as_object().expect("an object").len();
                        assert!(active || fields == 1, "an inactive token described: {json}");
                    }
                }
            } else {
                assert!(
                    status.is_client_error(),
                    "{status} from a lifecycle endpoint"
                );
                let json: serde_json::Value =
                    serde_json::from_slice(&body).expect("a lifecycle refusal is JSON");
                assert!(json["error"].is_string(), "{json}");
                assert!(json.get("active").is_none());
            }
        }
    });
});
