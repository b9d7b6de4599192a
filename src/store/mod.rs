//! Where clients and codes live: two small async traits, and the embedded
//! [`MemoryStore`].
//!
//! A store answers `Ok(None)` (or [`Redemption::Unknown`]) for something
//! absent and keeps [`StoreError`] for a store that could not answer; the gate
//! turns every store error into a `500 server_error` and never forwards the
//! request (fail closed).
//!
//! # Plugging in your own store
//!
//! ```
//! use std::{collections::HashMap, sync::Arc};
//! use tokengate::{Client, CredentialStore, StoreError};
//!
//! /// Clients fixed at start-up.
//! struct StaticClients(HashMap<String, Arc<Client>>);
//!
//! impl CredentialStore for StaticClients {
//!     async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
//!         Ok(self.0.get(client_id).cloned())
//!     }
//! }
//! ```

mod clients_file;
mod expiry;
mod hold;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

use std::{error::Error as StdError, fmt, future::Future, sync::Arc, time::SystemTime};

#[cfg(feature = "postgres")]
pub use self::postgres::PostgresStore;
#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
pub use self::{
    clients_file::{ClientsFileError, parse_clients},
    hold::Hold,
    memory::MemoryStore,
};

/// The default bound on every call to a networked store (Redis,
/// PostgreSQL); past it the gate answers `500 server_error`.
pub const DEFAULT_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
use crate::{
    client::Client,
    code::CodeRecord,
    device::{DeviceDecision, DeviceRecord, PollOutcome},
    refresh::RefreshRecord,
    secret::CodeKey,
};

/// Looks up registered clients.
pub trait CredentialStore: Send + Sync + 'static {
    /// The client registered as `client_id`, or `Ok(None)`.
    fn client(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<Arc<Client>>, StoreError>> + Send;
}

/// Keeps authorization codes, each under the digest of its value.
pub trait CodeStore: Send + Sync + 'static {
    /// Stores a freshly minted code. The record's `expires_at` says how long
    /// it must stay redeemable.
    fn issue(
        &self,
        key: CodeKey,
        record: CodeRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes the code out of service in one atomic step and says what it was.
    ///
    /// Of any number of concurrent calls for one key, exactly one may answer
    /// [`Redemption::Redeemed`]; later ones answer [`Redemption::Replayed`]
    /// for as long as the store remembers the code (at least until it would
    /// have expired), then [`Redemption::Unknown`]. The record comes in an
    /// `Arc`, so a store that keeps it in memory hands it out without a copy.
    fn redeem(&self, key: &CodeKey) -> impl Future<Output = Result<Redemption, StoreError>> + Send;

    /// Two-phase redemption, step one: claims the code for `hold` while the
    /// inner service mints the token, in one atomic step.
    ///
    /// Answers [`Redemption::Redeemed`] when this call took the claim,
    /// [`Redemption::Held`] while another live claim holds it (its `ttl` not
    /// run out), [`Redemption::Replayed`] once the code is used, and
    /// [`Redemption::Unknown`] for no such code. A claim whose `ttl` ran out
    /// counts as none: the next call may take the code over.
    ///
    /// The default has no claims: it is [`redeem`](Self::redeem), so a
    /// store that keeps it uses the code up on first read and a failed inner
    /// service cannot give it back.
    fn reserve(
        &self,
        key: &CodeKey,
        hold: &Hold,
    ) -> impl Future<Output = Result<Redemption, StoreError>> + Send {
        let _ = hold;
        self.redeem(key)
    }

    /// Step two after a successful answer: uses the code up, if `hold` is
    /// still its claim (even past its `ttl`, when nobody took it over).
    /// Answers `false` when the claim was lost: another request took the
    /// code over, so this request's token must not be handed out.
    fn confirm(
        &self,
        key: &CodeKey,
        hold: &Hold,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (key, hold);
        async { Ok(true) }
    }

    /// Step two after a failed answer: gives the code back, unused, if
    /// `hold` is still its claim; otherwise does nothing.
    fn release(
        &self,
        key: &CodeKey,
        hold: &Hold,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (key, hold);
        async { Ok(()) }
    }
}

/// The outcome of taking a code or refresh token out of service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption<T = Arc<CodeRecord>> {
    /// This call took it; it is now used.
    Redeemed(T),
    /// It had already been used: a replay (RFC 6749 §4.1.2, RFC 9700
    /// §4.14.2).
    Replayed(T),
    /// Another request holds a live claim on it (two-phase redemption,
    /// [`CodeStore::reserve`]); nothing changed.
    Held,
    /// No such value (never issued, revoked, or forgotten after expiry).
    Unknown,
}

/// What a store knows of a value, read without using it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// Live and not used yet.
    Unused(T),
    /// Already used: presenting it again is a replay.
    Used(T),
    /// No such value (never issued, revoked, or forgotten after expiry).
    Unknown,
}

impl<T> Redemption<T> {
    /// What a redemption found, from how many times the value has now been
    /// presented (a store's use counter after this call): 1 is this call's.
    pub fn from_uses(record: T, uses: i64) -> Self {
        if uses == 1 {
            Self::Redeemed(record)
        } else {
            Self::Replayed(record)
        }
    }

    /// The same outcome with the record transformed (`Arc::new`, say).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Redemption<U> {
        match self {
            Self::Redeemed(record) => Redemption::Redeemed(f(record)),
            Self::Replayed(record) => Redemption::Replayed(f(record)),
            Self::Held => Redemption::Held,
            Self::Unknown => Redemption::Unknown,
        }
    }
}

impl<T> Lookup<T> {
    /// What a read found, from the value's use counter.
    pub fn from_uses(record: T, uses: i64) -> Self {
        if uses == 0 {
            Self::Unused(record)
        } else {
            Self::Used(record)
        }
    }
}

/// Keeps refresh tokens, each under the digest of its value, with rotation.
///
/// A layer without a refresh store answers `unsupported_grant_type` to
/// `grant_type=refresh_token`.
pub trait RefreshStore: Send + Sync + 'static {
    /// Stores a new refresh token. Fails if its family was revoked, so a
    /// successor minted in a race with a replay never becomes valid.
    fn issue_refresh_token(
        &self,
        key: CodeKey,
        record: RefreshRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads a token without using it up, so every check can run before it
    /// is rotated. A token whose family was revoked is [`Lookup::Unknown`].
    fn find_refresh_token(
        &self,
        key: &CodeKey,
    ) -> impl Future<Output = Result<Lookup<RefreshRecord>, StoreError>> + Send;

    /// Takes the token out of service in one atomic step (rotation), as
    /// [`CodeStore::redeem`] does for codes. A token whose family was revoked
    /// is [`Redemption::Unknown`].
    fn rotate_refresh_token(
        &self,
        key: &CodeKey,
    ) -> impl Future<Output = Result<Redemption<RefreshRecord>, StoreError>> + Send;

    /// Revokes every token of `family`, used or not, for at least as long as
    /// any of them would have lived.
    fn revoke_family(&self, family: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Two-phase rotation, step one: claims the token for `hold`, with the
    /// rules of [`CodeStore::reserve`]. The default is
    /// [`rotate_refresh_token`](Self::rotate_refresh_token): rotation on
    /// first read, which a failed inner service cannot undo.
    fn reserve_refresh_token(
        &self,
        key: &CodeKey,
        hold: &Hold,
    ) -> impl Future<Output = Result<Redemption<RefreshRecord>, StoreError>> + Send {
        let _ = hold;
        self.rotate_refresh_token(key)
    }

    /// Rotates the token away if `hold` is still its claim, as
    /// [`CodeStore::confirm`] does for codes.
    fn confirm_refresh_token(
        &self,
        key: &CodeKey,
        hold: &Hold,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (key, hold);
        async { Ok(true) }
    }

    /// Hands the token back, unused, if `hold` is still its claim, as
    /// [`CodeStore::release`] does for codes.
    fn release_refresh_token(
        &self,
        key: &CodeKey,
        hold: &Hold,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (key, hold);
        async { Ok(()) }
    }
}

/// Keeps device authorizations (RFC 8628), by the digest of the device code
/// and by user code.
///
/// A layer without a device store neither serves the device authorization
/// endpoint nor accepts the device grant.
pub trait DeviceStore: Send + Sync + 'static {
    /// Stores a device authorization, as `record` says (status, interval and
    /// last poll included): a new one, or, with two-phase redemption, an
    /// approved one put back after its grant failed in the inner service.
    /// Answers `Ok(false)` when the user code or the key is already in use,
    /// so the caller can draw another.
    fn issue_device_code(
        &self,
        key: CodeKey,
        record: DeviceRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// One token poll, applied atomically with [`DeviceRecord::poll`]: the
    /// interval bookkeeping and the single redemption of an approved code
    /// must not race with another poll.
    fn poll_device_code(
        &self,
        key: &CodeKey,
        client_id: &str,
        now: SystemTime,
    ) -> impl Future<Output = Result<PollOutcome, StoreError>> + Send;

    /// The live, undecided authorization with this (normalized) user code.
    fn find_user_code(
        &self,
        user_code: &str,
        now: SystemTime,
    ) -> impl Future<Output = Result<Option<DeviceRecord>, StoreError>> + Send;

    /// Records the user's decision, with [`DeviceRecord::decide`]. Answers
    /// whether an undecided, live authorization took it.
    fn decide_user_code(
        &self,
        user_code: &str,
        decision: DeviceDecision,
        now: SystemTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A store could not answer. The gate answers `500 server_error`.
///
/// The message must never contain a secret or a code: it is logged.
#[derive(Debug)]
pub struct StoreError {
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl StoreError {
    /// An error described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error caused by `source` (a connection error, a timeout, ...).
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// No refresh store: the layer answers `unsupported_grant_type` to the
/// refresh grant and [`RefreshTokens::issue`](crate::RefreshTokens::issue)
/// fails.
impl RefreshStore for () {
    async fn issue_refresh_token(&self, _: CodeKey, _: RefreshRecord) -> Result<(), StoreError> {
        Err(StoreError::new("the layer has no refresh store"))
    }

    async fn find_refresh_token(&self, _: &CodeKey) -> Result<Lookup<RefreshRecord>, StoreError> {
        Ok(Lookup::Unknown)
    }

    async fn rotate_refresh_token(
        &self,
        _: &CodeKey,
    ) -> Result<Redemption<RefreshRecord>, StoreError> {
        Ok(Redemption::Unknown)
    }

    async fn revoke_family(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// No device store: the layer neither serves the device authorization
/// endpoint nor accepts the device grant.
impl DeviceStore for () {
    async fn issue_device_code(&self, _: CodeKey, _: DeviceRecord) -> Result<bool, StoreError> {
        Err(StoreError::new("the layer has no device store"))
    }

    async fn poll_device_code(
        &self,
        _: &CodeKey,
        _: &str,
        _: SystemTime,
    ) -> Result<PollOutcome, StoreError> {
        Ok(PollOutcome::Unknown)
    }

    async fn find_user_code(
        &self,
        _: &str,
        _: SystemTime,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        Ok(None)
    }

    async fn decide_user_code(
        &self,
        _: &str,
        _: DeviceDecision,
        _: SystemTime,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
}
