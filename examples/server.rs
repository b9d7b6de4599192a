//! The tokengate demo server: a GitHub-style OAuth authorization server whose
//! token endpoint runs behind the gate.
//!
//! ```text
//! cargo run --example server -- [--addr 127.0.0.1:8080] [--dialect github|rfc6749]
//!                               [--clients FILE] [--no-gate]
//! ```
//!
//! - `GET /login/oauth/authorize?client_id&redirect_uri&state&scope&code_challenge&code_challenge_method`
//!   approves the request for the demo user at once and answers `302` to the
//!   redirect URI with `code` and `state`.
//! - `POST /login/oauth/access_token` runs behind the gate; its handler mints
//!   an opaque token and answers `access_token`, `token_type` and `scope` in
//!   the negotiated format.
//! - `--no-gate` serves the same handler without the gate: a baseline for
//!   benchmarks only, it hands a token to anyone.
//!
//! Without `--clients` one demo client is registered and printed. The
//! clients file:
//! `{"clients":[{"client_id":"..","client_secret":"..","redirect_uris":[".."],"public":false,"redirect_policy":"exact|loopback|github"}]}`

use std::{convert::Infallible, net::SocketAddr, process::ExitCode};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::Response,
    routing::{get, post},
};
use tokengate::{
    Authorizer, Client, Dialect, FieldValue, MemoryStore, RedirectPolicy, ResponseFormat,
    TokenGateLayer, ValidatedGrant,
};

const USAGE: &str =
    "usage: server [--addr 127.0.0.1:8080] [--dialect github|rfc6749] [--clients FILE] [--no-gate]";
const DEMO_CLIENT_ID: &str = "demo-client";
const DEMO_CLIENT_SECRET: &str = "demo-secret";
const DEMO_REDIRECT_URI: &str = "http://127.0.0.1/callback";
const DEMO_USER: &str = "demo-user";

struct Options {
    addr: SocketAddr,
    dialect: Dialect,
    clients: Option<String>,
    gate: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        dialect: Dialect::GitHub,
        clients: None,
        gate: true,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => {
                let addr = value()?;
                options.addr = addr.parse().map_err(|_| {
                    format!("--addr: {addr:?} is not an address such as 127.0.0.1:8080")
                })?;
            }
            "--dialect" => {
                options.dialect = match value()?.as_str() {
                    "github" => Dialect::GitHub,
                    "rfc6749" => Dialect::Rfc6749,
                    other => return Err(format!("--dialect: {other:?} is not github or rfc6749")),
                }
            }
            "--clients" => options.clients = Some(value()?),
            "--no-gate" => options.gate = false,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(options))
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("error: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let store = MemoryStore::new();
    match &options.clients {
        Some(path) => match store.load_clients_file(path) {
            Ok(count) => println!("loaded {count} client(s) from {path}"),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        },
        None => {
            store.insert_client(
                Client::confidential(DEMO_CLIENT_ID)
                    .with_secret(DEMO_CLIENT_SECRET)
                    .with_redirect_uri(DEMO_REDIRECT_URI)
                    .with_redirect_policy(RedirectPolicy::Loopback),
            );
            println!(
                "demo client: client_id={DEMO_CLIENT_ID} client_secret={DEMO_CLIENT_SECRET} redirect_uri={DEMO_REDIRECT_URI} (any port)"
            );
        }
    }

    let layer = TokenGateLayer::builder()
        .store(store)
        .dialect(options.dialect)
        .build();
    let authorizer = layer.authorizer();
    let token = post(mint_token).with_state(options.dialect);
    let token = if options.gate {
        token.layer(layer)
    } else {
        println!(
            "WARNING: --no-gate: the token endpoint hands a token to anyone (benchmark baseline)"
        );
        token
    };
    let app = Router::new()
        .route(
            "/login/oauth/authorize",
            get(authorize).with_state(authorizer),
        )
        .route_service("/login/oauth/access_token", token);

    let listener = match tokio::net::TcpListener::bind(options.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", options.addr);
            return ExitCode::from(1);
        }
    };
    let addr = listener.local_addr().unwrap_or(options.addr);
    println!("listening on http://{addr}");
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("error: {error}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Approves every valid request for the demo user.
async fn authorize(State(authorizer): State<Authorizer>, request: Request) -> Response<Body> {
    let query = request.uri().query().unwrap_or("");
    let approved = match authorizer.validate(query).await {
        Ok(request) => authorizer.approve(&request, DEMO_USER).await,
        Err(error) => Err(error),
    };
    approved
        .map_or_else(
            |error| error.into_http_response(),
            |approval| approval.into_http_response(),
        )
        .map(Body::from)
}

/// The application's part: mint a token for the grant the gate validated.
async fn mint_token(
    State(dialect): State<Dialect>,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    let format = request
        .extensions()
        .get::<ResponseFormat>()
        .copied()
        .unwrap_or_else(|| ResponseFormat::negotiate(request.headers(), dialect));
    let grant = request.extensions().get::<ValidatedGrant>();
    let separator = if dialect == Dialect::GitHub { "," } else { " " };
    let scope = grant
        .map(|g| g.scopes().join(separator))
        .unwrap_or_default();
    let mut random = [0u8; 20];
    getrandom::fill(&mut random).expect("the operating system's random source");
    let access_token = format!("gho_{}", hex::encode(random));
    let response = format.response(&[
        ("access_token", FieldValue::from(access_token.as_str())),
        ("token_type", "bearer".into()),
        ("scope", scope.as_str().into()),
    ]);
    Ok(response.map(Body::from))
}
