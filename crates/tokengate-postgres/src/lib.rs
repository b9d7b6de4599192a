//! A PostgreSQL store for [`tokengate`]: clients, codes, refresh tokens,
//! device authorizations and the lockout's failure counters in tables
//! shared by every gate process.
//!
//! Built on `tokengate`'s public store contract
//! ([`tokengate::store`]) alone. Each claim, confirmation and release is one
//! `UPDATE .. RETURNING`: the row lock orders concurrent claims, and the use
//! counter a confirmation bumps is the replay marker. Device polls run the
//! core's own rules ([`DeviceRecord::poll`]) inside a transaction holding
//! the row lock.
//!
//! As a [`LockoutStore`] (`Builder::lockout_store`), it keeps the
//! brute-force defences' counters in `tokengate_lockout`, so every process
//! enforces one threshold: a check is one `SELECT` over all its counters, a
//! failure one `INSERT .. ON CONFLICT DO UPDATE` that counts atomically under
//! the row lock. Windows follow the gate's clock; ended ones count as gone
//! and are deleted by the same [`sweep`](PostgresStore::sweep) as expired
//! codes.
//!
//! As a [`ReplayStore`], it remembers the one-time values (`jti`) of signed
//! client assertions and DPoP proofs in `tokengate_replays` and the DPoP
//! nonces in `tokengate_nonces` (schema version 4), so a value replayed to
//! another process is caught and a nonce issued by one is accepted by all:
//! each call is one atomic `INSERT .. ON CONFLICT DO UPDATE`, and expired
//! rows go with the same sweep.
//!
//! ```no_run
//! # async fn run() -> Result<(), tokengate::StoreError> {
//! use tokengate::TokenGateLayer;
//! use tokengate_postgres::PostgresStore;
//!
//! let store = PostgresStore::connect("postgres://127.0.0.1/test").await?;
//! store.migrate().await?; // creates or upgrades the tokengate_* tables
//! let layer = TokenGateLayer::new(store.clone());
//!
//! // The lockout's counters in the same database, shared by every process:
//! let layer = TokenGateLayer::builder()
//!     .store(store.clone())
//!     .issuer("https://auth.example.com")
//!     .lockout_store(store)
//!     .build();
//! # Ok(()) }
//! ```

use std::{
    fmt,
    future::Future,
    str::FromStr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sqlx::{
    Executor, PgPool, Postgres, Row, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions, PgRow},
};

use tokengate::{
    Client,
    authorize::CodeRecord,
    client::ClientRecord,
    clock::{Clock, SystemClock},
    device::{DEVICE_TOMBSTONE, DeviceDecision, DeviceRecord, DeviceStatus, PollOutcome},
    refresh::RefreshRecord,
    store::{
        Claim, ClientStore, CodeKey, CodeStore, Counter, DeviceStore, LockoutStore, Lookup,
        Redemption, RefreshStore, ReplayStore, Reuse, ReuseWindow, StoreError,
    },
};

/// The default bound on every call; past it the gate answers
/// `500 server_error`.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The migrations, in order; each runs once, in its own transaction.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_tokengate.sql")),
    (2, include_str!("../migrations/0002_claims.sql")),
    (3, include_str!("../migrations/0003_lockout.sql")),
    (4, include_str!("../migrations/0004_replays.sql")),
    (5, include_str!("../migrations/0005_reuse.sql")),
];

/// How often expired rows are swept, at most, per process.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// An arbitrary constant: the advisory lock key that serializes migrations
/// of concurrent processes.
const MIGRATION_LOCK: i64 = 0x746f_6b65_6e67_6174; // "tokengat"

/// Clients, codes, refresh tokens, device codes and failure counters on
/// PostgreSQL.
///
/// Connections come from a pool that re-connects by itself after an outage;
/// every call is bounded by a timeout ([`DEFAULT_STORE_TIMEOUT`]), after which
/// the gate answers `500 server_error`.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    next_sweep: Mutex<SystemTime>,
}

impl PostgresStore {
    /// A store on the database at `url` with the default timeout. The
    /// connection is made lazily: the server may be down now and up later.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, DEFAULT_STORE_TIMEOUT, SystemClock).await
    }

    /// A store with its own per-call timeout, sweeping expired rows by
    /// `clock` (give it the layer's clock).
    pub async fn connect_with(
        url: &str,
        timeout: Duration,
        clock: impl Clock,
    ) -> Result<Self, StoreError> {
        // The client gives up after `timeout`; the server must too, or a
        // statement it keeps running (a redemption that commits after the
        // client answered 500, a lock held by an abandoned transaction)
        // outlives the call.
        let millis = timeout.as_millis().to_string();
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::with_source("invalid PostgreSQL URL", e))?
            .options([
                ("statement_timeout", millis.as_str()),
                ("lock_timeout", millis.as_str()),
                ("idle_in_transaction_session_timeout", millis.as_str()),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(timeout)
            .connect_lazy_with(options);
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                timeout,
                clock: Arc::new(clock),
                next_sweep: Mutex::new(UNIX_EPOCH),
            }),
        })
    }

    /// Creates or upgrades the `tokengate_*` tables. Safe to call from every
    /// process at start-up: concurrent calls wait for each other.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(failed("migrate"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(failed("migrate"))?;
        sqlx::query("CREATE TABLE IF NOT EXISTS tokengate_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            .execute(&mut *tx)
            .await
            .map_err(failed("migrate"))?;
        for (version, sql) in MIGRATIONS {
            let applied: Option<i32> =
                sqlx::query_scalar("SELECT version FROM tokengate_schema WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(failed("migrate"))?;
            if applied.is_none() {
                // Through the executor, so the future stays `Send` and
                // `migrate()` can be spawned.
                tx.execute(sqlx::raw_sql(sql))
                    .await
                    .map_err(failed("migrate"))?;
                sqlx::query("INSERT INTO tokengate_schema (version) VALUES ($1)")
                    .bind(version)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed("migrate"))?;
            }
        }
        tx.commit().await.map_err(failed("migrate"))
    }

    /// Registers `client`, replacing one with the same id.
    pub async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        let stored = ClientRecord::from(client);
        // The JWK set goes in as text, cast to jsonb by the server (as the
        // records are): no JSON type mapping needed in the driver.
        let jwks = stored.jwks.as_ref().map(encode).transpose()?;
        self.bounded("insert client", async {
            sqlx::query(
                "INSERT INTO tokengate_clients (client_id, public, secret_digests, redirect_uris, redirect_policy, grant_types, scopes,
                   token_endpoint_auth_method, jwks, jwt_secret, dpop_bound_access_tokens, introspect)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12)
                 ON CONFLICT (client_id) DO UPDATE SET public = $2, secret_digests = $3, redirect_uris = $4,
                   redirect_policy = $5, grant_types = $6, scopes = $7, token_endpoint_auth_method = $8,
                   jwks = $9::jsonb, jwt_secret = $10, dpop_bound_access_tokens = $11, introspect = $12",
            )
            .bind(&stored.client_id)
            .bind(stored.public)
            .bind(&stored.secret_digests)
            .bind(&stored.redirect_uris)
            .bind(&stored.redirect_policy)
            .bind(&stored.grant_types)
            .bind(&stored.scopes)
            .bind(&stored.token_endpoint_auth_method)
            .bind(&jwks)
            .bind(&stored.jwt_secret)
            .bind(stored.dpop_bound_access_tokens)
            .bind(stored.introspect)
            .execute(&self.inner.pool)
            .await
            .map(drop)
        })
        .await
    }

    /// Removes the client `client_id`.
    pub async fn remove_client(&self, client_id: &str) -> Result<bool, StoreError> {
        self.bounded("remove client", async {
            sqlx::query("DELETE FROM tokengate_clients WHERE client_id = $1")
                .bind(client_id)
                .execute(&self.inner.pool)
                .await
                .map(|done| done.rows_affected() > 0)
        })
        .await
    }

    /// Deletes every row past its expiry (replay markers included), every
    /// revocation that outlived its family, every failure counter whose
    /// window ended, and every one-time value and DPoP nonce past its
    /// `until`. Runs by itself, at most every 30 s per process, when
    /// something is issued, a failure is counted or a one-time value used.
    pub async fn sweep(&self) -> Result<(), StoreError> {
        let now = millis(self.inner.clock.now());
        self.bounded("sweep", async {
            for table in ["tokengate_codes", "tokengate_refresh_tokens"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE expires_at_ms <= $1"))
                    .bind(now)
                    .execute(&self.inner.pool)
                    .await?;
            }
            // Expired device codes stay a while, to keep answering
            // expired_token.
            sqlx::query("DELETE FROM tokengate_devices WHERE expires_at_ms <= $1")
                .bind(now - i64::try_from(DEVICE_TOMBSTONE.as_millis()).unwrap_or(0))
                .execute(&self.inner.pool)
                .await?;
            sqlx::query(
                "DELETE FROM tokengate_refresh_tokens t
                 WHERE EXISTS (SELECT 1 FROM tokengate_revoked_families r WHERE r.family = t.family)",
            )
            .execute(&self.inner.pool)
            .await?;
            // A revocation goes only once no token of its family is left: a
            // successor inserted in a race with the revocation is gone first.
            sqlx::query(
                "DELETE FROM tokengate_revoked_families r WHERE until_ms <= $1
                 AND NOT EXISTS (SELECT 1 FROM tokengate_refresh_tokens t WHERE t.family = r.family)",
            )
                .bind(now)
                .execute(&self.inner.pool)
                .await?;
            // Ended failure counters. Rows a failure holds are skipped (the
            // failure restarts them anyway, and the next sweep finds them
            // if they end again), so the sweep never waits on a failure,
            // and the two never deadlock over rows locked in other orders.
            sqlx::query(
                "DELETE FROM tokengate_lockout WHERE key IN
                 (SELECT key FROM tokengate_lockout WHERE ends_ms <= $1 FOR UPDATE SKIP LOCKED)",
            )
            .bind(now)
            .execute(&self.inner.pool)
            .await?;
            // Expired one-time values and nonces, skipping the rows a use
            // holds for the same reasons (a use that takes an expired row
            // over makes it live again).
            sqlx::query(
                "DELETE FROM tokengate_replays WHERE key IN
                 (SELECT key FROM tokengate_replays WHERE until_ms <= $1 FOR UPDATE SKIP LOCKED)",
            )
            .bind(now)
            .execute(&self.inner.pool)
            .await?;
            sqlx::query(
                "DELETE FROM tokengate_nonces WHERE slot IN
                 (SELECT slot FROM tokengate_nonces WHERE until_ms <= $1 FOR UPDATE SKIP LOCKED)",
            )
            .bind(now)
            .execute(&self.inner.pool)
            .await
            .map(drop)
        })
        .await
    }

    /// Sweeps when due; a failed sweep is logged and retried later, never
    /// the caller's failure.
    async fn sweep_if_due(&self) -> Result<(), StoreError> {
        let now = self.inner.clock.now();
        {
            let mut next = self
                .inner
                .next_sweep
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if now < *next {
                return Ok(());
            }
            *next = now + SWEEP_EVERY;
        }
        if let Err(error) = self.sweep().await {
            tracing::warn!(%error, "sweep of expired rows failed; retrying later");
        }
        Ok(())
    }

    /// Runs `op`, bounded by the timeout.
    async fn bounded<T>(
        &self,
        what: &'static str,
        op: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.inner.timeout, op).await {
            Ok(result) => result.map_err(failed(what)),
            Err(_) => Err(StoreError::new(format!("postgres: {what} timed out"))),
        }
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.inner.pool.begin().await
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

fn failed(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |error| StoreError::with_source(format!("postgres: {what} failed"), error)
}

fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::with_source("cannot encode a record", e))
}

fn decode<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::with_source("cannot decode a stored record", e))
}

/// The record and use count of a row `record::text, uses`.
fn record_and_uses<T: serde::de::DeserializeOwned>(row: &PgRow) -> Result<(T, i64), StoreError> {
    let json: String = row.try_get(0).map_err(failed("read record"))?;
    let uses: i32 = row.try_get(1).map_err(failed("read record"))?;
    Ok((decode(&json)?, i64::from(uses)))
}

impl ClientStore for PostgresStore {
    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        let row = self
            .bounded("client look-up", async {
                sqlx::query(
                    "SELECT client_id, public, secret_digests, redirect_uris, redirect_policy, grant_types, scopes,
                       token_endpoint_auth_method, jwks::text, jwt_secret, dpop_bound_access_tokens,
                       introspect
                     FROM tokengate_clients WHERE client_id = $1",
                )
                .bind(client_id)
                .fetch_optional(&self.inner.pool)
                .await
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let read = failed("read client");
        let jwks: Option<String> = row.try_get(8).map_err(&read)?;
        let stored = ClientRecord {
            client_id: row.try_get(0).map_err(&read)?,
            public: row.try_get(1).map_err(&read)?,
            secret_digests: row.try_get(2).map_err(&read)?,
            redirect_uris: row.try_get(3).map_err(&read)?,
            redirect_policy: row.try_get(4).map_err(&read)?,
            grant_types: row.try_get(5).map_err(&read)?,
            scopes: row.try_get(6).map_err(&read)?,
            token_endpoint_auth_method: row.try_get(7).map_err(&read)?,
            jwks: jwks.as_deref().map(decode).transpose()?,
            jwt_secret: row.try_get(9).map_err(&read)?,
            dpop_bound_access_tokens: row.try_get(10).map_err(&read)?,
            introspect: row.try_get(11).map_err(&read)?,
        };
        let client = Client::try_from(stored).map_err(StoreError::new)?;
        Ok(Some(Arc::new(client)))
    }
}

impl CodeStore for PostgresStore {
    async fn issue(&self, key: CodeKey, record: CodeRecord) -> Result<(), StoreError> {
        self.sweep_if_due().await?;
        let json = encode(&record)?;
        let inserted = self
            .bounded("issue code", async {
                sqlx::query(
                    "INSERT INTO tokengate_codes (key, record, expires_at_ms) VALUES ($1, $2::jsonb, $3)
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(&key.as_bytes()[..])
                .bind(&json)
                .bind(millis(record.expires_at))
                .execute(&self.inner.pool)
                .await
            })
            .await?;
        if inserted.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::new("a code with this key already exists"))
        }
    }

    async fn claim(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> Result<Redemption<Arc<CodeRecord>>, StoreError> {
        self.claim_row::<CodeRecord>("tokengate_codes", key, claim)
            .await
            .map(|redemption| redemption.map(Arc::new))
    }

    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> Result<bool, StoreError> {
        self.end_claim("tokengate_codes", key, claim, true).await
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) -> Result<(), StoreError> {
        self.end_claim("tokengate_codes", key, claim, false)
            .await
            .map(drop)
    }
}

/// Claims an unused value whose last claim, if any, lapsed: `$3` the
/// holder's id, `$4` the claim's length in ms. A row lock orders
/// concurrent claims; each sees the one before.
const CLAIM: &str = "holder = CASE WHEN uses = 0 AND (held_until_ms IS NULL OR held_until_ms <= $2) THEN $3 ELSE holder END,
     held_until_ms = CASE WHEN uses = 0 AND (held_until_ms IS NULL OR held_until_ms <= $2) THEN $2 + $4 ELSE held_until_ms END";

/// What a claim found: the record, its uses, and whether the claim is ours.
const CLAIM_RETURNING: &str = "RETURNING record::text, uses, holder IS NOT DISTINCT FROM $3";

fn millis_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

/// What a `CLAIM .. CLAIM_RETURNING` update found.
fn claimed<T: serde::de::DeserializeOwned>(
    row: Option<PgRow>,
) -> Result<Redemption<T>, StoreError> {
    let Some(row) = row else {
        return Ok(Redemption::Unknown);
    };
    let (record, uses) = record_and_uses::<T>(&row)?;
    let ours: bool = row.try_get(2).map_err(failed("read claim"))?;
    Ok(match (uses, ours) {
        (0, true) => Redemption::Claimed(record),
        (0, false) => Redemption::Busy,
        _ => Redemption::Used(record),
    })
}

/// A refresh token row `t` whose family was not revoked.
const NOT_REVOKED: &str =
    "NOT EXISTS (SELECT 1 FROM tokengate_revoked_families r WHERE r.family = t.family)";

impl PostgresStore {
    /// Claims a live row of `table` (a refresh token only while its family
    /// stands).
    async fn claim_row<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        key: &CodeKey,
        claim: &Claim,
    ) -> Result<Redemption<T>, StoreError> {
        let family = if table == "tokengate_refresh_tokens" {
            format!(" AND {NOT_REVOKED}")
        } else {
            String::new()
        };
        let row = self
            .bounded("claim", async {
                sqlx::query(&format!(
                    "UPDATE {table} t SET {CLAIM} WHERE key = $1 AND expires_at_ms > $2{family} {CLAIM_RETURNING}"
                ))
                .bind(&key.as_bytes()[..])
                .bind(millis(self.inner.clock.now()))
                .bind(&claim.id()[..])
                .bind(millis_of(claim.ttl()))
                .fetch_optional(&self.inner.pool)
                .await
            })
            .await?;
        claimed(row)
    }

    /// Confirms (uses up) or releases a claim on a row of `table`; answers
    /// whether the claim was still ours.
    async fn end_claim(
        &self,
        table: &'static str,
        key: &CodeKey,
        claim: &Claim,
        confirm: bool,
    ) -> Result<bool, StoreError> {
        // A confirmation needs the value still unused (not taken on read
        // after the claim lapsed) and, for a refresh token, its family not
        // revoked meanwhile.
        let (uses, unused) = if confirm {
            ("uses + 1", " AND uses = 0")
        } else {
            ("uses", "")
        };
        // A rotated refresh token notes when: its reuse window starts there.
        let rotated = confirm && table == "tokengate_refresh_tokens";
        let (family, used_at) = if rotated {
            (format!(" AND {NOT_REVOKED}"), ", used_at_ms = $3")
        } else {
            (String::new(), "")
        };
        let done = self
            .bounded(if confirm { "confirm claim" } else { "release claim" }, async {
                let sql = format!(
                    "UPDATE {table} t SET uses = {uses}, holder = NULL, held_until_ms = NULL{used_at} WHERE key = $1 AND holder = $2{unused}{family}"
                );
                let query = sqlx::query(&sql)
                    .bind(&key.as_bytes()[..])
                    .bind(&claim.id()[..]);
                let query = if rotated {
                    query.bind(millis(self.inner.clock.now()))
                } else {
                    query
                };
                query.execute(&self.inner.pool).await
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl RefreshStore for PostgresStore {
    async fn issue(&self, key: CodeKey, record: RefreshRecord) -> Result<(), StoreError> {
        self.sweep_if_due().await?;
        let json = encode(&record)?;
        let inserted = self
            .bounded("issue refresh token", async {
                sqlx::query(
                    "INSERT INTO tokengate_refresh_tokens (key, family, record, expires_at_ms)
                     SELECT $1, $2, $3::jsonb, $4
                     WHERE NOT EXISTS (SELECT 1 FROM tokengate_revoked_families WHERE family = $2)
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(&key.as_bytes()[..])
                .bind(&record.family)
                .bind(&json)
                .bind(millis(record.expires_at))
                .execute(&self.inner.pool)
                .await
            })
            .await?;
        if inserted.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::new(
                "the refresh token family was revoked, or the key exists",
            ))
        }
    }

    async fn find(&self, key: &CodeKey) -> Result<Lookup<RefreshRecord>, StoreError> {
        let row = self
            .bounded("find refresh token", async {
                sqlx::query(
                    "SELECT record::text, uses FROM tokengate_refresh_tokens t
                     WHERE key = $1 AND expires_at_ms > $2
                     AND NOT EXISTS (SELECT 1 FROM tokengate_revoked_families r WHERE r.family = t.family)",
                )
                .bind(&key.as_bytes()[..])
                .bind(millis(self.inner.clock.now()))
                .fetch_optional(&self.inner.pool)
                .await
            })
            .await?;
        let Some(row) = row else {
            return Ok(Lookup::Unknown);
        };
        let (record, uses) = record_and_uses(&row)?;
        Ok(Lookup::from_uses(record, uses))
    }

    async fn claim(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> Result<Redemption<RefreshRecord>, StoreError> {
        self.claim_row("tokengate_refresh_tokens", key, claim).await
    }

    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> Result<bool, StoreError> {
        self.end_claim("tokengate_refresh_tokens", key, claim, true)
            .await
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) -> Result<(), StoreError> {
        self.end_claim("tokengate_refresh_tokens", key, claim, false)
            .await
            .map(drop)
    }

    async fn reuse(
        &self,
        key: &CodeKey,
        window: ReuseWindow,
    ) -> Result<Reuse<RefreshRecord>, StoreError> {
        let now = millis(self.inner.clock.now());
        // One statement grants and counts it; the row lock orders
        // concurrent reuses, and each re-reads `reuses` after the one
        // before. Only a refusal reads the row again, to say why.
        let granted = self
            .bounded("reuse refresh token", async {
                sqlx::query(&format!(
                    "UPDATE tokengate_refresh_tokens t SET reuses = reuses + 1
                     WHERE key = $1 AND expires_at_ms > $2 AND {NOT_REVOKED} AND reuses < $4
                     AND ((uses > 0 AND used_at_ms + $3 > $2) OR (uses = 0 AND held_until_ms > $2))
                     RETURNING record::text"
                ))
                .bind(&key.as_bytes()[..])
                .bind(now)
                .bind(millis_of(window.within))
                .bind(i64::from(window.limit))
                .fetch_optional(&self.inner.pool)
                .await
            })
            .await?;
        if let Some(row) = granted {
            let json: String = row.try_get(0).map_err(failed("read record"))?;
            return Ok(Reuse::Granted(decode(&json)?));
        }
        let row = self
            .bounded("read refresh token", async {
                sqlx::query(&format!(
                    "SELECT record::text, uses, COALESCE(held_until_ms > $2, false)
                     FROM tokengate_refresh_tokens t
                     WHERE key = $1 AND expires_at_ms > $2 AND {NOT_REVOKED}"
                ))
                .bind(&key.as_bytes()[..])
                .bind(now)
                .fetch_optional(&self.inner.pool)
                .await
            })
            .await?;
        let Some(row) = row else {
            return Ok(Reuse::Unknown);
        };
        let (record, uses) = record_and_uses::<RefreshRecord>(&row)?;
        let held: bool = row.try_get(2).map_err(failed("read claim"))?;
        Ok(if uses > 0 {
            Reuse::Refused(record)
        } else if held {
            Reuse::Held
        } else {
            Reuse::NotRotated
        })
    }

    async fn revoke_family(&self, family: &str) -> Result<(), StoreError> {
        let now = millis(self.inner.clock.now());
        self.bounded("revoke family", async {
            let mut tx = self.begin().await?;
            sqlx::query(
                "INSERT INTO tokengate_revoked_families (family, until_ms)
                 SELECT $1, GREATEST($2 + 3600000, COALESCE(MAX(expires_at_ms), 0))
                 FROM tokengate_refresh_tokens WHERE family = $1
                 ON CONFLICT (family) DO UPDATE SET until_ms = GREATEST(tokengate_revoked_families.until_ms, EXCLUDED.until_ms)",
            )
            .bind(family)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM tokengate_refresh_tokens WHERE family = $1")
                .bind(family)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
        .await
    }
}

impl DeviceStore for PostgresStore {
    async fn issue(&self, key: CodeKey, record: DeviceRecord) -> Result<bool, StoreError> {
        self.sweep_if_due().await?;
        let json = encode(&record)?;
        let inserted = self
            .bounded("issue device code", async {
                sqlx::query(
                    "INSERT INTO tokengate_devices (key, user_code, record, expires_at_ms) VALUES ($1, $2, $3::jsonb, $4)
                     ON CONFLICT DO NOTHING",
                )
                .bind(&key.as_bytes()[..])
                .bind(&record.user_code)
                .bind(&json)
                .bind(millis(record.expires_at))
                .execute(&self.inner.pool)
                .await
            })
            .await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn poll(
        &self,
        key: &CodeKey,
        client_id: &str,
        now: SystemTime,
    ) -> Result<PollOutcome, StoreError> {
        let key = &key.as_bytes()[..];
        self.bounded("poll device code", async {
            let mut tx = self.begin().await?;
            let json: Option<String> = sqlx::query_scalar(
                "SELECT record::text FROM tokengate_devices WHERE key = $1 FOR UPDATE",
            )
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(json) = json else {
                return Ok(Ok(PollOutcome::Unknown));
            };
            let mut record: DeviceRecord = match decode(&json) {
                Ok(record) => record,
                Err(error) => return Ok(Err(error)),
            };
            let outcome = record.poll(client_id, now);
            match &outcome {
                // An expired record stays until the sweep, so later polls
                // still hear expired_token.
                PollOutcome::Unknown | PollOutcome::Expired => {}
                PollOutcome::Approved(_) => {
                    sqlx::query("DELETE FROM tokengate_devices WHERE key = $1")
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                _ => {
                    let json = match encode(&record) {
                        Ok(json) => json,
                        Err(error) => return Ok(Err(error)),
                    };
                    sqlx::query("UPDATE tokengate_devices SET record = $2::jsonb WHERE key = $1")
                        .bind(key)
                        .bind(json)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(Ok(outcome))
        })
        .await?
    }

    async fn find(
        &self,
        user_code: &str,
        now: SystemTime,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let json: Option<String> = self
            .bounded("find user code", async {
                sqlx::query_scalar("SELECT record::text FROM tokengate_devices WHERE user_code = $1 AND expires_at_ms > $2")
                    .bind(user_code)
                    .bind(millis(now))
                    .fetch_optional(&self.inner.pool)
                    .await
            })
            .await?;
        let Some(json) = json else {
            return Ok(None);
        };
        let record: DeviceRecord = decode(&json)?;
        Ok((record.status == DeviceStatus::Pending).then_some(record))
    }

    async fn decide(
        &self,
        user_code: &str,
        decision: DeviceDecision,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let decided = self
            .bounded("decide user code", async {
                let mut tx = self.begin().await?;
                let json: Option<String> = sqlx::query_scalar(
                    "SELECT record::text FROM tokengate_devices WHERE user_code = $1 FOR UPDATE",
                )
                .bind(user_code)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(mut record) = json.and_then(|json| decode::<DeviceRecord>(&json).ok())
                else {
                    return Ok(false);
                };
                if !record.decide(decision, now) {
                    return Ok(false);
                }
                let Ok(json) = encode(&record) else {
                    return Ok(false);
                };
                sqlx::query("UPDATE tokengate_devices SET record = $2::jsonb WHERE user_code = $1")
                    .bind(user_code)
                    .bind(json)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            })
            .await?;
        Ok(decided)
    }
}

/// The lockout's and the user-code limits' counters, shared by every gate
/// process on this database, one row per counter in `tokengate_lockout`.
///
/// Each check and each failure is one statement for all its counters (one
/// round trip), on the gate's clock (the `now` it passes) like every other
/// expiry in this store. A failure is an `INSERT .. ON CONFLICT DO UPDATE`:
/// the row lock orders concurrent failures on one counter, and each counts.
/// A row whose window ended counts as gone: no check sees it, the next
/// failure starts it anew, and the sweep deletes it (a failure runs the
/// sweep when it is due, as an issue does, so counters written while
/// nothing is issued go too; that failure then takes the sweep's
/// statements on top of its own).
///
/// Unlike [`MemoryCounters`](tokengate::store::MemoryCounters), the table
/// has no cap: it holds the counters of every peer that failed within the
/// last window, and disk is what bounds it.
impl LockoutStore for PostgresStore {
    async fn locked(
        &self,
        counters: &[Counter<'_>],
        now: SystemTime,
    ) -> Result<Option<Duration>, StoreError> {
        if counters.is_empty() {
            return Ok(None);
        }
        let names: Vec<String> = counters.iter().map(|c| c.key.name()).collect();
        let limits: Vec<i64> = counters.iter().map(|c| i64::from(c.limit)).collect();
        let now = millis(now);
        let ends: Option<i64> = self
            .bounded("lockout check", async {
                sqlx::query_scalar(
                    "SELECT max(t.ends_ms)
                     FROM unnest($1::text[], $2::bigint[]) AS c(key, lim)
                     JOIN tokengate_lockout t ON t.key = c.key
                     WHERE t.failures >= c.lim AND t.ends_ms > $3",
                )
                .bind(&names)
                .bind(&limits)
                .bind(now)
                .fetch_one(&self.inner.pool)
                .await
            })
            .await?;
        Ok(ends.map(|ends| Duration::from_millis(u64::try_from(ends - now).unwrap_or(0))))
    }

    async fn fail(&self, counters: &[Counter<'_>], now: SystemTime) -> Result<(), StoreError> {
        if counters.is_empty() {
            return Ok(());
        }
        self.sweep_if_due().await?;
        let now = millis(now);
        let names: Vec<String> = counters.iter().map(|c| c.key.name()).collect();
        let ends: Vec<i64> = counters
            .iter()
            .map(|c| now.saturating_add(millis_of(c.window)))
            .collect();
        // GROUP BY: a key given twice counts twice, as on the other stores,
        // and stays one row (ON CONFLICT cannot touch a row twice in one
        // statement). ORDER BY: every failure locks its rows in the same
        // order, so two failures on the same keys never deadlock. The SET
        // expressions all read the row as it was: an ended window starts
        // anew with this statement's failures. Only its end ends it: a
        // window that "started after now" is no sign of a clock gone back
        // here, since concurrent failures (of one process or of several,
        // whose clocks differ by a little) reach the row out of the order
        // of their `now`, and restarting on that would drop live counts.
        self.bounded("lockout count", async {
            sqlx::query(
                "INSERT INTO tokengate_lockout AS t (key, failures, started_ms, ends_ms)
                 SELECT c.key, count(*), $3, max(c.ends)
                 FROM unnest($1::text[], $2::bigint[]) AS c(key, ends)
                 GROUP BY c.key ORDER BY c.key
                 ON CONFLICT (key) DO UPDATE SET
                   failures = CASE WHEN t.ends_ms <= $3 THEN excluded.failures
                     ELSE LEAST(t.failures::bigint + excluded.failures, 2147483647)::integer END,
                   started_ms = CASE WHEN t.ends_ms <= $3 THEN excluded.started_ms
                     ELSE t.started_ms END,
                   ends_ms = CASE WHEN t.ends_ms <= $3 THEN excluded.ends_ms
                     ELSE t.ends_ms END",
            )
            .bind(&names)
            .bind(&ends)
            .bind(now)
            .execute(&self.inner.pool)
            .await
            .map(drop)
        })
        .await
    }
}

/// One-time values and DPoP nonces, shared by every gate process on this
/// database: used values in `tokengate_replays`, nonces in
/// `tokengate_nonces`, each with its `until` on the gate's clock (the `now`
/// it passes), like every other expiry in this store.
///
/// Each call is one statement, an `INSERT .. ON CONFLICT DO UPDATE`: the
/// unique index and the row lock make it atomic among concurrent callers
/// of every process, with no transaction around it. A row past its `until`
/// counts as gone (the next use or nonce takes it over) and is deleted by
/// the sweep, which a first use runs when it is due, as an issue does (that
/// use then takes the sweep's statements on top of its own): a gate that
/// only checks assertions (client credentials) issues nothing, and its
/// table must not grow for good. Like the lockout's table, these have no
/// cap; disk bounds them.
impl ReplayStore for PostgresStore {
    async fn first_use(
        &self,
        key: &CodeKey,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        self.sweep_if_due().await?;
        // A new key is inserted; a live one is left alone (the WHERE fails,
        // nothing is returned: a replay); an expired one is taken over with
        // the new `until`. Concurrent first uses of a new key wait on the
        // first insert and then see its row: exactly one gets a row back.
        let taken = self
            .bounded("record one-time value", async {
                sqlx::query_scalar::<_, bool>(
                    "INSERT INTO tokengate_replays AS t (key, until_ms) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET until_ms = EXCLUDED.until_ms
                       WHERE t.until_ms <= $3
                     RETURNING true",
                )
                .bind(&key.as_bytes()[..])
                .bind(millis(until))
                .bind(millis(now))
                .fetch_optional(&self.inner.pool)
                .await
            })
            .await?;
        Ok(taken.is_some())
    }

    async fn nonce(
        &self,
        slot: u64,
        candidate: &str,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<String, StoreError> {
        // Get-or-insert in one statement: the candidate goes in for a slot
        // without a live nonce; a live one is kept and returned. The update
        // always runs (so RETURNING always has the row, also one another
        // caller inserted after this statement's snapshot), which costs a
        // row version per call on a table of a handful of rows.
        self.bounded("DPoP nonce", async {
            sqlx::query_scalar::<_, String>(
                "INSERT INTO tokengate_nonces AS t (slot, nonce, until_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (slot) DO UPDATE SET
                   nonce = CASE WHEN t.until_ms <= $4 THEN EXCLUDED.nonce ELSE t.nonce END,
                   until_ms = CASE WHEN t.until_ms <= $4 THEN EXCLUDED.until_ms ELSE t.until_ms END
                 RETURNING nonce",
            )
            // Slots are u64s; the column is a bigint of the same bits.
            .bind(slot.cast_signed())
            .bind(candidate)
            .bind(millis(until))
            .bind(millis(now))
            .fetch_one(&self.inner.pool)
            .await
        })
        .await
    }
}
