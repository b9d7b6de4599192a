//! A Tower layer that guards the OAuth 2 token endpoint.
//!
//! [`TokenGateLayer`] stands in front of any HTTP service (an axum router, a
//! hyper server, a gateway). It intercepts token requests
//! (`POST /login/oauth/access_token` by default), authenticates the client,
//! redeems and checks the authorization code (client binding, expiry,
//! redirect URI, PKCE), and answers every failure with the exact error of the
//! chosen [`Dialect`] before the inner service runs. Valid requests reach the
//! inner service with their body unchanged and the [`ValidatedGrant`] and
//! negotiated [`ResponseFormat`] in their extensions: the application only
//! mints the token.
//!
//! # Quick start
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use http::{Request, Response};
//! use tokengate::{Client, MemoryStore, TokenGateLayer, ValidatedGrant};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let store = MemoryStore::new();
//! store.insert_client(Client::confidential("app").with_secret("s3cret")
//!     .with_redirect_uri("https://app.example/cb"));
//! let layer = TokenGateLayer::new(store);
//!
//! let service = ServiceBuilder::new().layer(layer).service(service_fn(
//!     |request: Request<_>| async move {
//!         let grant = request.extensions().get::<ValidatedGrant>().unwrap();
//!         Ok::<_, std::convert::Infallible>(Response::new(format!("token for {:?}", grant.subject())))
//!     },
//! ));
//!
//! // A code nobody issued never reaches the handler.
//! let response = service
//!     .oneshot(
//!         Request::post("/login/oauth/access_token")
//!             .header("content-type", "application/x-www-form-urlencoded")
//!             .body("grant_type=authorization_code&code=guess&client_id=app&client_secret=s3cret".to_owned())
//!             .unwrap(),
//!     )
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), 400);
//! # }
//! ```
//!
//! The path of a request through the crate, file by file: `layer` ->
//! `service` -> `future` (read the body) -> `parse` -> `check` ->
//! `authenticate` -> `grant` -> `answer`. The issuing side, which mints the
//! codes the gate redeems, is [`Authorizer`].

mod answer;
mod authenticate;
mod authorize;
mod body;
mod builder;
mod check;
mod client;
mod clock;
mod code;
mod deadline;
mod device;
mod dialect;
mod error;
mod format;
mod future;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod grant;
mod inspect;
mod layer;
mod lockout;
mod metadata;
mod parse;
mod pkce;
mod policy;
mod redirect;
mod refresh;
mod reservation;
mod scope;
mod secret;
mod service;
mod store;
mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "postgres")]
pub use self::store::PostgresStore;
#[cfg(feature = "redis")]
pub use self::store::RedisStore;
pub use self::{
    authorize::{Approval, AuthorizationError, AuthorizationRequest, Authorizer},
    body::{RequestBody, ResponseBody},
    builder::{
        Builder, ConfigError, DEFAULT_BODY_LIMIT, DEFAULT_CODE_LIFETIME, DEFAULT_DEVICE_PATH,
        DEFAULT_READ_TIMEOUT, DEFAULT_REFRESH_LIFETIME, DEFAULT_RESERVATION_TTL,
        DEFAULT_TOKEN_PATH,
    },
    client::{Client, GrantType},
    clock::{Clock, ManualClock, SystemClock},
    code::CodeRecord,
    device::{
        DEVICE_TOMBSTONE, DeviceDecision, DeviceRecord, DeviceStatus, Devices, PollOutcome,
        normalize_user_code,
    },
    dialect::Dialect,
    error::{ErrorCode, Rejection},
    format::{FieldValue, ResponseFormat},
    future::ResponseFuture,
    grant::ValidatedGrant,
    inspect::Verdict,
    layer::TokenGateLayer,
    lockout::{
        DEFAULT_LOCKOUT_CAPACITY, DEFAULT_LOCKOUT_FAILURES, DEFAULT_LOCKOUT_WINDOW, Lockout,
    },
    metadata::Metadata,
    pkce::{PkceChallenge, PkceMethod},
    policy::{
        ClientSwitch, InvalidPolicyError, Policy, PolicyError, PolicyRequest, UnverifiedUserEmail,
    },
    redirect::RedirectPolicy,
    refresh::{RefreshRecord, RefreshTokens},
    secret::{CodeKey, SecretDigest},
    service::TokenGate,
    store::{
        ClientsFileError, CodeStore, CredentialStore, DEFAULT_STORE_TIMEOUT, DeviceStore, Hold,
        Lookup, MemoryStore, Redemption, RefreshStore, StoreError, parse_clients,
    },
};
