//! Refresh tokens (RFC 6749 §6) with rotation (RFC 9700 §4.14.2): what a
//! token is bound to, and [`RefreshTokens`], which the application calls to
//! hand out the next one.

use std::{fmt, sync::Arc, time::Duration};

pub use crate::record::refresh::RefreshRecord;
use crate::{
    client::GrantType,
    grant::ValidatedGrant,
    issuing::Issuing,
    secret::{CodeKey, random_code},
    store::StoreError,
};

/// Hands out refresh tokens, sharing the layer's refresh store, clock and
/// lifetime. Get it from
/// [`TokenGateLayer::refresh_tokens`](crate::TokenGateLayer::refresh_tokens).
///
/// The inner service calls [`issue`](Self::issue) with the grant the gate
/// validated: after an authorization-code or device grant it starts a new
/// family; after a refresh it continues the old token's family, so the
/// rotated-away token and its successor stay linked. An authorization
/// code's family is named after the code, so that when the code is
/// replayed the gate revokes every refresh token issued from it (RFC 6749
/// §4.1.2).
#[derive(Clone)]
pub struct RefreshTokens {
    issuing: Arc<Issuing>,
}

impl RefreshTokens {
    pub(crate) fn new(issuing: Arc<Issuing>) -> Self {
        Self { issuing }
    }

    /// Mints, stores and returns a refresh token for `grant`: `ghr_` and 64
    /// lowercase hex digits in the GitHub dialect, 43 base64url characters
    /// in RFC 6749's (both 256 random bits; see
    /// [`Builder::token_shape`](crate::Builder::token_shape)). The store
    /// keeps only its SHA-256 ([`CodeKey`]).
    ///
    /// Fails for a client-credentials grant (RFC 6749 §4.4.3: no refresh
    /// token), when the layer has no refresh store, when the client may not
    /// use the refresh grant, or when the family was revoked meanwhile (for
    /// an authorization-code grant: when the code was replayed since it was
    /// redeemed).
    pub async fn issue(&self, grant: &ValidatedGrant) -> Result<String, StoreError> {
        let settings = &self.issuing.settings;
        let Some(store) = &self.issuing.refresh else {
            return Err(StoreError::new("the layer has no refresh store"));
        };
        let Some(subject) = grant.subject() else {
            return Err(StoreError::new(
                "a grant without a user gets no refresh token",
            ));
        };
        if !grant.client().allows_grant(GrantType::RefreshToken) {
            return Err(StoreError::new("the client may not use refresh tokens"));
        }
        let family = match (grant.refresh(), grant.code_family()) {
            (Some(previous), _) => previous.family.clone(),
            // Derived from the code: a replay of the code revokes this
            // family even if it arrives before this call, since the store
            // then refuses to issue into it.
            (None, Some(family)) => family,
            (None, None) => {
                random_code().map_err(|e| StoreError::with_source("no randomness", e))?
            }
        };
        // The shape is the builder's (GitHub's `ghr_` and hex by default in
        // its dialect); the store only ever sees the digest.
        let token = settings
            .token_shape
            .refresh_token()
            .map_err(|e| StoreError::with_source("no randomness", e))?;
        let now = settings.clock.now();
        // RFC 6749 §6: the new refresh token keeps the old one's scope, even
        // when this access token was narrowed.
        let scopes = match grant.refresh() {
            Some(previous) => previous.scopes.clone(),
            None => grant.scopes().to_vec(),
        };
        // RFC 9449 §5: a public client's refresh token is bound to the key
        // of the proof it was issued with, and a successor keeps the binding.
        let dpop_jkt = match grant.refresh() {
            Some(previous) if previous.dpop_jkt.is_some() => previous.dpop_jkt.clone(),
            _ if grant.client().is_public() => grant.dpop_jkt().map(str::to_owned),
            _ => None,
        };
        let record = RefreshRecord {
            client_id: grant.client().client_id().to_owned(),
            subject: subject.to_owned(),
            scopes,
            family,
            issued_at: now,
            expires_at: now + settings.refresh_lifetime,
            dpop_jkt,
        };
        store.issue(CodeKey::of(&token), record).await?;
        Ok(token)
    }

    /// How long a new refresh token is accepted: what
    /// [`Builder::refresh_lifetime`](crate::Builder::refresh_lifetime) set,
    /// else the dialect's default (184 days in GitHub's, 30 in RFC 6749's).
    /// A token endpoint answers it as `refresh_token_expires_in`.
    pub fn lifetime(&self) -> Duration {
        self.issuing.settings.refresh_lifetime
    }
}

impl fmt::Debug for RefreshTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokens").finish_non_exhaustive()
    }
}
