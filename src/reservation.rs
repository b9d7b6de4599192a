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
    fmt,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use crate::{
    check::{BoxFuture, Checks},
    device::DeviceRecord,
    format::ResponseFormat,
    grant::ValidatedGrant,
    secret::CodeKey,
    store::{Hold, StoreError},
};

/// What a claim is on.
#[derive(Debug)]
pub(crate) enum Held {
    Code,
    RefreshToken,
    /// A device code is redeemed by the poll itself (the store forgets it
    /// in the same atomic step); its claim is the record, put back on
    /// release. A process that dies holding it loses the device code: the
    /// device starts over, and is never given two tokens.
    DeviceCode(Box<DeviceRecord>),
}

/// A claim taken by [`CodeStore::reserve`](crate::CodeStore::reserve) or
/// [`RefreshStore::reserve_refresh_token`](crate::RefreshStore::reserve_refresh_token).
pub(crate) struct Reservation {
    pub(crate) what: Held,
    pub(crate) key: CodeKey,
    pub(crate) hold: Hold,
}

impl fmt::Debug for Reservation {
    // The key is a digest, not the code, but it names a live code: keep it
    // out of logs all the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("what", &self.what)
            .field("hold", &self.hold)
            .finish_non_exhaustive()
    }
}

/// How a claim ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    /// Use the value up.
    Confirm,
    /// Give it back, unused.
    Release,
}

/// A claim the response future owns: settled at most once, released when
/// dropped unsettled.
pub(crate) struct Claim {
    gate: Arc<dyn Checks>,
    reservation: Option<Reservation>,
    /// The request's format and grant, should a lost claim turn a 2xx into
    /// the gate's own `server_error`.
    pub(crate) format: ResponseFormat,
    pub(crate) grant: ValidatedGrant,
}

impl Claim {
    pub(crate) fn new(
        gate: Arc<dyn Checks>,
        reservation: Reservation,
        format: ResponseFormat,
        grant: ValidatedGrant,
    ) -> Self {
        Self {
            gate,
            reservation: Some(reservation),
            format,
            grant,
        }
    }

    pub(crate) fn gate(&self) -> &Arc<dyn Checks> {
        &self.gate
    }

    /// Settles the claim. The future answers whether a confirmation still
    /// held the claim (a release answers `true`).
    pub(crate) fn settle(&mut self, how: Settle) -> BoxFuture<Result<bool, StoreError>> {
        match self.reservation.take() {
            Some(reservation) => Arc::clone(&self.gate).settle(reservation, how),
            None => Box::pin(std::future::ready(Ok(true))),
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        tracing::debug!(what = ?reservation.what, "request dropped while holding a claim; releasing it");
        release_detached(Arc::clone(&self.gate).settle(reservation, Settle::Release));
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
fn release_detached(mut release: BoxFuture<Result<bool, StoreError>>) {
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

#[cfg(any(feature = "read-timeout", feature = "redis", feature = "postgres"))]
fn spawn(release: BoxFuture<Result<bool, StoreError>>) {
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

#[cfg(not(any(feature = "read-timeout", feature = "redis", feature = "postgres")))]
fn spawn(release: BoxFuture<Result<bool, StoreError>>) {
    tracing::debug!("no runtime to release a dropped claim; it lapses by itself");
    drop(release);
}
