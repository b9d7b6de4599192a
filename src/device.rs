//! The device flow (RFC 8628; GitHub's device flow): the record behind a
//! device code and its polling rules, and [`Devices`], the verification
//! side where a user types a user code and approves or denies it.
//!
//! The gate itself serves the device authorization endpoint
//! ([`DEFAULT_DEVICE_PATH`](crate::builder::DEFAULT_DEVICE_PATH)) and the
//! device grant's polls, once a [`DeviceStore`](crate::store::DeviceStore)
//! is set.

use std::{fmt, net::IpAddr, sync::Arc, time::Duration};

use http::request::Parts;

pub use crate::lockout::{DEFAULT_USER_CODE_FAILURES, DEFAULT_USER_CODE_WINDOW, UserCodeLimits};
pub use crate::record::device::{
    DEVICE_TOMBSTONE, DeviceDecision, DeviceRecord, DeviceStatus, PollOutcome, SLOW_DOWN_STEP,
    normalize_user_code,
};
use crate::{
    issuing::{DecideDevice, Issuing},
    lockout::warn_no_peer,
    store::StoreError,
};

/// The verification side of the device flow: look a user code up, approve
/// or deny it. Get it from
/// [`TokenGateLayer::devices`](crate::TokenGateLayer::devices).
///
/// Every call takes the peer address of the browser that typed the code
/// ([`peer`](Self::peer) finds it the way the gate does). Failed look-ups
/// (a code that matches no live, undecided authorization) count against
/// that peer under the layer's [`UserCodeLimits`]; past them the call
/// answers [`VerifyError::TooManyGuesses`], which the page turns into
/// `429 Too Many Requests` with `Retry-After`.
#[derive(Clone)]
pub struct Devices {
    issuing: Arc<Issuing>,
}

/// Why the verification side could not answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifyError {
    /// Too many failed user codes from this peer (or from everyone, with
    /// [`UserCodeLimits::total`]): refused without a look-up until
    /// `retry_after` has passed.
    TooManyGuesses {
        /// How long until the window ends.
        retry_after: Duration,
    },
    /// A store failed or timed out.
    Store(StoreError),
}

impl VerifyError {
    /// Whole seconds to put in `Retry-After`, rounded up, for
    /// [`TooManyGuesses`](Self::TooManyGuesses).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::TooManyGuesses { retry_after } => {
                Some((retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1))
            }
            Self::Store(_) => None,
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyGuesses { .. } => f.write_str("too many failed user codes"),
            Self::Store(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for VerifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::TooManyGuesses { .. } => None,
            Self::Store(error) => Some(error),
        }
    }
}

impl From<StoreError> for VerifyError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl Devices {
    pub(crate) fn new(issuing: Arc<Issuing>) -> Self {
        Self { issuing }
    }

    fn store(&self) -> Result<&dyn DecideDevice, StoreError> {
        self.issuing
            .devices
            .as_deref()
            .ok_or_else(|| StoreError::new("the layer has no device store"))
    }

    /// The peer address of a request to the verification page, found as
    /// the gate finds it ([`Builder::peer`](crate::Builder::peer)).
    pub fn peer(&self, parts: &Parts) -> Option<IpAddr> {
        self.issuing.settings.peer.find(parts)
    }

    /// The live, undecided authorization for the code the user typed, so
    /// the page can show which client asks for which scopes. `Ok(None)`
    /// (a failed look-up, counted against `peer`) when there is none.
    pub async fn lookup(
        &self,
        typed: &str,
        peer: Option<IpAddr>,
    ) -> Result<Option<DeviceRecord>, VerifyError> {
        let store = self.store()?;
        self.admit(peer).await?;
        let now = self.issuing.settings.clock.now();
        let found = match normalize_user_code(typed) {
            Some(user_code) => store.find(&user_code, now).await?,
            None => None,
        };
        if found.is_none() {
            self.count_failure(peer).await?;
        }
        Ok(found)
    }

    /// The user `subject` approved the code they typed. `Ok(false)` (a
    /// failed look-up, counted against `peer`) when no live, undecided
    /// authorization has that code.
    pub async fn approve(
        &self,
        typed: &str,
        subject: &str,
        peer: Option<IpAddr>,
    ) -> Result<bool, VerifyError> {
        let subject = subject.to_owned();
        self.decide(typed, DeviceDecision::Approve { subject }, peer)
            .await
    }

    /// The user declined the code they typed.
    pub async fn deny(&self, typed: &str, peer: Option<IpAddr>) -> Result<bool, VerifyError> {
        self.decide(typed, DeviceDecision::Deny, peer).await
    }

    async fn decide(
        &self,
        typed: &str,
        decision: DeviceDecision,
        peer: Option<IpAddr>,
    ) -> Result<bool, VerifyError> {
        let store = self.store()?;
        self.admit(peer).await?;
        let now = self.issuing.settings.clock.now();
        let decided = match normalize_user_code(typed) {
            Some(user_code) => store.decide(&user_code, decision, now).await?,
            None => false,
        };
        if !decided {
            self.count_failure(peer).await?;
        }
        Ok(decided)
    }

    /// Refuses a peer (or everyone) past the limits.
    async fn admit(&self, peer: Option<IpAddr>) -> Result<(), VerifyError> {
        let settings = &*self.issuing.settings;
        let Some(limits) = &settings.user_code_limits else {
            return Ok(());
        };
        if peer.is_none() {
            warn_no_peer();
        }
        let now = settings.clock.now();
        match settings.counting.locked(limits.tally(peer), now).await? {
            Some(retry_after) => Err(VerifyError::TooManyGuesses { retry_after }),
            None => Ok(()),
        }
    }

    async fn count_failure(&self, peer: Option<IpAddr>) -> Result<(), VerifyError> {
        let settings = &*self.issuing.settings;
        if let Some(limits) = &settings.user_code_limits {
            let now = settings.clock.now();
            settings.counting.fail(limits.tally(peer), now).await?;
        }
        Ok(())
    }
}

impl fmt::Debug for Devices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Devices").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        let secs = |retry_after| VerifyError::TooManyGuesses { retry_after }.retry_after_secs();
        assert_eq!(secs(Duration::from_secs(3600)), Some(3600));
        // A fraction of a second more is one second more: never an
        // invitation to retry before the window ends.
        assert_eq!(secs(Duration::from_millis(1500)), Some(2));
        assert_eq!(secs(Duration::from_nanos(1)), Some(1));
        assert_eq!(secs(Duration::ZERO), Some(1));
        let store = VerifyError::Store(StoreError::new("counters down"));
        assert_eq!(store.retry_after_secs(), None);
    }

    #[test]
    fn a_verify_error_says_what_happened_and_keeps_the_store_error() {
        let guesses = VerifyError::TooManyGuesses {
            retry_after: Duration::from_secs(5),
        };
        assert_eq!(guesses.to_string(), "too many failed user codes");
        assert!(guesses.source().is_none());
        let store = VerifyError::from(StoreError::new("counters down"));
        assert_eq!(store.to_string(), "counters down");
        let source = store.source().expect("the store error is the source");
        assert_eq!(source.to_string(), "counters down");
        assert!(matches!(store, VerifyError::Store(_)));
    }
}
