//! Hostile input: every case gets a specific answer, nothing panics, and
//! nothing reaches the inner service (which panics if it runs).

mod common;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use tokengate::Dialect;

fn raw(content_type: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::post(TOKEN)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

#[tokio::test]
async fn ten_thousand_parameters() {
    let body: Vec<u8> = (0..10_000)
        .map(|i| format!("p{i}=v&"))
        .collect::<String>()
        .into_bytes();
    // Over the default limit: refused before parsing.
    let h = Harness::new(Dialect::Rfc6749);
    assert_eq!(h.refused(raw(FORM, body.clone())).await.status, 413);
    // Under a raised limit: parsed, unknown parameters ignored, and the
    // missing grant_type named.
    let h = Harness::with(Dialect::Rfc6749, |b| b.body_limit(1 << 20));
    h.refused(raw(FORM, body))
        .await
        .assert_rfc(400, "invalid_request");
}

#[tokio::test]
async fn deeply_nested_or_huge_json() {
    let g = Harness::with(Dialect::GitHub, |b| b.body_limit(1 << 20));
    let deep = format!(
        r#"{{"code":{}{}}}"#,
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    g.refused(raw("application/json", deep.into_bytes()))
        .await
        .assert_github("invalid_request");
    let huge = format!(r#"{{"code":"{}","client_id":"app"}}"#, "a".repeat(900_000));
    // Parsed, then an unknown code for a client without its secret.
    g.refused(raw("application/json", huge.into_bytes()))
        .await
        .assert_github("incorrect_client_credentials");
}

#[tokio::test]
async fn an_oversized_or_binary_authorization_header() {
    let h = Harness::new(Dialect::Rfc6749);
    let mut request = post("grant_type=authorization_code&code=x");
    request.headers_mut().insert(
        "authorization",
        format!("Basic {}", "A".repeat(100_000)).parse().unwrap(),
    );
    h.refused(request).await.assert_rfc(401, "invalid_client");
    let mut request = post("grant_type=authorization_code&code=x");
    request.headers_mut().insert(
        "authorization",
        http::HeaderValue::from_bytes(b"Basic \xff\xfe\xfd").unwrap(),
    );
    h.refused(request).await.assert_rfc(401, "invalid_client");
}

#[tokio::test]
async fn header_values_that_are_not_text() {
    let g = Harness::new(Dialect::GitHub);
    let mut request = post("code=x&client_id=app&client_secret=wrong");
    request.headers_mut().insert(
        "accept",
        http::HeaderValue::from_bytes(b"application/\xffjson").unwrap(),
    );
    request.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_bytes(b"application/x-www-form-urlencoded; charset=\xff").unwrap(),
    );
    let answer = g.refused(request).await;
    // The content type cannot be read: refused as such, in the default
    // format, with headers that are all valid.
    answer.assert_github("invalid_request");
}

#[tokio::test]
async fn arbitrary_bytes_in_every_body_format() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift: reproducible noise without a dependency.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        for round in 0..300 {
            let len = (next() % 600) as usize;
            let body: Vec<u8> = (0..len).map(|_| (next() % 256) as u8).collect();
            let content_type = [
                "application/x-www-form-urlencoded",
                "application/json",
                "text/plain",
            ][round % 3];
            let answer = h.refused(raw(content_type, body)).await;
            assert!(
                answer.status.is_client_error() || answer.status == 200,
                "{}",
                answer.status
            );
            assert!(answer.rejection.is_some());
        }
    }
}
