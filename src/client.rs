//! The registered client: who may ask for tokens, with which secrets, and
//! where its codes may be sent.

use std::fmt;

pub use crate::{
    jwks::{Jwks, JwksError},
    redirect::RedirectPolicy,
    secret::SecretDigest,
};

/// How a client authenticates at the token endpoint: its registered
/// `token_endpoint_auth_method` (RFC 7591 §2). A client registered for one
/// method is refused when it uses another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `client_secret_basic`: the secret in HTTP Basic credentials.
    ClientSecretBasic,
    /// `client_secret_post`: the secret in the body.
    ClientSecretPost,
    /// `client_secret_jwt`: an assertion signed with HS256 keyed by the
    /// secret (RFC 7523 §2.2, OpenID Connect Core §9).
    ClientSecretJwt,
    /// `private_key_jwt`: an assertion signed by one of the client's
    /// registered public keys.
    PrivateKeyJwt,
    /// `none`: a public client, identified by its id alone.
    None,
}

impl AuthMethod {
    /// Every method, in the order above.
    pub const ALL: [Self; 5] = [
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::ClientSecretJwt,
        Self::PrivateKeyJwt,
        Self::None,
    ];

    /// The registered name (RFC 7591, OpenID Connect Core §9).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::None => "none",
        }
    }

    /// The method with this registered name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|method| method.as_str() == name)
    }
}

/// The secret of a `client_secret_jwt` client, kept as it is: an HMAC is
/// checked with the key itself, so for these clients (and only these) the
/// store holds the secret, not its digest.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct JwtSecret(pub(crate) String);

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A grant type the gate knows how to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrantType {
    /// `authorization_code` (RFC 6749 §4.1).
    AuthorizationCode,
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken,
    /// `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4).
    DeviceCode,
    /// `client_credentials` (RFC 6749 §4.4).
    ClientCredentials,
}

impl GrantType {
    /// Every grant type, in the order above.
    pub const ALL: [Self; 4] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::DeviceCode,
        Self::ClientCredentials,
    ];

    /// The value of the `grant_type` parameter.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            Self::ClientCredentials => "client_credentials",
        }
    }

    /// The grant type named by a `grant_type` value, if the gate knows it.
    pub fn from_param(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|grant| grant.as_str() == value)
    }
}

/// A registered OAuth client.
///
/// Secrets are kept as digests only; several may be valid at once so a
/// client can rotate its secret without downtime.
///
/// ```
/// use tokengate::{Client, client::RedirectPolicy};
///
/// let client = Client::confidential("s6BhdRkqt3")
///     .with_secret("7Fjfp0ZBr1KtDRbnfVdmIw")
///     .with_redirect_uri("https://client.example.com/cb")
///     .with_redirect_policy(RedirectPolicy::Exact);
/// assert!(client.verify_secret("7Fjfp0ZBr1KtDRbnfVdmIw"));
/// assert!(!client.verify_secret("wrong"));
/// assert!(client.allows_redirect_uri("https://client.example.com/cb"));
/// assert!(!client.allows_redirect_uri("https://client.example.com/cb/"));
/// ```
///
/// A client serializes (serde) to the form a backend stores: its secrets as
/// SHA-256 digests in hex, never the secrets themselves.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(into = "ClientRecord", try_from = "ClientRecord")]
pub struct Client {
    client_id: String,
    secrets: Vec<SecretDigest>,
    public: bool,
    redirect_uris: Vec<String>,
    redirect_policy: RedirectPolicy,
    grant_types: Vec<GrantType>,
    scopes: Option<Vec<String>>,
    /// `None`: a confidential client's secret by Basic or in the body, a
    /// public client's id alone (as before methods were registered).
    auth_method: Option<AuthMethod>,
    jwks: Option<Jwks>,
    jwt_secret: Option<JwtSecret>,
    dpop_bound: bool,
    introspect: bool,
}

impl Client {
    /// A confidential client: it must authenticate with one of its secrets.
    pub fn confidential(client_id: impl Into<String>) -> Self {
        Self::new(client_id.into(), false)
    }

    /// A public client (a native or browser app): it has no secret, so every
    /// code it redeems must carry PKCE.
    pub fn public(client_id: impl Into<String>) -> Self {
        Self::new(client_id.into(), true)
    }

    fn new(client_id: String, public: bool) -> Self {
        Self {
            client_id,
            secrets: Vec::new(),
            public,
            redirect_uris: Vec::new(),
            redirect_policy: RedirectPolicy::Exact,
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes: None,
            auth_method: public.then_some(AuthMethod::None),
            jwks: None,
            jwt_secret: None,
            dpop_bound: false,
            introspect: false,
        }
    }

    /// Registers the one method this confidential client authenticates
    /// with; any other is refused. Without it, a confidential client's
    /// secret is accepted by Basic or in the body. [`with_jwks`](Self::with_jwks)
    /// and [`with_jwt_secret`](Self::with_jwt_secret) set it themselves.
    /// A public client's method is always `none`.
    #[must_use]
    pub fn with_auth_method(mut self, method: AuthMethod) -> Self {
        if !self.public {
            self.auth_method = Some(method);
        }
        self
    }

    /// Registers the client's public keys and makes `private_key_jwt` its
    /// method: it authenticates with assertions signed by one of them
    /// (ES256, EdDSA / Ed25519, RS256, PS256).
    #[must_use]
    pub fn with_jwks(mut self, jwks: Jwks) -> Self {
        self.jwks = Some(jwks);
        self.with_auth_method(AuthMethod::PrivateKeyJwt)
    }

    /// Registers the secret of a `client_secret_jwt` client and makes that
    /// its method: it authenticates with HS256 assertions keyed by it.
    ///
    /// The trade-off: an HMAC is verified with the key itself, so the
    /// secret is kept as it is, in memory and in the store, where every
    /// other method keeps only its SHA-256 digest. Whoever reads the store
    /// can then act as this client. Prefer `private_key_jwt`. Give it at
    /// least 32 random bytes (RFC 7518 §3.2): one captured assertion lets
    /// anyone search for a shorter secret offline. A clients file refuses
    /// a shorter one.
    #[must_use]
    pub fn with_jwt_secret(mut self, secret: &str) -> Self {
        self.jwt_secret = Some(JwtSecret(secret.to_owned()));
        self.with_auth_method(AuthMethod::ClientSecretJwt)
    }

    /// Whether every token this client gets must be bound to a DPoP key
    /// (RFC 9449 §5.2, `dpop_bound_access_tokens`): a token request
    /// without a valid proof is refused.
    #[must_use]
    pub fn with_dpop_bound_access_tokens(mut self, bound: bool) -> Self {
        self.dpop_bound = bound;
        self
    }

    /// Whether this client (a resource server) may ask the introspection
    /// endpoint (RFC 7662) about tokens: any token, whoever it was issued
    /// to, so only clients registered for it may. Public clients never
    /// may: anyone can name them.
    #[must_use]
    pub fn with_introspection(mut self, allowed: bool) -> Self {
        self.introspect = allowed && !self.public;
        self
    }

    /// Whether the client may introspect tokens.
    pub fn may_introspect(&self) -> bool {
        self.introspect
    }

    /// The registered authentication method, if one was registered.
    pub fn auth_method(&self) -> Option<AuthMethod> {
        self.auth_method
    }

    /// The registered public keys (`private_key_jwt`).
    pub fn jwks(&self) -> Option<&Jwks> {
        self.jwks.as_ref()
    }

    #[cfg_attr(not(feature = "jose"), allow(dead_code))]
    pub(crate) fn jwt_secret(&self) -> Option<&str> {
        self.jwt_secret.as_ref().map(|secret| secret.0.as_str())
    }

    /// Whether the client's tokens must be DPoP-bound.
    pub fn dpop_bound_access_tokens(&self) -> bool {
        self.dpop_bound
    }

    /// Whether a secret sent by Basic (`basic`) or in the body may
    /// authenticate this client.
    pub(crate) fn takes_secret(&self, basic: bool) -> bool {
        match self.auth_method {
            None => !self.public,
            Some(AuthMethod::ClientSecretBasic) => basic,
            Some(AuthMethod::ClientSecretPost) => !basic,
            Some(_) => false,
        }
    }

    /// Adds a valid secret, stored as its digest.
    #[must_use]
    pub fn with_secret(self, secret: &str) -> Self {
        self.with_secret_digest(SecretDigest::of(secret))
    }

    /// Adds a valid secret given as its digest, as a backend stores it.
    #[must_use]
    pub fn with_secret_digest(mut self, digest: SecretDigest) -> Self {
        self.secrets.push(digest);
        self
    }

    /// Registers a redirect URI (GitHub calls it the callback URL).
    ///
    /// This builder cannot fail, so it takes any string; a clients file is
    /// checked at load instead. A URI with a fragment, or whose query
    /// already names a parameter of the authorization response (`code`,
    /// `state`, `error`, `error_description`, `error_uri`), is kept but
    /// never used: no policy allows it, and the authorizer never redirects
    /// to it, even as the only registered URI.
    ///
    /// ```
    /// use tokengate::Client;
    /// let client = Client::public("app").with_redirect_uri("https://app.example/cb?code=x");
    /// assert!(!client.allows_redirect_uri("https://app.example/cb?code=x"));
    /// ```
    #[must_use]
    pub fn with_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }

    /// How a requested redirect URI is compared with the registered ones.
    #[must_use]
    pub fn with_redirect_policy(mut self, policy: RedirectPolicy) -> Self {
        self.redirect_policy = policy;
        self
    }

    /// The grants this client may use (default: `authorization_code` and
    /// `refresh_token`). `client_credentials` is refused to public clients
    /// whatever this says (RFC 6749 §4.4); the device flow is enabled by
    /// listing [`GrantType::DeviceCode`].
    #[must_use]
    pub fn with_grant_types(mut self, grants: impl IntoIterator<Item = GrantType>) -> Self {
        self.grant_types = grants.into_iter().collect();
        self
    }

    /// Enables or disables the device flow (RFC 8628) for this client: the
    /// same as listing [`GrantType::DeviceCode`] in its grant types.
    #[must_use]
    pub fn with_device_flow(mut self, enabled: bool) -> Self {
        self.grant_types.retain(|g| *g != GrantType::DeviceCode);
        if enabled {
            self.grant_types.push(GrantType::DeviceCode);
        }
        self
    }

    /// The scopes this client may be granted (default: any). A request for
    /// another scope is refused with `invalid_scope`.
    #[must_use]
    pub fn with_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// The client identifier.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Whether this is a public client (no secret, PKCE required).
    pub fn is_public(&self) -> bool {
        self.public
    }

    /// The registered redirect URIs, in registration order.
    pub fn redirect_uris(&self) -> &[String] {
        &self.redirect_uris
    }

    /// The redirect URI policy.
    pub fn redirect_policy(&self) -> RedirectPolicy {
        self.redirect_policy
    }

    /// The digests of the client's valid secrets.
    pub fn secret_digests(&self) -> &[SecretDigest] {
        &self.secrets
    }

    /// Whether the client may use `grant`.
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        // A public client cannot authenticate, so it cannot act for itself.
        !(grant == GrantType::ClientCredentials && self.public) && self.grant_types.contains(&grant)
    }

    /// The grants this client may use.
    pub fn grant_types(&self) -> &[GrantType] {
        &self.grant_types
    }

    /// The scopes this client may be granted; `None` means any.
    pub fn allowed_scopes(&self) -> Option<&[String]> {
        self.scopes.as_deref()
    }

    /// The stored form of this client.
    fn to_stored(&self) -> ClientRecord {
        ClientRecord {
            client_id: self.client_id.clone(),
            public: self.public,
            secret_digests: self.secrets.iter().map(SecretDigest::to_hex).collect(),
            redirect_uris: self.redirect_uris.clone(),
            redirect_policy: self.redirect_policy.name().to_owned(),
            grant_types: self
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            scopes: self.scopes.clone(),
            token_endpoint_auth_method: self
                .auth_method
                .filter(|_| !self.public)
                .map(|method| method.as_str().to_owned()),
            jwks: self.jwks.as_ref().map(Jwks::to_json),
            jwt_secret: self.jwt_secret.as_ref().map(|secret| secret.0.clone()),
            dpop_bound_access_tokens: self.dpop_bound,
            introspect: self.introspect,
        }
    }

    /// Whether every scope of `requested` is allowed to this client.
    pub fn allows_scopes<S: AsRef<str>>(&self, requested: &[S]) -> bool {
        match &self.scopes {
            None => true,
            Some(allowed) => requested
                .iter()
                .all(|scope| allowed.iter().any(|a| a == scope.as_ref())),
        }
    }

    /// Whether `secret` is one of the client's secrets.
    ///
    /// Every stored digest is compared, in constant time, without stopping at
    /// the first match, so the time taken says nothing about which one
    /// matched.
    pub fn verify_secret(&self, secret: &str) -> bool {
        self.verify_digest(&SecretDigest::of(secret))
    }

    pub(crate) fn verify_digest(&self, presented: &SecretDigest) -> bool {
        self.secrets
            .iter()
            .fold(false, |found, stored| stored.matches(presented) | found)
    }

    /// Whether `requested` is allowed as a redirect URI by one of the
    /// registered URIs under the client's policy.
    pub fn allows_redirect_uri(&self, requested: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|registered| self.redirect_policy.allows(registered, requested))
    }
}

/// A client as a backend stores it: secrets as SHA-256 digests in hex (never
/// the secrets), the redirect policy and grant types by name. The serde
/// form of [`Client`]; a backend that keeps one field a column reads and
/// writes this.
///
/// ```
/// use tokengate::{Client, client::ClientRecord};
///
/// let client = Client::confidential("app").with_secret("s3cret");
/// let record = ClientRecord::from(&client);
/// assert_eq!(record.secret_digests[0].len(), 64);
/// assert!(!format!("{record:?}").contains(&record.secret_digests[0]));
/// let back = Client::try_from(record).unwrap();
/// assert!(back.verify_secret("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRecord {
    /// [`Client::client_id`].
    pub client_id: String,
    /// [`Client::is_public`].
    pub public: bool,
    /// The digests of the client's secrets, 64 lowercase hex digits each.
    pub secret_digests: Vec<String>,
    /// The registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// The redirect policy's [`name`](RedirectPolicy::name).
    pub redirect_policy: String,
    /// The grant types allowed, by their `grant_type` names.
    pub grant_types: Vec<String>,
    /// [`Client::allowed_scopes`].
    pub scopes: Option<Vec<String>>,
    /// [`Client::auth_method`] by its registered name; `None` for a public
    /// client, or a confidential one that may send its secret either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// [`Client::jwks`]: `{"keys": [...]}`, public keys only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// The secret itself, for a `client_secret_jwt` client only (see
    /// [`Client::with_jwt_secret`] for why it is not a digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
    /// [`Client::dpop_bound_access_tokens`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// [`Client::may_introspect`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub introspect: bool,
}

impl fmt::Debug for ClientRecord {
    // An unsalted digest of a weak secret can be searched for: kept out of
    // logs, as `Client`'s own Debug keeps it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRecord")
            .field("client_id", &self.client_id)
            .field("public", &self.public)
            .field(
                "secret_digests",
                &format_args!("<{} redacted>", self.secret_digests.len()),
            )
            .field("redirect_uris", &self.redirect_uris)
            .field("redirect_policy", &self.redirect_policy)
            .field("grant_types", &self.grant_types)
            .field("scopes", &self.scopes)
            .field(
                "token_endpoint_auth_method",
                &self.token_endpoint_auth_method,
            )
            .field("jwks", &self.jwks)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("dpop_bound_access_tokens", &self.dpop_bound_access_tokens)
            .field("introspect", &self.introspect)
            .finish()
    }
}

impl From<&Client> for ClientRecord {
    fn from(client: &Client) -> Self {
        client.to_stored()
    }
}

impl From<Client> for ClientRecord {
    fn from(client: Client) -> Self {
        client.to_stored()
    }
}

impl TryFrom<ClientRecord> for Client {
    /// Which field holds a form this version cannot read.
    type Error = &'static str;

    fn try_from(stored: ClientRecord) -> Result<Self, Self::Error> {
        stored.into_client()
    }
}

impl ClientRecord {
    fn into_client(self) -> Result<Client, &'static str> {
        let mut client = if self.public {
            Client::public(self.client_id)
        } else {
            Client::confidential(self.client_id)
        };
        for digest in &self.secret_digests {
            client = client.with_secret_digest(
                SecretDigest::from_hex(digest).ok_or("a secret digest is not 64 hex digits")?,
            );
        }
        let grants = self
            .grant_types
            .iter()
            .map(|name| GrantType::from_param(name).ok_or("an unknown grant type"))
            .collect::<Result<Vec<_>, _>>()?;
        // Not checked like a clients file: a stored client whose URI
        // already names `code` in its query must still load, or its other
        // URIs and grants would fail with it. That URI is inert anyway (see
        // `Client::with_redirect_uri`).
        client.redirect_uris = self.redirect_uris;
        client.redirect_policy =
            RedirectPolicy::from_name(&self.redirect_policy).ok_or("an unknown redirect policy")?;
        client.grant_types = grants;
        client.scopes = self.scopes;
        if let Some(jwks) = &self.jwks {
            client.jwks = Some(Jwks::from_json(jwks).map_err(|_| "a JWK set is invalid")?);
        }
        client.jwt_secret = self.jwt_secret.map(JwtSecret);
        client.dpop_bound = self.dpop_bound_access_tokens;
        if self.introspect && client.public {
            return Err("introspect is for confidential clients only");
        }
        client.introspect = self.introspect;
        if let Some(name) = &self.token_endpoint_auth_method {
            let method =
                AuthMethod::from_name(name).ok_or("an unknown token_endpoint_auth_method")?;
            if client.public != (method == AuthMethod::None) {
                return Err("token_endpoint_auth_method none is for public clients only");
            }
            client.auth_method = Some(method);
        }
        client.check_method()?;
        Ok(client)
    }
}

impl Client {
    /// Whether the registered method has what it needs: keys for
    /// `private_key_jwt`, a secret for `client_secret_jwt`, and nothing the
    /// method would leave unused (a JWT secret kept in the clear for a
    /// client that never signs with it).
    pub(crate) fn check_method(&self) -> Result<(), &'static str> {
        let method = self.auth_method;
        if self.jwks.is_some() != (method == Some(AuthMethod::PrivateKeyJwt)) {
            return Err("jwks goes with token_endpoint_auth_method private_key_jwt");
        }
        if self.jwt_secret.is_some() != (method == Some(AuthMethod::ClientSecretJwt)) {
            return Err("a JWT secret goes with token_endpoint_auth_method client_secret_jwt");
        }
        Ok(())
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field(
                "secrets",
                &format_args!("<{} redacted>", self.secrets.len()),
            )
            .field("public", &self.public)
            .field("redirect_uris", &self.redirect_uris)
            .field("redirect_policy", &self.redirect_policy)
            .field("grant_types", &self.grant_types)
            .field("scopes", &self.scopes)
            .field("auth_method", &self.auth_method)
            .field("jwks", &self.jwks)
            .field("jwt_secret", &self.jwt_secret)
            .field("dpop_bound_access_tokens", &self.dpop_bound)
            .field("introspect", &self.introspect)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_secrets_are_valid_at_once() {
        let client = Client::confidential("c")
            .with_secret("old")
            .with_secret("new");
        assert!(client.verify_secret("old"));
        assert!(client.verify_secret("new"));
        assert!(!client.verify_secret("other"));
    }

    #[test]
    fn a_public_client_matches_no_secret() {
        let client = Client::public("app");
        assert!(!client.verify_secret(""));
        assert!(client.is_public());
    }

    #[test]
    fn debug_redacts_secrets() {
        let client = Client::confidential("c").with_secret("hunter2");
        let shown = format!("{client:?}");
        assert!(shown.contains("<1 redacted>"));
        assert!(!shown.contains(&SecretDigest::of("hunter2").to_hex()));
    }
}
