//! Clients that prove possession: `private_key_jwt` and `client_secret_jwt`
//! assertions (RFC 7523) and DPoP proofs (RFC 9449) at the gate, in both
//! dialects, through the public API and the test kit.

use std::{convert::Infallible, time::Duration};

use http::{Request, Response};
use tokengate::{
    Client, Dialect, ErrorCode, TokenGateLayer, Verdict,
    client::{AuthMethod, Jwks},
    testing::{
        TokenRequest, fixture,
        jose::{ClientAssertion, DpopProof, TestKey},
        mint_code, pkce_pair,
    },
};
use tower::{ServiceExt, service_fn};

const ISSUER: &str = "https://auth.example.com";
const TOKEN_URL: &str = "https://auth.example.com/login/oauth/access_token";
const CB: &str = "https://app.example/cb";

fn jwks(keys: &[&TestKey]) -> Jwks {
    Jwks::from_json(&TestKey::jwks(keys)).unwrap()
}

fn clients() -> Vec<Client> {
    vec![
        Client::confidential("keyed")
            .with_jwks(jwks(&[
                &TestKey::es256(),
                &TestKey::ed25519(),
                &TestKey::rs256(),
            ]))
            .with_redirect_uri(CB),
        Client::confidential("hmac")
            .with_jwt_secret("a shared secret of some length")
            .with_redirect_uri(CB),
        Client::confidential("basic-only")
            .with_secret("s3cret")
            .with_auth_method(AuthMethod::ClientSecretBasic)
            .with_redirect_uri(CB),
        Client::confidential("legacy")
            .with_secret("s3cret")
            .with_redirect_uri(CB),
        Client::public("spa").with_redirect_uri(CB),
        Client::public("bound-spa")
            .with_redirect_uri(CB)
            .with_dpop_bound_access_tokens(true),
        Client::confidential("keyed-rs")
            .with_jwks(jwks(&[&TestKey::es256()]))
            .with_introspection(true),
    ]
}

fn layer(dialect: Dialect) -> TokenGateLayer {
    let (store, clock) = fixture(clients());
    TokenGateLayer::builder()
        .store(store)
        .clock(clock)
        .dialect(dialect)
        .issuer(ISSUER)
        .build()
}

/// A code for `client`, and the request that redeems it (without client
/// authentication).
async fn code_request(layer: &TokenGateLayer, client: &str) -> TokenRequest {
    let (verifier, challenge) = pkce_pair();
    let code = mint_code(layer, client, CB, &challenge, "alice").await;
    TokenRequest::authorization_code(&code)
        .redirect_uri(CB)
        .code_verifier(&verifier)
}

fn forwarded(verdict: Verdict) -> tokengate::ValidatedGrant {
    match verdict {
        Verdict::Forwarded(grant) => grant,
        other => panic!("not forwarded: {other:?}"),
    }
}

fn rejected(verdict: Verdict, code: ErrorCode) -> tokengate::Rejection {
    match verdict {
        Verdict::Rejected(rejection) => {
            assert_eq!(rejection.code(), code, "{rejection:?}");
            rejection
        }
        other => panic!("not rejected: {other:?}"),
    }
}

/// The credentials failure of each dialect.
fn bad_client(dialect: Dialect) -> ErrorCode {
    match dialect {
        Dialect::GitHub => ErrorCode::IncorrectClientCredentials,
        _ => ErrorCode::InvalidClient,
    }
}

const DIALECTS: [Dialect; 2] = [Dialect::Rfc6749, Dialect::GitHub];

#[tokio::test]
async fn private_key_jwt_with_every_algorithm_and_both_audiences() {
    for dialect in DIALECTS {
        let layer = layer(dialect);
        for (key, audience) in [
            (TestKey::es256(), ISSUER),
            (TestKey::ed25519(), TOKEN_URL),
            // RFC 9864's fully specified name, sent by current libraries.
            (TestKey::ed25519().with_alg_name("Ed25519"), ISSUER),
            (TestKey::rs256(), TOKEN_URL),
            (TestKey::ps256(), ISSUER),
        ] {
            let assertion = ClientAssertion::new("keyed", audience).sign(&key);
            let request = code_request(&layer, "keyed")
                .await
                .client_assertion(&assertion);
            let grant = forwarded(layer.check(request.build()).await);
            assert_eq!(grant.client().client_id(), "keyed", "{}", key.alg());
            assert_eq!(grant.dpop_jkt(), None);
        }
    }
}

#[tokio::test]
async fn the_client_id_parameter_may_name_the_client_too() {
    let layer = layer(Dialect::Rfc6749);
    let assertion = ClientAssertion::new("keyed", ISSUER).sign(&TestKey::es256());
    let request = code_request(&layer, "keyed")
        .await
        .param("client_id", "keyed")
        .client_assertion(&assertion);
    forwarded(layer.check(request.build()).await);
    // Naming another client than the assertion's is refused.
    let assertion = ClientAssertion::new("keyed", ISSUER).sign(&TestKey::es256());
    let request = code_request(&layer, "keyed")
        .await
        .param("client_id", "hmac")
        .client_assertion(&assertion);
    rejected(layer.check(request.build()).await, ErrorCode::InvalidClient);
}

#[tokio::test]
async fn client_secret_jwt_is_hs256_with_the_registered_secret() {
    for dialect in DIALECTS {
        let layer = layer(dialect);
        let good =
            ClientAssertion::new("hmac", ISSUER).sign_hs256("a shared secret of some length");
        let request = code_request(&layer, "hmac").await.client_assertion(&good);
        forwarded(layer.check(request.build()).await);
        let wrong = ClientAssertion::new("hmac", ISSUER).sign_hs256("another secret");
        let request = code_request(&layer, "hmac").await.client_assertion(&wrong);
        let rejection = rejected(layer.check(request.build()).await, bad_client(dialect));
        if dialect == Dialect::Rfc6749 {
            assert_eq!(rejection.status(), 401);
        } else {
            assert_eq!(rejection.status(), 200);
        }
    }
}

#[tokio::test]
async fn a_client_registered_for_one_method_cannot_use_another() {
    for dialect in DIALECTS {
        let layer = layer(dialect);
        let refused = |verdict| rejected(verdict, bad_client(dialect));
        // The keyed client's would-be secret, or an HS256 assertion keyed by
        // its public key (the classic algorithm confusion).
        let public_jwk = TestKey::es256().public_jwk().to_string();
        let confused = ClientAssertion::new("keyed", ISSUER).sign_hs256(&public_jwk);
        let request = code_request(&layer, "keyed")
            .await
            .client_assertion(&confused);
        refused(layer.check(request.build()).await);
        // The HMAC client cannot sign with a key, nor send its secret.
        let signed = ClientAssertion::new("hmac", ISSUER).sign(&TestKey::es256());
        let request = code_request(&layer, "hmac").await.client_assertion(&signed);
        refused(layer.check(request.build()).await);
        let request = code_request(&layer, "hmac")
            .await
            .client_secret_post("hmac", "a shared secret of some length");
        refused(layer.check(request.build()).await);
        // A Basic-only client may not post its secret, nor send an assertion.
        let request = code_request(&layer, "basic-only")
            .await
            .client_secret_post("basic-only", "s3cret");
        refused(layer.check(request.build()).await);
        let request = code_request(&layer, "basic-only")
            .await
            .client_secret_basic("basic-only", "s3cret");
        forwarded(layer.check(request.build()).await);
        let unsigned = ClientAssertion::new("basic-only", ISSUER).unsigned();
        let request = code_request(&layer, "basic-only")
            .await
            .client_assertion(&unsigned);
        refused(layer.check(request.build()).await);
        // A client without a registered method keeps both secret forms.
        for request in [
            code_request(&layer, "legacy")
                .await
                .client_secret_post("legacy", "s3cret"),
            code_request(&layer, "legacy")
                .await
                .client_secret_basic("legacy", "s3cret"),
        ] {
            forwarded(layer.check(request.build()).await);
        }
    }
}

#[tokio::test]
async fn an_assertion_with_a_secret_is_two_methods() {
    let layer = layer(Dialect::Rfc6749);
    let assertion = ClientAssertion::new("keyed", ISSUER).sign(&TestKey::es256());
    let request = code_request(&layer, "keyed")
        .await
        .client_secret_basic("keyed", "x")
        .client_assertion(&assertion);
    rejected(
        layer.check(request.build()).await,
        ErrorCode::InvalidRequest,
    );
    // The type without the assertion (or another type) is no assertion.
    let request = code_request(&layer, "keyed").await.param(
        "client_assertion_type",
        tokengate::testing::jose::ASSERTION_TYPE,
    );
    rejected(
        layer.check(request.build()).await,
        ErrorCode::InvalidRequest,
    );
    let request = code_request(&layer, "keyed")
        .await
        .param("client_assertion_type", "urn:example:saml")
        .param("client_assertion", &assertion);
    rejected(layer.check(request.build()).await, ErrorCode::InvalidClient);
}

#[tokio::test]
async fn an_assertion_is_single_use_and_its_replay_is_not_a_guess() {
    let (store, clock) = fixture(clients());
    let layer = TokenGateLayer::builder()
        .store(store)
        .clock(clock)
        .issuer(ISSUER)
        .lockout(Some(tokengate::lockout::Lockout::new(
            2,
            Duration::from_secs(60),
        )))
        .build();
    let assertion = ClientAssertion::new("keyed", ISSUER).sign(&TestKey::es256());
    let request = code_request(&layer, "keyed")
        .await
        .client_assertion(&assertion);
    forwarded(layer.check(request.build()).await);
    // Replayed three times: refused each time, and never locked out, since
    // the sender held a valid assertion.
    for _ in 0..3 {
        let request = code_request(&layer, "keyed")
            .await
            .client_assertion(&assertion);
        rejected(layer.check(request.build()).await, ErrorCode::InvalidClient);
    }
    // Wrong keys are guesses: two lock the client out for this peer.
    for _ in 0..2 {
        let forged = ClientAssertion::new("keyed", ISSUER).sign(&TestKey::es256_other());
        let request = code_request(&layer, "keyed")
            .await
            .client_assertion(&forged);
        rejected(layer.check(request.build()).await, ErrorCode::InvalidClient);
    }
    let fresh = ClientAssertion::new("keyed", ISSUER).sign(&TestKey::es256());
    let request = code_request(&layer, "keyed").await.client_assertion(&fresh);
    rejected(
        layer.check(request.build()).await,
        ErrorCode::TemporarilyUnavailable,
    );
}

#[tokio::test]
async fn an_unknown_client_and_a_foreign_key_answer_alike() {
    for dialect in DIALECTS {
        let layer = layer(dialect);
        let unknown = ClientAssertion::new("nobody", ISSUER).sign(&TestKey::es256());
        let request = code_request(&layer, "keyed")
            .await
            .client_assertion(&unknown);
        let a = rejected(layer.check(request.build()).await, bad_client(dialect));
        let foreign = ClientAssertion::new("keyed", ISSUER).sign(&TestKey::es256_other());
        let request = code_request(&layer, "keyed")
            .await
            .client_assertion(&foreign);
        let b = rejected(layer.check(request.build()).await, bad_client(dialect));
        assert_eq!(a, b);
    }
}

#[tokio::test]
async fn without_an_issuer_no_assertion_passes_and_dpop_is_not_served() {
    let (store, clock) = fixture(clients());
    let layer = TokenGateLayer::builder()
        .client_store(store.clone())
        .code_store(store)
        .clock(clock)
        .build();
    let assertion = ClientAssertion::new("keyed", ISSUER).sign(&TestKey::es256());
    let request = code_request(&layer, "keyed")
        .await
        .client_assertion(&assertion);
    rejected(layer.check(request.build()).await, ErrorCode::InvalidClient);
    // A proof is ignored: the token is a bearer one.
    let proof = DpopProof::new("POST", TOKEN_URL).sign(&TestKey::es256());
    let request = code_request(&layer, "spa")
        .await
        .public_client("spa")
        .dpop(&proof);
    assert_eq!(
        forwarded(layer.check(request.build()).await).dpop_jkt(),
        None
    );
}

#[tokio::test]
async fn a_proof_gives_the_inner_service_its_key_thumbprint() {
    for dialect in DIALECTS {
        let layer = layer(dialect);
        for key in [TestKey::es256(), TestKey::ed25519(), TestKey::ps256()] {
            let proof = DpopProof::new("POST", TOKEN_URL).sign(&key);
            let request = code_request(&layer, "spa")
                .await
                .public_client("spa")
                .dpop(&proof);
            let grant = forwarded(layer.check(request.build()).await);
            assert_eq!(grant.dpop_jkt(), Some(key.thumbprint().as_str()));
            // The same proof again is a replay.
            let request = code_request(&layer, "spa")
                .await
                .public_client("spa")
                .dpop(&proof);
            rejected(
                layer.check(request.build()).await,
                ErrorCode::InvalidDpopProof,
            );
        }
    }
}

#[tokio::test]
async fn a_public_clients_refresh_token_is_bound_to_its_key() {
    let layer = layer(Dialect::Rfc6749);
    let key = TestKey::es256();
    let proof = DpopProof::new("POST", TOKEN_URL).sign(&key);
    let request = code_request(&layer, "spa")
        .await
        .public_client("spa")
        .dpop(&proof);
    let grant = forwarded(layer.check(request.build()).await);
    let token = layer.refresh_tokens().issue(&grant).await.unwrap();
    let refresh = |proof: Option<String>| {
        let mut request = TokenRequest::refresh_token(&token).public_client("spa");
        if let Some(proof) = proof {
            request = request.dpop(&proof);
        }
        request.build()
    };
    // Without a proof, or with another key: refused, and the token stays.
    let verdict = layer.check(refresh(None)).await;
    let rejection = rejected(verdict, ErrorCode::InvalidDpopProof);
    assert_eq!(rejection.status(), 400);
    let other = DpopProof::new("POST", TOKEN_URL).sign(&TestKey::es256_other());
    rejected(
        layer.check(refresh(Some(other))).await,
        ErrorCode::InvalidDpopProof,
    );
    // With its key: rotated, and the successor is bound as well.
    let proof = DpopProof::new("POST", TOKEN_URL).sign(&key);
    let grant = forwarded(layer.check(refresh(Some(proof))).await);
    assert_eq!(grant.dpop_jkt(), Some(key.thumbprint().as_str()));
    let successor = layer.refresh_tokens().issue(&grant).await.unwrap();
    let request = TokenRequest::refresh_token(&successor).public_client("spa");
    rejected(
        layer.check(request.build()).await,
        ErrorCode::InvalidDpopProof,
    );
}

/// A form POST to one of the gate's other endpoints.
fn post_to(path: &str, body: String) -> http::Request<String> {
    http::Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn a_bound_refresh_token_is_introspected_with_its_key_and_revoked_by_its_client() {
    let layer = layer(Dialect::GitHub);
    let key = TestKey::es256();
    let proof = DpopProof::new("POST", TOKEN_URL).sign(&key);
    let request = code_request(&layer, "spa")
        .await
        .public_client("spa")
        .dpop(&proof);
    let grant = forwarded(layer.check(request.build()).await);
    let token = layer.refresh_tokens().issue(&grant).await.unwrap();
    // A resource server authenticating with private_key_jwt; the assertion
    // names the issuer as its audience.
    let introspect = |token: &str| {
        let assertion = ClientAssertion::new("keyed-rs", ISSUER).sign(&TestKey::es256());
        post_to(
            "/login/oauth/introspect",
            format!(
                "token={token}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
            ),
        )
    };
    let service = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(|_: http::Request<_>| async {
            panic!("the gate answers for its own refresh tokens");
            #[allow(unreachable_code)]
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        }));
    let response = tower::ServiceExt::oneshot(service.clone(), introspect(&token))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["active"], true);
    assert_eq!(json["client_id"], "spa");
    assert_eq!(json["cnf"]["jkt"], key.thumbprint());
    // The public client revokes it by its id alone.
    let revoke = post_to(
        "/login/oauth/revoke",
        format!("token={token}&client_id=spa&token_type_hint=refresh_token"),
    );
    let response = tower::ServiceExt::oneshot(service.clone(), revoke)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Gone: the gate no longer knows it, so it would hand it on.
    match layer.check(introspect(&token)).await {
        Verdict::Handed(action) => assert_eq!(action.client().client_id(), "keyed-rs"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_code_bound_by_dpop_jkt_needs_that_key() {
    let layer = layer(Dialect::Rfc6749);
    let key = TestKey::ed25519();
    let mint = || async {
        let (verifier, challenge) = pkce_pair();
        let authorizer = layer.authorizer();
        let query = format!(
            "response_type=code&client_id=spa&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256&dpop_jkt={}",
            form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>(),
            key.thumbprint()
        );
        let request = authorizer.validate(&query).await.unwrap();
        assert_eq!(request.dpop_jkt(), Some(key.thumbprint().as_str()));
        let code = authorizer.approve(&request, "alice").await.unwrap();
        TokenRequest::authorization_code(code.code())
            .redirect_uri(CB)
            .code_verifier(&verifier)
            .public_client("spa")
    };
    rejected(
        layer.check(mint().await.build()).await,
        ErrorCode::InvalidDpopProof,
    );
    let other = DpopProof::new("POST", TOKEN_URL).sign(&TestKey::ed25519_other());
    rejected(
        layer.check(mint().await.dpop(&other).build()).await,
        ErrorCode::InvalidDpopProof,
    );
    let proof = DpopProof::new("POST", TOKEN_URL).sign(&key);
    let grant = forwarded(layer.check(mint().await.dpop(&proof).build()).await);
    assert_eq!(grant.dpop_jkt(), Some(key.thumbprint().as_str()));
    // A malformed dpop_jkt is refused at the authorization endpoint.
    let authorizer = layer.authorizer();
    let query = "response_type=code&client_id=spa&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&dpop_jkt=short";
    assert!(authorizer.validate(query).await.is_err());
}

#[tokio::test]
async fn a_client_registered_for_bound_tokens_needs_a_proof() {
    let layer = layer(Dialect::GitHub);
    let request = code_request(&layer, "bound-spa")
        .await
        .public_client("bound-spa");
    let rejection = rejected(
        layer.check(request.build()).await,
        ErrorCode::InvalidDpopProof,
    );
    // DPoP errors keep their own status in GitHub's dialect.
    assert_eq!(rejection.status(), 400);
    let proof = DpopProof::new("POST", TOKEN_URL).sign(&TestKey::es256());
    let request = code_request(&layer, "bound-spa")
        .await
        .public_client("bound-spa")
        .dpop(&proof);
    forwarded(layer.check(request.build()).await);
}

#[tokio::test]
async fn nonces_are_demanded_then_accepted() {
    let (store, clock) = fixture(clients());
    let layer = TokenGateLayer::builder()
        .store(store)
        .clock(clock.clone())
        .issuer(ISSUER)
        .dpop_nonces(Duration::from_secs(300))
        .build();
    let gate = tower::Layer::layer(
        &layer,
        service_fn(
            |request: Request<tokengate::RequestBody<String>>| async move {
                let grant = request
                    .extensions()
                    .get::<tokengate::ValidatedGrant>()
                    .cloned();
                Ok::<_, Infallible>(Response::new(
                    grant
                        .and_then(|g| g.dpop_jkt().map(str::to_owned))
                        .unwrap_or_default(),
                ))
            },
        ),
    );
    let key = TestKey::es256();
    let proof = DpopProof::new("POST", TOKEN_URL).sign(&key);
    let request = code_request(&layer, "spa")
        .await
        .public_client("spa")
        .dpop(&proof);
    let response = gate.clone().oneshot(request.build()).await.unwrap();
    assert_eq!(response.status(), 400);
    let nonce = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(nonce.len() >= 22, "{nonce}");
    let rejection = response.extensions().get::<tokengate::Rejection>().unwrap();
    assert_eq!(rejection.code(), ErrorCode::UseDpopNonce);
    // A wrong nonce is refused the same way; the right one passes.
    let stale = DpopProof::new("POST", TOKEN_URL)
        .nonce("made-up")
        .sign(&key);
    let request = code_request(&layer, "spa")
        .await
        .public_client("spa")
        .dpop(&stale);
    let response = gate.clone().oneshot(request.build()).await.unwrap();
    assert_eq!(response.headers()["dpop-nonce"], nonce.as_str());
    let proof = DpopProof::new("POST", TOKEN_URL).nonce(&nonce).sign(&key);
    let request = code_request(&layer, "spa")
        .await
        .public_client("spa")
        .dpop(&proof);
    let response = gate.clone().oneshot(request.build()).await.unwrap();
    assert_eq!(response.status(), 200);
    // The nonce outlives its own period by one, then is refused.
    clock.advance(Duration::from_secs(300));
    let proof = DpopProof::new("POST", TOKEN_URL)
        .nonce(&nonce)
        .issued_at(clock_now(&clock))
        .sign(&key);
    let request = code_request(&layer, "spa")
        .await
        .public_client("spa")
        .dpop(&proof);
    assert_eq!(
        gate.clone()
            .oneshot(request.build())
            .await
            .unwrap()
            .status(),
        200
    );
    clock.advance(Duration::from_secs(600));
    let proof = DpopProof::new("POST", TOKEN_URL)
        .nonce(&nonce)
        .issued_at(clock_now(&clock))
        .sign(&key);
    let request = code_request(&layer, "spa")
        .await
        .public_client("spa")
        .dpop(&proof);
    let response = gate.oneshot(request.build()).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_ne!(response.headers()["dpop-nonce"], nonce.as_str());
}

fn clock_now(clock: &tokengate::clock::ManualClock) -> std::time::SystemTime {
    use tokengate::clock::Clock;
    clock.now()
}

#[test]
fn secrets_never_show_in_debug() {
    let client = Client::confidential("hmac").with_jwt_secret("TOPSECRET-hmac");
    assert!(!format!("{client:?}").contains("TOPSECRET"));
    let record = tokengate::client::ClientRecord::from(&client);
    assert!(!format!("{record:?}").contains("TOPSECRET"));
    // The record keeps it (documented), and reads back.
    assert_eq!(record.jwt_secret.as_deref(), Some("TOPSECRET-hmac"));
    let back = Client::try_from(record).unwrap();
    assert_eq!(back.auth_method(), Some(AuthMethod::ClientSecretJwt));
}

/// The README's example, as it is printed there.
#[tokio::test]
async fn the_readme_example_works() {
    use tokengate::GrantType;
    let key = TestKey::es256();
    let (store, clock) = fixture([Client::confidential("svc")
        .with_jwks(Jwks::from_json(&TestKey::jwks(&[&key])).unwrap())
        .with_grant_types([GrantType::ClientCredentials])]);
    let layer = TokenGateLayer::builder()
        .store(store)
        .clock(clock)
        .issuer("https://auth.example.com")
        .build();
    let assertion = ClientAssertion::new("svc", "https://auth.example.com").sign(&key);
    let request = TokenRequest::client_credentials()
        .client_assertion(&assertion)
        .build();
    assert!(matches!(layer.check(request).await, Verdict::Forwarded(_)));
}

/// GitHub's device flow takes a confidential client's id alone, but not
/// from a client registered for a method: it is held to that method.
#[tokio::test]
async fn a_registered_method_outranks_githubs_id_only_device_rule() {
    let (store, clock) = fixture([
        Client::confidential("keyed-device")
            .with_jwks(jwks(&[&TestKey::es256()]))
            .with_device_flow(true),
        Client::confidential("legacy-device")
            .with_secret("s3cret")
            .with_device_flow(true),
    ]);
    let layer = TokenGateLayer::builder()
        .store(store)
        .clock(clock)
        .dialect(Dialect::GitHub)
        .issuer(ISSUER)
        .build();
    let legacy = TokenRequest::device_authorization("legacy-device").build();
    assert!(matches!(layer.check(legacy).await, Verdict::NotChecked));
    let bare = TokenRequest::device_authorization("keyed-device").build();
    rejected(
        layer.check(bare).await,
        ErrorCode::IncorrectClientCredentials,
    );
    let assertion = ClientAssertion::new("keyed-device", ISSUER).sign(&TestKey::es256());
    let signed = TokenRequest::device_authorization("keyed-device")
        .client_assertion(&assertion)
        .build();
    assert!(matches!(layer.check(signed).await, Verdict::NotChecked));
}

/// A proof's `jwk` that names its own `alg` is used with that one only.
#[tokio::test]
async fn a_proof_keys_own_alg_must_match_the_header() {
    let layer = layer(Dialect::Rfc6749);
    let key = TestKey::ps256();
    let mut jwk = key.public_jwk();
    jwk["alg"] = "RS256".into();
    let proof = DpopProof::new("POST", TOKEN_URL).jwk(jwk).sign(&key);
    let request = code_request(&layer, "spa")
        .await
        .public_client("spa")
        .dpop(&proof);
    rejected(
        layer.check(request.build()).await,
        ErrorCode::InvalidDpopProof,
    );
    let mut jwk = key.public_jwk();
    jwk["alg"] = "PS256".into();
    let proof = DpopProof::new("POST", TOKEN_URL).jwk(jwk).sign(&key);
    let request = code_request(&layer, "spa")
        .await
        .public_client("spa")
        .dpop(&proof);
    forwarded(layer.check(request.build()).await);
}
