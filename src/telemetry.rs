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
    let (outcome, grant, error) = match outcome {
        Outcome::Forwarded { grant } => ("forwarded", grant, Cow::Borrowed("")),
        Outcome::Rejected { error } => ("rejected", "", error),
        Outcome::Answered => ("answered", "", Cow::Borrowed("")),
    };
    let labels = handles::Labels {
        dialect,
        endpoint,
        grant,
        outcome,
        error,
    };
    handles::record(labels, started.elapsed().as_secs_f64());
}

/// The counter and histogram of each label set, registered once with the
/// recorder and then reused: a registry look-up per request (building the
/// key, cloning its labels, comparing it) cost more than the rest of the
/// metrics work under load.
#[cfg(feature = "metrics")]
mod handles {
    use std::{
        borrow::Cow,
        collections::HashMap,
        sync::{LazyLock, PoisonError, RwLock},
    };

    use metrics::{Counter, Histogram, Key, Label, Level, Metadata, Recorder};

    #[derive(Clone, PartialEq, Eq, Hash)]
    pub(super) struct Labels {
        pub(super) dialect: &'static str,
        pub(super) endpoint: &'static str,
        pub(super) grant: &'static str,
        pub(super) outcome: &'static str,
        pub(super) error: Cow<'static, str>,
    }

    /// The handles, for the recorder they were registered with.
    #[derive(Default)]
    struct Cache {
        /// The recorder's address: another recorder (installed later, or a
        /// local one in a test) gets handles of its own.
        recorder: usize,
        handles: HashMap<Labels, (Counter, Histogram)>,
    }

    /// Label sets are few (dialect x endpoint x outcome x error code); the
    /// bound only keeps custom policy error names from growing the cache
    /// without end. Past it, a label set is registered on every use.
    const CAPACITY: usize = 1024;

    static CACHE: LazyLock<RwLock<Cache>> = LazyLock::new(RwLock::default);

    pub(super) fn record(labels: Labels, seconds: f64) {
        metrics::with_recorder(|recorder| {
            let id = std::ptr::from_ref(recorder).cast::<()>() as usize;
            {
                let cache = CACHE.read().unwrap_or_else(PoisonError::into_inner);
                if cache.recorder == id
                    && let Some((counter, histogram)) = cache.handles.get(&labels)
                {
                    counter.increment(1);
                    histogram.record(seconds);
                    return;
                }
            }
            let (counter, histogram) = register(recorder, &labels);
            counter.increment(1);
            histogram.record(seconds);
            let mut cache = CACHE.write().unwrap_or_else(PoisonError::into_inner);
            if cache.recorder != id {
                cache.handles.clear();
                cache.recorder = id;
            }
            if cache.handles.len() < CAPACITY {
                cache.handles.insert(labels, (counter, histogram));
            }
        });
    }

    fn register(recorder: &dyn Recorder, labels: &Labels) -> (Counter, Histogram) {
        let metadata = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
        let common = [
            Label::new("dialect", labels.dialect),
            Label::new("endpoint", labels.endpoint),
        ];
        let mut counter_labels = common.to_vec();
        counter_labels.extend([
            Label::new("grant", labels.grant),
            Label::new("outcome", labels.outcome),
            Label::new("error", labels.error.clone().into_owned()),
        ]);
        let counter = Key::from_parts("tokengate_requests_total", counter_labels);
        let mut histogram_labels = common.to_vec();
        histogram_labels.push(Label::new("outcome", labels.outcome));
        let histogram = Key::from_parts("tokengate_check_duration_seconds", histogram_labels);
        (
            recorder.register_counter(&counter, &metadata),
            recorder.register_histogram(&histogram, &metadata),
        )
    }
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
