//! The token lifecycle endpoints the gate guards besides the token
//! endpoint: revocation (RFC 7009) and introspection (RFC 7662).
//!
//! The gate authenticates the caller there exactly as at the token endpoint
//! (every method, the lockout, the same failures), and answers for the
//! refresh tokens it keeps: a revocation revokes the token's whole family,
//! an introspection describes it. Any other token (an access token the
//! application minted) goes on to the inner service with a [`TokenAction`]
//! in the request's extensions, so the application only looks its own
//! token up:
//!
//! ```
//! use tokengate::lifecycle::{Introspection, TokenAction, TokenActionKind};
//!
//! fn handler(request: http::Request<()>) -> http::Response<bytes::Bytes> {
//!     let action = request.extensions().get::<TokenAction>().expect("behind the gate");
//!     match action.kind() {
//!         // Revoke `action.token()` if this client holds it, then answer
//!         // 200 whether it did or not (RFC 7009 §2.2).
//!         TokenActionKind::Revocation => http::Response::new(bytes::Bytes::new()),
//!         // Describe `action.token()`, or say it is not active.
//!         TokenActionKind::Introspection => Introspection::inactive().response(),
//!         _ => unreachable!(),
//!     }
//! }
//! ```
//!
//! A token unknown to both, another client's token at the revocation
//! endpoint, and a rotated, expired or revoked refresh token are answered
//! as the RFCs say: `200` with nothing revoked, `{"active": false}`.

use std::{
    fmt,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{
    HeaderValue, Method, Response,
    header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA},
};
use serde::Serialize;

use crate::client::Client;

/// Which endpoint a [`TokenAction`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenActionKind {
    /// RFC 7009: revoke the token. Answer `200` whether or not it was
    /// found (§2.2): the client only wants it gone.
    Revocation,
    /// RFC 7662: describe the token, or answer `{"active": false}`.
    Introspection,
    /// GitHub's `POST /applications/{client_id}/token`: describe the
    /// client's token (GitHub's authorization JSON), or answer `404`.
    CheckToken,
    /// GitHub's `PATCH /applications/{client_id}/token`: replace the
    /// client's token by a new one, answered as for a check; `404` if
    /// unknown.
    ResetToken,
    /// GitHub's `DELETE /applications/{client_id}/token`: delete the
    /// client's token; `204`, or `404` if unknown.
    DeleteToken,
    /// GitHub's `DELETE /applications/{client_id}/grant`: revoke the whole
    /// authorization the token belongs to (every token of that user for
    /// the client, refresh tokens included); `204`, or `404` if unknown.
    DeleteGrant,
}

/// The action `method` on `path` asks for under `prefix`, and the client id
/// the path names; `None` for any other path or method.
pub(crate) fn application_route<'a>(
    prefix: &str,
    method: &Method,
    path: &'a str,
) -> Option<(TokenActionKind, &'a str)> {
    let rest = path.strip_prefix(prefix)?.strip_prefix("/applications/")?;
    let (client_id, resource) = rest.split_once('/')?;
    if client_id.is_empty() {
        return None;
    }
    let kind = match (resource, method) {
        ("token", &Method::POST) => TokenActionKind::CheckToken,
        ("token", &Method::PATCH) => TokenActionKind::ResetToken,
        ("token", &Method::DELETE) => TokenActionKind::DeleteToken,
        ("grant", &Method::DELETE) => TokenActionKind::DeleteGrant,
        _ => return None,
    };
    Some((kind, client_id))
}

/// Whether `path` is under these endpoints at all (any method).
pub(crate) fn under_application_api(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with("/applications/"))
}

/// The kind of token the caller says it sent (`token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenTypeHint {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

impl TokenTypeHint {
    /// The hint named `name`, if it is one of the two RFC 7009 registers.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "access_token" => Some(Self::AccessToken),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// A revocation or introspection request the gate authenticated and hands
/// on, in the request's extensions: its token is none of the refresh
/// tokens the gate keeps, so it is the application's to look up.
///
/// Cloning is cheap (one reference count). `Debug` never shows the token.
#[derive(Clone)]
pub struct TokenAction {
    inner: Arc<Inner>,
}

struct Inner {
    kind: TokenActionKind,
    client: Arc<Client>,
    token: String,
    hint: Option<TokenTypeHint>,
}

impl TokenAction {
    pub(crate) fn new(
        kind: TokenActionKind,
        client: Arc<Client>,
        token: String,
        hint: Option<TokenTypeHint>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                client,
                token,
                hint,
            }),
        }
    }

    /// Revocation or introspection.
    pub fn kind(&self) -> TokenActionKind {
        self.inner.kind
    }

    /// The authenticated caller: at the revocation endpoint, the client
    /// whose token it must be (revoke only that client's tokens); at the
    /// introspection endpoint, a client registered to introspect
    /// ([`Client::may_introspect`]).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The token, as the caller sent it. A secret: never log it. It holds
    /// no control character (no token can): the gate answers for such a
    /// one itself, as for an invalid token.
    pub fn token(&self) -> &str {
        &self.inner.token
    }

    /// The caller's hint at the token's kind; only a hint (RFC 7009 §2.1):
    /// look the token up as every kind you keep when it is not found as
    /// that one.
    pub fn token_type_hint(&self) -> Option<TokenTypeHint> {
        self.inner.hint
    }
}

impl fmt::Debug for TokenAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAction")
            .field("kind", &self.inner.kind)
            .field("client_id", &self.inner.client.client_id())
            .field("token", &"<redacted>")
            .field("token_type_hint", &self.inner.hint)
            .finish()
    }
}

/// An introspection answer (RFC 7662 §2.2): what the gate answers for its
/// refresh tokens, and what an application answers for its own tokens.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tokengate::lifecycle::Introspection;
///
/// let answer = Introspection::active("app")
///     .scope(&["repo".to_owned()])
///     .subject("octocat")
///     .expires_at(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000));
/// let json: serde_json::Value = serde_json::from_slice(answer.response().body()).unwrap();
/// assert_eq!(json["active"], true);
/// assert_eq!(json["exp"], 2_000_000_000);
/// assert_eq!(Introspection::inactive().to_json(), r#"{"active":false}"#);
/// ```
#[derive(Debug, Clone, Default, Serialize)]
pub struct Introspection {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation>,
}

/// RFC 7800 / RFC 9449 §6.2: the key a token is bound to.
#[derive(Debug, Clone, Serialize)]
struct Confirmation {
    jkt: String,
}

impl Introspection {
    /// `{"active": false}`: unknown, expired, revoked, or not the caller's
    /// business. Nothing else is said (RFC 7662 §2.2).
    pub fn inactive() -> Self {
        Self::default()
    }

    /// An active token issued to `client_id`.
    pub fn active(client_id: &str) -> Self {
        Self {
            active: true,
            client_id: Some(client_id.to_owned()),
            ..Self::default()
        }
    }

    /// Its scopes (`scope`, space-separated).
    #[must_use]
    pub fn scope(mut self, scopes: &[String]) -> Self {
        self.scope = Some(scopes.join(" "));
        self
    }

    /// Its kind (`token_type`): `Bearer`, `DPoP`, `refresh_token`, ...
    #[must_use]
    pub fn token_type(mut self, token_type: &str) -> Self {
        self.token_type = Some(token_type.to_owned());
        self
    }

    /// When it expires (`exp`, seconds since the epoch).
    #[must_use]
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.exp = Some(seconds(at));
        self
    }

    /// When it was issued (`iat`).
    #[must_use]
    pub fn issued_at(mut self, at: SystemTime) -> Self {
        self.iat = Some(seconds(at));
        self
    }

    /// The user it acts for (`sub`).
    #[must_use]
    pub fn subject(mut self, subject: &str) -> Self {
        self.sub = Some(subject.to_owned());
        self
    }

    /// Who issued it (`iss`).
    #[must_use]
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.iss = Some(issuer.to_owned());
        self
    }

    /// The thumbprint of the DPoP key it is bound to (`cnf.jkt`).
    #[must_use]
    pub fn dpop_jkt(mut self, jkt: &str) -> Self {
        self.cnf = Some(Confirmation {
            jkt: jkt.to_owned(),
        });
        self
    }

    /// Whether the token is active.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The answer as JSON.
    pub fn to_json(&self) -> String {
        // Strings, numbers and booleans always serialize.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"active":false}"#.to_owned())
    }

    /// The HTTP answer: `200`, JSON, and no caching (it describes a
    /// credential).
    pub fn response(&self) -> Response<Bytes> {
        no_store(Response::new(Bytes::from(self.to_json())), true)
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` on `response`, and a
/// JSON content type when it has a body.
pub(crate) fn no_store(mut response: Response<Bytes>, json: bool) -> Response<Bytes> {
    let headers = response.headers_mut();
    if json {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_routes_and_nothing_else() {
        let at = |method: Method, path| application_route("/api/v3", &method, path);
        assert_eq!(
            at(Method::POST, "/api/v3/applications/abc/token"),
            Some((TokenActionKind::CheckToken, "abc"))
        );
        assert_eq!(
            at(Method::PATCH, "/api/v3/applications/abc/token"),
            Some((TokenActionKind::ResetToken, "abc"))
        );
        assert_eq!(
            at(Method::DELETE, "/api/v3/applications/abc/token"),
            Some((TokenActionKind::DeleteToken, "abc"))
        );
        assert_eq!(
            at(Method::DELETE, "/api/v3/applications/abc/grant"),
            Some((TokenActionKind::DeleteGrant, "abc"))
        );
        for (method, path) in [
            (Method::GET, "/api/v3/applications/abc/token"),
            (Method::POST, "/api/v3/applications/abc/grant"),
            (Method::PATCH, "/api/v3/applications/abc/grant"),
            (Method::POST, "/api/v3/applications//token"),
            (Method::POST, "/api/v3/applications/abc/token/x"),
            (Method::POST, "/api/v3/applications/abc/tokens"),
            (Method::POST, "/api/v3/applications/abc"),
            (Method::POST, "/applications/abc/token"),
            (Method::POST, "/api/v4/applications/abc/token"),
        ] {
            assert_eq!(at(method.clone(), path), None, "{method} {path}");
        }
        assert_eq!(
            application_route("", &Method::POST, "/applications/abc/token"),
            Some((TokenActionKind::CheckToken, "abc"))
        );
        assert!(under_application_api("/api/v3", "/api/v3/applications/x"));
        assert!(!under_application_api("/api/v3", "/api/v3/applicationsx"));
        assert!(!under_application_api("/api/v3", "/api/v3/user"));
    }
}
