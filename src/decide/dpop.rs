//! The DPoP step (RFC 9449 §4.3, §8): the request's proof, checked before
//! the client is, and its `jti` recorded once the grant's own checks passed.

use http::{HeaderName, HeaderValue, Response, request::Parts};

use bytes::Bytes;

use crate::{error::Failure, settings::Settings};

/// The `DPoP` header (RFC 9449 §4.1), named once: looking it up by a string
/// would parse the name on every request.
pub(super) const DPOP: HeaderName = HeaderName::from_static("dpop");

/// A request's proof that verified: its key's thumbprint, and its `jti`
/// still to record.
pub(super) struct Verified {
    pub(super) jkt: String,
    #[cfg(feature = "jose")]
    one_time: crate::jose::assertion::OneTime,
}

/// Reads the `DPoP` header and checks its proof. `None`: no header, or
/// DPoP is not served (no issuer, so no `htu` to check; or no `jose`
/// feature), and the request is a bearer one.
#[cfg(feature = "jose")]
pub(super) async fn verify(
    settings: &Settings,
    parts: &Parts,
) -> Result<Option<Box<Verified>>, Failure> {
    use crate::{grant::store_failed, jose::dpop};

    let mut headers = parts.headers.get_all(DPOP).iter();
    let value = match (headers.next(), headers.next()) {
        (None, _) => return Ok(None),
        (Some(value), None) => value,
        // §4.3: exactly one.
        (Some(_), Some(_)) => return Err(Failure::DpopInvalid("more than one DPoP header")),
    };
    let signed = &settings.signed;
    let Some(htu) = &signed.token_endpoint else {
        return Ok(None);
    };
    let proof = value
        .to_str()
        .map_err(|_| Failure::DpopInvalid("the DPoP header is not ASCII"))?;
    let now = settings.clock.now();
    let rules = dpop::Rules {
        htu,
        window: signed.proof_window,
        leeway: signed.leeway,
        now,
    };
    let proof = dpop::verify(proof, &rules).map_err(|why| Failure::DpopInvalid(why.0))?;
    if let Some(nonces) = &signed.nonces {
        let accepted = match &proof.nonce {
            Some(nonce) => nonces
                .accepts(&signed.replays, nonce, now)
                .await
                .map_err(store_failed)?,
            None => false,
        };
        if !accepted {
            return Err(Failure::DpopNonce);
        }
    }
    // Boxed: kept across the grant's checks, it would otherwise size the
    // future of every exchange, proof or not.
    Ok(Some(Box::new(Verified {
        jkt: proof.jkt,
        one_time: proof.one_time,
    })))
}

#[cfg(not(feature = "jose"))]
pub(super) async fn verify(_: &Settings, _: &Parts) -> Result<Option<Box<Verified>>, Failure> {
    Ok(None)
}

/// Records the proof's `jti`: a second use is refused.
pub(super) async fn record(settings: &Settings, verified: &Verified) -> Result<(), Failure> {
    #[cfg(feature = "jose")]
    {
        let signed = &settings.signed;
        let now = settings.clock.now();
        let first = signed
            .replays
            .first_use(&verified.one_time.key, verified.one_time.until, now)
            .await
            .map_err(crate::grant::store_failed)?;
        if !first {
            return Err(Failure::DpopReplayed);
        }
    }
    #[cfg(not(feature = "jose"))]
    let _ = (settings, verified);
    Ok(())
}

/// The `DPoP-Nonce` header a `use_dpop_nonce` refusal carries (§8): the
/// current nonce. A store that cannot tell fails the request closed: a
/// refusal without its nonce would send the client round in circles.
#[cfg(feature = "jose")]
pub(super) async fn nonce_header(settings: &Settings) -> Result<HeaderValue, Failure> {
    let signed = &settings.signed;
    let nonces = signed.nonces.as_ref().ok_or(Failure::Store)?;
    let now = settings.clock.now();
    let nonce = nonces
        .current(&signed.replays, now)
        .await
        .map_err(crate::grant::store_failed)?;
    HeaderValue::from_str(&nonce).map_err(|_| Failure::Store)
}

#[cfg(not(feature = "jose"))]
pub(super) async fn nonce_header(_: &Settings) -> Result<HeaderValue, Failure> {
    Err(Failure::Store)
}

/// Sets `header` as the answer's `DPoP-Nonce`.
pub(super) fn with_nonce(mut response: Response<Bytes>, header: HeaderValue) -> Response<Bytes> {
    response.headers_mut().insert("dpop-nonce", header);
    response
}
