//! Entry points for the `cargo fuzz` targets in `fuzz/` (feature
//! `fuzzing`): the crate's private parsers, reachable without making them
//! part of the API. Not covered by semver.

use bytes::Bytes;
use http::{HeaderValue, request::Parts};

use crate::{dialect::Dialect, parse, telemetry::Endpoint};

/// Parses a token request as the gate does. `Ok` carries how many of the
/// known parameters were present, so the fuzzer sees the parse's result.
pub fn parse_token_request(parts: &Parts, body: &Bytes, dialect: Dialect) -> Result<usize, String> {
    match parse::parse(parts, body, dialect, Endpoint::Token) {
        Ok(request) => Ok(request.present()),
        Err(failure) => Err(format!("{failure:?}")),
    }
}

/// Decodes an `Authorization: Basic` header: the client id and secret, or
/// why not.
pub fn parse_basic(value: &HeaderValue) -> Result<(String, String), String> {
    parse::basic::parse(value)
        .map(|credentials| (credentials.client_id, credentials.client_secret))
        .map_err(|failure| format!("{failure:?}"))
}

/// What the signed-request entry points check against: a token endpoint at
/// [`FUZZ_HTU`], the clock stopped at [`FUZZ_NOW`] (seconds since the
/// epoch), the default lifetimes (assertions 300 s, proofs 60 s, 30 s of
/// leeway), and one client, [`FUZZ_CLIENT`], registered for
/// `private_key_jwt` with one P-256 key (the test kit's
/// `TestKey::es256()`).
#[cfg(feature = "jose")]
pub const FUZZ_HTU: &str = "https://as.example/token";
/// The issuer of the signed-request entry points: an assertion's other
/// accepted audience.
#[cfg(feature = "jose")]
pub const FUZZ_ISSUER: &str = "https://as.example";
/// The fixed time of the signed-request entry points.
#[cfg(feature = "jose")]
pub const FUZZ_NOW: u64 = 1_800_000_000;
/// The one client the assertion entry point knows.
#[cfg(feature = "jose")]
pub const FUZZ_CLIENT: &str = "fuzz-client";

#[cfg(feature = "jose")]
mod signed {
    use std::{
        sync::LazyLock,
        time::{Duration, SystemTime, UNIX_EPOCH},
    };

    use super::{FUZZ_CLIENT, FUZZ_HTU, FUZZ_ISSUER, FUZZ_NOW};
    use crate::{
        client::Client,
        jose::{Jws, assertion, dpop},
        jwks::Jwks,
    };

    /// The defaults of [`Builder`](crate::Builder).
    const LIFETIME: Duration = Duration::from_secs(300);
    const LEEWAY: Duration = Duration::from_secs(30);
    const WINDOW: Duration = Duration::from_secs(60);

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(FUZZ_NOW)
    }

    static CLIENT: LazyLock<Client> = LazyLock::new(|| {
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "es256-1",
            "x": "1MvxXMivbW3FMZIZYLG2HSrKcPU3FuSOtz3_UOyrFQI",
            "y": "3v6onm_JHa4GJNIjod90HHWZ0qfI89JiBn77MarSVgA",
        }]});
        let jwks = Jwks::from_json(&jwks).expect("the fuzzing client's key is valid");
        Client::confidential(FUZZ_CLIENT).with_jwks(jwks)
    });

    /// Splits and decodes a compact JWS as the gate does (size, base64url,
    /// JSON without repeated members, no `crit`): its header's `alg`, or
    /// why not.
    pub fn parse_jws(token: &str) -> Result<String, String> {
        Jws::parse(token)
            .map(|jws| jws.header.alg)
            .map_err(|why| why.0.to_owned())
    }

    /// Checks a DPoP proof as the gate does for a `POST` to [`FUZZ_HTU`]
    /// at [`FUZZ_NOW`] (every rule but the `jti`'s single use and the
    /// nonce): the thumbprint of its key, or why not.
    pub fn check_dpop_proof(proof: &str) -> Result<String, String> {
        let rules = dpop::Rules {
            htu: FUZZ_HTU,
            window: WINDOW,
            leeway: LEEWAY,
            now: now(),
        };
        dpop::verify(proof, &rules)
            .map(|proof| proof.jkt)
            .map_err(|why| why.0.to_owned())
    }

    /// Checks a client assertion as the gate does for a request without a
    /// `client_id` parameter (the client is the assertion's `sub`), at
    /// [`FUZZ_NOW`], with [`FUZZ_CLIENT`] the only client known (everything
    /// but the `jti`'s single use).
    pub fn check_client_assertion(token: &str) -> Result<(), String> {
        let jws = Jws::parse(token).map_err(|why| why.0.to_owned())?;
        let client_id = assertion::subject(&jws).ok_or("no sub")?.to_owned();
        let client = (client_id == FUZZ_CLIENT).then_some(&*CLIENT);
        let rules = assertion::Rules {
            audiences: [FUZZ_ISSUER, FUZZ_HTU],
            max_lifetime: LIFETIME,
            leeway: LEEWAY,
            now: now(),
        };
        assertion::verify(&jws, client, &client_id, &rules)
            .map(|_| ())
            .map_err(|why| why.0.to_owned())?;
        // An unknown client never passes: the gate refuses it after the
        // checks.
        client
            .map(|_| ())
            .ok_or_else(|| "unknown client".to_owned())
    }

    /// Reads and checks a client's JWK set as registration does: the set
    /// as it would be stored (JSON), or why not.
    pub fn parse_jwks(json: &str) -> Result<String, String> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        Jwks::from_json(&value)
            .map(|jwks| jwks.to_json().to_string())
            .map_err(|e| e.to_string())
    }
}

#[cfg(feature = "jose")]
pub use signed::{check_client_assertion, check_dpop_proof, parse_jwks, parse_jws};

/// The `jws` target's seeds are what their names say: a valid proof
/// passes with its key's thumbprint, every hostile one is refused for its
/// own reason. A seed without an expectation here fails the test.
#[cfg(all(test, feature = "jose"))]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    /// A seed of lines, `header\nclaims\nsignature`, encoded as the target
    /// does.
    fn from_lines(text: &str) -> String {
        let mut lines = text.splitn(3, '\n');
        let (header, claims) = (lines.next().unwrap(), lines.next().unwrap());
        let signature = lines.next().unwrap_or("");
        let encode = |json: &str| URL_SAFE_NO_PAD.encode(json);
        format!("{}.{}.{signature}", encode(header), encode(claims))
    }

    #[track_caller]
    fn refused<T: std::fmt::Debug>(result: Result<T, String>, why: &str) {
        match result {
            Err(error) => assert!(error.contains(why), "{error:?} is not {why:?}"),
            Ok(accepted) => panic!("accepted ({accepted:?}), not refused for {why:?}"),
        }
    }

    #[test]
    fn the_jws_seeds_are_what_their_names_say() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/jws");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("the jws seeds") {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let token = if name.starts_with("seed-lines-") {
                from_lines(&text)
            } else {
                text.clone()
            };
            let proof = || check_dpop_proof(&token);
            let assertion = || check_client_assertion(&token);
            match name.as_str() {
                // RFC 7638 thumbprints of the test kit's keys.
                "seed-dpop-es256" | "seed-lines-dpop-es256" => assert_eq!(
                    proof().as_deref(),
                    Ok("0Rkvv403B69M_jszUm93QSG0vSB5hQrQDff58TWACKA")
                ),
                "seed-dpop-ed25519" => assert_eq!(
                    proof().as_deref(),
                    Ok("MumLk3L-io7gdwloypilztMgE2TRCWdd_4CxmilnFis")
                ),
                "seed-dpop-rs256" => assert_eq!(
                    proof().as_deref(),
                    Ok("HD6A1zQ3DZDiCK6bOrPZ3d--o5Lt4rLHgFDXYuFG-R0")
                ),
                "seed-dpop-alg-none" | "seed-dpop-hs256" => refused(proof(), "alg"),
                "seed-dpop-private-jwk" => refused(proof(), "private"),
                "seed-dpop-crit" | "seed-lines-dpop-crit" | "seed-regression-dpop-crit-null" => {
                    refused(parse_jws(&token), "crit");
                }
                "seed-dpop-duplicate-claim"
                | "seed-dpop-duplicate-header-member"
                | "seed-lines-duplicate-claim" => refused(parse_jws(&token), "repeats"),
                "seed-bad-base64-padding" => refused(parse_jws(&token), "base64url"),
                "seed-bad-base64-standard-alphabet" => {
                    let signature = token.rsplit('.').next().unwrap();
                    assert!(signature.contains(['+', '/']), "{signature}");
                    refused(proof(), "signature does not verify");
                }
                "seed-not-three-parts" => refused(parse_jws(&token), "three"),
                "seed-oversized" => refused(parse_jws(&token), "8 KiB"),
                "seed-regression-dpop-rsa-empty-n" => refused(proof(), "leading zeros"),
                "seed-assertion-es256"
                | "seed-assertion-issuer-audience"
                | "seed-lines-assertion-es256" => assert_eq!(assertion(), Ok(())),
                "seed-assertion-alg-none" => refused(assertion(), "alg"),
                "seed-assertion-hs256-public-key" | "seed-assertion-wrong-key" => {
                    refused(assertion(), "signature does not verify");
                }
                "seed-jwks" => assert!(parse_jwks(&text).is_ok()),
                "seed-jwks-rsa-too-short" => refused(parse_jwks(&text), "2048"),
                "seed-regression-jwks-rsa-empty-n" => {
                    refused(parse_jwks(&text), "leading zeros");
                }
                "seed-jwks-private" => refused(parse_jwks(&text), "private"),
                other => panic!("no expectation for the seed {other}"),
            }
            // Whatever a seed is, it is only one of the four.
            let accepted = [
                proof().is_ok(),
                assertion().is_ok(),
                parse_jwks(&text).is_ok(),
            ];
            assert!(accepted.iter().filter(|&&ok| ok).count() <= 1, "{name}");
            seen += 1;
        }
        assert!(seen >= 28, "{seen} seeds");
    }
}
