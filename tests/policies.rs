//! Policy hooks: run after the built-in checks, refuse with a standard or
//! custom error, and the two built-in policies.

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use common::*;
use http::StatusCode;
use tokengate::{
    Dialect, ErrorCode, StoreError, policy::ClientSwitch, policy::PolicyError,
    policy::PolicyRequest, policy::UnverifiedUserEmail,
};

#[tokio::test]
async fn a_closure_can_refuse_with_a_custom_error() {
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.policy(|request: PolicyRequest| async move {
            if request
                .headers()
                .get("x-tenant")
                .is_some_and(|t| t == "blocked")
            {
                return Err(
                    PolicyError::new("tenant_blocked", "This tenant is blocked.")
                        .unwrap()
                        .with_uri("https://auth.example/errors#tenant")
                        .unwrap()
                        .with_status(StatusCode::FORBIDDEN)
                        .unwrap(),
                );
            }
            Ok(())
        })
    });
    let code = h.app_code().await;
    let mut request = post(&exchange(&code));
    request
        .headers_mut()
        .insert("x-tenant", "blocked".parse().unwrap());
    let answer = h.refused(request).await;
    assert_eq!(answer.status, 403);
    assert_eq!(
        answer.text(),
        r#"{"error":"tenant_blocked","error_description":"This tenant is blocked.","error_uri":"https://auth.example/errors#tenant"}"#
    );
    answer.assert_no_store();
    let rejection = answer.rejection.unwrap();
    assert_eq!(rejection.error(), "tenant_blocked");
    assert_eq!(rejection.code(), ErrorCode::Other);
    // Other tenants pass.
    let code = h.app_code().await;
    assert_eq!(h.forwarded(post(&exchange(&code))).await.0.status, 200);
}

#[tokio::test]
async fn policies_run_after_the_built_in_checks_in_order() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let h = Harness::with(Dialect::GitHub, move |b| {
        b.policy(move |request: PolicyRequest| {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                assert_eq!(request.grant().subject(), Some("user-1"));
                assert_eq!(request.client().client_id(), "app");
                Err(PolicyError::standard(ErrorCode::InvalidGrant, "first policy").unwrap())
            }
        })
        .policy(|_: PolicyRequest| async { panic!("the second policy ran after a refusal") })
    });
    // A request the built-in checks refuse never reaches a policy.
    h.refused(post(&exchange("nope")))
        .await
        .assert_github("bad_verification_code");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let code = h.app_code().await;
    let answer = h.refused(post(&exchange(&code))).await;
    assert_eq!(
        answer.status, 200,
        "GitHub's status for the application's errors too"
    );
    assert_eq!(answer.form()["error"], "invalid_grant");
    assert_eq!(answer.form()["error_description"], "first policy");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn illegal_errors_are_refused_when_built() {
    assert!(PolicyError::new("", "x").is_err());
    assert!(PolicyError::new("bad\"code", "x").is_err());
    assert!(PolicyError::new("ok", "back\\slash").is_err());
    assert!(PolicyError::new("ok", "caf\u{e9}").is_err());
    assert!(PolicyError::new("ok", "line\nbreak").is_err());
    assert!(
        PolicyError::new("ok", "fine")
            .unwrap()
            .with_uri("has space")
            .is_err()
    );
}

async fn verified_unless_eve(subject: String) -> Result<bool, StoreError> {
    Ok(subject != "user-1")
}

#[tokio::test]
async fn unverified_user_email_in_githubs_words() {
    let g = Harness::with(Dialect::GitHub, |b| {
        b.policy(UnverifiedUserEmail::new(verified_unless_eve))
    });
    let code = g.app_code().await;
    let answer = g
        .refused(with_accept(post(&exchange(&code)), "application/json"))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.text(),
        r#"{"error":"unverified_user_email","error_description":"The user must have a verified primary email.","error_uri":"/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#unverified_user_email"}"#
    );
    assert_eq!(
        answer.rejection.unwrap().code(),
        ErrorCode::UnverifiedUserEmail
    );
    // With a documentation base, the path is prefixed as for built-in errors.
    let g = Harness::with(Dialect::GitHub, |b| {
        b.error_uri_base("https://docs.github.com")
            .policy(UnverifiedUserEmail::new(verified_unless_eve))
    });
    let code = g.app_code().await;
    let answer = g
        .refused(with_accept(post(&exchange(&code)), "application/json"))
        .await;
    assert!(
        answer.json()["error_uri"]
            .as_str()
            .unwrap()
            .starts_with("https://docs.github.com/apps/")
    );
    // RFC 6749 dialect: the same code, status 400.
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.policy(UnverifiedUserEmail::new(verified_unless_eve))
    });
    let code = h.app_code().await;
    let answer = h.refused(post(&exchange(&code))).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"], "unverified_user_email");
    // Client credentials have no user to verify.
    let (answer, _) = h
        .forwarded(post(
            "grant_type=client_credentials&client_id=svc&client_secret=svc-s3cret",
        ))
        .await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn a_policy_that_cannot_decide_fails_closed() {
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.policy(UnverifiedUserEmail::new(|_: String| async {
            Err::<bool, _>(StoreError::new("user directory down"))
        }))
    });
    let code = h.app_code().await;
    let answer = h.refused(post(&exchange(&code))).await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.json()["error"], "server_error");
}

#[tokio::test]
async fn the_client_switch() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let switch = ClientSwitch::new();
        let board = switch.clone();
        let h = Harness::with(dialect, move |b| b.policy(board));
        switch.disable("app");
        let code = h.app_code().await;
        let answer = h.refused(post(&exchange(&code))).await;
        match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, "unauthorized_client"),
            _ => answer.assert_github("application_suspended"),
        }
        // Other clients are untouched; re-enabling restores the client.
        let code = h
            .code(&format!("client_id=other&redirect_uri={CB_ENC}"))
            .await;
        let body = format!(
            "grant_type=authorization_code&code={code}&redirect_uri={CB_ENC}&client_id=other&client_secret=other-s3cret"
        );
        assert_eq!(h.forwarded(post(&body)).await.0.status, 200);
        switch.enable("app");
        let code = h.app_code().await;
        assert_eq!(h.forwarded(post(&exchange(&code))).await.0.status, 200);
    }
}
