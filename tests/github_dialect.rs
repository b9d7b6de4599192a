//! The GitHub dialect: the seed document's errors byte for byte, Accept
//! negotiation, JSON and query parameters, error_uri base and status.

mod common;

use common::*;
use http::{Request, StatusCode};
use tokengate::{Dialect, ResponseFormat};

const SEED_CREDENTIALS: &str = r#"{"error":"incorrect_client_credentials","error_description":"The client_id and/or client_secret passed are incorrect.","error_uri":"/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials"}"#;
const SEED_REDIRECT: &str = r#"{"error":"redirect_uri_mismatch","error_description":"The redirect_uri MUST match the registered callback URL for this application.","error_uri":"/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch2"}"#;
const SEED_CODE: &str = r#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired.","error_uri":"/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"}"#;

fn json(request: Request<String>) -> Request<String> {
    with_accept(request, "application/json")
}

#[tokio::test]
async fn the_three_seed_errors_byte_for_byte() {
    let g = Harness::new(Dialect::GitHub);
    let answer = g
        .refused(json(post("code=x&client_id=app&client_secret=wrong")))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.text(), SEED_CREDENTIALS);

    let code = g.app_code().await;
    let body = exchange(&code).replace(CB_ENC, "https%3A%2F%2Fevil.example%2Fcb");
    assert_eq!(g.refused(json(post(&body))).await.text(), SEED_REDIRECT);

    let answer = g.refused(json(post(&exchange("nope")))).await;
    assert_eq!(answer.text(), SEED_CODE);
    answer.assert_no_store();
}

#[tokio::test]
async fn error_uri_base_is_prefixed() {
    let g = Harness::with(Dialect::GitHub, |b| {
        b.error_uri_base("https://docs.github.com")
    });
    let answer = g.refused(json(post(&exchange("nope")))).await;
    assert_eq!(
        answer.json()["error_uri"],
        "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"
    );
    // RFC 6749 dialect: error_uri only when a base is configured.
    let h = Harness::new(Dialect::Rfc6749);
    assert!(
        h.refused(post(&exchange("nope")))
            .await
            .json()
            .get("error_uri")
            .is_none()
    );
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.error_uri_base("https://auth.example/errors")
    });
    assert_eq!(
        h.refused(post(&exchange("nope"))).await.json()["error_uri"],
        "https://auth.example/errors#invalid_grant"
    );
}

#[tokio::test]
async fn form_is_the_default_format() {
    let g = Harness::new(Dialect::GitHub);
    for accept in [
        None,
        Some("*/*"),
        Some("text/html"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = post(&exchange("nope"));
        if let Some(accept) = accept {
            request = with_accept(request, accept);
        }
        let answer = g.refused(request).await;
        answer.assert_github("bad_verification_code");
        assert_eq!(
            answer.text(),
            "error=bad_verification_code&error_description=The+code+passed+is+incorrect+or+expired.&error_uri=%2Fapps%2Fmanaging-oauth-apps%2Ftroubleshooting-oauth-app-access-token-request-errors%2F%23bad-verification-code"
        );
    }
}

#[tokio::test]
async fn xml_on_request() {
    let g = Harness::new(Dialect::GitHub);
    let answer = g
        .refused(with_accept(post(&exchange("nope")), "application/xml"))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("application/xml; charset=utf-8")
    );
    assert_eq!(
        answer.text(),
        "<OAuth><error>bad_verification_code</error><error_description>The code passed is incorrect or expired.</error_description><error_uri>/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code</error_uri></OAuth>"
    );
    answer.assert_no_store();
    assert_eq!(answer.error(), "bad_verification_code");
}

#[tokio::test]
async fn the_forwarded_request_carries_the_negotiated_format() {
    let g = Harness::new(Dialect::GitHub);
    for (accept, format) in [
        (None, ResponseFormat::Form),
        (Some("application/json"), ResponseFormat::Json),
        (Some("application/xml"), ResponseFormat::Xml),
    ] {
        let code = g.app_code().await;
        let mut request = post(&exchange(&code));
        if let Some(accept) = accept {
            request = with_accept(request, accept);
        }
        let (_, seen) = g.forwarded(request).await;
        assert_eq!(seen.format, Some(format));
    }
}

#[tokio::test]
async fn parameters_in_a_json_body() {
    let g = Harness::new(Dialect::GitHub);
    let code = g.app_code().await;
    let body = format!(
        r#"{{"client_id":"app","client_secret":"s3cret","code":"{code}","redirect_uri":"{CB}","code_verifier":"{VERIFIER}"}}"#
    );
    let request = Request::post(TOKEN)
        .header("content-type", "application/json")
        .body(body.clone())
        .unwrap();
    let (answer, seen) = g.forwarded(request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(&seen.body[..], body.as_bytes());
    // Malformed JSON is invalid_request.
    for bad in [
        r#"{"code":1}"#,
        "{",
        r#"["a"]"#,
        r#"{"code":"a","code":"b"}"#,
    ] {
        let request = Request::post(TOKEN)
            .header("content-type", "application/json")
            .body(bad.to_owned())
            .unwrap();
        g.refused(request).await.assert_github("invalid_request");
    }
}

#[tokio::test]
async fn parameters_in_the_query_string() {
    let g = Harness::new(Dialect::GitHub);
    let code = g.app_code().await;
    let request = Request::post(format!(
        "{TOKEN}?client_id=app&client_secret=s3cret&code={code}&code_verifier={VERIFIER}"
    ))
    .body(String::new())
    .unwrap();
    let (answer, seen) = g.forwarded(request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(seen.grant.unwrap().client().client_id(), "app");
    // Split between query and body is fine; the same name in both is not.
    let code = g.app_code().await;
    let request = Request::post(format!("{TOKEN}?client_id=app&client_secret=s3cret"))
        .header("content-type", FORM)
        .body(format!("code={code}&code_verifier={VERIFIER}"))
        .unwrap();
    assert_eq!(g.forwarded(request).await.0.status, 200);
    let request = Request::post(format!("{TOKEN}?code=a"))
        .header("content-type", FORM)
        .body("code=b&client_id=app&client_secret=s3cret".to_owned())
        .unwrap();
    g.refused(request).await.assert_github("invalid_request");
}

#[tokio::test]
async fn the_error_status_is_configurable() {
    let g = Harness::with(Dialect::GitHub, |b| {
        b.github_error_status(StatusCode::BAD_REQUEST)
    });
    let answer = g.refused(json(post(&exchange("nope")))).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.text(), SEED_CODE);
    let g = Harness::with(Dialect::GitHub, |b| {
        b.github_error_status(StatusCode::UNAUTHORIZED)
    });
    let answer = g
        .refused(json(post("code=x&client_id=app&client_secret=wrong")))
        .await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.header("www-authenticate"),
        Some("Basic realm=\"tokengate-test\"")
    );
}

#[tokio::test]
async fn a_custom_token_path() {
    let g = Harness::with(Dialect::GitHub, |b| b.token_path("/oauth/token"));
    let mut request = post(&exchange("nope"));
    *request.uri_mut() = "/oauth/token".parse().unwrap();
    g.refused(request)
        .await
        .assert_github("bad_verification_code");
    // The default path is now just another path.
    let (answer, _) = g.forwarded(post(&exchange("nope"))).await;
    assert_eq!(answer.text(), "inner");
}
