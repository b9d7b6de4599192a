//! A bare hyper 1 token endpoint guarded by tokengate.
//!
//! Only `POST /login/oauth/access_token` is served; the gate checks every
//! request to it and the handler just mints a token. There is no authorize
//! endpoint here (see `examples/axum.rs` for one): to have a code to redeem,
//! the example mints one at startup through [`TokenGateLayer::authorizer`],
//! bound to the PKCE challenge of RFC 7636 Appendix B, and prints the curl
//! command that redeems it.
//!
//! ```text
//! cargo run --example hyper [ADDR]       # default 127.0.0.1:3001
//! ```
//!
//! Running the printed command once answers
//! `{"access_token":"demo_…","token_type":"bearer","scope":"repo,user"}`;
//! running it again (a replayed code), or with another secret or verifier, is
//! refused by the gate before the handler runs. Set `RUST_LOG=tokengate=info`
//! to see why.

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokengate::{
    Client, FieldValue, MemoryStore, RequestBody, ResponseFormat, TokenGateLayer, ValidatedGrant,
};
use tower::ServiceBuilder;

const REDIRECT_URI: &str = "http://127.0.0.1:9000/callback";
/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();

    let store = MemoryStore::new();
    store.insert_client(
        Client::confidential("hyper-demo")
            .with_secret("hyper-demo-secret")
            .with_redirect_uri(REDIRECT_URI),
    );
    let layer = TokenGateLayer::new(store);

    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3001".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");

    // Stand-in for the authorize endpoint: the user approved already.
    let authorizer = layer.authorizer();
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", "hyper-demo")
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "repo user")
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let request = authorizer.validate(&query).await?;
    let approval = authorizer.approve(&request, "demo-user").await?;
    let code = approval.code();
    println!(
        "redeem the code with:\n  curl -s http://{addr}/login/oauth/access_token \
         -u hyper-demo:hyper-demo-secret -d grant_type=authorization_code -d code={code} \
         --data-urlencode redirect_uri={REDIRECT_URI} -d code_verifier={VERIFIER}"
    );

    let service = ServiceBuilder::new().layer(layer).service_fn(handle);
    loop {
        let (stream, peer) = listener.accept().await?;
        // The address hyper accepted goes into each request's extensions:
        // the gate's lockout counts failures per peer.
        let service = ServiceBuilder::new()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(peer);
                request
            })
            .service(service.clone());
        let service = TowerToHyperService::new(service);
        tokio::spawn(async move {
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {error}");
            }
        });
    }
}

/// Mints a token for requests the gate let through; 404 for anything else.
async fn handle(request: Request<RequestBody<Incoming>>) -> Result<Response<String>, Infallible> {
    let extensions = request.extensions();
    let (Some(grant), Some(format)) = (
        extensions.get::<ValidatedGrant>(),
        extensions.get::<ResponseFormat>(),
    ) else {
        return Ok(status(StatusCode::NOT_FOUND));
    };
    let mut bytes = [0u8; 20];
    if getrandom::fill(&mut bytes).is_err() {
        return Ok(status(StatusCode::INTERNAL_SERVER_ERROR));
    }
    let access_token = format!("demo_{}", hex::encode(bytes));
    let scope = grant.scopes().join(",");
    Ok(format.response(&[
        ("access_token", FieldValue::from(access_token.as_str())),
        ("token_type", "bearer".into()),
        ("scope", scope.as_str().into()),
    ]))
}

fn status(status: StatusCode) -> Response<String> {
    let mut response = Response::new(String::new());
    *response.status_mut() = status;
    response
}
