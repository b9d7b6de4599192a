//! `migrate()` on databases of its own: a fresh one gets the latest schema,
//! and one a release at schema version 4 left behind, rows and all, is
//! upgraded in place, its rows still answering as before.
//!
//! Needs a PostgreSQL server (`TOKENGATE_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`) whose user may create
//! databases: without one these tests fail, they never skip. Each test
//! creates a database with a random name and drops it when done, so the
//! shared database and other runs are never touched.

use std::{
    future::Future,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sqlx::{Connection, PgConnection};
use tokengate::{
    Client,
    authorize::CodeRecord,
    client::ClientRecord,
    clock::{Clock, ManualClock},
    refresh::RefreshRecord,
    store::{
        Claim, ClientStore, CodeKey, CodeStore, Lookup, Redemption, RefreshStore, Reuse,
        ReuseWindow,
    },
};
use tokengate_postgres::PostgresStore;

/// The schema version the latest migration reaches.
const LATEST: i32 = 5;

/// The migrations a release at schema version 4 had applied.
const UP_TO_4: [(i32, &str); 4] = [
    (1, include_str!("../migrations/0001_tokengate.sql")),
    (2, include_str!("../migrations/0002_claims.sql")),
    (3, include_str!("../migrations/0003_lockout.sql")),
    (4, include_str!("../migrations/0004_replays.sql")),
];

fn url() -> String {
    std::env::var("TOKENGATE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `url` pointing at database `name` instead.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').expect("a URL with a database");
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

fn fresh_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("randomness");
    hex::encode(buffer)
}

/// Runs `test` against the URL of a database created for it, and drops the
/// database afterwards, also when the test panics (the panic is then
/// resumed).
async fn in_scratch_database<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = format!("tokengate_migrate_{}", fresh_hex(6));
    let mut admin = PgConnection::connect(&url())
        .await
        .expect("PostgreSQL must be reachable for this test");
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("the test user may create databases");
    let outcome = tokio::spawn(test(with_database(&url(), &name))).await;
    // The store's pool may still hold connections: FORCE ends them.
    sqlx::raw_sql(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("the scratch database is dropped");
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

async fn store(url: &str, clock: &ManualClock) -> PostgresStore {
    PostgresStore::connect_with(url, Duration::from_secs(5), clock.clone())
        .await
        .expect("a valid PostgreSQL URL")
}

/// The versions recorded as applied, in order.
async fn versions(url: &str) -> Vec<i32> {
    let mut connection = PgConnection::connect(url).await.expect("PostgreSQL is up");
    sqlx::query_scalar("SELECT version FROM tokengate_schema ORDER BY version")
        .fetch_all(&mut connection)
        .await
        .expect("the schema table exists")
}

fn millis(time: SystemTime) -> i64 {
    let since = time.duration_since(UNIX_EPOCH).expect("after 1970");
    i64::try_from(since.as_millis()).expect("a time of this era")
}

fn refresh_record(subject: &str, family: &str, now: SystemTime) -> RefreshRecord {
    RefreshRecord {
        client_id: "app".to_owned(),
        subject: subject.to_owned(),
        scopes: vec!["read".to_owned()],
        family: family.to_owned(),
        issued_at: now,
        expires_at: now + Duration::from_secs(3600),
        dpop_jkt: None,
    }
}

fn window() -> ReuseWindow {
    ReuseWindow {
        within: Duration::from_secs(60),
        limit: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_database_gets_the_latest_schema() {
    in_scratch_database(|url| async move {
        let clock = ManualClock::new();
        let store = store(&url, &clock).await;
        // Two processes starting at once: the advisory lock makes the
        // second wait, then find nothing left to do.
        let (first, second) = tokio::join!(store.migrate(), store.migrate());
        first.expect("the first migration");
        second.expect("a concurrent migration");
        let all: Vec<i32> = (1..=LATEST).collect();
        assert_eq!(versions(&url).await, all, "every migration, once each");
        store
            .migrate()
            .await
            .expect("a migration with nothing to do");
        assert_eq!(versions(&url).await, all, "nothing applied twice");

        // What version 5 brought works: the introspect column, and a
        // reuse after a rotation.
        let client = Client::confidential(format!("rs-{}", fresh_hex(8)))
            .with_secret("s3cret")
            .with_introspection(true);
        store
            .insert_client(&client)
            .await
            .expect("PostgreSQL is up");
        let read = store
            .client(client.client_id())
            .await
            .expect("PostgreSQL is up")
            .expect("the client was stored");
        assert!(
            read.may_introspect(),
            "the introspect column keeps its flag"
        );
        let key = CodeKey::of(&fresh_hex(16));
        let record = refresh_record("alice", &fresh_hex(8), clock.now());
        RefreshStore::issue(&store, key, record.clone())
            .await
            .expect("issued");
        let claim = Claim::new(Duration::from_secs(60)).expect("randomness");
        assert!(matches!(
            RefreshStore::claim(&store, &key, &claim).await,
            Ok(Redemption::Claimed(_))
        ));
        assert!(
            RefreshStore::confirm(&store, &key, &claim)
                .await
                .expect("PostgreSQL is up")
        );
        assert_eq!(
            store.reuse(&key, window()).await.expect("PostgreSQL is up"),
            Reuse::Granted(record),
            "a token rotated on the new schema is reused within its window"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_at_version_4_is_upgraded_with_its_rows() {
    in_scratch_database(|url| async move {
        let clock = ManualClock::new();
        let now = clock.now();
        let family = fresh_hex(8);
        let (rotated, unused, code) = (
            CodeKey::of(&fresh_hex(16)),
            CodeKey::of(&fresh_hex(16)),
            CodeKey::of(&fresh_hex(16)),
        );
        let (rotated_record, unused_record) = (
            refresh_record("rotated", &family, now),
            refresh_record("unused", &family, now),
        );
        let client = Client::confidential(format!("app-{}", fresh_hex(8)))
            .with_secret("s3cret")
            .with_redirect_uri("https://client.example.com/cb")
            .with_dpop_bound_access_tokens(true);
        let written = ClientRecord::from(&client);

        // The database as a release at version 4 left it: its migrations,
        // as that release's `migrate()` recorded them, and rows in its
        // columns (a token rotated then, before rotation times were kept).
        {
            // A pool, not a connection: the test runs in a spawned task,
            // and sqlx's futures over `&mut PgConnection` in a loop are not
            // `Send`.
            let old = sqlx::PgPool::connect(&url).await.expect("PostgreSQL is up");
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS tokengate_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .execute(&old)
            .await
            .expect("the schema table");
            for (version, sql) in UP_TO_4 {
                sqlx::raw_sql(sql)
                    .execute(&old)
                    .await
                    .unwrap_or_else(|e| panic!("migration {version}: {e}"));
                sqlx::query("INSERT INTO tokengate_schema (version) VALUES ($1)")
                    .bind(version)
                    .execute(&old)
                    .await
                    .expect("the version recorded");
            }
            sqlx::query(
                "INSERT INTO tokengate_clients (client_id, public, secret_digests, redirect_uris, redirect_policy, grant_types, scopes,
                   token_endpoint_auth_method, jwks, jwt_secret, dpop_bound_access_tokens)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10)",
            )
            .bind(&written.client_id)
            .bind(written.public)
            .bind(&written.secret_digests)
            .bind(&written.redirect_uris)
            .bind(&written.redirect_policy)
            .bind(&written.grant_types)
            .bind(&written.scopes)
            .bind(&written.token_endpoint_auth_method)
            .bind(&written.jwt_secret)
            .bind(written.dpop_bound_access_tokens)
            .execute(&old)
            .await
            .expect("a version 4 client row");
            for (key, record, uses) in [(rotated, &rotated_record, 1), (unused, &unused_record, 0)] {
                sqlx::query(
                    "INSERT INTO tokengate_refresh_tokens (key, family, record, uses, expires_at_ms)
                     VALUES ($1, $2, $3::jsonb, $4, $5)",
                )
                .bind(&key.as_bytes()[..])
                .bind(&record.family)
                .bind(serde_json::to_string(record).expect("a record encodes"))
                .bind(uses)
                .bind(millis(record.expires_at))
                .execute(&old)
                .await
                .expect("a version 4 refresh token row");
            }
            let code_record = CodeRecord {
                client_id: written.client_id.clone(),
                subject: "alice".to_owned(),
                scopes: vec!["read".to_owned()],
                redirect_uri: Some("https://client.example.com/cb".to_owned()),
                pkce: None,
                issued_at: now,
                expires_at: now + Duration::from_secs(60),
                dpop_jkt: None,
            };
            sqlx::query(
                "INSERT INTO tokengate_codes (key, record, expires_at_ms) VALUES ($1, $2::jsonb, $3)",
            )
            .bind(&code.as_bytes()[..])
            .bind(serde_json::to_string(&code_record).expect("a record encodes"))
            .bind(millis(code_record.expires_at))
            .execute(&old)
            .await
            .expect("a version 4 code row");
        }
        assert_eq!(versions(&url).await, [1, 2, 3, 4], "the database starts at 4");

        let store = store(&url, &clock).await;
        store.migrate().await.expect("the upgrade from version 4");
        let all: Vec<i32> = (1..=LATEST).collect();
        assert_eq!(versions(&url).await, all, "upgraded to the latest version");
        store.migrate().await.expect("a migration with nothing to do");
        assert_eq!(versions(&url).await, all, "nothing applied twice");

        // The rows answer as before the upgrade.
        let read = store
            .client(&written.client_id)
            .await
            .expect("the upgraded client row reads")
            .expect("the client survived the upgrade");
        assert_eq!(
            ClientRecord::from(&*read),
            written,
            "a client of version 4 reads back as written (and may not introspect)"
        );
        assert!(matches!(
            CodeStore::claim(&store, &code, &Claim::new(Duration::from_secs(60)).expect("randomness")).await,
            Ok(Redemption::Claimed(_))
        ), "a code issued before the upgrade is redeemed after it");
        assert_eq!(
            store.find(&rotated).await.expect("PostgreSQL is up"),
            Lookup::Used(rotated_record.clone()),
            "a token rotated before the upgrade stays used"
        );
        // Rotated when no rotation time was kept: outside every window, so
        // presenting it is a replay, as it was before the upgrade.
        assert_eq!(
            store.reuse(&rotated, window()).await.expect("PostgreSQL is up"),
            Reuse::Refused(rotated_record),
            "a token rotated before the upgrade has no reuse window"
        );
        // A token left unused rotates after the upgrade, and its window opens.
        assert_eq!(
            store.reuse(&unused, window()).await.expect("PostgreSQL is up"),
            Reuse::NotRotated,
            "a token unused before the upgrade is not rotated"
        );
        let claim = Claim::new(Duration::from_secs(60)).expect("randomness");
        assert!(matches!(
            RefreshStore::claim(&store, &unused, &claim).await,
            Ok(Redemption::Claimed(_))
        ));
        assert!(
            RefreshStore::confirm(&store, &unused, &claim)
                .await
                .expect("PostgreSQL is up")
        );
        assert_eq!(
            store.reuse(&unused, window()).await.expect("PostgreSQL is up"),
            Reuse::Granted(unused_record),
            "a token rotated after the upgrade is reused within its window"
        );
    })
    .await;
}
