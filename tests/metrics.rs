//! The gate's metrics reach whatever recorder the application installs:
//! counts per dialect, grant and error code, and a latency histogram.
//! Alone in its binary, since it installs the global recorder.

#![cfg(feature = "metrics")]

mod common;

use common::*;
use metrics_exporter_prometheus::PrometheusBuilder;
use tokengate::Dialect;

#[tokio::test]
async fn counts_and_times_every_decision() {
    let handle = PrometheusBuilder::new().install_recorder().unwrap();
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.app_code().await;
    assert_eq!(h.forwarded(post(&exchange(&code))).await.0.status, 200);
    h.refused(post(&exchange(&code)))
        .await
        .assert_rfc(400, "invalid_grant");
    // Twice: the second count goes through the handle registered by the
    // first.
    for _ in 0..2 {
        h.refused(post(&exchange("nope").replace("s3cret", "wrong")))
            .await
            .assert_rfc(401, "invalid_client");
    }
    let get = http::Request::get(TOKEN).body(String::new()).unwrap();
    assert_eq!(h.refused(get).await.status, 405);
    let g = Harness::new(Dialect::GitHub);
    assert_eq!(g.refused(post_device("client_id=tv")).await.status, 200);

    let text = handle.render();
    let has = |needle: &str| {
        text.lines().any(|line| {
            line.starts_with("tokengate_requests_total{")
                && needle.split(',').all(|part| line.contains(part))
        })
    };
    assert!(
        has(r#"outcome="forwarded",grant="authorization_code",dialect="rfc6749""#),
        "{text}"
    );
    assert!(has(r#"outcome="rejected",error="invalid_grant""#), "{text}");
    let invalid_client = text
        .lines()
        .find(|line| {
            line.starts_with("tokengate_requests_total{")
                && line.contains(r#"error="invalid_client""#)
        })
        .unwrap_or_else(|| panic!("{text}"));
    assert!(invalid_client.ends_with(" 2"), "{invalid_client}");
    assert!(
        has(r#"outcome="rejected",error="invalid_request""#),
        "{text}"
    );
    assert!(
        has(r#"outcome="answered",endpoint="device_authorization",dialect="github""#),
        "{text}"
    );
    assert!(text.contains("tokengate_check_duration_seconds"), "{text}");
    // Nothing secret in the labels.
    assert!(!text.contains(&code) && !text.contains("s3cret"), "{text}");
}
