//! The checks of a token request in SPEC.md's order, behind one object-safe
//! trait so the layer and service need not name the store types.
//!
//! grant_type (check 2) -> client authentication (3) -> grant allowed for the
//! client (4) -> the grant's own checks (5). The policies (check 6) run in
//! the response future, which holds the request's head.

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use http::HeaderValue;

use crate::{
    authenticate::{authenticate, claimed_id},
    client::{Client, GrantType},
    clock::Clock,
    code::CodeRecord,
    device::{self, DeviceDecision, DeviceRecord, DeviceStatus},
    dialect::{Dialect, Presentation},
    error::Failure,
    grant::{ValidatedGrant, authorization_code, client_credentials, device_code, refresh_token},
    lockout::Lockouts,
    parse::TokenRequest,
    policy::DynPolicy,
    refresh::RefreshRecord,
    reservation::{Held, Reservation, Settle},
    scope,
    secret::{CodeKey, random_code},
    store::{CodeStore, CredentialStore, DeviceStore, Hold, RefreshStore, StoreError},
};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Called with the record of a code presented again after its redemption.
pub(crate) type ReplayHook = Arc<dyn Fn(&CodeRecord) + Send + Sync>;

/// Called with the record of a refresh token presented again after its
/// rotation (its family is revoked already).
pub(crate) type RefreshReplayHook = Arc<dyn Fn(&RefreshRecord) + Send + Sync>;

/// The layer's configuration, shared by every clone of the service.
pub(crate) struct Settings {
    pub(crate) token_path: String,
    pub(crate) presentation: Presentation,
    pub(crate) body_limit: usize,
    /// How long a token request body may take to arrive.
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) www_authenticate: HeaderValue,
    pub(crate) code_lifetime: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) allow_plain_pkce: bool,
    /// How long a forwarded request may hold its code or refresh token
    /// (two-phase redemption); `None` uses them up on first read.
    pub(crate) reservation_ttl: Option<Duration>,
    pub(crate) on_code_replay: Option<ReplayHook>,
    /// `None` when the layer has no refresh store.
    pub(crate) refresh_lifetime: Duration,
    pub(crate) refresh_enabled: bool,
    pub(crate) on_refresh_replay: Option<RefreshReplayHook>,
    /// The device authorization endpoint; `None` without a device store.
    pub(crate) device_path: Option<String>,
    pub(crate) device_lifetime: Duration,
    pub(crate) device_interval: u64,
    pub(crate) verification_uri: Option<String>,
    pub(crate) github_client_credentials: bool,
    pub(crate) policies: Vec<Arc<dyn DynPolicy>>,
    /// The brute-force defence's counters; `None` when it is off.
    pub(crate) lockouts: Option<Lockouts>,
}

impl Settings {
    pub(crate) fn dialect(&self) -> Dialect {
        self.presentation.dialect
    }

    /// A new claim for a request that passed its checks, when redemption is
    /// two-phase.
    pub(crate) fn hold(&self) -> Result<Option<Hold>, StoreError> {
        self.reservation_ttl.map(Hold::new).transpose()
    }

    /// Whether the layer serves `grant` at all (before asking which client).
    fn serves(&self, grant: GrantType) -> bool {
        match grant {
            GrantType::AuthorizationCode => true,
            GrantType::RefreshToken => self.refresh_enabled,
            GrantType::DeviceCode => self.device_path.is_some(),
            GrantType::ClientCredentials => {
                self.dialect() == Dialect::Rfc6749 || self.github_client_credentials
            }
        }
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
            .field("reservation_ttl", &self.reservation_ttl)
            .field("refresh_enabled", &self.refresh_enabled)
            .field("refresh_lifetime", &self.refresh_lifetime)
            .field("device_path", &self.device_path)
            .field("policies", &self.policies.len())
            .field("lockout", &self.lockouts)
            .finish_non_exhaustive()
    }
}

/// A refused request: why, and which client it claimed to be (for logs).
pub(crate) struct Refusal {
    pub(crate) failure: Failure,
    pub(crate) client_id: Option<String>,
}

/// What the device authorization endpoint answers (RFC 8628 §3.2).
pub(crate) struct DeviceAuthorization {
    pub(crate) device_code: String,
    pub(crate) user_code: String,
    pub(crate) verification_uri: String,
    pub(crate) expires_in: u64,
    pub(crate) interval: u64,
}

/// A request that passed the checks: its grant, and the claim on its code
/// or refresh token when redemption is two-phase.
pub(crate) type Checked = (ValidatedGrant, Option<Reservation>);

/// The gate's checks and store access, with the store types erased.
pub(crate) trait Checks: Send + Sync + 'static {
    fn settings(&self) -> &Settings;

    /// Runs checks 2 to 5 on a parsed token request.
    fn check(self: Arc<Self>, request: TokenRequest) -> BoxFuture<Result<Checked, Refusal>>;

    /// The last step of a grant that passed every check and policy: rotates
    /// (or claims) a refresh token. Other grants have nothing left to do.
    fn commit(self: Arc<Self>, grant: ValidatedGrant) -> BoxFuture<Result<Checked, Refusal>>;

    /// Ends a claim: confirms or releases it. Answers whether a
    /// confirmation still held the claim.
    fn settle(
        self: Arc<Self>,
        reservation: Reservation,
        how: Settle,
    ) -> BoxFuture<Result<bool, StoreError>>;

    /// Serves the device authorization endpoint. `host` is the request's
    /// `Host`, for the default verification URI.
    fn authorize_device(
        self: Arc<Self>,
        request: TokenRequest,
        host: Option<String>,
    ) -> BoxFuture<Result<DeviceAuthorization, Refusal>>;

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

    /// Stores a new refresh token, for [`RefreshTokens`](crate::RefreshTokens).
    fn issue_refresh(
        self: Arc<Self>,
        key: CodeKey,
        record: RefreshRecord,
    ) -> BoxFuture<Result<(), StoreError>>;

    /// Finds a pending device authorization, for [`Devices`](crate::Devices).
    fn find_user_code(
        self: Arc<Self>,
        user_code: String,
        now: std::time::SystemTime,
    ) -> BoxFuture<Result<Option<DeviceRecord>, StoreError>>;

    /// Records a user's decision, for [`Devices`](crate::Devices).
    fn decide_user_code(
        self: Arc<Self>,
        user_code: String,
        decision: DeviceDecision,
        now: std::time::SystemTime,
    ) -> BoxFuture<Result<bool, StoreError>>;
}

/// The concrete checks over the credential, code, refresh and device stores.
pub(crate) struct Gate<C, K, R, D> {
    pub(crate) settings: Settings,
    pub(crate) credentials: C,
    pub(crate) codes: K,
    pub(crate) refresh: R,
    pub(crate) devices: D,
}

fn store_failed(error: StoreError) -> Failure {
    tracing::error!(%error, "store failed");
    Failure::Store
}

impl<C, K, R, D> Gate<C, K, R, D>
where
    C: CredentialStore,
    K: CodeStore,
    R: RefreshStore,
    D: DeviceStore,
{
    async fn run(&self, request: &TokenRequest) -> Result<Checked, Failure> {
        let settings = &self.settings;
        let grant = match request.grant_type.as_deref() {
            Some(name) => GrantType::from_param(name)
                .filter(|grant| settings.serves(*grant))
                .ok_or(Failure::GrantTypeUnsupported)?,
            None if settings.dialect() == Dialect::GitHub => GrantType::AuthorizationCode,
            None => return Err(Failure::GrantTypeMissing),
        };
        // GitHub's device flow identifies the client by its id alone.
        let id_suffices = grant == GrantType::DeviceCode && settings.dialect() == Dialect::GitHub;
        let client = authenticate(&self.credentials, request, id_suffices).await?;
        if !client.allows_grant(grant) {
            return Err(match grant {
                GrantType::DeviceCode => Failure::DeviceFlowDisabled,
                _ => Failure::GrantNotAllowed,
            });
        }
        match grant {
            GrantType::AuthorizationCode => {
                let (record, claim) =
                    authorization_code::redeem(&self.codes, settings, &client, request).await?;
                Ok((ValidatedGrant::authorization_code(client, record), claim))
            }
            GrantType::RefreshToken => {
                let (key, previous, scopes) =
                    refresh_token::check(&self.refresh, settings, &client, request).await?;
                Ok((
                    ValidatedGrant::refresh_token(client, key, previous, scopes),
                    None,
                ))
            }
            GrantType::DeviceCode => {
                let (key, record, subject) =
                    device_code::poll(&self.devices, settings, &client, request).await?;
                let claim = settings
                    .hold()
                    .map_err(store_failed)?
                    .map(|hold| Reservation {
                        what: Held::DeviceCode(Box::new(record.clone())),
                        key,
                        hold,
                    });
                Ok((ValidatedGrant::device_code(client, record, subject), claim))
            }
            GrantType::ClientCredentials => {
                let scopes = client_credentials::scopes(settings, &client, request)?;
                Ok((ValidatedGrant::client_credentials(client, scopes), None))
            }
        }
    }

    /// RFC 8628 §3.1-3.2: authenticate the client, check it may use the
    /// device flow and the scopes, and issue a device and a user code.
    async fn device_authorization(
        &self,
        request: TokenRequest,
        host: Option<String>,
    ) -> Result<DeviceAuthorization, Failure> {
        let settings = &self.settings;
        let id_suffices = settings.dialect() == Dialect::GitHub;
        let client = authenticate(&self.credentials, &request, id_suffices).await?;
        if !client.allows_grant(GrantType::DeviceCode) {
            return Err(Failure::DeviceFlowDisabled);
        }
        let scopes = scope::parse(request.scope.as_deref(), settings.dialect());
        if !scope::is_valid(&scopes) || !client.allows_scopes(&scopes) {
            return Err(Failure::ScopeNotAllowed);
        }
        let now = settings.clock.now();
        let device_code = random_code().map_err(|_| Failure::Store)?;
        let key = CodeKey::of(&device_code);
        // A user code is short; on the rare collision with a live one, draw
        // again.
        for _ in 0..8 {
            let user_code = device::random_user_code().map_err(|_| Failure::Store)?;
            let record = DeviceRecord {
                client_id: client.client_id().to_owned(),
                scopes: scopes.clone(),
                user_code: user_code.clone(),
                status: DeviceStatus::Pending,
                interval: settings.device_interval,
                last_poll: None,
                issued_at: now,
                expires_at: now + settings.device_lifetime,
            };
            if self
                .devices
                .issue_device_code(key, record)
                .await
                .map_err(store_failed)?
            {
                return Ok(DeviceAuthorization {
                    device_code,
                    user_code,
                    verification_uri: verification_uri(settings, host.as_deref()),
                    expires_in: settings.device_lifetime.as_secs(),
                    interval: settings.device_interval,
                });
            }
        }
        Err(store_failed(StoreError::new(
            "no free user code after 8 draws",
        )))
    }
}

/// The configured verification URI, else `/login/device` on the host the
/// client used (plain HTTP only for loopback hosts).
fn verification_uri(settings: &Settings, host: Option<&str>) -> String {
    if let Some(uri) = &settings.verification_uri {
        return uri.clone();
    }
    let host = host.unwrap_or("localhost");
    let name = host.parse::<http::uri::Authority>().map_or_else(
        |_| String::new(),
        |authority| authority.host().to_ascii_lowercase(),
    );
    let scheme = match name.as_str() {
        "localhost" | "127.0.0.1" | "[::1]" | "::1" => "http",
        _ => "https",
    };
    format!("{scheme}://{host}/login/device")
}

impl<C, K, R, D> Checks for Gate<C, K, R, D>
where
    C: CredentialStore,
    K: CodeStore,
    R: RefreshStore,
    D: DeviceStore,
{
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn check(self: Arc<Self>, request: TokenRequest) -> BoxFuture<Result<Checked, Refusal>> {
        Box::pin(async move {
            let verdict = self.run(&request).await;
            // The claimed id is copied for the log only when refusing.
            verdict.map_err(|failure| Refusal {
                failure,
                client_id: claimed_id(&request).map(str::to_owned),
            })
        })
    }

    fn commit(self: Arc<Self>, grant: ValidatedGrant) -> BoxFuture<Result<Checked, Refusal>> {
        Box::pin(async move {
            let Some(key) = grant.uncommitted_refresh() else {
                return Ok((grant, None));
            };
            match refresh_token::commit(&self.refresh, &self.settings, grant.client(), key).await {
                Ok(claim) => Ok((grant, claim)),
                Err(failure) => Err(Refusal {
                    failure,
                    client_id: Some(grant.client().client_id().to_owned()),
                }),
            }
        })
    }

    fn settle(
        self: Arc<Self>,
        reservation: Reservation,
        how: Settle,
    ) -> BoxFuture<Result<bool, StoreError>> {
        Box::pin(async move {
            let Reservation { what, key, hold } = reservation;
            match (what, how) {
                (Held::Code, Settle::Confirm) => self.codes.confirm(&key, &hold).await,
                (Held::Code, Settle::Release) => {
                    self.codes.release(&key, &hold).await.map(|()| true)
                }
                (Held::RefreshToken, Settle::Confirm) => {
                    self.refresh.confirm_refresh_token(&key, &hold).await
                }
                (Held::RefreshToken, Settle::Release) => self
                    .refresh
                    .release_refresh_token(&key, &hold)
                    .await
                    .map(|()| true),
                // The poll already took the device code out of the store.
                (Held::DeviceCode(_), Settle::Confirm) => Ok(true),
                (Held::DeviceCode(record), Settle::Release) => {
                    let restored = self.devices.issue_device_code(key, *record).await?;
                    if !restored {
                        // Its user code went to another device meanwhile.
                        tracing::warn!("a failed device grant could not be put back");
                    }
                    Ok(true)
                }
            }
        })
    }

    fn authorize_device(
        self: Arc<Self>,
        request: TokenRequest,
        host: Option<String>,
    ) -> BoxFuture<Result<DeviceAuthorization, Refusal>> {
        Box::pin(async move {
            let client_id = claimed_id(&request).map(str::to_owned);
            self.device_authorization(request, host)
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

    fn issue_refresh(
        self: Arc<Self>,
        key: CodeKey,
        record: RefreshRecord,
    ) -> BoxFuture<Result<(), StoreError>> {
        Box::pin(async move {
            if !self.settings.refresh_enabled {
                return Err(StoreError::new("the layer has no refresh store"));
            }
            self.refresh.issue_refresh_token(key, record).await
        })
    }

    fn find_user_code(
        self: Arc<Self>,
        user_code: String,
        now: std::time::SystemTime,
    ) -> BoxFuture<Result<Option<DeviceRecord>, StoreError>> {
        Box::pin(async move { self.devices.find_user_code(&user_code, now).await })
    }

    fn decide_user_code(
        self: Arc<Self>,
        user_code: String,
        decision: DeviceDecision,
        now: std::time::SystemTime,
    ) -> BoxFuture<Result<bool, StoreError>> {
        Box::pin(async move {
            self.devices
                .decide_user_code(&user_code, decision, now)
                .await
        })
    }
}
