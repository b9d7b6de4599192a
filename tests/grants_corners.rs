//! Corners of the grants found by mutation testing: each test here fails
//! against a deliberately broken gate that the other tests let pass.

mod common;

use std::time::Duration;

use common::*;
use tokengate::{
    Client, Dialect, GrantType, policy::ClientSwitch, policy::PolicyError, policy::PolicyRequest,
};

fn device_poll(client_id: &str, device_code: &str) -> String {
    format!("grant_type={DEVICE_GRANT}&client_id={client_id}&device_code={device_code}")
}

/// Starts a device authorization with `body`; (device_code, user_code).
async fn start_device(h: &Harness, body: &str) -> (String, String) {
    let answer = h
        .refused(with_accept(post_device(body), "application/json"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let json = answer.json();
    (
        json["device_code"].as_str().unwrap().to_owned(),
        json["user_code"].as_str().unwrap().to_owned(),
    )
}

// Kills M07 (client.rs:183, public check dropped from allows_grant): a public
// client registered in code (not through the clients file, which refuses it)
// for client_credentials must still be refused.
#[tokio::test]
async fn a_public_client_registered_for_client_credentials_is_still_refused() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::with(dialect, |b| b.github_client_credentials(true));
        h.store.insert_client(
            Client::public("pub-svc").with_grant_types([GrantType::ClientCredentials]),
        );
        let answer = h
            .refused(post("grant_type=client_credentials&client_id=pub-svc"))
            .await;
        match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, "unauthorized_client"),
            _ => answer.assert_github("unsupported_grant_type"),
        }
    }
}

// Kills M10 (policy.rs:253, the chain stops after the first policy): a later
// policy's refusal must win even when the first one passes.
#[tokio::test]
async fn every_policy_runs_until_one_refuses() {
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.policy(|_: PolicyRequest| async { Ok::<(), PolicyError>(()) })
            .policy(|_: PolicyRequest| async {
                Err(PolicyError::new("second_policy", "refused by the second policy").unwrap())
            })
    });
    let code = h.app_code().await;
    let answer = h.refused(post(&exchange(&code))).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"], "second_policy");
}

// Kills M13 (check.rs:195, GitHub's id-only authentication applied to every
// grant): outside the device grant a confidential client needs its secret.
#[tokio::test]
async fn github_id_only_authentication_is_for_the_device_grant_alone() {
    let g = Harness::with(Dialect::GitHub, |b| b.github_client_credentials(true));
    let code = g.app_code().await;
    g.refused(post(&exchange(&code).replace("&client_secret=s3cret", "")))
        .await
        .assert_github("incorrect_client_credentials");
    let token = g.app_refresh_token().await;
    g.refused(post(&format!(
        "grant_type=refresh_token&refresh_token={token}&client_id=app"
    )))
    .await
    .assert_github("incorrect_client_credentials");
    g.refused(post("grant_type=client_credentials&client_id=svc"))
        .await
        .assert_github("incorrect_client_credentials");
}

// Kills M17 (check.rs:195, id_suffices forced false): GitHub's device flow
// polls with client_id alone, even for a confidential client (as the GitHub
// CLI does when it has no secret).
#[tokio::test]
async fn github_device_polls_need_only_the_client_id() {
    let g = Harness::new(Dialect::GitHub);
    let (device_code, user_code) = start_device(&g, "client_id=gh-tv").await;
    g.refused(post(&device_poll("gh-tv", &device_code)))
        .await
        .assert_github("authorization_pending");
    assert!(
        g.layer
            .devices()
            .approve(&user_code, "alice", None)
            .await
            .unwrap()
    );
    g.clock.advance(Duration::from_secs(5));
    let (answer, seen) = g.forwarded(post(&device_poll("gh-tv", &device_code))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(seen.grant.unwrap().subject(), Some("alice"));
}

// Kills M16 (device.rs:216, `<` -> `<=`): a poll exactly `interval` seconds
// after the previous one is on time (RFC 8628 §3.5 "at least").
#[tokio::test]
async fn a_poll_exactly_one_interval_later_is_on_time() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let (device_code, _) = start_device(&h, "client_id=tv").await;
        for _ in 0..3 {
            let answer = h.refused(post(&device_poll("tv", &device_code))).await;
            match dialect {
                Dialect::Rfc6749 => answer.assert_rfc(400, "authorization_pending"),
                _ => answer.assert_github("authorization_pending"),
            }
            h.clock.advance(Duration::from_secs(5));
        }
    }
}

// Kills M36 (device.rs:224, approval checked before the interval): an
// approved code polled too fast answers slow_down and is not redeemed; the
// next timely poll gets it.
#[tokio::test]
async fn an_approved_code_polled_too_fast_is_slowed_down_not_redeemed() {
    let h = Harness::new(Dialect::Rfc6749);
    let (device_code, user_code) = start_device(&h, "client_id=tv").await;
    h.refused(post(&device_poll("tv", &device_code)))
        .await
        .assert_rfc(400, "authorization_pending");
    assert!(
        h.layer
            .devices()
            .approve(&user_code, "alice", None)
            .await
            .unwrap()
    );
    h.clock.advance(Duration::from_secs(1));
    h.refused(post(&device_poll("tv", &device_code)))
        .await
        .assert_rfc(400, "slow_down");
    h.clock.advance(Duration::from_secs(10));
    let (answer, seen) = h.forwarded(post(&device_poll("tv", &device_code))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(seen.grant.unwrap().subject(), Some("alice"));
}

// The verification URI is configuration (issue 12, item 5): a loopback
// `Host` no longer turns it into plain HTTP on that host.
#[tokio::test]
async fn a_loopback_host_does_not_change_the_verification_uri() {
    let h = Harness::new(Dialect::Rfc6749);
    for host in ["[::1]:8080", "[::1]", "127.0.0.1", "localhost:3000"] {
        let mut request = post_to(DEVICE, "client_id=tv");
        request.headers_mut().insert("host", host.parse().unwrap());
        let answer = h.refused(request).await;
        assert_eq!(
            answer.json()["verification_uri"],
            "https://auth.example.com/login/device",
            "Host: {host}"
        );
    }
}

// Kills M35 (future.rs:305, policies skipped for refresh and device grants):
// the disable switch stops refreshes and device polls too, not only codes.
#[tokio::test]
async fn policies_also_guard_the_refresh_and_device_grants() {
    let switch = ClientSwitch::new();
    let board = switch.clone();
    let h = Harness::with(Dialect::Rfc6749, move |b| b.policy(board));
    let token = h.app_refresh_token().await;
    let (device_code, user_code) = start_device(&h, "client_id=tv").await;
    assert!(
        h.layer
            .devices()
            .approve(&user_code, "alice", None)
            .await
            .unwrap()
    );
    switch.disable("app");
    switch.disable("tv");
    h.refused(post(&format!(
        "grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret"
    )))
    .await
    .assert_rfc(400, "unauthorized_client");
    h.refused(post(&device_poll("tv", &device_code)))
        .await
        .assert_rfc(400, "unauthorized_client");
}
