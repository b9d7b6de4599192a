//! The gate composed with tower-http's layers: the router of
//! `examples/tower_http.rs` (`TraceLayer`, `CorsLayer` and a request
//! `TimeoutLayer` around the gate, a `TimeoutLayer` on the handler inside
//! it), with codes minted in-process through `layer.authorizer()`.
//!
//! Every test captures the logs: tracing's per-callsite interest cache is
//! shared by the threads of this binary, so they all run with the same
//! kind of subscriber (see `tests/logs.rs`).

mod common;

#[path = "../examples/tower_http.rs"]
#[allow(dead_code)]
mod example;

use std::{
    convert::Infallible,
    io::Write,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    Router,
    http::{HeaderValue, Request},
};
use bytes::Bytes;
use common::*;
use example::Settings;
use http_body::{Body, Frame};
use tokengate::Dialect;
use tower::ServiceExt;

const ORIGIN: &str = "https://spa.example";

fn settings() -> Settings {
    Settings {
        origin: HeaderValue::from_static(ORIGIN),
        request_timeout: Duration::from_secs(5),
        handler_timeout: Duration::from_secs(2),
    }
}

/// The logs written while the guard lives, on this thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// A handler that records that it ran.
fn recording() -> (
    Arc<AtomicBool>,
    impl Fn() -> std::future::Ready<&'static str> + Clone + Send + Sync + 'static,
) {
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let handler = move || {
        flag.store(true, Ordering::SeqCst);
        std::future::ready("inner")
    };
    (ran, handler)
}

fn from_origin<B>(mut request: Request<B>, origin: &str) -> Request<B> {
    request
        .headers_mut()
        .insert("origin", HeaderValue::from_str(origin).unwrap());
    request
}

async fn send<B>(app: Router, request: Request<B>) -> Answer
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    Answer::read(app.oneshot(request).await.unwrap()).await
}

fn assert_cors(answer: &Answer) {
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(ORIGIN),
        "{:?}",
        answer.headers
    );
}

#[tokio::test]
async fn a_valid_exchange_passes_through_every_layer() {
    let (logs, _guard) = Logs::capture();
    let h = Harness::new(Dialect::Rfc6749);
    let app = example::app(h.layer.clone(), example::mint_token, &settings());
    let code = h.app_code().await;

    let answer = send(app, from_origin(post(&exchange(&code)), ORIGIN)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert!(body["access_token"].as_str().unwrap().starts_with("demo_"));
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["scope"], "read");
    assert_cors(&answer);
    answer.assert_no_store();
    assert!(answer.rejection.is_none());

    let logs = logs.text();
    assert!(logs.contains("started processing request"), "{logs}");
    assert!(
        logs.contains("token_endpoint: answered status=200"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_rejection_still_carries_the_cors_headers() {
    let (logs, _guard) = Logs::capture();
    let h = Harness::new(Dialect::Rfc6749);
    let (ran, handler) = recording();
    let app = example::app(h.layer.clone(), handler, &settings());
    let code = h.app_code().await;

    // A wrong secret: the gate's 401 is an ordinary response, so the layers
    // outside it decorate it like any other.
    let wrong = post(&exchange(&code).replace("s3cret", "wrong"));
    let answer = send(app.clone(), from_origin(wrong, ORIGIN)).await;
    answer.assert_rfc(401, "invalid_client");
    assert_cors(&answer);
    // The gate's `Rejection` survives every layer, for outer ones to read.
    assert_eq!(answer.rejection.unwrap().error(), "invalid_client");

    // The code was not touched (client authentication comes first): a valid
    // exchange, then its replay.
    let answer = send(app.clone(), from_origin(post(&exchange(&code)), ORIGIN)).await;
    assert_eq!(answer.status, 200);
    assert!(ran.swap(false, Ordering::SeqCst));
    let answer = send(app.clone(), from_origin(post(&exchange(&code)), ORIGIN)).await;
    answer.assert_rfc(400, "invalid_grant");
    assert_cors(&answer);

    // Another origin gets the gate's answer too, but CORS names the one
    // allowed origin (a single exact origin is sent as is), so the browser
    // keeps the answer from the other site's script.
    let answer = send(
        app,
        from_origin(post(&exchange(&code)), "https://evil.example"),
    )
    .await;
    answer.assert_rfc(400, "invalid_grant");
    assert_eq!(answer.header("access-control-allow-origin"), Some(ORIGIN));

    assert!(
        !ran.load(Ordering::SeqCst),
        "the handler ran on a rejection"
    );
    let logs = logs.text();
    assert!(
        logs.contains(r#"refused by the gate status=401 error="invalid_client""#),
        "{logs}"
    );
    assert!(
        logs.contains(r#"refused by the gate status=400 error="invalid_grant""#),
        "{logs}"
    );
}

#[tokio::test]
async fn a_preflight_is_answered_by_cors_outside_the_gate() {
    let (logs, _guard) = Logs::capture();
    let h = Harness::new(Dialect::Rfc6749);
    let (ran, handler) = recording();
    let app = example::app(h.layer.clone(), handler, &settings());

    let preflight = Request::options(TOKEN)
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .body(String::new())
        .unwrap();
    let answer = send(app.clone(), preflight).await;
    assert_eq!(answer.status, 200);
    assert_cors(&answer);
    assert_eq!(answer.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(
        answer.header("access-control-allow-headers"),
        Some("authorization,content-type,accept")
    );
    assert_eq!(answer.header("access-control-max-age"), Some("600"));
    // Not the gate's 405: no rejection, no body, no no-store. (The `Allow`
    // header it carries is axum's, set on every answer to a method the
    // route does not serve.)
    assert!(answer.rejection.is_none());
    assert!(answer.body.is_empty());
    assert_eq!(answer.header("cache-control"), None);
    assert_eq!(answer.header("allow"), Some("POST"));

    // tower-http's CorsLayer answers every OPTIONS request itself, a bare
    // one too: none reaches the gate.
    let bare = Request::options(TOKEN).body(String::new()).unwrap();
    let answer = send(app, bare).await;
    assert_eq!(answer.status, 200);
    assert!(answer.rejection.is_none());

    assert!(!ran.load(Ordering::SeqCst));
    assert!(!logs.text().contains("refused"), "{}", logs.text());
}

/// The wrong order, for contrast: with `CorsLayer` inside the gate, the
/// gate answers the preflight (405, not `POST`) and its refusals carry no
/// CORS headers, so a browser application can read neither.
#[tokio::test]
async fn cors_inside_the_gate_breaks_preflights_and_hides_refusals() {
    let (_logs, _guard) = Logs::capture();
    let h = Harness::new(Dialect::Rfc6749);
    let (ran, handler) = recording();
    let app = Router::new()
        .route(TOKEN, axum::routing::post(handler))
        .layer(example::cors(HeaderValue::from_static(ORIGIN)))
        .layer(h.layer.clone());

    let preflight = Request::options(TOKEN)
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .body(String::new())
        .unwrap();
    let answer = send(app.clone(), preflight).await;
    answer.assert_rfc(405, "invalid_request");
    assert_eq!(answer.header("allow"), Some("POST"));
    assert_eq!(answer.header("access-control-allow-origin"), None);

    let code = h.app_code().await;
    let wrong = post(&exchange(&code).replace("s3cret", "wrong"));
    let answer = send(app, from_origin(wrong, ORIGIN)).await;
    answer.assert_rfc(401, "invalid_client");
    assert_eq!(answer.header("access-control-allow-origin"), None);
    assert!(!ran.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_slow_handler_is_cut_by_the_timeout_inside_the_gate() {
    let (logs, _guard) = Logs::capture();
    let h = Harness::new(Dialect::Rfc6749);
    let slow = || async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        "too late"
    };
    let settings = Settings {
        handler_timeout: Duration::from_millis(100),
        ..settings()
    };
    let app = example::app(h.layer.clone(), slow, &settings);
    let code = h.app_code().await;

    let started = Instant::now();
    let answer = send(app.clone(), from_origin(post(&exchange(&code)), ORIGIN)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(answer.status, 503);
    assert!(answer.body.is_empty());
    // Forwarded, then cut: no rejection; the gate still adds no-store on
    // the way out, and CorsLayer its headers.
    assert!(answer.rejection.is_none());
    answer.assert_no_store();
    assert_cors(&answer);

    // The timeout answered 503, so the gate handed the code back (two-phase
    // redemption): the retry, to a handler that answers in time, gets the
    // token, and the code is spent after that.
    let fast = example::app(h.layer.clone(), || async { "token" }, &settings);
    let answer = send(fast.clone(), from_origin(post(&exchange(&code)), ORIGIN)).await;
    assert_eq!(answer.status, 200);
    let answer = send(fast, from_origin(post(&exchange(&code)), ORIGIN)).await;
    answer.assert_rfc(400, "invalid_grant");
    drop(app);

    let logs = logs.text();
    assert!(
        logs.contains("token_endpoint: answered status=503"),
        "{logs}"
    );
    // TraceLayer classifies a 5xx as a failure.
    assert!(logs.contains("response failed"), "{logs}");
}

/// A body that sends its first bytes and then nothing, ever.
struct Stalled(bool);

impl Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if std::mem::replace(&mut self.0, true) {
            Poll::Pending
        } else {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                b"grant_type=authorization_code&",
            )))))
        }
    }
}

#[tokio::test]
async fn a_stalled_body_is_cut_by_the_timeout_around_the_gate() {
    let (_logs, _guard) = Logs::capture();
    let h = Harness::new(Dialect::Rfc6749);
    let (ran, handler) = recording();
    let settings = Settings {
        request_timeout: Duration::from_millis(200),
        ..settings()
    };
    let app = example::app(h.layer.clone(), handler, &settings);

    let request = Request::post(TOKEN)
        .header("content-type", FORM)
        .header("origin", ORIGIN)
        .body(Stalled(false))
        .unwrap();
    let started = Instant::now();
    let answer = send(app, request).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(answer.status, 408);
    assert!(answer.rejection.is_none());
    assert_cors(&answer);
    assert!(!ran.load(Ordering::SeqCst));
}
