//! The tokengate demo server: a GitHub-style OAuth authorization server whose
//! token endpoint runs behind the gate.
//!
//! ```text
//! cargo run --example server -- [--addr 127.0.0.1:8080] [--issuer URL] [--dialect github|rfc6749]
//!                               [--clients FILE] [--no-gate] [--lockout 10/60|off]
//!                               [--dpop-nonce] [--metrics-addr 127.0.0.1:9090]
//!                               [--error-uri-base URL]
//!                               [--refresh-reuse SECS] [--user LOGIN] [--unverified-email]
//! ```
//!
//! - `GET /login/oauth/authorize?client_id&redirect_uri&state&scope&code_challenge&code_challenge_method`
//!   approves the request for the demo user at once and answers `302` to the
//!   redirect URI with `code` and `state`.
//! - `POST /login/oauth/access_token` runs behind the gate; its handler mints
//!   an opaque token and answers `access_token`, `token_type` and `scope` in
//!   the negotiated format. `token_type` is `DPoP` when the request carried
//!   a valid DPoP proof (RFC 9449: the gate checked it and hands over the
//!   key's thumbprint, [`ValidatedGrant::dpop_jkt`]), else `bearer`.
//!   With it come `refresh_token`, `expires_in` and
//!   `refresh_token_expires_in` when the client may refresh; the refresh,
//!   device and client-credentials grants are served there too. The demo
//!   keeps a registry of the access tokens it mints (under their SHA-256,
//!   never the tokens; at most 458,752 live ones, the oldest forgotten when
//!   full: see `tokens.rs`) for the two endpoints below.
//! - `POST /login/oauth/revoke` (RFC 7009) and `POST /login/oauth/introspect`
//!   (RFC 7662) run behind the gate, which authenticates the caller as at
//!   the token endpoint (every method, the lockout) and answers for refresh
//!   tokens itself: revoking one revokes its whole family (and the demo
//!   drops that family's access tokens), introspecting one describes it.
//!   Any other token reaches the demo: revocation deletes it if it is an
//!   access token of the calling client and answers `200` with an empty
//!   body either way; introspection answers `active` with `client_id`,
//!   `sub`, `scope`, `token_type` (`Bearer`, or `DPoP` with `cnf.jkt`),
//!   `iat`, `exp` and `iss` for a live access token, else
//!   `{"active":false}`. Only clients registered with `"introspect": true`
//!   may introspect (others: `403` `unauthorized_client`); errors are
//!   RFC 6749 JSON in both dialects. A refresh token replayed after its
//!   rotation also drops its family's access tokens. Under `--no-gate`
//!   neither path is served.
//! - `POST /login/device/code` is the device authorization endpoint, answered
//!   by the gate; `GET /login/device` is the page where a person types the
//!   user code and approves or denies it (for the demo user). The page holds
//!   up like a sign-in page: its GET sets a session cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Path=/login/device`, `Secure` for an `https`
//!   issuer); a POST must carry that cookie, and a decision the token of its
//!   confirmation page, an HMAC of the session and the user code (double
//!   submit); a POST whose `Origin` is not the issuer's, or, without
//!   `Origin`, whose `Sec-Fetch-Site` is not `same-origin` or `none`, is
//!   refused with `403` before anything is looked up or decided. Every
//!   answer on that path forbids framing and caching.
//! - `GET /api/v3/user` is GitHub's `GET /user`, GHES-style (`github_api.rs`):
//!   with `Authorization: token T` or `Bearer T` and a live access token
//!   the demo minted, the demo user in GitHub's shape (`login`, `id`,
//!   `name`, `email`, ...), the token's scopes in `X-OAuth-Scopes`; else
//!   `401` `{"message":"Bad credentials",..}` (a DPoP-bound token too:
//!   GitHub has no DPoP). `--user LOGIN` names the demo user (default
//!   `demo-user`); `--unverified-email` makes its primary email
//!   unverified, so token requests for it are refused
//!   `unverified_user_email` (`tokengate::policy::UnverifiedUserEmail`).
//! - `GET /.well-known/oauth-authorization-server` is the RFC 8414 metadata,
//!   rendered from the gate's configuration for the issuer, never from the
//!   request's `Host`; shared caches may keep it for an hour.
//! - `--issuer URL` is the public base URL (an absolute `http` or `https`
//!   URL without query or fragment; default `http://` and the address it
//!   listens on, the real port when `--addr` gives port 0). The metadata's
//!   `issuer` and endpoints, the device flow's `verification_uri` and the
//!   origin the device page accepts all come from it. Set it whenever
//!   browsers reach the demo by another name (`localhost`, a proxy).
//!   It is also what signed clients write: a client assertion's `aud` must
//!   be the issuer or the token endpoint, `{issuer}/login/oauth/access_token`,
//!   and a DPoP proof's `htu` must be the token endpoint; a client that
//!   reaches the demo under another name than the issuer is refused.
//! - `--error-uri-base URL` (an absolute `http` or `https` URL without query,
//!   fragment or user info, such as `https://docs.github.com`) goes before every
//!   `error_uri` (`Builder::error_uri_base`): GitHub's relative paths become
//!   the absolute ones its live answers carry; in the RFC 6749 dialect,
//!   errors then carry `URL#error`. Without it, GitHub's paths stay relative.
//! - `--dpop-nonce` demands server nonces in DPoP proofs (RFC 9449 §8): a
//!   proof without the current nonce is answered `400` `use_dpop_nonce`
//!   with the nonce in a `DPoP-Nonce` header, and the client retries with
//!   it. A nonce changes every five minutes and is accepted during its
//!   period and the next (so for five to ten minutes).
//! - `--metrics-addr ADDR` serves `GET /metrics`, the gate's counters and
//!   latency histogram in Prometheus text format, on a listener of its own
//!   (off unless given; the public listener answers `404` there) and prints
//!   `metrics on http://ADDR/metrics` before the `listening on` line.
//! - `--no-gate` serves the same handler without the gate: a baseline for
//!   benchmarks only, it hands a token to anyone.
//! - `--store memory|redis://..|redis+cluster://..|postgres://..` picks
//!   where clients, codes, refresh tokens and device codes live (default
//!   `memory`); `redis+cluster://HOST:PORT,HOST:PORT,..` is a Redis Cluster
//!   named by some of its nodes. With Redis, a Redis Cluster or
//!   PostgreSQL (the `tokengate-redis` and `tokengate-postgres` crates),
//!   several demo processes share them, with the lockout's counters and
//!   the replay store: the `jti`s of client assertions and DPoP proofs (a
//!   request replayed to another process is refused there) and the DPoP
//!   nonces (any process accepts the nonce another handed out).
//! - `--lockout FAILURES/SECONDS|off` sets the brute-force defence (default
//!   `10/60`, the gate's default: ten failed authentications or redemptions
//!   per client id per minute, then `429` with `Retry-After`).
//! - `--code-lifetime SECONDS` sets how long codes stay redeemable (default
//!   600); used codes are remembered as replay markers that long.
//! - `--refresh-reuse SECS` (0 to 300; default 0, off) opens a reuse window
//!   for rotated refresh tokens (`Builder::refresh_reuse`): within `SECS`
//!   of its rotation, a refresh token presented again by its own client
//!   (a lost answer, two tabs) gets a fresh pair in the same family instead
//!   of revoking it, at most `REFRESH_REUSES` (3) times. Without it,
//!   every presentation of a rotated token is a replay and revokes the
//!   family.
//!
//! Without `--clients` one demo client is registered and printed; it may use
//! every grant and introspect. The clients file:
//!
//! ```text
//! {"clients":[{"client_id":"..","client_secret":"..","redirect_uris":[".."],"public":false,
//!              "redirect_policy":"exact|loopback|github","grant_types":[".."],"scopes":[".."],
//!              "device_flow":true,
//!              "token_endpoint_auth_method":"client_secret_basic|client_secret_post|client_secret_jwt|private_key_jwt|none",
//!              "jwks":{"keys":[..]},"dpop_bound_access_tokens":false,"introspect":false}]}
//! ```
//!
//! - `token_endpoint_auth_method` (RFC 7591) registers the one method the
//!   client authenticates with; without it a confidential client's secret
//!   is taken by Basic or in the body, and a public client is `none`.
//! - `private_key_jwt` takes `jwks`, the client's public keys (ES256,
//!   EdDSA / Ed25519, RS256, PS256), and no secret; `client_secret_jwt`
//!   takes exactly one `client_secret`, the HS256 key of its assertions
//!   (kept as it is, not hashed: an HMAC needs the key).
//! - `dpop_bound_access_tokens: true` (RFC 9449 §5.2): the client gets no
//!   token without a DPoP proof.
//! - `introspect: true` (default false) lets a confidential client (a
//!   resource server) ask the introspection endpoint about any token; a
//!   public client cannot have it (the file is refused).
//!
//! The metadata lists `private_key_jwt` and `client_secret_jwt` among the
//! methods, with `token_endpoint_auth_signing_alg_values_supported` and
//! `dpop_signing_alg_values_supported`, and the `revocation_endpoint` and
//! `introspection_endpoint` with their methods.

mod github_api;
mod tokens;

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::ExitCode,
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    Form, Router,
    body::Body,
    extract::{ConnectInfo, FromRef, Query, Request, State, rejection::FormRejection},
    http::{HeaderMap, HeaderValue, Response, StatusCode, Uri, header},
    response::{Html, IntoResponse},
    routing::{delete, get, post},
};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokengate::{
    Client, Dialect, FieldValue, GrantType, MemoryStore, ResponseFormat, TokenGateLayer,
    ValidatedGrant,
    authorize::Authorizer,
    builder::Builder,
    client::RedirectPolicy,
    device::{Devices, VerifyError},
    lockout::Lockout,
    policy::{PolicyError, PolicyRequest, UnverifiedUserEmail},
    refresh::RefreshTokens,
    store::{CodeKey, Lookup, RefreshStore},
};

use github_api::{Api, DemoUser};
use tokens::{Issued, Lifecycle, RefreshAlive, Registry, RevokeFamily};

const USAGE: &str = r#"usage: server [--addr 127.0.0.1:8080] [--issuer http(s)://HOST[:PORT][/PATH]]
              [--dialect github|rfc6749] [--clients FILE] [--no-gate]
              [--store memory|redis://HOST:PORT|redis+cluster://HOST:PORT,..|postgres://USER@HOST:PORT/DB]
              [--lockout FAILURES/SECONDS|off] [--code-lifetime SECONDS]
              [--error-uri-base URL]
              [--dpop-nonce] [--metrics-addr 127.0.0.1:9090]
              [--refresh-reuse SECS] [--user LOGIN] [--unverified-email]

  --issuer URL    the public base URL (default: http:// and the bound address).
                  Signed clients write it: a client assertion's aud is the
                  issuer or {issuer}/login/oauth/access_token, a DPoP proof's
                  htu is {issuer}/login/oauth/access_token.
  --error-uri-base URL
                  goes before every error_uri (an absolute http or https
                  URL, such as https://docs.github.com): GitHub's relative
                  paths become absolute, as in its live answers.
  --dpop-nonce    DPoP proofs must carry a server nonce: without the current
                  one, 400 use_dpop_nonce with the nonce in a DPoP-Nonce
                  header. A nonce rotates every 300 seconds and is accepted
                  during its period and the next.
  --refresh-reuse SECS
                  a rotated refresh token presented again by its own client
                  within SECS (0 to 300; default 0, off) gets a fresh pair in
                  its family instead of revoking it, 3 times at most.
  --user LOGIN    the demo user every approval is for (default demo-user),
                  as GET /api/v3/user describes it.
  --unverified-email
                  the demo user's primary email is unverified: token
                  requests for it get unverified_user_email.
  --clients FILE  {"clients":[{"client_id":"..","client_secret":"..",
                   "redirect_uris":[".."],"public":false,
                   "redirect_policy":"exact|loopback|github",
                   "grant_types":[".."],"scopes":[".."],"device_flow":false,
                   "token_endpoint_auth_method":"client_secret_basic|
                     client_secret_post|client_secret_jwt|private_key_jwt|none",
                   "jwks":{"keys":[..]},"dpop_bound_access_tokens":false,
                   "introspect":false}]}
                  private_key_jwt takes jwks (public keys) and no secret,
                  client_secret_jwt exactly one client_secret;
                  dpop_bound_access_tokens: no token without a DPoP proof;
                  introspect: a confidential client may ask
                  POST /login/oauth/introspect about tokens.

Endpoints besides the token endpoint: POST /login/oauth/revoke (RFC 7009)
and POST /login/oauth/introspect (RFC 7662), behind the gate; GET
/api/v3/user (GitHub's GET /user) for the demo's access tokens."#;
const DEMO_CLIENT_ID: &str = "demo-client";
const DEMO_CLIENT_SECRET: &str = "demo-secret";
const DEMO_REDIRECT_URI: &str = "http://127.0.0.1/callback";
const DEMO_USER: &str = "demo-user";
/// What the demo tells clients its access tokens live for (8 hours, as
/// GitHub's expiring tokens).
const ACCESS_TOKEN_LIFETIME: u64 = 8 * 3600;
/// The device page's session cookie. Not `__Host-`: that prefix demands
/// `Path=/`, and the cookie has no business outside the device page.
const SESSION_COOKIE: &str = "tokengate_device";
/// Where the device page lives; its session cookie is scoped to it.
const DEVICE_PAGE: &str = "/login/device";
/// How often the DPoP nonce changes under `--dpop-nonce`; a nonce is
/// accepted during its period and the next.
const DPOP_NONCE_ROTATION: Duration = Duration::from_secs(300);
/// How many times one rotated refresh token may be reused within the
/// `--refresh-reuse` window (`Builder::refresh_reuse`'s limit): a lost
/// answer retried, or a few tabs refreshing at once.
const REFRESH_REUSES: u32 = 3;

struct Options {
    addr: SocketAddr,
    /// The public base URL (`--issuer`), without a trailing `/`. `None` until
    /// `main` has bound the listener and filled in the default from the
    /// bound address; it is set before the gate is built.
    issuer: Option<String>,
    /// What goes before every `error_uri` (`--error-uri-base`).
    error_uri_base: Option<String>,
    /// Where `/metrics` is served (`--metrics-addr`); nowhere without it.
    metrics_addr: Option<SocketAddr>,
    dialect: Dialect,
    clients: Option<String>,
    gate: bool,
    store: String,
    lockout: Option<Lockout>,
    code_lifetime: Duration,
    /// Whether DPoP proofs must carry a server nonce (`--dpop-nonce`).
    dpop_nonce: bool,
    /// The reuse window for rotated refresh tokens (`--refresh-reuse`);
    /// zero: none.
    refresh_reuse: Duration,
    /// The demo user's login (`--user`).
    user: String,
    /// Whether the demo user's primary email is unverified
    /// (`--unverified-email`): token requests for it are refused
    /// `unverified_user_email`.
    unverified_email: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        issuer: None,
        error_uri_base: None,
        metrics_addr: None,
        dialect: Dialect::GitHub,
        clients: None,
        gate: true,
        store: "memory".to_owned(),
        lockout: Some(Lockout::default()),
        code_lifetime: tokengate::builder::DEFAULT_CODE_LIFETIME,
        dpop_nonce: false,
        refresh_reuse: Duration::ZERO,
        user: DEMO_USER.to_owned(),
        unverified_email: false,
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
            "--issuer" => options.issuer = Some(parse_issuer(&value()?)?),
            "--error-uri-base" => {
                let base = value()?;
                // An absolute http(s) URL that GitHub's paths and anchors
                // can follow: no query, fragment or user info, and only
                // characters RFC 3986 allows (`http::Uri` takes a few more).
                let rfc3986 =
                    |b: u8| b.is_ascii_alphanumeric() || b"-._~:/[]!$&'()*+,;=%".contains(&b);
                let absolute = base.parse::<Uri>().ok().is_some_and(|uri| {
                    matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.host().is_some_and(|host| !host.is_empty())
                });
                if !absolute || !base.bytes().all(rfc3986) {
                    return Err(format!(
                        "--error-uri-base: {base:?} is not an absolute http or https URL without query, fragment or user info, such as https://docs.github.com"
                    ));
                }
                options.error_uri_base = Some(base);
            }
            "--metrics-addr" => {
                let addr = value()?;
                options.metrics_addr = Some(addr.parse().map_err(|_| {
                    format!("--metrics-addr: {addr:?} is not an address such as 127.0.0.1:9090")
                })?);
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
            "--dpop-nonce" => options.dpop_nonce = true,
            "--store" => {
                let store = value()?;
                let known = store == "memory"
                    || store.starts_with("redis://")
                    || store.starts_with("redis+cluster://")
                    || store.starts_with("postgres://")
                    || store.starts_with("postgresql://");
                if !known {
                    return Err(format!(
                        "--store: {store:?} is not memory, redis://.., redis+cluster://.. or postgres://.."
                    ));
                }
                options.store = store;
            }
            "--lockout" => options.lockout = parse_lockout(&value()?)?,
            "--code-lifetime" => {
                options.code_lifetime = seconds_in("--code-lifetime", &value()?, 1, 86_400)?;
            }
            "--refresh-reuse" => {
                options.refresh_reuse = seconds_in("--refresh-reuse", &value()?, 0, 300)?;
            }
            "--user" => options.user = parse_login(&value()?)?,
            "--unverified-email" => options.unverified_email = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(options))
}

/// An absolute `http` or `https` URL without user info, query or fragment,
/// returned with its scheme and host in lower case and without a trailing
/// `/` (paths are appended to it).
fn parse_issuer(value: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!("--issuer: {value:?} {why}: give an absolute URL such as https://auth.example.com")
    };
    // `Uri` would take a query; a fragment it may drop silently.
    if value.contains(['?', '#']) {
        return Err(bad("has a query or fragment"));
    }
    let uri: Uri = value.parse().map_err(|_| bad("is not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => "http",
        Some("https") => "https",
        Some(_) => return Err(bad("is not http or https")),
        None => return Err(bad("is not absolute")),
    };
    let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("has user info"));
    }
    if authority.host().is_empty() {
        return Err(bad("has no host"));
    }
    let authority = authority.as_str().to_ascii_lowercase();
    let path = uri.path().trim_end_matches('/');
    // The path goes into the session cookie's `Path` and into pages: no
    // `;`, quotes or other characters that would need escaping there.
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~%/".contains(&b);
    if !path.bytes().all(plain) {
        return Err(bad(
            "has a path with characters other than letters, digits and -._~%/",
        ));
    }
    Ok(format!("{scheme}://{authority}{path}"))
}

/// The issuer's origin as a browser writes it in `Origin` (scheme, host
/// and the port unless it is the scheme's default), and the device page's
/// path as browsers see it (behind the issuer's path, if it has one).
fn origin_and_page(issuer: &str) -> Option<(String, String)> {
    let uri: Uri = issuer.parse().ok()?;
    let scheme = uri.scheme_str()?;
    let host = uri.host()?;
    let default_port = if scheme == "https" { 443 } else { 80 };
    let origin = match uri.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    };
    let page = format!("{}{DEVICE_PAGE}", uri.path().trim_end_matches('/'));
    Some((origin, page))
}

/// A whole number of seconds from `low` to `high`, for `flag`.
/// A GitHub login: 1 to 39 ASCII letters, digits and single hyphens, not
/// at either end. It reaches pages, JSON and URLs.
fn parse_login(value: &str) -> Result<String, String> {
    let valid = (1..=39).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
        && !value.contains("--");
    if valid {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "--user: {value:?} is not a GitHub login (1 to 39 letters, digits and single hyphens, not at either end)"
        ))
    }
}

fn seconds_in(flag: &str, value: &str, low: u64, high: u64) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(seconds) if (low..=high).contains(&seconds) => Ok(Duration::from_secs(seconds)),
        _ => Err(format!(
            "{flag}: {value:?} is not a number of seconds from {low} to {high}"
        )),
    }
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
    let mut options = match parse_args(std::env::args().skip(1)) {
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
                    .with_grant_types(GrantType::ALL)
                    .with_introspection(true),
            ]
        }
    };
    // Bound before the gate is built: the default issuer is the address
    // actually bound (port 0 picks one), and the gate's `verification_uri`
    // comes from the issuer.
    let listener = match tokio::net::TcpListener::bind(options.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", options.addr);
            return ExitCode::from(1);
        }
    };
    let addr = listener.local_addr().unwrap_or(options.addr);
    let issuer = options
        .issuer
        .get_or_insert_with(|| format!("http://{addr}"))
        .clone();
    let Some((origin, page_path)) = origin_and_page(&issuer) else {
        // A bound address or a parsed `--issuer` always has an origin.
        eprintln!("error: the issuer {issuer:?} has no origin");
        return ExitCode::from(2);
    };
    let tokens = Registry::new(tokens::CAPACITY, Duration::from_secs(ACCESS_TOKEN_LIFETIME));
    let (layer, (refresh_alive, revoke_family)) = match open_store(&options, clients, &tokens).await
    {
        Ok(opened) => opened,
        Err(Exit(code, error)) => {
            eprintln!("error: {error}");
            return ExitCode::from(code);
        }
    };
    let mut page_key = [0u8; 32];
    getrandom::fill(&mut page_key).expect("the operating system's random source");
    // Prometheus text for /metrics; the gate records through the `metrics`
    // facade. The recorder is installed even when no listener serves it, so
    // the gate does the same work in every run of the demo (the load
    // figures in BENCHMARKS.md include it).
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
    // Only on a listener of its own: the counters say what the gate refuses
    // and how often, which is nobody's business on the public side.
    let metrics = match options.metrics_addr {
        Some(metrics_addr) => match tokio::net::TcpListener::bind(metrics_addr).await {
            Ok(listener) => {
                let bound = listener.local_addr().unwrap_or(metrics_addr);
                Some((listener, bound))
            }
            Err(error) => {
                eprintln!("error: cannot listen on {metrics_addr}: {error}");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    // Rendered once: it depends on the configuration alone.
    let metadata_json = Bytes::from(
        layer
            .metadata(&issuer)
            .with_authorization_endpoint("/login/oauth/authorize")
            .to_json(),
    );
    let state = Demo {
        metadata: metadata_json,
        page_key,
        origin: origin.into(),
        page_path: page_path.into(),
        secure_cookie: issuer.starts_with("https://"),
        dialect: options.dialect,
        gated: options.gate,
        authorizer: layer.authorizer(),
        refresh_tokens: layer.refresh_tokens(),
        devices: layer.devices(),
        lifecycle: Lifecycle {
            tokens,
            refresh_alive,
            revoke_family,
            issuer: issuer.as_str().into(),
        },
        user: Arc::new(DemoUser::new(&options.user)),
    };
    let app = Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(mint_token))
        .route(
            DEVICE_PAGE,
            get(device_page)
                .post(device_decision)
                // `layer`, not `route_layer`: the 405 for other methods and
                // the extractors' rejections get the headers too.
                .layer(axum::middleware::map_response(page_headers)),
        )
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route(github_api::USER_PATH, get(github_api::user));
    // Only behind the gate: it authenticates the caller and hands the
    // token over; without it there is nobody to answer.
    let app = if options.gate {
        app.route(
            tokengate::builder::DEFAULT_REVOCATION_PATH,
            post(tokens::revoke),
        )
        .route(
            tokengate::builder::DEFAULT_INTROSPECTION_PATH,
            post(tokens::introspect),
        )
        .route(
            github_api::APPLICATION_TOKEN,
            post(github_api::applications)
                .patch(github_api::applications)
                .delete(github_api::applications),
        )
        .route(
            github_api::APPLICATION_GRANT,
            delete(github_api::applications),
        )
    } else {
        app
    };
    let app = app.with_state(state);
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

    if let Some((listener, metrics_addr)) = metrics {
        let app = Router::new()
            .route("/metrics", get(serve_metrics))
            .with_state(prometheus);
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("error: metrics listener: {error}");
            }
        });
        println!("metrics on http://{metrics_addr}/metrics");
    }
    println!("listening on http://{addr}");
    // The connection's address reaches the gate (its lockout counts per
    // peer) and the device page (its user-code limits).
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("error: {error}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// A failure before serving: the exit code and the message.
struct Exit(u8, String);

/// The gate over the store `--store` names, with `clients` registered in
/// it and `tokens` told of the refresh families it revokes; and how the
/// registry asks that store whether a refresh token still lives.
async fn open_store(
    options: &Options,
    clients: Vec<Client>,
    tokens: &Registry,
) -> Result<(TokenGateLayer, Families), Exit> {
    let store = options.store.as_str();
    if store == "memory" {
        let memory = MemoryStore::new();
        for client in clients {
            memory.insert_client(client);
        }
        return Ok(gate(memory, options, tokens));
    }
    if store.starts_with("redis://") || store.starts_with("redis+cluster://") {
        let redis = tokengate_redis::RedisStore::connect(store)
            .await
            .map_err(|e| Exit(2, format!("--store: {e}")))?;
        for client in &clients {
            redis
                .insert_client(client)
                .await
                .map_err(|e| Exit(1, format!("cannot register clients in Redis: {e}")))?;
        }
        // The lockout's counters live in Redis too: every demo process on
        // this Redis enforces one threshold. So do the one-time values of
        // signed requests: a process refuses an assertion or proof `jti`
        // another process saw, and all accept the same DPoP nonces.
        return Ok(gate_with(redis.clone(), options, tokens, |b| {
            b.lockout_store(redis.clone()).replay_store(redis)
        }));
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
    // The lockout's counters and the one-time values of signed requests
    // live in PostgreSQL too, as in Redis above.
    Ok(gate_with(postgres.clone(), options, tokens, |b| {
        b.lockout_store(postgres.clone()).replay_store(postgres)
    }))
}

fn gate<S>(store: S, options: &Options, tokens: &Registry) -> (TokenGateLayer, Families)
where
    S: tokengate::store::ClientStore
        + tokengate::store::CodeStore
        + tokengate::store::RefreshStore
        + tokengate::store::DeviceStore
        + Clone,
{
    gate_with(store, options, tokens, |builder| builder)
}

fn gate_with<S>(
    store: S,
    options: &Options,
    tokens: &Registry,
    more: impl FnOnce(Builder<S, S, S, S>) -> Builder<S, S, S, S>,
) -> (TokenGateLayer, Families)
where
    S: tokengate::store::ClientStore
        + tokengate::store::CodeStore
        + tokengate::store::RefreshStore
        + tokengate::store::DeviceStore
        + Clone,
{
    let families = families(store.clone());
    let (on_revocation, on_replay) = (tokens.clone(), tokens.clone());
    let mut builder = more(TokenGateLayer::builder().store(store))
        .dialect(options.dialect)
        .lockout(options.lockout.clone())
        .code_lifetime(options.code_lifetime)
        // The demo serves client credentials to the clients that allow it,
        // in both dialects.
        .github_client_credentials(true)
        // GitHub's OAuth-app endpoints, GHES-style: the gate authenticates
        // the client, `github_api::applications` manages the tokens.
        .application_api(Some(github_api::API_PREFIX))
        // A refresh family revoked on request (RFC 7009 §2.1), or for a
        // replay (RFC 9700 §4.14.2), takes its access tokens with it.
        .on_refresh_revocation(move |record| {
            on_revocation.revoke_family(&record.family);
        })
        .on_refresh_replay(move |record| {
            on_replay.revoke_family(&record.family);
        });
    if !options.refresh_reuse.is_zero() {
        builder = builder.refresh_reuse(options.refresh_reuse, REFRESH_REUSES);
    }
    // A refresh token of an authorization revoked as a whole (GitHub's
    // `DELETE /applications/{client_id}/grant`) issued before then is
    // refused, and its family revoked, even when the registry no longer
    // held an access token of its family to find it by.
    let (grants, revoke) = (tokens.clone(), Arc::clone(&families.1));
    let github = options.dialect == Dialect::GitHub;
    builder = builder.policy(move |request: PolicyRequest| {
        let previous = request.grant().refresh().cloned();
        let (grants, revoke) = (grants.clone(), Arc::clone(&revoke));
        async move {
            let Some(previous) = previous else {
                return Ok(());
            };
            if !grants.grant_revoked(&previous.client_id, &previous.subject, previous.issued_at) {
                return Ok(());
            }
            if let Err(error) = revoke(previous.family.clone()).await {
                tracing::error!(%error, "could not revoke the family of a revoked grant");
                return Err(PolicyError::server_error());
            }
            Err(revoked_grant_error(github))
        }
    });
    if options.unverified_email {
        // The demo has one user; `--unverified-email` says its primary
        // email is unverified, so GitHub's policy refuses it a token.
        builder = builder.policy(UnverifiedUserEmail::new(|_user: String| async {
            Ok(false)
        }));
    }
    if options.dpop_nonce {
        builder = builder.dpop_nonces(DPOP_NONCE_ROTATION);
    }
    if let Some(base) = &options.error_uri_base {
        builder = builder.error_uri_base(base);
    }
    // The public base URL: the device endpoint's `verification_uri` (the
    // issuer's page) and every other absolute URL come from it, never
    // from the request's `Host`.
    if let Some(issuer) = &options.issuer {
        builder = builder.issuer(issuer);
    }
    (builder.build(), families)
}

/// The refusal of a refresh token whose authorization was revoked: GitHub's
/// `bad_refresh_token` with its page, or RFC 6749's `invalid_grant`.
fn revoked_grant_error(github: bool) -> PolicyError {
    let error = if github {
        PolicyError::new(
            "bad_refresh_token",
            "The refresh token passed is incorrect or expired.",
        )
        .and_then(|error| {
            error.with_uri(
                "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-refresh-token",
            )
        })
    } else {
        PolicyError::new("invalid_grant", "the authorization was revoked")
    };
    error.unwrap_or_else(|_| PolicyError::server_error())
}

/// Asks `store` whether a refresh token is still known (unused or rotated,
/// its family not revoked): the access tokens issued with it live as long.
/// Asks `store` whether a refresh token is still known (unused or rotated,
/// its family not revoked), and revokes a family there.
type Families = (RefreshAlive, RevokeFamily);

fn families<S: RefreshStore + Clone + Send + Sync + 'static>(store: S) -> Families {
    let alive = store.clone();
    let alive: RefreshAlive = Arc::new(move |key: CodeKey| {
        let store = alive.clone();
        Box::pin(async move {
            let found = store.find(&key).await?;
            Ok(!matches!(found, Lookup::Unknown))
        })
    });
    let revoke: RevokeFamily = Arc::new(move |family: String| {
        let store = store.clone();
        Box::pin(async move { store.revoke_family(&family).await })
    });
    (alive, revoke)
}

/// What the demo's handlers share.
#[derive(Clone)]
struct Demo {
    /// The metadata document, rendered from the gate's configuration for
    /// the issuer.
    metadata: Bytes,
    /// Keys the device page's confirmation tokens (random per process, so
    /// a restart voids the pages open in browsers).
    page_key: [u8; 32],
    /// The issuer's origin: the only one the device page takes a POST from.
    origin: Arc<str>,
    /// The device page's path as browsers see it: `/login/device`, behind
    /// the issuer's path if it has one (a proxy that strips a prefix).
    page_path: Arc<str>,
    /// Whether the session cookie is `Secure` (an `https` issuer).
    secure_cookie: bool,
    dialect: Dialect,
    gated: bool,
    authorizer: Authorizer,
    refresh_tokens: RefreshTokens,
    devices: Devices,
    /// The access tokens minted, and what the revocation and introspection
    /// handlers need.
    lifecycle: Lifecycle,
    /// The one user every approval is for (`--user`).
    user: Arc<DemoUser>,
}

impl FromRef<Demo> for Api {
    fn from_ref(demo: &Demo) -> Self {
        Self {
            lifecycle: demo.lifecycle.clone(),
            user: Arc::clone(&demo.user),
        }
    }
}

impl FromRef<Demo> for Lifecycle {
    fn from_ref(demo: &Demo) -> Self {
        demo.lifecycle.clone()
    }
}

impl Demo {
    /// The token the confirmation page for `user_code` carries in the
    /// browser session `session`: bound to both, so a token fetched in
    /// one session (an attacker's) is worthless in another (the victim's).
    fn confirmation(&self, session: &str, user_code: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.page_key)
            .expect("HMAC takes a key of any length");
        // The session is of fixed length, so the two cannot run together.
        mac.update(session.as_bytes());
        mac.update(user_code.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `submitted` (hex) is the confirmation token for `user_code`
    /// in `session`, compared in constant time.
    fn confirms(&self, session: &str, user_code: &str, submitted: Option<&str>) -> bool {
        let Some(submitted) = submitted.and_then(|token| hex::decode(token).ok()) else {
            return false;
        };
        // Slices of different lengths compare unequal.
        self.confirmation(session, user_code)[..]
            .ct_eq(&submitted)
            .into()
    }

    /// Why a POST to the device page is refused as cross-site, if it is.
    ///
    /// A browser names the page that sent a form in `Origin`; it must be
    /// the issuer's. Without `Origin`, `Sec-Fetch-Site` must say the
    /// request came from the same origin or from the person (`none`).
    /// With neither it is no browser, and cannot ride a person's session:
    /// the cookie and its token decide alone.
    fn cross_site(&self, headers: &HeaderMap) -> Option<&'static str> {
        let mut origins = headers.get_all(header::ORIGIN).iter();
        match (origins.next(), origins.next()) {
            (Some(origin), None) => {
                return (!origin
                    .as_bytes()
                    .eq_ignore_ascii_case(self.origin.as_bytes()))
                .then_some("the form was sent from another site");
            }
            (Some(_), Some(_)) => return Some("the request names two origins"),
            (None, _) => {}
        }
        let mut sites = headers.get_all("sec-fetch-site").iter();
        match (sites.next(), sites.next()) {
            (Some(site), None) => (!matches!(site.as_bytes(), b"same-origin" | b"none"))
                .then_some("the form was sent from another site"),
            (Some(_), Some(_)) => Some("the request names two sites"),
            (None, _) => None,
        }
    }

    /// The `Set-Cookie` value that starts the browser session `session`.
    fn session_cookie(&self, session: &str) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        let path = &self.page_path;
        format!("{SESSION_COOKIE}={session}; Path={path}; HttpOnly; SameSite=Strict{secure}")
    }
}

/// The browser's device-page session: the value of its session cookie,
/// when it sent exactly one well-formed one. Two (one planted by a sibling
/// domain, say) leave it without a session rather than guessing which.
fn session(headers: &HeaderMap) -> Option<String> {
    let mut found = None;
    for line in headers.get_all(header::COOKIE) {
        let Ok(line) = line.to_str() else { continue };
        for pair in line.split(';') {
            let Some((name, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if name != SESSION_COOKIE {
                continue;
            }
            let well_formed = value.len() == 64
                && value
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if found.is_some() || !well_formed {
                return None;
            }
            found = Some(value.to_owned());
        }
    }
    found
}

/// Approves every valid request for the demo user.
async fn authorize(State(demo): State<Demo>, request: Request) -> Response<Body> {
    let query = request.uri().query().unwrap_or("");
    let approved = match demo.authorizer.validate(query).await {
        Ok(request) => demo.authorizer.approve(&request, &demo.user.login).await,
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
    let access_token = format!("gho_{}", random_hex::<20>());
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
    // Kept (under its digest) for revocation and introspection, with the
    // refresh token beside it, whose family it lives and dies with.
    if let Some(grant) = grant {
        demo.lifecycle.tokens.insert(
            &access_token,
            Issued::of(grant, refresh_token.as_deref()),
            SystemTime::now(),
        );
    }
    // The gate checked the request's DPoP proof (RFC 9449) and hands over
    // its key's thumbprint: the token is bound to that key. The demo has
    // no resource server of its own, so the binding is the client's to
    // honour; the registry keeps the thumbprint, and introspection reports
    // it as `cnf.jkt` for a resource server to ask a proof of the same key
    // with every use.
    let token_type = match grant.and_then(ValidatedGrant::dpop_jkt) {
        Some(_) => "DPoP",
        None => "bearer",
    };
    let mut fields = vec![
        ("access_token", FieldValue::from(access_token.as_str())),
        ("token_type", token_type.into()),
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
async fn serve_metrics(
    State(prometheus): State<metrics_exporter_prometheus::PrometheusHandle>,
) -> Response<Body> {
    let mut response = Response::new(Body::from(prometheus.render()));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// RFC 8414 metadata for the issuer. The same for every request (never
/// built from `Host`), so a shared cache may keep it.
async fn metadata(State(demo): State<Demo>) -> Response<Body> {
    let mut response = Response::new(Body::from(demo.metadata));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// The page where a person types the code their device shows. It starts a
/// session for a browser that has none: the confirmation token is bound to
/// it.
async fn device_page(
    State(demo): State<Demo>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response<Body> {
    let prefill = query
        .get("user_code")
        .map(|c| escape_html(c))
        .unwrap_or_default();
    let page = &demo.page_path;
    let mut response = html(
        StatusCode::OK,
        "Activate a device",
        &format!(
            r#"<p>Enter the code displayed on your device.</p>
<form method="post" action="{page}">
  <input name="user_code" value="{prefill}" placeholder="WDJB-MJHT" autocomplete="off" autofocus required>
  <button>Continue</button>
</form>"#
        ),
    );
    if session(&headers).is_none() {
        let cookie = demo.session_cookie(&random_hex::<32>());
        // Hex and fixed attributes: always a valid header value.
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
    }
    response
}

#[derive(serde::Deserialize)]
struct DeviceForm {
    user_code: String,
    decision: Option<String>,
    confirm: Option<String>,
}

/// Two steps: the code the person typed shows who asks for what; only that
/// confirmation page (its token ties the decision to the code shown and to
/// the browser's session) can approve or deny.
async fn device_decision(
    State(demo): State<Demo>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<DeviceForm>, FormRejection>,
) -> Response<Body> {
    // Failed user codes count against this address (the connection's:
    // the demo trusts no forwarding header).
    let peer = Some(peer.ip());
    let page = &demo.page_path;
    // Checked before the form is even read: a cross-site POST learns
    // nothing and decides nothing.
    if let Some(reason) = demo.cross_site(&headers) {
        return html(
            StatusCode::FORBIDDEN,
            "Request refused",
            &format!("<p>Refused: {reason}.</p><p><a href=\"{page}\">Open the device page</a></p>"),
        );
    }
    let Some(session) = session(&headers) else {
        return html(
            StatusCode::FORBIDDEN,
            "Start on the device page",
            &format!(
                "<p>Your browser has no session for this page (cookies off, or it has expired).</p><p><a href=\"{page}\">Start again</a></p>"
            ),
        );
    };
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            return html(
                rejection.status(),
                "Bad request",
                "<p>The form could not be read.</p>",
            );
        }
    };
    let code = escape_html(&form.user_code);
    let pending = match demo.devices.lookup(&form.user_code, peer).await {
        Ok(pending) => pending,
        Err(error) => return verify_failed(&error),
    };
    let Some(pending) = pending else {
        return html(
            StatusCode::NOT_FOUND,
            "Unknown code",
            &format!(
                "<p>No pending request has the code <b>{code}</b>. It may have expired.</p><p><a href=\"{page}\">Try again</a></p>"
            ),
        );
    };
    let client = escape_html(&pending.client_id);
    // A login is letters, digits and hyphens (`parse_login`): nothing to
    // escape, but escaped all the same.
    let user = escape_html(&demo.user.login);
    let Some(decision) = &form.decision else {
        let confirm = hex::encode(demo.confirmation(&session, &pending.user_code));
        let scopes = if pending.scopes.is_empty() {
            "no particular scope".to_owned()
        } else {
            escape_html(&pending.scopes.join(", "))
        };
        return html(
            StatusCode::OK,
            "Authorize a device",
            &format!(
                r#"<p><b>{client}</b> asks to act as <b>{user}</b> with {scopes}.</p>
<form method="post" action="{page}">
  <input type="hidden" name="user_code" value="{code}">
  <input type="hidden" name="confirm" value="{confirm}">
  <button name="decision" value="approve">Approve</button>
  <button name="decision" value="deny">Deny</button>
</form>"#
            ),
        );
    };
    // Without the confirmation page's token for this session, a decision
    // could be forged by another site (CSRF, with a token fetched in the
    // attacker's own session) or made without seeing who asks.
    if !demo.confirms(&session, &pending.user_code, form.confirm.as_deref()) {
        return html(
            StatusCode::FORBIDDEN,
            "Confirm first",
            &format!(
                "<p>Please review the request before deciding.</p><p><a href=\"{page}\">Start again</a></p>"
            ),
        );
    }
    let decided = match decision.as_str() {
        "approve" => demo
            .devices
            .approve(&form.user_code, &demo.user.login, peer)
            .await
            .map(|ok| (ok, "approved")),
        "deny" => demo
            .devices
            .deny(&form.user_code, peer)
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
        Err(error) => verify_failed(&error),
    }
}

/// Too many wrong codes from this address (`429` with `Retry-After`), or a
/// store that failed (`500`).
fn verify_failed(error: &VerifyError) -> Response<Body> {
    if let Some(seconds) = error.retry_after_secs() {
        let mut response = html(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "<p>Too many codes that match no request came from your address. Please wait and try again later.</p>",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    tracing::error!(%error, "device store failed");
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Error",
        "<p>Please try again.</p>",
    )
}

/// A device page answer (`page_headers` adds what keeps it safe).
fn html(status: StatusCode, title: &str, body: &str) -> Response<Body> {
    let mut response = Html(page(title, body)).into_response();
    *response.status_mut() = status;
    response
}

/// On every answer of the device page, whatever made it (a handler, an
/// extractor's rejection, the 405 for another method): no other site may
/// frame it (clickjacking) and no cache keeps it (it carries tokens).
async fn page_headers(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; form-action 'self'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
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

/// `N` random bytes, in hex.
fn random_hex<const N: usize>() -> String {
    let mut random = [0u8; N];
    getrandom::fill(&mut random).expect("the operating system's random source");
    hex::encode(random)
}
