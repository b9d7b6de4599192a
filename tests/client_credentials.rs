//! The client-credentials grant and per-client scopes.

mod common;

use common::*;
use tokengate::{Dialect, GrantType};

const SVC: &str = "grant_type=client_credentials&client_id=svc&client_secret=svc-s3cret";

#[tokio::test]
async fn a_confidential_client_acts_for_itself() {
    let h = Harness::new(Dialect::Rfc6749);
    let (answer, seen) = h.forwarded(post(SVC)).await;
    assert_eq!(answer.status, 200);
    let grant = seen.grant.unwrap();
    assert_eq!(grant.grant_type(), GrantType::ClientCredentials);
    assert_eq!(grant.subject(), None);
    // No scope asked: the client's whole allowed set.
    assert_eq!(grant.scopes(), ["read", "write"]);
    let (_, seen) = h.forwarded(post(&format!("{SVC}&scope=write"))).await;
    assert_eq!(seen.grant.unwrap().scopes(), ["write"]);
    // Basic works as well.
    let (answer, _) = h
        .forwarded(post_basic(
            "svc",
            "svc-s3cret",
            "grant_type=client_credentials&scope=read",
        ))
        .await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn scopes_outside_the_allowed_set_are_invalid_scope() {
    let h = Harness::new(Dialect::Rfc6749);
    for scope in ["admin", "read+admin", "re%22ad"] {
        h.refused(post(&format!("{SVC}&scope={scope}")))
            .await
            .assert_rfc(400, "invalid_scope");
    }
}

#[tokio::test]
async fn only_clients_registered_for_it() {
    let h = Harness::new(Dialect::Rfc6749);
    // `app` is confidential but not registered for it; `native` is public.
    h.refused(post(
        "grant_type=client_credentials&client_id=app&client_secret=s3cret",
    ))
    .await
    .assert_rfc(400, "unauthorized_client");
    h.refused(post("grant_type=client_credentials&client_id=native"))
        .await
        .assert_rfc(400, "unauthorized_client");
    h.refused(post(
        "grant_type=client_credentials&client_id=svc&client_secret=nope",
    ))
    .await
    .assert_rfc(401, "invalid_client");
}

#[tokio::test]
async fn github_answers_unsupported_unless_enabled() {
    let g = Harness::new(Dialect::GitHub);
    g.refused(post(SVC))
        .await
        .assert_github("unsupported_grant_type");
    let g = Harness::with(Dialect::GitHub, |b| b.github_client_credentials(true));
    let (answer, seen) = g.forwarded(post(&format!("{SVC}&scope=read,write"))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(seen.grant.unwrap().scopes(), ["read", "write"]);
}

#[tokio::test]
async fn authorization_requests_respect_allowed_scopes() {
    let h = Harness::new(Dialect::Rfc6749);
    let error = h
        .layer
        .authorizer()
        .validate("response_type=code&client_id=tv&scope=admin&state=s")
        .await;
    // `tv` has no redirect URI: it cannot use the browser flow at all.
    assert!(error.is_err());
    let store_client = tokengate::Client::confidential("scoped")
        .with_secret("x")
        .with_redirect_uri(CB)
        .with_scopes(["read"]);
    h.store.insert_client(store_client);
    let error = h
        .layer
        .authorizer()
        .validate("response_type=code&client_id=scoped&scope=read+admin&state=s")
        .await
        .unwrap_err();
    assert_eq!(error.error(), "invalid_scope");
    assert!(error.location().unwrap().contains("error=invalid_scope"));
    assert!(
        h.layer
            .authorizer()
            .validate("response_type=code&client_id=scoped&scope=read")
            .await
            .is_ok()
    );
}
