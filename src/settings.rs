//! The layer's configuration as the request path reads it: built once by
//! the [`Builder`](crate::Builder), shared by every clone of the service and
//! by the issuing side.

use std::{fmt, sync::Arc, time::Duration};

use http::HeaderValue;

use crate::{
    client::GrantType,
    clock::Clock,
    dialect::{Dialect, Presentation},
    lockout::{Counting, Lockout, UserCodeLimits},
    peer::PeerSource,
    record::{code::CodeRecord, refresh::RefreshRecord},
    secret::TokenShape,
    store::{Claim, Replays, ReuseWindow, StoreError},
    telemetry::Endpoint,
};

/// Called with the record of a code presented again after its redemption.
pub(crate) type ReplayHook = Arc<dyn Fn(&CodeRecord) + Send + Sync>;

/// Called with the record of a refresh token presented again after its
/// rotation (its family is revoked already).
pub(crate) type RefreshReplayHook = Arc<dyn Fn(&RefreshRecord) + Send + Sync>;

pub(crate) struct Settings {
    pub(crate) token_path: String,
    pub(crate) presentation: Presentation,
    /// How the revocation and introspection endpoints present errors in
    /// either dialect: as RFC 7009 and RFC 7662 say (GitHub has no such
    /// endpoints, and its `200` for an error would read as success).
    pub(crate) rfc_presentation: Presentation,
    pub(crate) body_limit: usize,
    /// How long a token request body may take to arrive.
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) www_authenticate: HeaderValue,
    pub(crate) code_lifetime: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) allow_plain_pkce: bool,
    /// How long a forwarded request may hold its code or refresh token
    /// (two-phase redemption); `None` uses them up on first read.
    pub(crate) claim_ttl: Option<Duration>,
    pub(crate) on_code_replay: Option<ReplayHook>,
    pub(crate) refresh_lifetime: Duration,
    /// What the refresh tokens and device codes minted look like.
    pub(crate) token_shape: TokenShape,
    /// Whether a refresh store is set (the refresh grant is served).
    pub(crate) refresh_enabled: bool,
    pub(crate) on_refresh_replay: Option<RefreshReplayHook>,
    /// How long and how often a rotated refresh token may come back; `None`
    /// takes every return for a replay.
    pub(crate) refresh_reuse: Option<ReuseWindow>,
    /// Called with a refresh token's record once a revocation request
    /// revoked its family.
    pub(crate) on_refresh_revocation: Option<RefreshReplayHook>,
    /// The revocation endpoint (RFC 7009); `None` when it is not guarded.
    pub(crate) revocation_path: Option<String>,
    /// The introspection endpoint (RFC 7662); `None` when it is not guarded.
    pub(crate) introspection_path: Option<String>,
    /// The prefix of GitHub's REST endpoints for OAuth apps
    /// (`PREFIX/applications/...`); `None` when they are not guarded.
    pub(crate) application_api: Option<String>,
    /// The device authorization endpoint; `None` without a device store.
    pub(crate) device_path: Option<String>,
    pub(crate) device_lifetime: Duration,
    pub(crate) device_interval: u64,
    /// The public base URL (`Builder::issuer`), checked and without a
    /// trailing `/`.
    pub(crate) issuer: Option<String>,
    /// Where the device endpoint sends users (absolute, RFC 8628 §3.2): the
    /// configured URI, else `{issuer}/login/device`. Empty without a device
    /// store, the one case where nothing reads it: the builder refuses a
    /// device store with neither.
    pub(crate) verification_uri: String,
    pub(crate) github_client_credentials: bool,
    /// The brute-force defence at the token endpoint; `None` when it is off.
    pub(crate) lockout: Option<Lockout>,
    /// The limits on failed user-code look-ups; `None` when they are off.
    pub(crate) user_code_limits: Option<UserCodeLimits>,
    /// Where the defences find a request's peer address.
    pub(crate) peer: PeerSource,
    /// Where the defences keep their failure counters.
    pub(crate) counting: Counting,
    /// Signed requests: client assertions and DPoP proofs.
    pub(crate) signed: Signed,
}

/// How client assertions and DPoP proofs are checked.
#[derive(Debug)]
#[cfg_attr(not(feature = "jose"), allow(dead_code))]
pub(crate) struct Signed {
    /// `{issuer}{token_path}`: an assertion audience, and every proof's
    /// `htu`. `None` without an issuer: then neither is accepted.
    pub(crate) token_endpoint: Option<String>,
    /// The longest an assertion may live (`exp` - `iat`, and `exp` - now).
    pub(crate) assertion_lifetime: Duration,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub(crate) leeway: Duration,
    /// How old a DPoP proof's `iat` may be.
    pub(crate) proof_window: Duration,
    /// Where used `jti`s and nonces are kept.
    pub(crate) replays: Replays,
    /// Whether DPoP proofs must carry a server nonce.
    #[cfg(feature = "jose")]
    pub(crate) nonces: Option<crate::jose::dpop::Nonces>,
}

/// How long a claim taken in consume-on-read mode lives: it is confirmed
/// at once, so this only bounds a process that dies in between.
const CONSUME_ON_READ_TTL: Duration = Duration::from_secs(30);

impl Settings {
    pub(crate) fn dialect(&self) -> Dialect {
        self.presentation.dialect
    }

    /// How errors are presented at `endpoint`.
    pub(crate) fn presentation_at(&self, endpoint: Endpoint) -> &Presentation {
        match endpoint {
            Endpoint::Token | Endpoint::DeviceAuthorization => &self.presentation,
            Endpoint::Revocation | Endpoint::Introspection => &self.rfc_presentation,
            // Answered as GitHub's REST API answers (`answer::rest_refusal`).
            Endpoint::Application => &self.presentation,
        }
    }

    /// A new claim for a request that passed its checks, and whether it is
    /// to be confirmed at once (two-phase redemption off).
    pub(crate) fn claim(&self) -> Result<(Claim, bool), StoreError> {
        let ttl = self.claim_ttl.unwrap_or(CONSUME_ON_READ_TTL);
        Ok((Claim::new(ttl)?, self.claim_ttl.is_none()))
    }

    /// The gate's endpoint at `path` other than the token endpoint, if any.
    pub(crate) fn other_endpoint(&self, path: &str) -> Option<Endpoint> {
        let at = |endpoint: &Option<String>| endpoint.as_deref() == Some(path);
        if at(&self.device_path) {
            Some(Endpoint::DeviceAuthorization)
        } else if at(&self.revocation_path) {
            Some(Endpoint::Revocation)
        } else if at(&self.introspection_path) {
            Some(Endpoint::Introspection)
        } else if self
            .application_api
            .as_deref()
            .is_some_and(|prefix| crate::lifecycle::under_application_api(prefix, path))
        {
            Some(Endpoint::Application)
        } else {
            None
        }
    }

    /// Whether the layer serves `grant` at all (before asking which client).
    pub(crate) fn serves(&self, grant: GrantType) -> bool {
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
            .field("claim_ttl", &self.claim_ttl)
            .field("refresh_enabled", &self.refresh_enabled)
            .field("refresh_lifetime", &self.refresh_lifetime)
            .field("token_shape", &self.token_shape)
            .field("refresh_reuse", &self.refresh_reuse)
            .field("revocation_path", &self.revocation_path)
            .field("introspection_path", &self.introspection_path)
            .field("application_api", &self.application_api)
            .field("device_path", &self.device_path)
            .field("issuer", &self.issuer)
            .field("verification_uri", &self.verification_uri)
            .field("lockout", &self.lockout)
            .field("user_code_limits", &self.user_code_limits)
            .field("peer", &self.peer)
            .field("counting", &self.counting)
            .field("signed", &self.signed)
            .finish_non_exhaustive()
    }
}
