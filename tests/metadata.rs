//! RFC 8414 metadata says what the gate enforces: every grant it lists gets
//! past the grant-type check, every grant it leaves out is refused as
//! unsupported, and PKCE methods match what the authorizer accepts.

mod common;

use common::*;
use tokengate::{Dialect, GrantType, MemoryStore, TokenGateLayer};

async fn assert_agrees(h: &Harness) {
    let metadata = h.layer.metadata("https://auth.example.com/");
    let json: serde_json::Value = serde_json::from_str(&metadata.to_json()).unwrap();
    assert_eq!(json["issuer"], "https://auth.example.com");
    assert_eq!(
        json["token_endpoint"],
        format!("https://auth.example.com{TOKEN}")
    );
    for grant in GrantType::ALL {
        let listed = metadata.grant_types_supported().contains(&grant.as_str());
        let body = format!(
            "grant_type={}&client_id=nobody&client_secret=x",
            form_urlencoded::byte_serialize(grant.as_str().as_bytes()).collect::<String>()
        );
        let answer = h
            .refused(with_accept(post(&body), "application/json"))
            .await;
        let error = answer.json()["error"].as_str().unwrap().to_owned();
        if listed {
            assert_ne!(
                error, "unsupported_grant_type",
                "{grant:?} is listed but refused"
            );
        } else {
            assert_eq!(
                error, "unsupported_grant_type",
                "{grant:?} is not listed but served"
            );
        }
    }
    let plain_listed = json["code_challenge_methods_supported"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "plain");
    let plain = "a-plain-verifier-that-is-long-enough-to-be-valid-0123";
    let accepted = h
        .layer
        .authorizer()
        .validate(&format!(
            "response_type=code&client_id=app&redirect_uri={CB_ENC}&code_challenge={plain}&code_challenge_method=plain"
        ))
        .await
        .is_ok();
    assert_eq!(plain_listed, accepted);
    let device_listed = json.get("device_authorization_endpoint").is_some();
    let (answer, _) = {
        let request = post_device("client_id=tv");
        let answer = h.refused_or_forwarded(request).await;
        (answer, ())
    };
    assert_eq!(
        device_listed,
        answer != "inner",
        "the device endpoint is served iff listed"
    );
}

#[tokio::test]
async fn the_metadata_matches_each_configuration() {
    assert_agrees(&Harness::new(Dialect::Rfc6749)).await;
    assert_agrees(&Harness::new(Dialect::GitHub)).await;
    assert_agrees(&Harness::with(Dialect::GitHub, |b| {
        b.github_client_credentials(true)
    }))
    .await;
    assert_agrees(&Harness::with(Dialect::Rfc6749, |b| {
        b.allow_plain_pkce(true)
    }))
    .await;
    let store = MemoryStore::new();
    let base = Harness::new(Dialect::Rfc6749);
    let minimal = TokenGateLayer::builder()
        .client_store(base.store.clone())
        .code_store(store)
        .build();
    let h = Harness {
        layer: minimal,
        ..base
    };
    let metadata = h.layer.metadata("https://auth.example.com");
    assert_eq!(
        metadata.grant_types_supported(),
        ["authorization_code", "client_credentials"]
    );
    assert_agrees(&h).await;
}

#[test]
fn the_document_names_every_required_field() {
    let h = Harness::new(Dialect::Rfc6749);
    let json: serde_json::Value = serde_json::from_str(
        &h.layer
            .metadata("https://auth.example.com")
            .with_authorization_endpoint("/login/oauth/authorize")
            .to_json(),
    )
    .unwrap();
    assert_eq!(
        json["authorization_endpoint"],
        "https://auth.example.com/login/oauth/authorize"
    );
    assert_eq!(
        json["device_authorization_endpoint"],
        "https://auth.example.com/login/device/code"
    );
    assert_eq!(
        json["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        json["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "none",
            "private_key_jwt",
            "client_secret_jwt"
        ])
    );
    assert_eq!(
        json["token_endpoint_auth_signing_alg_values_supported"],
        serde_json::json!(["ES256", "EdDSA", "Ed25519", "RS256", "PS256", "HS256"])
    );
    assert_eq!(
        json["dpop_signing_alg_values_supported"],
        serde_json::json!(["ES256", "EdDSA", "Ed25519", "RS256", "PS256"])
    );
    assert_eq!(
        json["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
}

/// Issue 12, item 5: the document comes from the configured issuer, and its
/// HTTP answer may be cached by everyone (it is the same for everyone), so
/// it must never depend on the request.
#[test]
fn the_configured_issuer_gives_a_cacheable_metadata_answer() {
    let h = Harness::with(Dialect::Rfc6749, |b| b.issuer("https://login.example.org/"));
    let metadata = h.layer.metadata_document().expect("an issuer is set");
    let response = metadata.response();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "public, max-age=3600");
    assert!(headers.get("pragma").is_none());
    let json: serde_json::Value = serde_json::from_str(response.body()).unwrap();
    assert_eq!(json["issuer"], "https://login.example.org");
    assert_eq!(
        json["token_endpoint"],
        format!("https://login.example.org{TOKEN}")
    );
    assert_eq!(
        json["device_authorization_endpoint"],
        format!("https://login.example.org{DEVICE}")
    );
    assert_eq!(response.body(), &metadata.to_json());
    // Without a configured issuer there is no document to serve.
    let base = Harness::new(Dialect::Rfc6749);
    let none = TokenGateLayer::builder()
        .client_store(base.store.clone())
        .code_store(base.store.clone())
        .build();
    assert!(none.metadata_document().is_none());
}

#[test]
fn the_issuer_is_checked_when_the_layer_is_built() {
    let build = |issuer: &str| {
        TokenGateLayer::builder()
            .store(MemoryStore::new())
            .issuer(issuer)
            .try_build()
    };
    for bad in [
        "",
        "/",
        "auth.example.com",
        "//auth.example.com",
        "ftp://auth.example.com",
        "https://",
        "https://auth.example.com?tenant=1",
        "https://auth.example.com/?",
        "https://auth.example.com#top",
        "https://user@auth.example.com",
        "https://user:pw@auth.example.com",
        "https://auth example.com",
        "https://auth.example.com/a\"b",
    ] {
        let error = build(bad).expect_err(bad);
        assert!(error.to_string().contains("issuer"), "{bad}: {error}");
    }
    for (good, issuer) in [
        ("https://auth.example.com", "https://auth.example.com"),
        ("https://auth.example.com/", "https://auth.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        (
            "https://auth.example.com/tenant/",
            "https://auth.example.com/tenant",
        ),
    ] {
        let layer = build(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        let json = layer.metadata_document().unwrap().to_json();
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(json["issuer"], issuer);
    }
}
