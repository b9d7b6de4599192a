//! The read timeout: a request body that trickles in is cut off, so a slow
//! client cannot hold a connection and a buffer open (slowloris).
//!
//! The timer is tokio's (feature `read-timeout`, on by default). It is armed
//! the first time the body is not ready, and only on a tokio runtime: a body
//! already buffered never costs a timer, and elsewhere bodies are read
//! without a deadline. The runtime must have its time driver enabled
//! (`#[tokio::main]`, `Builder::enable_all` or `enable_time`).

use std::{task::Context, time::Duration};

/// The deadline for reading one request body.
pub(crate) struct Deadline {
    after: Option<Duration>,
    #[cfg(feature = "read-timeout")]
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Deadline {
    /// A deadline `after` from the first time the body keeps us waiting.
    pub(crate) fn after(after: Option<Duration>) -> Self {
        Self {
            after,
            #[cfg(feature = "read-timeout")]
            sleep: None,
        }
    }

    /// Called when the body is not ready: whether the deadline has passed.
    /// Registers `cx` to be woken when it does.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        #[cfg(feature = "read-timeout")]
        {
            use std::future::Future;
            if self.sleep.is_none() {
                let Some(after) = self
                    .after
                    .filter(|_| tokio::runtime::Handle::try_current().is_ok())
                else {
                    return false;
                };
                self.sleep = Some(Box::pin(tokio::time::sleep(after)));
            }
            if let Some(sleep) = &mut self.sleep {
                return sleep.as_mut().poll(cx).is_ready();
            }
        }
        let _ = (cx, self.after);
        false
    }
}
