//! A client's registered public keys (RFC 7517 JWK set, RFC 7591 `jwks`),
//! checked when they are registered: the keys `private_key_jwt` assertions
//! are verified with.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Map, Value};

/// The most keys one client may register: enough for a rotation with
/// several algorithms, few enough that trying each costs little.
pub(crate) const MAX_KEYS: usize = 8;

/// Members that only a private or symmetric key has. A registration (and a
/// DPoP proof's `jwk`) holding one of them is refused: whoever sent it
/// published a secret.
pub(crate) const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A client's public keys, each a JWK of a kind the gate verifies: `EC`
/// on `P-256` (ES256), `OKP` on `Ed25519` (EdDSA), or `RSA` of at least
/// 2048 bits (RS256, PS256).
///
/// ```
/// use tokengate::client::Jwks;
///
/// let jwks = Jwks::from_json(&serde_json::json!({"keys": [{
///     "kty": "OKP", "crv": "Ed25519", "kid": "k1",
///     "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
/// }]})).unwrap();
/// assert_eq!(jwks.len(), 1);
///
/// // A private key is refused: it was published by registering it.
/// let private = serde_json::json!({"keys": [{
///     "kty": "OKP", "crv": "Ed25519",
///     "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
///     "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
/// }]});
/// assert!(Jwks::from_json(&private).is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<PublicJwk>,
}

/// One checked public key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PublicJwk {
    pub(crate) kind: KeyKind,
    pub(crate) kid: Option<String>,
    /// The key's own `alg`, when it names one: only that algorithm is
    /// accepted with it.
    pub(crate) alg: Option<String>,
    /// The member as registered, for storage and for the JOSE crate.
    pub(crate) json: Map<String, Value>,
}

/// The kinds of public key the gate verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// `EC` on `P-256`.
    P256,
    /// `OKP` on `Ed25519`.
    Ed25519,
    /// `RSA`, 2048 bits or more.
    Rsa,
}

/// Why a JWK set (or a proof's `jwk`) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksError(pub(crate) &'static str);

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for JwksError {}

impl Jwks {
    /// Reads and checks a JWK set, `{"keys": [...]}`.
    pub fn from_json(value: &Value) -> Result<Self, JwksError> {
        let Some(document) = value.as_object() else {
            return Err(JwksError("a JWK set is a JSON object"));
        };
        if document.keys().any(|name| name != "keys") {
            return Err(JwksError("a JWK set holds only \"keys\""));
        }
        let Some(keys) = document.get("keys").and_then(Value::as_array) else {
            return Err(JwksError("a JWK set needs a \"keys\" array"));
        };
        if keys.is_empty() {
            return Err(JwksError("a JWK set needs at least one key"));
        }
        if keys.len() > MAX_KEYS {
            return Err(JwksError("a JWK set holds at most 8 keys"));
        }
        let keys = keys
            .iter()
            .map(|key| {
                key.as_object()
                    .ok_or(JwksError("a JWK is a JSON object"))
                    .and_then(PublicJwk::check)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut kids: Vec<&str> = keys.iter().filter_map(|k| k.kid.as_deref()).collect();
        kids.sort_unstable();
        if kids.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(JwksError("two keys share a kid"));
        }
        Ok(Self { keys })
    }

    /// The set as JSON, as registered.
    pub fn to_json(&self) -> Value {
        let keys = self.keys.iter().map(|k| Value::Object(k.json.clone()));
        serde_json::json!({ "keys": keys.collect::<Vec<_>>() })
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key (never true for a checked set).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    #[cfg_attr(not(feature = "jose"), allow(dead_code))]
    pub(crate) fn keys(&self) -> &[PublicJwk] {
        &self.keys
    }
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.keys
                    .iter()
                    .map(|k| (k.kind, k.kid.as_deref(), k.alg.as_deref())),
            )
            .finish()
    }
}

impl PublicJwk {
    /// Checks one public JWK: its kind, its members' encodings and sizes,
    /// and that it holds nothing private.
    pub(crate) fn check(json: &Map<String, Value>) -> Result<Self, JwksError> {
        if PRIVATE_MEMBERS.iter().any(|m| json.contains_key(*m)) {
            return Err(JwksError(
                "a JWK holds a private or symmetric key member (d, p, q, dp, dq, qi, oth or k)",
            ));
        }
        let text = |name: &str| json.get(name).and_then(Value::as_str);
        let bytes = |name: &str| -> Result<Vec<u8>, JwksError> {
            let value = text(name).ok_or(JwksError("a JWK lacks a key member"))?;
            URL_SAFE_NO_PAD
                .decode(value)
                .map_err(|_| JwksError("a JWK member is not base64url without padding"))
        };
        let kind = match (text("kty"), text("crv")) {
            (Some("EC"), Some("P-256")) => {
                if bytes("x")?.len() != 32 || bytes("y")?.len() != 32 {
                    return Err(JwksError("a P-256 key has 32-byte x and y"));
                }
                KeyKind::P256
            }
            (Some("OKP"), Some("Ed25519")) => {
                let x: [u8; 32] = bytes("x")?
                    .try_into()
                    .map_err(|_| JwksError("an Ed25519 key has a 32-byte x"))?;
                if weak_ed25519(&x) {
                    return Err(JwksError(
                        "an Ed25519 key is not a valid point of large order",
                    ));
                }
                KeyKind::Ed25519
            }
            (Some("RSA"), _) => {
                let n = bytes("n")?;
                let e = bytes("e")?;
                // RFC 7518 §6.3.1: the fewest octets. A leading zero would
                // hide a short modulus and give one key two thumbprints.
                if n.first().is_none_or(|b| *b == 0) || e.first().is_none_or(|b| *b == 0) {
                    return Err(JwksError(
                        "an RSA key's n and e are unsigned big-endian without leading zeros",
                    ));
                }
                let bits = n.len() * 8 - n[0].leading_zeros() as usize;
                if bits < 2048 {
                    return Err(JwksError("an RSA key has at least 2048 bits"));
                }
                // A proof's key is the sender's choice: a huge modulus would
                // make every check it asks for slow.
                if bits > 4096 {
                    return Err(JwksError("an RSA key has at most 4096 bits"));
                }
                if e.len() > 8 {
                    return Err(JwksError("an RSA exponent is 1 to 8 bytes"));
                }
                KeyKind::Rsa
            }
            _ => {
                return Err(JwksError(
                    "a JWK is EC on P-256, OKP on Ed25519, or RSA (kty and crv)",
                ));
            }
        };
        let kid = match json.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(JwksError("a JWK's kid is a string")),
        };
        let alg = match json.get("alg") {
            None => None,
            Some(Value::String(alg)) if kind.allows(alg) => Some(alg.clone()),
            Some(_) => return Err(JwksError("a JWK's alg does not fit its key")),
        };
        if let Some(usage) = json.get("use")
            && usage != "sig"
        {
            return Err(JwksError("a JWK's use, when given, is \"sig\""));
        }
        Ok(Self {
            kind,
            kid,
            alg,
            json: json.clone(),
        })
    }

    /// Whether this key verifies signatures named `alg`.
    #[cfg_attr(not(feature = "jose"), allow(dead_code))]
    pub(crate) fn allows(&self, alg: &str) -> bool {
        self.kind.allows(alg)
            && self
                .alg
                .as_deref()
                .is_none_or(|own| same_algorithm(own, alg))
    }
}

impl KeyKind {
    /// Whether a key of this kind verifies signatures named `alg`.
    pub(crate) fn allows(self, alg: &str) -> bool {
        matches!(
            (self, alg),
            (Self::P256, "ES256")
                | (Self::Ed25519, "EdDSA" | "Ed25519")
                | (Self::Rsa, "RS256" | "PS256")
        )
    }
}

/// Whether `x` is no Ed25519 public key, or one of small order: against
/// such a key a signature can be forged for any message.
#[cfg(feature = "jose")]
fn weak_ed25519(x: &[u8; 32]) -> bool {
    ed25519_dalek::VerifyingKey::from_bytes(x).map_or(true, |key| key.is_weak())
}

/// Without `jose` no signature is verified, so no key is weak.
#[cfg(not(feature = "jose"))]
fn weak_ed25519(_: &[u8; 32]) -> bool {
    false
}

/// `EdDSA` on an Ed25519 key and the fully specified `Ed25519` (RFC 9864)
/// are one algorithm.
fn same_algorithm(a: &str, b: &str) -> bool {
    a == b || matches!((a, b), ("EdDSA", "Ed25519") | ("Ed25519", "EdDSA"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn ed(extra: Value) -> Value {
        let mut key = json!({"kty": "OKP", "crv": "Ed25519", "x": X});
        key.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "keys": [key] })
    }

    #[test]
    fn refuses_what_is_not_a_public_signing_key() {
        for (set, why) in [
            (json!([]), "object"),
            (json!({"keys": []}), "at least one"),
            (json!({"keys": [], "extra": 1}), "only"),
            (ed(json!({"d": X})), "private"),
            (ed(json!({"k": X})), "private"),
            (ed(json!({"alg": "ES256"})), "alg"),
            (ed(json!({"use": "enc"})), "use"),
            (ed(json!({"kid": 7})), "kid"),
            (json!({"keys": [{"kty": "oct", "k": X}]}), "private"),
            (
                json!({"keys": [{"kty": "OKP", "crv": "X25519", "x": X}]}),
                "kty and crv",
            ),
            (
                json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}),
                "32-byte",
            ),
            (
                json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": format!("{X}=")}]}),
                "base64url",
            ),
            (
                json!({"keys": [{"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xff; 128]), "e": "AQAB"}]}),
                "2048",
            ),
            (
                json!({"keys": [{"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xff; 256]), "e": ""}]}),
                "leading zeros",
            ),
            (
                json!({"keys": [{"kty": "RSA", "n": "", "e": "AQAB"}]}),
                "leading zeros",
            ),
            (
                // A 1024-bit modulus behind 128 zero bytes.
                json!({"keys": [{"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([[0u8; 128], [0xff; 128]].concat()), "e": "AQAB"}]}),
                "leading zeros",
            ),
            (
                json!({"keys": [{"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xff; 256]), "e": URL_SAFE_NO_PAD.encode([1; 9])}]}),
                "exponent",
            ),
            (
                json!({"keys": [{"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xff; 513]), "e": "AQAB"}]}),
                "4096",
            ),
            (
                // The identity point: a forged signature verifies against it.
                json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}),
                "large order",
            ),
            (
                json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "a"}, {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "a"}]}),
                "share a kid",
            ),
        ] {
            let error = Jwks::from_json(&set).unwrap_err().to_string();
            assert!(error.contains(why), "{set}: {error}");
        }
        let nine = json!({"keys": vec![json!({"kty": "OKP", "crv": "Ed25519", "x": X}); 9]});
        assert!(Jwks::from_json(&nine).is_err());
    }

    #[test]
    fn reads_each_kind_and_keeps_it_as_registered() {
        let rsa = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0x80; 256]), "e": "AQAB", "alg": "PS256"});
        let ec = json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode([1; 32]), "y": URL_SAFE_NO_PAD.encode([2; 32]), "use": "sig"});
        let set =
            json!({"keys": [rsa, ec, {"kty": "OKP", "crv": "Ed25519", "x": X, "alg": "EdDSA"}]});
        let jwks = Jwks::from_json(&set).unwrap();
        assert_eq!(jwks.len(), 3);
        assert_eq!(jwks.to_json(), set);
        let kinds: Vec<_> = jwks.keys().iter().map(|k| k.kind).collect();
        assert_eq!(kinds, [KeyKind::Rsa, KeyKind::P256, KeyKind::Ed25519]);
        // A key's own alg narrows what it verifies; EdDSA and Ed25519 are one.
        assert!(jwks.keys()[0].allows("PS256") && !jwks.keys()[0].allows("RS256"));
        assert!(jwks.keys()[1].allows("ES256") && !jwks.keys()[1].allows("EdDSA"));
        assert!(jwks.keys()[2].allows("Ed25519") && jwks.keys()[2].allows("EdDSA"));
        assert!(!jwks.keys()[2].allows("HS256") && !jwks.keys()[2].allows("none"));
    }
}
