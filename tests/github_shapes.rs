//! GitHub's shapes in the GitHub dialect (issue 16), in process: the
//! `error_uri` of `bad_refresh_token` and `incorrect_code_verifier`, with
//! and without a base; the RFC 6749 dialect keeps its own.

mod common;

use common::*;
use tokengate::Dialect;

const TOKEN_ERRORS: &str =
    "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/";

fn refresh(token: &str) -> String {
    format!("grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret")
}

/// The JSON error body of `answer`, checked for GitHub's status and the
/// no-store headers.
fn github_json(answer: &Answer, error: &str) -> serde_json::Value {
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/json"));
    answer.assert_no_store();
    let json = answer.json();
    assert_eq!(json["error"], error, "{json}");
    json
}

#[tokio::test]
async fn bad_refresh_token_and_incorrect_code_verifier_carry_error_uris() {
    for base in [None, Some("https://docs.github.com")] {
        let h = Harness::with(Dialect::GitHub, |b| match base {
            Some(base) => b.error_uri_base(base),
            None => b,
        });
        let prefix = base.unwrap_or("");
        // bad_refresh_token: an unknown token, and a rotated one (a replay).
        let token = h.app_refresh_token().await;
        h.forwarded(post(&refresh(&token))).await;
        for presented in ["ghr_0000", token.as_str()] {
            let answer = h
                .refused(with_accept(post(&refresh(presented)), "application/json"))
                .await;
            let uri = format!("{prefix}{TOKEN_ERRORS}#bad-refresh-token");
            assert_eq!(
                answer.text(),
                format!(
                    r#"{{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired.","error_uri":"{uri}"}}"#
                )
            );
            github_json(&answer, "bad_refresh_token");
            assert_eq!(answer.rejection.unwrap().uri(), Some(uri.as_str()));
        }
        // incorrect_code_verifier: a wrong verifier, and none.
        for verifier in [format!("&code_verifier={}", "A".repeat(43)), String::new()] {
            let code = h.app_code().await;
            let body = exchange(&code).replace(&format!("&code_verifier={VERIFIER}"), &verifier);
            let answer = h
                .refused(with_accept(post(&body), "application/json"))
                .await;
            let json = github_json(&answer, "incorrect_code_verifier");
            let uri = format!("{prefix}{TOKEN_ERRORS}#incorrect-code-verifier");
            assert_eq!(json["error_uri"], uri.as_str(), "{json}");
            assert_eq!(
                json["error_description"],
                "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE."
            );
            assert_eq!(answer.rejection.unwrap().uri(), Some(uri.as_str()));
        }
        // The form body, GitHub's default, carries it too.
        let answer = h.refused(post(&refresh("ghr_0000"))).await;
        answer.assert_github("bad_refresh_token");
        assert_eq!(
            answer.form()["error_uri"],
            format!("{prefix}{TOKEN_ERRORS}#bad-refresh-token")
        );
    }
}

#[tokio::test]
async fn the_rfc_dialect_keeps_its_error_uris() {
    // No base: no error_uri. A base: BASE#error, GitHub's paths never.
    for base in [None, Some("https://auth.example/errors")] {
        let h = Harness::with(Dialect::Rfc6749, |b| match base {
            Some(base) => b.error_uri_base(base),
            None => b,
        });
        let answer = h.refused(post(&refresh("unknown"))).await;
        answer.assert_rfc(400, "invalid_grant");
        let code = h.app_code().await;
        let wrong = exchange(&code).replace(VERIFIER, &"A".repeat(43));
        let verifier = h.refused(post(&wrong)).await;
        verifier.assert_rfc(400, "invalid_grant");
        for answer in [answer, verifier] {
            let json = answer.json();
            match base {
                None => assert_eq!(json.get("error_uri"), None, "{json}"),
                Some(base) => assert_eq!(
                    json["error_uri"],
                    format!("{base}#invalid_grant").as_str(),
                    "{json}"
                ),
            }
        }
    }
}
