//! Signed client assertions (RFC 7523, OpenID Connect Core §9) and DPoP
//! proofs (RFC 9449) for tests (feature `jose`): fixed key pairs of every
//! supported kind, their JWKs and thumbprints, and builders that make good
//! and deliberately bad tokens in one expression.
//!
//! The keys are public: they are in this file. Never trust them anywhere
//! but in tests.
//!
//! ```
//! use tokengate::testing::{
//!     TokenRequest,
//!     jose::{ClientAssertion, DpopProof, TestKey},
//! };
//!
//! let key = TestKey::es256();
//! // What the client registers: its public keys.
//! let jwks = TestKey::jwks(&[&key]);
//! assert_eq!(jwks["keys"][0]["kid"], key.kid());
//!
//! // `private_key_jwt`, signed by the registered key.
//! let assertion = ClientAssertion::new("app", "https://auth.example.com/token").sign(&key);
//! // A proof of possession of another key, bound to this request.
//! let dpop_key = TestKey::ed25519();
//! let proof = DpopProof::new("POST", "https://auth.example.com/token").sign(&dpop_key);
//!
//! let request = TokenRequest::client_credentials()
//!     .client_assertion(&assertion)
//!     .dpop(&proof)
//!     .build();
//! assert_eq!(request.headers()["dpop"], proof.as_str());
//! assert!(request.body().contains("client_assertion="));
//!
//! // Hostile variants: expired, unsigned, a private key in the proof.
//! let expired = ClientAssertion::new("app", "https://auth.example.com/token")
//!     .expires_at(Some(std::time::UNIX_EPOCH))
//!     .sign(&key);
//! let unsigned = ClientAssertion::new("app", "https://auth.example.com/token").unsigned();
//! assert!(unsigned.ends_with('.'));
//! let leaky = DpopProof::new("POST", "https://auth.example.com/token")
//!     .jwk(dpop_key.private_jwk())
//!     .sign(&dpop_key);
//! # let _ = (expired, leaky);
//! ```

use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jsonwebtoken::{Algorithm, EncodingKey, jwk::Jwk};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a [`ClientAssertion`] lives unless told otherwise.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

// The fixed keys, generated once with OpenSSL 3.0: P-256 and Ed25519 as
// PKCS#8 DER (what `EncodingKey::from_ec_der` / `from_ed_der` read), RSA 2048
// as PKCS#1 DER (what `from_rsa_der` reads), base64.
const ES256_1: &str = concat!(
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghvW/sZemZomvc2xzyR5dfj7B",
    "caL3wLnotTOlHS+RVZWhRANCAATUy/FcyK9tbcUxkhlgsbYdKspw9TcW5I63Pf9Q7KsVAt7+",
    "qJ5vyR2uBiTSI6HfdBx1mdKnyPPSYgZ++zGq0lYA",
);
const ES256_2: &str = concat!(
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgppzthxIW8/g8HQ4SC+vlV/it",
    "4RXXfBxpftrXhALd8+GhRANCAASnWcjtXSLdtmmZEcZsjESpaWHx9+SinYaaKQCuFXTC15rg",
    "Z+GMZMTE05MvPtz+j0j5s29IZLyne7giZttMNPwk",
);
const ED25519_1: &str = "MC4CAQAwBQYDK2VwBCIEILY5euJYG1OzvpF/JaIbPWigqUAJCIpv2o6oCkTxRlKI";
const ED25519_2: &str = "MC4CAQAwBQYDK2VwBCIEIPG8ut9AFJ+a4YlC01BLRr3InlRCCTyBV6Umzps8mCP1";
const RSA_1: &str = concat!(
    "MIIEogIBAAKCAQEAlSKKNGNypEHgDpJLM++w6yNd5Ag0DPvy93J0nDi/gc5IM83NnI6ZGy4f",
    "d6fvnfw+ujN0JV8Lf9DE1J6plGVCxhpIyBkUhMBBcsW9POCbt22Z6Z4EtWK0Dw+0rSHnEvQY",
    "ZcW11NjvoFG35Q2lmqTG/pwmzYYIP8lOFhm1g296Q/sRxRHgzwDmyomKCP2zfDVOhqVEX+5k",
    "oma29Xxl2EBFBAh71Up0I8Y4t01Q/AZ1nrXf3hRBtP68kSkTqohNAiVBH6535FGr6GwFUdM+",
    "LwQ0uuM1e5/4DctzK+43lqFw1dg8cvHkOQHdzmZPEVpXfl4agb6dlEafgCrerd3qz5XDlwID",
    "AQABAoIBAA8TY8cx+mfSZPT0IvgIFelfNOGVVrWtTn1nK5STRAC6OqBKAKv/2kheHD47UsS0",
    "uB6YjvgsKHxuPUeFFn1y0xI1m//mUSWuTa9tf9jEl9kuEi4ElFNFvA/9tXT/BV3sIP9AwkXW",
    "/DpHqIBWJdSBLcCVRnLmRrU0A1nGlYvI3CI8+qi9T0mXIcnjb9Jwj46RcWO2A7cD25PJzKYZ",
    "OP8ZWgxpnoANqLePZaawLaCK5wsBvg+yj+JbIqc7iH9IEod4ij8WWd1DXj/6iEcntC1YUrXB",
    "ePt4y3KdfbCkqu4wf4nqlU5Lrm0ZBxNEzPsR5y9PuQ4CmOhrSlIGYpFc2O4BoXECgYEAw7qu",
    "x+ex1QV6lz42r/uGTOntjd+oHCFcjB7TPZI1V03xKiClz4fxK2LVefM+7H5ByzQ7hkB97j2a",
    "KqMOGSSlLmpssKpO1KzT3OUDcApUdnXxLOXMChezmz16/4RMY+RsPjlAMvV13WCGHV3g2j+B",
    "xO/brwdaksSMgJsFsxIoXl8CgYEAww7VAuue2Xfh8TZq+EDFQ/Ql0yIfJ7YKk1RAKieUaMsp",
    "3tZLMmA+HDQhvAjf+R0Fy5NLZdQj324sz1b6xSzKPK/mvZ6pyne6ncC0AliZ8oJ0pubUPeUN",
    "+mT9B/fsa3uZY2S9wmP8+5ZqXdWtQk8X+4uj1VsHOYt7kTTBfDfmNckCgYAsjByjmvQ6i5iv",
    "O5Wu0AxtDQDoPXNBk8ZAjfN+G/zP9glhkTSr20DkowX7T4WOxd2rpiO2Fo+S3aps8dePmWuO",
    "+OHsA5cViJBfwi/aHD/FBmrx0QtzcJmMR53q8e2A/sg0EUuvTXaaABIGNQusILAkZoMVfxL6",
    "PInN63qMmyFc+QKBgG8Cl/QriKIXej0/TS2wHxSHdKduefCtx+MFRec301y4k0HBD9bBs1d1",
    "y+Up3930yIGNeJGhZDEakOIHjHx++zICof00uUkDTu/M5iWXqzW7TQxXvl7jZ0skAmVwkdqx",
    "4yAQC3cAVNASUMLKguqD/RAp7rnULo5vdYm0TpGVdq0RAoGAGNBHI2BxVYx/lj4NUXRoHeiT",
    "2PkwyzxQ2BA0ul/BsblPk/fzbL7YifhapXG1gzr5/IBXmw168pIu5ZaIphLcKtRbzmRo8Mkd",
    "XjiG2sGi4PZ6AVEy7svwKPPcIg7avUxpCBFHwk0JlOqKsIBuFFuALxwvgswKB0sO2/VOExJc",
    "YVE=",
);
const RSA_2: &str = concat!(
    "MIIEogIBAAKCAQEApoH28Sci8PLtYi6R8kRPCg8KE/KyuH/bqGe34RGKKPB2y16I9lG7Dkyh",
    "e3ip9T0LJkPwe0XyzqaokWVxJioREp1gqf+di5lQiogOkh7yoVJvi1QLGguP4izM5Gmfvwyg",
    "82GJFhS9JcG9QE2DFSkBqGF70psLK4Zy8cPC4qnbVB3wb36eDsFyW/jmb7AR/DLbcVxZPcNV",
    "GFX6F8auMhNHpMr+a8R1otyPuuB1ViLvbYijc4d9yU/+VS0DJh+v/bU4WFkzUwugEZyrExop",
    "dRJwIDPKe4IiLH2WZm9QtGvwgR9tu4s0DUftn0ODVzVRB2imF0poLne+Cb3+BrhLobj5yQID",
    "AQABAoIBAA5IFqg3u4izLXOlNVUN6ts2aWtG/wrrXJA+cfuKB5gPWAEfI9w/+Mb3NHqX4bjS",
    "xyjXEI9iQCGqRcpPl+7pq/rOwnXFiPvQs9aaz067lmmj3asAegGxfPvg7KOpM5x6NtJPsVrS",
    "S8IrTFI+bVncevOFH2iNbkQ9DSrgQZ0AOK6NzbHNe78LaKPWc17To9eGHdxGvEcidTgKz/ej",
    "faVJqSaYPXp4E72K5wVstkBWdd2+rhbr/27iOCPC87gAepi4reG8/m3o9O0kuMDfz17DzxYE",
    "PGEJ9H9KhINFNj3h2Vxpizmp9Dm/xw6V4R2tJKYT2RdHs01bOG2nz+XOG9vRcikCgYEA4S9Y",
    "+UABoG/W5JYLkkcqYISedDzst1EObDbp58q5ugabayWbSCCuq3YPazkbyT2bqoA/UXmmAB/K",
    "hSc1NQQxgMO2cW1cao+08is8/dbT4BjbkQ8JFp3TvBtuVZ1+Ix7+WMOs4yrx333jW0JAWTzC",
    "xNShLE6QWKC01UmFZ9NeiPcCgYEAvUsKqsbht7ArFCw1oz/rZdkrBinm3ibhLPaCpyUN4Qn7",
    "33FDgnh1a+CsSvjMgAqFIFW4pTZJJIBCsPDl9B21Lz7i1hhINbiy71HAHysK6B1YTCEA+0BN",
    "r1ROkekuuY01AmMFMg6C+jidLZXYyj+vqevSfIz1Gt0oF+NFgSXAoz8CgYBMADXwUdj6tCR8",
    "G+Ql55z23Gu6YYGnUVUj0tjZIYPTtD0qSZQCIP2y4vLLRogJQKDUR9qW/g63xgMNM7FyhkrK",
    "4cMmvzlMwdnZThyUs7foz5rzd3aiynvW5g80GCalZeWEQe6M8UaXHp7ogxDCzY4S7ozDLnTr",
    "ZLoDrn+3DhC++wKBgBxJ1KRE6IKM/0MagEGPUdx8oeNf67KTWN9hT5EvBm31EgEIajBbVCD1",
    "CIqDt/wClnaImPmHrVKZIF5VAeiDcApJeZjJNDFjEsqVCwMdaZnamNF3tS/XIkTrcnp3wJXW",
    "Nm/O4H3kkUpXn5WqaSWAcv4P0frvDcof9tfrDP4J6En9AoGAHmWm+PX5qXT9sY5z6+pLlOnJ",
    "iShMU4rGNG3jOFiaLO618RgP0x66Xm1iq/QSFf1iH6IVjqQwrNlgpxA0KXdC/s4PfRXxw3kn",
    "laF0N9D8EvryD7/wXDJO0ZY922xp+uixT60IMsZASpWswGzvSoTGtfh8ZWQVaWHd3eQH+DA2",
    "tvg=",
);

/// The kinds of key, by their JWK `kty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ec,
    Okp,
    Rsa,
}

/// A fixed signing key pair for tests (never for production: its private
/// half is public).
///
/// Its [`Debug`] shows the key id, the algorithm and the key type, never
/// private material.
#[derive(Clone)]
pub struct TestKey {
    /// The algorithm the signature is really made with.
    algorithm: Algorithm,
    /// The `alg` written into headers.
    alg_name: String,
    kid: &'static str,
    encoding: EncodingKey,
    /// The public JWK, with its `kid`.
    public: Map<String, Value>,
    /// The private members of the JWK (`d`, and RSA's CRT values).
    private: Map<String, Value>,
}

impl TestKey {
    fn new(der_base64: &str, algorithm: Algorithm, kid: &'static str) -> Self {
        let der = STANDARD
            .decode(der_base64)
            .expect("a test key is valid base64");
        let (kind, encoding) = match algorithm {
            Algorithm::ES256 => (Kind::Ec, EncodingKey::from_ec_der(&der)),
            Algorithm::EdDSA => (Kind::Okp, EncodingKey::from_ed_der(&der)),
            Algorithm::RS256 | Algorithm::PS256 => (Kind::Rsa, EncodingKey::from_rsa_der(&der)),
            other => unreachable!("no test key for {other:?}"),
        };
        // The public members, as jsonwebtoken derives them from the private
        // key; only the members RFC 7518 names for each key type are kept.
        let derived =
            Jwk::from_encoding_key(&encoding, algorithm).expect("jsonwebtoken reads the test key");
        let derived = serde_json::to_value(derived).expect("a JWK serializes");
        let members: &[&str] = match kind {
            Kind::Ec => &["kty", "crv", "x", "y"],
            Kind::Okp => &["kty", "crv", "x"],
            Kind::Rsa => &["kty", "n", "e"],
        };
        let mut public: Map<String, Value> = members
            .iter()
            .map(|&name| {
                let value = derived
                    .get(name)
                    .unwrap_or_else(|| panic!("the test key's JWK has no {name:?}"));
                (name.to_owned(), value.clone())
            })
            .collect();
        public.insert("kid".to_owned(), Value::String(kid.to_owned()));
        let private = private_members(kind, &der);
        Self {
            algorithm,
            alg_name: algorithm_name(algorithm).to_owned(),
            kid,
            encoding,
            public,
            private,
        }
    }

    /// A P-256 key, `alg` `ES256`.
    pub fn es256() -> Self {
        Self::new(ES256_1, Algorithm::ES256, "es256-1")
    }

    /// Another P-256 key, `alg` `ES256`.
    pub fn es256_other() -> Self {
        Self::new(ES256_2, Algorithm::ES256, "es256-2")
    }

    /// An Ed25519 key (`kty` `OKP`), `alg` `EdDSA`.
    pub fn ed25519() -> Self {
        Self::new(ED25519_1, Algorithm::EdDSA, "ed25519-1")
    }

    /// Another Ed25519 key, `alg` `EdDSA`.
    pub fn ed25519_other() -> Self {
        Self::new(ED25519_2, Algorithm::EdDSA, "ed25519-2")
    }

    /// An RSA 2048 key, `alg` `RS256` (PKCS#1 v1.5 with SHA-256).
    pub fn rs256() -> Self {
        Self::new(RSA_1, Algorithm::RS256, "rsa-1")
    }

    /// The same RSA key as [`rs256`](Self::rs256) (so the same `kid` and
    /// JWK), `alg` `PS256` (RSASSA-PSS with SHA-256).
    pub fn ps256() -> Self {
        Self::new(RSA_1, Algorithm::PS256, "rsa-1")
    }

    /// Another RSA 2048 key, `alg` `RS256`.
    pub fn rsa_other() -> Self {
        Self::new(RSA_2, Algorithm::RS256, "rsa-2")
    }

    /// Writes `name` as the `alg` of the headers this key signs, for
    /// example `Ed25519`, the fully specified name of EdDSA on Ed25519
    /// (RFC 9864), or a lie. The signature is still made with the key's
    /// real algorithm.
    #[must_use]
    pub fn with_alg_name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.alg_name);
        self
    }

    /// The `alg` written into headers.
    pub fn alg(&self) -> &str {
        &self.alg_name
    }

    /// A stable key id, distinct per key pair (`rs256` and `ps256` share
    /// one: they are the same key).
    pub fn kid(&self) -> &str {
        self.kid
    }

    /// The public JWK: `kty` and `crv`, `x`, `y` (EC), `crv`, `x` (OKP) or
    /// `n`, `e` (RSA), and `kid`. No `alg` nor `use`.
    pub fn public_jwk(&self) -> Value {
        Value::Object(self.public.clone())
    }

    /// The public JWK with the private members too: `d`, and for RSA `p`,
    /// `q`, `dp`, `dq` and `qi`. For hostile tests: a proof or a JWKS that
    /// leaks a private key.
    pub fn private_jwk(&self) -> Value {
        let mut jwk = self.public.clone();
        jwk.extend(self.private.clone());
        Value::Object(jwk)
    }

    /// A JWK set of the public JWKs of `keys`: `{"keys": [..]}`.
    pub fn jwks(keys: &[&Self]) -> Value {
        json!({ "keys": keys.iter().map(|key| key.public_jwk()).collect::<Vec<_>>() })
    }

    /// The JWK SHA-256 thumbprint (RFC 7638), base64url without padding
    /// (43 characters): what a DPoP-bound token's `jkt` holds (RFC 9449
    /// §6.1).
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.public).expect("a test key has every required member")
    }

    /// A compact JWS of exactly `header` and `claims` (serialized as given,
    /// nothing added or rewritten), signed with the key's real algorithm
    /// whatever `alg` the header names.
    ///
    /// # Panics
    ///
    /// If the signature cannot be made (it always can with these keys).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        compact(header, claims, |message| {
            jsonwebtoken::crypto::sign(message, &self.encoding, self.algorithm)
                .expect("a test key signs")
        })
    }
}

impl fmt::Debug for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg_name)
            .field("kty", &self.public["kty"])
            .finish_non_exhaustive()
    }
}

/// The JOSE name of an algorithm the test keys use.
fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        Algorithm::PS256 => "PS256",
        other => unreachable!("no test key for {other:?}"),
    }
}

/// The RFC 7638 thumbprint of a public JWK: SHA-256 of the required
/// members in lexicographic order, no whitespace. `None` if a member is
/// missing or the key type is unknown.
fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let required: &[&str] = match jwk.get("kty")?.as_str()? {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "RSA" => &["e", "kty", "n"],
        "oct" => &["k", "kty"],
        _ => return None,
    };
    let mut canonical = String::from("{");
    for (i, name) in required.iter().enumerate() {
        if i > 0 {
            canonical.push(',');
        }
        let value = jwk.get(*name)?.as_str()?;
        canonical.push_str(&Value::from(*name).to_string());
        canonical.push(':');
        canonical.push_str(&Value::from(value).to_string());
    }
    canonical.push('}');
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// One DER element of `input`: its tag, its contents and what follows it.
/// Only for the fixed keys above: panics on anything malformed.
fn der_element(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let (&tag, rest) = input.split_first().expect("DER: a tag");
    let (&first, rest) = rest.split_first().expect("DER: a length");
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let (bytes, rest) = rest.split_at(usize::from(first & 0x7f));
        let length = bytes
            .iter()
            .fold(0usize, |length, &byte| (length << 8) | usize::from(byte));
        (length, rest)
    };
    let (contents, rest) = rest.split_at(length);
    (tag, contents, rest)
}

/// The elements of a DER SEQUENCE's contents, in order.
fn der_elements(mut contents: &[u8]) -> Vec<(u8, &[u8])> {
    let mut elements = Vec::new();
    while !contents.is_empty() {
        let (tag, value, rest) = der_element(contents);
        elements.push((tag, value));
        contents = rest;
    }
    elements
}

const DER_INTEGER: u8 = 0x02;
const DER_OCTET_STRING: u8 = 0x04;
const DER_SEQUENCE: u8 = 0x30;

/// The contents of the only element of `input`, checking its tag.
fn der_single(input: &[u8], tag: u8) -> &[u8] {
    let (found, contents, rest) = der_element(input);
    assert!(
        found == tag && rest.is_empty(),
        "DER: not the expected element"
    );
    contents
}

/// The private JWK members of a fixed key, read from its DER.
fn private_members(kind: Kind, der: &[u8]) -> Map<String, Value> {
    let encode = |bytes: &[u8]| Value::String(URL_SAFE_NO_PAD.encode(bytes));
    let mut members = Map::new();
    match kind {
        Kind::Ec | Kind::Okp => {
            // PrivateKeyInfo (RFC 5208): version, algorithm, privateKey.
            let info = der_elements(der_single(der, DER_SEQUENCE));
            let (tag, private_key) = info[2];
            assert_eq!(tag, DER_OCTET_STRING, "DER: PKCS#8 privateKey");
            let d = if kind == Kind::Ec {
                // ECPrivateKey (RFC 5915): version, privateKey (the scalar,
                // full length as RFC 7518 §6.2.2.1 wants), ...
                let key = der_elements(der_single(private_key, DER_SEQUENCE));
                assert_eq!(key[1].0, DER_OCTET_STRING, "DER: ECPrivateKey");
                key[1].1
            } else {
                // CurvePrivateKey (RFC 8410): the 32-byte seed.
                der_single(private_key, DER_OCTET_STRING)
            };
            members.insert("d".to_owned(), encode(d));
        }
        Kind::Rsa => {
            // RSAPrivateKey (RFC 8017 A.1.2): version, n, e, d, p, q, dp,
            // dq, qi; as Base64urlUInt, without the sign's leading zeros.
            let key = der_elements(der_single(der, DER_SEQUENCE));
            for (name, &(tag, value)) in ["d", "p", "q", "dp", "dq", "qi"].iter().zip(&key[3..9]) {
                assert_eq!(tag, DER_INTEGER, "DER: RSAPrivateKey");
                let start = value
                    .iter()
                    .position(|&byte| byte != 0)
                    .unwrap_or(value.len() - 1);
                members.insert((*name).to_owned(), encode(&value[start..]));
            }
        }
    }
    members
}

/// `base64url(header) . base64url(claims) . signature`, the signature made
/// by `sign` over the first two parts.
fn compact(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> String) -> String {
    let part = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let message = format!("{}.{}", part(header), part(claims));
    let signature = sign(message.as_bytes());
    format!("{message}.{signature}")
}

/// An HS256 signature keyed by `secret`'s UTF-8 bytes, base64url.
fn hs256(secret: &str, message: &[u8]) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes()).expect("an HMAC secret is not empty");
    jsonwebtoken::crypto::sign(message, &key, Algorithm::HS256).expect("HMAC signs")
}

/// Whole seconds since the epoch (negative before it).
fn seconds(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// 128 random bits, base64url: a fresh `jti`.
fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The claims and the header edits of a token being built.
#[derive(Debug, Clone)]
struct Jwt {
    claims: Map<String, Value>,
    /// Applied in order over the header a signing method starts from:
    /// `Some` sets a member, `None` removes it.
    header_edits: Vec<(String, Option<Value>)>,
}

impl Jwt {
    fn new(claims: Map<String, Value>) -> Self {
        Self {
            claims,
            header_edits: Vec::new(),
        }
    }

    fn claim(&mut self, name: &str, value: Value) {
        self.claims.insert(name.to_owned(), value);
    }

    fn header(&self, base: Map<String, Value>) -> Value {
        let mut header = base;
        for (name, edit) in &self.header_edits {
            match edit {
                Some(value) => header.insert(name.clone(), value.clone()),
                None => header.remove(name),
            };
        }
        Value::Object(header)
    }

    fn claims(&self) -> Value {
        Value::Object(self.claims.clone())
    }
}

/// A JSON object of `members`.
fn object<const N: usize>(members: [(&str, Value); N]) -> Map<String, Value> {
    members
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// A client assertion (RFC 7523 §3) built in one expression: by default
/// `iss` and `sub` the client id, `aud` the audience, `iat` now, `exp` a
/// minute later and a random `jti`; signed with the header `alg` (the key's
/// [`alg`](TestKey::alg)), `typ` `JWT` and `kid` (the key's
/// [`kid`](TestKey::kid)).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tokengate::testing::jose::{ClientAssertion, TestKey};
///
/// let audience = "https://auth.example.com/token";
/// let good = ClientAssertion::new("app", audience).sign(&TestKey::rs256());
/// let replayed = ClientAssertion::new("app", audience).jti("once").sign(&TestKey::rs256());
/// let from_the_future = ClientAssertion::new("app", audience)
///     .issued_at(SystemTime::now() + Duration::from_secs(3600))
///     .sign(&TestKey::rs256());
/// let wrong_audience = ClientAssertion::new("app", "https://elsewhere.example").sign(&TestKey::rs256());
/// let client_secret_jwt = ClientAssertion::new("app", audience).sign_hs256("s3cret");
/// # let _ = (good, replayed, from_the_future, wrong_audience, client_secret_jwt);
/// ```
#[derive(Debug, Clone)]
pub struct ClientAssertion {
    jwt: Jwt,
    /// `exp` was set or removed by hand: `issued_at` leaves it alone.
    expiry_pinned: bool,
}

impl ClientAssertion {
    /// An assertion by `client_id` for `audience` (the token endpoint or
    /// the issuer), issued now, expiring in 60 seconds, with 128 random bits
    /// as its `jti`.
    pub fn new(client_id: &str, audience: &str) -> Self {
        let now = seconds(SystemTime::now());
        let lifetime = ASSERTION_LIFETIME.as_secs().cast_signed();
        Self {
            jwt: Jwt::new(object([
                ("iss", client_id.into()),
                ("sub", client_id.into()),
                ("aud", audience.into()),
                ("iat", now.into()),
                ("exp", (now + lifetime).into()),
                ("jti", random_jti().into()),
            ])),
            expiry_pinned: false,
        }
    }

    /// Issued at `at` (`iat`); `exp` moves to 60 seconds later unless it
    /// was set ([`expires_at`](Self::expires_at), or `exp` by
    /// [`claim`](Self::claim) or [`without_claim`](Self::without_claim)).
    #[must_use]
    pub fn issued_at(mut self, at: SystemTime) -> Self {
        self.jwt.claim("iat", seconds(at).into());
        if !self.expiry_pinned {
            self.jwt
                .claim("exp", seconds(at + ASSERTION_LIFETIME).into());
        }
        self
    }

    /// Expires at `at` (`exp`); `None` leaves `exp` out.
    #[must_use]
    pub fn expires_at(mut self, at: Option<SystemTime>) -> Self {
        match at {
            Some(at) => self.jwt.claim("exp", seconds(at).into()),
            None => {
                self.jwt.claims.remove("exp");
            }
        }
        self.expiry_pinned = true;
        self
    }

    /// Not valid before `at` (`nbf`).
    #[must_use]
    pub fn not_before(mut self, at: SystemTime) -> Self {
        self.jwt.claim("nbf", seconds(at).into());
        self
    }

    /// The `jti` (replay tests use the same one twice).
    #[must_use]
    pub fn jti(mut self, jti: &str) -> Self {
        self.jwt.claim("jti", jti.into());
        self
    }

    /// The `aud`: a string or an array of them (or anything, to test
    /// refusals).
    #[must_use]
    pub fn audience(mut self, aud: Value) -> Self {
        self.jwt.claim("aud", aud);
        self
    }

    /// The `iss` (by default the client id).
    #[must_use]
    pub fn issuer(mut self, iss: &str) -> Self {
        self.jwt.claim("iss", iss.into());
        self
    }

    /// The `sub` (by default the client id).
    #[must_use]
    pub fn subject(mut self, sub: &str) -> Self {
        self.jwt.claim("sub", sub.into());
        self
    }

    /// Adds or replaces any claim, with any JSON value.
    #[must_use]
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.expiry_pinned |= name == "exp";
        self.jwt.claim(name, value);
        self
    }

    /// Leaves a claim out.
    #[must_use]
    pub fn without_claim(mut self, name: &str) -> Self {
        self.expiry_pinned |= name == "exp";
        self.jwt.claims.remove(name);
        self
    }

    /// Adds or replaces a header member (`crit`, `typ`, `alg`, `jwk`, ..),
    /// over what the signing method writes.
    #[must_use]
    pub fn header(mut self, name: &str, value: Value) -> Self {
        self.jwt.header_edits.push((name.to_owned(), Some(value)));
        self
    }

    /// Leaves a header member out, even one the signing method writes.
    #[must_use]
    pub fn without_header(mut self, name: &str) -> Self {
        self.jwt.header_edits.push((name.to_owned(), None));
        self
    }

    /// `private_key_jwt`: signed by `key`, with the header `alg` (the key's
    /// [`alg`](TestKey::alg)), `typ` `JWT` and `kid`, then the
    /// [`header`](Self::header) edits.
    pub fn sign(&self, key: &TestKey) -> String {
        let header = self.jwt.header(object([
            ("alg", key.alg().into()),
            ("typ", "JWT".into()),
            ("kid", key.kid().into()),
        ]));
        key.sign(&header, &self.jwt.claims())
    }

    /// `client_secret_jwt`: HS256 keyed by the UTF-8 bytes of `secret`, with
    /// the header `alg` `HS256` and `typ` `JWT`, then the
    /// [`header`](Self::header) edits.
    ///
    /// # Panics
    ///
    /// If `secret` is empty.
    pub fn sign_hs256(&self, secret: &str) -> String {
        let header = self
            .jwt
            .header(object([("alg", "HS256".into()), ("typ", "JWT".into())]));
        compact(&header, &self.jwt.claims(), |message| {
            hs256(secret, message)
        })
    }

    /// An unsecured JWS (`alg` `none`, `typ` `JWT`, then the
    /// [`header`](Self::header) edits) with an empty signature:
    /// `<header>.<claims>.`.
    pub fn unsigned(&self) -> String {
        let header = self
            .jwt
            .header(object([("alg", "none".into()), ("typ", "JWT".into())]));
        compact(&header, &self.jwt.claims(), |_| String::new())
    }
}

/// A DPoP proof (RFC 9449 §4.2) built in one expression: the header `typ`
/// `dpop+jwt`, `alg` (the key's [`alg`](TestKey::alg)) and `jwk` (the
/// key's public JWK, without its `kid`); the claims `jti` (random), `htm`,
/// `htu` and `iat` (now).
///
/// ```
/// use tokengate::testing::jose::{DpopProof, TestKey};
///
/// let key = TestKey::es256();
/// let htu = "https://auth.example.com/token";
/// let good = DpopProof::new("POST", htu).nonce("from-the-server").sign(&key);
/// let wrong_method = DpopProof::new("GET", htu).sign(&key);
/// let someone_elses_key = DpopProof::new("POST", htu)
///     .jwk(TestKey::es256_other().public_jwk())
///     .sign(&key);
/// let symmetric = DpopProof::new("POST", htu).sign_hs256("shared");
/// # let _ = (good, wrong_method, someone_elses_key, symmetric);
/// ```
#[derive(Debug, Clone)]
pub struct DpopProof {
    jwt: Jwt,
}

impl DpopProof {
    /// A proof for a request with method `htm` to `htu`, issued now, with
    /// 128 random bits as its `jti`.
    pub fn new(htm: &str, htu: &str) -> Self {
        Self {
            jwt: Jwt::new(object([
                ("jti", random_jti().into()),
                ("htm", htm.into()),
                ("htu", htu.into()),
                ("iat", seconds(SystemTime::now()).into()),
            ])),
        }
    }

    /// Issued at `at` (`iat`).
    #[must_use]
    pub fn issued_at(mut self, at: SystemTime) -> Self {
        self.jwt.claim("iat", seconds(at).into());
        self
    }

    /// The server's `nonce` (RFC 9449 §8).
    #[must_use]
    pub fn nonce(mut self, nonce: &str) -> Self {
        self.jwt.claim("nonce", nonce.into());
        self
    }

    /// The `jti` (replay tests use the same one twice).
    #[must_use]
    pub fn jti(mut self, jti: &str) -> Self {
        self.jwt.claim("jti", jti.into());
        self
    }

    /// Adds or replaces any claim (`ath`, ..), with any JSON value.
    #[must_use]
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.jwt.claim(name, value);
        self
    }

    /// Leaves a claim out.
    #[must_use]
    pub fn without_claim(mut self, name: &str) -> Self {
        self.jwt.claims.remove(name);
        self
    }

    /// Adds or replaces a header member (`typ`, `alg`, `kid`, ..), over what
    /// the signing method writes.
    #[must_use]
    pub fn header(mut self, name: &str, value: Value) -> Self {
        self.jwt.header_edits.push((name.to_owned(), Some(value)));
        self
    }

    /// Leaves a header member out, even one the signing method writes.
    #[must_use]
    pub fn without_header(mut self, name: &str) -> Self {
        self.jwt.header_edits.push((name.to_owned(), None));
        self
    }

    /// The header's `jwk` instead of the signing key's public JWK: another
    /// key's, or a [`private_jwk`](TestKey::private_jwk).
    #[must_use]
    pub fn jwk(self, jwk: Value) -> Self {
        self.header("jwk", jwk)
    }

    /// Signed by `key`, with the header `typ` `dpop+jwt`, `alg` (the key's
    /// [`alg`](TestKey::alg)) and `jwk` (its public JWK without `kid`), then
    /// the [`header`](Self::header) edits.
    pub fn sign(&self, key: &TestKey) -> String {
        let mut jwk = key.public.clone();
        jwk.remove("kid");
        let header = self.jwt.header(object([
            ("typ", "dpop+jwt".into()),
            ("alg", key.alg().into()),
            ("jwk", Value::Object(jwk)),
        ]));
        key.sign(&header, &self.jwt.claims())
    }

    /// A (deliberately invalid) symmetric proof: HS256 keyed by the UTF-8
    /// bytes of `secret`, with the header `typ` `dpop+jwt`, `alg` `HS256`
    /// and as `jwk` that very secret (`{"kty": "oct", "k": ..}`, so the
    /// proof verifies under its own `jwk` as RFC 9449 §4.3 forbids), then
    /// the [`header`](Self::header) edits.
    ///
    /// # Panics
    ///
    /// If `secret` is empty.
    pub fn sign_hs256(&self, secret: &str) -> String {
        let header = self.jwt.header(object([
            ("typ", "dpop+jwt".into()),
            ("alg", "HS256".into()),
            (
                "jwk",
                json!({ "kty": "oct", "k": URL_SAFE_NO_PAD.encode(secret) }),
            ),
        ]));
        compact(&header, &self.jwt.claims(), |message| {
            hs256(secret, message)
        })
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, jwk::ThumbprintHash};

    use super::*;
    use crate::testing::TokenRequest;

    const AUDIENCE: &str = "https://auth.example.com/token";

    fn all_keys() -> Vec<TestKey> {
        vec![
            TestKey::es256(),
            TestKey::es256_other(),
            TestKey::ed25519(),
            TestKey::ed25519_other(),
            TestKey::rs256(),
            TestKey::ps256(),
            TestKey::rsa_other(),
        ]
    }

    /// The header, the claims and the signature of a compact JWS.
    fn parts(jws: &str) -> (Value, Value, String) {
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3, "{jws}");
        let decode = |part: &str| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        (decode(parts[0]), decode(parts[1]), parts[2].to_owned())
    }

    /// Whether `jws`'s signature verifies under the public `jwk` by
    /// `algorithm`.
    fn verifies(jws: &str, jwk: &Value, algorithm: Algorithm) -> bool {
        let jwk: Jwk = serde_json::from_value(jwk.clone()).unwrap();
        let key = DecodingKey::from_jwk(&jwk).unwrap();
        let (message, signature) = jws.rsplit_once('.').unwrap();
        jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, algorithm)
            .unwrap_or(false)
    }

    fn now() -> i64 {
        seconds(SystemTime::now())
    }

    #[test]
    fn every_key_signs_what_its_public_jwk_verifies_and_no_other_does() {
        let pairs = [
            (TestKey::es256(), TestKey::es256_other()),
            (TestKey::es256_other(), TestKey::es256()),
            (TestKey::ed25519(), TestKey::ed25519_other()),
            (TestKey::ed25519_other(), TestKey::ed25519()),
            (TestKey::rs256(), TestKey::rsa_other()),
            (TestKey::ps256(), TestKey::rsa_other()),
            (TestKey::rsa_other(), TestKey::rs256()),
        ];
        for (key, other) in pairs {
            let jws = ClientAssertion::new("app", AUDIENCE).sign(&key);
            assert!(verifies(&jws, &key.public_jwk(), key.algorithm), "{key:?}");
            assert!(
                !verifies(&jws, &other.public_jwk(), key.algorithm),
                "{key:?} by {other:?}"
            );
            // A proof verifies under the key its header carries, not another.
            let proof = DpopProof::new("POST", AUDIENCE).sign(&key);
            let (header, _, _) = parts(&proof);
            assert!(verifies(&proof, &header["jwk"], key.algorithm), "{key:?}");
            assert!(
                !verifies(&proof, &other.public_jwk(), key.algorithm),
                "{key:?}"
            );
        }
        // RS256 and PS256 are different signatures of the same key.
        let rs = ClientAssertion::new("app", AUDIENCE).sign(&TestKey::rs256());
        let ps = ClientAssertion::new("app", AUDIENCE).sign(&TestKey::ps256());
        let jwk = TestKey::rs256().public_jwk();
        assert!(verifies(&rs, &jwk, Algorithm::RS256) && !verifies(&rs, &jwk, Algorithm::PS256));
        assert!(verifies(&ps, &jwk, Algorithm::PS256) && !verifies(&ps, &jwk, Algorithm::RS256));
    }

    #[test]
    fn algorithms_and_key_ids() {
        let names: Vec<(String, String)> = all_keys()
            .iter()
            .map(|key| (key.alg().to_owned(), key.kid().to_owned()))
            .collect();
        let expected = [
            ("ES256", "es256-1"),
            ("ES256", "es256-2"),
            ("EdDSA", "ed25519-1"),
            ("EdDSA", "ed25519-2"),
            ("RS256", "rsa-1"),
            ("PS256", "rsa-1"),
            ("RS256", "rsa-2"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|&(alg, kid)| (alg.to_owned(), kid.to_owned()))
            .collect();
        assert_eq!(names, expected);
        assert_eq!(TestKey::rs256().public_jwk(), TestKey::ps256().public_jwk());
    }

    #[test]
    fn a_fully_specified_alg_name_is_written_but_the_key_signs_as_before() {
        let key = TestKey::ed25519().with_alg_name("Ed25519");
        assert_eq!(key.alg(), "Ed25519");
        let jws = ClientAssertion::new("app", AUDIENCE).sign(&key);
        let (header, _, _) = parts(&jws);
        assert_eq!(header["alg"], "Ed25519");
        assert!(verifies(&jws, &key.public_jwk(), Algorithm::EdDSA));
        // A lie about the algorithm: the signature is still ES256.
        let liar = TestKey::es256().with_alg_name("RS256");
        let jws = DpopProof::new("POST", AUDIENCE).sign(&liar);
        assert_eq!(parts(&jws).0["alg"], "RS256");
        assert!(verifies(&jws, &liar.public_jwk(), Algorithm::ES256));
    }

    #[test]
    fn public_jwks_hold_public_members_only_and_private_ones_add_the_rest() {
        for key in all_keys() {
            let public = key.public_jwk();
            let mut names: Vec<&str> = public
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            names.sort_unstable();
            let expected: &[&str] = match public["kty"].as_str().unwrap() {
                "EC" => &["crv", "kid", "kty", "x", "y"],
                "OKP" => &["crv", "kid", "kty", "x"],
                "RSA" => &["e", "kid", "kty", "n"],
                other => panic!("kty {other}"),
            };
            assert_eq!(names, expected, "{key:?}");
            assert_eq!(public["kid"], key.kid());
            assert!(public.get("d").is_none());

            let private = key.private_jwk();
            assert!(private["d"].is_string(), "{key:?}");
            for (name, value) in public.as_object().unwrap() {
                assert_eq!(&private[name], value);
            }
        }
        assert_eq!(TestKey::es256().public_jwk()["crv"], "P-256");
        assert_eq!(TestKey::ed25519().public_jwk()["crv"], "Ed25519");
        assert_eq!(TestKey::rs256().public_jwk()["e"], "AQAB");
        // 2048 bits: 256 bytes, 342 base64url characters.
        assert_eq!(
            TestKey::rs256().public_jwk()["n"].as_str().unwrap().len(),
            342
        );
    }

    #[test]
    fn private_members_match_the_keys_read_apart() {
        // Computed apart from the DER with Python's `cryptography`.
        let d = |key: TestKey| key.private_jwk()["d"].as_str().unwrap().to_owned();
        assert_eq!(
            d(TestKey::es256()),
            "hvW_sZemZomvc2xzyR5dfj7BcaL3wLnotTOlHS-RVZU"
        );
        assert_eq!(
            d(TestKey::es256_other()),
            "ppzthxIW8_g8HQ4SC-vlV_it4RXXfBxpftrXhALd8-E"
        );
        assert_eq!(
            d(TestKey::ed25519()),
            "tjl64lgbU7O-kX8lohs9aKCpQAkIim_ajqgKRPFGUog"
        );
        assert_eq!(
            d(TestKey::ed25519_other()),
            "8by630AUn5rhiULTUEtGvcieVEIJPIFXpSbOmzyYI_U"
        );
        // RSA: the SHA-256 of d.p.q.dp.dq.qi.
        let rsa = |key: TestKey| {
            let jwk = key.private_jwk();
            let joined = ["d", "p", "q", "dp", "dq", "qi"]
                .map(|name| jwk[name].as_str().unwrap().to_owned())
                .join(".");
            URL_SAFE_NO_PAD.encode(Sha256::digest(joined.as_bytes()))
        };
        assert_eq!(
            rsa(TestKey::rs256()),
            "EWL8SbXcgUJNJLt9cusMvGSwCMOB6pYX73PsIN8vPCw"
        );
        assert_eq!(
            rsa(TestKey::rsa_other()),
            "lg-UCZfiasozP1eE3Dj7rJxAwxzXTiv89Do22dWIvjk"
        );
    }

    #[test]
    fn thumbprints_follow_rfc_7638() {
        // RFC 7638 §3.1.
        let example = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29",
        });
        assert_eq!(
            thumbprint(example.as_object().unwrap()).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );

        let mut seen = Vec::new();
        for key in all_keys() {
            let print = key.thumbprint();
            let jwk: Jwk = serde_json::from_value(key.public_jwk()).unwrap();
            assert_eq!(
                print,
                jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
                "{key:?}"
            );
            assert_eq!(print.len(), 43);
            assert!(
                print
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            // The kid and the alg name do not count.
            assert_eq!(key.clone().with_alg_name("Ed25519").thumbprint(), print);
            seen.push(print);
        }
        // Computed apart with Python's `cryptography` and `hashlib`.
        assert_eq!(seen[0], "0Rkvv403B69M_jszUm93QSG0vSB5hQrQDff58TWACKA");
        assert_eq!(seen[1], "RVXBtmp8jauX_YiED5XA8KxrpYpjxHc4sTzlOzSzTx0");
        assert_eq!(seen[2], "MumLk3L-io7gdwloypilztMgE2TRCWdd_4CxmilnFis");
        assert_eq!(seen[3], "OyXNpnMxA9Vg7EiroTXRDOLeqnSAwNKqU1kGND5YjhQ");
        assert_eq!(seen[4], "HD6A1zQ3DZDiCK6bOrPZ3d--o5Lt4rLHgFDXYuFG-R0");
        assert_eq!(seen[5], seen[4]);
        assert_eq!(seen[6], "B5DorHjVq7VaPko91-HSj3roMP7Y0ARg3GR5iSw0tOI");
    }

    #[test]
    fn debug_never_shows_private_material() {
        for key in all_keys() {
            let debug = format!("{key:?}");
            assert!(
                debug.contains(key.kid()) && debug.contains(key.alg()),
                "{debug}"
            );
            for (name, value) in key.private_jwk().as_object().unwrap() {
                if key.public_jwk().get(name).is_none() {
                    assert!(!debug.contains(value.as_str().unwrap()), "{debug}");
                }
            }
            assert!(
                !debug.contains("MI") && !debug.contains("content"),
                "{debug}"
            );
        }
    }

    #[test]
    fn jwks_lists_public_jwks() {
        let (a, b) = (TestKey::es256(), TestKey::rsa_other());
        assert_eq!(
            TestKey::jwks(&[&a, &b]),
            json!({ "keys": [a.public_jwk(), b.public_jwk()] })
        );
        assert_eq!(TestKey::jwks(&[]), json!({ "keys": [] }));
    }

    #[test]
    fn test_key_sign_writes_the_header_exactly_as_given() {
        let key = TestKey::es256();
        let header = json!({ "alg": "none", "zzz": [1, 2], "crit": ["exp"] });
        let claims = json!({ "a": 1 });
        let jws = key.sign(&header, &claims);
        let first = jws.split('.').next().unwrap();
        assert_eq!(first, URL_SAFE_NO_PAD.encode(header.to_string()));
        let (decoded_header, decoded_claims, _) = parts(&jws);
        assert_eq!((decoded_header, decoded_claims), (header, claims));
        assert!(verifies(&jws, &key.public_jwk(), Algorithm::ES256));
    }

    #[test]
    fn a_client_assertion_has_the_rfc_7523_claims_and_header() {
        let key = TestKey::es256();
        let before = now();
        let jws = ClientAssertion::new("app", AUDIENCE).sign(&key);
        let after = now();
        let (header, claims, _) = parts(&jws);
        assert_eq!(
            header,
            json!({ "alg": "ES256", "typ": "JWT", "kid": "es256-1" })
        );
        assert_eq!(claims["iss"], "app");
        assert_eq!(claims["sub"], "app");
        assert_eq!(claims["aud"], AUDIENCE);
        let iat = claims["iat"].as_i64().unwrap();
        assert!((before..=after).contains(&iat));
        assert_eq!(claims["exp"].as_i64().unwrap(), iat + 60);
        let jti = claims["jti"].as_str().unwrap();
        // 128 bits, base64url.
        assert_eq!(URL_SAFE_NO_PAD.decode(jti).unwrap().len(), 16);
        assert_eq!(claims.as_object().unwrap().len(), 6);
        let again = parts(&ClientAssertion::new("app", AUDIENCE).sign(&key)).1;
        assert_ne!(again["jti"], claims["jti"]);
    }

    #[test]
    fn client_assertion_times() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let claims = |assertion: ClientAssertion| parts(&assertion.unsigned()).1;

        let moved = claims(ClientAssertion::new("app", AUDIENCE).issued_at(at));
        assert_eq!(moved["iat"], 1_700_000_000);
        assert_eq!(moved["exp"], 1_700_000_060);

        let pinned = claims(
            ClientAssertion::new("app", AUDIENCE)
                .expires_at(Some(at + Duration::from_secs(5)))
                .issued_at(at),
        );
        assert_eq!(pinned["exp"], 1_700_000_005);
        assert_eq!(pinned["iat"], 1_700_000_000);

        let endless = claims(
            ClientAssertion::new("app", AUDIENCE)
                .expires_at(None)
                .issued_at(at),
        );
        assert!(endless.get("exp").is_none());
        let endless = claims(
            ClientAssertion::new("app", AUDIENCE)
                .without_claim("exp")
                .issued_at(at),
        );
        assert!(endless.get("exp").is_none());
        let by_claim = claims(
            ClientAssertion::new("app", AUDIENCE)
                .claim("exp", json!("soon"))
                .issued_at(at),
        );
        assert_eq!(by_claim["exp"], "soon");

        let nbf = claims(
            ClientAssertion::new("app", AUDIENCE).not_before(at + Duration::from_millis(1_999)),
        );
        assert_eq!(nbf["nbf"], 1_700_000_001);
        // Before the epoch: negative seconds.
        let old = claims(
            ClientAssertion::new("app", AUDIENCE).issued_at(UNIX_EPOCH - Duration::from_secs(10)),
        );
        assert_eq!(old["iat"], -10);
        assert_eq!(old["exp"], 50);
    }

    #[test]
    fn client_assertion_claims_and_header_edits() {
        let key = TestKey::ed25519();
        let jws = ClientAssertion::new("app", AUDIENCE)
            .jti("once")
            .audience(json!([AUDIENCE, "https://auth.example.com"]))
            .issuer("someone")
            .subject("else")
            .claim("extra", json!({ "nested": true }))
            .without_claim("iat")
            .header("crit", json!(["exp"]))
            .header("typ", json!("client-authentication+jwt"))
            .without_header("kid")
            .sign(&key);
        let (header, claims, _) = parts(&jws);
        assert_eq!(
            header,
            json!({ "alg": "EdDSA", "typ": "client-authentication+jwt", "crit": ["exp"] })
        );
        assert_eq!(claims["jti"], "once");
        assert_eq!(claims["aud"], json!([AUDIENCE, "https://auth.example.com"]));
        assert_eq!(claims["iss"], "someone");
        assert_eq!(claims["sub"], "else");
        assert_eq!(claims["extra"], json!({ "nested": true }));
        assert!(claims.get("iat").is_none());
        assert!(verifies(&jws, &key.public_jwk(), Algorithm::EdDSA));

        // Edits apply in order, over what the signing method writes.
        let (header, _, _) = parts(
            &ClientAssertion::new("app", AUDIENCE)
                .without_header("alg")
                .header("alg", json!("HS256"))
                .header("kid", json!("forged"))
                .sign(&key),
        );
        assert_eq!(
            header,
            json!({ "alg": "HS256", "typ": "JWT", "kid": "forged" })
        );
        let (header, _, _) = parts(
            &ClientAssertion::new("app", AUDIENCE)
                .header("alg", json!("ES256"))
                .without_header("alg")
                .sign(&key),
        );
        assert_eq!(header, json!({ "typ": "JWT", "kid": "ed25519-1" }));
    }

    #[test]
    fn unsigned_and_hs256_assertions() {
        let assertion = ClientAssertion::new("app", AUDIENCE);
        let unsigned = assertion.unsigned();
        assert!(unsigned.ends_with('.'));
        let (header, claims, signature) = parts(&unsigned);
        assert_eq!(header, json!({ "alg": "none", "typ": "JWT" }));
        assert!(signature.is_empty());
        assert_eq!(claims["iss"], "app");

        let jws = assertion.sign_hs256("s3cret");
        let (header, hs_claims, _) = parts(&jws);
        assert_eq!(header, json!({ "alg": "HS256", "typ": "JWT" }));
        assert_eq!(hs_claims, claims);
        let (message, signature) = jws.rsplit_once('.').unwrap();
        let verify = |secret: &str| {
            let key = DecodingKey::from_secret(secret.as_bytes()).unwrap();
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, Algorithm::HS256)
                .unwrap()
        };
        assert!(verify("s3cret"));
        assert!(!verify("s3cres"));

        // The header says HS512; the signature is still HS256.
        let jws = assertion
            .clone()
            .header("alg", json!("HS512"))
            .sign_hs256("s3cret");
        assert_eq!(parts(&jws).0["alg"], "HS512");
        let (message, signature) = jws.rsplit_once('.').unwrap();
        let key = DecodingKey::from_secret(b"s3cret").unwrap();
        assert!(
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, Algorithm::HS256)
                .unwrap()
        );
        // A header edit reaches unsigned tokens too.
        let unsigned = assertion.header("alg", json!("None")).unsigned();
        assert_eq!(parts(&unsigned).0["alg"], "None");
    }

    #[test]
    fn a_dpop_proof_has_the_rfc_9449_claims_and_header() {
        let key = TestKey::es256();
        let before = now();
        let proof = DpopProof::new("POST", AUDIENCE).sign(&key);
        let after = now();
        let (header, claims, _) = parts(&proof);
        let mut jwk = key.public_jwk();
        jwk.as_object_mut().unwrap().remove("kid");
        assert_eq!(
            header,
            json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk })
        );
        assert!(header["jwk"].get("kid").is_none());
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], AUDIENCE);
        assert!((before..=after).contains(&claims["iat"].as_i64().unwrap()));
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(claims["jti"].as_str().unwrap())
                .unwrap()
                .len(),
            16
        );
        assert_eq!(claims.as_object().unwrap().len(), 4);
        assert_ne!(
            parts(&DpopProof::new("POST", AUDIENCE).sign(&key)).1["jti"],
            claims["jti"]
        );
    }

    #[test]
    fn dpop_proof_edits() {
        let key = TestKey::rs256();
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let proof = DpopProof::new("GET", "https://rs.example/x")
            .issued_at(at)
            .nonce("n-1")
            .jti("once")
            .claim("ath", json!("fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"))
            .without_claim("htu")
            .header("kid", json!("rsa-1"))
            .without_header("typ")
            .jwk(key.private_jwk())
            .sign(&key);
        let (header, claims, _) = parts(&proof);
        assert_eq!(
            header,
            json!({ "alg": "RS256", "kid": "rsa-1", "jwk": key.private_jwk() })
        );
        assert_eq!(
            claims,
            json!({
                "jti": "once",
                "htm": "GET",
                "iat": 1_700_000_000,
                "nonce": "n-1",
                "ath": "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo",
            })
        );
        assert!(verifies(&proof, &key.public_jwk(), Algorithm::RS256));

        // Another key's JWK in the header: the signature does not match it.
        let other = TestKey::rsa_other();
        let proof = DpopProof::new("POST", AUDIENCE)
            .jwk(other.public_jwk())
            .sign(&key);
        let (header, _, _) = parts(&proof);
        assert_eq!(header["jwk"], other.public_jwk());
        assert!(!verifies(&proof, &header["jwk"], Algorithm::RS256));
    }

    #[test]
    fn a_symmetric_dpop_proof_verifies_under_its_own_secret() {
        let proof = DpopProof::new("POST", AUDIENCE).sign_hs256("shared");
        let (header, claims, _) = parts(&proof);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["jwk"], json!({ "kty": "oct", "k": "c2hhcmVk" }));
        assert_eq!(claims["htm"], "POST");
        assert!(verifies(&proof, &header["jwk"], Algorithm::HS256));
        let (message, signature) = proof.rsplit_once('.').unwrap();
        let key = DecodingKey::from_secret(b"shared").unwrap();
        assert!(
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, Algorithm::HS256)
                .unwrap()
        );
        let bare = DpopProof::new("POST", AUDIENCE)
            .without_header("jwk")
            .sign_hs256("shared");
        assert!(parts(&bare).0.get("jwk").is_none());
    }

    #[test]
    fn token_requests_carry_assertions_and_proofs() {
        let assertion = ClientAssertion::new("app", AUDIENCE).sign(&TestKey::es256());
        let proof = DpopProof::new("POST", AUDIENCE).sign(&TestKey::ed25519());
        let request = TokenRequest::client_credentials()
            .client_assertion(&assertion)
            .dpop(&proof)
            .build();
        let params: Vec<(String, String)> = form_urlencoded::parse(request.body().as_bytes())
            .into_owned()
            .collect();
        assert!(params.contains(&(
            "client_assertion_type".to_owned(),
            ASSERTION_TYPE.to_owned()
        )));
        assert!(params.contains(&("client_assertion".to_owned(), assertion.clone())));
        let proofs: Vec<_> = request.headers().get_all("dpop").iter().collect();
        assert_eq!(proofs, [proof.as_str()]);

        // Twice: two headers (RFC 9449 §4.3 refuses that).
        let request = TokenRequest::client_credentials()
            .dpop(&proof)
            .dpop("x")
            .build();
        assert_eq!(request.headers().get_all("dpop").iter().count(), 2);
        // JSON bodies carry them too.
        let request = TokenRequest::client_credentials()
            .client_assertion(&assertion)
            .json()
            .build();
        let body: Value = serde_json::from_str(request.body()).unwrap();
        assert_eq!(body["client_assertion_type"], ASSERTION_TYPE);
        assert_eq!(body["client_assertion"], assertion.as_str());
        assert!(
            TokenRequest::client_credentials()
                .build()
                .headers()
                .get("dpop")
                .is_none()
        );
    }
}
