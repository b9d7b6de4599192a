//! The client-credentials grant (RFC 6749 §4.4): a confidential client acting
//! for itself.

use crate::{client::Client, error::Failure, parse::TokenRequest, scope, settings::Settings};

/// The scopes to grant `client`: those it asked for, all within its allowed
/// set, or, when it asked for none, its whole allowed set.
pub(crate) fn scopes(
    settings: &Settings,
    client: &Client,
    request: &TokenRequest,
) -> Result<Vec<String>, Failure> {
    let requested = scope::parse(request.scope.as_deref(), settings.dialect());
    if requested.is_empty() {
        return Ok(client
            .allowed_scopes()
            .map(<[String]>::to_vec)
            .unwrap_or_default());
    }
    if !scope::is_valid(&requested) || !client.allows_scopes(&requested) {
        return Err(Failure::ScopeNotAllowed);
    }
    Ok(requested)
}
