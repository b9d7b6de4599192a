//! The clients document: a JSON file that registers clients at start-up.
//!
//! ```json
//! {"clients":[{"client_id":"..","client_secret":"..","redirect_uris":[".."],
//!              "public":false,"redirect_policy":"exact|loopback|github",
//!              "grant_types":["authorization_code","refresh_token","client_credentials"],
//!              "scopes":["repo","user"],"device_flow":true,
//!              "token_endpoint_auth_method":"client_secret_basic|client_secret_post|client_secret_jwt|private_key_jwt|none",
//!              "jwks":{"keys":[..]},"dpop_bound_access_tokens":false,"introspect":false}]}
//! ```
//!
//! `introspect: true` lets a confidential client (a resource server) ask
//! the introspection endpoint about tokens (RFC 7662).
//!
//! Secrets are hashed as they are read and never kept in the clear, but
//! for a `client_secret_jwt` client, whose HS256 assertions are checked
//! with the secret itself. `private_key_jwt` takes `jwks` (public keys
//! only) and no secret; `none` is a public client.

use std::{collections::HashSet, fmt, io, path::Path};

use serde::Deserialize;

use crate::{
    client::{AuthMethod, Client, GrantType, Jwks},
    redirect::{self, RedirectPolicy},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    clients: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    /// Several secrets valid at once, for rotation.
    #[serde(default)]
    client_secrets: Vec<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    redirect_policy: RedirectPolicy,
    /// Default: `authorization_code` and `refresh_token`.
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    /// Default: any scope.
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// Adds the device grant.
    #[serde(default)]
    device_flow: bool,
    /// RFC 7591: the one method the client authenticates with.
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    /// RFC 7591: the client's public keys, for `private_key_jwt`.
    #[serde(default)]
    jwks: Option<serde_json::Value>,
    /// RFC 9449 §5.2: every token must be DPoP-bound.
    #[serde(default)]
    dpop_bound_access_tokens: bool,
    /// RFC 7662: may ask the introspection endpoint about tokens.
    #[serde(default)]
    introspect: bool,
}

/// A clients document that could not be read or is invalid. The message
/// names the entry at fault and never contains a secret.
#[derive(Debug)]
pub struct ClientsFileError {
    message: String,
}

impl ClientsFileError {
    pub(crate) fn read(path: &Path, error: io::Error) -> Self {
        Self {
            message: format!("cannot read clients file {}: {error}", path.display()),
        }
    }

    fn invalid(message: String) -> Self {
        Self { message }
    }
}

impl fmt::Display for ClientsFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ClientsFileError {}

/// The clients of a clients document (see [`MemoryStore::load_clients_json`](crate::MemoryStore::load_clients_json)
/// for its format), to register in any store.
///
/// ```
/// let clients = tokengate::store::parse_clients(r#"{"clients":[{"client_id":"cli","public":true}]}"#).unwrap();
/// assert_eq!(clients[0].client_id(), "cli");
/// ```
pub fn parse_clients(json: &str) -> Result<Vec<Client>, ClientsFileError> {
    parse(json)
}

pub(super) fn parse(json: &str) -> Result<Vec<Client>, ClientsFileError> {
    let document: Document = serde_json::from_str(json).map_err(|e| {
        ClientsFileError::invalid(format!("invalid clients file: {}", redact_values(&e)))
    })?;
    let mut seen = HashSet::new();
    document
        .clients
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let fault = |what: &str| {
                ClientsFileError::invalid(format!(
                    "invalid clients file: client #{index} ({:?}): {what}",
                    entry.client_id
                ))
            };
            if entry.client_id.is_empty() {
                return Err(fault("client_id is empty"));
            }
            if !seen.insert(entry.client_id.clone()) {
                return Err(fault("client_id is registered twice"));
            }
            let secrets: Vec<&String> = entry
                .client_secret
                .iter()
                .chain(&entry.client_secrets)
                .collect();
            if secrets.iter().any(|s| s.is_empty()) {
                return Err(fault("a client secret is empty"));
            }
            let method = match &entry.token_endpoint_auth_method {
                None => None,
                Some(name) => Some(AuthMethod::from_name(name).ok_or_else(|| {
                    fault(&format!(
                        "unknown token_endpoint_auth_method {name:?} (client_secret_basic, client_secret_post, client_secret_jwt, private_key_jwt, none)"
                    ))
                })?),
            };
            // `none` is what a public client is.
            let public = entry.public || method == Some(AuthMethod::None);
            if method.is_some_and(|m| m != AuthMethod::None) && entry.public {
                return Err(fault("a public client's token_endpoint_auth_method is none"));
            }
            let keyed = method == Some(AuthMethod::PrivateKeyJwt);
            match (public, keyed, secrets.is_empty()) {
                (true, _, false) => return Err(fault("a public client has no secret")),
                (false, true, false) => {
                    return Err(fault("a private_key_jwt client has jwks, not a secret"));
                }
                (false, false, true) => {
                    return Err(fault(
                        "a confidential client needs client_secret or client_secrets",
                    ));
                }
                _ => {}
            }
            if keyed != entry.jwks.is_some() {
                return Err(fault("jwks goes with token_endpoint_auth_method private_key_jwt"));
            }
            if method == Some(AuthMethod::ClientSecretJwt) && secrets.len() != 1 {
                return Err(fault("a client_secret_jwt client has exactly one client_secret"));
            }
            // RFC 7518 §3.2: an HS256 key has at least 256 bits; a shorter
            // one falls to an offline search from one captured assertion.
            if method == Some(AuthMethod::ClientSecretJwt) && secrets[0].len() < 32 {
                return Err(fault("a client_secret_jwt secret has at least 32 bytes"));
            }
            if let Some(uri) = entry.redirect_uris.iter().find(|u| {
                u.parse::<http::Uri>()
                    .map_or(true, |u| u.scheme().is_none())
                    || u.contains('#')
            }) {
                return Err(fault(&format!(
                    "redirect URI {uri:?} is not an absolute URI without fragment"
                )));
            }
            // Such a URI could never be redirected to (every policy refuses
            // it), so it is a mistake to say so now rather than at the first
            // login. The URI is named by its place, not echoed: its query
            // holds a value written where a code goes.
            if let Some((position, name)) = entry
                .redirect_uris
                .iter()
                .enumerate()
                .find_map(|(i, uri)| Some((i, redirect::response_parameter_in(uri)?)))
            {
                return Err(fault(&format!(
                    "redirect URI #{position} names `{name}` in its query, a parameter the authorization response adds itself"
                )));
            }
            let mut client = if public {
                Client::public(entry.client_id.clone())
            } else {
                Client::confidential(entry.client_id.clone())
            };
            match method {
                Some(AuthMethod::ClientSecretJwt) => {
                    client = client.with_jwt_secret(secrets[0]);
                }
                Some(AuthMethod::PrivateKeyJwt) => {
                    let jwks = entry.jwks.as_ref().ok_or_else(|| fault("jwks is missing"))?;
                    let jwks =
                        Jwks::from_json(jwks).map_err(|error| fault(&format!("jwks: {error}")))?;
                    client = client.with_jwks(jwks);
                }
                Some(method) => {
                    for secret in &secrets {
                        client = client.with_secret(secret);
                    }
                    client = client.with_auth_method(method);
                }
                None => {
                    for secret in &secrets {
                        client = client.with_secret(secret);
                    }
                }
            }
            client = client.with_dpop_bound_access_tokens(entry.dpop_bound_access_tokens);
            if entry.introspect && public {
                return Err(fault(
                    "introspect is for confidential clients only (anyone can name a public client)",
                ));
            }
            client = client.with_introspection(entry.introspect);
            for uri in &entry.redirect_uris {
                client = client.with_redirect_uri(uri.clone());
            }
            if let Some(names) = &entry.grant_types {
                let grants = names
                    .iter()
                    .map(|name| {
                        grant_type(name).ok_or_else(|| {
                            fault(&format!(
                                "unknown grant type {name:?} (authorization_code, refresh_token, client_credentials, device_code)"
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if public && grants.contains(&GrantType::ClientCredentials) {
                    return Err(fault("a public client cannot use client_credentials"));
                }
                client = client.with_grant_types(grants);
            }
            if entry.device_flow {
                client = client.with_device_flow(true);
            }
            if let Some(scopes) = &entry.scopes {
                if scopes.iter().any(|s| s.is_empty() || !crate::scope::is_valid(std::slice::from_ref(s))) {
                    return Err(fault("a scope is empty or has characters RFC 6749 §3.3 forbids"));
                }
                client = client.with_scopes(scopes.iter().cloned());
            }
            Ok(client.with_redirect_policy(entry.redirect_policy))
        })
        .collect()
}

/// A grant type by its `grant_type` value, or by the short name
/// `device_code`.
fn grant_type(name: &str) -> Option<GrantType> {
    match name {
        "device_code" => Some(GrantType::DeviceCode),
        _ => GrantType::from_param(name),
    }
}

/// serde quotes offending values (`invalid type: string "..."`), and a
/// value in this file may be a secret (with escaped quotes inside, so no
/// amount of unquoting is safe): keep the message up to the first quote, and
/// the position.
fn redact_values(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let head = message.split('"').next().unwrap_or("").trim_end();
    let head = head.split(" at line ").next().unwrap_or(head);
    format!("{head} (line {}, column {})", error.line(), error.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_format() {
        let clients = parse(
            r#"{"clients":[
                {"client_id":"a","client_secret":"s","redirect_uris":["https://a.example/cb"],"public":false,"redirect_policy":"github"},
                {"client_id":"b","public":true,"redirect_uris":["http://127.0.0.1/cb"],"redirect_policy":"loopback"},
                {"client_id":"c","client_secrets":["old","new"],"redirect_uris":["https://c.example/cb"]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(clients.len(), 3);
        assert!(clients[0].verify_secret("s"));
        assert_eq!(clients[0].redirect_policy(), RedirectPolicy::GitHub);
        assert!(clients[1].is_public());
        assert!(clients[2].verify_secret("old") && clients[2].verify_secret("new"));
        assert_eq!(clients[2].redirect_policy(), RedirectPolicy::Exact);
        assert!(clients[2].allows_grant(GrantType::RefreshToken));
        assert!(!clients[2].allows_grant(GrantType::DeviceCode));
    }

    #[test]
    fn reads_grants_scopes_and_device_flow() {
        let clients = parse(
            r#"{"clients":[
                {"client_id":"svc","client_secret":"s","grant_types":["client_credentials"],"scopes":["read","write"]},
                {"client_id":"cli","public":true,"device_flow":true,"grant_types":["refresh_token"]}
            ]}"#,
        )
        .unwrap();
        assert!(clients[0].allows_grant(GrantType::ClientCredentials));
        assert!(!clients[0].allows_grant(GrantType::AuthorizationCode));
        assert_eq!(clients[0].allowed_scopes().unwrap(), ["read", "write"]);
        assert!(clients[1].allows_grant(GrantType::DeviceCode));
        assert!(clients[1].allows_grant(GrantType::RefreshToken));
        assert!(!clients[1].allows_grant(GrantType::AuthorizationCode));
    }

    #[test]
    fn refuses_bad_documents_with_a_clear_message() {
        for (json, needle) in [
            (
                r#"{"clients":[{"client_id":"a","public":false}]}"#,
                "needs client_secret",
            ),
            (
                r#"{"clients":[{"client_id":"a","client_secret":"x","public":true}]}"#,
                "public client has no secret",
            ),
            (
                r#"{"clients":[{"client_id":"","public":true}]}"#,
                "client_id is empty",
            ),
            (
                r#"{"clients":[{"client_id":"a","public":true},{"client_id":"a","public":true}]}"#,
                "twice",
            ),
            (
                r#"{"clients":[{"client_id":"a","public":true,"redirect_policy":"loose"}]}"#,
                "unknown variant",
            ),
            (
                r#"{"clients":[{"client_id":"a","public":true,"colour":"red"}]}"#,
                "unknown field",
            ),
            (
                r#"{"clients":[{"client_id":"a","public":true,"redirect_uris":["/relative"]}]}"#,
                "not an absolute URI",
            ),
            (
                r#"{"clients":[{"client_id":"a","public":true,"redirect_uris":["https://a.example/cb","https://a.example/cb?x=1&code=planted"]}]}"#,
                "redirect URI #1 names `code` in its query",
            ),
            (
                r#"{"clients":[{"client_id":"a","public":true,"redirect_uris":["https://a.example/cb?%73tate=s"]}]}"#,
                "redirect URI #0 names `state` in its query",
            ),
            ("not json", "invalid clients file"),
            (
                r#"{"clients":[{"client_id":"a","public":true,"grant_types":["password"]}]}"#,
                "unknown grant type",
            ),
            (
                r#"{"clients":[{"client_id":"a","public":true,"grant_types":["client_credentials"]}]}"#,
                "cannot use client_credentials",
            ),
            (
                r#"{"clients":[{"client_id":"a","public":true,"scopes":["a b"]}]}"#,
                "scope",
            ),
        ] {
            let err = parse(json).err().unwrap().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn a_planted_response_parameter_is_named_not_echoed() {
        for policy in ["exact", "loopback", "github"] {
            let err = parse(&format!(
                r#"{{"clients":[{{"client_id":"a","public":true,"redirect_policy":"{policy}","redirect_uris":["http://127.0.0.1/cb?error_uri=PLANTED"]}}]}}"#
            ))
            .err()
            .unwrap()
            .to_string();
            assert!(err.contains(r#"client #0 ("a")"#), "{err}");
            assert!(err.contains("`error_uri`"), "{err}");
            assert!(!err.contains("PLANTED"), "{err}");
        }
        // A query without one still loads, and still matches.
        let clients = parse(
            r#"{"clients":[{"client_id":"a","public":true,"redirect_uris":["https://a.example/cb?codes=1"]}]}"#,
        )
        .unwrap();
        assert!(clients[0].allows_redirect_uri("https://a.example/cb?codes=1"));
    }

    #[test]
    fn errors_never_echo_a_secret() {
        let err =
            parse(r#"{"clients":[{"client_id":"a","client_secret":"TOPSECRET","public":true}]}"#)
                .err()
                .unwrap()
                .to_string();
        assert!(!err.contains("TOPSECRET"));
        let err = parse(r#"{"clients":[{"client_id":"a","client_secrets":"TOPSECRET"}]}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("invalid type") && !err.contains("TOPSECRET"),
            "{err}"
        );
    }
}
