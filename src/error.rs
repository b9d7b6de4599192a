//! What went wrong: the internal reason a request was refused, and the public
//! [`Rejection`] it becomes once a dialect has named it.

use std::{borrow::Cow, fmt};

use http::StatusCode;

/// An OAuth error code, as sent in the `error` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request` (RFC 6749 §5.2).
    InvalidRequest,
    /// `invalid_client` (RFC 6749 §5.2).
    InvalidClient,
    /// `invalid_grant` (RFC 6749 §5.2).
    InvalidGrant,
    /// `unauthorized_client` (RFC 6749 §5.2).
    UnauthorizedClient,
    /// `unsupported_grant_type` (RFC 6749 §5.2).
    UnsupportedGrantType,
    /// `invalid_scope` (RFC 6749 §5.2).
    InvalidScope,
    /// `authorization_pending` (RFC 8628 §3.5).
    AuthorizationPending,
    /// `slow_down` (RFC 8628 §3.5).
    SlowDown,
    /// `access_denied` (RFC 8628 §3.5).
    AccessDenied,
    /// `expired_token` (RFC 8628 §3.5).
    ExpiredToken,
    /// `server_error`: a store failed; nothing was forwarded.
    ServerError,
    /// `temporarily_unavailable`: too many failed attempts; `Retry-After`
    /// says when to try again.
    TemporarilyUnavailable,
    /// GitHub: `incorrect_client_credentials`.
    IncorrectClientCredentials,
    /// GitHub: `redirect_uri_mismatch`.
    RedirectUriMismatch,
    /// GitHub: `bad_verification_code`.
    BadVerificationCode,
    /// GitHub: `incorrect_code_verifier`.
    IncorrectCodeVerifier,
    /// GitHub: `bad_refresh_token`.
    BadRefreshToken,
    /// GitHub: `incorrect_device_code`.
    IncorrectDeviceCode,
    /// GitHub: `device_flow_disabled`.
    DeviceFlowDisabled,
    /// GitHub: `unverified_user_email`.
    UnverifiedUserEmail,
    /// `invalid_dpop_proof` (RFC 9449 §5).
    InvalidDpopProof,
    /// `use_dpop_nonce` (RFC 9449 §8): retry with the nonce in the
    /// `DPoP-Nonce` header.
    UseDpopNonce,
    /// `unsupported_token_type` (RFC 7009 §2.2.1): a `token_type_hint` of
    /// a kind of token nobody behind the revocation endpoint handles.
    UnsupportedTokenType,
    /// An error code of the application's own, from a policy; the wire name
    /// is [`Rejection::error`].
    Other,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::IncorrectClientCredentials => "incorrect_client_credentials",
            Self::RedirectUriMismatch => "redirect_uri_mismatch",
            Self::BadVerificationCode => "bad_verification_code",
            Self::IncorrectCodeVerifier => "incorrect_code_verifier",
            Self::BadRefreshToken => "bad_refresh_token",
            Self::IncorrectDeviceCode => "incorrect_device_code",
            Self::DeviceFlowDisabled => "device_flow_disabled",
            Self::UnverifiedUserEmail => "unverified_user_email",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::Other => "other",
        }
    }

    /// The standard code with this wire name, or [`ErrorCode::Other`].
    pub fn from_name(name: &str) -> Self {
        const NAMED: [ErrorCode; 23] = [
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidClient,
            ErrorCode::InvalidGrant,
            ErrorCode::UnauthorizedClient,
            ErrorCode::UnsupportedGrantType,
            ErrorCode::InvalidScope,
            ErrorCode::AuthorizationPending,
            ErrorCode::SlowDown,
            ErrorCode::AccessDenied,
            ErrorCode::ExpiredToken,
            ErrorCode::ServerError,
            ErrorCode::TemporarilyUnavailable,
            ErrorCode::IncorrectClientCredentials,
            ErrorCode::RedirectUriMismatch,
            ErrorCode::BadVerificationCode,
            ErrorCode::IncorrectCodeVerifier,
            ErrorCode::BadRefreshToken,
            ErrorCode::IncorrectDeviceCode,
            ErrorCode::DeviceFlowDisabled,
            ErrorCode::UnverifiedUserEmail,
            ErrorCode::InvalidDpopProof,
            ErrorCode::UseDpopNonce,
            ErrorCode::UnsupportedTokenType,
        ];
        NAMED
            .into_iter()
            .find(|code| code.as_str() == name)
            .unwrap_or(Self::Other)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer the gate gave instead of forwarding a request.
///
/// Every rejected response carries a copy in its extensions, so an outer
/// layer (metrics, logging) can see why without parsing the body.
///
/// ```
/// # use tokengate::{ErrorCode, Rejection};
/// # fn inspect(response: &http::Response<()>) {
/// if let Some(rejection) = response.extensions().get::<Rejection>() {
///     assert_ne!(rejection.code(), ErrorCode::ServerError);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    status: StatusCode,
    code: ErrorCode,
    error: Cow<'static, str>,
    description: Cow<'static, str>,
    uri: Option<Cow<'static, str>>,
    interval: Option<u64>,
    retry_after: Option<u64>,
}

impl Rejection {
    pub(crate) fn new(
        status: StatusCode,
        code: ErrorCode,
        description: Cow<'static, str>,
        uri: Option<Cow<'static, str>>,
    ) -> Self {
        debug_assert!(is_valid_description(&description), "{description}");
        Self {
            status,
            code,
            error: Cow::Borrowed(code.as_str()),
            description,
            uri,
            interval: None,
            retry_after: None,
        }
    }

    /// A rejection with an error name of the application's own (already
    /// validated by [`PolicyError`](crate::PolicyError)).
    pub(crate) fn named(
        status: StatusCode,
        error: Cow<'static, str>,
        description: Cow<'static, str>,
        uri: Option<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code: ErrorCode::from_name(&error),
            error,
            description,
            uri,
            interval: None,
            retry_after: None,
        }
    }

    pub(crate) fn with_retry_after(mut self, seconds: Option<u64>) -> Self {
        self.retry_after = seconds;
        self
    }

    /// The `Retry-After` seconds of a lockout (`429`).
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    pub(crate) fn with_interval(mut self, interval: Option<u64>) -> Self {
        self.interval = interval;
        self
    }

    /// The `error` field as sent (the same as `code().as_str()` except for
    /// an application's own codes).
    pub fn error(&self) -> &str {
        &self.error
    }

    /// The `error` field, shared: a standard code is a static string, so
    /// this copies nothing.
    pub(crate) fn error_name(&self) -> Cow<'static, str> {
        self.error.clone()
    }

    /// The `interval` field GitHub adds to `slow_down`.
    pub fn interval(&self) -> Option<u64> {
        self.interval
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `error` field.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The `error_description` field.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The `error_uri` field, when one is configured.
    pub fn uri(&self) -> Option<&str> {
        self.uri.as_deref()
    }
}

/// RFC 6749 §5.2: `error_description` is printable ASCII without `"` or `\`.
pub(crate) fn is_valid_description(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// RFC 6749 §5.2: `error` is non-empty, printable ASCII without `"` or `\`.
pub(crate) fn is_valid_error(text: &str) -> bool {
    !text.is_empty() && is_valid_description(text)
}

/// RFC 6749 §5.2: `error_uri` is `%x21 / %x23-5B / %x5D-7E` (a URI
/// reference, no spaces).
pub(crate) fn is_valid_uri(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// Why the gate refused a request, before a dialect names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Without `jose`, the assertion and proof failures are never made.
#[cfg_attr(not(feature = "jose"), allow(dead_code))]
pub(crate) enum Failure {
    /// The token path was called with another method than POST.
    MethodNotAllowed,
    /// The body is longer than the configured limit.
    BodyTooLarge,
    /// The body could not be read from the connection.
    BodyUnreadable,
    /// The body did not arrive within the read timeout.
    ReadTimeout,
    /// Missing or unsupported `Content-Type`.
    ContentType,
    /// The body or query does not decode; the text says how.
    Malformed(&'static str),
    /// RFC 6749 dialect: a JSON body.
    JsonBody,
    /// RFC 6749 dialect: token parameters in the query string.
    ParametersInQuery,
    /// A defined parameter appears more than once.
    Repeated(&'static str),
    /// No `grant_type`.
    GrantTypeMissing,
    /// A `grant_type` the gate does not serve.
    GrantTypeUnsupported,
    /// The `Authorization` header is not well-formed Basic credentials.
    MalformedAuthorization(&'static str),
    /// Basic credentials and a `client_secret` in the body.
    TwoAuthMethods,
    /// The body's `client_id` is not the one in the Basic credentials.
    ClientIdConflict,
    /// Unknown client, wrong or missing secret, or an unsupported scheme.
    BadClientCredentials,
    /// A client assertion that verified, presented again: answered as
    /// [`Failure::BadClientCredentials`], but not a guess (whoever sends
    /// it once held a valid one).
    AssertionReplayed,
    /// The client is not registered for this grant type.
    GrantNotAllowed,
    /// No `code`.
    CodeMissing,
    /// The code is unknown or issued to another client.
    CodeInvalid,
    /// The client's own code, valid once: used already (a replay) or
    /// expired. Answered as [`Failure::CodeInvalid`], but not a guess:
    /// whoever sends it once held the real code.
    CodeSpent,
    /// Another request holds a claim on the code (two-phase redemption):
    /// answered as [`Failure::CodeInvalid`], but a race, not a guess.
    CodeHeld,
    /// A public client redeemed a code that carries no PKCE challenge.
    PkceRequired,
    /// `redirect_uri` is not allowed by the client's registration.
    RedirectNotRegistered,
    /// `redirect_uri` differs from the one bound to the code.
    RedirectNotBound,
    /// `redirect_uri` is missing but the code is bound to one.
    RedirectMissing,
    /// A challenge is bound but no verifier was sent.
    VerifierMissing,
    /// A verifier was sent for a code without challenge (a downgrade).
    VerifierUnexpected,
    /// The verifier is not 43-128 unreserved characters.
    VerifierMalformed,
    /// The verifier does not match the challenge.
    VerifierWrong,
    /// No `refresh_token`.
    RefreshTokenMissing,
    /// The refresh token is unknown (never issued, or revoked and
    /// forgotten by the store) or another client's.
    RefreshTokenInvalid,
    /// The client's own refresh token, valid once: expired, rotated away
    /// (a replay), or lost to a concurrent rotation or revocation after it
    /// was read. Answered as [`Failure::RefreshTokenInvalid`], but not a
    /// guess.
    RefreshTokenSpent,
    /// Another request holds a claim on the refresh token: answered as
    /// [`Failure::RefreshTokenInvalid`], but a race, not a guess.
    RefreshTokenHeld,
    /// A refresh asked for a scope the token was not granted.
    RefreshScopeWider,
    /// A requested scope is malformed or not allowed to the client.
    ScopeNotAllowed,
    /// No `device_code`.
    DeviceCodeMissing,
    /// The device code is unknown, redeemed, or another client's.
    DeviceCodeInvalid,
    /// The user has not decided yet.
    DevicePending,
    /// Polled before the interval passed; the new interval.
    DeviceSlowDown(u64),
    /// The user declined.
    DeviceDenied,
    /// The device code expired.
    DeviceExpired,
    /// The client is not enabled for the device flow.
    DeviceFlowDisabled,
    /// The DPoP proof is malformed or fails a check; the text says which.
    DpopInvalid(&'static str),
    /// The DPoP proof was used before.
    DpopReplayed,
    /// The DPoP proof lacks the server's current nonce.
    DpopNonce,
    /// The client or the grant requires a DPoP proof and none was sent.
    DpopRequired,
    /// The proof's key is not the one the code or refresh token is bound to.
    DpopKeyMismatch,
    /// No `token` at the revocation or introspection endpoint.
    TokenMissing,
    /// A `token_type_hint` other than `access_token` or `refresh_token`
    /// at the revocation endpoint.
    TokenTypeUnsupported,
    /// An authenticated client not registered to introspect tokens.
    IntrospectionNotAllowed,
    /// At the OAuth-app REST endpoints (`Builder::application_api`): no
    /// such route (path or method).
    ApplicationRouteUnknown,
    /// At the OAuth-app REST endpoints: the path names another client than
    /// the one authenticated, or a public client (no secret to present).
    /// Not a guess: the secret was right.
    ApplicationClientMismatch,
    /// A store failed or timed out.
    Store,
    /// Too many failures for the client id or address; the seconds until
    /// the lockout ends.
    LockedOut(u64),
}

impl Failure {
    /// Whether this failure is a guess that the brute-force defence counts:
    /// a wrong client credential, or a code, token, verifier or redirect
    /// URI that does not match. A code or token that was valid once for
    /// this client (used, rotated, expired) is not: its sender held the
    /// real value, and counting its retries would lock out honest clients.
    pub(crate) fn is_a_guess(self) -> bool {
        matches!(
            self,
            Self::BadClientCredentials
                | Self::CodeInvalid
                | Self::RedirectNotBound
                | Self::VerifierMalformed
                | Self::VerifierWrong
                | Self::RefreshTokenInvalid
                | Self::DeviceCodeInvalid
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Failure;

    #[test]
    fn a_value_that_was_valid_once_is_not_a_guess() {
        // Unknown or another client's: a guess.
        assert!(Failure::CodeInvalid.is_a_guess());
        assert!(Failure::RefreshTokenInvalid.is_a_guess());
        assert!(Failure::DeviceCodeInvalid.is_a_guess());
        // The client's own, used, rotated or expired: not a guess.
        assert!(!Failure::CodeSpent.is_a_guess());
        assert!(!Failure::RefreshTokenSpent.is_a_guess());
        assert!(!Failure::DeviceExpired.is_a_guess());
        // Races are not guesses either.
        assert!(!Failure::CodeHeld.is_a_guess());
        assert!(!Failure::RefreshTokenHeld.is_a_guess());
    }
}
