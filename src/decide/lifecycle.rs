//! The revocation (RFC 7009) and introspection (RFC 7662) endpoints: the
//! caller authenticated as at the token endpoint, the refresh tokens the
//! gate keeps answered here, every other token handed on to the inner
//! service as a [`TokenAction`].

use std::sync::Arc;

use bytes::Bytes;
use http::Response;

use super::Gate;
use crate::{
    authenticate::authenticate,
    error::Failure,
    grant::store_failed,
    lifecycle::{Introspection, TokenAction, TokenActionKind, TokenTypeHint, no_store},
    parse::TokenRequest,
    secret::CodeKey,
    store::{ClientStore, CodeStore, DeviceStore, Lookup, RefreshStore},
    telemetry::Endpoint,
};

/// The lifecycle action `endpoint` takes, if it is one of those.
pub(super) fn action_at(endpoint: Endpoint) -> Option<TokenActionKind> {
    match endpoint {
        Endpoint::Revocation => Some(TokenActionKind::Revocation),
        Endpoint::Introspection => Some(TokenActionKind::Introspection),
        Endpoint::Token | Endpoint::DeviceAuthorization | Endpoint::Application => None,
    }
}

/// What the gate does with a revocation or introspection request.
pub(super) enum Handled {
    /// Answered here: a refresh token the gate keeps.
    Answer(Response<Bytes>),
    /// Not a token the gate keeps: the application's.
    Forward(TokenAction),
}

impl<C, K, R, D> Gate<C, K, R, D>
where
    C: ClientStore,
    K: CodeStore,
    R: RefreshStore,
    D: DeviceStore,
{
    pub(super) async fn token_action(
        &self,
        request: &TokenRequest,
        kind: TokenActionKind,
    ) -> Result<Handled, Failure> {
        let settings = &*self.settings;
        let client = authenticate(&*self.clients, settings, request, false).await?;
        if kind == TokenActionKind::Introspection && !client.may_introspect() {
            return Err(Failure::IntrospectionNotAllowed);
        }
        let presented = request.presented.as_deref();
        let token = presented
            .and_then(|presented| presented.token.as_deref())
            .ok_or(Failure::TokenMissing)?;
        let named = presented.and_then(|presented| presented.token_type_hint.as_deref());
        let hint = named.and_then(TokenTypeHint::from_name);
        // A hint is only a hint (RFC 7009 §2.1, RFC 7662 §2.1): the search
        // covers every kind whatever it says, and a revocation is refused
        // for naming a kind nobody here revokes (§2.2.1) only once no
        // refresh token answered.
        let unsupported = kind == TokenActionKind::Revocation && named.is_some() && hint.is_none();
        // No token holds a control character (RFC 6749 Appendix A: VSCHAR),
        // so one that does is answered here as an invalid token (RFC 7009
        // §2.2, RFC 7662 §2.2): the application is never handed a NUL or a
        // line break to look up, store or log.
        if token.chars().any(char::is_control) {
            return Ok(Handled::Answer(match kind {
                TokenActionKind::Introspection => Introspection::inactive().response(),
                // Revocation: the only other kind this endpoint pair takes.
                _ => no_store(Response::new(Bytes::new()), false),
            }));
        }
        // Whatever the hint says, a refresh token is looked for first: a
        // wrong hint must not leave one unrevoked (RFC 7009 §2.1).
        if let Some(store) = &self.refresh {
            let key = CodeKey::of(token);
            let found = store.find(&key).await.map_err(store_failed)?;
            let now = settings.clock.now();
            let answer = match (kind, found) {
                (_, Lookup::Unknown) => None,
                (TokenActionKind::Revocation, Lookup::Unused(record) | Lookup::Used(record)) => {
                    // Another client's token is left alone, and the caller
                    // learns nothing of it (RFC 7009 §2.2: 200 all the same).
                    if record.client_id == client.client_id() {
                        store
                            .revoke_family(&record.family)
                            .await
                            .map_err(store_failed)?;
                        tracing::info!(client_id = ?client.client_id(), "refresh token family revoked on request");
                        if let Some(hook) = &settings.on_refresh_revocation {
                            hook(&record);
                        }
                    }
                    Some(no_store(Response::new(Bytes::new()), false))
                }
                (TokenActionKind::Introspection, Lookup::Unused(record))
                    if !record.is_expired(now) =>
                {
                    let mut answer = Introspection::active(&record.client_id)
                        .scope(&record.scopes)
                        .subject(&record.subject)
                        .token_type("refresh_token")
                        .issued_at(record.issued_at)
                        .expires_at(record.expires_at);
                    if let Some(issuer) = &settings.issuer {
                        answer = answer.issuer(issuer);
                    }
                    if let Some(jkt) = &record.dpop_jkt {
                        answer = answer.dpop_jkt(jkt);
                    }
                    Some(answer.response())
                }
                // Rotated away or expired: no longer usable.
                (TokenActionKind::Introspection, _) => Some(Introspection::inactive().response()),
                // The OAuth-app API's kinds never come here (`application`).
                _ => None,
            };
            if let Some(answer) = answer {
                return Ok(Handled::Answer(answer));
            }
        }
        if unsupported {
            return Err(Failure::TokenTypeUnsupported);
        }
        Ok(Handled::Forward(TokenAction::new(
            kind,
            Arc::clone(&client),
            token.to_owned(),
            hint,
        )))
    }
}
