//! Hostile signed requests: DPoP proofs (RFC 9449) and client assertions
//! (RFC 7523) built to be refused, each sent through the layer in both
//! dialects to an inner service that panics if it runs. Every refusal is
//! checked whole: status, headers and the parsed body (`invalid_dpop_proof`
//! and `use_dpop_nonce` are 400 in both dialects; a failed assertion is
//! `invalid_client` 401, or GitHub's `incorrect_client_credentials`).
//! Where a rule has an edge (sizes, times, lengths), the last value
//! accepted is sent too, to an inner service that answers, so that each
//! refusal is known to come from the rule under test.
//!
//! Times are explicit, from the fixture's manual clock: the defaults are an
//! assertion lifetime of 300 s, a leeway of 30 s and a proof window of 60 s.

mod common;

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use common::Answer;
use http::{Request, Response};
use serde_json::{Value, json};
use tokengate::{
    Builder, Client, Dialect, MemoryStore, RequestBody, TokenGateLayer, ValidatedGrant,
    client::Jwks,
    clock::{Clock, ManualClock},
    lockout::Lockout,
    testing::{
        TokenRequest, fixture,
        jose::{ClientAssertion, DpopProof, TestKey},
        mint_code, pkce_pair,
    },
};
use tower::{Layer, ServiceExt, service_fn};

const ISSUER: &str = "https://auth.example.com";
/// The token endpoint's URL: the issuer and the default token path.
const HTU: &str = "https://auth.example.com/login/oauth/access_token";
const CB: &str = "https://app.example/cb";
const DIALECTS: [Dialect; 2] = [Dialect::Rfc6749, Dialect::GitHub];

/// The defaults of the builder.
const LIFETIME: i64 = 300;
const LEEWAY: i64 = 30;
const WINDOW: i64 = 60;

/// How a request must be refused.
#[derive(Debug, Clone, Copy)]
enum Refused {
    /// Client authentication failed.
    BadClient,
    /// `invalid_dpop_proof`, its description containing the text.
    Proof(&'static str),
    /// `use_dpop_nonce`, with a `DPoP-Nonce` header.
    Nonce,
}

/// A layer over the fixture's store and clock, in one dialect, with the
/// lockout off (these tests send many failures from one peer; the replay
/// test turns it on).
struct Gate {
    layer: TokenGateLayer,
    clock: ManualClock,
    dialect: Dialect,
}

type Stores = Builder<MemoryStore, MemoryStore, MemoryStore, MemoryStore>;

impl Gate {
    fn new(dialect: Dialect) -> Self {
        Self::with(dialect, |builder| builder)
    }

    fn with(dialect: Dialect, configure: impl FnOnce(Stores) -> Stores) -> Self {
        let jwks = Jwks::from_json(&TestKey::jwks(&[&TestKey::es256(), &TestKey::ed25519()]))
            .expect("the test keys are public keys");
        let (store, clock) = fixture([
            Client::confidential("keyed")
                .with_jwks(jwks)
                .with_redirect_uri(CB),
            Client::confidential("other")
                .with_jwks(Jwks::from_json(&TestKey::jwks(&[&TestKey::es256_other()])).unwrap())
                .with_redirect_uri(CB),
            Client::public("spa").with_redirect_uri(CB),
        ]);
        let builder = TokenGateLayer::builder()
            .store(store)
            .clock(clock.clone())
            .dialect(dialect)
            .issuer(ISSUER)
            .lockout(None);
        Self {
            layer: configure(builder).build(),
            clock,
            dialect,
        }
    }

    /// The clock's time moved by `seconds`.
    fn at(&self, seconds: i64) -> SystemTime {
        let now = self.clock.now();
        let by = Duration::from_secs(seconds.unsigned_abs());
        if seconds < 0 { now - by } else { now + by }
    }

    /// The keyed client's assertion for the token endpoint: issued now,
    /// expiring in 60 s.
    fn assertion(&self) -> ClientAssertion {
        ClientAssertion::new("keyed", HTU)
            .issued_at(self.at(0))
            .expires_at(Some(self.at(60)))
    }

    /// A proof for a POST to the token endpoint, issued now.
    fn proof(&self) -> DpopProof {
        DpopProof::new("POST", HTU).issued_at(self.at(0))
    }

    /// A request that redeems a fresh code of `client` (no client
    /// authentication yet).
    async fn code(&self, client: &str) -> TokenRequest {
        let (verifier, challenge) = pkce_pair();
        let code = mint_code(&self.layer, client, CB, &challenge, "alice").await;
        TokenRequest::authorization_code(&code)
            .redirect_uri(CB)
            .code_verifier(&verifier)
    }

    /// The keyed client's exchange, authenticated by `assertion`.
    async fn with_assertion(&self, assertion: &str) -> Request<String> {
        self.code("keyed").await.client_assertion(assertion).build()
    }

    /// The public client's exchange, with `proof` as its `DPoP` header.
    async fn with_proof(&self, proof: &str) -> Request<String> {
        self.code("spa")
            .await
            .public_client("spa")
            .dpop(proof)
            .build()
    }

    /// Sends `request` to an inner service that panics, and checks the
    /// refusal whole.
    async fn refuses(&self, request: Request<String>, how: Refused) -> Answer {
        let service = self
            .layer
            .layer(service_fn(|_: Request<RequestBody<String>>| async move {
                panic!("the inner service ran on a rejection path");
                #[allow(unreachable_code)]
                Ok::<_, Infallible>(Response::new(String::new()))
            }));
        let answer = Answer::read(service.oneshot(request).await.unwrap()).await;
        check_refusal(&answer, self.dialect, how);
        answer
    }

    /// Sends `request` to an inner service that answers 200; the grant it
    /// was handed.
    async fn passes(&self, request: Request<String>) -> ValidatedGrant {
        let seen = Arc::new(Mutex::new(None));
        let record = Arc::clone(&seen);
        let service = self
            .layer
            .layer(service_fn(move |request: Request<RequestBody<String>>| {
                let record = Arc::clone(&record);
                async move {
                    *record.lock().unwrap() = request.extensions().get::<ValidatedGrant>().cloned();
                    Ok::<_, Infallible>(Response::new("inner".to_owned()))
                }
            }));
        let answer = Answer::read(service.oneshot(request).await.unwrap()).await;
        assert_eq!(answer.status, 200, "{:?}: {}", self.dialect, answer.text());
        assert_eq!(answer.text(), "inner");
        assert!(answer.rejection.is_none());
        seen.lock()
            .unwrap()
            .take()
            .expect("the inner service ran with a grant")
    }
}

/// The body of an error answer as name-value pairs, in either format.
fn fields(answer: &Answer) -> HashMap<String, String> {
    match answer.header("content-type") {
        Some("application/json") => {
            let Value::Object(body) = answer.json() else {
                panic!("not a JSON object: {}", answer.text());
            };
            body.into_iter()
                .map(|(name, value)| {
                    let value = value.as_str().expect("a string member").to_owned();
                    (name, value)
                })
                .collect()
        }
        Some("application/x-www-form-urlencoded; charset=utf-8") => answer.form(),
        other => panic!("content type {other:?}: {}", answer.text()),
    }
}

/// Status, headers and body of a refusal, in `dialect`.
#[track_caller]
fn check_refusal(answer: &Answer, dialect: Dialect, how: Refused) {
    let github = dialect == Dialect::GitHub;
    let (status, error) = match how {
        Refused::BadClient if github => (200, "incorrect_client_credentials"),
        Refused::BadClient => (401, "invalid_client"),
        Refused::Proof(_) => (400, "invalid_dpop_proof"),
        Refused::Nonce => (400, "use_dpop_nonce"),
    };
    assert_eq!(
        answer.status,
        status,
        "{dialect:?} {how:?}: {}",
        answer.text()
    );
    let content_type = if github {
        "application/x-www-form-urlencoded; charset=utf-8"
    } else {
        "application/json"
    };
    assert_eq!(answer.header("content-type"), Some(content_type));
    answer.assert_no_store();
    let body = fields(answer);
    assert_eq!(
        body.get("error").map(String::as_str),
        Some(error),
        "{body:?}"
    );
    let description = &body["error_description"];
    assert!(!description.is_empty());
    if let Refused::Proof(why) = how {
        assert!(
            description.contains(why),
            "{description:?} says not {why:?}"
        );
    }
    let rejection = answer.rejection.as_ref().expect("the rejection");
    assert_eq!(rejection.error(), error);
    assert_eq!(rejection.status(), status);
    // A 401 challenges Basic (RFC 6749 §5.2); nothing else challenges.
    let challenge = (status == 401).then_some("Basic realm=\"token\"");
    assert_eq!(answer.header("www-authenticate"), challenge);
    match how {
        Refused::Nonce => {
            let nonce = answer.header("dpop-nonce").expect("a DPoP-Nonce header");
            assert!(nonce.len() >= 22, "{nonce}");
        }
        _ => assert_eq!(answer.header("dpop-nonce"), None),
    }
}

/// The longest token `sized` makes within 8 KiB, and the shortest past it
/// (base64 grows by 4 characters per 3 bytes, so the first may fall a
/// character or two short of 8,192, never more).
fn around_8_kib(sized: impl Fn(usize) -> String) -> (String, String) {
    // Each 3 bytes of claims take 4 characters.
    let mut pad = (8 * 1024 - sized(0).len()) * 3 / 4;
    while sized(pad).len() > 8 * 1024 {
        pad -= 1;
    }
    while sized(pad + 1).len() <= 8 * 1024 {
        pad += 1;
    }
    let (longest, over) = (sized(pad), sized(pad + 1));
    assert!(longest.len() >= 8 * 1024 - 2, "{}", longest.len());
    assert!(over.len() > 8 * 1024 && over.len() <= 8 * 1024 + 2);
    (longest, over)
}

/// The public JWK of `key` as a proof carries it (no `kid`).
fn header_jwk(key: &TestKey) -> Value {
    let mut jwk = key.public_jwk();
    jwk.as_object_mut().unwrap().remove("kid");
    jwk
}

/// `token` with its `index`th part (0: header, 1: payload, 2: signature)
/// changed by `edit`.
fn edit_part(token: &str, index: usize, edit: impl FnOnce(&str) -> String) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[index] = edit(&parts[index]);
    parts.join(".")
}

/// A token from `make` (given a jti) whose payload and signature both
/// read otherwise in the standard alphabet: the payload holds a `-` and a
/// `_`, the signature one of them. It is made again, with another jti,
/// until they do (about one ES256 signature in fifteen has neither; a test
/// that took the first token passed it through unchanged that often).
fn changed_by_the_standard_alphabet(make: impl Fn(&str) -> String) -> String {
    (0..100)
        .map(|i| make(&format!(">>>???-{i}")))
        .find(|token| {
            let parts: Vec<&str> = token.split('.').collect();
            parts[1].contains('-') && parts[1].contains('_') && parts[2].contains(['-', '_'])
        })
        .expect("a signature with a - or a _ within 100 tries")
}

/// The same bytes as `part`, in standard base64 (`+` and `/`).
fn standard_alphabet(part: &str) -> String {
    let bytes = URL_SAFE_NO_PAD.decode(part).unwrap();
    STANDARD.encode(bytes).trim_end_matches('=').to_owned()
}

// ---------------------------------------------------------------------------
// DPoP proofs
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_oversized_proof_is_refused_before_it_is_read() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        // The longest that passes, then one byte more.
        let sized = |pad: usize| gate.proof().claim("pad", json!("x".repeat(pad))).sign(&key);
        let (longest, over) = around_8_kib(sized);
        gate.passes(gate.with_proof(&longest).await).await;
        let why = Refused::Proof("longer than 8 KiB");
        gate.refuses(gate.with_proof(&over).await, why).await;
        let huge = sized(64 * 1024);
        gate.refuses(gate.with_proof(&huge).await, why).await;
    }
}

#[tokio::test]
async fn a_proof_in_anything_but_base64url_without_padding_is_refused() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        let proof = changed_by_the_standard_alphabet(|jti| gate.proof().jti(jti).sign(&key));
        let why = Refused::Proof("not base64url without padding");
        let cases = [
            edit_part(&proof, 0, |header| format!("{header}=")),
            edit_part(&proof, 0, |header| format!("{header}==")),
            edit_part(&proof, 1, standard_alphabet),
            edit_part(&proof, 1, |payload| format!("{payload} ")),
        ];
        for bad in cases {
            gate.refuses(gate.with_proof(&bad).await, why).await;
        }
        // The signature is decoded by the JOSE crate, as strictly.
        let why = Refused::Proof("signature does not verify");
        for bad in [
            edit_part(&proof, 2, |signature| format!("{signature}=")),
            edit_part(&proof, 2, standard_alphabet),
        ] {
            gate.refuses(gate.with_proof(&bad).await, why).await;
        }
        gate.passes(gate.with_proof(&proof).await).await;
    }
}

#[tokio::test]
async fn a_proof_must_be_typed_dpop_jwt_exactly() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::ed25519();
        let why = Refused::Proof("typ is not dpop+jwt");
        for proof in [
            gate.proof().header("typ", json!("JWT")).sign(&key),
            gate.proof().without_header("typ").sign(&key),
            gate.proof().header("typ", json!("DPOP+JWT")).sign(&key),
            gate.proof()
                .header("typ", json!("application/dpop+jwt"))
                .sign(&key),
            gate.proof().header("typ", Value::Null).sign(&key),
        ] {
            gate.refuses(gate.with_proof(&proof).await, why).await;
        }
    }
}

#[tokio::test]
async fn an_unsigned_or_symmetric_proof_is_refused() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        let why = Refused::Proof("alg is not an asymmetric one");
        // alg none, empty signature.
        let signed = gate.proof().header("alg", json!("none")).sign(&key);
        let unsigned = format!("{}.", signed.rsplit_once('.').unwrap().0);
        gate.refuses(gate.with_proof(&unsigned).await, why).await;
        // HS256 keyed by the secret its own jwk carries.
        let symmetric = gate.proof().sign_hs256("shared secret");
        gate.refuses(gate.with_proof(&symmetric).await, why).await;
        // HS256 keyed by the public JWK it names (the algorithm confusion).
        let jwk = header_jwk(&key);
        let confused = gate.proof().jwk(jwk.clone()).sign_hs256(&jwk.to_string());
        gate.refuses(gate.with_proof(&confused).await, why).await;
    }
}

#[tokio::test]
async fn a_proof_that_publishes_its_private_key_is_refused() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        for key in [TestKey::es256(), TestKey::ed25519(), TestKey::rs256()] {
            let proof = gate.proof().jwk(key.private_jwk()).sign(&key);
            let why = Refused::Proof("private or symmetric key member");
            gate.refuses(gate.with_proof(&proof).await, why).await;
        }
    }
}

#[tokio::test]
async fn a_proof_with_crit_is_refused_whatever_its_value() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        let why = Refused::Proof("crit");
        for crit in [json!(["b64"]), json!(["exp"]), json!([]), Value::Null] {
            let proof = gate.proof().header("crit", crit).sign(&key);
            gate.refuses(gate.with_proof(&proof).await, why).await;
        }
    }
}

#[tokio::test]
async fn a_proof_that_names_a_member_twice_is_refused() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        let jwk = header_jwk(&key);
        let iat = tokengate_seconds(gate.at(0));
        let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#);
        let claims = format!(r#"{{"jti":"j1","htm":"POST","htu":"{HTU}","iat":{iat}}}"#);
        // Read once, as written: it passes.
        gate.passes(gate.with_proof(&key.sign_raw(&header, &claims)).await)
            .await;
        let why = Refused::Proof("repeats a member");
        let twice_in_header = [
            format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk},"typ":"dpop+jwt"}}"#),
            format!(r#"{{"typ":"JWT","alg":"ES256","jwk":{jwk},"typ":"dpop+jwt"}}"#),
            format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk},"alg":"none"}}"#),
            // Inside the key, and spelled with an escape.
            format!(
                r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{}}}"#,
                jwk.to_string().replacen('{', r#"{"kty":"OKP","#, 1)
            ),
            format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk},"\u0074yp":"JWT"}}"#),
        ];
        for header in twice_in_header {
            let proof = key.sign_raw(&header, &claims);
            gate.refuses(gate.with_proof(&proof).await, why).await;
        }
        let twice_in_claims = [
            format!(r#"{{"jti":"j2","htm":"GET","htu":"{HTU}","iat":{iat},"htm":"POST"}}"#),
            format!(
                r#"{{"jti":"j3","htm":"POST","htu":"https://evil.example/","iat":{iat},"htu":"{HTU}"}}"#
            ),
            format!(r#"{{"jti":"j4","jti":"j5","htm":"POST","htu":"{HTU}","iat":{iat}}}"#),
        ];
        for claims in twice_in_claims {
            let proof = key.sign_raw(&header, &claims);
            gate.refuses(gate.with_proof(&proof).await, why).await;
        }
    }
}

#[tokio::test]
async fn two_dpop_headers_are_refused() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        let (a, b) = (gate.proof().sign(&key), gate.proof().sign(&key));
        let request = gate
            .code("spa")
            .await
            .public_client("spa")
            .dpop(&a)
            .dpop(&b)
            .build();
        let why = Refused::Proof("more than one DPoP header");
        gate.refuses(request, why).await;
        // The same proof twice too.
        let request = gate
            .code("spa")
            .await
            .public_client("spa")
            .dpop(&a)
            .dpop(&a)
            .build();
        gate.refuses(request, why).await;
        // Neither was used up: each passes alone.
        gate.passes(gate.with_proof(&a).await).await;
        gate.passes(gate.with_proof(&b).await).await;
    }
}

#[tokio::test]
async fn a_proofs_iat_is_accepted_exactly_within_the_window() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::ed25519();
        let proof = |seconds: i64| gate.proof().issued_at(gate.at(seconds)).sign(&key);
        // The edges: as old as the window, as early as the leeway.
        for seconds in [-WINDOW, LEEWAY, 0] {
            gate.passes(gate.with_proof(&proof(seconds)).await).await;
        }
        let why = Refused::Proof("iat is outside the accepted window");
        for seconds in [-WINDOW - 1, LEEWAY + 1, -3600, 3600] {
            gate.refuses(gate.with_proof(&proof(seconds)).await, why)
                .await;
        }
        let why = Refused::Proof("no iat");
        let proof = gate.proof().without_claim("iat").sign(&key);
        gate.refuses(gate.with_proof(&proof).await, why).await;
        let why = Refused::Proof("time claim is not a number");
        let proof = gate.proof().claim("iat", json!("now")).sign(&key);
        gate.refuses(gate.with_proof(&proof).await, why).await;
    }
}

#[tokio::test]
async fn a_proofs_htu_is_compared_without_query_and_fragment() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        let proof = |htu: &str| DpopProof::new("POST", htu).issued_at(gate.at(0)).sign(&key);
        for htu in [
            format!("{HTU}?client=spa"),
            format!("{HTU}#top"),
            format!("{HTU}?"),
        ] {
            gate.passes(gate.with_proof(&proof(&htu)).await).await;
        }
        let why = Refused::Proof("htu is not the token endpoint URL");
        for htu in [
            "https://auth.example.com/token",
            "https://auth.example.com/login/oauth/access_token/",
            "https://auth.example.com/login/oauth/access_token/x",
            "https://auth.example.com/login/oauth/access_tokenx?",
            "http://auth.example.com/login/oauth/access_token",
            "https://evil.example/login/oauth/access_token",
            "https://auth.example.com:443/login/oauth/access_token",
            "/login/oauth/access_token",
        ] {
            gate.refuses(gate.with_proof(&proof(htu)).await, why).await;
        }
    }
}

#[tokio::test]
async fn a_proof_for_another_method_is_refused() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        let why = Refused::Proof("htm is not POST");
        for htm in ["GET", "post", "PUT"] {
            let proof = DpopProof::new(htm, HTU).issued_at(gate.at(0)).sign(&key);
            gate.refuses(gate.with_proof(&proof).await, why).await;
        }
        let proof = gate.proof().without_claim("htm").sign(&key);
        gate.refuses(gate.with_proof(&proof).await, why).await;
    }
}

#[tokio::test]
async fn a_proof_is_used_once() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        let proof = gate.proof().sign(&key);
        let grant = gate.passes(gate.with_proof(&proof).await).await;
        assert_eq!(grant.dpop_jkt(), Some(key.thumbprint().as_str()));
        let why = Refused::Proof("used before");
        gate.refuses(gate.with_proof(&proof).await, why).await;
        // Another proof with the same jti and key is the same proof.
        let jti = gate.proof().jti("once").sign(&key);
        gate.passes(gate.with_proof(&jti).await).await;
        let again = gate.proof().jti("once").claim("x", json!(1)).sign(&key);
        gate.refuses(gate.with_proof(&again).await, why).await;
        // Another key may use the same jti.
        let other = gate.proof().jti("once").sign(&TestKey::ed25519());
        gate.passes(gate.with_proof(&other).await).await;
    }
}

#[tokio::test]
async fn a_proofs_jti_is_1_to_256_bytes() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        let proof = |jti: &str| gate.proof().jti(jti).sign(&key);
        gate.passes(gate.with_proof(&proof(&"j".repeat(256))).await)
            .await;
        let why = Refused::Proof("jti of 1 to 256 bytes");
        for jti in ["j".repeat(257), String::new()] {
            gate.refuses(gate.with_proof(&proof(&jti)).await, why).await;
        }
        // 256 characters of two bytes each are 512 bytes.
        gate.refuses(gate.with_proof(&proof(&"é".repeat(129))).await, why)
            .await;
        let proof = gate.proof().without_claim("jti").sign(&key);
        gate.refuses(gate.with_proof(&proof).await, why).await;
    }
}

#[tokio::test]
async fn a_proof_without_the_servers_nonce_gets_one() {
    for dialect in DIALECTS {
        let gate = Gate::with(dialect, |builder| {
            builder.dpop_nonces(Duration::from_secs(300))
        });
        let key = TestKey::es256();
        let answer = gate
            .refuses(
                gate.with_proof(&gate.proof().sign(&key)).await,
                Refused::Nonce,
            )
            .await;
        let nonce = answer.header("dpop-nonce").unwrap().to_owned();
        let stale = gate.proof().nonce("not-the-nonce").sign(&key);
        let answer = gate
            .refuses(gate.with_proof(&stale).await, Refused::Nonce)
            .await;
        assert_eq!(answer.header("dpop-nonce"), Some(nonce.as_str()));
        // A bad proof is refused as bad, nonce or not.
        let bad = gate
            .proof()
            .nonce(&nonce)
            .header("typ", json!("JWT"))
            .sign(&key);
        let why = Refused::Proof("typ is not dpop+jwt");
        gate.refuses(gate.with_proof(&bad).await, why).await;
        let good = gate.proof().nonce(&nonce).sign(&key);
        gate.passes(gate.with_proof(&good).await).await;
    }
}

// ---------------------------------------------------------------------------
// Client assertions
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_oversized_assertion_is_refused() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        let sized = |pad: usize| {
            gate.assertion()
                .claim("pad", json!("x".repeat(pad)))
                .sign(&key)
        };
        let (longest, over) = around_8_kib(sized);
        gate.passes(gate.with_assertion(&longest).await).await;
        gate.refuses(gate.with_assertion(&over).await, Refused::BadClient)
            .await;
    }
}

#[tokio::test]
async fn an_assertion_in_anything_but_base64url_without_padding_is_refused() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        let assertion =
            changed_by_the_standard_alphabet(|jti| gate.assertion().jti(jti).sign(&key));
        for bad in [
            edit_part(&assertion, 0, |header| format!("{header}=")),
            edit_part(&assertion, 1, standard_alphabet),
            edit_part(&assertion, 2, |signature| format!("{signature}=")),
            edit_part(&assertion, 2, standard_alphabet),
        ] {
            gate.refuses(gate.with_assertion(&bad).await, Refused::BadClient)
                .await;
        }
        gate.passes(gate.with_assertion(&assertion).await).await;
    }
}

#[tokio::test]
async fn an_unsigned_or_hs256_assertion_of_a_key_client_is_refused() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let refused = Refused::BadClient;
        let unsigned = gate.assertion().unsigned();
        gate.refuses(gate.with_assertion(&unsigned).await, refused)
            .await;
        // alg none with a real signature left on.
        let signed = gate
            .assertion()
            .header("alg", json!("none"))
            .sign(&TestKey::es256());
        gate.refuses(gate.with_assertion(&signed).await, refused)
            .await;
        // HS256 keyed by the client's public JWK, as the server would read
        // it (registered, and without its kid), and by the raw x.
        let jwk = TestKey::es256().public_jwk();
        let x = jwk["x"].as_str().unwrap().to_owned();
        for secret in [
            jwk.to_string(),
            header_jwk(&TestKey::es256()).to_string(),
            x,
        ] {
            let confused = gate.assertion().sign_hs256(&secret);
            gate.refuses(gate.with_assertion(&confused).await, refused)
                .await;
            let named = gate
                .assertion()
                .header("kid", json!("es256-1"))
                .sign_hs256(&secret);
            gate.refuses(gate.with_assertion(&named).await, refused)
                .await;
        }
    }
}

#[tokio::test]
async fn an_assertion_with_crit_is_refused() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        for crit in [json!(["exp"]), json!([]), Value::Null] {
            let assertion = gate
                .assertion()
                .header("crit", crit)
                .sign(&TestKey::es256());
            gate.refuses(gate.with_assertion(&assertion).await, Refused::BadClient)
                .await;
        }
    }
}

#[tokio::test]
async fn an_assertion_that_names_a_member_twice_is_refused() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        let (iat, exp) = (
            tokengate_seconds(gate.at(0)),
            tokengate_seconds(gate.at(60)),
        );
        let header = r#"{"alg":"ES256","kid":"es256-1"}"#;
        let claims = |jti: &str, extra: &str| {
            format!(
                r#"{{"iss":"keyed","sub":"keyed","aud":"{HTU}","iat":{iat},"exp":{exp},"jti":"{jti}"{extra}}}"#
            )
        };
        gate.passes(
            gate.with_assertion(&key.sign_raw(header, &claims("a1", "")))
                .await,
        )
        .await;
        for header in [
            r#"{"alg":"ES256","kid":"es256-1","alg":"ES256"}"#,
            r#"{"alg":"HS256","kid":"es256-1","alg":"ES256"}"#,
            r#"{"alg":"ES256","kid":"nobody","kid":"es256-1"}"#,
        ] {
            let assertion = key.sign_raw(header, &claims("a2", ""));
            gate.refuses(gate.with_assertion(&assertion).await, Refused::BadClient)
                .await;
        }
        for (jti, extra) in [
            ("a3", r#","sub":"keyed""#),
            ("a4", r#","aud":"https://elsewhere.example""#),
            ("a5", &format!(r#","exp":{}"#, exp + 86_400)),
            ("a6", r#","jti":"a6""#),
            ("a7", r#","nested":{"a":1,"a":1}"#),
        ] {
            let assertion = key.sign_raw(header, &claims(jti, extra));
            gate.refuses(gate.with_assertion(&assertion).await, Refused::BadClient)
                .await;
        }
    }
}

#[tokio::test]
async fn an_assertions_times_are_checked_at_each_edge() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::ed25519();
        let at = |seconds| gate.at(seconds);
        let accepted = [
            // iat as early as the leeway allows.
            gate.assertion()
                .issued_at(at(LEEWAY))
                .expires_at(Some(at(LEEWAY + 60))),
            // exp just inside the leeway (exp + leeway must be after now).
            gate.assertion()
                .issued_at(at(-60))
                .expires_at(Some(at(-LEEWAY + 1))),
            // exp as far as the lifetime and the leeway allow (no iat).
            gate.assertion()
                .without_claim("iat")
                .expires_at(Some(at(LIFETIME + LEEWAY))),
            // iat to exp: the whole lifetime.
            gate.assertion()
                .issued_at(at(-LEEWAY))
                .expires_at(Some(at(LIFETIME - LEEWAY))),
            // nbf as early as the leeway allows.
            gate.assertion().not_before(at(LEEWAY)),
        ];
        for assertion in accepted {
            gate.passes(gate.with_assertion(&assertion.sign(&key)).await)
                .await;
        }
        let refused = [
            gate.assertion()
                .issued_at(at(LEEWAY + 1))
                .expires_at(Some(at(LEEWAY + 61))),
            gate.assertion()
                .issued_at(at(-60))
                .expires_at(Some(at(-LEEWAY))),
            gate.assertion()
                .without_claim("iat")
                .expires_at(Some(at(LIFETIME + LEEWAY + 1))),
            // exp too far even when iat is far too.
            gate.assertion()
                .issued_at(at(LEEWAY))
                .expires_at(Some(at(LIFETIME + LEEWAY + 1))),
            gate.assertion()
                .issued_at(at(-LEEWAY - 1))
                .expires_at(Some(at(LIFETIME - LEEWAY))),
            gate.assertion().not_before(at(LEEWAY + 1)),
            // No exp at all.
            gate.assertion().expires_at(None),
            gate.assertion().expires_at(None).without_claim("iat"),
            gate.assertion().claim("exp", json!("soon")),
        ];
        for assertion in refused {
            gate.refuses(
                gate.with_assertion(&assertion.sign(&key)).await,
                Refused::BadClient,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn an_assertion_for_another_server_or_client_is_refused() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        // Either of the server's names, alone or among others, passes.
        for aud in [
            json!(ISSUER),
            json!(HTU),
            json!(["https://elsewhere.example", ISSUER]),
        ] {
            let assertion = gate.assertion().audience(aud).sign(&key);
            gate.passes(gate.with_assertion(&assertion).await).await;
        }
        let refused = [
            gate.assertion()
                .audience(json!("https://elsewhere.example/token")),
            gate.assertion().audience(json!(format!("{ISSUER}/"))),
            gate.assertion().audience(json!(format!("{HTU}?x=1"))),
            gate.assertion()
                .audience(json!(["https://elsewhere.example"])),
            gate.assertion().audience(json!([])),
            gate.assertion().audience(json!({ "aud": ISSUER })),
            gate.assertion().without_claim("aud"),
            // iss and sub must both be the client.
            gate.assertion().issuer("other"),
            gate.assertion().subject("other"),
            gate.assertion().issuer("someone").subject("someone"),
            gate.assertion().without_claim("iss"),
        ];
        for assertion in refused {
            gate.refuses(
                gate.with_assertion(&assertion.sign(&key)).await,
                Refused::BadClient,
            )
            .await;
        }
        // Another client's key does not speak for this one.
        let theirs = gate.assertion().sign(&TestKey::es256_other());
        gate.refuses(gate.with_assertion(&theirs).await, Refused::BadClient)
            .await;
    }
}

#[tokio::test]
async fn an_assertions_jti_is_1_to_256_bytes() {
    for dialect in DIALECTS {
        let gate = Gate::new(dialect);
        let key = TestKey::es256();
        let assertion = |jti: &str| gate.assertion().jti(jti).sign(&key);
        gate.passes(gate.with_assertion(&assertion(&"j".repeat(256))).await)
            .await;
        for jti in ["j".repeat(257), String::new(), "é".repeat(129)] {
            gate.refuses(
                gate.with_assertion(&assertion(&jti)).await,
                Refused::BadClient,
            )
            .await;
        }
        let missing = gate.assertion().without_claim("jti").sign(&key);
        gate.refuses(gate.with_assertion(&missing).await, Refused::BadClient)
            .await;
    }
}

#[tokio::test]
async fn a_replayed_assertion_is_refused_and_not_counted_as_a_guess() {
    for dialect in DIALECTS {
        // Two guesses lock a client out of this peer.
        let gate = Gate::with(dialect, |builder| {
            builder.lockout(Some(Lockout::new(2, Duration::from_secs(60))))
        });
        let key = TestKey::es256();
        let assertion = gate.assertion().sign(&key);
        gate.passes(gate.with_assertion(&assertion).await).await;
        for _ in 0..4 {
            gate.refuses(gate.with_assertion(&assertion).await, Refused::BadClient)
                .await;
        }
        // Never locked out: a fresh assertion passes.
        gate.passes(gate.with_assertion(&gate.assertion().sign(&key)).await)
            .await;
        // The same jti in another assertion is a replay too.
        let same_jti = gate.assertion().jti("once").sign(&key);
        gate.passes(gate.with_assertion(&same_jti).await).await;
        let again = gate
            .assertion()
            .jti("once")
            .issued_at(gate.at(1))
            .sign(&key);
        gate.refuses(gate.with_assertion(&again).await, Refused::BadClient)
            .await;
        // Whereas two wrong keys are guesses, and lock the client out.
        for _ in 0..2 {
            let forged = gate.assertion().sign(&TestKey::es256_other());
            gate.refuses(gate.with_assertion(&forged).await, Refused::BadClient)
                .await;
        }
        let locked = gate.with_assertion(&gate.assertion().sign(&key)).await;
        let service = gate
            .layer
            .layer(service_fn(|_: Request<RequestBody<String>>| async move {
                panic!("the inner service ran on a rejection path");
                #[allow(unreachable_code)]
                Ok::<_, Infallible>(Response::new(String::new()))
            }));
        let answer = Answer::read(service.oneshot(locked).await.unwrap()).await;
        assert_eq!(answer.status, 429, "{}", answer.text());
        assert!(answer.header("retry-after").is_some());
    }
}

/// Whole seconds since the epoch, as the gate reads a time.
fn tokengate_seconds(time: SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
