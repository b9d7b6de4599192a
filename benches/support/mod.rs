//! What the benchmarks share: driving a service without a runtime, and
//! timing two routines against each other in the same run.

#![allow(dead_code)]

use std::{
    fmt::Debug,
    future::Future,
    hint::black_box,
    pin::pin,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use criterion::Criterion;
use tower::Service;

/// Criterion's settings for every group: short, for a 2-core machine.
pub(crate) fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// Polls `future` once; everything here completes without suspending.
pub(crate) fn now_or_never<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("future suspended; the memory store never should"),
    }
}

/// `ready()` then `call()`, driven to completion.
pub(crate) fn call<S, R>(service: &mut S, request: R) -> S::Response
where
    S: Service<R>,
    S::Error: Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(error)) => panic!("service failed: {error:?}"),
        Poll::Pending => panic!("service not ready"),
    }
    now_or_never(service.call(request)).expect("the handler is infallible")
}

/// Whether to run the `Instant` comparisons: only under `cargo bench` (not
/// in criterion's test, list or profile modes), and only for groups whose
/// benchmarks criterion's filter let run.
pub(crate) fn comparing(ran: &[bool]) -> bool {
    let mut bench = false;
    for arg in std::env::args().skip(1) {
        if arg == "--bench" {
            bench = true;
        } else if arg == "--test" || arg == "--list" || arg.starts_with("--profile-time") {
            return false;
        }
    }
    bench && ran.iter().all(|&ran| ran)
}

/// Times `routine` over `batch` inputs made beforehand by `setup`, as
/// criterion's `iter_batched` does; nanoseconds per iteration.
fn time_batch<I, O>(
    setup: &mut impl FnMut() -> I,
    routine: &mut impl FnMut(I) -> O,
    batch: u64,
) -> f64 {
    let inputs: Vec<I> = (0..batch).map(|_| setup()).collect();
    let mut outputs = Vec::with_capacity(inputs.len());
    let start = Instant::now();
    outputs.extend(inputs.into_iter().map(&mut *routine));
    let elapsed = start.elapsed();
    drop(black_box(outputs));
    elapsed.as_nanos() as f64 / batch as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One side of a comparison: its input maker, its routine and how many
/// inputs each timed batch holds.
pub(crate) struct Side<S, R> {
    pub(crate) setup: S,
    pub(crate) routine: R,
    pub(crate) batch: u64,
}

/// Median nanoseconds per iteration of `a` and `b`, timed in alternating
/// batches so that drift (frequency, cache, store size) hits both alike:
/// at least `min_rounds` batches each, and until `budget` has passed.
pub(crate) fn compare<IA, OA, IB, OB>(
    mut a: Side<impl FnMut() -> IA, impl FnMut(IA) -> OA>,
    mut b: Side<impl FnMut() -> IB, impl FnMut(IB) -> OB>,
    min_rounds: usize,
    budget: Duration,
) -> (f64, f64) {
    // Warm up both, untimed.
    time_batch(&mut a.setup, &mut a.routine, a.batch);
    time_batch(&mut b.setup, &mut b.routine, b.batch);
    let (mut times_a, mut times_b) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while times_a.len() < min_rounds || start.elapsed() < budget {
        if times_a.len() % 2 == 0 {
            times_a.push(time_batch(&mut a.setup, &mut a.routine, a.batch));
            times_b.push(time_batch(&mut b.setup, &mut b.routine, b.batch));
        } else {
            times_b.push(time_batch(&mut b.setup, &mut b.routine, b.batch));
            times_a.push(time_batch(&mut a.setup, &mut a.routine, a.batch));
        }
    }
    (median(times_a), median(times_b))
}
