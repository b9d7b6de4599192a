//! What the gate costs, measured against its own baseline in the same run.
//!
//! Three groups, each with a baseline and the gated case side by side:
//!
//! - `pass_through`: `GET /other` through `TokenGate` vs the bare inner
//!   `service_fn`.
//! - `rejection`: an unknown client, a wrong secret of the right length and
//!   one of another length, all answered by the gate (the crate promises
//!   they cost the same work: docs/contract.md#client-authentication).
//! - `exchange`: a successful authorization-code exchange (client secret,
//!   bound redirect URI, PKCE S256) vs the bare handler receiving the same
//!   request. Codes are minted outside the timed part.
//!
//! Futures are polled once with a no-op waker: the memory store never
//! suspends, so a `Pending` is a bug and panics instead of spinning.
//!
//! After each group, the pair is timed again with `Instant` over interleaved
//! batches and one line gives the medians, the difference and their ratio.
//!
//! Then:
//! - `signed`: the same exchange with each way of proving possession, next
//!   to the secret one (`secret`, the `exchange` group's gate again):
//!   `private_key_jwt` assertions signed ES256 and EdDSA, and a public
//!   client's exchange with an ES256 DPoP proof. Assertions and proofs are
//!   signed beforehand, untimed. An interleaved line then gives each one's
//!   cost over the secret exchange.
//! - `jose_parts`: the steps those add, alone: an ES256 and an EdDSA
//!   signature check (`jsonwebtoken`, as the gate calls it), the strict JWS
//!   read of a proof, and a key's RFC 7638 thumbprint.
//! - `rejections`: every row of docs/contract.md's failure table the gate answers
//!   itself, each timed alone (target: at most 2 µs each).
//! - `lockout`: an exchange with the brute-force lockout on (the rest of the
//!   file turns it off) and a locked-out request's 429.
//! - `grants`: a successful refresh (read, rotate, forward) and a device poll.
//! - `lifecycle`: a refresh token revoked (RFC 7009) and one introspected
//!   (RFC 7662), each by its client with `client_secret_basic`; and a
//!   refresh granted as a reuse of a token rotated a moment before, next to
//!   a plain refresh on the same layer (reuse window on). Tokens come from
//!   untimed code exchanges, one family each.
//! - allocations: a counting allocator (`stats_alloc`) reports the heap
//!   allocations of a pass-through, a rejection and a successful exchange,
//!   gate minus bare handler (targets: 0 and at most 20).

use std::{convert::Infallible, fmt::Debug, hint::black_box, time::Duration};

use criterion::{BatchSize, Criterion, criterion_main};
use http::{Request, Response, StatusCode, header::CONTENT_TYPE};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::{Side, call, compare, comparing, config, now_or_never};
use tokengate::{
    Client, MemoryStore, RequestBody, TokenGateLayer, ValidatedGrant,
    authorize::AuthorizationRequest,
    authorize::Authorizer,
    builder::DEFAULT_TOKEN_PATH,
    client::Jwks,
    clock::{Clock, ManualClock},
    pkce::PkceChallenge,
    testing::jose::{ASSERTION_TYPE, ClientAssertion, DpopProof, TestKey},
};
use tower::{Layer, Service, service_fn};

#[path = "support/mod.rs"]
mod support;

/// Counts every heap allocation, for the allocation report.
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const CLIENT_ID: &str = "app";
const SECRET: &str = "s3cret";
const REDIRECT_URI: &str = "https://app.example/cb";
/// RFC 7636, appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const UNKNOWN_CLIENT_BODY: &str =
    "grant_type=authorization_code&code=some-code&client_id=nobody&client_secret=s3cret";
const WRONG_SECRET_BODY: &str =
    "grant_type=authorization_code&code=some-code&client_id=app&client_secret=wrong";
/// The timing trio, bodies of one length (130 bytes): an unknown client, a
/// wrong secret of the real one's length (6), and a wrong secret of another
/// length (40). An ignored `pad` parameter evens the lengths, so the only
/// difference left is what the gate does with the claim.
const TIMING_UNKNOWN_BODY: &str = "grant_type=authorization_code&code=some-code&client_id=ghost&client_secret=s3creT&pad=01234567890123456789012345678901234567890123";
const SAME_LENGTH_BODY: &str = "grant_type=authorization_code&code=some-code&client_id=app&client_secret=s3creT&pad=0123456789012345678901234567890123456789012345";
const OTHER_LENGTH_BODY: &str = "grant_type=authorization_code&code=some-code&client_id=app&client_secret=a-much-longer-guess-than-the-real-secret&pad=012345678901";
/// A stand-in of the length of a real code (43 base64url characters), for
/// the baseline's request.
const FAKE_CODE: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// How far the clock moves per minted code. Redeemed codes stay in the store
/// as replay markers until they expire (600 s by default) and are swept every
/// 30 s of clock time (by `issue`, in the untimed setup), so this keeps the store at about 600 entries however
/// many iterations run, instead of growing by one per iteration.
const CLOCK_STEP: Duration = Duration::from_secs(1);
/// Codes minted ahead of their redemption: far below 600 steps, so none
/// expires before it is used.
const EXCHANGE_BATCH: u64 = 64;

/// Wall time of each `Instant` comparison after a criterion group.
const RATIO_BUDGET: Duration = Duration::from_millis(1500);
/// At least this many batches of each side, however long they take.
const RATIO_MIN_ROUNDS: usize = 21;

/// The application behind the gate: answers at once, the same way for the
/// baseline (`B = String`) and behind the gate (`B = RequestBody<String>`).
async fn handler<B>(request: Request<B>) -> Result<Response<String>, Infallible> {
    black_box(&request);
    Ok(Response::new(String::new()))
}

/// The layer over a memory store holding one confidential client, on a
/// manual clock.
fn fixture() -> (TokenGateLayer, ManualClock) {
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
        // These benchmarks repeat one client's failures by the million; the
        // lockout would answer them 429 after ten.
        .lockout(None)
        .build();
    (layer, clock)
}

fn other_request() -> Request<String> {
    Request::get("/other")
        .body(String::new())
        .expect("valid request")
}

fn token_request(body: String) -> Request<String> {
    Request::post(DEFAULT_TOKEN_PATH)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .expect("valid request")
}

fn exchange_request(code: &str) -> Request<String> {
    token_request(format!(
        "grant_type=authorization_code&code={code}\
         &redirect_uri=https%3A%2F%2Fapp.example%2Fcb\
         &client_id={CLIENT_ID}&client_secret={SECRET}&code_verifier={VERIFIER}"
    ))
}

/// Mints fresh codes for one validated authorization request.
struct Minter {
    authorizer: Authorizer,
    request: AuthorizationRequest,
    clock: ManualClock,
}

impl Minter {
    fn new(layer: &TokenGateLayer, clock: ManualClock) -> Self {
        Self::for_client(layer, clock, CLIENT_ID)
    }

    fn for_client(layer: &TokenGateLayer, clock: ManualClock, client_id: &str) -> Self {
        let authorizer = layer.authorizer();
        let query = format!(
            "response_type=code&client_id={client_id}\
             &redirect_uri=https%3A%2F%2Fapp.example%2Fcb\
             &code_challenge={}&code_challenge_method=S256",
            PkceChallenge::s256(VERIFIER).challenge
        );
        let request = now_or_never(authorizer.validate(&query)).expect("valid authorization");
        Self {
            authorizer,
            request,
            clock,
        }
    }

    /// A code minted just now.
    fn code(&self) -> String {
        self.clock.advance(CLOCK_STEP);
        let approval = now_or_never(self.authorizer.approve(&self.request, "user-42"))
            .expect("the memory store issues codes");
        // The code is base64url, so it appears in the Location as is.
        approval
            .location()
            .split_once("code=")
            .and_then(|(_, rest)| rest.split('&').next())
            .expect("the approval carries a code")
            .to_owned()
    }

    /// A token request redeeming a code minted just now.
    fn exchange_request(&self) -> Request<String> {
        exchange_request(&self.code())
    }
}

/// Both sides with one batch size, under this file's time budget.
fn compare_pair<IA, OA, IB, OB>(
    a: (impl FnMut() -> IA, impl FnMut(IA) -> OA),
    b: (impl FnMut() -> IB, impl FnMut(IB) -> OB),
    batch: u64,
) -> (f64, f64) {
    compare(
        Side {
            setup: a.0,
            routine: a.1,
            batch,
        },
        Side {
            setup: b.0,
            routine: b.1,
            batch,
        },
        RATIO_MIN_ROUNDS,
        RATIO_BUDGET,
    )
}

fn pass_through(c: &mut Criterion) {
    let (layer, _clock) = fixture();
    let mut bare = service_fn(handler::<String>);
    let mut gated = layer.layer(service_fn(handler::<RequestBody<String>>));
    assert_eq!(call(&mut bare, other_request()).status(), StatusCode::OK);
    assert_eq!(call(&mut gated, other_request()).status(), StatusCode::OK);

    let mut ran = [false; 2];
    let mut group = c.benchmark_group("pass_through");
    group.bench_function("bare", |bencher| {
        ran[0] = true;
        bencher.iter_batched(
            other_request,
            |request| call(&mut bare, request),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("gate", |bencher| {
        ran[1] = true;
        bencher.iter_batched(
            other_request,
            |request| call(&mut gated, request),
            BatchSize::SmallInput,
        );
    });
    group.finish();

    if comparing(&ran) {
        let (bare_ns, gate_ns) = compare_pair(
            (other_request, |request| call(&mut bare, request)),
            (other_request, |request| call(&mut gated, request)),
            1024,
        );
        println!(
            "pass_through: bare {bare_ns:.1} ns, gate {gate_ns:.1} ns; \
             pass-through overhead: {:.1} ns (ratio {:.2})\n",
            gate_ns - bare_ns,
            gate_ns / bare_ns,
        );
    }
}

fn rejection(c: &mut Criterion) {
    let (layer, _clock) = fixture();
    let mut gated = layer.layer(service_fn(handler::<RequestBody<String>>));
    let cases: [(&str, &str); 3] = [
        ("unknown_client", TIMING_UNKNOWN_BODY),
        ("wrong_secret_same_length", SAME_LENGTH_BODY),
        ("wrong_secret_other_length", OTHER_LENGTH_BODY),
    ];
    for (_, body) in cases {
        assert_eq!(body.len(), TIMING_UNKNOWN_BODY.len(), "{body}");
        let answer = call(&mut gated, token_request(body.to_owned()));
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }

    let mut ran = [false; 3];
    let mut group = c.benchmark_group("rejection");
    for (i, (name, body)) in cases.iter().enumerate() {
        group.bench_function(*name, |bencher| {
            ran[i] = true;
            bencher.iter_batched(
                || token_request((*body).to_owned()),
                |request| call(&mut gated, request),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();

    if comparing(&ran) {
        // Each wrong secret against the unknown client, interleaved; two
        // closures cannot borrow one service, a clone shares its gate.
        let unknown = || token_request(TIMING_UNKNOWN_BODY.to_owned());
        for (name, body) in &cases[1..] {
            let mut other = gated.clone();
            let (unknown_ns, wrong_ns) = compare_pair(
                (unknown, |request| call(&mut gated, request)),
                (
                    || token_request((*body).to_owned()),
                    |request| call(&mut other, request),
                ),
                256,
            );
            println!(
                "rejection: unknown_client {unknown_ns:.1} ns, {name} {wrong_ns:.1} ns \
                 (ratio {:.3})",
                wrong_ns / unknown_ns,
            );
        }
        println!();
    }
}

/// The defaults this file otherwise turns off: two-phase redemption's cost
/// is in `exchange` already; here the lockout's, on an exchange (one look-up
/// per request) and on a locked-out request (refused before any store).
fn lockout(c: &mut Criterion) {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    store.insert_client(
        Client::confidential(CLIENT_ID)
            .with_secret(SECRET)
            .with_redirect_uri(REDIRECT_URI),
    );
    store.insert_client(Client::confidential("locked").with_secret(SECRET));
    let layer = TokenGateLayer::builder()
        .store(store)
        .issuer("https://auth.example.com")
        .clock(clock.clone())
        .build();
    let minter = Minter::new(&layer, clock);
    let mut gated = layer.layer(service_fn(handler::<RequestBody<String>>));
    // The lockout counts per peer (and per client within a peer): a request
    // without one is never counted, so these carry one, as a server puts it.
    let from_peer = |mut request: Request<String>| {
        let peer = std::net::SocketAddr::from(([192, 0, 2, 1], 40_000));
        request.extensions_mut().insert(peer);
        request
    };
    let locked_body = "grant_type=authorization_code&code=c&client_id=locked&client_secret=guess";
    for _ in 0..10 {
        let answer = call(&mut gated, from_peer(token_request(locked_body.to_owned())));
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = || from_peer(token_request(locked_body.to_owned()));
    assert_eq!(
        call(&mut gated, locked()).status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        call(&mut gated, from_peer(minter.exchange_request())).status(),
        StatusCode::OK
    );

    let mut group = c.benchmark_group("lockout");
    group.bench_function("exchange_with_lockout", |bencher| {
        bencher.iter_batched(
            || from_peer(minter.exchange_request()),
            |request| call(&mut gated, request),
            BatchSize::NumIterations(EXCHANGE_BATCH),
        );
    });
    group.bench_function("locked_out", |bencher| {
        bencher.iter_batched(
            locked,
            |request| call(&mut gated, request),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn exchange(c: &mut Criterion) {
    let (layer, clock) = fixture();
    let minter = Minter::new(&layer, clock);
    let mint = || minter.exchange_request();
    let baseline = || exchange_request(FAKE_CODE);
    let mut bare = service_fn(handler::<String>);
    let mut gated = layer.layer(service_fn(handler::<RequestBody<String>>));

    // The exchange really succeeds: the handler runs, with the grant.
    let mut checked = layer.layer(service_fn(|request: Request<RequestBody<String>>| {
        let grant = request.extensions().get::<ValidatedGrant>();
        assert_eq!(grant.and_then(ValidatedGrant::subject), Some("user-42"));
        handler(request)
    }));
    assert_eq!(call(&mut checked, mint()).status(), StatusCode::OK);
    assert_eq!(call(&mut gated, mint()).status(), StatusCode::OK);
    assert_eq!(call(&mut bare, baseline()).status(), StatusCode::OK);

    let mut ran = [false; 2];
    let mut group = c.benchmark_group("exchange");
    group.bench_function("bare", |bencher| {
        ran[0] = true;
        bencher.iter_batched(
            baseline,
            |request| call(&mut bare, request),
            BatchSize::NumIterations(EXCHANGE_BATCH),
        );
    });
    group.bench_function("gate", |bencher| {
        ran[1] = true;
        bencher.iter_batched(
            mint,
            |request| call(&mut gated, request),
            BatchSize::NumIterations(EXCHANGE_BATCH),
        );
    });
    group.finish();

    if comparing(&ran) {
        let (bare_ns, gate_ns) = compare_pair(
            (baseline, |request| call(&mut bare, request)),
            (mint, |request| call(&mut gated, request)),
            EXCHANGE_BATCH,
        );
        println!(
            "exchange: bare {bare_ns:.1} ns, gate {gate_ns:.1} ns; \
             exchange overhead: {:.1} ns (ratio {:.2})\n",
            gate_ns - bare_ns,
            gate_ns / bare_ns,
        );
    }
}

/// Makes one request of a benchmark's kind.
type Maker<'a> = dyn Fn() -> Request<String> + 'a;

/// The token endpoint's URL in `fixture`'s layer: a proof's `htu`, an
/// assertion's `aud`.
fn token_url() -> String {
    format!("https://auth.example.com{DEFAULT_TOKEN_PATH}")
}

/// The exchange of `code` for a client that authenticates otherwise (the
/// `extra` parameters), with the same redirect URI and verifier.
fn code_request(code: &str, extra: &str) -> Request<String> {
    token_request(format!(
        "grant_type=authorization_code&code={code}\
         &redirect_uri=https%3A%2F%2Fapp.example%2Fcb\
         &code_verifier={VERIFIER}{extra}"
    ))
}

/// `fixture`, with clients that prove possession: `keyed-es256` and
/// `keyed-eddsa` (`private_key_jwt`, one key each), and the public `spa`.
fn signed_fixture() -> (TokenGateLayer, ManualClock) {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    store.insert_client(
        Client::confidential(CLIENT_ID)
            .with_secret(SECRET)
            .with_redirect_uri(REDIRECT_URI),
    );
    for (id, key) in [
        ("keyed-es256", TestKey::es256()),
        ("keyed-eddsa", TestKey::ed25519()),
    ] {
        let jwks = Jwks::from_json(&TestKey::jwks(&[&key])).expect("a public key");
        store.insert_client(
            Client::confidential(id)
                .with_jwks(jwks)
                .with_redirect_uri(REDIRECT_URI),
        );
    }
    store.insert_client(Client::public("spa").with_redirect_uri(REDIRECT_URI));
    let layer = TokenGateLayer::builder()
        .store(store)
        .issuer("https://auth.example.com")
        .clock(clock.clone())
        .lockout(None)
        // A batch mints its codes (one clock second each) before it
        // redeems them: the proofs of its first iterations must still be
        // fresh at its last.
        .dpop_proof_window(Duration::from_secs(300))
        .build();
    (layer, clock)
}

fn signed(c: &mut Criterion) {
    let (layer, clock) = signed_fixture();
    let url = token_url();
    let secret = Minter::new(&layer, clock.clone());
    let keyed = |id: &'static str, key: TestKey| {
        let minter = Minter::for_client(&layer, clock.clone(), id);
        let (clock, url) = (clock.clone(), url.clone());
        move || {
            let code = minter.code();
            let assertion = ClientAssertion::new(id, &url)
                .issued_at(clock.now())
                .expires_at(Some(clock.now() + Duration::from_secs(120)))
                .sign(&key);
            code_request(
                &code,
                &format!(
                    "&client_assertion_type={}&client_assertion={assertion}",
                    form_urlencoded::byte_serialize(ASSERTION_TYPE.as_bytes()).collect::<String>()
                ),
            )
        }
    };
    let es256 = keyed("keyed-es256", TestKey::es256());
    let eddsa = keyed("keyed-eddsa", TestKey::ed25519());
    let spa = Minter::for_client(&layer, clock.clone(), "spa");
    let dpop_key = TestKey::es256();
    let dpop = || {
        let code = spa.code();
        let proof = DpopProof::new("POST", &url)
            .issued_at(clock.now())
            .sign(&dpop_key);
        let mut request = code_request(&code, "&client_id=spa");
        request
            .headers_mut()
            .insert("dpop", proof.parse().expect("a proof is a header value"));
        request
    };
    let mint = || secret.exchange_request();

    // Each really passes, with its binding.
    let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
    let catch = std::sync::Arc::clone(&slot);
    let mut checked = layer.layer(service_fn(move |request: Request<RequestBody<String>>| {
        *catch.lock().expect("not poisoned") =
            request.extensions().get::<ValidatedGrant>().cloned();
        handler(request)
    }));
    let thumbprint = dpop_key.thumbprint();
    // Each case: its name, its request maker, the key its grant is bound to.
    let cases: [(&str, &Maker<'_>, Option<&str>); 4] = [
        ("secret", &mint, None),
        ("private_key_jwt_es256", &es256, None),
        ("private_key_jwt_eddsa", &eddsa, None),
        ("dpop_es256", &dpop, Some(thumbprint.as_str())),
    ];
    for (name, make, jkt) in &cases {
        assert_eq!(
            call(&mut checked, make()).status(),
            StatusCode::OK,
            "{name}"
        );
        let grant = slot
            .lock()
            .expect("not poisoned")
            .take()
            .expect("forwarded");
        assert_eq!(grant.dpop_jkt(), *jkt, "{name}");
    }

    let mut gated = layer.layer(service_fn(handler::<RequestBody<String>>));
    let mut ran = [false; 4];
    let mut group = c.benchmark_group("signed");
    for (i, (name, make, _)) in cases.iter().enumerate() {
        group.bench_function(*name, |bencher| {
            ran[i] = true;
            bencher.iter_batched(
                make,
                |request| call(&mut gated, request),
                BatchSize::NumIterations(EXCHANGE_BATCH),
            );
        });
    }
    group.finish();

    if comparing(&ran) {
        for (name, make, _) in &cases[1..] {
            let mut other = gated.clone();
            let (secret_ns, signed_ns) = compare_pair(
                (mint, |request| call(&mut gated, request)),
                (make, |request| call(&mut other, request)),
                EXCHANGE_BATCH,
            );
            println!(
                "signed: secret {:.2} µs, {name} {:.2} µs; added {:.2} µs (ratio {:.1})",
                secret_ns / 1e3,
                signed_ns / 1e3,
                (signed_ns - secret_ns) / 1e3,
                signed_ns / secret_ns,
            );
        }
        println!();
    }
}

/// The steps a signed exchange adds, alone, on the requests of `signed`.
fn jose_parts(c: &mut Criterion) {
    use jsonwebtoken::{Algorithm, DecodingKey, jwk::Jwk};

    let url = token_url();
    let now = std::time::SystemTime::now();
    let key_of = |key: &TestKey| {
        let jwk: Jwk = serde_json::from_value(key.public_jwk()).expect("a JWK");
        DecodingKey::from_jwk(&jwk).expect("a key")
    };
    let es = TestKey::es256();
    let ed = TestKey::ed25519();
    let es_assertion = ClientAssertion::new("keyed-es256", &url).sign(&es);
    let ed_assertion = ClientAssertion::new("keyed-eddsa", &url).sign(&ed);
    let proof = DpopProof::new("POST", &url).issued_at(now).sign(&es);
    let (es_key, ed_key) = (key_of(&es), key_of(&ed));
    let verify = |token: &str, key: &DecodingKey, alg: Algorithm| {
        let (message, signature) = token.rsplit_once('.').expect("a JWS");
        jsonwebtoken::crypto::verify(signature, message.as_bytes(), key, alg).unwrap_or(false)
    };
    assert!(verify(&es_assertion, &es_key, Algorithm::ES256));
    assert!(verify(&ed_assertion, &ed_key, Algorithm::EdDSA));
    assert_eq!(
        tokengate::fuzzing::parse_jws(&proof).as_deref(),
        Ok("ES256")
    );
    // The gate's thumbprint: the key's members into jsonwebtoken's Jwk,
    // then RFC 7638.
    let mut members = es.public_jwk();
    members.as_object_mut().expect("an object").remove("kid");
    let thumbprint = |members: &serde_json::Value| {
        let jwk: Jwk = serde_json::from_value(members.clone()).expect("a JWK");
        jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
    };
    assert_eq!(thumbprint(&members).expect("a thumbprint"), es.thumbprint());

    let mut group = c.benchmark_group("jose_parts");
    group.bench_function("es256_verify", |bencher| {
        bencher.iter(|| verify(black_box(&es_assertion), &es_key, Algorithm::ES256));
    });
    group.bench_function("eddsa_verify", |bencher| {
        bencher.iter(|| verify(black_box(&ed_assertion), &ed_key, Algorithm::EdDSA));
    });
    group.bench_function("es256_key_and_verify", |bencher| {
        bencher.iter(|| verify(black_box(&es_assertion), &key_of(&es), Algorithm::ES256));
    });
    group.bench_function("jws_parse_proof", |bencher| {
        bencher.iter(|| tokengate::fuzzing::parse_jws(black_box(&proof)));
    });
    group.bench_function("thumbprint", |bencher| {
        bencher.iter(|| thumbprint(black_box(&members)));
    });
    group.finish();
}

/// A request for each row of the failure table that the gate answers on its
/// own, named after the row.
/// A named way of making one kind of request.
type Case<'a> = (&'static str, Box<dyn Fn() -> Request<String> + 'a>);

fn rejection_cases(minter: &Minter) -> Vec<Case<'_>> {
    let form = |body: &'static str| move || token_request(body.to_owned());
    vec![
        (
            "not_post",
            Box::new(|| {
                Request::get(DEFAULT_TOKEN_PATH)
                    .body(String::new())
                    .expect("valid request")
            }),
        ),
        (
            "body_over_limit",
            Box::new(|| {
                let mut request = token_request(String::new());
                request
                    .headers_mut()
                    .insert("content-length", "1000000".parse().expect("a number"));
                request
            }),
        ),
        (
            "wrong_content_type",
            Box::new(|| {
                let mut request = token_request("grant_type=authorization_code".to_owned());
                request
                    .headers_mut()
                    .insert(CONTENT_TYPE, "text/plain".parse().expect("a media type"));
                request
            }),
        ),
        (
            "malformed_body",
            Box::new(form("grant_type=authorization_code&code=%zz")),
        ),
        (
            "parameter_repeated",
            Box::new(form("grant_type=authorization_code&code=a&code=b")),
        ),
        (
            "grant_type_missing",
            Box::new(form("code=a&client_id=app&client_secret=s3cret")),
        ),
        (
            "grant_type_unknown",
            Box::new(form(
                "grant_type=password&client_id=app&client_secret=s3cret",
            )),
        ),
        ("unknown_client", Box::new(form(UNKNOWN_CLIENT_BODY))),
        ("wrong_secret", Box::new(form(WRONG_SECRET_BODY))),
        (
            "two_auth_methods",
            Box::new(|| {
                let mut request = token_request(
                    "grant_type=authorization_code&code=a&client_secret=s3cret".to_owned(),
                );
                request.headers_mut().insert(
                    "authorization",
                    "Basic YXBwOnMzY3JldA==".parse().expect("a header value"),
                );
                request
            }),
        ),
        (
            "code_missing",
            Box::new(form(
                "grant_type=authorization_code&client_id=app&client_secret=s3cret",
            )),
        ),
        ("code_unknown", Box::new(|| exchange_request(FAKE_CODE))),
        (
            "redirect_not_registered",
            Box::new(form(
                "grant_type=authorization_code&code=a&client_id=app&client_secret=s3cret&redirect_uri=https%3A%2F%2Fevil.example%2F",
            )),
        ),
        // A fresh code with a wrong verifier: the full redemption path.
        (
            "verifier_wrong",
            Box::new(|| {
                let request = minter.exchange_request();
                let body = request.body().replace(VERIFIER, &"A".repeat(43));
                token_request(body)
            }),
        ),
        (
            "refresh_token_unknown",
            Box::new(form(
                "grant_type=refresh_token&refresh_token=unknown&client_id=app&client_secret=s3cret",
            )),
        ),
        (
            "device_code_unknown",
            Box::new(form(
                "grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=unknown&client_id=app&client_secret=s3cret",
            )),
        ),
    ]
}

fn rejections(c: &mut Criterion) {
    let (layer, clock) = fixture_with_device();
    let minter = Minter::new(&layer, clock);
    let mut gated = layer.layer(service_fn(handler::<RequestBody<String>>));
    let cases = rejection_cases(&minter);
    for (name, make) in &cases {
        let response = call(&mut gated, make());
        assert!(
            response.status().is_client_error()
                && response
                    .extensions()
                    .get::<tokengate::Rejection>()
                    .is_some(),
            "{name}: {}",
            response.status()
        );
    }
    let mut group = c.benchmark_group("rejections");
    for (name, make) in &cases {
        group.bench_function(*name, |bencher| {
            bencher.iter_batched(
                make,
                |request| call(&mut gated, request),
                BatchSize::NumIterations(EXCHANGE_BATCH),
            );
        });
    }
    group.finish();
}

/// The fixture, with the demo client also allowed the device flow.
fn fixture_with_device() -> (TokenGateLayer, ManualClock) {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    store.insert_client(
        Client::confidential(CLIENT_ID)
            .with_secret(SECRET)
            .with_redirect_uri(REDIRECT_URI)
            .with_grant_types(tokengate::GrantType::ALL),
    );
    let layer = TokenGateLayer::builder()
        .store(store)
        .issuer("https://auth.example.com")
        .clock(clock.clone())
        .lockout(None)
        .build();
    (layer, clock)
}

fn grants(c: &mut Criterion) {
    let (layer, clock) = fixture_with_device();
    let minter = Minter::new(&layer, clock.clone());
    let tokens = layer.refresh_tokens();
    let devices = layer.devices();
    // The grant of a code exchange, caught from the inner service.
    let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
    let catch = std::sync::Arc::clone(&slot);
    let mut grant_of = layer.layer(service_fn(move |request: Request<RequestBody<String>>| {
        *catch.lock().expect("not poisoned") =
            request.extensions().get::<ValidatedGrant>().cloned();
        handler(request)
    }));
    // A fresh refresh token per iteration: a code exchange, then issue.
    let mut refresh = || {
        assert_eq!(
            call(&mut grant_of, minter.exchange_request()).status(),
            StatusCode::OK
        );
        let grant = slot
            .lock()
            .expect("not poisoned")
            .take()
            .expect("the exchange passes");
        let token = now_or_never(tokens.issue(&grant)).expect("the memory store issues tokens");
        token_request(format!(
            "grant_type=refresh_token&refresh_token={token}&client_id={CLIENT_ID}&client_secret={SECRET}"
        ))
    };
    // An approved device code per iteration.
    let mut authorize_device = layer.layer(service_fn(handler::<RequestBody<String>>));
    let mut device = || {
        clock.advance(CLOCK_STEP);
        let request = Request::post(tokengate::builder::DEFAULT_DEVICE_PATH)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("host", "auth.example")
            .body(format!("client_id={CLIENT_ID}&client_secret={SECRET}"))
            .expect("valid request");
        let response = call(&mut authorize_device, request);
        let body = now_or_never(http_body_util::BodyExt::collect(response.into_body()))
            .expect("a buffered body")
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let user_code = json["user_code"].as_str().expect("a user code");
        assert!(
            now_or_never(devices.approve(user_code, "user-42", None)).expect("the store answers")
        );
        token_request(format!(
            "grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code={}&client_id={CLIENT_ID}&client_secret={SECRET}",
            json["device_code"].as_str().expect("a device code")
        ))
    };
    let mut gated = layer.layer(service_fn(handler::<RequestBody<String>>));
    assert_eq!(call(&mut gated, refresh()).status(), StatusCode::OK);
    assert_eq!(call(&mut gated, device()).status(), StatusCode::OK);
    let mut group = c.benchmark_group("grants");
    group.bench_function("refresh", |bencher| {
        bencher.iter_batched(
            &mut refresh,
            |request| call(&mut gated, request),
            BatchSize::NumIterations(EXCHANGE_BATCH),
        );
    });
    group.bench_function("device_poll_approved", |bencher| {
        bencher.iter_batched(
            &mut device,
            |request| call(&mut gated, request),
            BatchSize::NumIterations(EXCHANGE_BATCH),
        );
    });
    group.finish();
}

/// The fixture with the demo client also registered to introspect, and a
/// reuse window of `REUSE_WITHIN` for rotated refresh tokens.
fn fixture_with_lifecycle() -> (TokenGateLayer, ManualClock) {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    store.insert_client(
        Client::confidential(CLIENT_ID)
            .with_secret(SECRET)
            .with_redirect_uri(REDIRECT_URI)
            .with_introspection(true),
    );
    let layer = TokenGateLayer::builder()
        .store(store)
        .issuer("https://auth.example.com")
        .clock(clock.clone())
        .lockout(None)
        .refresh_reuse(REUSE_WITHIN, 1)
        .build();
    (layer, clock)
}

/// The reuse window of the `lifecycle` group: the longest the builder
/// takes, since a batch's setup moves the clock a step per minted code and
/// every token of the batch must still be inside it when timed.
const REUSE_WITHIN: Duration = Duration::from_secs(300);

/// A form POST to `path` with the demo client's Basic credentials.
fn basic_request(path: &str, body: String) -> Request<String> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let credentials = STANDARD.encode(format!("{CLIENT_ID}:{SECRET}"));
    Request::post(path)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(http::header::AUTHORIZATION, format!("Basic {credentials}"))
        .body(body)
        .expect("valid request")
}

fn refresh_body(token: &str) -> String {
    format!(
        "grant_type=refresh_token&refresh_token={token}&client_id={CLIENT_ID}&client_secret={SECRET}"
    )
}

fn lifecycle(c: &mut Criterion) {
    use tokengate::builder::{DEFAULT_INTROSPECTION_PATH, DEFAULT_REVOCATION_PATH};

    let (layer, clock) = fixture_with_lifecycle();
    let minter = Minter::new(&layer, clock);
    let tokens = layer.refresh_tokens();
    // The grant each request hands on, caught from the inner service.
    let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
    let catch = std::sync::Arc::clone(&slot);
    // In a cell, so that the setups below can all forward through it.
    let grant_of = std::cell::RefCell::new(layer.layer(service_fn(
        move |request: Request<RequestBody<String>>| {
            *catch.lock().expect("not poisoned") =
                request.extensions().get::<ValidatedGrant>().cloned();
            handler(request)
        },
    )));
    let forward = |request: Request<String>| {
        let answer = call(&mut *grant_of.borrow_mut(), request);
        assert_eq!(answer.status(), StatusCode::OK);
        slot.lock()
            .expect("not poisoned")
            .take()
            .expect("the request passes")
    };
    // A fresh refresh token: a code exchange, then issue (a family of its
    // own, so that revoking one revokes no other).
    let fresh = || {
        let grant = forward(minter.exchange_request());
        now_or_never(tokens.issue(&grant)).expect("the memory store issues tokens")
    };
    let revocation = |token: &str| basic_request(DEFAULT_REVOCATION_PATH, format!("token={token}"));
    let introspection =
        |token: &str| basic_request(DEFAULT_INTROSPECTION_PATH, format!("token={token}"));

    // Each does what it is timed doing: the refresh token is revoked, then
    // described, and a rotated one comes back as a reuse.
    let mut gated = layer.layer(service_fn(handler::<RequestBody<String>>));
    let token = fresh();
    let answer = call(&mut gated, introspection(&token));
    assert_eq!(answer.status(), StatusCode::OK);
    let body = now_or_never(http_body_util::BodyExt::collect(answer.into_body()))
        .expect("a buffered body")
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(json["active"], true);
    assert_eq!(
        call(&mut gated, revocation(&token)).status(),
        StatusCode::OK
    );
    let refused = call(&mut gated, token_request(refresh_body(&token)));
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let token = fresh();
    assert!(!forward(token_request(refresh_body(&token))).is_refresh_reuse());
    assert!(forward(token_request(refresh_body(&token))).is_refresh_reuse());

    let described = fresh();
    let mut group = c.benchmark_group("lifecycle");
    // The two refreshes first, side by side, on a store that revocations
    // have not grown yet.
    group.bench_function("refresh", |bencher| {
        bencher.iter_batched(
            || token_request(refresh_body(&fresh())),
            |request| call(&mut gated, request),
            BatchSize::NumIterations(EXCHANGE_BATCH),
        );
    });
    group.bench_function("refresh_reuse", |bencher| {
        bencher.iter_batched(
            || {
                // Rotated once, untimed; its return is the one timed.
                let token = fresh();
                forward(token_request(refresh_body(&token)));
                token_request(refresh_body(&token))
            },
            |request| call(&mut gated, request),
            BatchSize::NumIterations(EXCHANGE_BATCH),
        );
    });
    group.bench_function("revoke_refresh_token", |bencher| {
        bencher.iter_batched(
            || revocation(&fresh()),
            |request| call(&mut gated, request),
            BatchSize::NumIterations(EXCHANGE_BATCH),
        );
    });
    group.bench_function("introspect_refresh_token", |bencher| {
        bencher.iter_batched(
            || introspection(&described),
            |request| call(&mut gated, request),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// Heap allocations made while `service` answers `request`, response
/// dropped outside the count.
fn allocations_of<S, R>(service: &mut S, request: R) -> usize
where
    S: Service<R>,
    S::Error: Debug,
{
    let region = Region::new(GLOBAL);
    let response = call(service, request);
    let allocations = region.change().allocations + region.change().reallocations;
    drop(response);
    allocations
}

/// The allocation report: the median over a few runs of each case.
fn allocations() {
    let (layer, clock) = fixture();
    let minter = Minter::new(&layer, clock);
    let mut bare = service_fn(handler::<String>);
    let mut gated = layer.layer(service_fn(handler::<RequestBody<String>>));
    let count = |f: &mut dyn FnMut() -> usize| {
        let mut runs: Vec<usize> = (0..9).map(|_| f()).collect();
        runs.sort_unstable();
        runs[runs.len() / 2]
    };
    let pass_bare = count(&mut || allocations_of(&mut bare, other_request()));
    let pass_gate = count(&mut || allocations_of(&mut gated, other_request()));
    let reject =
        count(&mut || allocations_of(&mut gated, token_request(WRONG_SECRET_BODY.to_owned())));
    let exchange_bare = count(&mut || allocations_of(&mut bare, exchange_request(FAKE_CODE)));
    let exchange_gate = count(&mut || {
        let request = minter.exchange_request();
        allocations_of(&mut gated, request)
    });
    println!(
        "allocations: pass-through bare {pass_bare}, gate {pass_gate} (added {}); \
         wrong-secret rejection {reject}; exchange bare {exchange_bare}, gate {exchange_gate} (added {})\n",
        pass_gate.saturating_sub(pass_bare),
        exchange_gate.saturating_sub(exchange_bare),
    );
}

/// Every group, with this file's configuration under criterion's
/// command-line options (what `criterion_group!` would generate, but
/// private and documented).
fn benches() {
    let mut criterion = config().configure_from_args();
    pass_through(&mut criterion);
    rejection(&mut criterion);
    exchange(&mut criterion);
    signed(&mut criterion);
    jose_parts(&mut criterion);
    lockout(&mut criterion);
    rejections(&mut criterion);
    grants(&mut criterion);
    lifecycle(&mut criterion);
    if comparing(&[true]) || std::env::args().any(|arg| arg == "allocations") {
        allocations();
    }
}

criterion_main!(benches);
