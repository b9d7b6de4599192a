#![cfg(any())] // TEMP: being replaced by the public conformance suite
//! One suite, every backend: the same cases run against the memory store
//! and, with their features, against Redis and PostgreSQL.
//!
//! The networked backends need their server (`TOKENGATE_REDIS_URL`, default
//! `redis://127.0.0.1:6379`; `TOKENGATE_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`): with the feature on and the
//! server away, these tests fail rather than skip. `.ci/run` runs them.

// The relay and outage helpers serve only the networked backends.
#![cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]

mod common;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::*;
use tokengate::{
    Client, Dialect, GrantType, TokenGateLayer, client::RedirectPolicy, clock::ManualClock,
    store::ClientStore, store::CodeStore, store::DeviceStore, store::RefreshStore,
};
use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
};

/// What a backend must be to run the suite.
trait Backend: CredentialStore + CodeStore + RefreshStore + DeviceStore + Clone {
    fn register(&self, client: Client) -> impl Future<Output = ()> + Send;
}

impl Backend for tokengate::MemoryStore {
    async fn register(&self, client: Client) {
        self.insert_client(client);
    }
}

#[cfg(feature = "redis")]
impl Backend for tokengate_redis::RedisStore {
    async fn register(&self, client: Client) {
        self.insert_client(&client).await.unwrap();
    }
}

#[cfg(feature = "postgres")]
impl Backend for tokengate_postgres::PostgresStore {
    async fn register(&self, client: Client) {
        self.insert_client(&client).await.unwrap();
    }
}

/// A unique name per test, so backends shared between runs never mix data.
fn unique(name: &str) -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    format!("{name}-{}", hex::encode(bytes))
}

/// A gate over `store`, with the clients the cases use (ids made unique).
struct Fixture {
    h: Harness,
    app: String,
    other: String,
    tv: String,
    /// How many times the code replay hook fired.
    replays: Arc<AtomicUsize>,
}

async fn fixture<S: Backend>(store: S, clock: ManualClock) -> Fixture {
    fixture_with(store, clock, tokengate::builder::DEFAULT_CLAIM_TTL).await
}

/// A fixture whose claims last `ttl`.
async fn fixture_with<S: Backend>(store: S, clock: ManualClock, ttl: Duration) -> Fixture {
    let app = unique("app");
    let other = unique("other");
    let tv = unique("tv");
    store
        .register(
            Client::confidential(app.clone())
                .with_secret("s3cret")
                .with_secret("rotated")
                .with_redirect_uri(CB)
                .with_scopes(["read", "write"]),
        )
        .await;
    store
        .register(
            Client::confidential(other.clone())
                .with_secret("other-s3cret")
                .with_redirect_uri(CB),
        )
        .await;
    store
        .register(
            Client::public(tv.clone())
                .with_grant_types([GrantType::DeviceCode, GrantType::RefreshToken])
                .with_redirect_policy(RedirectPolicy::Loopback),
        )
        .await;
    let replays = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&replays);
    let layer = TokenGateLayer::builder()
        .store(store)
        .clock(clock.clone())
        .realm("tokengate-test")
        .two_phase_redemption(Some(ttl))
        // These cases hammer one client id on purpose; the brute-force
        // defence has its own tests (lockout.rs).
        .lockout(None)
        .on_code_replay(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .build();
    let base = Harness::new(Dialect::Rfc6749);
    Fixture {
        h: Harness {
            layer,
            clock,
            ..base
        },
        app,
        other,
        tv,
        replays,
    }
}

impl Fixture {
    async fn code(&self) -> String {
        self.h
            .code(&format!(
                "client_id={}&redirect_uri={CB_ENC}&code_challenge={CHALLENGE}&code_challenge_method=S256&scope=read",
                self.app
            ))
            .await
    }

    fn exchange(&self, code: &str) -> String {
        exchange(code).replace("client_id=app", &format!("client_id={}", self.app))
    }
}

async fn issue_redeem_and_replay<S: Backend>(store: S, clock: ManualClock) {
    let f = fixture(store, clock).await;
    let code = f.code().await;
    let (answer, seen) = f.h.forwarded(post(&f.exchange(&code))).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let grant = seen.grant.unwrap();
    assert_eq!(grant.subject(), Some("user-1"));
    assert_eq!(grant.scopes(), ["read"]);
    assert_eq!(
        grant.code().unwrap().pkce.as_ref().unwrap().challenge,
        CHALLENGE
    );
    // Twice: refused, and reported as a replay.
    f.h.refused(post(&f.exchange(&code)))
        .await
        .assert_rfc(400, "invalid_grant");
    // Rotated secrets and stored policies survive the round trip.
    let code = f.code().await;
    let body = f
        .exchange(&code)
        .replace("client_secret=s3cret", "client_secret=rotated");
    assert_eq!(f.h.forwarded(post(&body)).await.0.status, 200);
    let body = f.exchange("never-issued");
    f.h.refused(post(&body))
        .await
        .assert_rfc(400, "invalid_grant");
}

async fn expiry_and_wrong_client<S: Backend>(store: S, clock: ManualClock) {
    let f = fixture(store, clock).await;
    let code = f.code().await;
    f.h.clock.advance(Duration::from_secs(601));
    f.h.refused(post(&f.exchange(&code)))
        .await
        .assert_rfc(400, "invalid_grant");
    let code = f.code().await;
    let body = f.exchange(&code).replace(
        &format!("client_id={}&client_secret=s3cret", f.app),
        &format!("client_id={}&client_secret=other-s3cret", f.other),
    );
    f.h.refused(post(&body))
        .await
        .assert_rfc(400, "invalid_grant");
    // The other client's attempt burned the code (it was presented).
    f.h.refused(post(&f.exchange(&code)))
        .await
        .assert_rfc(400, "invalid_grant");
}

async fn two_hundred_tasks_twenty_codes<S: Backend>(store: S, clock: ManualClock) {
    let f = Arc::new(fixture(store, clock).await);
    let mut codes = Vec::new();
    for _ in 0..20 {
        codes.push(f.code().await);
    }
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let f = Arc::clone(&f);
            let body = f.exchange(&codes[i % 20]);
            tokio::spawn(async move {
                use tower::{ServiceBuilder, ServiceExt, service_fn};
                let service = ServiceBuilder::new()
                    .layer(f.h.layer.clone())
                    .service(service_fn(
                        |_: http::Request<tokengate::RequestBody<String>>| async {
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                "token".to_owned(),
                            ))
                        },
                    ));
                Answer::read(service.oneshot(post(&body)).await.unwrap()).await
            })
        })
        .collect();
    let mut forwarded = 0;
    for task in tasks {
        let answer = task.await.unwrap();
        match answer.rejection {
            None => forwarded += 1,
            Some(ref rejection) => {
                assert_eq!(rejection.error(), "invalid_grant", "{}", answer.text())
            }
        }
    }
    assert_eq!(forwarded, 20);
}

async fn refresh_rotation_and_family_revocation<S: Backend>(store: S, clock: ManualClock) {
    let f = fixture(store, clock).await;
    let code = f.code().await;
    let (_, seen) = f.h.forwarded(post(&f.exchange(&code))).await;
    let tokens = f.h.layer.refresh_tokens();
    let first = tokens.issue(&seen.grant.unwrap()).await.unwrap();
    let refresh = |t: &str| {
        format!(
            "grant_type=refresh_token&refresh_token={t}&client_id={}&client_secret=s3cret",
            f.app
        )
    };
    let (answer, seen) = f.h.forwarded(post(&refresh(&first))).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let rotated = seen.grant.unwrap();
    let successor = tokens.issue(&rotated).await.unwrap();
    // A replay of the first token revokes the family.
    f.h.refused(post(&refresh(&first)))
        .await
        .assert_rfc(400, "invalid_grant");
    f.h.refused(post(&refresh(&successor)))
        .await
        .assert_rfc(400, "invalid_grant");
    assert!(
        tokens.issue(&rotated).await.is_err(),
        "no new member in a revoked family"
    );
    // Scope may shrink, never grow.
    let code = f.code().await;
    let (_, seen) = f.h.forwarded(post(&f.exchange(&code))).await;
    let token = tokens.issue(&seen.grant.unwrap()).await.unwrap();
    f.h.refused(post(&format!("{}&scope=read+write", refresh(&token))))
        .await
        .assert_rfc(400, "invalid_scope");
}

async fn device_interval_vector_and_single_redemption<S: Backend>(store: S, clock: ManualClock) {
    let f = fixture(store, clock).await;
    let answer =
        f.h.refused(post_device(&format!("client_id={}", f.tv)))
            .await;
    let body = answer.json();
    let device_code = body["device_code"].as_str().unwrap().to_owned();
    let user_code = body["user_code"].as_str().unwrap().to_owned();
    let poll = format!(
        "grant_type={DEVICE_GRANT}&client_id={}&device_code={device_code}",
        f.tv
    );
    let expect = |answer: Answer, error: &str| answer.assert_rfc(400, error);
    expect(f.h.refused(post(&poll)).await, "authorization_pending"); // t=0
    f.h.clock.advance(Duration::from_secs(2));
    expect(f.h.refused(post(&poll)).await, "slow_down"); // t=2 -> 10
    f.h.clock.advance(Duration::from_secs(6));
    expect(f.h.refused(post(&poll)).await, "slow_down"); // t=8 -> 15
    f.h.clock.advance(Duration::from_secs(16));
    expect(f.h.refused(post(&poll)).await, "authorization_pending"); // t=24
    let devices = f.h.layer.devices();
    let pending = devices
        .lookup(&user_code.to_lowercase())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.client_id, f.tv);
    assert!(devices.approve(&user_code, "alice").await.unwrap());
    assert!(!devices.deny(&user_code).await.unwrap());
    f.h.clock.advance(Duration::from_secs(15));
    let (answer, seen) = f.h.forwarded(post(&poll)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(seen.grant.unwrap().subject(), Some("alice"));
    f.h.clock.advance(Duration::from_secs(15));
    expect(f.h.refused(post(&poll)).await, "invalid_grant");
    // Denied, and expired.
    let body =
        f.h.refused(post_device(&format!("client_id={}", f.tv)))
            .await
            .json();
    let device_code = body["device_code"].as_str().unwrap().to_owned();
    assert!(
        devices
            .deny(body["user_code"].as_str().unwrap())
            .await
            .unwrap()
    );
    let poll = format!(
        "grant_type={DEVICE_GRANT}&client_id={}&device_code={device_code}",
        f.tv
    );
    expect(f.h.refused(post(&poll)).await, "access_denied");
    f.h.clock.advance(Duration::from_secs(900));
    expect(f.h.refused(post(&poll)).await, "expired_token");
}

/// A TCP relay in front of a backend that can be cut and restored, so the
/// suite can take the store away without touching the shared server.
struct Relay {
    addr: String,
    down: Arc<AtomicBool>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let down = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&down);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused, in effect
                }
                let target = target.clone();
                let flag = Arc::clone(&flag);
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    // Cut live connections when the relay goes down.
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = async {
                            while !flag.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        } => {}
                    }
                });
            }
        });
        Self { addr, down }
    }
}

/// Host and port of a `scheme://[user@]host:port/...` URL.
fn authority(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap().to_owned()
}

/// Store down: every request is a 500 within the timeout and nothing is
/// forwarded; store back: the same gate works again.
async fn outage_and_recovery<S: Backend>(
    store: S,
    clock: ManualClock,
    relay: Relay,
    timeout: Duration,
) {
    let f = fixture(store, clock).await;
    let code = f.code().await;
    relay.down.store(true, Ordering::SeqCst);
    // Give the relay a moment to cut the live connections.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let answer = f.h.refused(post(&f.exchange(&code))).await;
        let elapsed = started.elapsed();
        answer.assert_rfc(500, "server_error");
        assert!(
            elapsed < timeout * 2 + Duration::from_millis(500),
            "took {elapsed:?}"
        );
    }
    relay.down.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    // The code was never touched while the store was away: once the store
    // is back, the same gate redeems it.
    loop {
        let (status, _) = tokio::time::timeout(Duration::from_secs(5), try_forward(&f, &code))
            .await
            .unwrap_or((500, String::new()));
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the store did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How the inner service fails the first time a claimed code reaches it.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// It answers 503.
    Unavailable,
    /// Its future fails.
    Error,
    /// It panics.
    Panic,
    /// It never answers, and the caller gives up (the future is dropped).
    Hang,
}

const FAULTS: [Fault; 4] = [Fault::Unavailable, Fault::Error, Fault::Panic, Fault::Hang];

/// Sends `body` through the gate to an inner service that fails with
/// `fault`; answers the status the client saw, if it saw one.
async fn send_faulty(f: &Fixture, body: &str, fault: Fault) -> Option<u16> {
    use tower::{ServiceBuilder, ServiceExt, service_fn};
    let entered = Arc::new(tokio::sync::Notify::new());
    let inside = Arc::clone(&entered);
    let service = ServiceBuilder::new()
        .layer(f.h.layer.clone())
        .service(service_fn(
            move |_: http::Request<tokengate::RequestBody<String>>| {
                let inside = Arc::clone(&inside);
                async move {
                    inside.notify_one();
                    match fault {
                        Fault::Unavailable => {
                            let mut response = http::Response::new("busy".to_owned());
                            *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                            Ok(response)
                        }
                        Fault::Error => Err(std::io::Error::other("the token minter failed")),
                        Fault::Panic => panic!("the token minter panicked"),
                        Fault::Hang => std::future::pending().await,
                    }
                }
            },
        ));
    let request = post(body);
    let task = tokio::spawn(service.oneshot(request));
    if let Fault::Hang = fault {
        // The client gives up while the inner service works: the gate's
        // future is dropped holding the claim.
        let reached = tokio::time::timeout(Duration::from_secs(10), entered.notified()).await;
        assert!(
            reached.is_ok(),
            "the request never reached the inner service"
        );
        task.abort();
    }
    match task.await {
        Ok(Ok(response)) => Some(response.status().as_u16()),
        Ok(Err(_)) => None,                       // the inner error
        Err(join) if join.is_cancelled() => None, // dropped
        Err(join) if join.is_panic() => None,     // the panic
        Err(join) => panic!("the task failed: {join}"),
    }
}

/// Sends `body` to a working inner service until it stops answering 400
/// (a release still in flight) or `tries` run out; the last answer.
async fn retry(f: &Fixture, body: &str) -> (u16, String) {
    let mut last = (0, String::new());
    for _ in 0..40 {
        last = try_forward_body(f, body).await;
        if last.0 != 400 {
            break;
        }
        // A release after a drop may still be on its way to the server.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    last
}

/// Two-phase redemption: whatever way the inner service fails, the code
/// (and a refresh token) goes back, the retry gets a token, and only once.
async fn claims_survive_every_failure<S: Backend>(store: S, clock: ManualClock) {
    let f = fixture(store, clock).await;
    for fault in FAULTS {
        let code = f.code().await;
        let body = f.exchange(&code);
        let seen = send_faulty(&f, &body, fault).await;
        match fault {
            Fault::Unavailable => assert_eq!(seen, Some(503)),
            _ => assert_eq!(seen, None, "{fault:?}"),
        }
        let (status, text) = retry(&f, &body).await;
        assert_eq!(status, 200, "{fault:?}: the retry after a failure: {text}");
        let (status, _) = try_forward_body(&f, &body).await;
        assert_eq!(status, 400, "{fault:?}: the code is used once it succeeded");
    }
    assert_eq!(
        f.replays.load(Ordering::SeqCst),
        4,
        "each final replay is a replay"
    );

    // The same for a refresh token: the failed rotation is undone.
    let code = f.code().await;
    let (_, seen) = f.h.forwarded(post(&f.exchange(&code))).await;
    let tokens = f.h.layer.refresh_tokens();
    let token = tokens.issue(&seen.grant.unwrap()).await.unwrap();
    let body = format!(
        "grant_type=refresh_token&refresh_token={token}&client_id={}&client_secret=s3cret",
        f.app
    );
    for fault in FAULTS {
        send_faulty(&f, &body, fault).await;
        // Let a release in flight land before the next fault claims again.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, text) = retry(&f, &body).await;
    assert_eq!(
        status, 200,
        "the refresh token survived four failures: {text}"
    );
    let (status, _) = try_forward_body(&f, &body).await;
    assert_eq!(status, 400, "rotated once it succeeded");

    // And an approved device code: put back after each failure.
    let answer =
        f.h.refused(post_device(&format!("client_id={}", f.tv)))
            .await;
    let device = answer.json();
    let device_code = device["device_code"].as_str().unwrap().to_owned();
    let user_code = device["user_code"].as_str().unwrap().to_owned();
    assert!(
        f.h.layer
            .devices()
            .approve(&user_code, "user-1")
            .await
            .unwrap()
    );
    let body = format!(
        "grant_type={DEVICE_GRANT}&client_id={}&device_code={device_code}",
        f.tv
    );
    for fault in FAULTS {
        f.h.clock.advance(Duration::from_secs(60));
        send_faulty(&f, &body, fault).await;
        // A release after a drop may still be on its way to the server.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f.h.clock.advance(Duration::from_secs(60));
    let (status, text) = try_forward_body(&f, &body).await;
    assert_eq!(
        status, 200,
        "the device code survived four failures: {text}"
    );
    f.h.clock.advance(Duration::from_secs(60));
    let (status, text) = try_forward_body(&f, &body).await;
    assert_eq!(status, 400, "redeemed once it succeeded: {text}");
}

/// A claim whose holder died lapses: until then the code is refused
/// (without the replay hook: nobody replayed it), after it the code is
/// redeemable exactly once, and the dead holder's late confirmation fails.
async fn a_lapsed_claim_frees_the_code<S: Backend>(store: S, clock: ManualClock) {
    let ttl = Duration::from_millis(300);
    let f = fixture_with(store.clone(), clock, ttl).await;
    let code = f.code().await;
    let key = tokengate::store::CodeKey::of(&code);
    let dead = tokengate::store::Claim::new(ttl).unwrap();
    assert!(matches!(
        store.reserve(&key, &dead).await.unwrap(),
        tokengate::store::Redemption::Claimed(_)
    ));
    let (status, text) = try_forward(&f, &code).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(f.replays.load(Ordering::SeqCst), 0);
    // Past the claim's life, by the gate's clock and the server's.
    f.h.clock.advance(Duration::from_millis(400));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, text) = try_forward(&f, &code).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        !store.confirm(&key, &dead).await.unwrap(),
        "the dead claim was lost"
    );
    store.release(&key, &dead).await.unwrap();
    assert_eq!(
        try_forward(&f, &code).await.0,
        400,
        "still used after the stale release"
    );
    assert_eq!(f.replays.load(Ordering::SeqCst), 1);
}

/// An inner service slower than the claim: another request takes the code
/// over meanwhile and gets the token; the slow one's 2xx becomes a 500, so
/// one code never hands out two tokens.
async fn a_lost_claim_withholds_the_token<S: Backend>(store: S, clock: ManualClock) {
    use tower::{ServiceBuilder, ServiceExt, service_fn};
    let ttl = Duration::from_millis(300);
    let f = Arc::new(fixture_with(store, clock, ttl).await);
    let code = f.code().await;
    let body = f.exchange(&code);
    let (entered, inside) = tokio::sync::oneshot::channel::<()>();
    let (leave, go) = tokio::sync::oneshot::channel::<()>();
    let slow = ServiceBuilder::new()
        .layer(f.h.layer.clone())
        .service(service_fn({
            let cell = Arc::new(std::sync::Mutex::new(Some((entered, go))));
            move |_: http::Request<tokengate::RequestBody<String>>| {
                let (entered, go) = cell.lock().unwrap().take().unwrap();
                async move {
                    entered.send(()).unwrap();
                    go.await.unwrap();
                    Ok::<_, std::convert::Infallible>(http::Response::new("slow token".to_owned()))
                }
            }
        }));
    let slow = tokio::spawn(slow.oneshot(post(&body)));
    inside.await.unwrap();
    f.h.clock.advance(Duration::from_millis(400));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, text) = try_forward_body(&f, &body).await;
    assert_eq!(status, 200, "the code was free again: {text}");
    leave.send(()).unwrap();
    let answer = Answer::read(slow.await.unwrap().unwrap()).await;
    answer.assert_rfc(500, "server_error");
    assert_eq!(try_forward_body(&f, &body).await.0, 400);
}

/// The store contract of claims, straight on the store.
async fn claim_contract<S: Backend>(store: S, clock: ManualClock) {
    use tokengate::{store::Claim, store::Redemption};
    let f = fixture(store.clone(), clock).await;
    let key = tokengate::store::CodeKey::of(&f.code().await);
    let (a, b) = (
        Claim::new(Duration::from_secs(30)).unwrap(),
        Claim::new(Duration::from_secs(30)).unwrap(),
    );
    assert!(matches!(
        store.reserve(&key, &a).await.unwrap(),
        Redemption::Claimed(_)
    ));
    assert_eq!(store.reserve(&key, &b).await.unwrap(), Redemption::Busy);
    assert_eq!(
        store.redeem(&key).await.unwrap(),
        Redemption::Busy,
        "consume-on-read waits too"
    );
    assert!(!store.confirm(&key, &b).await.unwrap(), "not b's claim");
    store.release(&key, &b).await.unwrap();
    assert_eq!(
        store.reserve(&key, &b).await.unwrap(),
        Redemption::Busy,
        "b's release did nothing"
    );
    store.release(&key, &a).await.unwrap();
    assert!(matches!(
        store.reserve(&key, &b).await.unwrap(),
        Redemption::Claimed(_)
    ));
    assert!(!store.confirm(&key, &a).await.unwrap(), "a's claim is gone");
    assert!(store.confirm(&key, &b).await.unwrap());
    assert!(matches!(
        store.reserve(&key, &a).await.unwrap(),
        Redemption::Used(_)
    ));
    assert!(matches!(
        store.redeem(&key).await.unwrap(),
        Redemption::Used(_)
    ));
    let unknown = tokengate::store::CodeKey::of("never-issued");
    assert_eq!(
        store.reserve(&unknown, &a).await.unwrap(),
        Redemption::Unknown
    );
    assert!(!store.confirm(&unknown, &a).await.unwrap());

    // A claim that lapsed, then a consume-on-read redemption: the stale
    // holder's confirmation must fail (one code, one token).
    let key = tokengate::store::CodeKey::of(&f.code().await);
    let short = Claim::new(Duration::from_millis(200)).unwrap();
    assert!(matches!(
        store.reserve(&key, &short).await.unwrap(),
        Redemption::Claimed(_)
    ));
    f.h.clock.advance(Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(
        store.redeem(&key).await.unwrap(),
        Redemption::Claimed(_)
    ));
    assert!(
        !store.confirm(&key, &short).await.unwrap(),
        "a lapsed claim confirmed a code used meanwhile"
    );

    // Many claims at once: exactly one wins.
    let key = tokengate::store::CodeKey::of(&f.code().await);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let hold = Claim::new(Duration::from_secs(30)).unwrap();
                store.reserve(&key, &hold).await.unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Redemption::Claimed(_) => won += 1,
            Redemption::Busy => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(won, 1);
}

/// Sends `body` to a working inner service; the status and body.
async fn try_forward_body(f: &Fixture, body: &str) -> (u16, String) {
    let answer = f.h.answered_by(http::StatusCode::OK, post(body)).await;
    (answer.status.as_u16(), answer.text().to_owned())
}

/// Sends a valid exchange of `code`; the status and body, whether or not it
/// was forwarded.
async fn try_forward(f: &Fixture, code: &str) -> (u16, String) {
    try_forward_body(f, &f.exchange(code)).await
}

macro_rules! store_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn issue_redeem_and_replay() {
                let (store, clock) = $make.await;
                super::issue_redeem_and_replay(store, clock).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expiry_and_wrong_client() {
                let (store, clock) = $make.await;
                super::expiry_and_wrong_client(store, clock).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_hundred_tasks_twenty_codes() {
                let (store, clock) = $make.await;
                super::two_hundred_tasks_twenty_codes(store, clock).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn refresh_rotation_and_family_revocation() {
                let (store, clock) = $make.await;
                super::refresh_rotation_and_family_revocation(store, clock).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn claims_survive_every_failure() {
                let (store, clock) = $make.await;
                super::claims_survive_every_failure(store, clock).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_lapsed_claim_frees_the_code() {
                let (store, clock) = $make.await;
                super::a_lapsed_claim_frees_the_code(store, clock).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_lost_claim_withholds_the_token() {
                let (store, clock) = $make.await;
                super::a_lost_claim_withholds_the_token(store, clock).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn claim_contract() {
                let (store, clock) = $make.await;
                super::claim_contract(store, clock).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn device_interval_vector_and_single_redemption() {
                let (store, clock) = $make.await;
                super::device_interval_vector_and_single_redemption(store, clock).await;
            }
        }
    };
}

async fn memory() -> (tokengate::MemoryStore, ManualClock) {
    let clock = ManualClock::new();
    (tokengate::MemoryStore::with_clock(clock.clone()), clock)
}

store_suite!(memory, memory());

#[cfg(feature = "redis")]
fn redis_url() -> String {
    std::env::var("TOKENGATE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

#[cfg(feature = "redis")]
async fn redis_at(url: &str, timeout: Duration) -> (tokengate_redis::RedisStore, ManualClock) {
    let store = tokengate_redis::RedisStore::connect_with(url, &unique("tokengate-test"), timeout)
        .await
        .unwrap();
    (store, ManualClock::new())
}

#[cfg(feature = "redis")]
store_suite!(redis, redis_at(&redis_url(), Duration::from_secs(2)));

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_and_recovery() {
    let relay = Relay::start(authority(&redis_url())).await;
    let timeout = Duration::from_millis(500);
    let (store, clock) = redis_at(&format!("redis://{}", relay.addr), timeout).await;
    outage_and_recovery(store, clock, relay, timeout).await;
}

#[cfg(feature = "postgres")]
fn postgres_url() -> String {
    std::env::var("TOKENGATE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

#[cfg(feature = "postgres")]
async fn postgres_at(
    url: &str,
    timeout: Duration,
) -> (tokengate_postgres::PostgresStore, ManualClock) {
    let clock = ManualClock::new();
    let store = tokengate_postgres::PostgresStore::connect_with(url, timeout, clock.clone())
        .await
        .unwrap();
    store
        .migrate()
        .await
        .expect("PostgreSQL must be reachable for the postgres suite");
    (store, clock)
}

#[cfg(feature = "postgres")]
store_suite!(
    postgres,
    postgres_at(&postgres_url(), Duration::from_secs(5))
);

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_and_recovery() {
    // Migrate through the real address first, then run through the relay.
    postgres_at(&postgres_url(), Duration::from_secs(5)).await;
    let relay = Relay::start(authority(&postgres_url())).await;
    let timeout = Duration::from_millis(500);
    let url = postgres_url().replace(&authority(&postgres_url()), &relay.addr);
    let clock = ManualClock::new();
    let store = tokengate_postgres::PostgresStore::connect_with(&url, timeout, clock.clone())
        .await
        .unwrap();
    outage_and_recovery(store, clock, relay, timeout).await;
}
