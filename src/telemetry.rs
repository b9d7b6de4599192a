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

use std::{borrow::Cow, time::Instant};

use bytes::Bytes;
use http::Response;

use crate::{dialect::Dialect, error::Rejection};

/// Which endpoint of the gate a request is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Token,
    DeviceAuthorization,
}

/// How a gated request ended.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) enum Outcome {
    Forwarded {
        grant: &'static str,
    },
    /// The error code as sent; a standard one is borrowed, so counting it
    /// copies nothing.
    Rejected {
        error: Cow<'static, str>,
    },
    Answered,
}

#[cfg(feature = "metrics")]
pub(crate) fn record(dialect: Dialect, endpoint: Endpoint, started: Instant, outcome: Outcome) {
    let dialect = match dialect {
        Dialect::Rfc6749 => "rfc6749",
        Dialect::GitHub => "github",
    };
    let endpoint = match endpoint {
        Endpoint::Token => "token",
        Endpoint::DeviceAuthorization => "device_authorization",
    };
    let (name, grant, error) = match outcome {
        Outcome::Forwarded { grant } => ("forwarded", grant, Cow::Borrowed("")),
        Outcome::Rejected { error } => ("rejected", "", error),
        Outcome::Answered => ("answered", "", Cow::Borrowed("")),
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
pub(crate) fn record(_: Dialect, _: Endpoint, _: Instant, _: Outcome) {}

/// Records the gate's own answer: a rejection when it carries one, else the
/// device endpoint's reply.
pub(crate) fn record_answer(
    dialect: Dialect,
    endpoint: Endpoint,
    started: Instant,
    response: &Response<Bytes>,
) {
    let outcome = match response.extensions().get::<Rejection>() {
        Some(rejection) => Outcome::Rejected {
            error: rejection.error_name(),
        },
        None => Outcome::Answered,
    };
    record(dialect, endpoint, started, outcome);
}
