//! tokengate among tower-http's layers: a token endpoint a browser
//! application (a public client using PKCE) can call across origins.
//!
//! From the outside in, every request meets:
//!
//! 1. `TraceLayer`: a span per request, and one event per answer naming the
//!    gate's error code when the gate refused (it reads the [`Rejection`]
//!    the gate leaves in the response extensions);
//! 2. `CorsLayer`: answers CORS preflights itself and adds the CORS headers
//!    to every other answer, the gate's refusals included;
//! 3. `TimeoutLayer` (whole request, 408): bounds everything inside it,
//!    reading the body included, so a client that never finishes its body
//!    is cut;
//! 4. the gate;
//! 5. `TimeoutLayer` (handler only, 503) around the handler that mints the
//!    token.
//!
//! **CORS goes outside the gate.** A preflight is an `OPTIONS` request, and
//! the gate answers anything but `POST` on the token path with
//! `405 invalid_request`: with `CorsLayer` inside the gate, preflights fail
//! and the gate's refusals carry no CORS headers, so the browser application
//! cannot read them. `CorsLayer` rewrites no path and forwards no `OPTIONS`
//! (it answers them all), so nothing reaches the token path around the gate;
//! keep path-rewriting and `nest` layers inside it.
//!
//! A timeout inside the gate fires after the gate has redeemed the code: the
//! code is spent and the client must authorize again. Keep the handler's
//! work short (minting a token), or its timeout generous.
//!
//! ```text
//! cargo run --example tower_http [ADDR]        # default 127.0.0.1:3000
//! ```
//!
//! ```text
//! # A preflight, answered by CorsLayer (200, empty body):
//! curl -si -X OPTIONS http://127.0.0.1:3000/login/oauth/access_token \
//!     -H 'Origin: http://localhost:5173' -H 'Access-Control-Request-Method: POST' \
//!     -H 'Access-Control-Request-Headers: content-type'
//! # access-control-allow-origin: http://localhost:5173
//! # access-control-allow-methods: POST
//!
//! # A code (PKCE pair of RFC 7636 Appendix B), then the exchange:
//! curl -si 'http://127.0.0.1:3000/login/oauth/authorize?response_type=code&client_id=spa&redirect_uri=http%3A%2F%2Flocalhost%3A5173%2Fcallback&state=xyz&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256'
//! curl -si http://127.0.0.1:3000/login/oauth/access_token -H 'Origin: http://localhost:5173' \
//!     -d grant_type=authorization_code -d client_id=spa -d code=CODE \
//!     --data-urlencode redirect_uri=http://localhost:5173/callback \
//!     -d code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk
//! # 200, access-control-allow-origin: http://localhost:5173, {"access_token":..}
//! # The same again: 400 invalid_grant, with the same CORS headers.
//! ```
//!
//! `RUST_LOG` filters the logs (default `info,tower_http=debug`).

use std::time::Duration;

use axum::{
    Extension, Router,
    extract::{RawQuery, State},
    handler::Handler,
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tokengate::{
    Client, FieldValue, MemoryStore, Rejection, ResponseFormat, TokenGateLayer, ValidatedGrant,
    authorize::Authorizer, builder::DEFAULT_TOKEN_PATH,
};
use tower_http::{cors::CorsLayer, timeout::TimeoutLayer, trace::TraceLayer};

/// Where the browser application runs, and its callback.
const ORIGIN: &str = "http://localhost:5173";
const REDIRECT_URI: &str = "http://localhost:5173/callback";

/// What [`app`] lets the caller choose.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The one origin allowed to call the token endpoint from a browser.
    pub(crate) origin: HeaderValue,
    /// The bound on a whole request, body and gate included (408).
    pub(crate) request_timeout: Duration,
    /// The bound on the handler behind the gate (503).
    pub(crate) handler_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            origin: HeaderValue::from_static(ORIGIN),
            request_timeout: Duration::from_secs(10),
            handler_timeout: Duration::from_secs(2),
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=debug".into()),
        )
        .init();

    let store = MemoryStore::new();
    // A browser application cannot keep a secret: a public client, which
    // must use PKCE.
    store.insert_client(Client::public("spa").with_redirect_uri(REDIRECT_URI));
    let app = app(TokenGateLayer::new(store), mint_token, &Settings::default());

    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // The connection's address reaches the gate: its lockout counts
    // failures per peer.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await
}

/// The authorization server: `mint` behind the gate, the layers around it.
///
/// Each `Router::layer` call wraps every route, after routing, in one more
/// layer (the last call is the outermost) and turns its answers back into
/// axum responses: `CorsLayer` and `TimeoutLayer` need a body type they can
/// create (`Default`), which the gate's own response body is not.
pub(crate) fn app<H, T>(layer: TokenGateLayer, mint: H, settings: &Settings) -> Router
where
    H: Handler<T, Authorizer>,
    T: 'static,
{
    let handler_timeout =
        TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, settings.handler_timeout);
    let request_timeout =
        TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, settings.request_timeout);
    let trace = TraceLayer::new_for_http().on_response(
        |response: &Response, latency: Duration, _span: &tracing::Span| {
            let status = response.status().as_u16();
            match response.extensions().get::<Rejection>() {
                Some(rejection) => tracing::info!(
                    target: "token_endpoint",
                    status,
                    error = rejection.error(),
                    ?latency,
                    "refused by the gate"
                ),
                None => tracing::info!(target: "token_endpoint", status, ?latency, "answered"),
            }
        },
    );
    Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route(DEFAULT_TOKEN_PATH, post(mint).layer(handler_timeout))
        .with_state(layer.authorizer())
        .layer(layer)
        .layer(request_timeout)
        .layer(cors(settings.origin.clone()))
        .layer(trace)
}

/// CORS for the browser application at `origin`: token requests (`POST`,
/// with the headers an OAuth client sends) and nothing else.
pub(crate) fn cors(origin: HeaderValue) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .max_age(Duration::from_secs(600))
}

/// Validates the authorization request and approves it on the user's behalf
/// (a real server would log the user in and ask first).
async fn authorize(State(authorizer): State<Authorizer>, RawQuery(query): RawQuery) -> Response {
    let approved = match authorizer.validate(query.as_deref().unwrap_or("")).await {
        Ok(request) => authorizer.approve(&request, "demo-user").await,
        Err(error) => Err(error),
    };
    match approved {
        Ok(approval) => approval.into_http_response().into_response(),
        Err(error) => error.into_http_response().into_response(),
    }
}

/// Runs only after the gate checked the client, the code and PKCE.
pub(crate) async fn mint_token(
    Extension(grant): Extension<ValidatedGrant>,
    Extension(format): Extension<ResponseFormat>,
) -> Response {
    let mut bytes = [0u8; 20];
    if getrandom::fill(&mut bytes).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let access_token = format!("demo_{}", hex::encode(bytes));
    let scope = grant.scopes().join(" ");
    format
        .response(&[
            ("access_token", FieldValue::from(access_token.as_str())),
            ("token_type", "bearer".into()),
            ("scope", scope.as_str().into()),
        ])
        .into_response()
}
