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
    /// `server_error`: a store failed; nothing was forwarded.
    ServerError,
    /// GitHub: `incorrect_client_credentials`.
    IncorrectClientCredentials,
    /// GitHub: `redirect_uri_mismatch`.
    RedirectUriMismatch,
    /// GitHub: `bad_verification_code`.
    BadVerificationCode,
    /// GitHub: `incorrect_code_verifier`.
    IncorrectCodeVerifier,
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
            Self::ServerError => "server_error",
            Self::IncorrectClientCredentials => "incorrect_client_credentials",
            Self::RedirectUriMismatch => "redirect_uri_mismatch",
            Self::BadVerificationCode => "bad_verification_code",
            Self::IncorrectCodeVerifier => "incorrect_code_verifier",
        }
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
    description: Cow<'static, str>,
    uri: Option<Cow<'static, str>>,
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
            description,
            uri,
        }
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

/// Why the gate refused a request, before a dialect names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The token path was called with another method than POST.
    MethodNotAllowed,
    /// The body is longer than the configured limit.
    BodyTooLarge,
    /// The body could not be read from the connection.
    BodyUnreadable,
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
    /// The client is not registered for this grant type.
    GrantNotAllowed,
    /// No `code`.
    CodeMissing,
    /// The code is unknown, expired, used, or issued to another client.
    CodeInvalid,
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
    /// A store failed or timed out.
    Store,
}
