//! The refresh-token grant (RFC 6749 §6) with rotation and replay
//! revocation (RFC 9700 §4.14.2), in two steps.
//!
//! [`check`] reads the token without using it up: a request that any later
//! check refuses (another client, a wider scope, a policy) leaves the
//! client's token valid, so its corrected retry is not mistaken for a
//! replay. [`commit`] rotates it atomically once every check and policy
//! passed, just before the request is forwarded.
//!
//! With a reuse window ([`Builder::refresh_reuse`](crate::Builder::refresh_reuse)),
//! a token rotated a moment ago (or being rotated by a request in flight)
//! and presented again by its own client is granted one more use in the
//! same family instead of being taken for a replay, a few times at most:
//! the client whose answer was lost, or that refreshed from two places at
//! once, keeps its session.

use super::{ClaimOn, GrantClaim, store_failed};
use crate::{
    client::Client,
    error::Failure,
    parse::TokenRequest,
    record::refresh::RefreshRecord,
    scope,
    secret::CodeKey,
    settings::Settings,
    store::{Lookup, Redemption, RefreshStore, Reuse},
};

/// A refresh token [`check`] accepted.
pub(crate) struct Checked {
    pub(crate) key: CodeKey,
    pub(crate) record: RefreshRecord,
    pub(crate) scopes: Vec<String>,
    /// Granted a reuse within the window: already rotated, nothing to
    /// commit.
    pub(crate) reused: bool,
}

/// Checks the request's refresh token for `client` without using it up:
/// the token's key, its record and the scopes to grant.
///
/// Only a token already rotated away and presented again by its own client
/// is a replay: its whole family (the successor included) is revoked and
/// the hook told, unless the reuse window grants it one more use. A token
/// presented by another client is left alone.
pub(crate) async fn check<R: RefreshStore>(
    store: &R,
    settings: &Settings,
    client: &Client,
    request: &TokenRequest,
) -> Result<Checked, Failure> {
    let token = request
        .refresh_token
        .as_deref()
        .ok_or(Failure::RefreshTokenMissing)?;
    let key = CodeKey::of(token);
    let (record, used) = match store.find(&key).await.map_err(store_failed)? {
        Lookup::Unused(record) => (record, false),
        Lookup::Used(record) => (record, true),
        Lookup::Unknown => return Err(Failure::RefreshTokenInvalid),
    };
    if record.client_id != client.client_id() {
        return Err(Failure::RefreshTokenInvalid);
    }
    // The client's own token, valid once: refused, but not a guess.
    if record.is_expired(settings.clock.now()) {
        return Err(Failure::RefreshTokenSpent);
    }
    // RFC 9449 §5: a bound token is used only with its key. Checked before
    // the replay: whoever lacks the key cannot revoke the family with an
    // old token either.
    if let Some(bound) = &record.dpop_jkt {
        match request.dpop_jkt() {
            None => return Err(Failure::DpopRequired),
            Some(jkt) if jkt != bound => return Err(Failure::DpopKeyMismatch),
            Some(_) => {}
        }
    }
    // A reuse is counted before the scope and the policies are checked: a
    // request they refuse spends it, as a refused rotation spends a token.
    if used {
        reuse(store, settings, client, &key, &record).await?;
    }
    let requested = scope::parse(request.scope.as_deref(), settings.dialect());
    // RFC 6749 §6: omitted means the scope originally granted.
    let scopes = if requested.is_empty() {
        record.scopes.clone()
    } else if scope::within(&requested, &record.scopes) {
        requested
    } else {
        return Err(Failure::RefreshScopeWider);
    };
    // A client whose allowed scopes were narrowed since keeps no more than
    // it may have now.
    if !client.allows_scopes(&scopes) {
        return Err(Failure::ScopeNotAllowed);
    }
    Ok(Checked {
        key,
        record,
        scopes,
        reused: used,
    })
}

/// A used token came back from its own client: granted one more use within
/// the reuse window (`Ok`), else a replay.
async fn reuse<R: RefreshStore>(
    store: &R,
    settings: &Settings,
    client: &Client,
    key: &CodeKey,
    record: &RefreshRecord,
) -> Result<(), Failure> {
    let Some(window) = settings.refresh_reuse else {
        return Err(replayed(store, settings, client, record).await);
    };
    match store.reuse(key, window).await.map_err(store_failed)? {
        Reuse::Granted(_) => {
            tracing::info!(client_id = ?client.client_id(), "rotated refresh token reused within the window");
            Ok(())
        }
        Reuse::Refused(record) => Err(replayed(store, settings, client, &record).await),
        // Handed back by the request that held it, a moment ago, or still
        // being rotated with the reuses spent: a race, not a replay (the
        // rotation may yet fail and hand the token back).
        Reuse::NotRotated | Reuse::Held => Err(Failure::RefreshTokenHeld),
        // Revoked, expired or forgotten since it was read.
        Reuse::Unknown => Err(Failure::RefreshTokenSpent),
    }
}

/// Rotates the token [`check`] accepted: claims it for the inner service's
/// call (two-phase redemption), or uses it up at once. Losing the race to
/// another request with the same token makes this one the replay; finding
/// it claimed by a request still in flight refuses this one without
/// revoking anything.
pub(crate) async fn commit<R: RefreshStore>(
    store: &R,
    settings: &Settings,
    client: &Client,
    key: CodeKey,
    previous: &RefreshRecord,
) -> Result<Committed, Failure> {
    let (claim, at_once) = settings.claim().map_err(store_failed)?;
    match store.claim(&key, &claim).await.map_err(store_failed)? {
        Redemption::Claimed(_) if at_once => {
            if store.confirm(&key, &claim).await.map_err(store_failed)? {
                Ok(Committed::Rotated(None))
            } else {
                // Revoked or taken over between the two calls: lost to a
                // race, not guessed.
                Err(Failure::RefreshTokenSpent)
            }
        }
        Redemption::Claimed(_) => Ok(Committed::Rotated(Some(GrantClaim {
            on: ClaimOn::RefreshToken,
            key,
            claim,
        }))),
        // Rotated by a concurrent request since `check` read it, or being
        // rotated by one in flight: a reuse within the window, or a replay.
        Redemption::Used(_) | Redemption::Busy if settings.refresh_reuse.is_some() => {
            reuse(store, settings, client, &key, previous).await?;
            Ok(Committed::Reused)
        }
        Redemption::Used(record) => Err(replayed(store, settings, client, &record).await),
        // With two-phase redemption off, a claim is confirmed as soon as it
        // is taken: another one is a redemption of the same token a moment
        // ago, so this presentation is its replay, as it was when the token
        // was used up in one step.
        Redemption::Busy if at_once => Err(replayed(store, settings, client, previous).await),
        Redemption::Busy => {
            tracing::warn!(client_id = ?client.client_id(), "refresh token presented while claimed");
            Err(Failure::RefreshTokenHeld)
        }
        // Check 5 read it, unused and this client's, a moment ago: revoked,
        // expired or forgotten since, a race and not a guess.
        Redemption::Unknown => Err(Failure::RefreshTokenSpent),
    }
}

/// What [`commit`] did with the token.
pub(crate) enum Committed {
    /// Rotated away, or claimed for the inner service's call (the claim).
    Rotated(Option<GrantClaim>),
    /// Rotated by a concurrent request, and granted a reuse in the window.
    Reused,
}

/// A used token came back from its own client: revoke the family, tell the
/// hook, refuse.
async fn replayed<R: RefreshStore>(
    store: &R,
    settings: &Settings,
    client: &Client,
    record: &RefreshRecord,
) -> Failure {
    tracing::warn!(client_id = ?client.client_id(), "refresh token replayed; revoking its family");
    if let Err(error) = store.revoke_family(&record.family).await {
        return store_failed(error);
    }
    if let Some(hook) = &settings.on_refresh_replay {
        hook(record);
    }
    Failure::RefreshTokenSpent
}
