//! The test kit (feature `testing`) does what it says: its requests reach
//! the checks they name, its assertions fail when they should, and a policy
//! can be unit-tested without a server or an inner service.

#![cfg(feature = "testing")]

use std::convert::Infallible;

use tokengate::{
    Client, Dialect, ErrorCode, GrantType, RequestBody, StoreError, TokenGateLayer, Verdict,
    policy::PolicyError,
    policy::PolicyRequest,
    policy::UnverifiedUserEmail,
    testing::{TokenRequest, assert_forwarded, assert_rejected, fixture, mint_code, pkce_pair},
};
use tower::{ServiceExt, service_fn};

const CB: &str = "https://app.example/cb";

fn clients() -> [Client; 3] {
    [
        Client::confidential("app")
            .with_secret("s3cret")
            .with_redirect_uri(CB),
        Client::confidential("blocked")
            .with_secret("s3cret")
            .with_redirect_uri(CB),
        Client::confidential("svc")
            .with_secret("svc")
            .with_grant_types([GrantType::ClientCredentials]),
    ]
}

/// A blocklist of client ids, and GitHub's verified-email rule.
fn layer() -> TokenGateLayer {
    let (store, clock) = fixture(clients());
    TokenGateLayer::builder()
        .store(store)
        .issuer("https://auth.example.com")
        .clock(clock)
        .policy(|request: PolicyRequest| async move {
            if ["blocked"].contains(&request.client().client_id()) {
                return Err(
                    PolicyError::new("client_blocked", "This client is blocked.")
                        .expect("a valid error"),
                );
            }
            Ok(())
        })
        .policy(UnverifiedUserEmail::new(|subject: String| async move {
            Ok::<_, StoreError>(subject != "unverified")
        }))
        .build()
}

async fn exchange(layer: &TokenGateLayer, client: &str, subject: &str) -> Verdict {
    let (verifier, challenge) = pkce_pair();
    let code = mint_code(layer, client, CB, &challenge, subject).await;
    let request = TokenRequest::authorization_code(&code)
        .client_secret_basic(client, "s3cret")
        .redirect_uri(CB)
        .code_verifier(&verifier)
        .build();
    layer.check(request).await
}

#[tokio::test]
async fn a_policy_unit_test_without_a_server() {
    let layer = layer();
    assert!(matches!(
        exchange(&layer, "app", "alice").await,
        Verdict::Forwarded(_)
    ));
    match exchange(&layer, "blocked", "alice").await {
        Verdict::Rejected(rejection) => assert_eq!(rejection.error(), "client_blocked"),
        other => panic!("{other:?}"),
    }
    match exchange(&layer, "app", "unverified").await {
        Verdict::Rejected(rejection) => {
            assert_eq!(rejection.code(), ErrorCode::UnverifiedUserEmail)
        }
        other => panic!("{other:?}"),
    }
    // Client credentials have no user: the email rule does not apply.
    let request = TokenRequest::client_credentials()
        .client_secret_post("svc", "svc")
        .build();
    assert!(matches!(layer.check(request).await, Verdict::Forwarded(_)));
}

#[tokio::test]
async fn requests_for_every_grant_reach_their_checks() {
    let (store, clock) = fixture(clients());
    let layer = TokenGateLayer::builder()
        .store(store)
        .issuer("https://auth.example.com")
        .clock(clock)
        .dialect(Dialect::GitHub)
        .build();
    let rejected = |verdict: Verdict| match verdict {
        Verdict::Rejected(rejection) => rejection.code(),
        other => panic!("{other:?}"),
    };
    let request = TokenRequest::refresh_token("unknown")
        .client_secret_post("app", "s3cret")
        .build();
    assert_eq!(
        rejected(layer.check(request).await),
        ErrorCode::BadRefreshToken
    );
    let request = TokenRequest::device_code("unknown")
        .public_client("app")
        .build();
    assert_eq!(
        rejected(layer.check(request).await),
        ErrorCode::DeviceFlowDisabled
    );
    // A JSON body is read (GitHub dialect): the code is checked.
    let request = TokenRequest::authorization_code("x")
        .client_secret_post("app", "s3cret")
        .json()
        .accept("application/json")
        .build();
    assert_eq!(request.headers()["content-type"], "application/json");
    assert_eq!(
        rejected(layer.check(request).await),
        ErrorCode::BadVerificationCode
    );
    // A repeated parameter (form bodies can carry one) is refused.
    let request = TokenRequest::authorization_code("x")
        .client_secret_post("app", "s3cret")
        .param("code", "y")
        .build();
    assert_eq!(
        rejected(layer.check(request).await),
        ErrorCode::InvalidRequest
    );
    let request = TokenRequest::device_authorization("app").build();
    assert_eq!(
        rejected(layer.check(request).await),
        ErrorCode::DeviceFlowDisabled
    );
    let request = TokenRequest::authorization_code("x")
        .path("/elsewhere")
        .build();
    assert!(matches!(layer.check(request).await, Verdict::NotChecked));
}

#[tokio::test]
async fn the_assertions_read_the_rejection() {
    let layer = layer();
    let service = tower::Layer::layer(
        &layer,
        service_fn(|_: http::Request<RequestBody<String>>| async {
            Ok::<_, Infallible>(http::Response::new(String::new()))
        }),
    );
    let refused = service
        .clone()
        .oneshot(
            TokenRequest::authorization_code("nope")
                .client_secret_post("app", "s3cret")
                .build(),
        )
        .await
        .unwrap();
    assert_rejected(&refused, ErrorCode::InvalidGrant);
    assert!(
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| assert_forwarded(&refused)))
            .is_err()
    );
    assert!(
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| assert_rejected(
            &refused,
            ErrorCode::InvalidClient
        )))
        .is_err()
    );
    let forwarded = service
        .oneshot(
            TokenRequest::client_credentials()
                .client_secret_post("svc", "svc")
                .build(),
        )
        .await
        .unwrap();
    assert_forwarded(&forwarded);
    assert!(
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| assert_rejected(
            &forwarded,
            ErrorCode::InvalidGrant
        )))
        .is_err()
    );
}
