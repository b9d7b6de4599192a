//! Authorization server metadata (RFC 8414), rendered from the layer's own
//! configuration so that what it announces is what it enforces.

use http::{
    HeaderValue, Response,
    header::{CACHE_CONTROL, CONTENT_TYPE},
};
use serde::Serialize;

use crate::{client::GrantType, dialect::Dialect, settings::Settings};

/// How long shared caches may keep the metadata answer.
const CACHE_CONTROL_VALUE: &str = "public, max-age=3600";

/// The metadata document of `/.well-known/oauth-authorization-server`.
///
/// ```
/// use tokengate::{MemoryStore, TokenGateLayer};
///
/// let layer = TokenGateLayer::new(MemoryStore::new());
/// let metadata = layer
///     .metadata("https://auth.example.com")
///     .with_authorization_endpoint("/login/oauth/authorize");
/// let json = serde_json::to_value(&metadata).unwrap();
/// assert_eq!(json["token_endpoint"], "https://auth.example.com/login/oauth/access_token");
/// assert_eq!(json["code_challenge_methods_supported"][0], "S256");
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Metadata {
    issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_endpoint: Option<String>,
    token_endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_authorization_endpoint: Option<String>,
    response_types_supported: Vec<&'static str>,
    grant_types_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// RFC 8414 §2: the algorithms of `private_key_jwt` and
    /// `client_secret_jwt` assertions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    code_challenge_methods_supported: Vec<&'static str>,
    /// RFC 9449 §5.1: the algorithms of DPoP proofs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dpop_signing_alg_values_supported: Vec<&'static str>,
    /// RFC 7009, with the token endpoint's methods (RFC 8414 §2).
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_endpoint_auth_methods_supported: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_endpoint_auth_signing_alg_values_supported: Option<Vec<&'static str>>,
    /// RFC 7662, with the token endpoint's methods but `none`: a public
    /// client never introspects.
    #[serde(skip_serializing_if = "Option::is_none")]
    introspection_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    introspection_endpoint_auth_methods_supported: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    introspection_endpoint_auth_signing_alg_values_supported: Option<Vec<&'static str>>,
}

impl Metadata {
    pub(crate) fn new(settings: &Settings, issuer: &str) -> Self {
        let issuer = issuer.trim_end_matches('/').to_owned();
        let grant_types_supported = GrantType::ALL
            .into_iter()
            .filter(|grant| match grant {
                GrantType::AuthorizationCode => true,
                GrantType::RefreshToken => settings.refresh_enabled,
                GrantType::DeviceCode => settings.device_path.is_some(),
                GrantType::ClientCredentials => {
                    settings.dialect() == Dialect::Rfc6749 || settings.github_client_credentials
                }
            })
            .map(GrantType::as_str)
            .collect();
        let (
            token_endpoint_auth_methods_supported,
            token_endpoint_auth_signing_alg_values_supported,
            dpop_signing_alg_values_supported,
        ) = signing(settings);
        let algorithms = Some(token_endpoint_auth_signing_alg_values_supported.clone())
            .filter(|algorithms| !algorithms.is_empty());
        let revocation = settings.revocation_path.as_ref().map(|path| {
            (
                format!("{issuer}{path}"),
                token_endpoint_auth_methods_supported.clone(),
            )
        });
        let introspection = settings.introspection_path.as_ref().map(|path| {
            let mut methods = token_endpoint_auth_methods_supported.clone();
            methods.retain(|method| *method != "none");
            (format!("{issuer}{path}"), methods)
        });
        let mut code_challenge_methods_supported = vec!["S256"];
        if settings.allow_plain_pkce {
            code_challenge_methods_supported.push("plain");
        }
        Self {
            token_endpoint: format!("{issuer}{}", settings.token_path),
            device_authorization_endpoint: settings
                .device_path
                .as_ref()
                .map(|path| format!("{issuer}{path}")),
            authorization_endpoint: None,
            issuer,
            response_types_supported: vec!["code"],
            grant_types_supported,
            token_endpoint_auth_methods_supported,
            token_endpoint_auth_signing_alg_values_supported,
            code_challenge_methods_supported,
            dpop_signing_alg_values_supported,
            revocation_endpoint_auth_signing_alg_values_supported: revocation
                .as_ref()
                .and(algorithms.clone()),
            introspection_endpoint_auth_signing_alg_values_supported: introspection
                .as_ref()
                .and(algorithms),
            revocation_endpoint_auth_methods_supported: revocation
                .as_ref()
                .map(|(_, methods)| methods.clone()),
            revocation_endpoint: revocation.map(|(url, _)| url),
            introspection_endpoint_auth_methods_supported: introspection
                .as_ref()
                .map(|(_, methods)| methods.clone()),
            introspection_endpoint: introspection.map(|(url, _)| url),
        }
    }

    /// Announces the authorization endpoint served at `path` (the layer
    /// does not serve it; the application does, with
    /// [`Authorizer`](crate::authorize::Authorizer)).
    #[must_use]
    pub fn with_authorization_endpoint(mut self, path: &str) -> Self {
        self.authorization_endpoint = Some(format!("{}{path}", self.issuer));
        self
    }

    /// The `grant_types_supported` list.
    pub fn grant_types_supported(&self) -> &[&'static str] {
        &self.grant_types_supported
    }

    /// The document as JSON.
    pub fn to_json(&self) -> String {
        // Strings and lists of strings always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The HTTP answer for `GET /.well-known/oauth-authorization-server`:
    /// `200`, the JSON document, `Content-Type: application/json` and
    /// `Cache-Control: public, max-age=3600` (the document is the same for
    /// everyone and changes only with the configuration, so shared caches
    /// may keep it for an hour).
    ///
    /// Render it from [`TokenGateLayer::metadata_document`](crate::TokenGateLayer::metadata_document)
    /// (the configured issuer), never from the request's `Host`: a cache
    /// would hand a document forged by one request to everyone.
    ///
    /// ```
    /// use tokengate::{MemoryStore, TokenGateLayer};
    ///
    /// let layer = TokenGateLayer::builder()
    ///     .store(MemoryStore::new())
    ///     .issuer("https://auth.example.com")
    ///     .build();
    /// let response = layer.metadata_document().unwrap().response();
    /// assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
    /// assert_eq!(response.headers()["content-type"], "application/json");
    /// ```
    pub fn response(&self) -> Response<String> {
        let mut response = Response::new(self.to_json());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL_VALUE));
        response
    }
}

type Lists = (Vec<&'static str>, Vec<&'static str>, Vec<&'static str>);

/// The authentication methods, and the algorithms of assertions and DPoP
/// proofs. Assertions and proofs need the JOSE checks and the issuer (their
/// audience and `htu`).
fn signing(settings: &Settings) -> Lists {
    #[cfg_attr(not(feature = "jose"), allow(unused_mut))]
    let mut methods = vec!["client_secret_basic", "client_secret_post", "none"];
    #[cfg(feature = "jose")]
    if settings.signed.token_endpoint.is_some() {
        methods.extend(["private_key_jwt", "client_secret_jwt"]);
        let mut assertions = crate::jose::SIGNING_ALGORITHMS.to_vec();
        assertions.push("HS256");
        return (
            methods,
            assertions,
            crate::jose::SIGNING_ALGORITHMS.to_vec(),
        );
    }
    let _ = settings;
    (methods, Vec::new(), Vec::new())
}
