//! Hostile requests at the revocation (RFC 7009) and introspection
//! (RFC 7662) endpoints, each sent in both dialects to both endpoints,
//! through the layer, to an inner service that panics if it runs: every
//! refusal is the gate's own, checked whole (status, headers, the parsed
//! body). Both endpoints answer RFC-style JSON in either dialect, so one
//! assertion serves both. Where a rule has an edge, the accepted side is
//! sent too, to an inner service that records what it got, so that each
//! refusal is known to come from the rule under test.

mod common;

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::Full;
use tokengate::{
    Client, Dialect, RequestBody,
    lifecycle::{Introspection, TokenActionKind, TokenTypeHint},
    lockout::Lockout,
};
use tower::{ServiceBuilder, ServiceExt, service_fn};

const REVOKE: &str = "/login/oauth/revoke";
const INTROSPECT: &str = "/login/oauth/introspect";
const ENDPOINTS: [&str; 2] = [REVOKE, INTROSPECT];
const DIALECTS: [Dialect; 2] = [Dialect::Rfc6749, Dialect::GitHub];

/// A gate in `dialect` with the lockout off (these tests send many
/// failures from one peer; the lockout test turns it on), and `rs`, a
/// confidential client registered to introspect, which authenticates every
/// request here unless a test says otherwise.
fn gate(dialect: Dialect) -> Harness {
    gate_with(dialect, |b| b.lockout(None))
}

fn gate_with(
    dialect: Dialect,
    configure: impl FnOnce(
        tokengate::Builder<Store, Store, Store, Store>,
    ) -> tokengate::Builder<Store, Store, Store, Store>,
) -> Harness {
    let h = Harness::with(dialect, configure);
    h.store.insert_client(
        Client::confidential("rs")
            .with_secret("rs-s3cret")
            .with_introspection(true),
    );
    h
}

/// `body` to `path` with `rs`'s Basic credentials.
fn to(path: &str, body: &str) -> Request<String> {
    with_basic(post_to(path, body), "rs", "rs-s3cret")
}

fn with_basic<B>(mut request: Request<B>, id: &str, secret: &str) -> Request<B> {
    request
        .headers_mut()
        .insert("authorization", basic(id, secret).parse().unwrap());
    request
}

/// Raw bytes to `path` with `content_type` (none when `None`) and `rs`'s
/// Basic credentials, from the test peer.
fn raw(path: &str, content_type: Option<&str>, body: Vec<u8>) -> Request<Full<Bytes>> {
    let mut builder = Request::post(path);
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    let mut request = builder.body(Full::new(Bytes::from(body))).unwrap();
    request
        .extensions_mut()
        .insert(std::net::SocketAddr::from((PEER, 40_000)));
    with_basic(request, "rs", "rs-s3cret")
}

/// The description of a refusal already checked with `assert_rfc`.
fn description(answer: &Answer) -> String {
    answer.json()["error_description"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Sends `request` on (it must pass every check) and returns the token the
/// application was handed, after checking the action's kind and client.
async fn handed_on<B>(h: &Harness, path: &str, request: Request<B>) -> String
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Debug,
{
    let (answer, seen) = h.forwarded(request).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let action = seen.action.expect("a TokenAction for the application");
    let kind = match path {
        REVOKE => TokenActionKind::Revocation,
        _ => TokenActionKind::Introspection,
    };
    assert_eq!(action.kind(), kind);
    assert_eq!(action.client().client_id(), "rs");
    assert!(seen.grant.is_none());
    action.token().to_owned()
}

/// Asserts the gate's own answer for a token it keeps or a token no one
/// could hold: an empty 200 at the revocation endpoint, exactly
/// `{"active":false}` at the introspection endpoint; no caching either way.
fn assert_nothing_said(path: &str, answer: &Answer) {
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.assert_no_store();
    assert!(answer.rejection.is_none());
    assert_eq!(answer.header("www-authenticate"), None);
    match path {
        REVOKE => {
            assert!(answer.body.is_empty(), "{}", answer.text());
            assert_eq!(answer.header("content-type"), None);
        }
        _ => {
            assert_eq!(answer.text(), r#"{"active":false}"#);
            assert_eq!(answer.header("content-type"), Some("application/json"));
        }
    }
}

#[tokio::test]
async fn other_methods_are_405_with_allow_in_json() {
    for dialect in DIALECTS {
        let h = gate(dialect);
        for path in ENDPOINTS {
            for method in ["GET", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"] {
                let mut request = to(path, "token=t");
                *request.method_mut() = method.parse().unwrap();
                // Even a GitHub client asking for XML gets RFC JSON here.
                let answer = h.refused(with_accept(request, "application/xml")).await;
                answer.assert_rfc(405, "invalid_request");
                assert_eq!(answer.header("allow"), Some("POST"), "{method} {path}");
                // Said of this endpoint, not of the token endpoint.
                assert_eq!(description(&answer), "this endpoint accepts POST only");
            }
            // A token in a GET's query is refused for the method first.
            let request = Request::get(format!("{path}?token=t"))
                .body(String::new())
                .unwrap();
            h.refused(request).await.assert_rfc(405, "invalid_request");
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
async fn a_declared_length_over_the_limit_is_refused_unread() {
    for dialect in DIALECTS {
        let h = gate_with(dialect, |b| b.lockout(None).body_limit(1024));
        for path in ENDPOINTS {
            for length in ["1025", "10000000", "18446744073709551615"] {
                let request = Request::post(path)
                    .header("content-type", FORM)
                    .header("content-length", length)
                    .body(Untouchable)
                    .unwrap();
                let answer = h.refused(with_basic(request, "rs", "rs-s3cret")).await;
                answer.assert_rfc(413, "invalid_request");
                assert_eq!(
                    description(&answer),
                    "the request body is larger than this endpoint accepts",
                    "{length}"
                );
            }
        }
    }
}

/// A body of `chunks` chunks of `size` bytes with no declared length, that
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
        let mut chunk = vec![b'a'; self.size];
        if self.sent == 1 {
            chunk[..6].copy_from_slice(b"token=");
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_one_at_the_limit_is_read() {
    for dialect in DIALECTS {
        let h = gate_with(dialect, |b| b.lockout(None).body_limit(256));
        for path in ENDPOINTS {
            let at_limit = format!("token={}", "a".repeat(256 - 6));
            assert_eq!(at_limit.len(), 256);
            let token = handed_on(&h, path, to(path, &at_limit)).await;
            assert_eq!(token.len(), 250);
            let over = format!("{at_limit}a");
            h.refused(to(path, &over))
                .await
                .assert_rfc(413, "invalid_request");
            // Streamed with no length: cut at the chunk that crosses it.
            let streamed = Request::post(path)
                .header("content-type", FORM)
                .body(Stream {
                    sent: 0,
                    chunks: 10_000,
                    size: 200,
                    panic_after: 2,
                })
                .unwrap();
            h.refused(with_basic(streamed, "rs", "rs-s3cret"))
                .await
                .assert_rfc(413, "invalid_request");
        }
    }
}

#[tokio::test]
async fn a_one_megabyte_token_is_handed_on_under_a_raised_limit_only() {
    let token = "A".repeat(1 << 20);
    let body = format!("token={token}&token_type_hint=access_token");
    for dialect in DIALECTS {
        let default = gate(dialect);
        let raised = gate_with(dialect, |b| b.lockout(None).body_limit(2 << 20));
        for path in ENDPOINTS {
            default
                .refused(to(path, &body))
                .await
                .assert_rfc(413, "invalid_request");
            let (answer, seen) = raised.forwarded(to(path, &body)).await;
            assert_eq!(answer.status, 200);
            let action = seen.action.unwrap();
            assert_eq!(action.token(), token);
            assert_eq!(action.token_type_hint(), Some(TokenTypeHint::AccessToken));
            // Debug stays short and secret-free, whatever the token.
            let debug = format!("{action:?}");
            assert!(debug.len() < 200 && !debug.contains("AAAA"), "{debug}");
        }
    }
}

#[tokio::test]
async fn a_content_type_other_than_utf8_form_is_refused() {
    for dialect in DIALECTS {
        let h = gate(dialect);
        for path in ENDPOINTS {
            for content_type in [
                Some("text/plain"),
                Some("multipart/form-data; boundary=x"),
                Some("application/x-www-form-urlencoded; charset=iso-8859-1"),
                Some("application/x-www-form-urlencoded; charset=utf-16"),
                Some("application/x-www-form-urlencoded; charset=latin1"),
                Some("application/x-www-form-urlencoded;charset=\"windows-1252\""),
                Some("application/xml"),
                None,
            ] {
                let answer = h
                    .refused(raw(path, content_type, b"token=t".to_vec()))
                    .await;
                answer.assert_rfc(400, "invalid_request");
                assert!(
                    description(&answer).contains("Content-Type"),
                    "{content_type:?}"
                );
            }
            // A Content-Type that is not text at all.
            let mut request = raw(path, None, b"token=t".to_vec());
            request.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_bytes(b"application/x-www-form-urlencoded; charset=\xff")
                    .unwrap(),
            );
            h.refused(request).await.assert_rfc(400, "invalid_request");
            // UTF-8 named in any case, quoted or not, is read.
            for content_type in [
                "application/x-www-form-urlencoded; charset=UTF-8",
                "Application/X-WWW-Form-Urlencoded;charset=\"utf-8\"",
            ] {
                let request = raw(path, Some(content_type), b"token=t".to_vec());
                assert_eq!(handed_on(&h, path, request).await, "t");
            }
        }
    }
}

#[tokio::test]
async fn a_json_body_is_read_in_the_github_dialect_only() {
    for dialect in DIALECTS {
        let h = gate(dialect);
        for path in ENDPOINTS {
            let json = |body: &str| raw(path, Some("application/json"), body.as_bytes().to_vec());
            let plain = r#"{"token":"gho_json","token_type_hint":"access_token"}"#;
            match dialect {
                Dialect::Rfc6749 => {
                    let answer = h.refused(json(plain)).await;
                    answer.assert_rfc(400, "invalid_request");
                    assert!(description(&answer).contains("JSON"));
                }
                _ => {
                    let (_, seen) = h.forwarded(json(plain)).await;
                    let action = seen.action.unwrap();
                    assert_eq!(action.token(), "gho_json");
                    assert_eq!(action.token_type_hint(), Some(TokenTypeHint::AccessToken));
                }
            }
            // Whatever the dialect reads, these are refused.
            for bad in [
                r#"{"token":1}"#,
                r#"{"token":["a"]}"#,
                r#"{"token":"a","token":"b"}"#,
                r#"{"token":"a""#,
                r#"["token","a"]"#,
                "",
            ] {
                h.refused(json(bad))
                    .await
                    .assert_rfc(400, "invalid_request");
            }
        }
    }
}

#[tokio::test]
async fn the_gates_parameters_in_the_query_are_refused_in_both_dialects() {
    // A token or a secret in the URL ends up in access logs, proxies and
    // histories (RFC 6749 §2.3.1; RFC 7009 and RFC 7662 take a form body):
    // refused, even in the GitHub dialect, whose token endpoint reads the
    // query for GitHub's clients (there is no such GitHub endpoint here).
    for dialect in DIALECTS {
        let h = gate(dialect);
        for path in ENDPOINTS {
            for query in [
                "token=gho_in_the_url",
                "token_type_hint=access_token",
                "client_secret=rs-s3cret",
                "client_id=rs",
                "t%6Fken=gho_in_the_url",
                "token=%zz",
                "x=1&token",
            ] {
                let mut request = to(path, "token=t");
                *request.uri_mut() = format!("{path}?{query}").parse().unwrap();
                let answer = h.refused(request).await;
                answer.assert_rfc(400, "invalid_request");
                assert!(description(&answer).contains("query"), "{query}");
            }
            // A query with none of the gate's parameters is not its to judge.
            let mut request = to(path, "token=t");
            *request.uri_mut() = format!("{path}?tenant=a&odd=%zz").parse().unwrap();
            assert_eq!(handed_on(&h, path, request).await, "t");
        }
    }
}

#[tokio::test]
async fn a_repeated_token_or_hint_is_refused() {
    for dialect in DIALECTS {
        let h = gate(dialect);
        for path in ENDPOINTS {
            for (body, param) in [
                ("token=a&token=b", "token"),
                ("token=&token=b", "token"),
                ("token=a&token=", "token"),
                ("token=a&t%6Fken=a", "token"),
                ("token=a&token+=a", "none"),
                (
                    "token=a&token_type_hint=access_token&token_type_hint=refresh_token",
                    "token_type_hint",
                ),
                (
                    "token=a&token_type_hint=&token_type_hint=access_token",
                    "token_type_hint",
                ),
            ] {
                if param == "none" {
                    // `token ` is another name: ignored.
                    assert_eq!(handed_on(&h, path, to(path, body)).await, "a");
                    continue;
                }
                let answer = h.refused(to(path, body)).await;
                answer.assert_rfc(400, "invalid_request");
                assert_eq!(
                    description(&answer),
                    format!("the {param} parameter is repeated"),
                    "{body}"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_empty_or_missing_token_is_invalid_request_after_authentication() {
    for dialect in DIALECTS {
        let h = gate(dialect);
        for path in ENDPOINTS {
            for body in ["", "token=", "token_type_hint=access_token", "token=&x=1"] {
                let answer = h.refused(to(path, body)).await;
                answer.assert_rfc(400, "invalid_request");
                assert_eq!(description(&answer), "the token parameter is missing");
            }
            // The caller is authenticated first: a stranger learns nothing
            // of what else is wrong.
            let request = with_basic(post_to(path, ""), "rs", "wrong");
            h.refused(request).await.assert_rfc(401, "invalid_client");
        }
    }
}

#[tokio::test]
async fn malformed_percent_encoding_or_utf8_is_invalid_request() {
    for dialect in DIALECTS {
        let h = gate(dialect);
        for path in ENDPOINTS {
            for body in [
                &b"token=%zz"[..],
                b"token=%",
                b"token=%2",
                b"token=a%%41",
                b"token=%ff%fe",
                b"token=%C3",
                b"token=%C3%28",
                b"token=\xff",
                b"token=\xc3",
                b"t%zzoken=a",
                b"token=a&other=%zz",
                b"token=a&other=\xfe",
                b"token_type_hint=%E2%82",
            ] {
                let answer = h.refused(raw(path, Some(FORM), body.to_vec())).await;
                answer.assert_rfc(400, "invalid_request");
                let why = description(&answer);
                assert!(
                    why.contains("percent-encoding") || why.contains("UTF-8"),
                    "{why}: {}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }
}

#[tokio::test]
async fn a_token_with_nul_or_control_characters_reaches_no_one() {
    // No token holds control characters (RFC 6749 Appendix A: VSCHAR), so
    // the gate answers for such a "token" as for one it knows to be
    // invalid (RFC 7009 §2.2: 200; RFC 7662 §2.2: inactive) instead of
    // handing the application a NUL or a line break to look up.
    for dialect in DIALECTS {
        let h = gate(dialect);
        for path in ENDPOINTS {
            for body in [
                &b"token=a%00b"[..],
                b"token=a\x00b",
                b"token=%00",
                b"token=gho_x%0D%0ASet-Cookie:+a=b",
                b"token=gho_x\r\nX: y",
                b"token=a%09b",
                b"token=a\x1bb",
                b"token=%7F",
                b"token=a%C2%85b",
            ] {
                let answer = h.refused(raw(path, Some(FORM), body.to_vec())).await;
                assert_nothing_said(path, &answer);
            }
            // Printable text, spaces and other scripts are the
            // application's to judge.
            for (body, token) in [("token=a+b", "a b"), ("token=%C3%A9t%C3%A9", "été")] {
                assert_eq!(handed_on(&h, path, to(path, body)).await, token);
            }
            // A control character in the caller's credentials fails them.
            let request = post_to(path, "token=t&client_id=rs%00&client_secret=rs-s3cret");
            h.refused(request).await.assert_rfc(401, "invalid_client");
        }
    }
}

#[tokio::test]
async fn two_authorization_headers_or_a_broken_basic_header_fail_authentication() {
    for dialect in DIALECTS {
        let h = gate(dialect);
        for path in ENDPOINTS {
            let mut request = to(path, "token=t");
            let value = basic("rs", "rs-s3cret").parse().unwrap();
            request.headers_mut().append("authorization", value);
            let answer = h.refused(request).await;
            answer.assert_rfc(401, "invalid_client");
            assert!(description(&answer).contains("more than one"));
            for header in [
                &b"Basic !!!not-base64!!!"[..],
                b"Basic cnM=",     // "rs": no colon
                b"Basic cnM6JXp6", // "rs:%zz"
                b"Basic /w==",     // one byte, not UTF-8
                b"Basic",          // nothing at all
                b"Basic \xff\xfe\xfd",
                b"Bearer gho_token",
                b"Digest username=rs",
            ] {
                let mut request = post_to(path, "token=t");
                request.headers_mut().insert(
                    "authorization",
                    http::HeaderValue::from_bytes(header).unwrap(),
                );
                h.refused(request).await.assert_rfc(401, "invalid_client");
            }
            let mut request = post_to(path, "token=t");
            let long = format!("Basic {}", "A".repeat(100_000));
            request
                .headers_mut()
                .insert("authorization", long.parse().unwrap());
            h.refused(request).await.assert_rfc(401, "invalid_client");
        }
    }
}

#[tokio::test]
async fn a_client_assertion_needs_its_type_and_a_real_signature() {
    const JWT_BEARER: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
    for dialect in DIALECTS {
        let h = gate(dialect);
        for path in ENDPOINTS {
            for body in [
                "token=t&client_id=rs&client_assertion=eyJhbGciOiJub25lIn0.e30.".to_owned(),
                format!("token=t&client_id=rs&client_assertion_type={JWT_BEARER}"),
            ] {
                let answer = h.refused(post_to(path, &body)).await;
                answer.assert_rfc(400, "invalid_request");
                assert!(description(&answer).contains("go together"));
            }
            // Unsigned, of another type, or garbage: authentication fails.
            for (assertion, kind) in [
                ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJycyJ9.", JWT_BEARER),
                ("not.a.jwt", JWT_BEARER),
                ("eyJhbGciOiJub25lIn0.e30.", "urn%3Aexample%3Aother"),
            ] {
                let body = format!(
                    "token=t&client_id=rs&client_assertion={assertion}&client_assertion_type={kind}"
                );
                h.refused(post_to(path, &body))
                    .await
                    .assert_rfc(401, "invalid_client");
            }
            // With a secret besides: two methods.
            let body = format!("token=t&client_assertion=a.b.c&client_assertion_type={JWT_BEARER}");
            let answer = h.refused(to(path, &body)).await;
            answer.assert_rfc(400, "invalid_request");
            assert!(description(&answer).contains("both"));
        }
    }
}

#[tokio::test]
async fn a_wrong_secret_or_an_unknown_client_is_401_with_www_authenticate() {
    for dialect in DIALECTS {
        let h = gate(dialect);
        for path in ENDPOINTS {
            let basic_wrong = with_basic(post_to(path, "token=t"), "rs", "rs-s3cret-");
            let anothers_secret = with_basic(post_to(path, "token=t"), "rs", "s3cret");
            let unknown = with_basic(post_to(path, "token=t"), "nobody", "rs-s3cret");
            let empty = with_basic(post_to(path, "token=t"), "rs", "");
            for request in [basic_wrong, anothers_secret, unknown, empty] {
                let answer = h.refused(request).await;
                // assert_rfc checks the header: `Basic realm="tokengate-test"`.
                answer.assert_rfc(401, "invalid_client");
                assert_eq!(description(&answer), "client authentication failed");
            }
            for body in [
                "token=t&client_id=rs&client_secret=RS-S3CRET",
                "token=t&client_id=nobody&client_secret=x",
                "token=t&client_id=nobody",
                "token=t&client_id=rs",
                "token=t&client_secret=rs-s3cret",
                "token=t",
            ] {
                h.refused(post_to(path, body))
                    .await
                    .assert_rfc(401, "invalid_client");
            }
        }
    }
}

#[tokio::test]
async fn a_refresh_token_as_the_client_secret_authenticates_no_one() {
    for dialect in DIALECTS {
        let h = gate(dialect);
        let refresh = h.app_refresh_token().await;
        for path in ENDPOINTS {
            for request in [
                with_basic(post_to(path, &format!("token={refresh}")), "app", &refresh),
                with_basic(post_to(path, &format!("token={refresh}")), "rs", &refresh),
                post_to(
                    path,
                    &format!("token={refresh}&client_id=app&client_secret={refresh}"),
                ),
                post_to(path, &format!("token={refresh}&client_id={refresh}")),
            ] {
                h.refused(request).await.assert_rfc(401, "invalid_client");
            }
        }
        // Nothing was revoked: the token still introspects as live.
        let answer = h.refused(to(INTROSPECT, &format!("token={refresh}"))).await;
        assert_eq!(answer.json()["active"], true, "{}", answer.text());
    }
}

#[tokio::test]
async fn failures_here_count_for_the_lockout_and_lock_the_token_endpoint_too() {
    for dialect in DIALECTS {
        let h = gate_with(dialect, |b| {
            b.lockout(Some(Lockout::new(3, Duration::from_secs(60))))
        });
        // Mistakes that guess nothing are not counted, however many.
        for _ in 0..5 {
            h.refused(to(REVOKE, "token=t&token_type_hint=id_token"))
                .await
                .assert_rfc(400, "unsupported_token_type");
            h.refused(to(INTROSPECT, ""))
                .await
                .assert_rfc(400, "invalid_request");
        }
        // Three wrong secrets, over both endpoints.
        for path in [REVOKE, INTROSPECT, REVOKE] {
            let request = with_basic(post_to(path, "token=t"), "rs", "guess");
            h.refused(request).await.assert_rfc(401, "invalid_client");
        }
        // Locked out now, with the right secret, everywhere.
        for path in ENDPOINTS {
            let answer = h.refused(to(path, "token=t")).await;
            answer.assert_rfc(429, "temporarily_unavailable");
            let wait: u64 = answer.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=60).contains(&wait), "{wait}");
        }
        let token = post_basic("rs", "rs-s3cret", "grant_type=client_credentials");
        let answer = h.refused(token).await;
        assert_eq!(answer.status, 429, "{}", answer.text());
        assert_eq!(answer.rejection.unwrap().error(), "temporarily_unavailable");
        // Another client is not locked out by `rs`'s failures.
        let body = "token=t&client_id=app&client_secret=s3cret";
        let (answer, _) = h.forwarded(post_to(REVOKE, body)).await;
        assert_eq!(answer.status, 200);
        // The window passes, and `rs` is back.
        h.clock.advance(Duration::from_secs(61));
        assert_eq!(handed_on(&h, REVOKE, to(REVOKE, "token=t")).await, "t");
    }
}

#[tokio::test]
async fn a_public_client_may_revoke_but_never_introspect() {
    for dialect in DIALECTS {
        let h = gate(dialect);
        let refresh = h.app_refresh_token().await;
        for client in ["native", "tv"] {
            let body = format!("token={refresh}&client_id={client}");
            let answer = h.refused(post_to(INTROSPECT, &body)).await;
            answer.assert_rfc(403, "unauthorized_client");
            // Basic with an empty secret is the same public client.
            let request = with_basic(post_to(INTROSPECT, &format!("token={refresh}")), client, "");
            h.refused(request)
                .await
                .assert_rfc(403, "unauthorized_client");
            // At the revocation endpoint, `app`'s token is not theirs:
            // 200, and it lives on.
            let answer = h.refused(post_to(REVOKE, &body)).await;
            assert_nothing_said(REVOKE, &answer);
        }
        // A confidential client not registered to introspect is refused too.
        let request = with_basic(
            post_to(INTROSPECT, &format!("token={refresh}")),
            "app",
            "s3cret",
        );
        h.refused(request)
            .await
            .assert_rfc(403, "unauthorized_client");
        let answer = h.refused(to(INTROSPECT, &format!("token={refresh}"))).await;
        assert_eq!(answer.json()["active"], true);
    }
}

#[tokio::test]
async fn a_hint_of_no_known_kind_is_refused_at_revocation_and_ignored_at_introspection() {
    // Refused at revocation only once no refresh token answered: a hint is
    // only a hint (RFC 7009 §2.1), so it never saves a live token.
    let long = "x".repeat(10_000);
    let hints = [
        "id_token",
        "ACCESS_TOKEN",
        "Refresh_Token",
        "access_token%20",
        "+refresh_token",
        "refresh_token%00",
        "%E2%80%8Baccess_token",
        "access_token,refresh_token",
        long.as_str(),
    ];
    for dialect in DIALECTS {
        let h = gate(dialect);
        let refresh = h.app_refresh_token().await;
        for hint in hints {
            let answer = h
                .refused(to(
                    REVOKE,
                    &format!("token=gho_unknown&token_type_hint={hint}"),
                ))
                .await;
            answer.assert_rfc(400, "unsupported_token_type");
            // The hint is not echoed back.
            assert!(!answer.text().contains("xxxxxxxx"));
            // Introspection takes a hint only as a hint: the refresh token
            // is found, and another token goes on with no hint at all.
            let answer = h
                .refused(to(
                    INTROSPECT,
                    &format!("token={refresh}&token_type_hint={hint}"),
                ))
                .await;
            assert_eq!(answer.json()["active"], true, "{hint}");
            let body = format!("token=gho_app&token_type_hint={hint}");
            let (_, seen) = h.forwarded(to(INTROSPECT, &body)).await;
            assert_eq!(seen.action.unwrap().token_type_hint(), None, "{hint}");
        }
        // The refused revocations revoked nothing.
        let answer = h.refused(to(INTROSPECT, &format!("token={refresh}"))).await;
        assert_eq!(answer.json()["active"], true);
        // The live refresh token is revoked by its client whatever its
        // hint says.
        let answer = h
            .refused(with_basic(
                post_to(REVOKE, &format!("token={refresh}&token_type_hint=id_token")),
                "app",
                "s3cret",
            ))
            .await;
        assert_eq!(answer.status, 200);
        let (_, seen) = h
            .forwarded(to(INTROSPECT, &format!("token={refresh}")))
            .await;
        assert!(
            seen.action.is_some(),
            "revoked: the gate no longer knows it"
        );
        // The two registered hints are passed on as such.
        for (hint, expected) in [
            ("access_token", TokenTypeHint::AccessToken),
            ("refresh_token", TokenTypeHint::RefreshToken),
        ] {
            for path in ENDPOINTS {
                let body = format!("token=gho_app&token_type_hint={hint}");
                let (_, seen) = h.forwarded(to(path, &body)).await;
                assert_eq!(seen.action.unwrap().token_type_hint(), Some(expected));
            }
        }
    }
}

/// Rotates `token` (a refresh token of `app`) through the gate; the
/// successor the issuing side minted.
async fn rotate(h: &Harness, token: &str) -> String {
    let body = format!(
        "grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret"
    );
    let (answer, seen) = h.forwarded(post(&body)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    h.layer
        .refresh_tokens()
        .issue(&seen.grant.unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_rotated_token_is_exactly_inactive_within_the_reuse_window_or_not() {
    for dialect in DIALECTS {
        for reuse in [None, Some(Duration::from_secs(60))] {
            let h = gate_with(dialect, |b| {
                let b = b.lockout(None);
                match reuse {
                    Some(within) => b.refresh_reuse(within, 2),
                    None => b,
                }
            });
            let old = h.app_refresh_token().await;
            let successor = rotate(&h, &old).await;
            for hint in [
                "",
                "&token_type_hint=refresh_token",
                "&token_type_hint=access_token",
            ] {
                let answer = h
                    .refused(to(INTROSPECT, &format!("token={old}{hint}")))
                    .await;
                // Nothing else: not whose it was, nor when, nor which family.
                assert_nothing_said(INTROSPECT, &answer);
                assert!(!answer.text().contains("app") && !answer.text().contains("user-1"));
            }
            let live = h
                .refused(to(INTROSPECT, &format!("token={successor}")))
                .await;
            assert_eq!(live.json()["active"], true);
            assert_eq!(live.json()["client_id"], "app");
        }
    }
}

#[tokio::test]
async fn a_revoked_token_is_unknown_to_the_gate_and_the_application_says_inactive() {
    for dialect in DIALECTS {
        let h = gate(dialect);
        let old = h.app_refresh_token().await;
        let successor = rotate(&h, &old).await;
        // Revoking the rotated token revokes its family, successor included.
        let body = format!("token={old}&client_id=app&client_secret=s3cret");
        assert_nothing_said(REVOKE, &h.refused(post_to(REVOKE, &body)).await);
        for token in [&old, &successor] {
            // The store forgot the family: the gate cannot tell the token
            // from one of the application's, and hands it on; an
            // application that knows no such token says only that.
            let inner = ServiceBuilder::new()
                .layer(h.layer.clone())
                .service(service_fn(
                    |request: Request<RequestBody<String>>| async move {
                        let action = request.extensions().get::<tokengate::TokenAction>();
                        assert_eq!(action.unwrap().kind(), TokenActionKind::Introspection);
                        // As the lifecycle module's example does.
                        let response = Introspection::inactive().response();
                        Ok::<_, Infallible>(response.map(Full::new))
                    },
                ));
            let request = to(INTROSPECT, &format!("token={token}"));
            let answer = Answer::read(inner.oneshot(request).await.unwrap()).await;
            assert_nothing_said(INTROSPECT, &answer);
        }
        // Refreshing with either is refused.
        for token in [&old, &successor] {
            let body = format!(
                "grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret"
            );
            assert!(h.refused(post(&body)).await.rejection.is_some());
        }
    }
}

#[tokio::test]
async fn an_inner_answer_to_a_handed_on_token_keeps_its_own_cache_headers() {
    // What the application answers is passed back; the gate adds no-store
    // only where the application said nothing about caching.
    for dialect in DIALECTS {
        let h = gate(dialect);
        for path in ENDPOINTS {
            for own in [None, Some("no-store, private")] {
                let service = ServiceBuilder::new()
                    .layer(h.layer.clone())
                    .service(service_fn(
                        move |_: Request<RequestBody<String>>| async move {
                            let mut response = Response::new(String::from("{\"active\":false}"));
                            if let Some(own) = own {
                                response
                                    .headers_mut()
                                    .insert("cache-control", own.parse().unwrap());
                            }
                            Ok::<_, Infallible>(response)
                        },
                    ));
                let request = to(path, "token=t");
                let answer = Answer::read(service.oneshot(request).await.unwrap()).await;
                assert_eq!(answer.status, 200);
                assert_eq!(answer.text(), r#"{"active":false}"#);
                match own {
                    None => answer.assert_no_store(),
                    Some(own) => {
                        assert_eq!(answer.header("cache-control"), Some(own));
                        assert_eq!(answer.header("pragma"), None);
                    }
                }
            }
        }
    }
}
