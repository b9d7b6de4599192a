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
    /// RFC 7009.
    Revocation,
    /// RFC 7662.
    Introspection,
    /// GitHub's REST endpoints for OAuth apps (`Builder::application_api`).
    Application,
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
        Endpoint::Revocation => "revocation",
        Endpoint::Introspection => "introspection",
        Endpoint::Application => "application_api",
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

/// The metric keys of each label set, built once: building a key per
/// request (the labels allocated, cloned and hashed) cost more than the rest
/// of the metrics work under load. The recorder in force is asked for its
/// handles each time, so a recorder installed late, or a local one in a
/// test, gets every count.
#[cfg(feature = "metrics")]
mod handles {
    use std::{
        borrow::Cow,
        collections::HashMap,
        hash::{Hash, Hasher},
        sync::{Arc, LazyLock, PoisonError, RwLock},
    };

    use foldhash::fast::FixedState;
    use metrics::{Key, Label, Level, Metadata};

    /// A label set. Its values are string constants of this crate (the
    /// error of a custom policy excepted), so it is compared and hashed by
    /// their addresses: hashing the text cost more than building the key.
    /// Two equal texts at different addresses are two entries with the
    /// same keys, which the recorder counts as one.
    #[derive(Clone)]
    pub(super) struct Labels {
        pub(super) dialect: &'static str,
        pub(super) endpoint: &'static str,
        pub(super) grant: &'static str,
        pub(super) outcome: &'static str,
        pub(super) error: Cow<'static, str>,
    }

    fn same(a: &'static str, b: &'static str) -> bool {
        std::ptr::eq(a, b)
    }

    impl PartialEq for Labels {
        fn eq(&self, other: &Self) -> bool {
            let error = match (&self.error, &other.error) {
                (Cow::Borrowed(a), Cow::Borrowed(b)) => same(a, b),
                (Cow::Owned(a), Cow::Owned(b)) => a == b,
                _ => false,
            };
            error
                && same(self.dialect, other.dialect)
                && same(self.endpoint, other.endpoint)
                && same(self.grant, other.grant)
                && same(self.outcome, other.outcome)
        }
    }

    impl Eq for Labels {}

    impl Hash for Labels {
        fn hash<H: Hasher>(&self, state: &mut H) {
            for text in [self.dialect, self.endpoint, self.grant, self.outcome] {
                state.write_usize(text.as_ptr() as usize);
            }
            match &self.error {
                Cow::Borrowed(text) => {
                    state.write_usize(text.as_ptr() as usize);
                    state.write_usize(text.len());
                }
                Cow::Owned(text) => text.hash(state),
            }
        }
    }

    /// The counter's key and the histogram's.
    type Keys = Arc<(Key, Key)>;

    /// Label sets are few (dialect x endpoint x outcome x error code); the
    /// bound only keeps custom policy error names from growing the cache
    /// without end. Past it, a label set's keys are built on every use.
    const CAPACITY: usize = 1024;

    /// A fast hash: the keys are this crate's own label sets, nobody can
    /// choose them to collide.
    static KEYS: LazyLock<RwLock<HashMap<Labels, Keys, FixedState>>> =
        LazyLock::new(RwLock::default);

    static METADATA: Metadata<'static> =
        Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

    pub(super) fn record(labels: Labels, seconds: f64) {
        let (cached, full) = {
            let cache = KEYS.read().unwrap_or_else(PoisonError::into_inner);
            (cache.get(&labels).cloned(), cache.len() >= CAPACITY)
        };
        let keys = cached.unwrap_or_else(|| {
            let keys = Arc::new(keys(&labels));
            if !full {
                let mut cache = KEYS.write().unwrap_or_else(PoisonError::into_inner);
                cache.insert(labels, Arc::clone(&keys));
            }
            keys
        });
        metrics::with_recorder(|recorder| {
            recorder.register_counter(&keys.0, &METADATA).increment(1);
            recorder
                .register_histogram(&keys.1, &METADATA)
                .record(seconds);
        });
    }

    fn keys(labels: &Labels) -> (Key, Key) {
        let common = [
            Label::new("dialect", labels.dialect),
            Label::new("endpoint", labels.endpoint),
        ];
        let mut counter = common.to_vec();
        counter.extend([
            Label::new("grant", labels.grant),
            Label::new("outcome", labels.outcome),
            Label::new("error", labels.error.clone().into_owned()),
        ]);
        let mut histogram = common.to_vec();
        histogram.push(Label::new("outcome", labels.outcome));
        (
            Key::from_parts("tokengate_requests_total", counter),
            Key::from_parts("tokengate_check_duration_seconds", histogram),
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
