//! The two ways of saying no: strict RFC 6749 / OAuth 2.1, and GitHub's.

use std::borrow::Cow;

use http::StatusCode;

use crate::error::{ErrorCode, Failure, Rejection};

/// Which error vocabulary, statuses and body formats the gate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Dialect {
    /// RFC 6749 with the OAuth 2.1 profile: JSON bodies, `400` / `401`.
    #[default]
    Rfc6749,
    /// GitHub's token endpoint: its error names and texts, errors answered
    /// with HTTP 200 (configurable), the body format chosen by `Accept`,
    /// parameters also accepted as JSON or in the query string, and a missing
    /// `grant_type` read as `authorization_code`. Unless the builder says
    /// otherwise, GitHub's shapes too: `ghr_` refresh tokens that live
    /// 184 days and device codes of 40 hex digits
    /// ([`Builder::token_shape`](crate::Builder::token_shape),
    /// [`Builder::refresh_lifetime`](crate::Builder::refresh_lifetime)).
    GitHub,
}

const TOKEN_ERRORS: &str =
    "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/";
const AUTHORIZATION_ERRORS: &str =
    "/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/";

/// GitHub's texts, kept together so they can be checked against its docs.
pub(crate) mod github {
    pub(crate) const INCORRECT_CLIENT_CREDENTIALS: &str =
        "The client_id and/or client_secret passed are incorrect.";
    pub(crate) const REDIRECT_URI_MISMATCH: &str =
        "The redirect_uri MUST match the registered callback URL for this application.";
    pub(crate) const BAD_VERIFICATION_CODE: &str = "The code passed is incorrect or expired.";
    pub(crate) const INCORRECT_CODE_VERIFIER: &str = "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.";
    pub(crate) const UNSUPPORTED_GRANT_TYPE: &str = "The grant type is not supported.";
    pub(crate) const BAD_REFRESH_TOKEN: &str = "The refresh token passed is incorrect or expired.";
    pub(crate) const UNVERIFIED_USER_EMAIL: &str = "The user must have a verified primary email.";
    pub(crate) const AUTHORIZATION_PENDING: &str = "The authorization request is still pending.";
    pub(crate) const SLOW_DOWN: &str = "Too many requests have been made in the same timeframe.";
    pub(crate) const EXPIRED_TOKEN: &str = "The device_code has expired.";
    pub(crate) const INCORRECT_DEVICE_CODE: &str = "The device_code provided is not valid.";
    pub(crate) const ACCESS_DENIED: &str = "The authorization request was denied.";
    pub(crate) const DEVICE_FLOW_DISABLED: &str =
        "Device Flow must be explicitly enabled for this App";
}

/// GitHub's documentation pages, relative, for `error_uri`.
pub(crate) const TOKEN_ERRORS_PAGE: &str = TOKEN_ERRORS;
const DEVICE_ERRORS: &str = "/apps/building-oauth-apps/authorizing-oauth-apps";

/// How errors are presented beyond their name: the `error_uri` base and the
/// status GitHub-dialect errors use.
#[derive(Debug, Clone)]
pub(crate) struct Presentation {
    pub(crate) dialect: Dialect,
    pub(crate) error_uri_base: Option<String>,
    pub(crate) github_status: StatusCode,
}

impl Presentation {
    /// Names `failure` in this dialect.
    pub(crate) fn reject(&self, failure: Failure) -> Rejection {
        let (status, code, description) = rfc6749(failure);
        // Framing and server failures keep their own status and code in both
        // dialects; only OAuth errors take GitHub's names and its status.
        // DPoP has no GitHub form: its errors keep RFC 9449's code and status
        // in both dialects, so that a DPoP client recognises them.
        let dpop = matches!(code, ErrorCode::InvalidDpopProof | ErrorCode::UseDpopNonce);
        if self.dialect == Dialect::Rfc6749
            || !status.is_client_error()
            || is_framing(status)
            || dpop
        {
            let uri = self
                .error_uri_base
                .as_ref()
                .map(|base| Cow::Owned(format!("{base}#{}", code.as_str())));
            let retry_after = match failure {
                Failure::LockedOut(seconds) => Some(seconds),
                _ => None,
            };
            return Rejection::new(status, code, Cow::Borrowed(description), uri)
                .with_retry_after(retry_after);
        }
        let (code, description, page) = match github_name(failure) {
            Some(named) => named,
            None => (code, description, None),
        };
        let uri = page.map(|(page, anchor)| {
            let base = self.error_uri_base.as_deref().unwrap_or("");
            Cow::Owned(format!("{base}{page}#{anchor}"))
        });
        let interval = match failure {
            Failure::DeviceSlowDown(interval) => Some(interval),
            _ => None,
        };
        Rejection::new(self.github_status, code, Cow::Borrowed(description), uri)
            .with_interval(interval)
    }

    /// The status an error of the application's own gets by default: 400,
    /// or GitHub's configured status.
    pub(crate) fn default_status(&self) -> StatusCode {
        match self.dialect {
            Dialect::Rfc6749 => StatusCode::BAD_REQUEST,
            Dialect::GitHub => self.github_status,
        }
    }
}

fn is_framing(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS
    )
}

/// The strict answer to each failure (docs/contract.md#failure-table).
fn rfc6749(failure: Failure) -> (StatusCode, ErrorCode, &'static str) {
    use ErrorCode::*;
    use Failure as F;
    let bad = StatusCode::BAD_REQUEST;
    match failure {
        F::MethodNotAllowed => (
            StatusCode::METHOD_NOT_ALLOWED,
            InvalidRequest,
            "this endpoint accepts POST only",
        ),
        F::BodyTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            InvalidRequest,
            "the request body is larger than this endpoint accepts",
        ),
        F::BodyUnreadable => (bad, InvalidRequest, "the request body could not be read"),
        F::ReadTimeout => (
            StatusCode::REQUEST_TIMEOUT,
            InvalidRequest,
            "the request body did not arrive in time",
        ),
        F::ContentType => (
            bad,
            InvalidRequest,
            "token requests must have `Content-Type: application/x-www-form-urlencoded` in UTF-8 (GitHub dialect: or application/json)",
        ),
        F::Malformed(why) => (bad, InvalidRequest, why),
        F::JsonBody => (
            bad,
            InvalidRequest,
            "JSON bodies are not accepted; send application/x-www-form-urlencoded",
        ),
        F::ParametersInQuery => (
            bad,
            InvalidRequest,
            "token parameters must be sent in the request body, not the query string",
        ),
        F::Repeated(why) => (bad, InvalidRequest, why),
        F::GrantTypeMissing => (bad, InvalidRequest, "the grant_type parameter is missing"),
        F::GrantTypeUnsupported => (
            bad,
            UnsupportedGrantType,
            "the grant_type is not supported by this endpoint",
        ),
        // RFC 6749 §5.2: a client that tried the Authorization header and
        // failed gets 401, whatever was wrong with the header.
        F::MalformedAuthorization(why) => (StatusCode::UNAUTHORIZED, InvalidClient, why),
        F::TwoAuthMethods => (
            bad,
            InvalidRequest,
            "the client authenticated with both the Authorization header and client_secret; use one",
        ),
        F::ClientIdConflict => (
            bad,
            InvalidRequest,
            "client_id in the body differs from the Authorization header",
        ),
        F::BadClientCredentials | F::AssertionReplayed => (
            StatusCode::UNAUTHORIZED,
            InvalidClient,
            "client authentication failed",
        ),
        F::GrantNotAllowed => (
            bad,
            UnauthorizedClient,
            "the client is not allowed to use this grant_type",
        ),
        F::CodeMissing => (bad, InvalidRequest, "the code parameter is missing"),
        F::CodeInvalid | F::CodeSpent | F::CodeHeld => (
            bad,
            InvalidGrant,
            "the code is invalid, expired, already used or issued to another client",
        ),
        F::PkceRequired => (
            bad,
            InvalidGrant,
            "public clients must use PKCE; the code carries no code_challenge",
        ),
        F::RedirectNotRegistered => (
            bad,
            InvalidGrant,
            "the redirect_uri is not registered for this client",
        ),
        F::RedirectNotBound => (
            bad,
            InvalidGrant,
            "the redirect_uri differs from the one used in the authorization request",
        ),
        F::RedirectMissing => (
            bad,
            InvalidRequest,
            "the redirect_uri parameter is required: the authorization request carried one",
        ),
        F::VerifierMissing => (
            bad,
            InvalidRequest,
            "the code_verifier parameter is missing: the authorization request carried a code_challenge",
        ),
        F::VerifierUnexpected => (
            bad,
            InvalidRequest,
            "a code_verifier was sent but the authorization request carried no code_challenge",
        ),
        F::VerifierMalformed => (
            bad,
            InvalidGrant,
            "the code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
        ),
        F::VerifierWrong => (
            bad,
            InvalidGrant,
            "the code_verifier does not match the code_challenge",
        ),
        F::RefreshTokenMissing => (
            bad,
            InvalidRequest,
            "the refresh_token parameter is missing",
        ),
        F::RefreshTokenInvalid | F::RefreshTokenSpent | F::RefreshTokenHeld => (
            bad,
            InvalidGrant,
            "the refresh token is invalid, expired, revoked or issued to another client",
        ),
        F::RefreshScopeWider => (
            bad,
            InvalidScope,
            "the requested scope exceeds the scope originally granted",
        ),
        F::ScopeNotAllowed => (
            bad,
            InvalidScope,
            "the requested scope is malformed or not allowed for this client",
        ),
        F::DeviceCodeMissing => (bad, InvalidRequest, "the device_code parameter is missing"),
        F::DeviceCodeInvalid => (
            bad,
            InvalidGrant,
            "the device_code is invalid, already used or issued to another client",
        ),
        F::DevicePending => (
            bad,
            AuthorizationPending,
            "the user has not yet completed the authorization",
        ),
        F::DeviceSlowDown(_) => (
            bad,
            SlowDown,
            "polling too fast; the interval has been increased by 5 seconds",
        ),
        F::DeviceDenied => (
            bad,
            AccessDenied,
            "the user denied the authorization request",
        ),
        F::DeviceExpired => (bad, ExpiredToken, "the device_code has expired"),
        F::DeviceFlowDisabled => (
            bad,
            UnauthorizedClient,
            "the device flow is not enabled for this client",
        ),
        F::DpopInvalid(why) => (bad, InvalidDpopProof, why),
        F::DpopReplayed => (bad, InvalidDpopProof, "the DPoP proof was used before"),
        F::DpopNonce => (
            bad,
            UseDpopNonce,
            "the DPoP proof must carry the nonce in the DPoP-Nonce header",
        ),
        F::DpopRequired => (
            bad,
            InvalidDpopProof,
            "a DPoP proof is required for this client or grant",
        ),
        F::DpopKeyMismatch => (
            bad,
            InvalidDpopProof,
            "the DPoP proof's key is not the one the grant is bound to",
        ),
        F::TokenMissing => (bad, InvalidRequest, "the token parameter is missing"),
        F::TokenTypeUnsupported => (
            bad,
            UnsupportedTokenType,
            "the token_type_hint names a kind of token that is not revoked here",
        ),
        F::IntrospectionNotAllowed => (
            StatusCode::FORBIDDEN,
            UnauthorizedClient,
            "the client is not registered to introspect tokens",
        ),
        // Presented as GitHub's REST errors (`decide::application`); the
        // OAuth form is never shown for them.
        F::ApplicationRouteUnknown => (StatusCode::NOT_FOUND, InvalidRequest, "not found"),
        F::ApplicationClientMismatch => (
            StatusCode::NOT_FOUND,
            UnauthorizedClient,
            "the path names another client",
        ),
        F::Store => (
            StatusCode::INTERNAL_SERVER_ERROR,
            ServerError,
            "the authorization server could not complete the request",
        ),
        F::LockedOut(_) => (
            StatusCode::TOO_MANY_REQUESTS,
            TemporarilyUnavailable,
            "too many failed attempts; retry after the time in Retry-After",
        ),
    }
}

type GitHubName = (
    ErrorCode,
    &'static str,
    Option<(&'static str, &'static str)>,
);

/// GitHub's name, text and documentation anchor for a failure, where it has
/// one of its own; `None` keeps the RFC 6749 code and text.
fn github_name(failure: Failure) -> Option<GitHubName> {
    use Failure as F;
    let credentials = (
        ErrorCode::IncorrectClientCredentials,
        github::INCORRECT_CLIENT_CREDENTIALS,
        Some((TOKEN_ERRORS, "incorrect-client-credentials")),
    );
    let code = (
        ErrorCode::BadVerificationCode,
        github::BAD_VERIFICATION_CODE,
        Some((TOKEN_ERRORS, "bad-verification-code")),
    );
    let redirect = (
        ErrorCode::RedirectUriMismatch,
        github::REDIRECT_URI_MISMATCH,
        Some((AUTHORIZATION_ERRORS, "redirect-uri-mismatch2")),
    );
    // The anchor is the error's name with `-` for `_`, as on the seed page.
    // GitHub sends `bad_refresh_token`'s; `incorrect_code_verifier` gets
    // one like its siblings on the same page.
    let verifier = (
        ErrorCode::IncorrectCodeVerifier,
        github::INCORRECT_CODE_VERIFIER,
        Some((TOKEN_ERRORS, "incorrect-code-verifier")),
    );
    let unsupported = (
        ErrorCode::UnsupportedGrantType,
        github::UNSUPPORTED_GRANT_TYPE,
        None,
    );
    let refresh = (
        ErrorCode::BadRefreshToken,
        github::BAD_REFRESH_TOKEN,
        Some((TOKEN_ERRORS, "bad-refresh-token")),
    );
    let device = |code, text, anchor| (code, text, Some((DEVICE_ERRORS, anchor)));
    let device_anchor = "error-codes-for-the-device-flow";
    Some(match failure {
        F::RefreshTokenMissing
        | F::RefreshTokenInvalid
        | F::RefreshTokenSpent
        | F::RefreshTokenHeld
        | F::RefreshScopeWider => refresh,
        F::DevicePending => device(
            ErrorCode::AuthorizationPending,
            github::AUTHORIZATION_PENDING,
            device_anchor,
        ),
        F::DeviceSlowDown(_) => device(ErrorCode::SlowDown, github::SLOW_DOWN, device_anchor),
        F::DeviceDenied => device(
            ErrorCode::AccessDenied,
            github::ACCESS_DENIED,
            device_anchor,
        ),
        F::DeviceExpired => device(
            ErrorCode::ExpiredToken,
            github::EXPIRED_TOKEN,
            device_anchor,
        ),
        F::DeviceCodeMissing | F::DeviceCodeInvalid => device(
            ErrorCode::IncorrectDeviceCode,
            github::INCORRECT_DEVICE_CODE,
            device_anchor,
        ),
        F::DeviceFlowDisabled => device(
            ErrorCode::DeviceFlowDisabled,
            github::DEVICE_FLOW_DISABLED,
            device_anchor,
        ),
        F::BadClientCredentials | F::AssertionReplayed | F::MalformedAuthorization(_) => {
            credentials
        }
        F::CodeMissing | F::CodeInvalid | F::CodeSpent | F::CodeHeld | F::PkceRequired => code,
        F::RedirectNotRegistered | F::RedirectNotBound => redirect,
        F::VerifierMissing | F::VerifierUnexpected | F::VerifierMalformed | F::VerifierWrong => {
            verifier
        }
        F::GrantTypeUnsupported | F::GrantNotAllowed => unsupported,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::is_valid_description;

    const ALL: &[Failure] = &[
        Failure::MethodNotAllowed,
        Failure::BodyTooLarge,
        Failure::BodyUnreadable,
        Failure::ReadTimeout,
        Failure::ContentType,
        Failure::JsonBody,
        Failure::ParametersInQuery,
        Failure::GrantTypeMissing,
        Failure::GrantTypeUnsupported,
        Failure::TwoAuthMethods,
        Failure::MalformedAuthorization("the Authorization header is not valid base64"),
        Failure::ClientIdConflict,
        Failure::BadClientCredentials,
        Failure::GrantNotAllowed,
        Failure::CodeMissing,
        Failure::CodeInvalid,
        Failure::CodeSpent,
        Failure::CodeHeld,
        Failure::PkceRequired,
        Failure::RedirectNotRegistered,
        Failure::RedirectNotBound,
        Failure::RedirectMissing,
        Failure::VerifierMissing,
        Failure::VerifierUnexpected,
        Failure::VerifierMalformed,
        Failure::VerifierWrong,
        Failure::RefreshTokenMissing,
        Failure::RefreshTokenInvalid,
        Failure::RefreshTokenSpent,
        Failure::RefreshTokenHeld,
        Failure::RefreshScopeWider,
        Failure::ScopeNotAllowed,
        Failure::DeviceCodeMissing,
        Failure::DeviceCodeInvalid,
        Failure::DevicePending,
        Failure::DeviceSlowDown(10),
        Failure::DeviceDenied,
        Failure::DeviceExpired,
        Failure::DeviceFlowDisabled,
        Failure::Store,
    ];

    #[test]
    fn every_description_is_legal_in_both_dialects() {
        for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
            let p = Presentation {
                dialect,
                error_uri_base: Some("https://docs.example.com".into()),
                github_status: StatusCode::OK,
            };
            for &failure in ALL {
                let r = p.reject(failure);
                assert!(is_valid_description(r.description()), "{failure:?}");
            }
        }
    }

    #[test]
    fn github_keeps_framing_and_server_statuses() {
        let p = Presentation {
            dialect: Dialect::GitHub,
            error_uri_base: None,
            github_status: StatusCode::OK,
        };
        assert_eq!(p.reject(Failure::MethodNotAllowed).status(), 405);
        assert_eq!(p.reject(Failure::BodyTooLarge).status(), 413);
        assert_eq!(p.reject(Failure::Store).status(), 500);
        assert_eq!(p.reject(Failure::CodeInvalid).status(), 200);
    }

    /// A spent code or token is counted differently by the lockout, but on
    /// the wire it is the unknown one, byte for byte, in both dialects.
    #[test]
    fn spent_values_answer_as_invalid_ones() {
        for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
            for error_uri_base in [None, Some("https://docs.example.com".to_owned())] {
                let p = Presentation {
                    dialect,
                    error_uri_base,
                    github_status: StatusCode::OK,
                };
                assert_eq!(p.reject(Failure::CodeSpent), p.reject(Failure::CodeInvalid));
                assert_eq!(
                    p.reject(Failure::RefreshTokenSpent),
                    p.reject(Failure::RefreshTokenInvalid)
                );
            }
        }
    }
}
