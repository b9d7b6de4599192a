//! PKCE (RFC 7636): the challenge bound to a code and the check of the
//! verifier that redeems it.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The transformation a client applied to its verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PkceMethod {
    /// `S256`: `BASE64URL(SHA256(verifier))`.
    S256,
    /// `plain`: the challenge is the verifier. Refused unless enabled on the
    /// layer (RFC 7636 §7.2; GitHub refuses it too).
    #[serde(rename = "plain")]
    Plain,
}

impl PkceMethod {
    /// The `code_challenge_method` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::S256 => "S256",
            Self::Plain => "plain",
        }
    }
}

/// A code challenge bound to an authorization code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkceChallenge {
    /// The transformation.
    pub method: PkceMethod,
    /// The `code_challenge` value as the client sent it.
    pub challenge: String,
}

impl PkceChallenge {
    /// Validates a `code_challenge` / `code_challenge_method` pair from an
    /// authorization request. A missing method means `plain` (RFC 7636 §4.3),
    /// which is refused unless `allow_plain`.
    pub fn parse(
        challenge: &str,
        method: Option<&str>,
        allow_plain: bool,
    ) -> Result<Self, &'static str> {
        let method = match method.unwrap_or("plain") {
            "S256" => PkceMethod::S256,
            "plain" if allow_plain => PkceMethod::Plain,
            "plain" => return Err("code_challenge_method plain is not allowed, use S256"),
            _ => return Err("code_challenge_method must be S256"),
        };
        let well_formed = match method {
            // The base64url form of a 32-byte digest, without padding.
            PkceMethod::S256 => {
                challenge.len() == 43
                    && URL_SAFE_NO_PAD
                        .decode(challenge)
                        .is_ok_and(|bytes| bytes.len() == 32)
            }
            PkceMethod::Plain => is_verifier_syntax(challenge),
        };
        if !well_formed {
            return Err("code_challenge is malformed");
        }
        Ok(Self {
            method,
            challenge: challenge.to_owned(),
        })
    }

    /// The S256 challenge of `verifier`.
    ///
    /// ```
    /// use tokengate::pkce::PkceChallenge;
    /// // RFC 7636 Appendix B.
    /// let c = PkceChallenge::s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    /// assert_eq!(c.challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    /// ```
    pub fn s256(verifier: &str) -> Self {
        Self {
            method: PkceMethod::S256,
            challenge: URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        }
    }
}

/// Why a verifier was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerifierError {
    /// Not 43-128 characters of `[A-Za-z0-9-._~]`.
    Malformed,
    /// Well formed, but does not match the challenge.
    Mismatch,
}

/// Checks `verifier` against `challenge`, comparing in constant time.
pub(crate) fn verify(
    challenge: &PkceChallenge,
    verifier: &str,
    allow_plain: bool,
) -> Result<(), VerifierError> {
    if !is_verifier_syntax(verifier) {
        return Err(VerifierError::Malformed);
    }
    let matches: bool = match challenge.method {
        PkceMethod::S256 => {
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            computed
                .as_bytes()
                .ct_eq(challenge.challenge.as_bytes())
                .into()
        }
        // A code issued while plain was allowed is not honoured after it is
        // switched off.
        PkceMethod::Plain => {
            allow_plain && bool::from(verifier.as_bytes().ct_eq(challenge.challenge.as_bytes()))
        }
    };
    if matches {
        Ok(())
    } else {
        Err(VerifierError::Mismatch)
    }
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
fn is_verifier_syntax(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector() {
        let c = PkceChallenge::parse(CHALLENGE, Some("S256"), false).unwrap();
        assert_eq!(verify(&c, VERIFIER, false), Ok(()));
        let wrong = VERIFIER.replace('d', "e");
        assert_eq!(verify(&c, &wrong, false), Err(VerifierError::Mismatch));
    }

    #[test]
    fn verifier_syntax_is_enforced() {
        let c = PkceChallenge::s256(VERIFIER);
        assert_eq!(verify(&c, "short", false), Err(VerifierError::Malformed));
        assert_eq!(
            verify(&c, &"a".repeat(129), false),
            Err(VerifierError::Malformed)
        );
        assert_eq!(
            verify(&c, &format!("{}!", &VERIFIER[..43]), false),
            Err(VerifierError::Malformed)
        );
        assert_eq!(
            verify(&c, &"a".repeat(128), false),
            Err(VerifierError::Mismatch)
        );
    }

    #[test]
    fn plain_only_when_enabled() {
        assert!(PkceChallenge::parse(VERIFIER, Some("plain"), false).is_err());
        assert!(PkceChallenge::parse(VERIFIER, None, false).is_err());
        let c = PkceChallenge::parse(VERIFIER, None, true).unwrap();
        assert_eq!(c.method, PkceMethod::Plain);
        assert_eq!(verify(&c, VERIFIER, true), Ok(()));
        assert_eq!(verify(&c, VERIFIER, false), Err(VerifierError::Mismatch));
    }

    #[test]
    fn method_names_are_the_wire_values() {
        assert_eq!(PkceMethod::S256.as_str(), "S256");
        assert_eq!(PkceMethod::Plain.as_str(), "plain");
        // The name parses back to the method, and is the stored (serde) form.
        for method in [PkceMethod::S256, PkceMethod::Plain] {
            let challenge = match method {
                PkceMethod::S256 => CHALLENGE,
                PkceMethod::Plain => VERIFIER,
            };
            let parsed = PkceChallenge::parse(challenge, Some(method.as_str()), true).unwrap();
            assert_eq!(parsed.method, method);
            assert_eq!(
                serde_json::to_string(&method).unwrap(),
                format!("\"{}\"", method.as_str())
            );
        }
    }

    #[test]
    fn challenge_syntax_is_checked_at_issuance() {
        assert!(PkceChallenge::parse("abc", Some("S256"), false).is_err());
        assert!(PkceChallenge::parse(CHALLENGE, Some("S512"), false).is_err());
        assert!(PkceChallenge::parse(&CHALLENGE.replace('-', "+"), Some("S256"), false).is_err());
    }
}
