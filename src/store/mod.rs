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
mod memory;

use std::{error::Error as StdError, fmt, future::Future, sync::Arc};

pub use self::{clients_file::ClientsFileError, memory::MemoryStore};
use crate::{client::Client, code::CodeRecord, secret::CodeKey};

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
    /// have expired), then [`Redemption::Unknown`].
    fn redeem(&self, key: &CodeKey) -> impl Future<Output = Result<Redemption, StoreError>> + Send;
}

/// The outcome of [`CodeStore::redeem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// This call took the code; it is now used.
    Redeemed(CodeRecord),
    /// The code had already been redeemed: a replay (RFC 6749 §4.1.2).
    Replayed(CodeRecord),
    /// No such code (never issued, or forgotten after expiry).
    Unknown,
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
