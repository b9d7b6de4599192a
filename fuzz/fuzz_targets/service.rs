//! The whole gate on arbitrary requests: any method, path, headers and body
//! (in chunks, as a network delivers it), in both dialects. The gate must
//! answer every one without panicking; no request without the one known
//! code reaches the inner service; no answer is a 500 (the store here never
//! fails); every answer on a gated path carries `Cache-Control: no-store`.
#![no_main]

mod common;

use std::{
    collections::VecDeque,
    convert::Infallible,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tokengate::{
    Client, Dialect, GrantType, MemoryStore, TokenGateLayer, ValidatedGrant, authorize::CodeRecord,
    store::CodeKey, store::CodeStore,
};
use tower::{Layer, ServiceExt, service_fn};

/// The code the store holds; a seed carries it, so the fuzzer also
/// explores the paths past a successful redemption.
const CODE: &str = "fuzz-known-code";

/// A body delivered in the fuzzer's chunks, one frame each.
struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(
            self.0
                .pop_front()
                .map(|chunk| Ok(http_body::Frame::data(chunk))),
        )
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = common::parse(data) else {
        return;
    };
    let path = input.request.uri().path();
    let gated = path == "/login/oauth/access_token" || path == "/login/device/code";
    let (parts, body) = input.request.into_parts();
    let chunks = body
        .chunks(input.chunk)
        .map(Bytes::copy_from_slice)
        .collect();
    let request = http::Request::from_parts(parts, Chunks(chunks));
    runtime().block_on(async move {
        let store = MemoryStore::new();
        store.insert_client(
            Client::confidential("app")
                .with_secret("s3cret")
                .with_redirect_uri("https://app.example/cb")
                .with_grant_types([
                    GrantType::AuthorizationCode,
                    GrantType::RefreshToken,
                    GrantType::ClientCredentials,
                    GrantType::DeviceCode,
                ])
                .with_device_flow(true),
        );
        let now = SystemTime::now();
        store
            .issue(
                CodeKey::of(CODE),
                CodeRecord {
                    client_id: "app".to_owned(),
                    subject: "user".to_owned(),
                    scopes: vec!["read".to_owned()],
                    redirect_uri: Some("https://app.example/cb".to_owned()),
                    pkce: None,
                    issued_at: now,
                    expires_at: now + Duration::from_secs(600),
                    dpop_jkt: None,
                },
            )
            .await
            .expect("the memory store issues");
        let dialect = if input.github {
            Dialect::GitHub
        } else {
            Dialect::Rfc6749
        };
        let layer = TokenGateLayer::builder()
            .store(store)
            .issuer("https://auth.example.com")
            .dialect(dialect)
            .body_limit(4096)
            .build();
        let inner = service_fn(
            move |request: http::Request<tokengate::RequestBody<Chunks>>| async move {
                let Some(grant) = request.extensions().get::<ValidatedGrant>() else {
                    // Only requests for other paths pass through ungated.
                    assert!(!gated, "a gated request forwarded without its grant");
                    let mut response = http::Response::new(String::new());
                    *response.status_mut() = http::StatusCode::NOT_FOUND;
                    return Ok::<_, Infallible>(response);
                };
                assert_eq!(grant.client().client_id(), "app");
                Ok(http::Response::new(String::from(
                    "{\"access_token\":\"t\"}",
                )))
            },
        );
        let service = layer.layer(inner);
        let response = service.oneshot(request).await.expect("infallible");
        let status = response.status();
        assert_ne!(
            status,
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "a 500 without a store fault"
        );
        if gated && status != http::StatusCode::NOT_FOUND {
            assert_eq!(
                response
                    .headers()
                    .get(http::header::CACHE_CONTROL)
                    .map(|v| v.as_bytes()),
                Some(&b"no-store"[..]),
                "{status}"
            );
        }
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a gate body")
            .to_bytes();
        if dialect == Dialect::Rfc6749
            && (status == http::StatusCode::BAD_REQUEST || status == http::StatusCode::UNAUTHORIZED)
        {
            let json: serde_json::Value =
                serde_json::from_slice(&body).expect("a refusal's body is JSON");
            assert!(json["error"].is_string());
        }
    });
});
