//! A gate that cannot find a request's peer address counts nothing per
//! peer, and says so once per process, not once per request: the warning
//! tells an operator to set the peer source, and a log line per request
//! would flood the logs of exactly the deployments that need it. Alone in
//! its binary: the warning is once per process, and tracing's per-callsite
//! interest cache races with other tests' threads.

mod common;

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use common::*;
use tokengate::Dialect;

const WARNING: &str = "the lockout cannot find the peer address of a request";

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn warnings(&self) -> usize {
        let logs = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        logs.matches(WARNING).count()
    }
}

fn anonymous(body: &str) -> http::Request<String> {
    let mut request = post(body);
    request.extensions_mut().remove::<SocketAddr>();
    request
}

#[tokio::test(flavor = "current_thread")]
async fn a_missing_peer_is_logged_once_per_process() {
    let buf = Buf::default();
    let w = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || w.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = Harness::new(Dialect::Rfc6749);
    // Requests with a peer say nothing.
    let code = h.app_code().await;
    let (answer, _) = h.forwarded(post(&exchange(&code))).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(buf.warnings(), 0);
    // The first request without one: the warning, at once.
    h.refused(anonymous(&exchange("x")))
        .await
        .assert_rfc(400, "invalid_grant");
    assert_eq!(buf.warnings(), 1);
    // Every later one, at the token endpoint or the verification side: not
    // again.
    for _ in 0..3 {
        h.refused(anonymous(&exchange("x")))
            .await
            .assert_rfc(400, "invalid_grant");
    }
    let devices = h.layer.devices();
    for _ in 0..3 {
        assert!(devices.lookup("BCDF-GHJK", None).await.unwrap().is_none());
    }
    assert_eq!(buf.warnings(), 1);
}
