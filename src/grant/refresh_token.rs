//! The refresh-token grant (RFC 6749 §6) with rotation and replay
//! revocation (RFC 9700 §4.14.2).

use crate::{
    check::Settings,
    client::Client,
    error::Failure,
    parse::TokenRequest,
    refresh::RefreshRecord,
    scope,
    secret::CodeKey,
    store::{Redemption, RefreshStore},
};

/// Rotates the request's refresh token for `client` and returns the old
/// token's record and the scopes to grant.
///
/// A token presented again after its rotation is a replay: whoever holds it
/// may have stolen it, so its whole family (the successor included) is
/// revoked and the hook told.
pub(crate) async fn rotate<R: RefreshStore>(
    store: &R,
    settings: &Settings,
    client: &Client,
    request: &TokenRequest,
) -> Result<(RefreshRecord, Vec<String>), Failure> {
    let token = request
        .refresh_token
        .as_deref()
        .ok_or(Failure::RefreshTokenMissing)?;
    let store_failed = |error| {
        tracing::error!(%error, "refresh store failed");
        Failure::Store
    };
    let (record, replayed) = match store
        .rotate_refresh_token(&CodeKey::of(token))
        .await
        .map_err(store_failed)?
    {
        Redemption::Redeemed(record) => (record, false),
        Redemption::Replayed(record) => (record, true),
        Redemption::Unknown => return Err(Failure::RefreshTokenInvalid),
    };
    if record.client_id != client.client_id() || record.is_expired(settings.clock.now()) {
        return Err(Failure::RefreshTokenInvalid);
    }
    if replayed {
        tracing::warn!(client_id = ?client.client_id(), "refresh token replayed; revoking its family");
        store
            .revoke_family(&record.family)
            .await
            .map_err(store_failed)?;
        if let Some(hook) = &settings.on_refresh_replay {
            hook(&record);
        }
        return Err(Failure::RefreshTokenInvalid);
    }
    let requested = scope::parse(request.scope.as_deref(), settings.dialect());
    if requested.is_empty() {
        // RFC 6749 §6: omitted means the scope originally granted.
        let scopes = record.scopes.clone();
        return Ok((record, scopes));
    }
    if !scope::within(&requested, &record.scopes) {
        return Err(Failure::RefreshScopeWider);
    }
    Ok((record, requested))
}
