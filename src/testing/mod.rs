//! A test kit for the people who unit-test their auth policies (feature
//! `testing`): token requests for every grant in one expression, a PKCE
//! pair, a store and clock in one line, a code minted through the real
//! issuing side, and assertions that read well.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tokengate::{
//!     Client, ErrorCode, TokenGateLayer, Verdict,
//!     policy::{PolicyError, PolicyRequest},
//!     testing::{TokenRequest, fixture, mint_code, pkce_pair},
//! };
//!
//! // A policy of your own: some clients are blocked.
//! let blocked = |request: PolicyRequest| async move {
//!     if request.client().client_id() == "blocked" {
//!         return Err(PolicyError::standard(ErrorCode::UnauthorizedClient, "blocked").unwrap());
//!     }
//!     Ok(())
//! };
//! let (store, clock) = fixture([
//!     Client::confidential("app").with_secret("s").with_redirect_uri("https://app.example/cb"),
//!     Client::confidential("blocked").with_secret("s").with_redirect_uri("https://app.example/cb"),
//! ]);
//! let layer = TokenGateLayer::builder()
//!     .store(store)
//!     .issuer("https://auth.example.com")
//!     .clock(clock)
//!     .policy(blocked)
//!     .build();
//!
//! let (verifier, challenge) = pkce_pair();
//! for (client, allowed) in [("app", true), ("blocked", false)] {
//!     let code = mint_code(&layer, client, "https://app.example/cb", &challenge, "alice").await;
//!     let request = TokenRequest::authorization_code(&code)
//!         .client_secret_basic(client, "s")
//!         .redirect_uri("https://app.example/cb")
//!         .code_verifier(&verifier)
//!         .build();
//!     match layer.check(request).await {
//!         Verdict::Forwarded(grant) => assert!(allowed && grant.subject() == Some("alice")),
//!         Verdict::Rejected(rejection) => {
//!             assert!(!allowed);
//!             assert_eq!(rejection.code(), ErrorCode::UnauthorizedClient);
//!         }
//!         Verdict::Handed(_) | Verdict::NotChecked => unreachable!(),
//!     }
//! }
//! # }
//! ```

pub mod conformance;
#[cfg(feature = "jose")]
#[cfg_attr(docsrs, doc(cfg(feature = "jose")))]
pub mod jose;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use base64::{Engine, engine::general_purpose::STANDARD};
use http::{Request, Response};

use crate::{
    builder::{DEFAULT_DEVICE_PATH, DEFAULT_TOKEN_PATH},
    client::{Client, GrantType},
    clock::ManualClock,
    error::{ErrorCode, Rejection},
    layer::TokenGateLayer,
    pkce::PkceChallenge,
    secret::random_code,
    store::MemoryStore,
};

/// The connection address a [`TokenRequest`] comes from unless
/// [`from`](TokenRequest::from) says otherwise: `192.0.2.1:40000`
/// (TEST-NET-1). The lockout counts failures per peer.
pub const TEST_PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40_000);

/// A token request for tests, built in one expression. It carries
/// [`TEST_PEER`] as its connection address (a [`SocketAddr`] in its
/// extensions, as a server would put it there).
#[derive(Debug, Clone)]
pub struct TokenRequest {
    path: String,
    params: Vec<(String, String)>,
    basic: Option<(String, String)>,
    json: bool,
    accept: Option<String>,
    #[cfg(feature = "jose")]
    dpop: Vec<String>,
    peer: SocketAddr,
}

impl TokenRequest {
    fn grant(grant: GrantType) -> Self {
        Self {
            path: DEFAULT_TOKEN_PATH.to_owned(),
            params: vec![("grant_type".to_owned(), grant.as_str().to_owned())],
            basic: None,
            json: false,
            accept: None,
            #[cfg(feature = "jose")]
            dpop: Vec::new(),
            peer: TEST_PEER,
        }
    }

    /// `grant_type=authorization_code&code=..`.
    pub fn authorization_code(code: &str) -> Self {
        Self::grant(GrantType::AuthorizationCode).param("code", code)
    }

    /// `grant_type=refresh_token&refresh_token=..`.
    pub fn refresh_token(token: &str) -> Self {
        Self::grant(GrantType::RefreshToken).param("refresh_token", token)
    }

    /// The device grant's poll with `device_code`.
    pub fn device_code(device_code: &str) -> Self {
        Self::grant(GrantType::DeviceCode).param("device_code", device_code)
    }

    /// `grant_type=client_credentials`.
    pub fn client_credentials() -> Self {
        Self::grant(GrantType::ClientCredentials)
    }

    /// A device authorization request (`POST /login/device/code`).
    pub fn device_authorization(client_id: &str) -> Self {
        Self {
            path: DEFAULT_DEVICE_PATH.to_owned(),
            params: vec![("client_id".to_owned(), client_id.to_owned())],
            basic: None,
            json: false,
            accept: None,
            #[cfg(feature = "jose")]
            dpop: Vec::new(),
            peer: TEST_PEER,
        }
    }

    /// Any parameter, as given (repeat one to test that it is refused; a JSON
    /// body keeps only the last of a repeated name).
    #[must_use]
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `client_secret_post`: `client_id` and `client_secret` in the body.
    #[must_use]
    pub fn client_secret_post(self, client_id: &str, secret: &str) -> Self {
        self.param("client_id", client_id)
            .param("client_secret", secret)
    }

    /// `client_secret_basic`, encoded as RFC 6749 §2.3.1 asks.
    #[must_use]
    pub fn client_secret_basic(mut self, client_id: &str, secret: &str) -> Self {
        self.basic = Some((client_id.to_owned(), secret.to_owned()));
        self
    }

    /// A public client: `client_id` alone.
    #[must_use]
    pub fn public_client(self, client_id: &str) -> Self {
        self.param("client_id", client_id)
    }

    /// `redirect_uri`.
    #[must_use]
    pub fn redirect_uri(self, uri: &str) -> Self {
        self.param("redirect_uri", uri)
    }

    /// `code_verifier`.
    #[must_use]
    pub fn code_verifier(self, verifier: &str) -> Self {
        self.param("code_verifier", verifier)
    }

    /// `scope`.
    #[must_use]
    pub fn scope(self, scope: &str) -> Self {
        self.param("scope", scope)
    }

    /// Sends the parameters as a JSON object (GitHub dialect).
    #[must_use]
    pub fn json(mut self) -> Self {
        self.json = true;
        self
    }

    /// The `Accept` header (GitHub negotiates the answer's format by it).
    #[must_use]
    pub fn accept(mut self, media_type: &str) -> Self {
        self.accept = Some(media_type.to_owned());
        self
    }

    /// Client authentication by a signed assertion (`private_key_jwt` or
    /// `client_secret_jwt`, RFC 7523 §2.2): `client_assertion_type` set to
    /// [`ASSERTION_TYPE`](jose::ASSERTION_TYPE) and `client_assertion` in
    /// the body. Build the assertion with [`jose::ClientAssertion`].
    #[cfg(feature = "jose")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jose")))]
    #[must_use]
    pub fn client_assertion(self, assertion: &str) -> Self {
        self.param("client_assertion_type", jose::ASSERTION_TYPE)
            .param("client_assertion", assertion)
    }

    /// A `DPoP` header carrying `proof` (RFC 9449 §4.1). Call it twice to
    /// send two `DPoP` headers (§4.3 refuses that). Build the proof with
    /// [`jose::DpopProof`].
    #[cfg(feature = "jose")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jose")))]
    #[must_use]
    pub fn dpop(mut self, proof: &str) -> Self {
        self.dpop.push(proof.to_owned());
        self
    }

    /// Another path than the default token path.
    #[must_use]
    pub fn path(mut self, path: &str) -> Self {
        self.path = path.to_owned();
        self
    }

    /// The request.
    ///
    /// # Panics
    ///
    /// If a header value is not valid (a media type or a `DPoP` proof with
    /// control bytes).
    pub fn build(self) -> Request<String> {
        let (content_type, body) = if self.json {
            let object: serde_json::Map<String, serde_json::Value> = self
                .params
                .into_iter()
                .map(|(name, value)| (name, serde_json::Value::String(value)))
                .collect();
            (
                "application/json",
                serde_json::Value::Object(object).to_string(),
            )
        } else {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (name, value) in &self.params {
                form.append_pair(name, value);
            }
            ("application/x-www-form-urlencoded", form.finish())
        };
        let mut builder = Request::post(self.path).header("content-type", content_type);
        if let Some((id, secret)) = self.basic {
            let encode =
                |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let credentials = STANDARD.encode(format!("{}:{}", encode(&id), encode(&secret)));
            builder = builder.header("authorization", format!("Basic {credentials}"));
        }
        if let Some(accept) = self.accept {
            builder = builder.header("accept", accept);
        }
        #[cfg(feature = "jose")]
        for proof in self.dpop {
            builder = builder.header("dpop", proof);
        }
        let mut request = builder.body(body).expect("valid test request");
        request.extensions_mut().insert(self.peer);
        request
    }

    /// Sent from `peer` instead of [`TEST_PEER`].
    #[must_use]
    pub fn from(mut self, peer: SocketAddr) -> Self {
        self.peer = peer;
        self
    }
}

/// A fresh PKCE pair: a random verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let verifier = random_code().expect("the operating system's random source");
    let challenge = PkceChallenge::s256(&verifier).challenge;
    (verifier, challenge)
}

/// A memory store holding `clients`, on a manual clock it shares (give the
/// clock to the layer too, with [`Builder::clock`](crate::Builder::clock)).
pub fn fixture(clients: impl IntoIterator<Item = Client>) -> (MemoryStore, ManualClock) {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    for client in clients {
        store.insert_client(client);
    }
    (store, clock)
}

/// Mints a code through the layer's real issuing side: for `client_id`,
/// bound to `redirect_uri` and the S256 `challenge`, approved by `subject`.
///
/// # Panics
///
/// If the authorization request is refused (the client or its redirect URI
/// is not registered) or the store fails.
pub async fn mint_code(
    layer: &TokenGateLayer,
    client_id: &str,
    redirect_uri: &str,
    challenge: &str,
    subject: &str,
) -> String {
    let authorizer = layer.authorizer();
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let request = authorizer
        .validate(&query)
        .await
        .unwrap_or_else(|error| panic!("authorization request refused: {error}"));
    let approval = authorizer
        .approve(&request, subject)
        .await
        .unwrap_or_else(|error| panic!("cannot mint a code: {error}"));
    approval.code().to_owned()
}

/// Asserts that the gate answered `response` with `code`.
///
/// # Panics
///
/// If it was forwarded, or refused with another code.
#[track_caller]
pub fn assert_rejected<B>(response: &Response<B>, code: ErrorCode) {
    match response.extensions().get::<Rejection>() {
        Some(rejection) => assert_eq!(
            rejection.code(),
            code,
            "refused with {} ({}), not {code}",
            rejection.error(),
            rejection.description()
        ),
        None => panic!(
            "forwarded with status {}, not refused with {code}",
            response.status()
        ),
    }
}

/// Asserts that the gate forwarded the request `response` answers.
///
/// # Panics
///
/// If the gate refused it.
#[track_caller]
pub fn assert_forwarded<B>(response: &Response<B>) {
    if let Some(rejection) = response.extensions().get::<Rejection>() {
        panic!(
            "refused with {} ({}), not forwarded",
            rejection.error(),
            rejection.description()
        );
    }
}
