//! Two demo processes on one Redis Cluster (three masters with a replica
//! each, from `.ci/redis-cluster start`): thousands of codes redeemed from
//! both at once, then again while a master is killed (and brought back, as
//! the new master's replica), and while a replica stops answering.
//!
//! Ignored by the plain `cargo test` (they need the cluster); `.ci/run`
//! starts it and runs them with `--ignored`, where an unreachable cluster
//! fails them. They run one at a time (a lock): the failover test kills a
//! node, and brings it back, as a replica, before it ends.

mod common;

use std::{
    collections::{HashMap, HashSet},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use common::demo::*;
use tokio::sync::{Mutex, Semaphore};

/// The cluster's first port; its nodes are this and the five after it.
fn first_port() -> u16 {
    std::env::var("TOKENGATE_CLUSTER_PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(7000)
}

fn cluster_url() -> String {
    let port = first_port();
    format!(
        "redis+cluster://127.0.0.1:{port},127.0.0.1:{},127.0.0.1:{}",
        port + 1,
        port + 2
    )
}

/// A store on the cluster with a key prefix of its own, and the prefix.
async fn own_store() -> (String, tokengate_redis::RedisStore) {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    let prefix = format!("tokengate-test-{}", hex::encode(bytes));
    let store =
        tokengate_redis::RedisStore::connect_with(&cluster_url(), &prefix, Duration::from_secs(2))
            .await
            .unwrap();
    (prefix, store)
}

/// The process id of the node at `port`.
fn pid_of(port: u16) -> Option<String> {
    cli(port, &["info", "server"]).and_then(|info| {
        info.lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .map(|pid| pid.trim().to_owned())
    })
}

/// One test at a time in this binary.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// `redis-cli -p PORT ARGS..`'s output, or `None` if the node is away.
fn cli(port: u16, args: &[&str]) -> Option<String> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is installed");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.success() && !text.starts_with("Could not connect")).then_some(text)
}

/// `CLUSTER NODES` from any node that answers: (port, flags, link state).
fn nodes() -> Vec<(u16, String, String)> {
    let port = first_port();
    let text = (port..port + 6)
        .find_map(|port| cli(port, &["cluster", "nodes"]).filter(|t| !t.is_empty()))
        .expect("a node of the Redis Cluster answers (.ci/redis-cluster start)");
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let port = fields.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
            Some((port, fields.get(2)?.to_string(), fields.get(7)?.to_string()))
        })
        .collect()
}

/// The cluster is whole: every slot served, three masters and three
/// replicas connected and in sync.
fn whole() -> bool {
    let state = cli(first_port(), &["cluster", "info"]).unwrap_or_default();
    let nodes = nodes();
    let count = |role: &str| {
        nodes
            .iter()
            .filter(|(_, flags, link)| {
                flags.contains(role) && !flags.contains("fail") && link == "connected"
            })
            .count()
    };
    // Each replica in sync with its master: a write waits for it.
    let synced = nodes
        .iter()
        .filter(|(_, flags, _)| flags.contains("slave"))
        .all(|(port, _, _)| {
            cli(*port, &["info", "replication"])
                .is_some_and(|info| info.contains("master_link_status:up"))
        });
    state.contains("cluster_state:ok") && count("master") == 3 && count("slave") == 3 && synced
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Codes minted through both processes in turn, `at_once` at a time.
async fn mint(servers: &[String; 2], count: usize) -> Vec<String> {
    let limit = Arc::new(Semaphore::new(32));
    let mut tasks = Vec::new();
    for i in 0..count {
        let addr = servers[i % 2].clone();
        let limit = Arc::clone(&limit);
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            authorize(&addr, "demo-client").await
        }));
    }
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap());
    }
    codes
}

/// One presentation's answer: its status and its access token, if any.
type Answer = (u16, Option<String>);

/// When each failed-closed answer came, for the outage's length.
static FAILED_AT: std::sync::Mutex<Vec<Instant>> = std::sync::Mutex::new(Vec::new());

/// Every code presented to both processes at once, 64 requests in flight.
/// The answers per code, in no order.
async fn redeem_all(servers: &[String; 2], codes: &[String]) -> Vec<Vec<Answer>> {
    let limit = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for code in codes {
        for addr in servers {
            let (addr, body, limit) = (addr.clone(), demo_exchange(code), Arc::clone(&limit));
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                answer(&addr, &body).await
            }));
        }
    }
    let mut answers = vec![Vec::new(); codes.len()];
    for (n, task) in tasks.into_iter().enumerate() {
        answers[n / 2].push(task.await.unwrap());
    }
    answers
}

/// One token request, checked for its shape: a `200` with a token, an
/// `invalid_grant`, or (only while a master is down) a `500 server_error`.
async fn answer(addr: &str, body: &str) -> Answer {
    let reply = token(addr, "", body).await;
    let json = reply.json();
    match reply.status {
        200 => {
            let token = json["access_token"].as_str().expect("a token").to_owned();
            (200, Some(token))
        }
        400 => {
            assert_eq!(json["error"], "invalid_grant", "{json}");
            (400, None)
        }
        500 => {
            assert_eq!(json["error"], "server_error", "{json}");
            FAILED_AT.lock().unwrap().push(Instant::now());
            (500, None)
        }
        other => panic!("unexpected {other}: {}", reply.body),
    }
}

fn demo_processes() -> (Server, Server) {
    let url = cluster_url();
    // Thousands of deliberate replays by one client: the lockout (its own
    // tests) would answer them 429.
    let args = ["--store", &url, "--dialect", "rfc6749", "--lockout", "off"];
    (start(&args), start(&args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Redis Cluster (.ci/redis-cluster start); .ci/run runs it"]
async fn thousands_of_codes_redeemed_from_two_processes_at_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    assert!(whole(), "the Redis Cluster is whole before the test");
    let (a, b) = demo_processes();
    let servers = [a.addr.clone(), b.addr.clone()];
    let codes = mint(&servers, 2000).await;
    let answers = redeem_all(&servers, &codes).await;

    let mut tokens = HashSet::new();
    for (code, answers) in answers.iter().enumerate() {
        let won: Vec<_> = answers.iter().filter_map(|(_, t)| t.clone()).collect();
        assert_eq!(won.len(), 1, "code {code}: exactly one token: {answers:?}");
        assert!(
            answers.iter().all(|(status, _)| *status != 500),
            "no 5xx with the cluster whole: {answers:?}"
        );
        assert!(tokens.insert(won[0].clone()), "every token distinct");
    }
    assert_eq!(tokens.len(), codes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Redis Cluster (.ci/redis-cluster start); .ci/run runs it"]
async fn a_master_killed_during_redemptions_fails_closed_and_service_comes_back() {
    let _alone = ONE_AT_A_TIME.lock().await;
    assert!(whole(), "the Redis Cluster is whole before the test");
    let (a, b) = demo_processes();
    let servers = [a.addr.clone(), b.addr.clone()];
    let codes = mint(&servers, 2000).await;

    // The first seed's master goes: the demo processes must find the
    // cluster through the other seeds too.
    let victim = nodes()
        .into_iter()
        .find(|(port, flags, _)| *port == first_port() && flags.contains("master"))
        .or_else(|| {
            nodes()
                .into_iter()
                .find(|(_, flags, _)| flags.contains("master"))
        })
        .expect("a master")
        .0;
    let pid = pid_of(victim).expect("the master's process id");

    let redeeming = {
        let (servers, codes) = (servers.clone(), codes.clone());
        tokio::spawn(async move { redeem_all(&servers, &codes).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    let status = Command::new("kill").args(["-9", &pid]).status().unwrap();
    assert!(status.success(), "kill -9 {pid}");
    let answers = redeeming.await.unwrap();

    // The killed node comes back, as an orchestrator would bring it back,
    // and rejoins as the new master's replica. Until then, that master's
    // writes fail closed: a write no replica holds could be lost by the
    // next failover, so the store waits for one (`wait_for_replicas`).
    let revive = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/redis-cluster"))
        .args(["revive", &victim.to_string()])
        .status()
        .unwrap();
    assert!(revive.success(), ".ci/redis-cluster revive {victim}");
    let revived = Instant::now();

    // Service comes back by itself (no gate process restarted): a fresh
    // code redeems through each process within 60 s of the node's return.
    for addr in &servers {
        let deadline = revived + Duration::from_secs(60);
        loop {
            let reply = send(
                addr,
                &format!(
                    "GET /login/oauth/authorize?response_type=code&client_id=demo-client&redirect_uri={REDIRECT}&state=st&scope=repo&code_challenge={}&code_challenge_method=S256 HTTP/1.1",
                    common::CHALLENGE
                ),
                "",
            )
            .await;
            if reply.status == 302 {
                let location = &reply.headers["location"];
                let code = location
                    .split(['?', '&'])
                    .find_map(|part| part.strip_prefix("code="))
                    .expect("a code")
                    .to_owned();
                let (status, token) = answer(addr, &demo_exchange(&code)).await;
                if status == 200 && token.is_some() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "service did not come back within 60 s of the node's return"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let recovered = revived.elapsed();

    // No code gave two tokens, during the failover or after it: every code
    // without a token is presented again (a claim the failover left
    // unconfirmed lapses after 30 s: it may redeem now, once), then every
    // code once more, and none redeems a second time.
    let mut tokens: HashMap<usize, Vec<String>> = HashMap::new();
    let mut failed_closed = 0;
    for (code, answers) in answers.iter().enumerate() {
        for (status, token) in answers {
            failed_closed += usize::from(*status == 500);
            if let Some(token) = token {
                tokens.entry(code).or_default().push(token.clone());
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(31)).await; // claims lapse (30 s)
    for _ in 0..2 {
        let retried = redeem_all(&servers, &codes).await;
        for (code, answers) in retried.iter().enumerate() {
            for (status, token) in answers {
                assert_ne!(*status, 500, "a 500 after service came back");
                if let Some(token) = token {
                    tokens.entry(code).or_default().push(token.clone());
                }
            }
        }
    }
    for (code, won) in &tokens {
        assert_eq!(won.len(), 1, "code {code} gave {} tokens", won.len());
    }
    let all: HashSet<_> = tokens.values().flatten().collect();
    assert_eq!(all.len(), tokens.len(), "every token distinct");
    let last_failure = FAILED_AT
        .lock()
        .unwrap()
        .iter()
        .max()
        .map(|at| at.saturating_duration_since(killed));
    eprintln!(
        "failover: {} of {} codes redeemed; {failed_closed} of {} answers failed closed, the last {last_failure:?} after the kill; a fresh code redeemed {recovered:?} after the killed node's return",
        tokens.len(),
        codes.len(),
        2 * codes.len()
    );

    wait_until("the cluster whole again", Duration::from_secs(60), whole);
}

/// A replica that stops acknowledging (its process stopped, its connection
/// still open, so its master still lists it) fails closed the writes a
/// failover must not lose on that master's slots, within the store's
/// bound; a claim, which need not survive a failover, still goes through;
/// and once the replica is back, writes go through again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Redis Cluster (.ci/redis-cluster start); .ci/run runs it"]
async fn a_silent_replica_fails_its_masters_writes_closed() {
    use tokengate::{
        authorize::CodeRecord,
        store::{Claim, CodeKey, CodeStore, Redemption},
    };

    let _alone = ONE_AT_A_TIME.lock().await;
    assert!(whole(), "the Redis Cluster is whole before the test");
    let (prefix, store) = own_store().await;
    // A master, its replica, and a code whose key is on that master.
    let nodes = nodes();
    let replica = nodes
        .iter()
        .find(|(_, flags, _)| flags.contains("slave"))
        .expect("a replica")
        .0;
    let info = cli(replica, &["info", "replication"]).unwrap();
    let master: u16 = info
        .lines()
        .find_map(|line| line.strip_prefix("master_port:"))
        .and_then(|port| port.trim().parse().ok())
        .expect("the replica's master");
    let key_of = |code: &str| format!("{prefix}:code:{}", CodeKey::of(code).to_hex());
    let on_master = |code: &str| {
        let slot: u16 = cli(master, &["cluster", "keyslot", &key_of(code)])
            .and_then(|slot| slot.trim().parse().ok())
            .unwrap();
        served_by(master, slot)
    };
    let codes: Vec<String> = (0..)
        .map(|n| format!("silent-{n}"))
        .filter(|code| on_master(code))
        .take(3)
        .collect();
    let now = std::time::SystemTime::now();
    let record = CodeRecord {
        client_id: "app".into(),
        subject: "alice".into(),
        scopes: vec![],
        redirect_uri: None,
        pkce: None,
        issued_at: now,
        expires_at: now + Duration::from_secs(600),
        dpop_jkt: None,
    };
    CodeStore::issue(&store, CodeKey::of(&codes[0]), record.clone())
        .await
        .expect("issued while the replica answers");

    let pid = pid_of(replica).unwrap();
    let stop = Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    assert!(stop.success());
    let started = Instant::now();
    let issued = CodeStore::issue(&store, CodeKey::of(&codes[1]), record.clone()).await;
    let claim = Claim::new(Duration::from_secs(30)).unwrap();
    let claimed = store.claim(&CodeKey::of(&codes[0]), &claim).await;
    let confirmed = store.confirm(&CodeKey::of(&codes[0]), &claim).await;
    let elapsed = started.elapsed();
    let cont = Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    assert!(cont.success());

    assert!(issued.is_err(), "an issue nobody replicated: {issued:?}");
    assert!(
        matches!(claimed, Ok(Redemption::Claimed(_))),
        "a claim needs no replica: {claimed:?}"
    );
    assert!(
        confirmed.is_err(),
        "a confirmation nobody replicated: {confirmed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "bounded: {elapsed:?}");

    // The replica is back: writes go through again.
    wait_until("the replica in sync again", Duration::from_secs(30), whole);
    CodeStore::issue(&store, CodeKey::of(&codes[2]), record)
        .await
        .expect("issued once the replica answers again");
}

/// Whether the master at `port` serves `slot`, by its `CLUSTER NODES`.
fn served_by(port: u16, slot: u16) -> bool {
    let nodes = cli(port, &["cluster", "nodes"]).unwrap_or_default();
    nodes.lines().any(|line| {
        line.contains("myself") && line.contains("master") && {
            line.split(' ')
                .skip(8)
                .any(|range| match range.split_once('-') {
                    Some((a, b)) => {
                        (a.parse().unwrap_or(u16::MAX)..=b.parse().unwrap_or(0)).contains(&slot)
                    }
                    None => range.parse() == Ok(slot),
                })
        }
    })
}

/// A seed master that hangs (its process stopped: connections open, no
/// answer) fails its own slots closed, and nothing else: the two healthy
/// shards keep answering throughout, since a rebuilt cluster client is
/// swapped in only once it has connected, never while it waits on the hung
/// seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Redis Cluster (.ci/redis-cluster start); .ci/run runs it"]
async fn a_hung_seed_master_stalls_only_its_own_slots() {
    let _alone = ONE_AT_A_TIME.lock().await;
    assert!(whole(), "the Redis Cluster is whole before the test");
    let (prefix, store) = own_store().await;
    // A seed that is a master: the URL names the first three ports.
    let seeds: Vec<u16> = (first_port()..first_port() + 3).collect();
    let seed_master = || {
        nodes()
            .into_iter()
            .find(|(port, flags, _)| seeds.contains(port) && flags.contains("master"))
            .map(|(port, _, _)| port)
    };
    let victim = match seed_master() {
        Some(port) => port,
        None => {
            // Earlier failovers left the seeds replicas: one takes its
            // master's place again, as an operator would (`CLUSTER FAILOVER`).
            cli(first_port(), &["cluster", "failover"]).expect("CLUSTER FAILOVER");
            wait_until("a seed master", Duration::from_secs(30), || {
                seed_master().is_some() && whole()
            });
            seed_master().unwrap()
        }
    };
    // Clients registered on the other masters' slots, and ids on the
    // victim's (whose look-ups time out while it hangs, and so make the
    // store rebuild its cluster client).
    let mut healthy = Vec::new();
    let mut on_victim = Vec::new();
    for n in 0..60 {
        let id = format!("hung-{n}");
        let key = format!("{prefix}:client:{id}");
        let slot: u16 = cli(victim, &["cluster", "keyslot", &key])
            .and_then(|slot| slot.trim().parse().ok())
            .unwrap();
        if !served_by(victim, slot) {
            let client = tokengate::Client::confidential(&id).with_secret("s3cret");
            store.insert_client(&client).await.expect("registered");
            healthy.push(id);
        } else {
            on_victim.push(id);
        }
    }
    assert!(
        healthy.len() > 20,
        "{} clients off the victim",
        healthy.len()
    );
    let pid = pid_of(victim).unwrap();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopped = Instant::now();
    // Callers of the hung shard, all the while.
    let stalled: Vec<_> = on_victim
        .into_iter()
        .take(8)
        .map(|id| {
            let store = store.clone();
            tokio::spawn(async move {
                while stopped.elapsed() < Duration::from_secs(6) {
                    let _ = tokengate::store::ClientStore::client(&store, &id).await;
                }
            })
        })
        .collect();
    let (mut served, mut failed) = (0, 0);
    while stopped.elapsed() < Duration::from_secs(6) {
        for id in &healthy {
            match tokengate::store::ClientStore::client(&store, id).await {
                Ok(Some(_)) => served += 1,
                _ => failed += 1,
            }
        }
    }
    for caller in stalled {
        caller.await.unwrap();
    }
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_until("the cluster whole again", Duration::from_secs(60), whole);
    eprintln!("hung seed: {served} look-ups on healthy shards served, {failed} failed");
    assert!(
        served > 20 * failed,
        "the healthy shards kept answering: {served} served, {failed} failed"
    );
}
