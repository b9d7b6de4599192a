//! Configuring the gate.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use http::{HeaderValue, StatusCode};

use crate::{
    clock::{Clock, SystemClock},
    decide::{Decide, Gate},
    dialect::{Dialect, Presentation},
    issuing::Issuing,
    layer::TokenGateLayer,
    lockout::{Counting, DEFAULT_LOCKOUT_CAPACITY, DynLockoutStore, Lockout, UserCodeLimits},
    peer::PeerSource,
    policy::{DynPolicy, Policy},
    record::{
        code::CodeRecord,
        device::{DeviceDecision, DeviceRecord, PollOutcome},
        refresh::RefreshRecord,
    },
    settings::{RefreshReplayHook, ReplayHook, Settings, Signed},
    store::{
        Claim, ClientStore, CodeKey, CodeStore, DeviceStore, DynReplayStore, LockoutStore, Lookup,
        MemoryCounters, MemoryReplays, Redemption, RefreshStore, ReplayStore, Replays, Reuse,
        ReuseWindow, StoreError,
    },
};

/// The longest a client assertion may live by default: five minutes.
pub const DEFAULT_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// The clock skew allowed on assertion and proof times by default.
pub const DEFAULT_JWT_LEEWAY: Duration = Duration::from_secs(30);
/// How old a DPoP proof may be by default.
pub const DEFAULT_DPOP_PROOF_WINDOW: Duration = Duration::from_secs(60);

/// The default token path, GitHub's.
pub const DEFAULT_TOKEN_PATH: &str = "/login/oauth/access_token";
/// The default body limit: 16 KiB, far above any honest token request.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;
/// The default read timeout for a token request body.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a forwarded request may hold its code or refresh token before
/// the claim lapses: 30 s (see [`Builder::two_phase_redemption`]).
pub const DEFAULT_CLAIM_TTL: Duration = Duration::from_secs(30);
/// The default code lifetime: 10 minutes (RFC 6749 §4.1.2).
pub const DEFAULT_CODE_LIFETIME: Duration = Duration::from_secs(600);

/// The longest lifetime a code, refresh token or device code may have: ten
/// years keeps every expiry time representable.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The default device authorization endpoint, GitHub's.
pub const DEFAULT_DEVICE_PATH: &str = "/login/device/code";
/// The default revocation endpoint (RFC 7009).
pub const DEFAULT_REVOCATION_PATH: &str = "/login/oauth/revoke";
/// The default introspection endpoint (RFC 7662).
pub const DEFAULT_INTROSPECTION_PATH: &str = "/login/oauth/introspect";
/// The longest refresh reuse window the builder takes: five minutes. A
/// longer one would leave a stolen, rotated token usable for that long.
pub const MAX_REFRESH_REUSE_WINDOW: Duration = Duration::from_secs(300);
/// The most reuses of one rotated refresh token the builder takes.
pub const MAX_REFRESH_REUSES: u32 = 10;
/// The default refresh token lifetime in the RFC 6749 dialect: 30 days.
pub const DEFAULT_REFRESH_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// The default refresh token lifetime in the GitHub dialect: 15,897,600 s
/// (184 days), the `refresh_token_expires_in` GitHub answers for apps with
/// expiring user tokens.
pub const GITHUB_REFRESH_LIFETIME: Duration = Duration::from_secs(15_897_600);

pub use crate::secret::TokenShape;

/// Builds a [`TokenGateLayer`]. `C`, `K`, `R` and `D` are the client, code,
/// refresh and device stores. The first two are required; without a refresh
/// store the refresh grant is unsupported, and without a device store so is
/// the device flow. [`store`](Builder::store) sets all four.
///
/// ```
/// use std::time::Duration;
/// use tokengate::{Dialect, clock::ManualClock, MemoryStore, TokenGateLayer};
///
/// let clock = ManualClock::new();
/// let store = MemoryStore::with_clock(clock.clone());
/// let layer = TokenGateLayer::builder()
///     .store(store)
///     .issuer("https://auth.example.com")
///     .dialect(Dialect::GitHub)
///     .token_path("/oauth/token")
///     .error_uri_base("https://docs.github.com")
///     .code_lifetime(Duration::from_secs(60))
///     .clock(clock)
///     .on_code_replay(|record| eprintln!("revoke tokens of {}", record.subject))
///     .try_build()
///     .expect("valid configuration");
/// # let _ = layer;
/// ```
pub struct Builder<C = (), K = (), R = NoStore, D = NoStore> {
    clients: C,
    codes: K,
    refresh: Option<R>,
    devices: Option<D>,
    options: Options,
}

/// The type of a refresh or device store that is not set: there is no
/// value of it, so the [`Builder`]'s `Option` of it is always `None`.
#[derive(Debug, Clone, Copy)]
pub enum NoStore {}

impl RefreshStore for NoStore {
    async fn issue(&self, _: CodeKey, _: RefreshRecord) -> Result<(), StoreError> {
        match *self {}
    }

    async fn find(&self, _: &CodeKey) -> Result<Lookup<RefreshRecord>, StoreError> {
        match *self {}
    }

    async fn claim(&self, _: &CodeKey, _: &Claim) -> Result<Redemption<RefreshRecord>, StoreError> {
        match *self {}
    }

    async fn confirm(&self, _: &CodeKey, _: &Claim) -> Result<bool, StoreError> {
        match *self {}
    }

    async fn release(&self, _: &CodeKey, _: &Claim) -> Result<(), StoreError> {
        match *self {}
    }

    async fn revoke_family(&self, _: &str) -> Result<(), StoreError> {
        match *self {}
    }

    async fn reuse(&self, _: &CodeKey, _: ReuseWindow) -> Result<Reuse<RefreshRecord>, StoreError> {
        match *self {}
    }
}

impl DeviceStore for NoStore {
    async fn issue(&self, _: CodeKey, _: DeviceRecord) -> Result<bool, StoreError> {
        match *self {}
    }

    async fn poll(&self, _: &CodeKey, _: &str, _: SystemTime) -> Result<PollOutcome, StoreError> {
        match *self {}
    }

    async fn find(&self, _: &str, _: SystemTime) -> Result<Option<DeviceRecord>, StoreError> {
        match *self {}
    }

    async fn decide(&self, _: &str, _: DeviceDecision, _: SystemTime) -> Result<bool, StoreError> {
        match *self {}
    }
}

/// Everything but the stores.
struct Options {
    token_path: String,
    dialect: Dialect,
    body_limit: usize,
    read_timeout: Option<Duration>,
    error_uri_base: Option<String>,
    github_status: StatusCode,
    realm: String,
    code_lifetime: Duration,
    clock: Arc<dyn Clock>,
    allow_plain_pkce: bool,
    claim_ttl: Option<Duration>,
    on_code_replay: Option<ReplayHook>,
    /// `None` until set: then the dialect's default.
    refresh_lifetime: Option<Duration>,
    /// `None` until set: then the dialect's default.
    token_shape: Option<TokenShape>,
    on_refresh_replay: Option<RefreshReplayHook>,
    refresh_reuse: Option<ReuseWindow>,
    on_refresh_revocation: Option<RefreshReplayHook>,
    revocation_path: Option<String>,
    introspection_path: Option<String>,
    application_api: Option<String>,
    device_path: String,
    device_lifetime: Duration,
    device_interval: u64,
    issuer: Option<String>,
    verification_uri: Option<String>,
    github_client_credentials: bool,
    policies: Vec<Arc<dyn DynPolicy>>,
    lockout: Option<Lockout>,
    user_code_limits: Option<UserCodeLimits>,
    peer: PeerSource,
    lockout_store: Option<Arc<dyn DynLockoutStore>>,
    replay_store: Option<Arc<dyn DynReplayStore>>,
    assertion_lifetime: Duration,
    jwt_leeway: Duration,
    dpop_proof_window: Duration,
    dpop_nonces: Option<Duration>,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Self {
            clients: (),
            codes: (),
            refresh: None,
            devices: None,
            options: Options {
                token_path: DEFAULT_TOKEN_PATH.to_owned(),
                dialect: Dialect::default(),
                body_limit: DEFAULT_BODY_LIMIT,
                read_timeout: Some(DEFAULT_READ_TIMEOUT),
                error_uri_base: None,
                github_status: StatusCode::OK,
                realm: "token".to_owned(),
                code_lifetime: DEFAULT_CODE_LIFETIME,
                clock: Arc::new(SystemClock),
                allow_plain_pkce: false,
                claim_ttl: Some(DEFAULT_CLAIM_TTL),
                on_code_replay: None,
                refresh_lifetime: None,
                token_shape: None,
                on_refresh_replay: None,
                refresh_reuse: None,
                on_refresh_revocation: None,
                revocation_path: Some(DEFAULT_REVOCATION_PATH.to_owned()),
                introspection_path: Some(DEFAULT_INTROSPECTION_PATH.to_owned()),
                application_api: None,
                device_path: DEFAULT_DEVICE_PATH.to_owned(),
                device_lifetime: Duration::from_secs(900),
                device_interval: 5,
                issuer: None,
                verification_uri: None,
                github_client_credentials: false,
                policies: Vec::new(),
                lockout: Some(Lockout::default()),
                user_code_limits: Some(UserCodeLimits::default()),
                peer: PeerSource::default(),
                lockout_store: None,
                replay_store: None,
                assertion_lifetime: DEFAULT_ASSERTION_LIFETIME,
                jwt_leeway: DEFAULT_JWT_LEEWAY,
                dpop_proof_window: DEFAULT_DPOP_PROOF_WINDOW,
                dpop_nonces: None,
            },
        }
    }
}

impl<C, K, R, D> Builder<C, K, R, D> {
    /// One store for clients, codes, refresh tokens and device codes.
    pub fn store<St>(self, store: St) -> Builder<St, St, St, St>
    where
        St: ClientStore + CodeStore + RefreshStore + DeviceStore + Clone,
    {
        self.client_store(store.clone())
            .code_store(store.clone())
            .refresh_store(store.clone())
            .device_store(store)
    }

    /// Where clients are looked up.
    pub fn client_store<C2: ClientStore>(self, clients: C2) -> Builder<C2, K, R, D> {
        let Self {
            codes,
            refresh,
            devices,
            options,
            ..
        } = self;
        Builder {
            clients,
            codes,
            refresh,
            devices,
            options,
        }
    }

    /// Where codes are kept.
    pub fn code_store<K2: CodeStore>(self, codes: K2) -> Builder<C, K2, R, D> {
        let Self {
            clients,
            refresh,
            devices,
            options,
            ..
        } = self;
        Builder {
            clients,
            codes,
            refresh,
            devices,
            options,
        }
    }

    /// Where refresh tokens are kept; enables the refresh grant.
    pub fn refresh_store<R2: RefreshStore>(self, refresh: R2) -> Builder<C, K, R2, D> {
        let Self {
            clients,
            codes,
            devices,
            options,
            ..
        } = self;
        Builder {
            clients,
            codes,
            refresh: Some(refresh),
            devices,
            options,
        }
    }

    /// Where device authorizations are kept; enables the device flow and
    /// its authorization endpoint.
    pub fn device_store<D2: DeviceStore>(self, devices: D2) -> Builder<C, K, R, D2> {
        let Self {
            clients,
            codes,
            refresh,
            options,
            ..
        } = self;
        Builder {
            clients,
            codes,
            refresh,
            devices: Some(devices),
            options,
        }
    }

    /// The path of the token endpoint (default [`DEFAULT_TOKEN_PATH`]).
    #[must_use]
    pub fn token_path(mut self, path: impl Into<String>) -> Self {
        self.options.token_path = path.into();
        self
    }

    /// The error dialect (default [`Dialect::Rfc6749`]). It also chooses
    /// the defaults of [`refresh_lifetime`](Self::refresh_lifetime) and
    /// [`token_shape`](Self::token_shape), where those are not set.
    #[must_use]
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.options.dialect = dialect;
        self
    }

    /// The largest body read, in bytes (default [`DEFAULT_BODY_LIMIT`]).
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.options.body_limit = bytes;
        self
    }

    /// How long a token request body may take to arrive (default 10 s;
    /// `None` for no limit); past it the gate answers `408`. Measured with
    /// tokio's timer when the request is served on a tokio runtime.
    #[must_use]
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.read_timeout = timeout;
        self
    }

    /// A base prefixed to `error_uri`: GitHub's relative documentation paths
    /// in its dialect (e.g. `https://docs.github.com`); in RFC 6749's, errors
    /// get `error_uri = BASE#error_code` only when this is set.
    #[must_use]
    pub fn error_uri_base(mut self, base: impl Into<String>) -> Self {
        self.options.error_uri_base = Some(base.into());
        self
    }

    /// The status of OAuth errors in the GitHub dialect (default 200, as
    /// GitHub answers). 405, 413 and 500 keep their own.
    #[must_use]
    pub fn github_error_status(mut self, status: StatusCode) -> Self {
        self.options.github_status = status;
        self
    }

    /// The realm of `WWW-Authenticate: Basic realm=".."` on 401 answers
    /// (default `token`).
    #[must_use]
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.options.realm = realm.into();
        self
    }

    /// How long a new code stays redeemable (default 10 minutes).
    #[must_use]
    pub fn code_lifetime(mut self, lifetime: Duration) -> Self {
        self.options.code_lifetime = lifetime;
        self
    }

    /// The clock codes expire by (default the system clock).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.options.clock = Arc::new(clock);
        self
    }

    /// The brute-force defence at the token endpoint (on by default:
    /// [`Lockout::default`], 10 failures per client id per peer and 100 per
    /// peer, per minute). `None` turns it off.
    ///
    /// A locked-out peer (or peer and client id) is refused before any
    /// other store is asked: `429`, `temporarily_unavailable`,
    /// `Retry-After`. See [`Lockout`] for what counts as a failure and
    /// under which keys, and [`peer`](Self::peer) for where the peer
    /// address comes from.
    #[must_use]
    pub fn lockout(mut self, lockout: Option<Lockout>) -> Self {
        self.options.lockout = lockout;
        self
    }

    /// Limits on failed user-code look-ups at the device flow's
    /// verification side ([`Devices`](crate::device::Devices)); on by
    /// default ([`UserCodeLimits::default`]: 50 failures an hour per peer,
    /// GitHub's figure). `None` turns them off.
    #[must_use]
    pub fn user_code_limits(mut self, limits: Option<UserCodeLimits>) -> Self {
        self.options.user_code_limits = limits;
        self
    }

    /// Where the lockout and the user-code limits find a request's peer
    /// address (default [`PeerSource::connection`]: the address the
    /// server accepted the connection from). Behind your own reverse
    /// proxies, name the header they set and how many of them there are.
    #[must_use]
    pub fn peer(mut self, source: PeerSource) -> Self {
        self.options.peer = source;
        self
    }

    /// Keeps the lockout's and the user-code limits' failure counters in
    /// `store` (one Redis shared by every gate process, say), so that N
    /// processes enforce one threshold. The default keeps them in this
    /// process's memory ([`MemoryCounters`]).
    ///
    /// A store that fails or times out on a check fails closed: the
    /// request is answered `500 server_error`.
    #[must_use]
    pub fn lockout_store(mut self, store: impl LockoutStore) -> Self {
        self.options.lockout_store = Some(Arc::new(store));
        self
    }

    /// Two-phase redemption (on by default): a code or refresh token that
    /// passed every check is only claimed while the inner service runs, and
    /// used up when it answers; a 5xx, an error, a panic or a dropped
    /// request hands it back, so the client's retry works instead of
    /// sending the user through the login again. A claim lapses by itself
    /// after `ttl` (default [`DEFAULT_CLAIM_TTL`]) if the process
    /// dies holding it; a 2xx answered after the claim was lost (and the
    /// code taken by another request) becomes `500 server_error`, so one
    /// code never yields two tokens.
    ///
    /// Meanwhile a second request with the same code is refused like a used
    /// code, without firing the replay hook. A failed check (a wrong
    /// verifier, another client) still uses the code up at once.
    ///
    /// `None` turns it off: a value is used up before the inner service
    /// runs (claimed, and the claim confirmed at once, two store calls). A
    /// presentation racing that redemption is answered as a replay (a
    /// refresh token's family is revoked; a code is refused, without the
    /// hook, whose record the winner holds). Should the process die between
    /// the two calls, the value comes back after the 30 s its claim lasts.
    #[must_use]
    pub fn two_phase_redemption(mut self, ttl: Option<Duration>) -> Self {
        self.options.claim_ttl = ttl;
        self
    }

    /// Accepts PKCE `plain` challenges (default no: RFC 7636 §7.2 keeps it
    /// for clients that cannot hash, and GitHub refuses it).
    #[must_use]
    pub fn allow_plain_pkce(mut self, allow: bool) -> Self {
        self.options.allow_plain_pkce = allow;
        self
    }

    /// Called with the record of a code presented again after it was
    /// redeemed, in an otherwise valid request, so the application can
    /// revoke the access tokens issued from it (RFC 6749 §4.1.2). The gate
    /// has revoked the refresh tokens issued from it already (with a
    /// refresh store): their family is named after the code. Called even
    /// when that revocation failed (the request is then answered `500`).
    #[must_use]
    pub fn on_code_replay(mut self, hook: impl Fn(&CodeRecord) + Send + Sync + 'static) -> Self {
        self.options.on_code_replay = Some(Arc::new(hook));
        self
    }

    /// How long a new refresh token is accepted. By default it follows the
    /// dialect: [`GITHUB_REFRESH_LIFETIME`] (184 days, GitHub's) in
    /// [`Dialect::GitHub`], [`DEFAULT_REFRESH_LIFETIME`] (30 days) in
    /// [`Dialect::Rfc6749`]. Once set, it wins whatever the dialect, and
    /// whichever of the two is set first.
    #[must_use]
    pub fn refresh_lifetime(mut self, lifetime: Duration) -> Self {
        self.options.refresh_lifetime = Some(lifetime);
        self
    }

    /// What the refresh tokens ([`RefreshTokens::issue`]) and device codes
    /// the gate mints look like (see [`TokenShape`]). By default it follows
    /// the dialect: [`TokenShape::GitHub`] in [`Dialect::GitHub`] (`ghr_` and
    /// 64 hex digits; device codes of 40 hex digits, as GitHub's),
    /// [`TokenShape::Opaque`] in [`Dialect::Rfc6749`] (43 base64url
    /// characters). Once set, it wins whatever the dialect, and whichever of
    /// the two is set first. Values already issued keep working whatever the
    /// shape: they are looked up by their digest.
    ///
    /// [`RefreshTokens::issue`]: crate::refresh::RefreshTokens::issue
    #[must_use]
    pub fn token_shape(mut self, shape: TokenShape) -> Self {
        self.options.token_shape = Some(shape);
        self
    }

    /// Called with the record of a refresh token presented again after its
    /// rotation, once its whole family has been revoked (RFC 9700
    /// §4.14.2), so the application can revoke the access tokens too.
    #[must_use]
    pub fn on_refresh_replay(
        mut self,
        hook: impl Fn(&RefreshRecord) + Send + Sync + 'static,
    ) -> Self {
        self.options.on_refresh_replay = Some(Arc::new(hook));
        self
    }

    /// A reuse window for rotated refresh tokens (off by default: every
    /// presentation of a rotated token is a replay, and revokes its family).
    ///
    /// Within `within` of its rotation (or while a request rotating it is
    /// in flight), a refresh token presented again by its own client (with
    /// its DPoP key, if it is bound to one) gets a fresh pair in the same
    /// family instead of a revocation, `limit` times at most. That is what
    /// a client whose refresh answer was lost, or that refreshes from two
    /// tabs at once, needs to keep its session. After the window, past the
    /// limit, or from another client, the presentation is refused as
    /// before (a replay revokes the family).
    ///
    /// Every successor stays valid: the one whose answer was lost is
    /// simply never used, and two tabs each keep their own. So one token
    /// has at most `1 + limit` successors, all in its family, and a replay
    /// of any member revokes them all. A thief who presents a stolen,
    /// rotated token inside the window is not detected: keep it short
    /// (seconds), and bind tokens with DPoP where clients can.
    ///
    /// `within` is at most [`MAX_REFRESH_REUSE_WINDOW`] and `limit` at most
    /// [`MAX_REFRESH_REUSES`]; a zero in either turns the window off.
    #[must_use]
    pub fn refresh_reuse(mut self, within: Duration, limit: u32) -> Self {
        self.options.refresh_reuse =
            (!within.is_zero() && limit > 0).then_some(ReuseWindow { within, limit });
        self
    }

    /// Called with the record of a refresh token whose family a revocation
    /// request (RFC 7009) revoked, so the application can revoke the access
    /// tokens issued from the same grant too (§2.1: it SHOULD).
    #[must_use]
    pub fn on_refresh_revocation(
        mut self,
        hook: impl Fn(&RefreshRecord) + Send + Sync + 'static,
    ) -> Self {
        self.options.on_refresh_revocation = Some(Arc::new(hook));
        self
    }

    /// The path of the revocation endpoint (RFC 7009; default
    /// [`DEFAULT_REVOCATION_PATH`]); `None` leaves that path to the inner
    /// service unguarded. See [`TokenAction`](crate::TokenAction).
    #[must_use]
    pub fn revocation_path(mut self, path: Option<&str>) -> Self {
        self.options.revocation_path = path.map(str::to_owned);
        self
    }

    /// The path of the introspection endpoint (RFC 7662; default
    /// [`DEFAULT_INTROSPECTION_PATH`]); `None` leaves that path to the
    /// inner service unguarded. See [`TokenAction`](crate::TokenAction).
    #[must_use]
    pub fn introspection_path(mut self, path: Option<&str>) -> Self {
        self.options.introspection_path = path.map(str::to_owned);
        self
    }

    /// Guards GitHub's REST endpoints for OAuth apps under `prefix` (off by
    /// default): `POST`, `PATCH` and `DELETE {prefix}/applications/{client_id}/token`
    /// (check, reset and delete a token) and
    /// `DELETE {prefix}/applications/{client_id}/grant` (revoke the
    /// authorization), each with a JSON body `{"access_token": T}`. `""`
    /// for github.com's paths (`/applications/...`), `"/api/v3"` for GitHub
    /// Enterprise Server's.
    ///
    /// The gate authenticates the client as GitHub does there: HTTP Basic
    /// with its id and secret (the body's other members are not read),
    /// the path naming that same confidential client, with the token
    /// endpoint's rules, secret handling and lockout. A refusal is GitHub's
    /// REST answer (`404 Not Found` for any credential or path problem,
    /// `422` without `access_token`, `429` while locked out). Otherwise the
    /// request reaches the inner service with a
    /// [`TokenAction`](crate::TokenAction) (`CheckToken`, `ResetToken`,
    /// `DeleteToken` or `DeleteGrant`); the application answers for its
    /// tokens.
    #[must_use]
    pub fn application_api(mut self, prefix: Option<&str>) -> Self {
        self.options.application_api = prefix.map(str::to_owned);
        self
    }

    /// The path of the device authorization endpoint (default
    /// [`DEFAULT_DEVICE_PATH`]), served when a device store is set.
    #[must_use]
    pub fn device_path(mut self, path: impl Into<String>) -> Self {
        self.options.device_path = path.into();
        self
    }

    /// How long a device code lives (default 900 s) and the polling interval
    /// it starts with (default 5 s).
    #[must_use]
    pub fn device_timing(mut self, lifetime: Duration, interval_secs: u64) -> Self {
        self.options.device_lifetime = lifetime;
        self.options.device_interval = interval_secs;
        self
    }

    /// The public base URL of this authorization server (RFC 8414 §2), such
    /// as `https://auth.example.com`: an absolute `http` or `https` URL
    /// without query or fragment; a trailing `/` is dropped. Checked when
    /// the layer is built.
    ///
    /// URLs the gate hands out are built from it, never from the request's
    /// `Host` header, which the client chooses: the device endpoint's
    /// `verification_uri` (`{issuer}/login/device` unless
    /// [`verification_uri`](Self::verification_uri) says otherwise) and the
    /// metadata of [`TokenGateLayer::metadata_document`].
    #[must_use]
    pub fn issuer(mut self, url: impl Into<String>) -> Self {
        self.options.issuer = Some(url.into());
        self
    }

    /// The `verification_uri` the device endpoint answers, where users
    /// approve device codes (RFC 8628 §3.2: an absolute URI). Without it,
    /// `{issuer}/login/device` (see [`issuer`](Self::issuer)); with neither,
    /// a layer with a device store does not build.
    #[must_use]
    pub fn verification_uri(mut self, uri: impl Into<String>) -> Self {
        self.options.verification_uri = Some(uri.into());
        self
    }

    /// Where the `jti`s of client assertions and DPoP proofs, and the DPoP
    /// nonces, are kept (default: [`MemoryReplays`],
    /// in this process). Gate processes behind one balancer must share one,
    /// or a proof replayed to another process passes there.
    #[must_use]
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.options.replay_store = Some(Arc::new(store));
        self
    }

    /// The longest a client assertion may live, from `iat` (or now) to
    /// `exp` (default five minutes). Also bounds how long its `jti` is
    /// remembered.
    #[must_use]
    pub fn client_assertion_lifetime(mut self, lifetime: Duration) -> Self {
        self.options.assertion_lifetime = lifetime;
        self
    }

    /// The clock skew allowed on the time claims of assertions and proofs
    /// (default 30 seconds).
    #[must_use]
    pub fn jwt_leeway(mut self, leeway: Duration) -> Self {
        self.options.jwt_leeway = leeway;
        self
    }

    /// How old a DPoP proof's `iat` may be (default 60 seconds).
    #[must_use]
    pub fn dpop_proof_window(mut self, window: Duration) -> Self {
        self.options.dpop_proof_window = window;
        self
    }

    /// Makes DPoP proofs carry a server nonce (RFC 9449 §8). A proof
    /// without the current one is answered `use_dpop_nonce` with a
    /// `DPoP-Nonce` header. A nonce changes every `rotation` and is
    /// accepted during its period and the next; processes that share a
    /// [`replay_store`](Self::replay_store) share nonces.
    #[must_use]
    pub fn dpop_nonces(mut self, rotation: Duration) -> Self {
        self.options.dpop_nonces = Some(rotation);
        self
    }

    /// Serves `client_credentials` in the GitHub dialect too (GitHub itself
    /// answers `unsupported_grant_type`; default off). The RFC 6749 dialect
    /// always serves it to clients registered for it.
    #[must_use]
    pub fn github_client_credentials(mut self, enabled: bool) -> Self {
        self.options.github_client_credentials = enabled;
        self
    }

    /// Adds a policy, run after the built-in checks, in the order added.
    #[must_use]
    pub fn policy(mut self, policy: impl Policy) -> Self {
        self.options.policies.push(Arc::new(policy));
        self
    }
}

impl<C, K, R, D> Builder<C, K, R, D>
where
    C: ClientStore,
    K: CodeStore,
    R: RefreshStore,
    D: DeviceStore,
{
    /// The layer, or what is wrong with the configuration.
    pub fn try_build(self) -> Result<TokenGateLayer, ConfigError> {
        let Self {
            clients,
            codes,
            refresh,
            devices,
            options,
        } = self;
        if !options.token_path.starts_with('/') {
            return Err(ConfigError("the token path must start with `/`"));
        }
        if options.body_limit == 0 {
            return Err(ConfigError("the body limit must be at least one byte"));
        }
        let issuer = options.issuer.as_deref().map(issuer).transpose()?;
        let token_endpoint = issuer
            .as_ref()
            .map(|issuer| format!("{issuer}{}", options.token_path));
        // Times in JWTs are whole seconds, and so are these.
        let whole = |d: Duration| d.subsec_nanos() == 0;
        if options.assertion_lifetime < Duration::from_secs(1)
            || options.dpop_proof_window < Duration::from_secs(1)
            || ![
                options.assertion_lifetime,
                options.dpop_proof_window,
                options.jwt_leeway,
            ]
            .into_iter()
            .all(whole)
        {
            return Err(ConfigError(
                "the assertion lifetime, the DPoP proof window and the JWT leeway are whole seconds, the first two at least one",
            ));
        }
        if options
            .dpop_nonces
            .is_some_and(|rotation| rotation < Duration::from_secs(1))
        {
            return Err(ConfigError("DPoP nonces rotate every second at most"));
        }
        // The device endpoint needs an absolute URI to send users to; the
        // request's Host header is the client's to choose, so it is never
        // one.
        let verification_uri = match (options.verification_uri, &issuer) {
            (Some(uri), _) => uri,
            (None, Some(issuer)) => format!("{issuer}/login/device"),
            (None, None) if devices.is_some() => {
                return Err(ConfigError(
                    "the device flow needs a verification_uri: set `.issuer(url)` (users are sent to `{issuer}/login/device`) or `.verification_uri(url)`",
                ));
            }
            (None, None) => String::new(),
        };
        if devices.is_some() {
            if !options.device_path.starts_with('/') {
                return Err(ConfigError("the device path must start with `/`"));
            }
            if options.device_path == options.token_path {
                return Err(ConfigError("the device and token paths must differ"));
            }
            if options.device_lifetime.is_zero() || options.device_interval == 0 {
                return Err(ConfigError(
                    "the device lifetime and interval must be positive",
                ));
            }
        }
        if options.refresh_reuse.is_some_and(|window| {
            window.within > MAX_REFRESH_REUSE_WINDOW || window.limit > MAX_REFRESH_REUSES
        }) {
            return Err(ConfigError(
                "the refresh reuse window lasts five minutes and ten reuses at most",
            ));
        }
        let mut paths = vec![options.token_path.as_str()];
        if devices.is_some() {
            paths.push(&options.device_path);
        }
        paths.extend(options.revocation_path.as_deref());
        paths.extend(options.introspection_path.as_deref());
        if paths.iter().any(|path| !path.starts_with('/')) {
            return Err(ConfigError("every endpoint path must start with `/`"));
        }
        if let Some(prefix) = options.application_api.as_deref() {
            if !(prefix.is_empty() || prefix.starts_with('/')) || prefix.ends_with('/') {
                return Err(ConfigError(
                    "the OAuth-app API prefix is empty or starts with `/`, and has no trailing `/`",
                ));
            }
            if paths
                .iter()
                .any(|path| crate::lifecycle::under_application_api(prefix, path))
            {
                return Err(ConfigError(
                    "no other endpoint of the gate may lie under the OAuth-app API's paths",
                ));
            }
        }
        let mut distinct = paths.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != paths.len() {
            return Err(ConfigError("the gate's endpoint paths must differ"));
        }
        // Defaults that follow the dialect, resolved here so that the order
        // of `dialect` and the explicit setters does not matter.
        let refresh_lifetime = options.refresh_lifetime.unwrap_or(match options.dialect {
            Dialect::GitHub => GITHUB_REFRESH_LIFETIME,
            Dialect::Rfc6749 => DEFAULT_REFRESH_LIFETIME,
        });
        let token_shape = options.token_shape.unwrap_or(match options.dialect {
            Dialect::GitHub => TokenShape::GitHub,
            Dialect::Rfc6749 => TokenShape::Opaque,
        });
        if refresh_lifetime.is_zero() {
            return Err(ConfigError("the refresh token lifetime must be positive"));
        }
        if options
            .claim_ttl
            .is_some_and(|ttl| ttl.is_zero() || ttl > MAX_LIFETIME)
        {
            return Err(ConfigError(
                "the two-phase redemption claim must last between 1 ms and ten years",
            ));
        }
        if options
            .lockout
            .as_ref()
            .is_some_and(|lockout| !lockout.is_valid())
        {
            return Err(ConfigError(
                "a lockout needs at least one failure, a window and a capacity",
            ));
        }
        if options
            .user_code_limits
            .as_ref()
            .is_some_and(|limits| !limits.is_valid())
        {
            return Err(ConfigError(
                "user-code limits need at least one failure per peer and a window",
            ));
        }
        if options.code_lifetime.is_zero() {
            return Err(ConfigError("the code lifetime must be positive"));
        }
        let status = options.github_status;
        if status.is_informational()
            || status.is_redirection()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::RESET_CONTENT
        {
            return Err(ConfigError(
                "the GitHub error status must be 2xx (but not 204 or 205), 4xx or 5xx: an error has a body",
            ));
        }
        let lifetimes = [
            options.code_lifetime,
            refresh_lifetime,
            options.device_lifetime,
        ];
        if lifetimes.iter().any(|lifetime| *lifetime > MAX_LIFETIME) {
            return Err(ConfigError("lifetimes must not exceed ten years"));
        }
        let error_uri_base = match options.error_uri_base {
            Some(base) if !crate::error::is_valid_uri(&base) => {
                return Err(ConfigError(
                    "the error_uri base must be a URI without spaces, `\"` or `\\`",
                ));
            }
            // GitHub's paths start with `/`.
            Some(base) => Some(base.trim_end_matches('/').to_owned()),
            None => None,
        };
        let realm_ok = options
            .realm
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        let www_authenticate = HeaderValue::from_str(&format!("Basic realm=\"{}\"", options.realm))
            .ok()
            .filter(|_| realm_ok)
            .ok_or(ConfigError(
                "the realm must be printable ASCII without `\"` or `\\`",
            ))?;
        let settings = Arc::new(Settings {
            token_path: options.token_path,
            rfc_presentation: Presentation {
                dialect: Dialect::Rfc6749,
                error_uri_base: error_uri_base.clone(),
                github_status: options.github_status,
            },
            presentation: Presentation {
                dialect: options.dialect,
                error_uri_base,
                github_status: options.github_status,
            },
            body_limit: options.body_limit,
            read_timeout: options.read_timeout,
            www_authenticate,
            code_lifetime: options.code_lifetime,
            clock: options.clock,
            allow_plain_pkce: options.allow_plain_pkce,
            claim_ttl: options.claim_ttl,
            on_code_replay: options.on_code_replay,
            refresh_lifetime,
            token_shape,
            refresh_enabled: refresh.is_some(),
            on_refresh_replay: options.on_refresh_replay,
            refresh_reuse: options.refresh_reuse,
            on_refresh_revocation: options.on_refresh_revocation,
            revocation_path: options.revocation_path,
            introspection_path: options.introspection_path,
            application_api: options.application_api,
            device_path: devices.is_some().then_some(options.device_path),
            device_lifetime: options.device_lifetime,
            device_interval: options.device_interval,
            issuer,
            verification_uri,
            github_client_credentials: options.github_client_credentials,
            counting: match options.lockout_store {
                Some(store) => Counting::Shared(store),
                None => Counting::Memory(MemoryCounters::new(
                    options
                        .lockout
                        .as_ref()
                        .map_or(DEFAULT_LOCKOUT_CAPACITY, Lockout::capacity_of),
                )),
            },
            lockout: options.lockout,
            user_code_limits: options.user_code_limits,
            peer: options.peer,
            signed: Signed {
                token_endpoint,
                assertion_lifetime: options.assertion_lifetime,
                leeway: options.jwt_leeway,
                proof_window: options.dpop_proof_window,
                replays: match options.replay_store {
                    Some(store) => Replays::Shared(store),
                    None => Replays::Memory(MemoryReplays::default()),
                },
                #[cfg(feature = "jose")]
                nonces: options.dpop_nonces.map(crate::jose::dpop::Nonces::new),
            },
        });
        // The gate and the issuing side share each store.
        let (clients, codes) = (Arc::new(clients), Arc::new(codes));
        let (refresh, devices) = (refresh.map(Arc::new), devices.map(Arc::new));
        let issuing = Issuing {
            settings: Arc::clone(&settings),
            clients: clients.clone(),
            codes: codes.clone(),
            refresh: refresh.clone().map(|store| store as _),
            devices: devices.clone().map(|store| store as _),
        };
        let gate: Arc<dyn Decide> = Arc::new(Gate {
            settings,
            policies: options.policies,
            clients,
            codes,
            refresh,
            devices,
        });
        Ok(TokenGateLayer::from_parts(gate, Arc::new(issuing)))
    }

    /// The layer.
    ///
    /// # Panics
    ///
    /// If the configuration is invalid (see [`try_build`](Self::try_build));
    /// the defaults are valid.
    pub fn build(self) -> TokenGateLayer {
        match self.try_build() {
            Ok(layer) => layer,
            Err(error) => panic!("invalid tokengate configuration: {error}"),
        }
    }
}

impl<C, K, R, D> fmt::Debug for Builder<C, K, R, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("token_path", &self.options.token_path)
            .field("dialect", &self.options.dialect)
            .field("body_limit", &self.options.body_limit)
            .finish_non_exhaustive()
    }
}

/// The issuer as configured, checked: an absolute `http` or `https` URL
/// with a host, without userinfo, query or fragment (RFC 8414 §2), its
/// trailing `/` dropped so that `{issuer}/path` never doubles it.
fn issuer(url: &str) -> Result<String, ConfigError> {
    const BAD: ConfigError = ConfigError(
        "the issuer must be an absolute http or https URL with a host, without userinfo, query or fragment",
    );
    // Only RFC 3986 characters: `http::Uri` lets a few others through
    // (`"`, `{`, ..), and the issuer is copied into JSON, forms and XML.
    // `?` and `#` would start a query or fragment (RFC 8414 §2).
    let rfc3986 = |b: u8| b.is_ascii_alphanumeric() || b"-._~:/[]@!$&'()*+,;=%".contains(&b);
    if !url.bytes().all(rfc3986) {
        return Err(BAD);
    }
    let uri: http::Uri = url.parse().map_err(|_| BAD)?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri
        .authority()
        .is_some_and(|authority| !authority.host().is_empty() && !authority.as_str().contains('@'));
    if !scheme_ok || !host_ok {
        return Err(BAD);
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// A configuration the gate cannot run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(&'static str);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ConfigError {}
