//! The issuing side: validate an authorization request and mint the code
//! that the token endpoint will later redeem (RFC 6749 §4.1.1-4.1.2).
//!
//! Errors follow RFC 6749 §4.1.2.1: while the client or its redirect URI is
//! in doubt, the user agent is never redirected; after that, errors go back
//! to the client's redirect URI with `state`. In the GitHub dialect a
//! redirect URI mismatch is sent to the registered callback URL, as GitHub
//! does, and an unknown client is a 404.

use std::{fmt, sync::Arc};

use http::{
    HeaderValue, Response, StatusCode,
    header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION},
};

pub use crate::record::code::CodeRecord;
use crate::{
    client::{Client, GrantType},
    dialect::{Dialect, github},
    issuing::Issuing,
    parse::form,
    pkce::PkceChallenge,
    scope,
    secret::{CodeKey, random_code},
    store::StoreError,
};

/// Validates authorization requests and mints codes, sharing the layer's
/// stores, clock, code lifetime and dialect. Get one from
/// [`TokenGateLayer::authorizer`](crate::TokenGateLayer::authorizer).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tokengate::{Client, MemoryStore, TokenGateLayer};
///
/// let store = MemoryStore::new();
/// store.insert_client(Client::confidential("app").with_secret("s3cret")
///     .with_redirect_uri("https://app.example/cb"));
/// let authorizer = TokenGateLayer::new(store).authorizer();
///
/// let request = authorizer
///     .validate("response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=xyz")
///     .await
///     .expect("valid request");
/// // ... the user logs in and approves ...
/// let approval = authorizer.approve(&request, "user-42").await.expect("store up");
/// assert!(approval.location().starts_with("https://app.example/cb?code="));
/// assert_eq!(approval.location().len(), "https://app.example/cb?code=".len() + approval.code().len() + "&state=xyz".len());
/// assert!(approval.location().ends_with("&state=xyz"));
/// # }
/// ```
#[derive(Clone)]
pub struct Authorizer {
    issuing: Arc<Issuing>,
}

/// A validated authorization request, waiting for the user's decision.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    client: Arc<Client>,
    redirect_to: String,
    bound_redirect_uri: Option<String>,
    state: Option<String>,
    scopes: Vec<String>,
    pkce: Option<PkceChallenge>,
    dpop_jkt: Option<String>,
}

/// The user approved: the code and where to send it.
pub struct Approval {
    code: String,
    location: String,
}

/// Why an authorization request was refused, and how to tell the user agent.
#[derive(Debug, Clone)]
pub struct AuthorizationError {
    error: &'static str,
    description: &'static str,
    answer: Answer,
}

#[derive(Debug, Clone)]
enum Answer {
    /// Shown to the user; the client cannot be trusted with a redirect.
    Page(StatusCode),
    /// Sent back to the client's redirect URI.
    Redirect(String),
}

/// The authorization request's parameters.
#[derive(Default)]
struct Params {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    scope: Option<String>,
    response_type: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    dpop_jkt: Option<String>,
}

impl Params {
    fn parse(query: &str) -> Result<Self, &'static str> {
        let mut params = Self::default();
        for pair in form::pairs(query.as_bytes()) {
            let (name, value) = pair?;
            let slot = match &*name {
                "client_id" => &mut params.client_id,
                "redirect_uri" => &mut params.redirect_uri,
                "state" => &mut params.state,
                "scope" => &mut params.scope,
                "response_type" => &mut params.response_type,
                "code_challenge" => &mut params.code_challenge,
                "code_challenge_method" => &mut params.code_challenge_method,
                "dpop_jkt" => &mut params.dpop_jkt,
                _ => continue,
            };
            // `Some("")` marks a parameter seen empty: still absent, but a
            // second occurrence is a repetition.
            if slot.is_some() {
                return Err("a parameter of the authorization request is repeated");
            }
            *slot = Some(value.into_owned());
        }
        for slot in [
            &mut params.client_id,
            &mut params.redirect_uri,
            &mut params.state,
            &mut params.scope,
            &mut params.response_type,
            &mut params.code_challenge,
            &mut params.code_challenge_method,
            &mut params.dpop_jkt,
        ] {
            if slot.as_deref() == Some("") {
                *slot = None;
            }
        }
        Ok(params)
    }
}

impl Authorizer {
    pub(crate) fn new(issuing: Arc<Issuing>) -> Self {
        Self { issuing }
    }

    fn dialect(&self) -> Dialect {
        self.issuing.settings.dialect()
    }

    /// Validates the query string of an authorization request
    /// (`client_id`, `redirect_uri`, `state`, `scope`, `response_type`,
    /// `code_challenge`, `code_challenge_method`).
    pub async fn validate(&self, query: &str) -> Result<AuthorizationRequest, AuthorizationError> {
        let page = |status, error, description| AuthorizationError {
            error,
            description,
            answer: Answer::Page(status),
        };
        let params = Params::parse(query)
            .map_err(|why| page(StatusCode::BAD_REQUEST, "invalid_request", why))?;
        let client_id = params.client_id.clone().ok_or(page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the client_id parameter is missing",
        ))?;
        let client = self
            .issuing
            .clients
            .client(&client_id)
            .await
            .map_err(|error| {
                tracing::error!(%error, "credential store failed");
                page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the authorization server could not complete the request",
                )
            })?;
        let Some(client) = client else {
            return Err(match self.dialect() {
                Dialect::GitHub => page(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no application with this client_id",
                ),
                Dialect::Rfc6749 => page(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "unknown client_id",
                ),
            });
        };
        let redirect_to = self.redirect_target(&client, &params)?;
        let fail = |error, description| AuthorizationError {
            error,
            description,
            answer: Answer::Redirect(with_params(
                &redirect_to,
                &[
                    ("error", Some(error)),
                    ("error_description", Some(description)),
                    ("state", params.state.as_deref()),
                ],
            )),
        };
        match (self.dialect(), params.response_type.as_deref()) {
            (_, Some("code")) | (Dialect::GitHub, None) => {}
            (Dialect::Rfc6749, None) => {
                return Err(fail(
                    "invalid_request",
                    "the response_type parameter is missing",
                ));
            }
            (_, Some(_)) => {
                return Err(fail(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                ));
            }
        }
        if !client.allows_grant(GrantType::AuthorizationCode) {
            return Err(fail(
                "unauthorized_client",
                "the client may not use the authorization code grant",
            ));
        }
        let pkce = match (&params.code_challenge, &params.code_challenge_method) {
            (Some(challenge), method) => Some(
                PkceChallenge::parse(
                    challenge,
                    method.as_deref(),
                    self.issuing.settings.allow_plain_pkce,
                )
                .map_err(|why| fail("invalid_request", why))?,
            ),
            (None, Some(_)) => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method was sent without code_challenge",
                ));
            }
            (None, None) if client.is_public() => {
                return Err(fail(
                    "invalid_request",
                    "public clients must send a PKCE code_challenge",
                ));
            }
            (None, None) => None,
        };
        // RFC 9449 §10: a SHA-256 thumbprint is 43 base64url characters.
        if let Some(jkt) = &params.dpop_jkt
            && (jkt.len() != 43
                || !jkt
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(fail(
                "invalid_request",
                "dpop_jkt must be a JWK SHA-256 thumbprint: 43 base64url characters",
            ));
        }
        let scopes = scope::parse(params.scope.as_deref(), self.dialect());
        if !scope::is_valid(&scopes) || !client.allows_scopes(&scopes) {
            return Err(fail(
                "invalid_scope",
                "the requested scope is malformed or not allowed for this client",
            ));
        }
        Ok(AuthorizationRequest {
            client,
            bound_redirect_uri: params.redirect_uri,
            redirect_to,
            state: params.state,
            scopes,
            pkce,
            dpop_jkt: params.dpop_jkt,
        })
    }

    /// Where the answer goes: the requested redirect URI if the client's
    /// policy allows it, else its only (GitHub: first) registered one.
    ///
    /// A registered URI is used without a request naming it only if the
    /// policy would allow it were it requested: a `Client` built in code (or
    /// read from a backend) may hold one whose query already names `code`,
    /// `state` or `error`, or one with a fragment, and the answer sent there
    /// would carry two of them. Such a registration gets a page instead.
    fn redirect_target(
        &self,
        client: &Client,
        params: &Params,
    ) -> Result<String, AuthorizationError> {
        let registered = client.redirect_uris();
        let usable = |uri: &&String| client.redirect_policy().allows(uri, uri);
        match &params.redirect_uri {
            Some(uri) if client.allows_redirect_uri(uri) => Ok(uri.clone()),
            Some(_) => Err(match (self.dialect(), registered.first().filter(usable)) {
                (Dialect::GitHub, Some(callback)) => {
                    let error_uri = format!(
                        "{}/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch",
                        self.issuing
                            .settings
                            .presentation
                            .error_uri_base
                            .as_deref()
                            .unwrap_or("")
                    );
                    AuthorizationError {
                        error: "redirect_uri_mismatch",
                        description: github::REDIRECT_URI_MISMATCH,
                        answer: Answer::Redirect(with_params(
                            callback,
                            &[
                                ("error", Some("redirect_uri_mismatch")),
                                ("error_description", Some(github::REDIRECT_URI_MISMATCH)),
                                ("error_uri", Some(&error_uri)),
                                ("state", params.state.as_deref()),
                            ],
                        )),
                    }
                }
                _ => AuthorizationError {
                    error: "invalid_request",
                    description: "the redirect_uri is not registered for this client",
                    answer: Answer::Page(StatusCode::BAD_REQUEST),
                },
            }),
            None => match (self.dialect(), registered) {
                (_, [only]) | (Dialect::GitHub, [only, ..]) if usable(&only) => Ok(only.clone()),
                (_, [_]) | (Dialect::GitHub, [_, ..]) => Err(AuthorizationError {
                    error: "invalid_request",
                    description: "the client's registered redirect URI cannot take the response: its query already names code, state or error, or it has a fragment",
                    answer: Answer::Page(StatusCode::BAD_REQUEST),
                }),
                _ => Err(AuthorizationError {
                    error: "invalid_request",
                    description: "the redirect_uri parameter is required: the client has no single registered redirect URI",
                    answer: Answer::Page(StatusCode::BAD_REQUEST),
                }),
            },
        }
    }

    /// The user `subject` approved `request`: mints a code bound to it and
    /// returns where to redirect the user agent.
    ///
    /// A store failure is logged and becomes a `500 server_error` page, so a
    /// handler needs one error type for both steps.
    pub async fn approve(
        &self,
        request: &AuthorizationRequest,
        subject: &str,
    ) -> Result<Approval, AuthorizationError> {
        let settings = &self.issuing.settings;
        let code = random_code()
            .map_err(|e| StoreError::with_source("no randomness for a code", e))
            .inspect_err(|error| tracing::error!(%error, "cannot mint a code"))?;
        let now = settings.clock.now();
        let record = CodeRecord {
            client_id: request.client.client_id().to_owned(),
            subject: subject.to_owned(),
            scopes: request.scopes.clone(),
            redirect_uri: request.bound_redirect_uri.clone(),
            pkce: request.pkce.clone(),
            issued_at: now,
            expires_at: now + settings.code_lifetime,
            dpop_jkt: request.dpop_jkt.clone(),
        };
        self.issuing
            .codes
            .issue(CodeKey::of(&code), record)
            .await
            .inspect_err(|error| tracing::error!(%error, "code store failed"))?;
        let location = with_params(
            &request.redirect_to,
            &[("code", Some(&code)), ("state", request.state.as_deref())],
        );
        Ok(Approval { code, location })
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

impl AuthorizationRequest {
    /// The client asking.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Where the answer will be sent.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_to
    }

    /// The `state` to send back.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The requested scopes.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The PKCE challenge.
    pub fn pkce(&self) -> Option<&PkceChallenge> {
        self.pkce.as_ref()
    }

    /// The DPoP key thumbprint the code will be bound to (`dpop_jkt`,
    /// RFC 9449 §10), when the request named one.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.dpop_jkt.as_deref()
    }

    /// The user declined: `access_denied` back to the client.
    pub fn deny(&self) -> Response<String> {
        redirect(with_params(
            &self.redirect_to,
            &[
                ("error", Some("access_denied")),
                ("error_description", Some("the user denied the request")),
                ("state", self.state.as_deref()),
            ],
        ))
    }
}

impl Approval {
    /// The code itself, for clients that are not browsers (tests, CLIs). It
    /// is a secret: do not log it.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The redirect URI with `code` and `state`. It contains the code: do
    /// not log it.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// A `302 Found` to [`location`](Self::location).
    ///
    /// (Named so it does not clash with axum's `IntoResponse`.)
    pub fn into_http_response(self) -> Response<String> {
        redirect(self.location)
    }
}

impl fmt::Debug for Approval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Approval(<redacted>)")
    }
}

impl AuthorizationError {
    /// The OAuth error code (`redirect_uri_mismatch`, `invalid_request`, ...).
    pub fn error(&self) -> &str {
        self.error
    }

    /// The description.
    pub fn description(&self) -> &str {
        self.description
    }

    /// Where the error is redirected to, or `None` when it is shown to the
    /// user directly.
    pub fn location(&self) -> Option<&str> {
        match &self.answer {
            Answer::Redirect(location) => Some(location),
            Answer::Page(_) => None,
        }
    }

    /// The answer for the user agent: a redirect to the client, or a plain
    /// text page.
    pub fn into_http_response(self) -> Response<String> {
        match self.answer {
            Answer::Redirect(location) => redirect(location),
            Answer::Page(status) => {
                let mut response = Response::new(format!("{}: {}\n", self.error, self.description));
                *response.status_mut() = status;
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response
            }
        }
    }
}

/// A store failure while approving: `500 server_error`, shown to the user.
impl From<StoreError> for AuthorizationError {
    fn from(_: StoreError) -> Self {
        Self {
            error: "server_error",
            description: "the authorization server could not complete the request",
            answer: Answer::Page(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl fmt::Display for AuthorizationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

impl std::error::Error for AuthorizationError {}

fn redirect(location: String) -> Response<String> {
    let mut response = Response::new(String::new());
    // The values are form-encoded and the base URI came from the client's
    // registration, so this only fails on a registration with bytes a header
    // cannot carry; such a URI cannot be redirected to at all.
    match HeaderValue::try_from(location) {
        Ok(value) => {
            *response.status_mut() = StatusCode::FOUND;
            response.headers_mut().insert(LOCATION, value);
        }
        Err(_) => *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
    }
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `base` with `params` appended to its query, form-encoded.
fn with_params(base: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{}", query.finish())
}
