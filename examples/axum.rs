//! An axum authorization server guarded by tokengate.
//!
//! `GET /login/oauth/authorize` approves every valid request as `demo-user`
//! (a real server would log the user in and ask first) and redirects to the
//! client with a code. `POST /login/oauth/access_token` is guarded by the
//! layer: the handler only runs for a valid exchange and just mints a token.
//!
//! ```text
//! cargo run --example axum [ADDR]        # default 127.0.0.1:3000
//! ```
//!
//! The full authorization-code + PKCE round trip with curl, using the
//! verifier/challenge pair of RFC 7636 Appendix B:
//!
//! ```text
//! # 1. Authorize: the 302's Location carries the code.
//! curl -si 'http://127.0.0.1:3000/login/oauth/authorize?response_type=code&client_id=axum-demo&redirect_uri=http%3A%2F%2F127.0.0.1%3A9000%2Fcallback&scope=repo%20user&state=xyz&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256'
//! # Location: http://127.0.0.1:9000/callback?code=CODE&state=xyz
//!
//! # 2. Redeem the code (once) with the client's secret and the PKCE verifier.
//! curl -s http://127.0.0.1:3000/login/oauth/access_token \
//!     -u axum-demo:axum-demo-secret \
//!     -d grant_type=authorization_code -d code=CODE \
//!     --data-urlencode redirect_uri=http://127.0.0.1:9000/callback \
//!     -d code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk
//! # {"access_token":"demo_…","token_type":"bearer","scope":"repo,user"}
//! ```
//!
//! A wrong secret, a replayed code or a wrong verifier is answered by the
//! gate (e.g. `401 {"error":"invalid_client",…}`) and never reaches the
//! handler. Set `RUST_LOG=tokengate=info` to see why requests are refused.

use axum::{
    Extension, Router,
    extract::{RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tokengate::{
    Client, FieldValue, MemoryStore, ResponseFormat, TokenGateLayer, ValidatedGrant,
    authorize::Authorizer,
};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt::init();

    let store = MemoryStore::new();
    store.insert_client(
        Client::confidential("axum-demo")
            .with_secret("axum-demo-secret")
            .with_redirect_uri("http://127.0.0.1:9000/callback"),
    );
    let layer = TokenGateLayer::new(store);

    let app = Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(token))
        .with_state(layer.authorizer())
        .layer(layer);

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

/// Validates the authorization request and approves it on the user's behalf.
async fn authorize(State(authorizer): State<Authorizer>, RawQuery(query): RawQuery) -> Response {
    let approved = match authorizer.validate(query.as_deref().unwrap_or("")).await {
        Ok(request) => authorizer.approve(&request, "demo-user").await,
        Err(error) => Err(error),
    };
    match approved {
        Ok(approval) => approval.into_http_response().into_response(),
        // A redirect back to the client, or an error page when the client or
        // its redirect URI cannot be trusted (or the store failed).
        Err(error) => error.into_http_response().into_response(),
    }
}

/// Runs only after the gate checked the client, the code and PKCE.
async fn token(
    Extension(grant): Extension<ValidatedGrant>,
    Extension(format): Extension<ResponseFormat>,
) -> Response {
    let mut bytes = [0u8; 20];
    if getrandom::fill(&mut bytes).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let access_token = format!("demo_{}", hex::encode(bytes));
    let scope = grant.scopes().join(",");
    format
        .response(&[
            ("access_token", FieldValue::from(access_token.as_str())),
            ("token_type", "bearer".into()),
            ("scope", scope.as_str().into()),
        ])
        .into_response()
}
