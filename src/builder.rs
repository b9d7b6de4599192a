//! Configuring the gate.

use std::{fmt, sync::Arc, time::Duration};

use http::{HeaderValue, StatusCode};

use crate::{
    check::{Gate, ReplayHook, Settings},
    clock::{Clock, SystemClock},
    code::CodeRecord,
    dialect::{Dialect, Presentation},
    layer::TokenGateLayer,
    store::{CodeStore, CredentialStore},
};

/// The default token path, GitHub's.
pub const DEFAULT_TOKEN_PATH: &str = "/login/oauth/access_token";
/// The default body limit: 16 KiB, far above any honest token request.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;
/// The default code lifetime: 10 minutes (RFC 6749 §4.1.2).
pub const DEFAULT_CODE_LIFETIME: Duration = Duration::from_secs(600);

/// Builds a [`TokenGateLayer`]. `C` and `K` are the credential and code
/// stores; both start unset and [`build`](Builder::build) needs both.
///
/// ```
/// use std::time::Duration;
/// use tokengate::{Dialect, ManualClock, MemoryStore, TokenGateLayer};
///
/// let clock = ManualClock::new();
/// let store = MemoryStore::with_clock(clock.clone());
/// let layer = TokenGateLayer::builder()
///     .store(store)
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
pub struct Builder<C = (), K = ()> {
    credentials: C,
    codes: K,
    options: Options,
}

/// Everything but the stores.
struct Options {
    token_path: String,
    dialect: Dialect,
    body_limit: usize,
    error_uri_base: Option<String>,
    github_status: StatusCode,
    realm: String,
    code_lifetime: Duration,
    clock: Arc<dyn Clock>,
    allow_plain_pkce: bool,
    on_code_replay: Option<ReplayHook>,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Self {
            credentials: (),
            codes: (),
            options: Options {
                token_path: DEFAULT_TOKEN_PATH.to_owned(),
                dialect: Dialect::default(),
                body_limit: DEFAULT_BODY_LIMIT,
                error_uri_base: None,
                github_status: StatusCode::OK,
                realm: "token".to_owned(),
                code_lifetime: DEFAULT_CODE_LIFETIME,
                clock: Arc::new(SystemClock),
                allow_plain_pkce: false,
                on_code_replay: None,
            },
        }
    }
}

impl<C, K> Builder<C, K> {
    /// One store for clients and codes.
    pub fn store<St>(self, store: St) -> Builder<St, St>
    where
        St: CredentialStore + CodeStore + Clone,
    {
        self.credential_store(store.clone()).code_store(store)
    }

    /// Where clients are looked up.
    pub fn credential_store<C2: CredentialStore>(self, credentials: C2) -> Builder<C2, K> {
        Builder {
            credentials,
            codes: self.codes,
            options: self.options,
        }
    }

    /// Where codes are kept.
    pub fn code_store<K2: CodeStore>(self, codes: K2) -> Builder<C, K2> {
        Builder {
            credentials: self.credentials,
            codes,
            options: self.options,
        }
    }

    /// The path of the token endpoint (default [`DEFAULT_TOKEN_PATH`]).
    #[must_use]
    pub fn token_path(mut self, path: impl Into<String>) -> Self {
        self.options.token_path = path.into();
        self
    }

    /// The error dialect (default [`Dialect::Rfc6749`]).
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

    /// Accepts PKCE `plain` challenges (default no: RFC 7636 §7.2 keeps it
    /// for clients that cannot hash, and GitHub refuses it).
    #[must_use]
    pub fn allow_plain_pkce(mut self, allow: bool) -> Self {
        self.options.allow_plain_pkce = allow;
        self
    }

    /// Called with the record of a code presented again after it was
    /// redeemed, in an otherwise valid request, so the application can
    /// revoke the tokens issued from it (RFC 6749 §4.1.2).
    #[must_use]
    pub fn on_code_replay(mut self, hook: impl Fn(&CodeRecord) + Send + Sync + 'static) -> Self {
        self.options.on_code_replay = Some(Arc::new(hook));
        self
    }
}

impl<C: CredentialStore, K: CodeStore> Builder<C, K> {
    /// The layer, or what is wrong with the configuration.
    pub fn try_build(self) -> Result<TokenGateLayer, ConfigError> {
        let Self {
            credentials,
            codes,
            options,
        } = self;
        if !options.token_path.starts_with('/') {
            return Err(ConfigError("the token path must start with `/`"));
        }
        if options.body_limit == 0 {
            return Err(ConfigError("the body limit must be at least one byte"));
        }
        if options.code_lifetime.is_zero() {
            return Err(ConfigError("the code lifetime must be positive"));
        }
        if options.github_status.is_informational() || options.github_status.is_redirection() {
            return Err(ConfigError(
                "the GitHub error status must be 2xx, 4xx or 5xx",
            ));
        }
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
        let settings = Settings {
            token_path: options.token_path,
            presentation: Presentation {
                dialect: options.dialect,
                error_uri_base: options.error_uri_base,
                github_status: options.github_status,
            },
            body_limit: options.body_limit,
            www_authenticate,
            code_lifetime: options.code_lifetime,
            clock: options.clock,
            allow_plain_pkce: options.allow_plain_pkce,
            on_code_replay: options.on_code_replay,
        };
        Ok(TokenGateLayer::from_checks(Arc::new(Gate {
            settings,
            credentials,
            codes,
        })))
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

impl<C, K> fmt::Debug for Builder<C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("token_path", &self.options.token_path)
            .field("dialect", &self.options.dialect)
            .field("body_limit", &self.options.body_limit)
            .finish_non_exhaustive()
    }
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
