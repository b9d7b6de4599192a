//! Client assertions: `private_key_jwt` and `client_secret_jwt`
//! (RFC 7523 §2.2 and §3, OpenID Connect Core §9).
//!
//! The registered method and key decide the algorithm, never the header:
//! a `private_key_jwt` client's assertion verifies only with one of its
//! public keys under an asymmetric algorithm that key allows, and a
//! `client_secret_jwt` client's only under HS256 with its secret. `none`
//! verifies nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::{Jws, Malformed, asymmetric, decoding_key, stand_in, to_jwk};
use crate::{
    client::{AuthMethod, Client},
    jwks::KeyKind,
    secret::CodeKey,
};

/// The `client_assertion_type` of a JWT assertion (RFC 7523 §2.2).
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What an assertion is checked against.
pub(crate) struct Rules<'a> {
    /// The audiences that name this server: its issuer and its token
    /// endpoint's URL.
    pub(crate) audiences: [&'a str; 2],
    pub(crate) max_lifetime: Duration,
    pub(crate) leeway: Duration,
    pub(crate) now: SystemTime,
}

/// A verified assertion's `jti`: its key in the replay store, and until
/// when it must be remembered.
pub(crate) struct OneTime {
    pub(crate) key: CodeKey,
    pub(crate) until: SystemTime,
}

/// The client an (unverified) assertion says it is: its `sub`.
pub(crate) fn subject<'a>(jws: &'a Jws<'_>) -> Option<&'a str> {
    jws.text("sub").ok().flatten()
}

/// Verifies `jws` as `client_id`'s assertion, with `client` as the store
/// has it (`None`: unknown). Every refusal costs one signature check, real
/// or against a stand-in key, so its time does not say whether the client
/// exists or which check failed.
pub(crate) fn verify(
    jws: &Jws<'_>,
    client: Option<&Client>,
    client_id: &str,
    rules: &Rules<'_>,
) -> Result<OneTime, Malformed> {
    let alg = jws.header.alg.as_str();
    let signed = if alg == "HS256" {
        let secret = client
            .filter(|c| c.auth_method() == Some(AuthMethod::ClientSecretJwt))
            .and_then(Client::jwt_secret);
        let registered = secret.is_some();
        // Not a stand-in: the HMAC of a made-up key costs what a real one does.
        let key = DecodingKey::from_secret(secret.unwrap_or(STAND_IN_SECRET).as_bytes());
        key.is_ok_and(|key| jws.verifies(&key, Algorithm::HS256)) && registered
    } else {
        let (algorithm, kind) = asymmetric(alg).ok_or(Malformed(
            "the assertion's alg is not one the server accepts",
        ))?;
        verify_with_keys(jws, client, algorithm, kind)
    };
    let one_time = check_claims(jws, client_id, rules)?;
    if !signed {
        return Err(Malformed(
            "the assertion's signature does not verify with a key registered for its method",
        ));
    }
    Ok(one_time)
}

/// A `private_key_jwt` client's keys that allow `alg` (and carry the
/// header's `kid`, when it names one), tried in turn; a stand-in key when
/// there are none.
fn verify_with_keys(
    jws: &Jws<'_>,
    client: Option<&Client>,
    algorithm: Algorithm,
    kind: KeyKind,
) -> bool {
    let alg = jws.header.alg.as_str();
    let keys = client
        .filter(|c| c.auth_method() == Some(AuthMethod::PrivateKeyJwt))
        .and_then(Client::jwks)
        .map(|jwks| jwks.keys())
        .unwrap_or_default();
    let mut candidates = keys
        .iter()
        .filter(|key| key.allows(alg))
        .filter(|key| match &jws.header.kid {
            Some(kid) => key.kid.as_deref() == Some(kid.as_str()),
            None => true,
        })
        .peekable();
    if candidates.peek().is_none() {
        let _ = jws.verifies(stand_in(kind), algorithm);
        return false;
    }
    candidates.any(|key| {
        to_jwk(key)
            .and_then(|jwk| decoding_key(&jwk))
            .is_some_and(|key| jws.verifies(&key, algorithm))
    })
}

/// HMAC key for a client that has no JWT secret.
const STAND_IN_SECRET: &str = "tokengate: no client_secret_jwt secret is registered";

/// The claims of RFC 7523 §3 and OpenID Connect Core §9.
fn check_claims(jws: &Jws<'_>, client_id: &str, rules: &Rules<'_>) -> Result<OneTime, Malformed> {
    if jws.text("iss")? != Some(client_id) || jws.text("sub")? != Some(client_id) {
        return Err(Malformed(
            "the assertion's iss and sub must both be the client id",
        ));
    }
    let audience_ok = match jws.claims.get("aud") {
        Some(Value::String(aud)) => rules.audiences.contains(&aud.as_str()),
        Some(Value::Array(auds)) => auds.iter().any(|aud| {
            aud.as_str()
                .is_some_and(|aud| rules.audiences.contains(&aud))
        }),
        _ => false,
    };
    if !audience_ok {
        return Err(Malformed(
            "the assertion's aud must be the issuer or the token endpoint URL",
        ));
    }
    let now = seconds(rules.now);
    let leeway = rules.leeway.as_secs() as i64;
    let lifetime = rules.max_lifetime.as_secs() as i64;
    let exp = jws
        .seconds("exp")?
        .ok_or(Malformed("the assertion has no exp"))?;
    if exp.saturating_add(leeway) <= now {
        return Err(Malformed("the assertion has expired"));
    }
    if exp > now.saturating_add(lifetime).saturating_add(leeway) {
        return Err(Malformed(
            "the assertion's exp is further away than the server allows",
        ));
    }
    if let Some(iat) = jws.seconds("iat")? {
        if iat > now.saturating_add(leeway) {
            return Err(Malformed("the assertion's iat is in the future"));
        }
        if exp.saturating_sub(iat) > lifetime {
            return Err(Malformed(
                "the assertion lives longer than the server allows",
            ));
        }
    }
    if let Some(nbf) = jws.seconds("nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(Malformed("the assertion is not valid yet (nbf)"));
    }
    let jti = jws
        .text("jti")?
        .filter(|jti| !jti.is_empty() && jti.len() <= 256)
        .ok_or(Malformed("the assertion needs a jti of 1 to 256 bytes"))?;
    Ok(OneTime {
        key: CodeKey::of(&format!("client-assertion\0{client_id}\0{jti}")),
        // Accepted while the whole-second `now` is before exp + leeway: up
        // to a second longer in real time.
        until: at(exp.saturating_add(leeway).saturating_add(1)),
    })
}

/// Whole seconds since the epoch (negative before it).
pub(crate) fn seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}

/// The time `seconds` after the epoch.
pub(crate) fn at(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_count_from_the_epoch_either_way() {
        assert_eq!(seconds(UNIX_EPOCH + Duration::from_millis(10_900)), 10);
        assert_eq!(seconds(UNIX_EPOCH - Duration::from_secs(10)), -10);
        assert_eq!(at(-5), UNIX_EPOCH);
        assert_eq!(at(7), UNIX_EPOCH + Duration::from_secs(7));
    }
}
