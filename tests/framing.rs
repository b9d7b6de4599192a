//! docs/contract.md check 1 (framing) and check 2 (grant_type), in both dialects.

mod common;

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body::{Body, Frame};
use tokengate::{Dialect, RequestBody};
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::test]
async fn other_paths_pass_through_untouched() {
    let h = Harness::new(Dialect::Rfc6749);
    for (method, path) in [
        ("GET", "/"),
        ("POST", "/login/oauth/access_token/"),
        ("POST", "/login/oauth/access_tokens"),
        ("GET", "/login/oauth/authorize?x=1"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("x-custom", "1")
            .body("any body at all, %zz".to_owned())
            .unwrap();
        let (answer, seen) = h.forwarded(request).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "inner");
        assert_eq!(seen.path, path);
        assert_eq!(&seen.body[..], b"any body at all, %zz");
        assert_eq!(seen.headers.get("x-custom").unwrap(), "1");
        assert!(seen.grant.is_none() && seen.format.is_none());
        // Nothing added to answers on other paths.
        assert_eq!(answer.header("cache-control"), None);
    }
}

#[tokio::test]
async fn not_post_is_405_with_allow() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        for method in ["GET", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"] {
            let request = Request::builder()
                .method(method)
                .uri(TOKEN)
                .body(String::new())
                .unwrap();
            let answer = h.refused(with_accept(request, "application/json")).await;
            assert_eq!(answer.status, 405, "{method}");
            assert_eq!(answer.header("allow"), Some("POST"));
            assert_eq!(answer.json()["error"], "invalid_request");
            answer.assert_no_store();
        }
    }
}

/// A body that must never be read.
struct Untouchable;

impl Body for Untouchable {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        panic!("the gate read a body it should have refused unread");
    }
}

#[tokio::test]
async fn content_length_over_the_limit_is_refused_before_reading() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let request = Request::post(TOKEN)
            .header("content-type", FORM)
            .header("content-length", "10000000")
            .body(Untouchable)
            .unwrap();
        let answer = h.refused(request).await;
        assert_eq!(answer.status, 413);
        assert_eq!(answer.rejection.unwrap().code().as_str(), "invalid_request");
    }
}

/// A body of `chunks` chunks of `size` bytes, with no declared length;
/// panics if read past `panic_after` chunks.
struct Stream {
    sent: usize,
    chunks: usize,
    size: usize,
    panic_after: usize,
}

impl Body for Stream {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        assert!(self.sent < self.panic_after, "read past the limit");
        if self.sent == self.chunks {
            return Poll::Ready(None);
        }
        self.sent += 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'a'; self.size])))))
    }
}

#[tokio::test]
async fn a_streamed_body_is_cut_at_the_limit() {
    let h = Harness::with(Dialect::Rfc6749, |b| b.body_limit(1024));
    // 10 MB announced nowhere: the gate stops after the chunk that crosses
    // the limit.
    let request = Request::post(TOKEN)
        .header("content-type", FORM)
        .body(Stream {
            sent: 0,
            chunks: 10_000,
            size: 1000,
            panic_after: 2,
        })
        .unwrap();
    let answer = h.refused(request).await;
    assert_eq!(answer.status, 413);
    answer.assert_no_store();
    assert_eq!(answer.json()["error"], "invalid_request");
}

#[tokio::test]
async fn a_body_exactly_at_the_limit_is_read() {
    let h = Harness::with(Dialect::Rfc6749, |b| b.body_limit(64));
    let body = format!("grant_type=authorization_code&x={}", "a".repeat(64 - 32));
    assert_eq!(body.len(), 64);
    // Reaches client authentication: the body was accepted.
    h.refused(post(&body))
        .await
        .assert_rfc(401, "invalid_client");
    let body = format!("{body}a");
    assert_eq!(h.refused(post(&body)).await.status, 413);
}

#[tokio::test]
async fn malformed_bodies_are_invalid_request() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    for body in [
        &b"grant_type=authorization_code&code=%zz"[..],
        b"grant_type=authorization_code&code=%",
        b"grant_type=authorization_code&code=%ff%fe",
        b"grant_type=authorization_code&code=\xff",
        b"grant_type=authorization_%C3",
    ] {
        let request = || {
            Request::post(TOKEN)
                .header("content-type", FORM)
                .body(http_body_util::Full::new(Bytes::from_static(body)))
                .unwrap()
        };
        h.refused(request())
            .await
            .assert_rfc(400, "invalid_request");
        g.refused(request()).await.assert_github("invalid_request");
    }
}

#[tokio::test]
async fn wrong_content_types_are_invalid_request() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    for ct in [
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        Some("application/x-www-form-urlencoded; charset=iso-8859-1"),
        None,
    ] {
        let request = || {
            let mut b = Request::post(TOKEN);
            if let Some(ct) = ct {
                b = b.header("content-type", ct);
            }
            b.body("grant_type=authorization_code&code=x".to_owned())
                .unwrap()
        };
        let answer = h.refused(request()).await;
        answer.assert_rfc(400, "invalid_request");
        assert!(
            answer.json()["error_description"]
                .as_str()
                .unwrap()
                .contains("Content-Type")
        );
        g.refused(request()).await.assert_github("invalid_request");
    }
}

#[tokio::test]
async fn rfc6749_refuses_json_bodies_and_query_credentials() {
    let h = Harness::new(Dialect::Rfc6749);
    let json = Request::post(TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"authorization_code","code":"x","client_id":"app","client_secret":"s3cret"}"#.to_owned())
        .unwrap();
    h.refused(json).await.assert_rfc(400, "invalid_request");
    let query = Request::post(format!("{TOKEN}?client_id=app&client_secret=s3cret"))
        .header("content-type", FORM)
        .body("grant_type=authorization_code&code=x".to_owned())
        .unwrap();
    h.refused(query).await.assert_rfc(400, "invalid_request");
}

#[tokio::test]
async fn repeated_parameters_are_invalid_request() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    for body in [
        "grant_type=authorization_code&grant_type=authorization_code&code=x&client_id=app&client_secret=s3cret",
        "grant_type=authorization_code&code=x&code=y&client_id=app&client_secret=s3cret",
        "grant_type=authorization_code&code=x&client_id=app&client_id=app&client_secret=s3cret",
        "grant_type=authorization_code&code=x&client_id=app&client_secret=s3cret&client_secret=",
        "grant_type=authorization_code&code=x&client_id=app&client_secret=s3cret&redirect_uri=a&redirect_uri=a",
        "grant_type=authorization_code&code=x&client_id=app&client_secret=s3cret&code_verifier=&code_verifier=",
    ] {
        let answer = h.refused(post(body)).await;
        answer.assert_rfc(400, "invalid_request");
        assert!(
            answer.json()["error_description"]
                .as_str()
                .unwrap()
                .contains("repeated")
        );
        g.refused(post(body)).await.assert_github("invalid_request");
    }
}

#[tokio::test]
async fn unknown_parameters_are_ignored_even_repeated() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.app_code().await;
    let body = format!("{}&foo=1&foo=2&bar", exchange(&code));
    let (answer, seen) = h.forwarded(post(&body)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(&seen.body[..], body.as_bytes());
}

#[tokio::test]
async fn an_empty_value_counts_as_absent() {
    let h = Harness::new(Dialect::Rfc6749);
    h.refused(post(
        "grant_type=&code=x&client_id=app&client_secret=s3cret",
    ))
    .await
    .assert_rfc(400, "invalid_request");
    h.refused(post(
        "grant_type=authorization_code&code=&client_id=app&client_secret=s3cret",
    ))
    .await
    .assert_rfc(400, "invalid_request");
    // An empty client_secret is no secret: the confidential client fails.
    h.refused(post(
        "grant_type=authorization_code&code=x&client_id=app&client_secret=",
    ))
    .await
    .assert_rfc(401, "invalid_client");
}

#[tokio::test]
async fn grant_type_missing() {
    let h = Harness::new(Dialect::Rfc6749);
    let answer = h
        .refused(post("code=x&client_id=app&client_secret=s3cret"))
        .await;
    answer.assert_rfc(400, "invalid_request");
    assert!(
        answer.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("grant_type")
    );
    // GitHub reads it as authorization_code: the request gets as far as the
    // code check.
    let g = Harness::new(Dialect::GitHub);
    g.refused(post("code=x&client_id=app&client_secret=s3cret"))
        .await
        .assert_github("bad_verification_code");
    let code = g.app_code().await;
    let body = format!("code={code}&code_verifier={VERIFIER}&client_id=app&client_secret=s3cret");
    let (answer, seen) = g.forwarded(post(&body)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(seen.grant.unwrap().subject(), Some("user-1"));
}

#[tokio::test]
async fn grant_type_unknown() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    for grant in ["password", "implicit", "AUTHORIZATION_CODE", "urn:x"] {
        let body = format!("grant_type={grant}&client_id=app&client_secret=s3cret");
        h.refused(post(&body))
            .await
            .assert_rfc(400, "unsupported_grant_type");
        g.refused(post(&body))
            .await
            .assert_github("unsupported_grant_type");
    }
    // The grant type is checked before the client (docs/contract.md#order-of-checks).
    h.refused(post("grant_type=password&client_id=nobody"))
        .await
        .assert_rfc(400, "unsupported_grant_type");
}

#[tokio::test]
async fn checks_run_in_spec_order() {
    let h = Harness::new(Dialect::Rfc6749);
    // Repeated parameter beats unknown grant type.
    h.refused(post("grant_type=password&grant_type=password"))
        .await
        .assert_rfc(400, "invalid_request");
    // Unknown grant type beats bad credentials.
    h.refused(post_basic("app", "wrong", "grant_type=password"))
        .await
        .assert_rfc(400, "unsupported_grant_type");
    // Bad credentials beat a missing code.
    h.refused(post_basic("app", "wrong", "grant_type=authorization_code"))
        .await
        .assert_rfc(401, "invalid_client");
    // Grant not allowed beats a missing code.
    h.refused(post_basic(
        "no-code",
        "s3cret",
        "grant_type=authorization_code",
    ))
    .await
    .assert_rfc(400, "unauthorized_client");
}

#[tokio::test]
async fn the_service_error_type_is_the_inner_one() {
    // An inner service that errors: the gate passes the error through on
    // forwarded requests and never invents its own.
    let h = Harness::new(Dialect::Rfc6749);
    let service = ServiceBuilder::new()
        .layer(h.layer.clone())
        .service(service_fn(|_: Request<RequestBody<String>>| async {
            Err::<Response<String>, _>("inner failed")
        }));
    let result = service
        .oneshot(Request::get("/x").body(String::new()).unwrap())
        .await;
    assert_eq!(result.err(), Some("inner failed"));
}

/// A body that sends a little, then nothing more, never ending.
struct Trickle {
    sent: bool,
}

impl Body for Trickle {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent {
            // Never ready again, and never wakes anyone: only the gate's
            // deadline can end this request.
            return Poll::Pending;
        }
        self.sent = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
            b"grant_type=auth",
        )))))
    }
}

#[tokio::test]
async fn a_trickling_body_is_cut_by_the_read_timeout() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::with(dialect, |b| {
            b.read_timeout(Some(std::time::Duration::from_millis(100)))
        });
        let request = Request::post(TOKEN)
            .header("content-type", FORM)
            .body(Trickle { sent: false })
            .unwrap();
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(std::time::Duration::from_secs(5), h.refused(request))
            .await
            .expect("the gate ended the request");
        assert!(started.elapsed() >= std::time::Duration::from_millis(100));
        assert_eq!(answer.status, 408);
        answer.assert_no_store();
        assert_eq!(answer.rejection.unwrap().error(), "invalid_request");
    }
}

/// A body that sends `before` (if anything), then fails.
struct Broken {
    before: Option<&'static [u8]>,
}

impl Body for Broken {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(match self.before.take() {
            Some(data) => Ok(Frame::data(Bytes::from_static(data))),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset mid-body",
            )),
        }))
    }
}

#[tokio::test]
async fn a_body_stream_that_fails_is_invalid_request() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    let valid = "grant_type=client_credentials&client_id=svc&client_secret=svc-s3cret";
    // Whole, it would be forwarded: only the stream's failure refuses it.
    assert_eq!(h.forwarded(post(valid)).await.0.status, 200);
    // Failing at once, or after all of that valid request.
    for before in [None, Some(valid.as_bytes())] {
        let request = || {
            Request::post(TOKEN)
                .header("content-type", FORM)
                .body(Broken { before })
                .unwrap()
        };
        let answer = h.refused(request()).await;
        answer.assert_rfc(400, "invalid_request");
        assert_eq!(answer.json().get("error_uri"), None);
        // GitHub: its error status (200), its default format, the RFC 6749
        // name and text.
        let github = g.refused(request()).await;
        github.assert_github("invalid_request");
        assert_eq!(
            github.form()["error_description"],
            answer.json()["error_description"].as_str().unwrap()
        );
        assert!(!github.form().contains_key("error_uri"));
        let json = g
            .refused(with_accept_body(request(), "application/json"))
            .await;
        assert_eq!(json.status, 200);
        assert_eq!(json.header("content-type"), Some("application/json"));
        assert_eq!(json.json()["error"], "invalid_request");
        json.assert_no_store();
    }
}

fn with_accept_body<B>(mut request: Request<B>, accept: &str) -> Request<B> {
    request
        .headers_mut()
        .insert("accept", accept.parse().unwrap());
    request
}
