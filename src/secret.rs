//! Digests, constant-time comparison and fresh random values.
//!
//! Nothing secret is kept in the clear: client secrets are stored as SHA-256
//! digests and codes are looked up by the digest of their value, so a dump of
//! any store reveals neither a live secret nor a live code.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 digest of a client secret.
///
/// Client secrets are high-entropy values chosen by the server, so a plain
/// SHA-256 keeps a leaked table useless without slowing every token request
/// the way a password hash would.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    /// The digest of `secret`.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// A digest given as 64 hexadecimal digits, as stored by a backend.
    pub fn from_hex(digits: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(digits, &mut out).ok()?;
        Some(Self(out))
    }

    /// The digest as 64 lowercase hexadecimal digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Compares in constant time.
    pub(crate) fn matches(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest(<redacted>)")
    }
}

/// The key a code is stored under: the SHA-256 digest of the code's value.
///
/// Stores never see a code itself, only this key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeKey([u8; 32]);

impl CodeKey {
    /// The key of the code `code`.
    pub fn of(code: &str) -> Self {
        Self(Sha256::digest(code.as_bytes()).into())
    }

    /// The raw digest bytes, for backends that store binary keys.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as 64 lowercase hexadecimal digits, for backends that store
    /// text keys.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The refresh-token family started by the authorization code with
    /// this key: derived, not drawn, so that a replay of the code can revoke
    /// the tokens issued from it (RFC 6749 §4.1.2) with no link kept in any
    /// store. A domain-separated SHA-256 of the key, base64url (43
    /// characters, the length of a random family): it cannot collide with
    /// another use of the key's digest, and reveals neither the code nor
    /// the key.
    pub(crate) fn code_family(&self) -> String {
        let digest = Sha256::new()
            .chain_update(CODE_FAMILY_DOMAIN)
            .chain_update(self.0)
            .finalize();
        URL_SAFE_NO_PAD.encode(digest)
    }
}

/// Separates [`CodeKey::code_family`]'s hash from every other SHA-256 the
/// crate takes (the NUL ends it: no key byte sequence extends it).
const CODE_FAMILY_DOMAIN: &[u8] = b"tokengate refresh family of an authorization code v1\0";

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is not the code, but a prefix is enough to correlate logs.
        write!(f, "CodeKey({}..)", &hex::encode(&self.0[..4]))
    }
}

/// A fresh random code: 256 bits from the operating system, base64url (43
/// characters). RFC 6749 §10.10 asks for at least 128 bits.
pub(crate) fn random_code() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// `N` random bytes from the operating system, as `2 * N` lowercase
/// hexadecimal digits.
fn random_hex<const N: usize>() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// What the refresh tokens and device codes the gate mints look like
/// ([`Builder::token_shape`](crate::Builder::token_shape)). Whatever the shape, a value is only ever
/// stored as the SHA-256 of its text ([`CodeKey`]), and clients must treat
/// it as opaque: the shape is for clients and tools that recognise
/// GitHub's values by their look (secret scanners, SDKs, fixtures).
///
/// The default follows the dialect: [`GitHub`](Self::GitHub) in
/// [`Dialect::GitHub`](crate::Dialect::GitHub), [`Opaque`](Self::Opaque) in
/// [`Dialect::Rfc6749`](crate::Dialect::Rfc6749).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenShape {
    /// 256 random bits, base64url without padding (43 characters of
    /// `A-Z a-z 0-9 - _`), for refresh tokens and device codes alike.
    Opaque,
    /// GitHub's look: a refresh token is `ghr_` and 64 lowercase
    /// hexadecimal digits (256 random bits; GitHub's own are `ghr_` and
    /// letters and digits, so nothing after the prefix is `-` or `_`); a
    /// device code is 40 lowercase hexadecimal digits (160 random bits, as
    /// GitHub's).
    GitHub,
}

impl TokenShape {
    /// A fresh refresh token of this shape.
    pub(crate) fn refresh_token(self) -> Result<String, getrandom::Error> {
        match self {
            Self::Opaque => random_code(),
            Self::GitHub => Ok(format!("{GITHUB_REFRESH_PREFIX}{}", random_hex::<32>()?)),
        }
    }

    /// A fresh device code of this shape.
    pub(crate) fn device_code(self) -> Result<String, getrandom::Error> {
        match self {
            Self::Opaque => random_code(),
            Self::GitHub => random_hex::<20>(),
        }
    }
}

/// What GitHub's refresh tokens start with.
const GITHUB_REFRESH_PREFIX: &str = "ghr_";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trips_through_hex() {
        let d = SecretDigest::of("7Fjfp0ZBr1KtDRbnfVdmIw");
        assert_eq!(SecretDigest::from_hex(&d.to_hex()), Some(d.clone()));
        assert!(d.matches(&SecretDigest::of("7Fjfp0ZBr1KtDRbnfVdmIw")));
        assert!(!d.matches(&SecretDigest::of("7Fjfp0ZBr1KtDRbnfVdmIx")));
        assert_eq!(SecretDigest::from_hex("zz"), None);
    }

    #[test]
    fn debug_never_shows_the_digest() {
        let d = SecretDigest::of("hunter2");
        assert_eq!(format!("{d:?}"), "SecretDigest(<redacted>)");
    }

    /// SHA-256("abc"), FIPS 180-2 Appendix B.1.
    const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn code_keys_are_the_sha256_of_the_code() {
        let key = CodeKey::of("abc");
        // What a backend stores: the text key and the binary key agree.
        assert_eq!(key.to_hex(), SHA256_ABC);
        assert_eq!(hex::encode(key.as_bytes()), SHA256_ABC);
        assert_eq!(SecretDigest::of("abc").to_hex(), SHA256_ABC);
        assert_ne!(CodeKey::of("abd").to_hex(), SHA256_ABC);
        assert_ne!(CodeKey::of("abd").as_bytes(), key.as_bytes());
    }

    #[test]
    fn code_key_debug_shows_only_a_prefix() {
        let key = CodeKey::of("abc");
        assert_eq!(format!("{key:?}"), "CodeKey(ba7816bf..)");
    }

    #[test]
    fn a_code_family_is_fixed_per_code_and_domain_separated() {
        let key = CodeKey::of("abc");
        let family = key.code_family();
        // Deterministic: the gate derives it again at the replay.
        assert_eq!(family, CodeKey::of("abc").code_family());
        assert_ne!(family, CodeKey::of("abd").code_family());
        // The length of a random family, base64url.
        assert_eq!(family.len(), 43);
        assert!(
            family
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        // Not the key itself, nor a bare hash of it.
        let bare = URL_SAFE_NO_PAD.encode(Sha256::digest(key.as_bytes()));
        assert_ne!(family, bare);
        assert_ne!(family, URL_SAFE_NO_PAD.encode(key.as_bytes()));
        // Pinned (computed apart, with Python's hashlib): a change would
        // orphan every family issued before it, so replays of older codes
        // would revoke nothing.
        assert_eq!(family, "RnlGWWL7AHki39kOdUccdJqmxYhkRlWRrMpSciHbmQw");
    }

    fn is_lower_hex(text: &str) -> bool {
        text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    #[test]
    fn github_shapes_are_ghr_and_hex() {
        let token = TokenShape::GitHub.refresh_token().unwrap();
        let digits = token.strip_prefix("ghr_").expect("the ghr_ prefix");
        assert_eq!(digits.len(), 64, "{token}");
        assert!(is_lower_hex(digits), "{token}");
        let code = TokenShape::GitHub.device_code().unwrap();
        assert_eq!(code.len(), 40, "{code}");
        assert!(is_lower_hex(&code), "{code}");
        assert_ne!(TokenShape::GitHub.refresh_token().unwrap(), token);
        assert_ne!(TokenShape::GitHub.device_code().unwrap(), code);
    }

    #[test]
    fn opaque_shapes_are_43_base64url_characters() {
        for value in [
            TokenShape::Opaque.refresh_token().unwrap(),
            TokenShape::Opaque.device_code().unwrap(),
        ] {
            assert_eq!(value.len(), 43, "{value}");
            assert!(
                value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{value}"
            );
        }
    }

    #[test]
    fn random_codes_are_long_and_distinct() {
        let a = random_code().unwrap();
        let b = random_code().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}
