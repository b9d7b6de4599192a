//! The tokengate demo server: a GitHub-style OAuth authorization server whose
//! token endpoint runs behind the gate.
//!
//! ```text
//! cargo run --example server -- [--addr 127.0.0.1:8080] [--dialect github|rfc6749]
//!                               [--clients FILE] [--no-gate] [--lockout 10/60|off]
//! ```
//!
//! - `GET /login/oauth/authorize?client_id&redirect_uri&state&scope&code_challenge&code_challenge_method`
//!   approves the request for the demo user at once and answers `302` to the
//!   redirect URI with `code` and `state`.
//! - `POST /login/oauth/access_token` runs behind the gate; its handler mints
//!   an opaque token and answers `access_token`, `token_type` and `scope` in
//!   the negotiated format.
//!   With it come `refresh_token`, `expires_in` and
//!   `refresh_token_expires_in` when the client may refresh; the refresh,
//!   device and client-credentials grants are served there too.
//! - `POST /login/device/code` is the device authorization endpoint, answered
//!   by the gate; `GET /login/device` is the page where a person types the
//!   user code and approves or denies it (for the demo user).
//! - `GET /.well-known/oauth-authorization-server` is the RFC 8414 metadata,
//!   rendered from the gate's configuration.
//! - `GET /metrics` is the gate's counters and latency histogram in
//!   Prometheus text format.
//! - `--no-gate` serves the same handler without the gate: a baseline for
//!   benchmarks only, it hands a token to anyone.
//! - `--store memory|redis://..|postgres://..` picks where clients, codes,
//!   refresh tokens and device codes live (default `memory`); with Redis or
//!   PostgreSQL (the `tokengate-redis` and `tokengate-postgres` crates),
//!   several demo processes share them.
//! - `--lockout FAILURES/SECONDS|off` sets the brute-force defence (default
//!   `10/60`, the gate's default: ten failed authentications or redemptions
//!   per client id per minute, then `429` with `Retry-After`).
//! - `--code-lifetime SECONDS` sets how long codes stay redeemable (default
//!   600); used codes are remembered as replay markers that long.
//!
//! Without `--clients` one demo client is registered and printed; it may use
//! every grant. The clients file:
//! `{"clients":[{"client_id":"..","client_secret":"..","redirect_uris":[".."],"public":false,"redirect_policy":"exact|loopback|github","grant_types":[".."],"scopes":[".."],"device_flow":true}]}`

use std::{collections::HashMap, net::SocketAddr, process::ExitCode, time::Duration};

use axum::{
    Form, Router,
    body::Body,
    extract::{Query, Request, State},
    http::{HeaderValue, Response, StatusCode},
    response::{Html, IntoResponse},
    routing::{get, post},
};
use tokengate::{
    Client, Dialect, FieldValue, GrantType, MemoryStore, ResponseFormat, TokenGateLayer,
    ValidatedGrant, authorize::Authorizer, client::RedirectPolicy, device::Devices,
    lockout::Lockout, refresh::RefreshTokens,
};

const USAGE: &str =
    "usage: server [--addr 127.0.0.1:8080] [--dialect github|rfc6749] [--clients FILE] [--no-gate]
              [--store memory|redis://HOST:PORT|postgres://USER@HOST:PORT/DB]
              [--lockout FAILURES/SECONDS|off] [--code-lifetime SECONDS]";
const DEMO_CLIENT_ID: &str = "demo-client";
const DEMO_CLIENT_SECRET: &str = "demo-secret";
const DEMO_REDIRECT_URI: &str = "http://127.0.0.1/callback";
const DEMO_USER: &str = "demo-user";
/// What the demo tells clients its access tokens live for (8 hours, as
/// GitHub's expiring tokens).
const ACCESS_TOKEN_LIFETIME: u64 = 8 * 3600;

struct Options {
    addr: SocketAddr,
    dialect: Dialect,
    clients: Option<String>,
    gate: bool,
    store: String,
    lockout: Option<Lockout>,
    code_lifetime: Duration,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        dialect: Dialect::GitHub,
        clients: None,
        gate: true,
        store: "memory".to_owned(),
        lockout: Some(Lockout::default()),
        code_lifetime: tokengate::builder::DEFAULT_CODE_LIFETIME,
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
            "--store" => {
                let store = value()?;
                let known = store == "memory"
                    || store.starts_with("redis://")
                    || store.starts_with("postgres://")
                    || store.starts_with("postgresql://");
                if !known {
                    return Err(format!(
                        "--store: {store:?} is not memory, redis://.. or postgres://.."
                    ));
                }
                options.store = store;
            }
            "--lockout" => options.lockout = parse_lockout(&value()?)?,
            "--code-lifetime" => {
                let seconds = value()?;
                options.code_lifetime = match seconds.parse::<u64>() {
                    Ok(seconds @ 1..=86_400) => Duration::from_secs(seconds),
                    _ => {
                        return Err(format!(
                            "--code-lifetime: {seconds:?} is not a number of seconds from 1 to 86400"
                        ));
                    }
                };
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(options))
}

/// `FAILURES/SECONDS` or `off`.
fn parse_lockout(value: &str) -> Result<Option<Lockout>, String> {
    if value == "off" {
        return Ok(None);
    }
    let bad = || format!("--lockout: {value:?} is not FAILURES/SECONDS (such as 10/60) or off");
    let (failures, seconds) = value.split_once('/').ok_or_else(bad)?;
    let failures: u32 = failures.parse().map_err(|_| bad())?;
    let seconds: u64 = seconds.parse().map_err(|_| bad())?;
    if failures == 0 || seconds == 0 {
        return Err(bad());
    }
    Ok(Some(Lockout::new(failures, Duration::from_secs(seconds))))
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

    let clients = match &options.clients {
        Some(path) => {
            let loaded = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read clients file {path}: {e}"))
                .and_then(|json| tokengate::store::parse_clients(&json).map_err(|e| e.to_string()));
            match loaded {
                Ok(clients) => {
                    println!("loaded {} client(s) from {path}", clients.len());
                    clients
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            }
        }
        None => {
            println!(
                "demo client: client_id={DEMO_CLIENT_ID} client_secret={DEMO_CLIENT_SECRET} redirect_uri={DEMO_REDIRECT_URI} (any port)"
            );
            vec![
                Client::confidential(DEMO_CLIENT_ID)
                    .with_secret(DEMO_CLIENT_SECRET)
                    .with_redirect_uri(DEMO_REDIRECT_URI)
                    .with_redirect_policy(RedirectPolicy::Loopback)
                    .with_grant_types(GrantType::ALL),
            ]
        }
    };
    let layer = match open_store(&options, clients).await {
        Ok(layer) => layer,
        Err(Exit(code, error)) => {
            eprintln!("error: {error}");
            return ExitCode::from(code);
        }
    };
    let mut page_secret = [0u8; 32];
    getrandom::fill(&mut page_secret).expect("the operating system's random source");
    // Prometheus text for /metrics; the gate records through the `metrics`
    // facade.
    let prometheus = match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()
    {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("error: cannot install the metrics recorder: {error}");
            return ExitCode::from(1);
        }
    };
    // The exporter keeps histogram samples until upkeep folds them in; with
    // nobody scraping, that is memory growing with every request.
    let upkeep = prometheus.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let state = Demo {
        prometheus,
        metadata_layer: layer.clone(),
        page_secret,
        dialect: options.dialect,
        gated: options.gate,
        authorizer: layer.authorizer(),
        refresh_tokens: layer.refresh_tokens(),
        devices: layer.devices(),
    };
    let app = Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(mint_token))
        .route("/login/device", get(device_page).post(device_decision))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/metrics", get(metrics))
        .with_state(state);
    // The gate goes outermost, so no routing or path rewriting inside it can
    // let a token request around it.
    let app = if options.gate {
        app.layer(layer)
    } else {
        println!(
            "WARNING: --no-gate: the token endpoint hands a token to anyone (benchmark baseline)"
        );
        app
    };

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

/// A failure before serving: the exit code and the message.
struct Exit(u8, String);

/// The gate over the store `--store` names, with `clients` registered in it.
async fn open_store(options: &Options, clients: Vec<Client>) -> Result<TokenGateLayer, Exit> {
    let store = options.store.as_str();
    if store == "memory" {
        let memory = MemoryStore::new();
        for client in clients {
            memory.insert_client(client);
        }
        return Ok(gate(memory, options));
    }
    if store.starts_with("redis://") {
        let redis = tokengate_redis::RedisStore::connect(store)
            .await
            .map_err(|e| Exit(2, format!("--store: {e}")))?;
        for client in &clients {
            redis
                .insert_client(client)
                .await
                .map_err(|e| Exit(1, format!("cannot register clients in Redis: {e}")))?;
        }
        return Ok(gate(redis, options));
    }
    let postgres = tokengate_postgres::PostgresStore::connect(store)
        .await
        .map_err(|e| Exit(2, format!("--store: {e}")))?;
    postgres
        .migrate()
        .await
        .map_err(|e| Exit(1, format!("cannot migrate the PostgreSQL schema: {e}")))?;
    for client in &clients {
        postgres
            .insert_client(client)
            .await
            .map_err(|e| Exit(1, format!("cannot register clients in PostgreSQL: {e}")))?;
    }
    Ok(gate(postgres, options))
}

fn gate<S>(store: S, options: &Options) -> TokenGateLayer
where
    S: tokengate::store::ClientStore
        + tokengate::store::CodeStore
        + tokengate::store::RefreshStore
        + tokengate::store::DeviceStore
        + Clone,
{
    TokenGateLayer::builder()
        .store(store)
        .dialect(options.dialect)
        .lockout(options.lockout.clone())
        .code_lifetime(options.code_lifetime)
        // The demo serves client credentials to the clients that allow it,
        // in both dialects.
        .github_client_credentials(true)
        .build()
}

/// What the demo's handlers share.
#[derive(Clone)]
struct Demo {
    /// Renders `/metrics`.
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
    /// For the metadata document, rendered from the gate's configuration.
    metadata_layer: TokenGateLayer,
    /// Signs the device confirmation page (a random value per process).
    page_secret: [u8; 32],
    dialect: Dialect,
    gated: bool,
    authorizer: Authorizer,
    refresh_tokens: RefreshTokens,
    devices: Devices,
}

impl Demo {
    /// The token the confirmation page for `user_code` carries.
    fn confirmation(&self, user_code: &str) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(
            Sha256::new()
                .chain_update(self.page_secret)
                .chain_update(user_code)
                .finalize(),
        )
    }
}

/// Approves every valid request for the demo user.
async fn authorize(State(demo): State<Demo>, request: Request) -> Response<Body> {
    let query = request.uri().query().unwrap_or("");
    let approved = match demo.authorizer.validate(query).await {
        Ok(request) => demo.authorizer.approve(&request, DEMO_USER).await,
        Err(error) => Err(error),
    };
    approved
        .map_or_else(
            |error| error.into_http_response(),
            |approval| approval.into_http_response(),
        )
        .map(Body::from)
}

/// The application's part: mint a token (and, where the client may refresh,
/// a refresh token) for the grant the gate validated.
async fn mint_token(State(demo): State<Demo>, request: Request) -> Response<Body> {
    let format = request
        .extensions()
        .get::<ResponseFormat>()
        .copied()
        .unwrap_or_else(|| ResponseFormat::negotiate(request.headers(), demo.dialect));
    let grant = request.extensions().get::<ValidatedGrant>();
    if grant.is_none() && demo.gated {
        // Behind the gate this cannot happen; if a misconfiguration ever
        // routed a request around it, refuse rather than mint.
        return server_error(format);
    }
    let separator = if demo.dialect == Dialect::GitHub {
        ","
    } else {
        " "
    };
    let scope = grant
        .map(|g| g.scopes().join(separator))
        .unwrap_or_default();
    let access_token = format!("gho_{}", random_hex());
    // Only users' grants by clients registered for refreshing get one.
    let refresh_token = match grant {
        Some(grant)
            if grant.subject().is_some()
                && grant.client().allows_grant(GrantType::RefreshToken) =>
        {
            match demo.refresh_tokens.issue(grant).await {
                Ok(token) => Some(token),
                Err(error) => {
                    tracing::error!(%error, "could not issue a refresh token");
                    return server_error(format);
                }
            }
        }
        _ => None,
    };
    let mut fields = vec![
        ("access_token", FieldValue::from(access_token.as_str())),
        ("token_type", "bearer".into()),
        ("scope", scope.as_str().into()),
    ];
    if let Some(refresh_token) = &refresh_token {
        fields.push(("expires_in", ACCESS_TOKEN_LIFETIME.into()));
        fields.push(("refresh_token", refresh_token.as_str().into()));
        fields.push((
            "refresh_token_expires_in",
            demo.refresh_tokens.lifetime().as_secs().into(),
        ));
    }
    format.response(&fields).map(Body::from)
}

/// The gate's counters and latency histogram, in Prometheus text format.
async fn metrics(State(demo): State<Demo>) -> Response<Body> {
    let mut response = Response::new(Body::from(demo.prometheus.render()));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// RFC 8414 metadata, with URLs on the host the client used.
async fn metadata(State(demo): State<Demo>, request: Request) -> Response<Body> {
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let json = demo
        .metadata_layer
        .metadata(&format!("http://{host}"))
        .with_authorization_endpoint("/login/oauth/authorize")
        .to_json();
    let mut response = Response::new(Body::from(json));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The page where a person types the code their device shows.
async fn device_page(Query(query): Query<HashMap<String, String>>) -> Response<Body> {
    let prefill = query
        .get("user_code")
        .map(|c| escape_html(c))
        .unwrap_or_default();
    html(
        StatusCode::OK,
        "Activate a device",
        &format!(
            r#"<p>Enter the code displayed on your device.</p>
<form method="post" action="/login/device">
  <input name="user_code" value="{prefill}" placeholder="WDJB-MJHT" autocomplete="off" autofocus required>
  <button>Continue</button>
</form>"#
        ),
    )
}

#[derive(serde::Deserialize)]
struct DeviceForm {
    user_code: String,
    decision: Option<String>,
    confirm: Option<String>,
}

/// Two steps: the code the person typed shows who asks for what; only that
/// confirmation page (its token ties the decision to the code shown) can
/// approve or deny.
async fn device_decision(State(demo): State<Demo>, Form(form): Form<DeviceForm>) -> Response<Body> {
    let code = escape_html(&form.user_code);
    let pending = match demo.devices.lookup(&form.user_code, None).await {
        Ok(pending) => pending,
        Err(error) => {
            tracing::error!(%error, "device store failed");
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                "<p>Please try again.</p>",
            );
        }
    };
    let Some(pending) = pending else {
        return html(
            StatusCode::NOT_FOUND,
            "Unknown code",
            &format!(
                "<p>No pending request has the code <b>{code}</b>. It may have expired.</p><p><a href=\"/login/device\">Try again</a></p>"
            ),
        );
    };
    let client = escape_html(&pending.client_id);
    let confirm = demo.confirmation(&pending.user_code);
    let Some(decision) = &form.decision else {
        let scopes = if pending.scopes.is_empty() {
            "no particular scope".to_owned()
        } else {
            escape_html(&pending.scopes.join(", "))
        };
        return html(
            StatusCode::OK,
            "Authorize a device",
            &format!(
                r#"<p><b>{client}</b> asks to act as <b>{DEMO_USER}</b> with {scopes}.</p>
<form method="post" action="/login/device">
  <input type="hidden" name="user_code" value="{code}">
  <input type="hidden" name="confirm" value="{confirm}">
  <button name="decision" value="approve">Approve</button>
  <button name="decision" value="deny">Deny</button>
</form>"#
            ),
        );
    };
    // Without the confirmation page's token, a decision could be forged by
    // another site (CSRF) or made without seeing who asks.
    if form.confirm.as_deref() != Some(confirm.as_str()) {
        return html(
            StatusCode::FORBIDDEN,
            "Confirm first",
            "<p>Please review the request before deciding.</p><p><a href=\"/login/device\">Start again</a></p>",
        );
    }
    let decided = match decision.as_str() {
        "approve" => demo
            .devices
            .approve(&form.user_code, DEMO_USER, None)
            .await
            .map(|ok| (ok, "approved")),
        "deny" => demo
            .devices
            .deny(&form.user_code, None)
            .await
            .map(|ok| (ok, "denied")),
        _ => {
            return html(
                StatusCode::BAD_REQUEST,
                "Error",
                "<p>Choose approve or deny.</p>",
            );
        }
    };
    match decided {
        Ok((true, verb)) => html(
            StatusCode::OK,
            "Done",
            &format!("<p>You {verb} <b>{client}</b>. You can return to your device.</p>"),
        ),
        Ok((false, _)) => html(
            StatusCode::CONFLICT,
            "Already decided",
            "<p>This code was decided already or has expired.</p>",
        ),
        Err(error) => {
            tracing::error!(%error, "device store failed");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                "<p>Please try again.</p>",
            )
        }
    }
}

/// A page that no other site may frame (clickjacking) and no cache keeps.
fn html(status: StatusCode, title: &str, body: &str) -> Response<Body> {
    let mut response = Html(page(title, body)).into_response();
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; form-action 'self'"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body><h1>{title}</h1>\n{body}\n</body></html>\n"
    )
}

/// Text from a request, made safe to put in a page.
fn escape_html(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// An OAuth `server_error` in the client's format.
fn server_error(format: ResponseFormat) -> Response<Body> {
    let mut response = format
        .response(&[
            ("error", FieldValue::from("server_error")),
            (
                "error_description",
                "the authorization server could not complete the request".into(),
            ),
        ])
        .map(Body::from);
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

fn random_hex() -> String {
    let mut random = [0u8; 20];
    getrandom::fill(&mut random).expect("the operating system's random source");
    hex::encode(random)
}
