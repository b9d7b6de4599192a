//! The checks of a token request in SPEC.md's order, behind one object-safe
//! trait so the layer and service need not name the store types.
//!
//! grant_type (check 2) -> client authentication (3) -> grant allowed for the
//! client (4) -> the grant's own checks (5).

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use http::HeaderValue;

use crate::{
    authenticate::{authenticate, claimed_id},
    client::{Client, GrantType},
    clock::Clock,
    code::CodeRecord,
    dialect::{Dialect, Presentation},
    error::Failure,
    grant::{ValidatedGrant, authorization_code},
    parse::TokenRequest,
    secret::CodeKey,
    store::{CodeStore, CredentialStore, StoreError},
};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Called with the record of a code presented again after its redemption.
pub(crate) type ReplayHook = Arc<dyn Fn(&CodeRecord) + Send + Sync>;

/// The layer's configuration, shared by every clone of the service.
pub(crate) struct Settings {
    pub(crate) token_path: String,
    pub(crate) presentation: Presentation,
    pub(crate) body_limit: usize,
    pub(crate) www_authenticate: HeaderValue,
    pub(crate) code_lifetime: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) allow_plain_pkce: bool,
    pub(crate) on_code_replay: Option<ReplayHook>,
}

impl Settings {
    pub(crate) fn dialect(&self) -> Dialect {
        self.presentation.dialect
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("token_path", &self.token_path)
            .field("dialect", &self.presentation.dialect)
            .field("error_uri_base", &self.presentation.error_uri_base)
            .field("github_status", &self.presentation.github_status)
            .field("body_limit", &self.body_limit)
            .field("www_authenticate", &self.www_authenticate)
            .field("code_lifetime", &self.code_lifetime)
            .field("allow_plain_pkce", &self.allow_plain_pkce)
            .field("on_code_replay", &self.on_code_replay.is_some())
            .finish_non_exhaustive()
    }
}

/// A refused request: why, and which client it claimed to be (for logs).
pub(crate) struct Refusal {
    pub(crate) failure: Failure,
    pub(crate) client_id: Option<String>,
}

/// The gate's checks and store access, with the store types erased.
pub(crate) trait Checks: Send + Sync + 'static {
    fn settings(&self) -> &Settings;

    /// Runs checks 2 to 5 on a parsed request.
    fn check(self: Arc<Self>, request: TokenRequest) -> BoxFuture<Result<ValidatedGrant, Refusal>>;

    /// Looks a client up, for the authorization endpoint.
    fn client(
        self: Arc<Self>,
        client_id: String,
    ) -> BoxFuture<Result<Option<Arc<Client>>, StoreError>>;

    /// Stores a new code, for the authorization endpoint.
    fn issue(
        self: Arc<Self>,
        key: CodeKey,
        record: CodeRecord,
    ) -> BoxFuture<Result<(), StoreError>>;
}

/// The concrete checks over a credential store `C` and a code store `K`.
pub(crate) struct Gate<C, K> {
    pub(crate) settings: Settings,
    pub(crate) credentials: C,
    pub(crate) codes: K,
}

impl<C: CredentialStore, K: CodeStore> Gate<C, K> {
    async fn run(&self, mut request: TokenRequest) -> Result<ValidatedGrant, Failure> {
        let grant = match request.grant_type.as_deref() {
            Some(name) => GrantType::from_param(name).ok_or(Failure::GrantTypeUnsupported)?,
            None if self.settings.dialect() == Dialect::GitHub => GrantType::AuthorizationCode,
            None => return Err(Failure::GrantTypeMissing),
        };
        let client = authenticate(&self.credentials, &mut request).await?;
        if !client.allows_grant(grant) {
            return Err(Failure::GrantNotAllowed);
        }
        match grant {
            GrantType::AuthorizationCode => {
                let record =
                    authorization_code::redeem(&self.codes, &self.settings, &client, &request)
                        .await?;
                Ok(ValidatedGrant::authorization_code(client, record))
            }
        }
    }
}

impl<C: CredentialStore, K: CodeStore> Checks for Gate<C, K> {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn check(self: Arc<Self>, request: TokenRequest) -> BoxFuture<Result<ValidatedGrant, Refusal>> {
        Box::pin(async move {
            let client_id = claimed_id(&request).map(str::to_owned);
            self.run(request)
                .await
                .map_err(|failure| Refusal { failure, client_id })
        })
    }

    fn client(
        self: Arc<Self>,
        client_id: String,
    ) -> BoxFuture<Result<Option<Arc<Client>>, StoreError>> {
        Box::pin(async move { self.credentials.client(&client_id).await })
    }

    fn issue(
        self: Arc<Self>,
        key: CodeKey,
        record: CodeRecord,
    ) -> BoxFuture<Result<(), StoreError>> {
        Box::pin(async move { self.codes.issue(key, record).await })
    }
}
