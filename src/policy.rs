//! Policy hooks ([check 6](../docs/contract.md#order-of-checks)): the application's own rules, run after
//! every built-in check passed and before the request is forwarded.

use std::{
    borrow::Cow,
    collections::HashSet,
    fmt,
    future::Future,
    sync::{Arc, PoisonError, RwLock},
};

use http::{HeaderMap, StatusCode, Uri, request::Parts};

use crate::{
    client::Client,
    dialect::{Dialect, TOKEN_ERRORS_PAGE, github},
    error::{ErrorCode, is_valid_description, is_valid_error, is_valid_uri},
    grant::ValidatedGrant,
    store::{BoxFuture, StoreError},
};

/// What a policy sees: the validated grant (client, subject, scopes, the
/// record behind it) and the request's head. Cheap to clone.
#[derive(Clone)]
pub struct PolicyRequest {
    grant: ValidatedGrant,
    parts: Arc<Parts>,
    dialect: Dialect,
}

impl PolicyRequest {
    pub(crate) fn new(grant: ValidatedGrant, parts: Arc<Parts>, dialect: Dialect) -> Self {
        Self {
            grant,
            parts,
            dialect,
        }
    }

    /// The grant every built-in check accepted.
    pub fn grant(&self) -> &ValidatedGrant {
        &self.grant
    }

    /// The authenticated client.
    pub fn client(&self) -> &Client {
        self.grant.client()
    }

    /// The request's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    /// The request's URI.
    pub fn uri(&self) -> &Uri {
        &self.parts.uri
    }

    /// The request's extensions (e.g. a peer address an outer layer put
    /// there).
    pub fn extensions(&self) -> &http::Extensions {
        &self.parts.extensions
    }

    /// The layer's dialect, for policies that name errors differently in
    /// each.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

impl fmt::Debug for PolicyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Headers may carry credentials: not shown.
        f.debug_struct("PolicyRequest")
            .field("grant", &self.grant)
            .field("uri", &self.parts.uri.path())
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

/// A policy's refusal: an error code (standard or the application's own),
/// a description, an optional `error_uri` and status.
///
/// Everything is checked when the error is built, so an answer that would
/// break RFC 6749 §5.2 never reaches the wire:
///
/// ```
/// use http::StatusCode;
/// use tokengate::{ErrorCode, policy::PolicyError};
///
/// let blocked = PolicyError::new("client_blocked", "This client is blocked.")
///     .unwrap()
///     .with_status(StatusCode::FORBIDDEN)
///     .unwrap();
/// assert_eq!(blocked.error(), "client_blocked");
/// assert!(PolicyError::new("x", "say \"no\"").is_err());
/// let standard = PolicyError::standard(ErrorCode::InvalidGrant, "the user is locked out").unwrap();
/// assert_eq!(standard.error(), "invalid_grant");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub(crate) error: Cow<'static, str>,
    pub(crate) description: Cow<'static, str>,
    pub(crate) uri: Option<Cow<'static, str>>,
    pub(crate) status: Option<StatusCode>,
}

/// A policy error that would break RFC 6749 §5.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPolicyError(&'static str);

impl fmt::Display for InvalidPolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidPolicyError {}

impl PolicyError {
    /// An error named `error` with `description`. Both must be printable
    /// ASCII without `"` or `\`; `error` must not be empty.
    pub fn new(
        error: impl Into<Cow<'static, str>>,
        description: impl Into<Cow<'static, str>>,
    ) -> Result<Self, InvalidPolicyError> {
        let (error, description) = (error.into(), description.into());
        if !is_valid_error(&error) {
            return Err(InvalidPolicyError(
                "the error code must be printable ASCII without `\"` or `\\`",
            ));
        }
        if !is_valid_description(&description) {
            return Err(InvalidPolicyError(
                "the error description must be printable ASCII without `\"` or `\\`",
            ));
        }
        Ok(Self {
            error,
            description,
            uri: None,
            status: None,
        })
    }

    /// A standard error code with `description`.
    pub fn standard(
        code: ErrorCode,
        description: impl Into<Cow<'static, str>>,
    ) -> Result<Self, InvalidPolicyError> {
        Self::new(code.as_str(), description)
    }

    /// `500 server_error`: the policy could not decide (a store it reads was
    /// down). The request is not forwarded.
    pub fn server_error() -> Self {
        Self {
            error: Cow::Borrowed("server_error"),
            description: Cow::Borrowed("the authorization server could not complete the request"),
            uri: None,
            status: Some(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// Adds an `error_uri` (a URI reference without spaces, `"` or `\`).
    pub fn with_uri(
        mut self,
        uri: impl Into<Cow<'static, str>>,
    ) -> Result<Self, InvalidPolicyError> {
        let uri = uri.into();
        if !is_valid_uri(&uri) {
            return Err(InvalidPolicyError(
                "the error URI has characters RFC 6749 forbids",
            ));
        }
        self.uri = Some(uri);
        Ok(self)
    }

    /// The HTTP status (default: 400, or the GitHub dialect's error status):
    /// a 4xx or 5xx, or 200 for GitHub-style errors. Any other would hide
    /// the refusal from a client (a 3xx, a bodiless 204) or announce nothing.
    pub fn with_status(mut self, status: StatusCode) -> Result<Self, InvalidPolicyError> {
        if !(status.is_client_error() || status.is_server_error() || status == StatusCode::OK) {
            return Err(InvalidPolicyError(
                "a policy error's status must be 4xx, 5xx or 200",
            ));
        }
        self.status = Some(status);
        Ok(self)
    }

    /// The `error` field.
    pub fn error(&self) -> &str {
        &self.error
    }

    /// The `error_description` field.
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// An application rule run after the built-in checks. A closure is enough:
///
/// ```
/// use tokengate::{ErrorCode, policy::PolicyError, policy::PolicyRequest, TokenGateLayer, MemoryStore};
///
/// let layer = TokenGateLayer::builder()
///     .store(MemoryStore::new())
///     .issuer("https://auth.example.com")
///     .policy(|request: PolicyRequest| async move {
///         if request.client().client_id() == "blocked-app" {
///             return Err(PolicyError::standard(ErrorCode::UnauthorizedClient, "this client is blocked").unwrap());
///         }
///         Ok(())
///     })
///     .build();
/// # let _ = layer;
/// ```
pub trait Policy: Send + Sync + 'static {
    /// `Ok(())` lets the request through; an error answers it.
    fn check(&self, request: PolicyRequest)
    -> impl Future<Output = Result<(), PolicyError>> + Send;
}

impl<F, Fut> Policy for F
where
    F: Fn(PolicyRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), PolicyError>> + Send + 'static,
{
    fn check(
        &self,
        request: PolicyRequest,
    ) -> impl Future<Output = Result<(), PolicyError>> + Send {
        self(request)
    }
}

/// A [`Policy`] with its future boxed, so a layer can hold several kinds.
pub(crate) trait DynPolicy: Send + Sync + 'static {
    fn check(
        self: Arc<Self>,
        request: PolicyRequest,
    ) -> BoxFuture<'static, Result<(), PolicyError>>;
}

impl<P: Policy> DynPolicy for P {
    fn check(
        self: Arc<Self>,
        request: PolicyRequest,
    ) -> BoxFuture<'static, Result<(), PolicyError>> {
        Box::pin(async move { Policy::check(&*self, request).await })
    }
}

/// Runs `policies` in order; the first refusal wins.
pub(crate) async fn run(
    policies: &[Arc<dyn DynPolicy>],
    request: PolicyRequest,
) -> Result<(), PolicyError> {
    for policy in policies {
        Arc::clone(policy).check(request.clone()).await?;
    }
    Ok(())
}

/// GitHub's `unverified_user_email`: refuses a token to a user whose primary
/// email is not verified. `is_verified` reads the flag from the user's
/// record (an async look-up returning `Ok(true)` when verified); a look-up
/// failure answers `500 server_error`.
///
/// ```
/// use tokengate::{MemoryStore, TokenGateLayer, policy::UnverifiedUserEmail};
///
/// let layer = TokenGateLayer::builder()
///     .store(MemoryStore::new())
///     .issuer("https://auth.example.com")
///     .policy(UnverifiedUserEmail::new(|subject: String| async move {
///         Ok(subject != "unverified-user")
///     }))
///     .build();
/// # let _ = layer;
/// ```
pub struct UnverifiedUserEmail<F> {
    is_verified: F,
}

impl<F> UnverifiedUserEmail<F> {
    /// The policy, reading verification through `is_verified`.
    pub fn new(is_verified: F) -> Self {
        Self { is_verified }
    }
}

impl<F, Fut> Policy for UnverifiedUserEmail<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, StoreError>> + Send + 'static,
{
    fn check(
        &self,
        request: PolicyRequest,
    ) -> impl Future<Output = Result<(), PolicyError>> + Send {
        let lookup = request
            .grant()
            .subject()
            .map(|s| (self.is_verified)(s.to_owned()));
        async move {
            let Some(lookup) = lookup else {
                // Client credentials: no user, nothing to verify.
                return Ok(());
            };
            match lookup.await {
                Ok(true) => Ok(()),
                Ok(false) => Err(PolicyError {
                    error: Cow::Borrowed(ErrorCode::UnverifiedUserEmail.as_str()),
                    description: Cow::Borrowed(github::UNVERIFIED_USER_EMAIL),
                    uri: Some(Cow::Owned(format!(
                        "{TOKEN_ERRORS_PAGE}#unverified_user_email"
                    ))),
                    status: None,
                }),
                Err(error) => {
                    tracing::error!(%error, "email verification look-up failed");
                    Err(PolicyError::server_error())
                }
            }
        }
    }
}

impl<F> fmt::Debug for UnverifiedUserEmail<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedUserEmail")
            .finish_non_exhaustive()
    }
}

/// A per-client disable switch, flipped at run time: a disabled client gets
/// no token by any grant (`unauthorized_client`; GitHub's
/// `application_suspended`). Clones share one switch board.
///
/// ```
/// use tokengate::{policy::ClientSwitch, MemoryStore, TokenGateLayer};
///
/// let switch = ClientSwitch::new();
/// let layer = TokenGateLayer::builder()
///     .store(MemoryStore::new())
///     .issuer("https://auth.example.com")
///     .policy(switch.clone())
///     .build();
/// switch.disable("abusive-app");
/// assert!(switch.is_disabled("abusive-app"));
/// switch.enable("abusive-app");
/// # let _ = layer;
/// ```
#[derive(Clone, Default)]
pub struct ClientSwitch {
    disabled: Arc<RwLock<HashSet<String>>>,
}

impl ClientSwitch {
    /// A switch board with every client enabled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops `client_id` from getting tokens.
    pub fn disable(&self, client_id: &str) {
        self.disabled
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(client_id.to_owned());
    }

    /// Lets `client_id` get tokens again.
    pub fn enable(&self, client_id: &str) {
        self.disabled
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(client_id);
    }

    /// Whether `client_id` is disabled.
    pub fn is_disabled(&self, client_id: &str) -> bool {
        self.disabled
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(client_id)
    }
}

impl Policy for ClientSwitch {
    fn check(
        &self,
        request: PolicyRequest,
    ) -> impl Future<Output = Result<(), PolicyError>> + Send {
        let disabled = self.is_disabled(request.client().client_id());
        async move {
            if !disabled {
                return Ok(());
            }
            Err(match request.dialect() {
                Dialect::GitHub => PolicyError {
                    error: Cow::Borrowed("application_suspended"),
                    description: Cow::Borrowed(
                        "Your application has been suspended. Contact support.",
                    ),
                    uri: None,
                    status: None,
                },
                Dialect::Rfc6749 => PolicyError {
                    error: Cow::Borrowed(ErrorCode::UnauthorizedClient.as_str()),
                    description: Cow::Borrowed("the client is disabled"),
                    uri: None,
                    status: None,
                },
            })
        }
    }
}

impl fmt::Debug for ClientSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let disabled = self.disabled.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("ClientSwitch")
            .field("disabled", &disabled.len())
            .finish()
    }
}
