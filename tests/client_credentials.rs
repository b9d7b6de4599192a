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

#[tokio::test]
async fn github_keeps_invalid_scope_for_scopes_not_allowed() {
    // With a base, to show invalid_scope carries no error_uri at GitHub
    // either way.
    let g = Harness::with(Dialect::GitHub, |b| {
        b.github_client_credentials(true)
            .error_uri_base("https://docs.github.com")
    });
    let h = Harness::new(Dialect::Rfc6749);
    let rfc = h.refused(post(&format!("{SVC}&scope=admin"))).await;
    rfc.assert_rfc(400, "invalid_scope");
    let rfc_description = rfc.json()["error_description"].as_str().unwrap().to_owned();
    let check = |answer: Answer| {
        answer.assert_github("invalid_scope");
        let form = answer.form();
        // GitHub has no name for it: the RFC 6749 name and text, no URI.
        assert_eq!(form["error_description"], rfc_description);
        assert!(!form.contains_key("error_uri"), "{form:?}");
    };
    // Client credentials: outside the allowed set (commas count at GitHub),
    // or malformed.
    for scope in ["admin", "read,admin", "read+admin", "re%22ad"] {
        check(g.refused(post(&format!("{SVC}&scope={scope}"))).await);
    }
    let answer = g
        .refused(with_accept(
            post(&format!("{SVC}&scope=admin")),
            "application/json",
        ))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.json()["error"], "invalid_scope");
    assert_eq!(answer.json().get("error_uri"), None);
    answer.assert_no_store();
    // The device endpoint.
    check(
        g.refused(post_device("client_id=tv&scope=repo,admin"))
            .await,
    );
}

#[tokio::test]
async fn a_refresh_after_the_clients_scopes_were_narrowed_is_invalid_scope() {
    let app = |scopes: &[&str]| {
        tokengate::Client::confidential("app")
            .with_secret("s3cret")
            .with_redirect_uri(CB)
            .with_scopes(scopes.iter().copied())
    };
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        // Granted `read`; then `app` may only have `write`.
        let token = h.app_refresh_token().await;
        h.store.insert_client(app(&["write"]));
        let refresh = format!(
            "grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret"
        );
        // Omitted (the token's own scope) or named: not the client's now.
        for body in [refresh.clone(), format!("{refresh}&scope=read")] {
            let answer = h.refused(post(&body)).await;
            if dialect == Dialect::GitHub {
                // Not bad_refresh_token: the token is fine, the client's
                // allowed set is not.
                answer.assert_github("invalid_scope");
            } else {
                answer.assert_rfc(400, "invalid_scope");
            }
        }
        // The refusal left the token valid: allowed again, it refreshes,
        // and nothing was taken for a replay.
        h.store.insert_client(app(&["read", "write"]));
        let (answer, seen) = h.forwarded(post(&refresh)).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(seen.grant.unwrap().scopes(), ["read"]);
        assert!(h.refresh_replays.lock().unwrap().is_empty());
    }
}
