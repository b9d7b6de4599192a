//! Two-phase redemption, the gate's side: the claim on a code or refresh
//! token that a forwarded request holds while the inner service mints the
//! token.
//!
//! The response future owns the claim and settles it by the inner
//! service's answer: a 2xx confirms it (the code is used up, and the token
//! is handed out only if the claim was still ours), a 5xx or an error
//! releases it (the client's retry works). If the future is dropped first
//! (the client went away, the inner service panicked), dropping the claim
//! releases it; where that cannot finish, the store lets the claim lapse
//! after its time-to-live, so the code is never lost for good and never
//! redeemed twice.

use std::{
    sync::Arc,
    task::{Context, Poll, Waker},
};

use super::Decide;
use crate::{
    format::ResponseFormat,
    grant::{GrantClaim, ValidatedGrant},
    settings::Settings,
    store::{BoxFuture, StoreError},
};

/// How a claim ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Use the value up.
    Confirm,
    /// Give it back, unused.
    Release,
}

/// A claim the request owns: ended at most once, released when dropped
/// unended.
pub(crate) struct ClaimGuard {
    gate: Arc<dyn Decide>,
    claim: Option<GrantClaim>,
    /// The request's format and grant, should a lost claim turn a 2xx into
    /// the gate's own `server_error`.
    pub(crate) format: ResponseFormat,
    pub(crate) grant: ValidatedGrant,
}

impl ClaimGuard {
    pub(crate) fn new(
        gate: Arc<dyn Decide>,
        claim: GrantClaim,
        format: ResponseFormat,
        grant: ValidatedGrant,
    ) -> Self {
        Self {
            gate,
            claim: Some(claim),
            format,
            grant,
        }
    }

    pub(crate) fn settings(&self) -> &Settings {
        self.gate.settings()
    }

    /// Ends the claim. The future answers whether a confirmation still held
    /// the claim (a release answers `true`).
    pub(crate) fn end(&mut self, how: End) -> BoxFuture<'static, Result<bool, StoreError>> {
        match self.claim.take() {
            Some(claim) => Arc::clone(&self.gate).end(claim, how),
            None => Box::pin(std::future::ready(Ok(true))),
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let Some(claim) = self.claim.take() else {
            return;
        };
        tracing::debug!(on = ?claim.on, "request dropped while holding a claim; releasing it");
        release_detached(Arc::clone(&self.gate).end(claim, End::Release));
    }
}

/// Runs a release nobody will wait for: polled once here (an in-memory
/// store is done at once), then, if it is still pending and this thread is
/// in a tokio runtime, finished as a task. Otherwise the claim lapses by
/// itself after its time-to-live.
///
/// A store's future may panic when polled outside a runtime (tokio's
/// timers do). Dropped while this thread unwinds from a panic, a second
/// panic would abort the process: then the release is only handed to the
/// runtime, never polled here; otherwise a panic while polling is caught.
fn release_detached(mut release: BoxFuture<'static, Result<bool, StoreError>>) {
    if std::thread::panicking() {
        spawn(release);
        return;
    }
    let mut cx = Context::from_waker(Waker::noop());
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        release.as_mut().poll(&mut cx)
    }));
    match polled {
        Ok(Poll::Ready(Ok(_))) => {}
        Ok(Poll::Ready(Err(error))) => {
            tracing::warn!(%error, "releasing a dropped claim failed; it lapses by itself");
        }
        Ok(Poll::Pending) => spawn(release),
        Err(_) => tracing::warn!("releasing a dropped claim panicked; it lapses by itself"),
    }
}

#[cfg(feature = "tokio")]
fn spawn(release: BoxFuture<'static, Result<bool, StoreError>>) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                if let Err(error) = release.await {
                    tracing::warn!(%error, "releasing a dropped claim failed; it lapses by itself");
                }
            });
        }
        Err(_) => tracing::debug!("no runtime to release a dropped claim; it lapses by itself"),
    }
}

#[cfg(not(feature = "tokio"))]
fn spawn(release: BoxFuture<'static, Result<bool, StoreError>>) {
    tracing::debug!("no runtime to release a dropped claim; it lapses by itself");
    drop(release);
}
