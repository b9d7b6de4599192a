//! GitHub accepts token parameters as a JSON object.

use serde::Deserialize;

use super::{Param, Params, Value};
use crate::error::Failure;

/// The defined parameters; anything else in the object is ignored, however
/// nested (serde_json bounds the depth it will follow).
#[derive(Deserialize)]
struct Body {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    device_code: Option<String>,
    // The revocation and introspection endpoints' own: a GitHub client
    // sends them as JSON as readily as the token endpoint's.
    token: Option<String>,
    token_type_hint: Option<String>,
}

/// Reads a JSON body into `params`. Values must be strings (or null, which
/// counts as absent); a key given twice is a repeated parameter.
pub(super) fn read(body: &[u8], params: &mut Params) -> Result<(), Failure> {
    let parsed: Body = serde_json::from_slice(body).map_err(|e| {
        if e.to_string().starts_with("duplicate field") {
            Failure::Repeated("a parameter appears more than once in the JSON body")
        } else {
            Failure::Malformed("the JSON body must be an object whose parameters are strings")
        }
    })?;
    for (param, value) in [
        (Param::GrantType, parsed.grant_type),
        (Param::Code, parsed.code),
        (Param::RedirectUri, parsed.redirect_uri),
        (Param::ClientId, parsed.client_id),
        (Param::ClientSecret, parsed.client_secret),
        (Param::CodeVerifier, parsed.code_verifier),
        (Param::RefreshToken, parsed.refresh_token),
        (Param::Scope, parsed.scope),
        (Param::DeviceCode, parsed.device_code),
        (Param::Token, parsed.token),
        (Param::TokenTypeHint, parsed.token_type_hint),
    ] {
        if let Some(value) = value {
            params.set(param, Value::Owned(value))?;
        }
    }
    Ok(())
}
