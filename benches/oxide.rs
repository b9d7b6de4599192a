//! tokengate side by side with oxide-auth (issue 6): the same token request
//! answered in process by each library.
//!
//! Two scenarios, each a criterion group:
//!
//! - `exchange`: a successful authorization-code exchange. A confidential
//!   client `app` with secret `s3cret` and one registered redirect URI; a
//!   code issued beforehand (outside the timed part) through each library's
//!   own authorization side, bound to that redirect URI, no PKCE; the token
//!   request authenticates the client with HTTP Basic and repeats the
//!   redirect URI. Both answer `200` with an access token, a refresh token,
//!   `token_type`, `expires_in` and `scope` in JSON.
//! - `wrong_secret`: the same request with a wrong secret (`401`).
//!
//! Each runs three ways: tokengate (secrets stored as SHA-256 digests,
//! compared in constant time: its only secret handling), oxide-auth with its
//! default `ClientMap` password policy (Argon2, `rust-argon2`'s RFC 9106
//! low-memory parameters: Argon2id, 64 MiB, 3 passes, 1 lane, so one
//! thread), and oxide-auth with a `PasswordPolicy` doing what tokengate
//! does (SHA-256 and a constant-time comparison), to compare like with like.
//! Argon2 takes a large fraction of a second per request, so it runs few
//! iterations.
//!
//! Both sides start from the same `http::Request<String>` and end with an
//! `http::Response`:
//!
//! - tokengate: `TokenGate` over an inner service that mints the token: a
//!   random access token and a refresh token from
//!   `TokenGateLayer::refresh_tokens`, answered with `ResponseFormat`.
//! - oxide-auth: what a web frontend does around `frontends::simple`: the
//!   form body is parsed into its `Request` and the `Authorization` header
//!   copied, a `Generic` endpoint (`ClientMap`, `AuthMap` and `TokenMap`,
//!   both with a 32-byte `RandomGenerator`) runs the access-token flow, and
//!   its `Response` becomes an `http::Response`.
//!
//! What still differs, per request:
//!
//! - tokengate checks more: method, path, content type, body limit, repeated
//!   parameters; the adapter around oxide-auth only parses the body.
//! - tokengate keys codes and refresh tokens by their SHA-256: two digests
//!   per exchange on top of the secret's; oxide-auth keeps them in the clear.
//! - tokengate's memory store takes uncontended locks; oxide-auth's
//!   primitives are borrowed `&mut` here, without the lock a server needs.
//! - tokengate's handler draws three random values (access token, refresh
//!   token and its family) and stores one; `TokenMap` draws two, stores two.
//!
//! Futures are polled once with a no-op waker, as in `benches/gate.rs`. After
//! each group, each pair is timed again with `Instant` over interleaved
//! batches and one line gives both medians and their ratio.

#[path = "support/mod.rs"]
mod support;

use std::{cell::RefCell, collections::HashMap, convert::Infallible, time::Duration};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use criterion::{BatchSize, Criterion, SamplingMode, criterion_main};
use http::{
    Request, Response, StatusCode,
    header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE},
};
use http_body_util::BodyExt;
use oxide_auth::{
    endpoint::{OwnerConsent, Solicitation},
    frontends::simple::{
        endpoint::{FnSolicitor, Generic, Vacant},
        request::{Body as OxideBody, Request as OxideRequest, Status as OxideStatus},
    },
    primitives::{
        authorizer::AuthMap,
        generator::RandomGenerator,
        issuer::TokenMap,
        registrar::{
            Client as OxideClient, ClientMap, PasswordPolicy, RegisteredUrl, RegistrarError,
        },
    },
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use support::{Side, call, compare, comparing, config, now_or_never};
use tokengate::{
    Client, FieldValue, MemoryStore, RequestBody, ResponseBody, ResponseFormat, TokenGateLayer,
    ValidatedGrant, authorize::AuthorizationRequest, authorize::Authorizer,
    builder::DEFAULT_TOKEN_PATH, clock::ManualClock,
};
use tower::{Layer, Service, service_fn};

const CLIENT_ID: &str = "app";
const SECRET: &str = "s3cret";
const WRONG_SECRET: &str = "wrong";
const REDIRECT_URI: &str = "https://app.example/cb";
/// oxide-auth's `ClientMap` grants a client its default scope; tokengate
/// grants what the authorization request asked for. Both grant this one.
const SCOPE: &str = "default";
const SUBJECT: &str = "user-42";
/// Random bytes in every code and token, on both sides (tokengate's are
/// fixed at 32).
const TOKEN_BYTES: usize = 32;

/// How far tokengate's clock moves per minted code: redeemed codes stay as
/// replay markers until they expire (600 s), so the code store holds about
/// 600 entries however many iterations run (as in `benches/gate.rs`).
const CLOCK_STEP: Duration = Duration::from_secs(1);
/// tokengate's refresh tokens live this long here (default 30 days), so the
/// store sweeps them and holds about 60-90 of them instead of one per
/// iteration.
const REFRESH_LIFETIME: Duration = Duration::from_secs(60);
/// oxide-auth's `TokenMap` never forgets a token; it is replaced by an empty
/// one (untimed) after this many codes, to bound memory the same way.
const TOKEN_MAP_RESET: u32 = 1024;

/// Codes minted ahead of their redemption.
const BATCH: u64 = 64;
/// Wall time of each `Instant` comparison of the two SHA-256 sides.
const RATIO_BUDGET: Duration = Duration::from_millis(1500);
/// At least this many batches of each side.
const RATIO_MIN_ROUNDS: usize = 21;
/// Argon2 requests timed one by one in its `Instant` comparison.
const ARGON2_ROUNDS: usize = 11;
/// tokengate's batch against Argon2: each Argon2 request sweeps 64 MiB
/// through the caches, and a larger batch spreads that cold start thin.
const ARGON2_GATE_BATCH: u64 = 256;

/// The token request both libraries receive: HTTP Basic client
/// authentication, the code and the redirect URI in the form body.
fn token_request(secret: &str, code: &str) -> Request<String> {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", REDIRECT_URI)
        .finish();
    let credentials = STANDARD.encode(format!("{CLIENT_ID}:{secret}"));
    Request::post(DEFAULT_TOKEN_PATH)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(AUTHORIZATION, format!("Basic {credentials}"))
        .body(body)
        .expect("valid request")
}

/// A rejected request: wrong secret, for a code nobody issued (neither
/// library looks at the code before authenticating the client).
fn wrong_secret_request() -> Request<String> {
    token_request(WRONG_SECRET, "some-code")
}

fn random_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).expect("randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------- tokengate

/// The gate over a memory store holding the client, on a manual clock, and
/// one validated authorization request to mint codes from.
struct Gate {
    layer: TokenGateLayer,
    authorizer: Authorizer,
    request: AuthorizationRequest,
    clock: ManualClock,
}

impl Gate {
    fn new() -> Self {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(clock.clone());
        store.insert_client(
            Client::confidential(CLIENT_ID)
                .with_secret(SECRET)
                .with_redirect_uri(REDIRECT_URI),
        );
        let layer = TokenGateLayer::builder()
            .store(store)
            .issuer("https://auth.example.com")
            .clock(clock.clone())
            .refresh_lifetime(REFRESH_LIFETIME)
            // The wrong-secret case repeats one client's failure; the
            // lockout would answer it 429 after ten.
            .lockout(None)
            .build();
        let authorizer = layer.authorizer();
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("scope", SCOPE)
            .finish();
        let request = now_or_never(authorizer.validate(&query)).expect("valid authorization");
        Self {
            layer,
            authorizer,
            request,
            clock,
        }
    }

    /// `TokenGate` over the application's token handler: it mints an access
    /// token, issues a refresh token through the layer and answers JSON.
    fn service(
        &self,
    ) -> impl Service<Request<String>, Response = Response<ResponseBody<String>>, Error = Infallible>
    + Clone {
        let refresh = self.layer.refresh_tokens();
        self.layer
            .layer(service_fn(move |request: Request<RequestBody<String>>| {
                let refresh = refresh.clone();
                async move {
                    let extensions = request.extensions();
                    let grant = extensions
                        .get::<ValidatedGrant>()
                        .expect("the gate validated the grant");
                    let format = *extensions
                        .get::<ResponseFormat>()
                        .expect("the gate negotiated the format");
                    let access_token = random_token();
                    let refresh_token = refresh
                        .issue(grant)
                        .await
                        .expect("the memory store issues refresh tokens");
                    let scope = grant.scopes().join(" ");
                    Ok::<_, Infallible>(format.response(&[
                        ("access_token", FieldValue::from(access_token.as_str())),
                        ("refresh_token", refresh_token.as_str().into()),
                        ("token_type", "bearer".into()),
                        ("expires_in", 3600.into()),
                        ("scope", scope.as_str().into()),
                    ]))
                }
            }))
    }

    /// A token request redeeming a code minted just now.
    fn exchange_request(&self) -> Request<String> {
        self.clock.advance(CLOCK_STEP);
        let approval = now_or_never(self.authorizer.approve(&self.request, SUBJECT))
            .expect("the memory store issues codes");
        token_request(SECRET, approval.code())
    }
}

// --------------------------------------------------------------- oxide-auth

/// oxide-auth's `PasswordPolicy` with tokengate's secret handling: the
/// SHA-256 digest is stored and compared in constant time.
struct Sha256Policy;

impl PasswordPolicy for Sha256Policy {
    fn store(&self, _client_id: &str, passphrase: &[u8]) -> Vec<u8> {
        Sha256::digest(passphrase).to_vec()
    }

    fn check(
        &self,
        _client_id: &str,
        passphrase: &[u8],
        stored: &[u8],
    ) -> Result<(), RegistrarError> {
        let presented = Sha256::digest(passphrase);
        if bool::from(presented.as_slice().ct_eq(stored)) {
            Ok(())
        } else {
            Err(RegistrarError::Unspecified)
        }
    }
}

/// How `ClientMap` stores and checks secrets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hashing {
    /// `ClientMap`'s default policy.
    Argon2,
    /// [`Sha256Policy`].
    Sha256,
}

/// oxide-auth's in-memory primitives, as its examples set them up.
struct Oxide {
    registrar: ClientMap,
    authorizer: AuthMap<RandomGenerator>,
    issuer: TokenMap<RandomGenerator>,
    minted: u32,
}

impl Oxide {
    fn new(hashing: Hashing) -> Self {
        let mut registrar = ClientMap::new();
        if hashing == Hashing::Sha256 {
            registrar.set_password_policy(Sha256Policy);
        }
        registrar.register_client(OxideClient::confidential(
            CLIENT_ID,
            RegisteredUrl::Exact(REDIRECT_URI.parse().expect("a valid URL")),
            SCOPE.parse().expect("a valid scope"),
            SECRET.as_bytes(),
        ));
        Self {
            registrar,
            authorizer: AuthMap::new(RandomGenerator::new(TOKEN_BYTES)),
            issuer: TokenMap::new(RandomGenerator::new(TOKEN_BYTES)),
            minted: 0,
        }
    }

    /// A token request redeeming a code minted just now by oxide-auth's own
    /// authorization flow, approved by `SUBJECT`.
    fn exchange_request(&mut self) -> Request<String> {
        self.minted += 1;
        if self.minted.is_multiple_of(TOKEN_MAP_RESET) {
            self.issuer = TokenMap::new(RandomGenerator::new(TOKEN_BYTES));
        }
        let query = [
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("scope", SCOPE),
        ];
        let request = OxideRequest {
            query: query
                .iter()
                .map(|&(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
            ..OxideRequest::default()
        };
        let solicitor = FnSolicitor(|_: &mut OxideRequest, _: Solicitation<'_>| {
            OwnerConsent::Authorized(SUBJECT.to_owned())
        });
        let response = Generic {
            registrar: &self.registrar,
            authorizer: &mut self.authorizer,
            issuer: Vacant,
            solicitor,
            scopes: Vacant,
            response: Vacant,
        }
        .authorization_flow()
        .execute(request)
        .expect("the authorization flow runs");
        let code = response
            .location
            .as_ref()
            .and_then(|location| {
                location
                    .query_pairs()
                    .find(|(name, _)| name == "code")
                    .map(|(_, code)| code.into_owned())
            })
            .expect("the redirect carries a code");
        token_request(SECRET, &code)
    }

    /// The token endpoint: the request into oxide-auth's simple frontend,
    /// the access-token flow, its answer back into HTTP.
    fn token(&mut self, request: Request<String>) -> Response<String> {
        let request = OxideRequest {
            query: HashMap::new(),
            urlbody: form_urlencoded::parse(request.body().as_bytes())
                .into_owned()
                .collect(),
            auth: request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
        };
        let answer = Generic {
            registrar: &self.registrar,
            authorizer: &mut self.authorizer,
            issuer: &mut self.issuer,
            solicitor: Vacant,
            scopes: Vacant,
            response: Vacant,
        }
        .access_token_flow()
        .execute(request)
        .expect("the access-token flow runs");

        let mut response = Response::builder().status(match answer.status {
            OxideStatus::Ok => StatusCode::OK,
            OxideStatus::Redirect => StatusCode::FOUND,
            OxideStatus::BadRequest => StatusCode::BAD_REQUEST,
            OxideStatus::Unauthorized => StatusCode::UNAUTHORIZED,
        });
        if let Some(challenge) = &answer.www_authenticate {
            response = response.header(WWW_AUTHENTICATE, challenge);
        }
        let body = match answer.body {
            Some(OxideBody::Json(json)) => {
                response = response.header(CONTENT_TYPE, "application/json");
                json
            }
            Some(OxideBody::Text(text)) => {
                response = response.header(CONTENT_TYPE, "text/plain; charset=utf-8");
                text
            }
            None => String::new(),
        };
        response.body(body).expect("a valid response")
    }
}

// ---------------------------------------------------------------- timing

/// Nanoseconds in a readable unit.
fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn summary(scenario: &str, hashing: &str, oxide: &str, gate_ns: f64, oxide_ns: f64) {
    println!(
        "{scenario}, {hashing}: tokengate (SHA-256) {}, oxide-auth ({oxide}) {} \
         (ratio oxide-auth/tokengate {:.2})",
        human(gate_ns),
        human(oxide_ns),
        oxide_ns / gate_ns,
    );
}

/// Runs one scenario: the criterion group, then the two `Instant`
/// comparisons (tokengate vs oxide-auth with SHA-256, then with Argon2).
fn scenario<IG, OG, IO>(
    c: &mut Criterion,
    name: &str,
    gate_input: impl Fn() -> IG + Copy,
    gate_routine: impl FnMut(IG) -> Response<OG> + Clone,
    oxide_input: impl Fn(&RefCell<Oxide>) -> IO,
    oxide_routine: impl Fn(&RefCell<Oxide>, IO) -> Response<String>,
    [sha256, argon2]: [&RefCell<Oxide>; 2],
) {
    let mut ran = [false; 3];
    let mut group = c.benchmark_group(name);
    group.bench_function("tokengate", |bencher| {
        ran[0] = true;
        bencher.iter_batched(
            gate_input,
            gate_routine.clone(),
            BatchSize::NumIterations(BATCH),
        );
    });
    group.bench_function("oxide_auth_sha256", |bencher| {
        ran[1] = true;
        bencher.iter_batched(
            || oxide_input(sha256),
            |input| oxide_routine(sha256, input),
            BatchSize::NumIterations(BATCH),
        );
    });
    // Argon2: one request per sample, ten samples.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("oxide_auth_argon2", |bencher| {
        ran[2] = true;
        bencher.iter_batched(
            || oxide_input(argon2),
            |input| oxide_routine(argon2, input),
            BatchSize::PerIteration,
        );
    });
    group.finish();

    if comparing(&ran) {
        let (gate_ns, oxide_ns) = compare(
            Side {
                setup: gate_input,
                routine: gate_routine.clone(),
                batch: BATCH,
            },
            Side {
                setup: || oxide_input(sha256),
                routine: |input| oxide_routine(sha256, input),
                batch: BATCH,
            },
            RATIO_MIN_ROUNDS,
            RATIO_BUDGET,
        );
        summary(name, "equal hashing", "SHA-256 policy", gate_ns, oxide_ns);
        let (gate_ns, oxide_ns) = compare(
            Side {
                setup: gate_input,
                routine: gate_routine,
                batch: ARGON2_GATE_BATCH,
            },
            Side {
                setup: || oxide_input(argon2),
                routine: |input| oxide_routine(argon2, input),
                batch: 1,
            },
            ARGON2_ROUNDS,
            Duration::ZERO,
        );
        summary(
            name,
            "default hashing",
            "Argon2, default",
            gate_ns,
            oxide_ns,
        );
        println!();
    }
}

/// Checks, untimed, that every side answers as the scenario says.
fn check(gate: &Gate, oxides: [&RefCell<Oxide>; 2]) {
    let mut service = gate.service();
    let text = |response: Response<ResponseBody<String>>| {
        let body = now_or_never(response.into_body().collect()).expect("an infallible body");
        String::from_utf8(body.to_bytes().to_vec()).expect("a UTF-8 body")
    };
    let response = call(&mut service, gate.exchange_request());
    assert_eq!(response.status(), StatusCode::OK);
    assert!(text(response).contains("\"refresh_token\""));
    let response = call(&mut service, wrong_secret_request());
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    for oxide in oxides {
        let request = oxide.borrow_mut().exchange_request();
        let response = oxide.borrow_mut().token(request);
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.body().contains("\"refresh_token\""));
        let response = oxide.borrow_mut().token(wrong_secret_request());
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

fn exchange(c: &mut Criterion, gate: &Gate, oxides: [&RefCell<Oxide>; 2]) {
    let mut service = gate.service();
    scenario(
        c,
        "exchange",
        || gate.exchange_request(),
        move |request| call(&mut service, request),
        |oxide| oxide.borrow_mut().exchange_request(),
        |oxide, request| oxide.borrow_mut().token(request),
        oxides,
    );
}

fn wrong_secret(c: &mut Criterion, gate: &Gate, oxides: [&RefCell<Oxide>; 2]) {
    let mut service = gate.service();
    scenario(
        c,
        "wrong_secret",
        wrong_secret_request,
        move |request| call(&mut service, request),
        |_| wrong_secret_request(),
        |oxide, request| oxide.borrow_mut().token(request),
        oxides,
    );
}

/// Every group, with this file's configuration under criterion's
/// command-line options (what `criterion_group!` would generate, but
/// private and documented).
fn benches() {
    let mut criterion = config().configure_from_args();
    let gate = Gate::new();
    let sha256 = RefCell::new(Oxide::new(Hashing::Sha256));
    let argon2 = RefCell::new(Oxide::new(Hashing::Argon2));
    check(&gate, [&sha256, &argon2]);
    exchange(&mut criterion, &gate, [&sha256, &argon2]);
    wrong_secret(&mut criterion, &gate, [&sha256, &argon2]);
}

criterion_main!(benches);
