//! The device flow (RFC 8628; GitHub's device flow): the record behind a
//! device code and its polling rules, and [`Devices`], the verification
//! side where a user types a user code and approves or denies it.
//!
//! The gate itself serves the device authorization endpoint
//! ([`DEFAULT_DEVICE_PATH`](crate::builder::DEFAULT_DEVICE_PATH)) and the
//! device grant's polls, once a [`DeviceStore`](crate::store::DeviceStore)
//! is set.

use std::{fmt, sync::Arc};

pub use crate::record::device::{
    DEVICE_TOMBSTONE, DeviceDecision, DeviceRecord, DeviceStatus, PollOutcome, SLOW_DOWN_STEP,
    normalize_user_code,
};
use crate::{
    issuing::{DecideDevice, Issuing},
    store::StoreError,
};

/// The verification side of the device flow: look a user code up, approve
/// or deny it. Get it from
/// [`TokenGateLayer::devices`](crate::TokenGateLayer::devices).
#[derive(Clone)]
pub struct Devices {
    issuing: Arc<Issuing>,
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

    /// The live, undecided authorization for the code the user typed, so
    /// the page can show which client asks for which scopes.
    pub async fn lookup(&self, typed: &str) -> Result<Option<DeviceRecord>, StoreError> {
        let store = self.store()?;
        let Some(user_code) = normalize_user_code(typed) else {
            return Ok(None);
        };
        store
            .find(&user_code, self.issuing.settings.clock.now())
            .await
    }

    /// The user `subject` approved the code they typed. `Ok(false)` when no
    /// live, undecided authorization has that code.
    pub async fn approve(&self, typed: &str, subject: &str) -> Result<bool, StoreError> {
        let subject = subject.to_owned();
        self.decide(typed, DeviceDecision::Approve { subject })
            .await
    }

    /// The user declined the code they typed.
    pub async fn deny(&self, typed: &str) -> Result<bool, StoreError> {
        self.decide(typed, DeviceDecision::Deny).await
    }

    async fn decide(&self, typed: &str, decision: DeviceDecision) -> Result<bool, StoreError> {
        let store = self.store()?;
        let Some(user_code) = normalize_user_code(typed) else {
            return Ok(false);
        };
        let now = self.issuing.settings.clock.now();
        store.decide(&user_code, decision, now).await
    }
}

impl fmt::Debug for Devices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Devices").finish_non_exhaustive()
    }
}
