//! Metrics through the `metrics` facade (feature `metrics`, on by
//! default), so any exporter works:
//!
//! - `tokengate_requests_total{dialect, endpoint, grant, outcome, error}`:
//!   one per request the gate decided. `outcome` is `forwarded`, `rejected`
//!   or `answered` (the device endpoint's reply); `error` the error code
//!   sent, or empty.
//! - `tokengate_check_duration_seconds{dialect, endpoint, outcome}`: the
//!   gate's own work per request, from receiving it to the decision (the
//!   body read included, the inner service excluded).
//!
//! With the feature off (or no recorder installed) these cost nothing.

use std::time::Instant;

use crate::{dialect::Dialect, future::Endpoint};

/// How a gated request ended.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) enum Outcome<'a> {
    Forwarded { grant: &'static str },
    Rejected { error: &'a str },
    Answered,
}

#[cfg(feature = "metrics")]
pub(crate) fn record(dialect: Dialect, endpoint: Endpoint, started: Instant, outcome: Outcome<'_>) {
    let dialect = match dialect {
        Dialect::Rfc6749 => "rfc6749",
        Dialect::GitHub => "github",
    };
    let endpoint = match endpoint {
        Endpoint::Token => "token",
        Endpoint::DeviceAuthorization => "device_authorization",
    };
    let (name, grant, error) = match outcome {
        Outcome::Forwarded { grant } => ("forwarded", grant, String::new()),
        Outcome::Rejected { error } => ("rejected", "", error.to_owned()),
        Outcome::Answered => ("answered", "", String::new()),
    };
    metrics::counter!(
        "tokengate_requests_total",
        "dialect" => dialect,
        "endpoint" => endpoint,
        "grant" => grant,
        "outcome" => name,
        "error" => error,
    )
    .increment(1);
    metrics::histogram!(
        "tokengate_check_duration_seconds",
        "dialect" => dialect,
        "endpoint" => endpoint,
        "outcome" => name,
    )
    .record(started.elapsed().as_secs_f64());
}

#[cfg(not(feature = "metrics"))]
pub(crate) fn record(_: Dialect, _: Endpoint, _: Instant, _: Outcome<'_>) {}
