//! Signed requests: the compact JWS reader, DPoP proofs, client assertions
//! and JWK sets, on any text. Each input is tried as all four; an input of
//! two or three lines is also encoded into a JWS first (header JSON,
//! claims JSON, signature), so that mutations reach the JSON inside.
//!
//! Invariants, checked with an oracle of the target's own (base64 and
//! serde_json, read apart from the crate's reader):
//! - a JWS longer than 8 KiB, or not three dot-separated parts, or with a
//!   character outside base64url's alphabet (padding, `+`, `/`) in its
//!   header or payload, is never accepted; neither is one whose header or
//!   claims name a member twice, or whose header carries `crit`;
//! - an accepted DPoP proof is `typ` `dpop+jwt`, signed by an asymmetric
//!   algorithm with a public key in its header (no private member), `htm`
//!   `POST`, `htu` the endpoint (without query and fragment), `iat` in the
//!   window, and its thumbprint is 43 base64url characters: the RFC 7638
//!   thumbprint of that key, computed here;
//! - an accepted assertion is the one known client's, ES256 (its only
//!   key), `iss` = `sub`, an accepted `aud`, `exp` in bounds and a `jti`
//!   of 1 to 256 bytes;
//! - an accepted JWK set holds 1 to 8 public keys of a known kind, and
//!   what is stored reads back the same;
//! - every answer is the same twice.
//!
//! The seeds in `corpus/jws/` were made with `tokengate::testing::jose`
//! (its fixed keys) at the entry points' fixed time, `FUZZ_NOW`.
#![no_main]

use std::{collections::HashSet, fmt};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use libfuzzer_sys::fuzz_target;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokengate::fuzzing::{
    FUZZ_CLIENT, FUZZ_HTU, FUZZ_ISSUER, FUZZ_NOW, check_client_assertion, check_dpop_proof,
    parse_jwks, parse_jws,
};

const MAX_LEN: usize = 8 * 1024;
const PRIVATE: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text);
    // The JSON inside a JWS, which mutations of its base64 rarely reach:
    // `header\nclaims\nsignature` is encoded into `header.claims.signature`.
    let mut lines = text.splitn(3, '\n');
    if let (Some(header), Some(claims)) = (lines.next(), lines.next()) {
        let signature = lines.next().unwrap_or("");
        let encode = |json: &str| URL_SAFE_NO_PAD.encode(json);
        check(&format!(
            "{}.{}.{signature}",
            encode(header),
            encode(claims)
        ));
    }
});

/// Tries `text` as a JWS, a DPoP proof, a client assertion and a JWK set.
fn check(text: &str) {
    let parsed = parse_jws(text);
    assert_eq!(parsed, parse_jws(text), "parse is not deterministic");
    let proof = check_dpop_proof(text);
    assert_eq!(proof, check_dpop_proof(text), "DPoP is not deterministic");
    let assertion = check_client_assertion(text);
    let jwks = parse_jwks(text);

    // What any accepted JWS must look like, read apart.
    let read = read(text);
    if let Ok(alg) = &parsed {
        let (header, _) = read
            .as_ref()
            .unwrap_or_else(|why| panic!("parse accepted a JWS that {why}"));
        assert_eq!(header.get("alg"), Some(&Value::String(alg.clone())));
    }
    if proof.is_ok() || assertion.is_ok() {
        assert!(parsed.is_ok(), "accepted what the reader refuses");
    }
    if let Ok(jkt) = &proof {
        let (header, claims) = read.as_ref().expect("an accepted proof reads");
        dpop_holds(header, claims, jkt);
    }
    if assertion.is_ok() {
        let (header, claims) = read.as_ref().expect("an accepted assertion reads");
        assertion_holds(header, claims);
    }
    if let Ok(stored) = &jwks {
        jwks_holds(stored);
    }
}

/// Why a JWS fails the oracle's reading, or its header and claims.
#[derive(Debug)]
enum Unfit {
    TooLong,
    NotThreeParts,
    NotBase64url,
    NotJsonObject,
    RepeatsAMember,
    Crit,
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

fn read(token: &str) -> Result<(Map<String, Value>, Map<String, Value>), Unfit> {
    if token.len() > MAX_LEN {
        return Err(Unfit::TooLong);
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, _signature] = parts[..] else {
        return Err(Unfit::NotThreeParts);
    };
    let object = |part: &str| -> Result<Map<String, Value>, Unfit> {
        let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if !part.bytes().all(alphabet) {
            return Err(Unfit::NotBase64url);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| Unfit::NotBase64url)?;
        if repeats_a_member(&bytes) {
            return Err(Unfit::RepeatsAMember);
        }
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(object)) => Ok(object),
            _ => Err(Unfit::NotJsonObject),
        }
    };
    let header = object(header)?;
    let claims = object(claims)?;
    if header.contains_key("crit") {
        return Err(Unfit::Crit);
    }
    Ok((header, claims))
}

fn dpop_holds(header: &Map<String, Value>, claims: &Map<String, Value>, jkt: &str) {
    assert_eq!(header["typ"], "dpop+jwt");
    let alg = header["alg"].as_str().expect("alg is a string");
    assert!(
        ["ES256", "EdDSA", "Ed25519", "RS256", "PS256"].contains(&alg),
        "a proof signed by {alg}"
    );
    let jwk = header["jwk"].as_object().expect("a jwk object");
    for member in PRIVATE {
        assert!(!jwk.contains_key(member), "a proof's jwk holds {member}");
    }
    assert_eq!(claims["htm"], "POST");
    let htu = claims["htu"].as_str().expect("htu is a string");
    assert_eq!(htu.split(['?', '#']).next(), Some(FUZZ_HTU));
    let iat = seconds(&claims["iat"]);
    let now = FUZZ_NOW as i64;
    assert!((now - 60..=now + 30).contains(&iat), "iat {iat}");
    let jti = claims["jti"].as_str().expect("jti is a string");
    assert!((1..=256).contains(&jti.len()));
    assert_eq!(jkt.len(), 43, "{jkt}");
    assert!(
        jkt.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{jkt}"
    );
    assert_eq!(jkt, thumbprint(jwk), "not the RFC 7638 thumbprint");
}

fn assertion_holds(header: &Map<String, Value>, claims: &Map<String, Value>) {
    // The one client has one key, a P-256 one.
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["iss"], FUZZ_CLIENT);
    assert_eq!(claims["sub"], FUZZ_CLIENT);
    let audiences = [FUZZ_ISSUER, FUZZ_HTU];
    let aud_ok = match &claims["aud"] {
        Value::String(aud) => audiences.contains(&aud.as_str()),
        Value::Array(auds) => auds
            .iter()
            .any(|aud| aud.as_str().is_some_and(|aud| audiences.contains(&aud))),
        _ => false,
    };
    assert!(aud_ok, "aud {}", claims["aud"]);
    let now = FUZZ_NOW as i64;
    let exp = seconds(&claims["exp"]);
    assert!(exp > now - 30 && exp <= now + 330, "exp {exp}");
    if let Some(iat) = claims.get("iat") {
        let iat = seconds(iat);
        assert!(iat <= now + 30 && exp - iat <= 300, "iat {iat}");
    }
    if let Some(nbf) = claims.get("nbf") {
        assert!(seconds(nbf) <= now + 30);
    }
    let jti = claims["jti"].as_str().expect("jti is a string");
    assert!((1..=256).contains(&jti.len()));
}

fn jwks_holds(stored: &str) {
    let set: Value = serde_json::from_str(stored).expect("stored as JSON");
    let keys = set["keys"].as_array().expect("a keys array");
    assert!((1..=8).contains(&keys.len()));
    for key in keys {
        let key = key.as_object().expect("a key is an object");
        assert!(["EC", "OKP", "RSA"].contains(&key["kty"].as_str().unwrap_or("")));
        for member in PRIVATE {
            assert!(!key.contains_key(member), "a stored key holds {member}");
        }
    }
    assert_eq!(parse_jwks(stored).as_deref(), Ok(stored), "no round trip");
}

/// A NumericDate the gate accepted: an integer, or a float cut to one.
fn seconds(value: &Value) -> i64 {
    value
        .as_i64()
        .or_else(|| value.as_f64().map(|s| s as i64))
        .expect("a time claim is a number")
}

/// RFC 7638: SHA-256 over the required members, in order, no whitespace.
fn thumbprint(jwk: &Map<String, Value>) -> String {
    let members: &[&str] = match jwk["kty"].as_str() {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("OKP") => &["crv", "kty", "x"],
        Some("RSA") => &["e", "kty", "n"],
        other => panic!("a proof's key of kty {other:?}"),
    };
    let canonical: Map<String, Value> = members
        .iter()
        .map(|name| ((*name).to_owned(), jwk[*name].clone()))
        .collect();
    // serde_json's Map is sorted by name, and `to_string` is compact.
    let canonical = Value::Object(canonical).to_string();
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Whether any JSON object in `bytes` names a member twice (invalid JSON:
/// `false`, the parse after this says so).
fn repeats_a_member(bytes: &[u8]) -> bool {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let mut repeated = false;
    let _ = Walk(&mut repeated).deserialize(&mut deserializer);
    repeated
}

/// Walks a JSON value, setting its flag at an object that repeats a name.
struct Walk<'a>(&'a mut bool);

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Walk(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut names = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !names.insert(name) {
                *self.0 = true;
            }
            map.next_value_seed(Walk(&mut *self.0))?;
        }
        Ok(())
    }
}
