//! The authorization-code grant (RFC 6749 §4.1.3, RFC 7636 §4.6): the code,
//! the redirect URI and the PKCE verifier.

use std::sync::Arc;

use super::{ClaimOn, GrantClaim, store_failed};
use crate::{
    client::Client,
    dialect::Dialect,
    error::Failure,
    parse::TokenRequest,
    pkce::{self, VerifierError},
    record::code::CodeRecord,
    secret::CodeKey,
    settings::Settings,
    store::{CodeStore, Redemption, RefreshStore},
};

/// Redeems the request's code for `client` and checks everything bound to it:
/// the code's record and key.
///
/// The code is taken out of service before the redirect URI and the verifier
/// are compared, so a failed attempt burns the code: nobody gets a second
/// guess at a verifier (docs/contract.md, "Codes"). With two-phase redemption the code
/// is only claimed here; a request that passes every check carries the
/// claim to the inner service, one that fails a check uses the code up.
///
/// A used code presented again by its own client, in an otherwise valid
/// request, revokes the refresh tokens issued from it (in `refresh`, when
/// the layer has a refresh store) and is reported to the replay hook.
pub(crate) async fn redeem<K: CodeStore, R: RefreshStore>(
    codes: &K,
    refresh: Option<&R>,
    settings: &Settings,
    client: &Client,
    request: &TokenRequest,
) -> Result<(Arc<CodeRecord>, CodeKey, Option<GrantClaim>), Failure> {
    let code = request.code.as_deref().ok_or(Failure::CodeMissing)?;
    // A redirect URI the client never registered fails without touching the
    // code: it is a static check on the request.
    if let Some(uri) = &request.redirect_uri
        && !client.allows_redirect_uri(uri)
    {
        return Err(Failure::RedirectNotRegistered);
    }
    let key = CodeKey::of(code);
    let (claim, at_once) = settings.claim().map_err(store_failed)?;
    let record = match codes.claim(&key, &claim).await.map_err(store_failed)? {
        Redemption::Claimed(record) => record,
        Redemption::Used(record) => {
            // A replay answers like an unknown code whatever else is wrong,
            // so it reveals nothing about what the code was bound to.
            return Err(match verify(&record, settings, client, request) {
                // Rare, and its state would size every exchange's future:
                // boxed.
                Ok(()) => Box::pin(replayed(refresh, settings, client, &key, &record)).await,
                // Another client's: a stranger's guess.
                Err(Failure::CodeInvalid) => Failure::CodeInvalid,
                // The client's own code, spent: not a guess.
                Err(_) => Failure::CodeSpent,
            });
        }
        Redemption::Busy => {
            // Another request with this code is in the inner service right
            // now (or, with two-phase redemption off, is confirming its
            // claim); whatever it gets, this one gets nothing. The answer is
            // a used code's, without the hook: the record is the winner's.
            tracing::warn!(client_id = ?client.client_id(), "authorization code presented while claimed");
            return Err(Failure::CodeHeld);
        }
        Redemption::Unknown => return Err(Failure::CodeInvalid),
    };
    let verdict = verify(&record, settings, client, request);
    if verdict.is_err() || at_once {
        // A failed check burns the code, as does consume-on-read.
        let used = codes.confirm(&key, &claim).await.map_err(store_failed)?;
        verdict?;
        // Lapsed between two calls and taken over: someone else's now. It
        // was this client's a moment ago, so this is a race, not a guess.
        return if used {
            Ok((record, key, None))
        } else {
            Err(Failure::CodeSpent)
        };
    }
    let on = ClaimOn::Code;
    Ok((record, key, Some(GrantClaim { on, key, claim })))
}

/// Every check on a redeemed (or replayed) code's record.
fn verify(
    record: &CodeRecord,
    settings: &Settings,
    client: &Client,
    request: &TokenRequest,
) -> Result<(), Failure> {
    if record.client_id != client.client_id() {
        return Err(Failure::CodeInvalid);
    }
    if record.is_expired(settings.clock.now()) {
        return Err(Failure::CodeSpent);
    }
    verify_bindings(record, settings, client, request)
}

/// A used code came back in a request that would otherwise have succeeded:
/// its refresh tokens are revoked, the hook told, the request refused.
///
/// Only such a replay gets here (OAuth 2.1 §7.5.2): whoever sent it holds
/// the client's credentials and the verifier, so revoking is warranted, and
/// a stranger cannot trigger it with a leaked code alone. RFC 6749 §4.1.2:
/// the server "SHOULD revoke (when possible) all tokens previously issued
/// based on that authorization code".
async fn replayed<R: RefreshStore>(
    refresh: Option<&R>,
    settings: &Settings,
    client: &Client,
    key: &CodeKey,
    record: &CodeRecord,
) -> Failure {
    tracing::warn!(client_id = ?client.client_id(), "authorization code replayed; revoking its refresh tokens");
    // Revoked even when nothing was issued yet: the store then refuses a
    // refresh token the application was about to issue into the family.
    let revoked = match refresh {
        Some(store) => store.revoke_family(&key.code_family()).await,
        None => Ok(()),
    };
    // The hook hears of the replay even if the store failed: the
    // application's own revocations should not wait for ours.
    if let Some(hook) = &settings.on_code_replay {
        hook(record);
    }
    match revoked {
        Ok(()) => Failure::CodeSpent,
        // Fail closed: the client may retry, and the replay revokes again.
        Err(error) => store_failed(error),
    }
}

fn verify_bindings(
    record: &CodeRecord,
    settings: &Settings,
    client: &Client,
    request: &TokenRequest,
) -> Result<(), Failure> {
    match (&record.redirect_uri, &request.redirect_uri) {
        (Some(bound), Some(sent)) if bound.as_str() != sent.as_str() => {
            return Err(Failure::RedirectNotBound);
        }
        // GitHub treats redirect_uri as optional at the token endpoint.
        (Some(_), None) if settings.presentation.dialect == Dialect::Rfc6749 => {
            return Err(Failure::RedirectMissing);
        }
        _ => {}
    }
    // RFC 9449 §10: a code bound to a key needs a proof with that key.
    if let Some(bound) = &record.dpop_jkt {
        match request.dpop_jkt() {
            None => return Err(Failure::DpopRequired),
            Some(jkt) if jkt != bound => return Err(Failure::DpopKeyMismatch),
            Some(_) => {}
        }
    }
    match (&record.pkce, &request.code_verifier) {
        (Some(challenge), Some(verifier)) => {
            pkce::verify(challenge, verifier, settings.allow_plain_pkce).map_err(|e| match e {
                VerifierError::Malformed => Failure::VerifierMalformed,
                VerifierError::Mismatch => Failure::VerifierWrong,
            })
        }
        (Some(_), None) => Err(Failure::VerifierMissing),
        // RFC 9700 §4.8.2: a verifier for a code without challenge is an
        // attacker's downgrade attempt, not a harmless extra.
        (None, Some(_)) => Err(Failure::VerifierUnexpected),
        (None, None) if client.is_public() => Err(Failure::PkceRequired),
        (None, None) => Ok(()),
    }
}
