//! docs/contract.md check 3 (client authentication) and check 4 (grant allowed).

mod common;

use common::*;
use tokengate::Dialect;

#[tokio::test]
async fn client_secret_basic_and_post_both_work() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.app_code().await;
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={CB_ENC}&code_verifier={VERIFIER}"
    );
    let (answer, seen) = h.forwarded(post_basic("app", "s3cret", &body)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(seen.grant.unwrap().client().client_id(), "app");

    let code = h.app_code().await;
    let (answer, seen) = h.forwarded(post(&exchange(&code))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(seen.grant.unwrap().client().client_id(), "app");
}

#[tokio::test]
async fn the_rfc6749_basic_example_authenticates() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h
        .code(&format!("client_id=s6BhdRkqt3&redirect_uri={CB_ENC}"))
        .await;
    let mut request = post(&format!(
        "grant_type=authorization_code&code={code}&redirect_uri={CB_ENC}"
    ));
    request.headers_mut().insert(
        "authorization",
        "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3"
            .parse()
            .unwrap(),
    );
    let (answer, _) = h.forwarded(request).await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn basic_credentials_are_form_decoded() {
    let h = Harness::new(Dialect::Rfc6749);
    assert_eq!(basic("unicode", " %&+£€"), {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("unicode:+%25%26%2B%C2%A3%E2%82%AC")
        )
    });
    let code = h
        .code(&format!("client_id=unicode&redirect_uri={CB_ENC}"))
        .await;
    let body = format!("grant_type=authorization_code&code={code}&redirect_uri={CB_ENC}");
    let (answer, _) = h.forwarded(post_basic("unicode", " %&+£€", &body)).await;
    assert_eq!(answer.status, 200);
    // Sent raw, without form-encoding, the same secret does not match.
    let mut raw = post(&body);
    raw.headers_mut().insert(
        "authorization",
        format!("Basic {}", {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode("unicode: %&+£€")
        })
        .parse()
        .unwrap(),
    );
    let answer = h.refused(raw).await;
    assert!(
        answer.status == 400 || answer.status == 401,
        "{}",
        answer.text()
    );
}

#[tokio::test]
async fn rotated_secrets_are_all_valid() {
    let h = Harness::new(Dialect::Rfc6749);
    for secret in ["s3cret", "rotated-s3cret"] {
        let code = h.app_code().await;
        let body = format!(
            "grant_type=authorization_code&code={code}&redirect_uri={CB_ENC}&code_verifier={VERIFIER}"
        );
        let (answer, _) = h.forwarded(post_basic("app", secret, &body)).await;
        assert_eq!(answer.status, 200, "{secret}");
    }
}

#[tokio::test]
async fn bad_credentials_are_invalid_client_with_www_authenticate() {
    let h = Harness::new(Dialect::Rfc6749);
    let body = "grant_type=authorization_code&code=x";
    for request in [
        post_basic("app", "wrong", body),
        post_basic("nobody", "s3cret", body),
        post_basic("app", "", body),
        post(&format!("{body}&client_id=app&client_secret=wrong")),
        post(&format!("{body}&client_id=nobody&client_secret=s3cret")),
        post(&format!("{body}&client_id=app")),
        post(body),
        post(&format!("{body}&client_secret=s3cret")),
        // A public client has no secret: presenting one fails.
        post(&format!("{body}&client_id=native&client_secret=anything")),
        post_basic("native", "anything", body),
    ] {
        h.refused(request).await.assert_rfc(401, "invalid_client");
    }
    let mut bearer = post(body);
    bearer
        .headers_mut()
        .insert("authorization", "Bearer abc".parse().unwrap());
    h.refused(bearer).await.assert_rfc(401, "invalid_client");
}

#[tokio::test]
async fn unknown_client_and_wrong_secret_answer_identically() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let body = "grant_type=authorization_code&code=x";
        let unknown = h.refused(post_basic("nobody", "s3cret", body)).await;
        let wrong = h.refused(post_basic("app", "wrong-secret", body)).await;
        assert_eq!(unknown.status, wrong.status);
        assert_eq!(unknown.body, wrong.body);
        assert_eq!(unknown.headers, wrong.headers);
    }
}

#[tokio::test]
async fn github_names_bad_credentials_its_way() {
    let g = Harness::new(Dialect::GitHub);
    let answer = g
        .refused(post("code=x&client_id=app&client_secret=wrong"))
        .await;
    answer.assert_github("incorrect_client_credentials");
    let body = answer.form();
    assert_eq!(
        body["error_description"],
        "The client_id and/or client_secret passed are incorrect."
    );
    // 200 carries no WWW-Authenticate.
    assert_eq!(answer.header("www-authenticate"), None);
}

#[tokio::test]
async fn two_methods_at_once_are_invalid_request() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    let body = "grant_type=authorization_code&code=x&client_secret=s3cret";
    h.refused(post_basic("app", "s3cret", body))
        .await
        .assert_rfc(400, "invalid_request");
    g.refused(post_basic("app", "s3cret", body))
        .await
        .assert_github("invalid_request");
}

#[tokio::test]
async fn a_body_client_id_must_match_basic() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.app_code().await;
    let same = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={CB_ENC}&code_verifier={VERIFIER}&client_id=app"
    );
    let (answer, _) = h.forwarded(post_basic("app", "s3cret", &same)).await;
    assert_eq!(answer.status, 200);
    h.refused(post_basic(
        "app",
        "s3cret",
        "grant_type=authorization_code&code=x&client_id=other",
    ))
    .await
    .assert_rfc(400, "invalid_request");
}

#[tokio::test]
async fn malformed_authorization_headers_are_invalid_client() {
    // RFC 6749 §5.2: a failed attempt with the Authorization header is a
    // 401, with a description that says what was wrong.
    let h = Harness::new(Dialect::Rfc6749);
    for value in [
        "Basic".to_owned(),
        "Basic !!!!".to_owned(),
        "Basic bm8tY29sb24=".to_owned(), // "no-colon"
        format!("Basic {}", "QUFB".repeat(2000)),
    ] {
        let mut request = post("grant_type=authorization_code&code=x");
        request
            .headers_mut()
            .insert("authorization", value.parse().unwrap());
        let answer = h.refused(request).await;
        answer.assert_rfc(401, "invalid_client");
        assert!(
            answer.json()["error_description"]
                .as_str()
                .unwrap()
                .contains("Authorization")
        );
    }
    let mut twice = post("grant_type=authorization_code&code=x");
    twice
        .headers_mut()
        .append("authorization", basic("app", "s3cret").parse().unwrap());
    twice
        .headers_mut()
        .append("authorization", basic("app", "s3cret").parse().unwrap());
    h.refused(twice).await.assert_rfc(401, "invalid_client");
    let g = Harness::new(Dialect::GitHub);
    let mut request = post("code=x");
    request
        .headers_mut()
        .insert("authorization", "Basic !!!!".parse().unwrap());
    g.refused(request)
        .await
        .assert_github("incorrect_client_credentials");
}

#[tokio::test]
async fn public_clients_authenticate_with_their_id_alone() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h
        .code(&format!(
            "client_id=native&redirect_uri=http%3A%2F%2F127.0.0.1%3A51000%2Fcb&code_challenge={CHALLENGE}&code_challenge_method=S256"
        ))
        .await;
    let body = format!(
        "grant_type=authorization_code&code={code}&client_id=native&redirect_uri=http%3A%2F%2F127.0.0.1%3A51000%2Fcb&code_verifier={VERIFIER}"
    );
    let (answer, seen) = h.forwarded(post(&body)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(seen.grant.unwrap().client().is_public());
}

#[tokio::test]
async fn a_client_not_allowed_the_grant_is_refused() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    let body = "grant_type=authorization_code&code=x&client_id=no-code&client_secret=s3cret";
    h.refused(post(body))
        .await
        .assert_rfc(400, "unauthorized_client");
    g.refused(post(body))
        .await
        .assert_github("unsupported_grant_type");
}

#[tokio::test]
async fn github_refuses_a_client_id_that_differs_from_basic() {
    // With a base, to show invalid_request still carries no error_uri there.
    let g = Harness::with(Dialect::GitHub, |b| {
        b.error_uri_base("https://docs.github.com")
    });
    let h = Harness::new(Dialect::Rfc6749);
    let rfc = h
        .refused(post_basic(
            "app",
            "s3cret",
            "grant_type=authorization_code&code=x&client_id=other",
        ))
        .await;
    rfc.assert_rfc(400, "invalid_request");
    for (id, secret, body) in [
        ("app", "s3cret", "code=x&client_id=other"),
        (
            "app",
            "s3cret",
            "grant_type=authorization_code&code=x&client_id=other",
        ),
        ("other", "other-s3cret", "code=x&client_id=app"),
        ("app", "s3cret", "code=x&client_id=nobody"),
        // The conflict is found before the secret is checked.
        ("app", "wrong", "code=x&client_id=other"),
    ] {
        let answer = g.refused(post_basic(id, secret, body)).await;
        answer.assert_github("invalid_request");
        let form = answer.form();
        // GitHub has no name for it: the RFC 6749 name and text, no URI.
        assert_eq!(
            form["error_description"],
            rfc.json()["error_description"].as_str().unwrap()
        );
        assert!(!form.contains_key("error_uri"), "{form:?}");
        assert_eq!(answer.header("www-authenticate"), None);
    }
    // The other places GitHub reads parameters from: the query string and a
    // JSON body.
    let mut query = post_basic("app", "s3cret", "code=x");
    *query.uri_mut() = format!("{TOKEN}?client_id=other").parse().unwrap();
    g.refused(query).await.assert_github("invalid_request");
    let mut json = post_basic("app", "s3cret", "");
    *json.body_mut() = r#"{"code":"x","client_id":"other"}"#.to_owned();
    json.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    let answer = g.refused(with_accept(json, "application/json")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.json()["error"], "invalid_request");
    assert_eq!(answer.json().get("error_uri"), None);
    answer.assert_no_store();
    // Repeating the Basic id is fine at GitHub too.
    let code = g.app_code().await;
    let same = format!("code={code}&code_verifier={VERIFIER}&client_id=app");
    let (answer, _) = g.forwarded(post_basic("app", "s3cret", &same)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}
