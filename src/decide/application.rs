//! GitHub's REST endpoints for OAuth apps (`Builder::application_api`):
//! `POST`, `PATCH` and `DELETE PREFIX/applications/{client_id}/token` and
//! `DELETE PREFIX/applications/{client_id}/grant`, each with
//! `{"access_token": T}`. The gate authenticates the client as GitHub does
//! there (HTTP Basic with its id and secret, the path naming that same
//! client) with the token endpoint's rules and lockout, answers refusals as
//! GitHub's REST API does, and hands the token to the inner service as a
//! [`TokenAction`]: the application only manages its tokens.

use std::sync::Arc;

use super::Gate;
use crate::{
    authenticate::authenticate,
    client::Client,
    error::Failure,
    lifecycle::{TokenAction, application_route},
    parse::TokenRequest,
    store::{ClientStore, CodeStore, DeviceStore, RefreshStore},
};
use http::request::Parts;

impl<C, K, R, D> Gate<C, K, R, D>
where
    C: ClientStore,
    K: CodeStore,
    R: RefreshStore,
    D: DeviceStore,
{
    /// Authenticates the client the path names and hands the token on.
    pub(super) async fn application_action(
        &self,
        parts: &Parts,
        request: &TokenRequest,
        prefix: &str,
    ) -> Result<TokenAction, Failure> {
        let (kind, named) = application_route(prefix, &parts.method, parts.uri.path())
            .ok_or(Failure::ApplicationRouteUnknown)?;
        let settings = &*self.settings;
        // Without Basic credentials nothing here can authenticate: the
        // request carries no other client parameter.
        if request.basic.is_none() {
            return Err(Failure::BadClientCredentials);
        }
        let client: Arc<Client> = authenticate(&*self.clients, settings, request, false).await?;
        if client.client_id() != named || client.is_public() {
            return Err(Failure::ApplicationClientMismatch);
        }
        let token = request
            .presented
            .as_ref()
            .and_then(|presented| presented.token.as_deref())
            .filter(|token| !token.is_empty())
            .ok_or(Failure::TokenMissing)?;
        // No token holds a control character: one that does is unknown
        // here, and never handed to the application to look up or log.
        if token.chars().any(char::is_control) {
            return Err(Failure::ApplicationRouteUnknown);
        }
        Ok(TokenAction::new(kind, client, token.to_owned(), None))
    }
}
