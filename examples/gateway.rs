//! An API gateway that puts the gate in front of an upstream OAuth issuer it
//! does not own: a reverse proxy on hyper 1 (server) and hyper-util's legacy
//! client (HTTP/1 to the upstream).
//!
//! ```text
//! cargo run --example gateway -- --upstream http://127.0.0.1:PORT
//!                                [--addr 127.0.0.1:8081] [--clients FILE]
//!                                [--dialect github|rfc6749]
//! ```
//!
//! It prints `listening on http://ADDR` once it accepts connections
//! (`--addr 127.0.0.1:0` picks a free port). The clients file has the demo
//! server's format (see `examples/server/main.rs` or the README); without it the
//! demo client is registered (`demo-client` / `demo-secret`, any loopback
//! redirect URI). The dialect defaults to `github`. A bad flag or clients
//! file exits with code 2. Try it in front of the demo server without its
//! gate, which hands a token to anyone and so stands in for an issuer that
//! trusts its gateway:
//!
//! ```text
//! cargo run --example server -- --no-gate --addr 127.0.0.1:8080 --issuer http://127.0.0.1:8081
//! cargo run --example gateway -- --upstream http://127.0.0.1:8080
//! ```
//!
//! and run the README's curl round trip against `127.0.0.1:8081` (the
//! demo's `--issuer` makes its metadata name the gateway, where clients
//! reach it).
//!
//! # Who owns the codes
//!
//! The gate redeems a code by looking it up in its own store, so a code the
//! upstream minted would be unknown to the gateway and every exchange would
//! be refused. Proxying the authorize endpoint upstream therefore cannot
//! work; sharing the upstream's code store is not possible either, since the
//! gateway does not own the issuer. The gateway instead owns the part of the
//! issuer that validates and mints codes:
//!
//! - `GET /login/oauth/authorize` is served here, by
//!   [`TokenGateLayer::authorizer`] over the gateway's own `MemoryStore`
//!   (clients and codes). It checks the client, redirect URI, scope and PKCE
//!   challenge and, standing in for a login and consent page, approves the
//!   request for `demo-user` at once: `302` to the redirect URI with `code`
//!   and `state`. It never reaches the upstream.
//! - `POST /login/oauth/access_token` runs behind the gate, which redeems the
//!   code (single use, PKCE, redirect URI) and authenticates the client.
//!   Every rejection is answered here and never leaves the gateway. A valid
//!   request is forwarded to the upstream token endpoint as it came: same
//!   method, path and query, headers minus the hop-by-hop ones, and the body
//!   byte for byte (the gate hands it on unchanged). The upstream mints the
//!   token and its answer is relayed. So that the upstream can mint a token
//!   for the right user, the gateway adds what it validated:
//!   `X-Tokengate-Client-Id`, `X-Tokengate-Subject` (absent for client
//!   credentials) and `X-Tokengate-Scope` (space-separated). Headers starting
//!   with `x-tokengate-` are removed from every incoming request first, so a
//!   client cannot forge them; the upstream must only be reachable through
//!   the gateway.
//! - Every other path (metadata, APIs, pages) is proxied upstream as is.
//!
//! The gateway keeps no refresh tokens or device codes: they would be minted
//! upstream, where the gateway cannot see them. It therefore answers the
//! refresh and device grants with `unsupported_grant_type` itself, and the
//! device authorization endpoint, not being the gate's here, is proxied like
//! any other path. The authorization-code grant (with PKCE) and, for clients
//! registered for it, client credentials are served.
//!
//! # Forwarding
//!
//! Hop-by-hop headers (`Connection` and the headers it names, `Keep-Alive`,
//! `Proxy-Authenticate`, `Proxy-Authorization`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`) are dropped both ways. `Host` is kept, so
//! an upstream that renders URLs from it renders them for the address
//! clients use (the demo server renders its own from `--issuer` instead);
//! `X-Forwarded-For` gets the client's address. The upstream URL may
//! carry a path prefix, put before every forwarded path.
//!
//! An upstream that cannot be reached, or fails mid-answer, gets `502 Bad
//! Gateway`; one that does not answer within 30 s gets `504 Gateway
//! Timeout`. A token request answers with an OAuth `server_error` body in the
//! format the client negotiated (the gate's [`ResponseFormat`] in the request
//! extensions); other paths with a plain-text body. The code of such a token
//! request has been redeemed already, like any code whose exchange failed
//! after the checks: the user authorizes again.

use std::{convert::Infallible, net::SocketAddr, process::ExitCode, time::Duration};

use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header,
};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    client::legacy::{Client as HttpClient, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo, TokioTimer},
};
use tokengate::{
    Client, Dialect, FieldValue, GrantType, MemoryStore, RequestBody, ResponseFormat,
    TokenGateLayer, ValidatedGrant, authorize::Authorizer, client::RedirectPolicy,
};
use tower::{ServiceBuilder, ServiceExt, service_fn};

const USAGE: &str = "usage: gateway --upstream http://HOST:PORT[/PREFIX] [--addr 127.0.0.1:8081]
               [--clients FILE] [--dialect github|rfc6749]";
const AUTHORIZE_PATH: &str = "/login/oauth/authorize";
const DEMO_CLIENT_ID: &str = "demo-client";
const DEMO_CLIENT_SECRET: &str = "demo-secret";
const DEMO_REDIRECT_URI: &str = "http://127.0.0.1/callback";
/// Whom the authorize endpoint approves: the stand-in for a logged-in user.
const DEMO_USER: &str = "demo-user";
/// How long the upstream may take to answer (its headers).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to the upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The prefix of the headers carrying the validated grant upstream.
const GRANT_HEADER_PREFIX: &str = "x-tokengate-";
const CLIENT_ID_HEADER: HeaderName = HeaderName::from_static("x-tokengate-client-id");
const SUBJECT_HEADER: HeaderName = HeaderName::from_static("x-tokengate-subject");
const SCOPE_HEADER: HeaderName = HeaderName::from_static("x-tokengate-scope");
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Every body the gateway answers with: the upstream's, or its own.
type Body = BoxBody<Bytes, hyper::Error>;
/// The client to the upstream: HTTP/1 over plain TCP.
type Upstream = HttpClient<HttpConnector, RequestBody<Incoming>>;

struct Options {
    addr: SocketAddr,
    upstream: Uri,
    dialect: Dialect,
    clients: Option<String>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 8081));
    let mut upstream = None;
    let mut dialect = Dialect::GitHub;
    let mut clients = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => {
                let value = value()?;
                addr = value.parse().map_err(|_| {
                    format!("--addr: {value:?} is not an address such as 127.0.0.1:8081")
                })?;
            }
            "--upstream" => upstream = Some(parse_upstream(&value()?)?),
            "--dialect" => {
                dialect = match value()?.as_str() {
                    "github" => Dialect::GitHub,
                    "rfc6749" => Dialect::Rfc6749,
                    other => return Err(format!("--dialect: {other:?} is not github or rfc6749")),
                }
            }
            "--clients" => clients = Some(value()?),
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let upstream = upstream.ok_or("--upstream is required")?;
    Ok(Some(Options {
        addr,
        upstream,
        dialect,
        clients,
    }))
}

/// `http://host:port[/prefix]`: the client speaks plain HTTP/1 only.
fn parse_upstream(value: &str) -> Result<Uri, String> {
    let invalid = || format!("--upstream: {value:?} is not a URL such as http://127.0.0.1:8080");
    let uri: Uri = value.parse().map_err(|_| invalid())?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(invalid());
    }
    if uri.query().is_some() {
        return Err(format!("--upstream: {value:?} must not have a query"));
    }
    Ok(uri)
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

    let clients = match load_clients(options.clients.as_deref()) {
        Ok(clients) => clients,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    // Clients and codes only: refresh tokens and device codes would be
    // minted upstream, out of the gateway's sight (see the module docs).
    let store = MemoryStore::new();
    for client in clients {
        store.insert_client(client);
    }
    let layer = match TokenGateLayer::builder()
        .client_store(store.clone())
        .code_store(store)
        .dialect(options.dialect)
        // Like the demo: client credentials in both dialects, for the
        // clients registered for them.
        .github_client_credentials(true)
        .try_build()
    {
        Ok(layer) => layer,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };

    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let client: Upstream = HttpClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    let gateway = Gateway {
        client,
        upstream: options.upstream.clone(),
        authorizer: layer.authorizer(),
    };
    // The gate goes outermost: whatever reaches the token path has been
    // checked. The inner service serves the authorize endpoint and proxies
    // the rest.
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(move |request| gateway.clone().handle(request)));

    let listener = match tokio::net::TcpListener::bind(options.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", options.addr);
            return ExitCode::from(1);
        }
    };
    let addr = listener.local_addr().unwrap_or(options.addr);
    println!("upstream: {}", options.upstream);
    println!("listening on http://{addr}");
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait, then go on.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = service.clone();
        let per_request = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(Peer(peer));
            // The gate's lockout counts failures per connection address.
            request.extensions_mut().insert(peer);
            service.clone().oneshot(request)
        });
        tokio::spawn(async move {
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), per_request)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "connection error");
            }
        });
    }
}

/// The clients of `path`, or the demo client.
fn load_clients(path: Option<&str>) -> Result<Vec<Client>, String> {
    let Some(path) = path else {
        println!(
            "demo client: client_id={DEMO_CLIENT_ID} client_secret={DEMO_CLIENT_SECRET} redirect_uri={DEMO_REDIRECT_URI} (any port)"
        );
        return Ok(vec![
            Client::confidential(DEMO_CLIENT_ID)
                .with_secret(DEMO_CLIENT_SECRET)
                .with_redirect_uri(DEMO_REDIRECT_URI)
                .with_redirect_policy(RedirectPolicy::Loopback)
                .with_grant_types([GrantType::AuthorizationCode, GrantType::ClientCredentials]),
        ]);
    };
    let json = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read clients file {path}: {e}"))?;
    let clients = tokengate::store::parse_clients(&json).map_err(|e| format!("{path}: {e}"))?;
    println!("loaded {} client(s) from {path}", clients.len());
    Ok(clients)
}

/// The address of the client a request came from.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// The gateway's own part, inside the gate.
#[derive(Clone)]
struct Gateway {
    client: Upstream,
    /// `http://host:port[/prefix]`.
    upstream: Uri,
    authorizer: Authorizer,
}

/// Why the upstream gave no answer.
enum UpstreamFailure {
    /// Unreachable, refused the connection, or broke it off: 502.
    Unreachable,
    /// No answer within [`UPSTREAM_TIMEOUT`]: 504.
    TimedOut,
}

impl Gateway {
    /// The authorize endpoint here; every other request upstream. Token
    /// requests arrive only once the gate let them through.
    async fn handle(
        self,
        request: Request<RequestBody<Incoming>>,
    ) -> Result<Response<Body>, Infallible> {
        if request.uri().path() == AUTHORIZE_PATH {
            return Ok(self.authorize(&request).await);
        }
        // The gate put the negotiated format there: this is a token request.
        let format = request.extensions().get::<ResponseFormat>().copied();
        Ok(match self.forward(request).await {
            Ok(response) => response,
            Err(failure) => upstream_failure(failure, format),
        })
    }

    /// Validates the authorization request and, standing in for the login
    /// and consent page, approves it for the demo user.
    async fn authorize(&self, request: &Request<RequestBody<Incoming>>) -> Response<Body> {
        if request.method() != Method::GET {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return response;
        }
        let query = request.uri().query().unwrap_or("");
        let approved = match self.authorizer.validate(query).await {
            Ok(request) => self.authorizer.approve(&request, DEMO_USER).await,
            Err(error) => Err(error),
        };
        approved
            .map_or_else(
                |error| error.into_http_response(),
                |approval| approval.into_http_response(),
            )
            .map(full)
    }

    /// Sends `request` upstream and relays the answer.
    async fn forward(
        &self,
        request: Request<RequestBody<Incoming>>,
    ) -> Result<Response<Body>, UpstreamFailure> {
        let (mut parts, body) = request.into_parts();
        let uri = self.upstream_uri(&parts.uri).ok_or_else(|| {
            tracing::warn!(uri = %parts.uri, "cannot build the upstream URI");
            UpstreamFailure::Unreachable
        })?;
        let mut headers = std::mem::take(&mut parts.headers);
        remove_hop_by_hop(&mut headers);
        // Only the gateway speaks for the gate.
        let forged: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with(GRANT_HEADER_PREFIX))
            .cloned()
            .collect();
        for name in forged {
            headers.remove(name);
        }
        if let Some(grant) = parts.extensions.get::<ValidatedGrant>() {
            add_grant_headers(&mut headers, grant).ok_or_else(|| {
                tracing::warn!("the validated grant does not fit in headers");
                UpstreamFailure::Unreachable
            })?;
        }
        if let Some(Peer(peer)) = parts.extensions.get::<Peer>()
            && let Ok(value) = HeaderValue::from_str(&peer.ip().to_string())
        {
            headers.append(FORWARDED_FOR, value);
        }
        let mut outgoing = Request::new(body);
        *outgoing.method_mut() = parts.method;
        *outgoing.uri_mut() = uri;
        *outgoing.version_mut() = Version::HTTP_11;
        *outgoing.headers_mut() = headers;

        let response =
            match tokio::time::timeout(UPSTREAM_TIMEOUT, self.client.request(outgoing)).await {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => {
                    tracing::warn!(%error, upstream = %self.upstream, "upstream request failed");
                    return Err(UpstreamFailure::Unreachable);
                }
                Err(_) => {
                    tracing::warn!(upstream = %self.upstream, "upstream timed out");
                    return Err(UpstreamFailure::TimedOut);
                }
            };
        let (mut parts, body) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body.boxed()))
    }

    /// The upstream's scheme and authority, its path prefix, then the
    /// request's path and query.
    fn upstream_uri(&self, original: &Uri) -> Option<Uri> {
        let prefix = self.upstream.path().trim_end_matches('/');
        let path_and_query = original.path_and_query().map_or("/", |pq| pq.as_str());
        let authority = self.upstream.authority()?;
        format!("http://{authority}{prefix}{path_and_query}")
            .parse()
            .ok()
    }
}

/// The validated client, subject and scopes, for the upstream to mint the
/// token with; `None` if one does not fit in a header.
fn add_grant_headers(headers: &mut HeaderMap, grant: &ValidatedGrant) -> Option<()> {
    let value = |text: &str| HeaderValue::from_str(text).ok();
    headers.insert(CLIENT_ID_HEADER, value(grant.client().client_id())?);
    if let Some(subject) = grant.subject() {
        headers.insert(SUBJECT_HEADER, value(subject)?);
    }
    headers.insert(SCOPE_HEADER, value(&grant.scopes().join(" "))?);
    Some(())
}

/// Drops the headers meant for one connection only (RFC 9110 §7.6.1).
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

/// 502 or 504; for a token request an OAuth `server_error` in the format
/// the client negotiated.
fn upstream_failure(failure: UpstreamFailure, format: Option<ResponseFormat>) -> Response<Body> {
    let (status, description) = match failure {
        UpstreamFailure::Unreachable => (
            StatusCode::BAD_GATEWAY,
            "The upstream authorization server could not be reached.",
        ),
        UpstreamFailure::TimedOut => (
            StatusCode::GATEWAY_TIMEOUT,
            "The upstream authorization server did not answer in time.",
        ),
    };
    let Some(format) = format else {
        return text(status, &format!("{description}\n"));
    };
    let mut response = format
        .response(&[
            ("error", FieldValue::from("server_error")),
            ("error_description", description.into()),
        ])
        .map(full);
    *response.status_mut() = status;
    response
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(full(body.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}
