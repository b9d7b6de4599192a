//! The clients document: a JSON file that registers clients at start-up.
//!
//! ```json
//! {"clients":[{"client_id":"..","client_secret":"..","redirect_uris":[".."],
//!              "public":false,"redirect_policy":"exact|loopback|github"}]}
//! ```
//!
//! Secrets are hashed as they are read and never kept in the clear.

use std::{collections::HashSet, fmt, io, path::Path};

use serde::Deserialize;

use crate::{client::Client, redirect::RedirectPolicy};

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
}

/// A clients document that could not be read or is invalid. The message
/// names the entry at fault and never contains a secret.
#[derive(Debug)]
pub struct ClientsFileError {
    message: String,
}

impl ClientsFileError {
    pub(super) fn read(path: &Path, error: io::Error) -> Self {
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

pub(super) fn parse(json: &str) -> Result<Vec<Client>, ClientsFileError> {
    let document: Document = serde_json::from_str(json).map_err(|e| {
        ClientsFileError::invalid(format!(
            "invalid clients file: {}",
            redact_values(&e.to_string())
        ))
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
            match (entry.public, secrets.is_empty()) {
                (true, false) => return Err(fault("a public client has no secret")),
                (false, true) => {
                    return Err(fault(
                        "a confidential client needs client_secret or client_secrets",
                    ));
                }
                _ => {}
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
            let mut client = if entry.public {
                Client::public(entry.client_id.clone())
            } else {
                Client::confidential(entry.client_id.clone())
            };
            for secret in secrets {
                client = client.with_secret(secret);
            }
            for uri in &entry.redirect_uris {
                client = client.with_redirect_uri(uri.clone());
            }
            Ok(client.with_redirect_policy(entry.redirect_policy))
        })
        .collect()
}

/// serde quotes offending values (`invalid type: string "..."`), and a value
/// in this file may be a secret: keep the message, drop the quoted text.
fn redact_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, part) in message.split('"').enumerate() {
        out.push_str(if i % 2 == 1 { "\"<redacted>\"" } else { part });
    }
    out
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
            ("not json", "invalid clients file"),
        ] {
            let err = parse(json).err().unwrap().to_string();
            assert!(err.contains(needle), "{err}");
        }
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
