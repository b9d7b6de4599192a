//! The refresh-token grant (RFC 6749 §6) with rotation and replay
//! revocation (RFC 9700 §4.14.2), in two steps.
//!
//! [`check`] reads the token without using it up: a request that any later
//! check refuses (another client, a wider scope, a policy) leaves the
//! client's token valid, so its corrected retry is not mistaken for a
//! replay. [`commit`] rotates it atomically once every check and policy
//! passed, just before the request is forwarded.

use crate::{
    check::Settings,
    client::Client,
    error::Failure,
    parse::TokenRequest,
    refresh::RefreshRecord,
    reservation::{Held, Reservation},
    scope,
    secret::CodeKey,
    store::{Lookup, Redemption, RefreshStore, StoreError},
};

fn store_failed(error: StoreError) -> Failure {
    tracing::error!(%error, "refresh store failed");
    Failure::Store
}

/// Checks the request's refresh token for `client` without using it up:
/// the token's key, its record and the scopes to grant.
///
/// Only a token already rotated away and presented again by its own client
/// is a replay: its whole family (the successor included) is revoked and
/// the hook told. A token presented by another client is left alone.
pub(crate) async fn check<R: RefreshStore>(
    store: &R,
    settings: &Settings,
    client: &Client,
    request: &TokenRequest,
) -> Result<(CodeKey, RefreshRecord, Vec<String>), Failure> {
    let token = request
        .refresh_token
        .as_deref()
        .ok_or(Failure::RefreshTokenMissing)?;
    let key = CodeKey::of(token);
    let (record, used) = match store.find_refresh_token(&key).await.map_err(store_failed)? {
        Lookup::Unused(record) => (record, false),
        Lookup::Used(record) => (record, true),
        Lookup::Unknown => return Err(Failure::RefreshTokenInvalid),
    };
    if record.client_id != client.client_id() || record.is_expired(settings.clock.now()) {
        return Err(Failure::RefreshTokenInvalid);
    }
    if used {
        return Err(replayed(store, settings, client, &record).await);
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
    Ok((key, record, scopes))
}

/// Rotates the token [`check`] accepted, in one atomic step, or, with
/// two-phase redemption, claims it for the inner service's call. Losing the
/// race to another request with the same token makes this one the replay;
/// finding it claimed by a request still in flight refuses this one
/// without revoking anything.
pub(crate) async fn commit<R: RefreshStore>(
    store: &R,
    settings: &Settings,
    client: &Client,
    key: &CodeKey,
) -> Result<Option<Reservation>, Failure> {
    let hold = settings.hold().map_err(store_failed)?;
    let outcome = match &hold {
        Some(hold) => store.reserve_refresh_token(key, hold).await,
        None => store.rotate_refresh_token(key).await,
    }
    .map_err(store_failed)?;
    match outcome {
        Redemption::Redeemed(_) => Ok(hold.map(|hold| Reservation {
            what: Held::RefreshToken,
            key: *key,
            hold,
        })),
        Redemption::Replayed(record) => Err(replayed(store, settings, client, &record).await),
        Redemption::Held => {
            tracing::warn!(client_id = ?client.client_id(), "refresh token presented while claimed");
            Err(Failure::RefreshTokenHeld)
        }
        Redemption::Unknown => Err(Failure::RefreshTokenInvalid),
    }
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
    Failure::RefreshTokenInvalid
}
