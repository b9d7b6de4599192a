//! Signed requests: the compact JWS (RFC 7515) both client assertions
//! (RFC 7523) and DPoP proofs (RFC 9449) travel as, read strictly, and
//! their signatures checked by the `jsonwebtoken` crate.
//!
//! Reading is strict because the bytes come from anyone: a bounded size,
//! base64url without padding, JSON objects without repeated members (two
//! parsers reading one token two ways is how signature bypasses start),
//! and no `crit` extension, since this reader understands none.

pub(crate) mod assertion;
pub(crate) mod dpop;

use std::{collections::HashSet, fmt, sync::LazyLock};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, jwk::Jwk};
use serde::{
    Deserialize,
    de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor},
};
use serde_json::{Map, Value};

use crate::jwks::{KeyKind, PublicJwk};

/// The longest JWS accepted: far above a proof with an RSA key (about
/// 1.5 KiB), far below what would make parsing a cost.
pub(crate) const MAX_JWS_LEN: usize = 8 * 1024;

/// A compact JWS, split and decoded but not yet verified.
pub(crate) struct Jws<'a> {
    pub(crate) header: Header,
    pub(crate) claims: Map<String, Value>,
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'a str,
    signature: &'a str,
}

/// The protected header members the gate reads.
#[derive(Deserialize)]
pub(crate) struct Header {
    pub(crate) alg: String,
    #[serde(default)]
    pub(crate) typ: Option<String>,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) jwk: Option<Map<String, Value>>,
    /// Whether the header has a `crit` member, whatever its value: even
    /// `null`, which names no extension but is no valid `crit` either.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// `true` for a member that is there, whatever its value.
fn present<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// Why a JWS was refused, in words fit for an `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl<'a> Jws<'a> {
    /// Splits and decodes `token`, refusing every irregular form.
    pub(crate) fn parse(token: &'a str) -> Result<Self, Malformed> {
        if token.len() > MAX_JWS_LEN {
            return Err(Malformed("the JWT is longer than 8 KiB"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Malformed("the JWT is not three base64url parts"));
        };
        let signing_input = &token[..header.len() + 1 + payload.len()];
        let header = decode(header)?;
        let payload = decode(payload)?;
        let header: Header = strict_json(&header)?;
        if header.crit {
            return Err(Malformed("the JWT header names a crit extension"));
        }
        let claims: Map<String, Value> = strict_json(&payload)?;
        Ok(Self {
            header,
            claims,
            signing_input,
            signature,
        })
    }

    /// Whether the signature verifies with `key` under `alg`.
    pub(crate) fn verifies(&self, key: &DecodingKey, alg: Algorithm) -> bool {
        jsonwebtoken::crypto::verify(self.signature, self.signing_input.as_bytes(), key, alg)
            .unwrap_or(false)
    }

    /// A claim that must be a string.
    pub(crate) fn text(&self, name: &str) -> Result<Option<&str>, Malformed> {
        match self.claims.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(Malformed("a JWT claim that is a string is not")),
        }
    }

    /// A NumericDate claim (RFC 7519 §2), in whole seconds (a fraction is
    /// cut off).
    pub(crate) fn seconds(&self, name: &str) -> Result<Option<i64>, Malformed> {
        match self.claims.get(name) {
            None => Ok(None),
            Some(Value::Number(number)) => number
                .as_i64()
                .or_else(|| {
                    number
                        .as_f64()
                        .filter(|s| s.is_finite() && s.abs() < 1e15)
                        .map(|s| s as i64)
                })
                .map(Some)
                .ok_or(Malformed("a JWT time claim is out of range")),
            Some(_) => Err(Malformed("a JWT time claim is not a number")),
        }
    }
}

fn decode(part: &str) -> Result<Vec<u8>, Malformed> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Malformed("a JWT part is not base64url without padding"))
}

/// Parses `bytes` as `T`, refusing any JSON object with a repeated member,
/// at any depth.
fn strict_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Malformed> {
    let mut check = serde_json::Deserializer::from_slice(bytes);
    UniqueMembers
        .deserialize(&mut check)
        .map_err(|_| Malformed("a JWT part is not JSON, or repeats a member"))?;
    check
        .end()
        .map_err(|_| Malformed("a JWT part is not JSON, or repeats a member"))?;
    serde_json::from_slice(bytes)
        .map_err(|_| Malformed("a JWT part lacks a member or has one of the wrong type"))
}

/// Walks a JSON value and fails on an object that names a member twice.
struct UniqueMembers;

impl<'de> DeserializeSeed<'de> for UniqueMembers {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueMembers {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
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
        while seq.next_element_seed(Self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut names = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !names.insert(name) {
                return Err(de::Error::custom("a repeated member"));
            }
            map.next_value_seed(Self)?;
        }
        Ok(())
    }
}

/// The algorithm a JWS header names, among those the gate accepts, and
/// the kind of key that verifies it. `none`, the HS family (but for
/// `client_secret_jwt`, which asks for it by name) and everything else
/// are refused here.
pub(crate) fn asymmetric(alg: &str) -> Option<(Algorithm, KeyKind)> {
    Some(match alg {
        "ES256" => (Algorithm::ES256, KeyKind::P256),
        "EdDSA" | "Ed25519" => (Algorithm::EdDSA, KeyKind::Ed25519),
        "RS256" => (Algorithm::RS256, KeyKind::Rsa),
        "PS256" => (Algorithm::PS256, KeyKind::Rsa),
        _ => return None,
    })
}

/// The asymmetric algorithms, as the metadata lists them.
pub(crate) const SIGNING_ALGORITHMS: [&str; 5] = ["ES256", "EdDSA", "Ed25519", "RS256", "PS256"];

/// A checked public JWK as the JOSE crate reads it: converted once, then
/// used for both the key and the thumbprint.
pub(crate) fn to_jwk(jwk: &PublicJwk) -> Option<Jwk> {
    serde_json::from_value(Value::Object(public_members(jwk))).ok()
}

/// The JOSE crate's key for a JWK.
pub(crate) fn decoding_key(jwk: &Jwk) -> Option<DecodingKey> {
    DecodingKey::from_jwk(jwk).ok()
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of a JWK.
pub(crate) fn thumbprint(jwk: &Jwk) -> Option<String> {
    jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
        .ok()
}

/// The members that make the key, without the others (`alg`, `use`,
/// `key_ops`, whose values the JOSE crate might refuse).
fn public_members(jwk: &PublicJwk) -> Map<String, Value> {
    let names: &[&str] = match jwk.kind {
        KeyKind::P256 => &["kty", "crv", "x", "y"],
        KeyKind::Ed25519 => &["kty", "crv", "x"],
        KeyKind::Rsa => &["kty", "n", "e"],
    };
    names
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), jwk.json.get(*name)?.clone())))
        .collect()
}

/// Keys nobody holds the private half of, one per kind: a signature is
/// checked against one when there is no real key to check it with (an
/// unknown client, a client registered for another method), so that a
/// refusal takes the time a wrong signature takes and does not tell
/// which it was.
pub(crate) fn stand_in(kind: KeyKind) -> &'static DecodingKey {
    static KEYS: LazyLock<[DecodingKey; 3]> = LazyLock::new(|| {
        // The example keys of RFC 7515 A.3 (P-256), RFC 8037 A.2
        // (Ed25519) and RFC 7638 §3.1 (RSA 2048).
        let p256 = DecodingKey::from_ec_components(
            "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        );
        let ed = DecodingKey::from_ed_components("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        let rsa = DecodingKey::from_rsa_components(RFC7638_N, "AQAB");
        // Constants: a failure here is a typo, found by the first test.
        [p256, ed, rsa].map(|key| key.expect("a stand-in key decodes"))
    });
    match kind {
        KeyKind::P256 => &KEYS[0],
        KeyKind::Ed25519 => &KEYS[1],
        KeyKind::Rsa => &KEYS[2],
    }
}

/// The RSA modulus of RFC 7638 §3.1's example.
pub(crate) const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn stand_in_keys_decode() {
        for kind in [KeyKind::P256, KeyKind::Ed25519, KeyKind::Rsa] {
            let _ = stand_in(kind);
        }
    }

    /// RFC 7638 §3.1: the thumbprint of its example RSA key.
    #[test]
    fn thumbprint_matches_rfc_7638() {
        let json = serde_json::json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
        let jwk = PublicJwk::check(json.as_object().unwrap()).unwrap();
        assert_eq!(
            thumbprint(&to_jwk(&jwk).unwrap()).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn refuses_irregular_forms() {
        let header = encode(r#"{"alg":"ES256"}"#);
        let claims = encode(r#"{"a":1}"#);
        for (token, why) in [
            ("a.b".to_owned(), "three"),
            (format!("{header}.{claims}.s.x"), "three"),
            (format!("{header}=.{claims}.s"), "base64url"),
            (
                format!("{header}.{}.s", encode(r#"{"a":1,"a":2}"#)),
                "repeats",
            ),
            (
                format!("{header}.{}.s", encode(r#"{"a":{"b":1,"b":1}}"#)),
                "repeats",
            ),
            (format!("{header}.{}.s", encode(r#"[1]"#)), "member"),
            (format!("{header}.{}.s", encode(r#"{"a":1} x"#)), "JSON"),
            (
                format!("{}.{claims}.s", encode(r#"{"alg":"ES256","crit":["b64"]}"#)),
                "crit",
            ),
            (
                format!("{}.{claims}.s", encode(r#"{"alg":"ES256","crit":null}"#)),
                "crit",
            ),
            (
                format!("{}.{claims}.s", encode(r#"{"alg":"ES256","crit":[]}"#)),
                "crit",
            ),
            (
                format!("{}.{claims}.s", encode(r#"{"typ":"JWT"}"#)),
                "member",
            ),
            (
                format!("{}.{claims}.s", encode(r#"{"alg":"ES256","alg":"none"}"#)),
                "repeats",
            ),
            ("a".repeat(MAX_JWS_LEN + 1), "8 KiB"),
        ] {
            let error = Jws::parse(&token).err().expect(why).0;
            assert!(error.contains(why), "{token}: {error}");
        }
        let token = format!("{header}.{claims}.sig");
        let jws = Jws::parse(&token).unwrap();
        assert_eq!(jws.header.alg, "ES256");
        assert_eq!(jws.seconds("a").unwrap(), Some(1));
        assert!(jws.text("a").is_err());
        assert_eq!(jws.signing_input, format!("{header}.{claims}"));
    }

    #[test]
    fn only_asymmetric_algorithms_are_named() {
        for alg in ["none", "HS256", "HS512", "ES384", "RS512", "", "es256"] {
            assert!(asymmetric(alg).is_none(), "{alg}");
        }
        for alg in SIGNING_ALGORITHMS {
            assert!(asymmetric(alg).is_some(), "{alg}");
        }
    }
}
