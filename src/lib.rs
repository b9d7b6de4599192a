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
//! # Where things are
//!
//! The crate root holds what a first-time user needs: the layer, its
//! [`Builder`], the [`Dialect`], what a forwarded request carries
//! ([`ValidatedGrant`], [`ResponseFormat`]), the [`MemoryStore`] and the
//! errors. The rest is grouped by concern:
//!
//! - [`store`]: the store contract (one trait per kind of value) and the
//!   memory store; Redis and PostgreSQL backends are the `tokengate-redis`
//!   and `tokengate-postgres` crates.
//! - [`authorize`], [`refresh`], [`device`]: the issuing side, which mints
//!   what the gate later redeems.
//! - [`lifecycle`]: the revocation (RFC 7009) and introspection (RFC 7662)
//!   endpoints the gate also guards, and what they hand your service.
//! - [`policy`]: the application's own rules, run after the built-in checks.
//! - [`client`], [`pkce`], [`clock`], [`lockout`], [`metadata`], [`builder`]:
//!   registrations, PKCE, time, the brute-force defence, RFC 8414 metadata,
//!   and the defaults of every setting.
//! - `testing` (feature `testing`): a test kit and the store conformance
//!   suite.
//!
//! The behaviour contract (the order of checks, the failure table of both
//! dialects, the redirect rules) is `docs/contract.md` in the repository.
//!
//! A request's path through the source, file by file: `layer` -> `service`
//! -> `future` (read the body) -> `decide` (parse, lockout, `authenticate`,
//! `grant`, `policy`, claim) -> `store` -> the pure leaves (`parse`, `pkce`,
//! `redirect`, `secret`, `dialect`, `error`, `record`).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod answer;
mod authenticate;
pub mod authorize;
mod body;
pub mod builder;
pub mod client;
pub mod clock;
mod deadline;
mod decide;
pub mod device;
mod dialect;
mod error;
mod format;
mod future;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod grant;
mod inspect;
mod issuing;
#[cfg(feature = "jose")]
mod jose;
mod jwks;
mod layer;
pub mod lifecycle;
pub mod lockout;
pub mod metadata;
mod parse;
pub mod peer;
pub mod pkce;
pub mod policy;
mod record;
mod redirect;
pub mod refresh;
mod scope;
mod secret;
mod service;
mod settings;
pub mod store;
mod telemetry;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use self::{
    body::{RequestBody, ResponseBody},
    builder::{Builder, ConfigError},
    client::{Client, GrantType},
    dialect::Dialect,
    error::{ErrorCode, Rejection},
    format::{FieldValue, ResponseFormat},
    future::ResponseFuture,
    grant::ValidatedGrant,
    inspect::Verdict,
    layer::TokenGateLayer,
    lifecycle::TokenAction,
    service::TokenGate,
    store::{MemoryStore, StoreError},
};
