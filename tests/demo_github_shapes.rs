//! GitHub's shapes from the outside (issue 16): the demo server binary over
//! plain HTTP. `--error-uri-base https://docs.github.com` makes the
//! `error_uri`s absolute, as GitHub's live answers are; a GitHub-dialect
//! exchange answers a `ghr_` refresh token of 64 hex digits with
//! `expires_in` 28800 and `refresh_token_expires_in` 15897600; device codes
//! are 40 hex digits. The RFC 6749 dialect keeps its own shapes.

mod common;

use std::process::Command;

use common::{VERIFIER, demo::*};
use regex::Regex;

const ACCEPT: &str = "Accept: application/json";
const TOKEN_ERRORS: &str =
    "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/";

fn assert_shape(value: &serde_json::Value, pattern: &str) {
    let value = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    assert!(
        Regex::new(pattern).unwrap().is_match(value),
        "{value:?} does not match {pattern}"
    );
}

/// A code exchange by the demo client; its JSON answer.
async fn exchange(addr: &str) -> serde_json::Value {
    let code = authorize(addr, "demo-client").await;
    let reply = token(addr, ACCEPT, &demo_exchange(&code)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

#[tokio::test]
async fn error_uri_base_makes_githubs_error_uris_absolute() {
    for (args, base) in [
        (
            &["--error-uri-base", "https://docs.github.com"][..],
            "https://docs.github.com",
        ),
        (&[][..], ""),
    ] {
        let server = start(args);
        // bad_refresh_token, for a token never issued.
        let reply = token(
            &server.addr,
            ACCEPT,
            &refresh_body("demo-client", "demo-secret", "ghr_unknown"),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.headers["cache-control"], "no-store");
        assert_eq!(
            reply.body,
            format!(
                r#"{{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired.","error_uri":"{base}{TOKEN_ERRORS}#bad-refresh-token"}}"#
            )
        );
        // incorrect_code_verifier and bad_verification_code take it too.
        let code = authorize(&server.addr, "demo-client").await;
        let wrong = demo_exchange(&code).replace(VERIFIER, &"A".repeat(43));
        let json = token(&server.addr, ACCEPT, &wrong).await.json();
        assert_eq!(json["error"], "incorrect_code_verifier", "{json}");
        assert_eq!(
            json["error_uri"],
            format!("{base}{TOKEN_ERRORS}#incorrect-code-verifier").as_str()
        );
        let json = token(&server.addr, ACCEPT, &demo_exchange(&code))
            .await
            .json();
        assert_eq!(
            json["error_uri"],
            format!("{base}{TOKEN_ERRORS}#bad-verification-code").as_str(),
            "{json}"
        );
    }
    // The RFC 6749 dialect: BASE#error.
    let server = start(&[
        "--dialect",
        "rfc6749",
        "--error-uri-base",
        "https://auth.example/errors",
    ]);
    let reply = token(
        &server.addr,
        "",
        &refresh_body("demo-client", "demo-secret", "unknown"),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.json()["error_uri"],
        "https://auth.example/errors#invalid_grant"
    );
}

#[tokio::test]
async fn a_github_exchange_answers_githubs_shapes_and_lifetimes() {
    let server = start(&["--dialect", "github"]);
    let json = exchange(&server.addr).await;
    assert_shape(&json["access_token"], "^gho_[0-9a-f]{40}$");
    assert_shape(&json["refresh_token"], "^ghr_[0-9a-f]{64}$");
    assert_eq!(json["expires_in"], 28800, "{json}");
    assert_eq!(json["refresh_token_expires_in"], 15_897_600, "{json}");
    // The refresh token works, and its successor has the same shape.
    let refresh = json["refresh_token"].as_str().unwrap();
    let reply = token(
        &server.addr,
        ACCEPT,
        &refresh_body("demo-client", "demo-secret", refresh),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let next = reply.json();
    assert_shape(&next["refresh_token"], "^ghr_[0-9a-f]{64}$");
    assert_ne!(next["refresh_token"], json["refresh_token"]);
    assert_eq!(next["refresh_token_expires_in"], 15_897_600, "{next}");

    // The RFC 6749 dialect keeps its own: 43 base64url characters, 30 days.
    let server = start(&["--dialect", "rfc6749"]);
    let json = exchange(&server.addr).await;
    assert_shape(&json["refresh_token"], "^[A-Za-z0-9_-]{43}$");
    assert_eq!(json["expires_in"], 28800, "{json}");
    assert_eq!(json["refresh_token_expires_in"], 30 * 24 * 3600, "{json}");
}

#[tokio::test]
async fn device_codes_are_40_hex_digits_in_the_github_dialect() {
    for (dialect, shape) in [
        ("github", "^[0-9a-f]{40}$"),
        ("rfc6749", "^[A-Za-z0-9_-]{43}$"),
    ] {
        let server = start(&["--dialect", dialect]);
        let reply = form_post(
            &server.addr,
            "/login/device/code",
            ACCEPT,
            "client_id=demo-client&client_secret=demo-secret&scope=repo",
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let json = reply.json();
        assert_shape(&json["device_code"], shape);
        // The code polls: pending until the user decides.
        let poll = format!(
            "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=demo-client&client_secret=demo-secret&device_code={}",
            json["device_code"].as_str().unwrap()
        );
        let json = token(&server.addr, ACCEPT, &poll).await.json();
        assert_eq!(json["error"], "authorization_pending", "{dialect}: {json}");
    }
}

#[test]
fn a_malformed_error_uri_base_exits_2_with_a_message() {
    for args in [
        &["--error-uri-base"][..],
        &["--error-uri-base", ""],
        &["--error-uri-base", "docs.github.com"],
        &["--error-uri-base", "/relative"],
        &["--error-uri-base", "ftp://docs.github.com"],
        &["--error-uri-base", "https://"],
        &["--error-uri-base", "https://docs.github.com/?x=1"],
        &["--error-uri-base", "https://docs.github.com/#top"],
        &["--error-uri-base", "https://user@docs.github.com"],
        &["--error-uri-base", "https://docs github.com"],
        &["--error-uri-base", "https://docs.github.com/\"x"],
    ] {
        let output = Command::new(binary()).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--error-uri-base"), "{args:?}: {stderr}");
    }
    let help = Command::new(binary()).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--error-uri-base URL"));
}
