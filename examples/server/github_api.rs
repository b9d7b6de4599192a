//! GitHub's REST side, GHES-style under `/api/v3`: what an application calls
//! once it holds a token. `GET /api/v3/user` answers the demo user for a
//! live access token, as GitHub answers `GET /user`; the OAuth-app
//! endpoints (`/api/v3/applications/{client_id}/token` and `/grant`) check,
//! reset and delete a token and revoke an authorization, behind the gate,
//! which authenticated the client (`Builder::application_api`).

use std::{sync::Arc, time::SystemTime};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Response, StatusCode, header},
};
use sha2::{Digest, Sha256};
use tokengate::{TokenAction, lifecycle::TokenActionKind, store::CodeKey};

use crate::tokens::{Described, Lifecycle};

/// The path of the authenticated user (`GET /user` on github.com).
pub(crate) const USER_PATH: &str = "/api/v3/user";

/// The prefix GitHub Enterprise Server puts before its REST paths; the
/// gate guards the OAuth-app endpoints under it.
pub(crate) const API_PREFIX: &str = "/api/v3";

/// The OAuth-app endpoints' routes (axum's syntax).
pub(crate) const APPLICATION_TOKEN: &str = "/api/v3/applications/{client_id}/token";
pub(crate) const APPLICATION_GRANT: &str = "/api/v3/applications/{client_id}/grant";

/// Where GitHub's REST errors point.
const REST_DOCS: &str = "https://docs.github.com/rest";
const USER_DOCS: &str = "https://docs.github.com/rest/users/users#get-the-authenticated-user";
const APPLICATION_DOCS: &str = "https://docs.github.com/rest/apps/oauth-applications";

/// The demo's one user (`--user`), as GitHub describes a user.
pub(crate) struct DemoUser {
    pub(crate) login: String,
    /// Stable for a login, in every process: the first four bytes of its
    /// SHA-256, so two demo processes describe one user alike.
    pub(crate) id: u32,
}

impl DemoUser {
    pub(crate) fn new(login: &str) -> Self {
        let digest = CodeKey::of(login);
        let id = u32::from_be_bytes([
            digest.as_bytes()[0],
            digest.as_bytes()[1],
            digest.as_bytes()[2],
            digest.as_bytes()[3],
        ]) & 0x7fff_ffff;
        Self {
            login: login.to_owned(),
            id: id.max(1),
        }
    }

    /// GitHub's "simple user", as an authorization names its user.
    fn simple(&self, issuer: &str) -> serde_json::Value {
        let login = &self.login;
        serde_json::json!({
            "login": login,
            "id": self.id,
            "node_id": format!("U_demo{}", self.id),
            "avatar_url": format!("{issuer}/avatars/u/{}", self.id),
            "url": format!("{issuer}/api/v3/users/{login}"),
            "html_url": format!("{issuer}/{login}"),
            "type": "User",
            "site_admin": false,
        })
    }

    /// GitHub's user object for `GET /user`, with URLs under `issuer`: the
    /// simple user and the profile.
    fn json(&self, issuer: &str) -> serde_json::Value {
        let login = &self.login;
        let api = format!("{issuer}/api/v3/users/{login}");
        let mut user = self.simple(issuer);
        let profile = serde_json::json!({
            "gravatar_id": "",
            "followers_url": format!("{api}/followers"),
            "following_url": format!("{api}/following{{/other_user}}"),
            "gists_url": format!("{api}/gists{{/gist_id}}"),
            "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
            "subscriptions_url": format!("{api}/subscriptions"),
            "organizations_url": format!("{api}/orgs"),
            "repos_url": format!("{api}/repos"),
            "events_url": format!("{api}/events{{/privacy}}"),
            "received_events_url": format!("{api}/received_events"),
            "name": login,
            "company": null,
            "blog": "",
            "location": null,
            "email": format!("{login}@users.noreply.example.com"),
            "hireable": null,
            "bio": null,
            "twitter_username": null,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        });
        if let (Some(user), serde_json::Value::Object(profile)) = (user.as_object_mut(), profile) {
            user.extend(profile);
        }
        user
    }
}

/// What `GET /api/v3/user` needs: the token registry and the user.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) lifecycle: Lifecycle,
    pub(crate) user: Arc<DemoUser>,
}

/// `GET /api/v3/user` with `Authorization: token T` or `Bearer T`: the demo
/// user, with the token's scopes in `X-OAuth-Scopes`; `401` with GitHub's
/// `Bad credentials` for a token that is unknown, expired, revoked, of a
/// revoked refresh family, or bound to a DPoP key (GitHub has no DPoP, and
/// a bound token presented as a bearer token proves nothing).
pub(crate) async fn user(State(api): State<Api>, headers: HeaderMap) -> Response<Body> {
    let Some(token) = presented_token(&headers) else {
        return rest_error(
            StatusCode::UNAUTHORIZED,
            "Requires authentication",
            USER_DOCS,
        );
    };
    let described = match api.lifecycle.live(token, SystemTime::now()).await {
        Ok(Some(described)) if !described.is_dpop_bound() => described,
        Ok(_) => return rest_error(StatusCode::UNAUTHORIZED, "Bad credentials", REST_DOCS),
        Err(()) => {
            return rest_error(StatusCode::INTERNAL_SERVER_ERROR, "Server Error", REST_DOCS);
        }
    };
    let body = api.user.json(&api.lifecycle.issuer).to_string();
    let scopes = described.scopes().join(", ");
    let mut response = json_response(StatusCode::OK, body);
    let headers = response.headers_mut();
    if let Ok(scopes) = HeaderValue::from_str(&scopes) {
        headers.insert("x-oauth-scopes", scopes);
    }
    headers.insert("x-accepted-oauth-scopes", HeaderValue::from_static(""));
    response
}

/// GitHub's OAuth-app endpoints, after the gate authenticated the client
/// the path names and handed the token over:
///
/// - `POST .../token` checks it: GitHub's authorization JSON (`token`,
///   `scopes`, `app.client_id`, `user.login`, `expires_at`, ...);
/// - `PATCH .../token` resets it: the same, with a new token, and the old
///   one dead;
/// - `DELETE .../token` deletes it: `204`;
/// - `DELETE .../grant` revokes the whole authorization it belongs to:
///   every access token of that user for that client here, the refresh
///   families of those tokens in the shared store, and any refresh token
///   of theirs issued before now at its next use here; `204`.
///
/// A token that is not a live access token of that client: `404`, as
/// GitHub answers.
pub(crate) async fn applications(State(api): State<Api>, request: Request) -> Response<Body> {
    let Some(action) = request.extensions().get::<TokenAction>() else {
        // Behind the gate this cannot happen: refuse rather than act.
        return rest_error(StatusCode::INTERNAL_SERVER_ERROR, "Server Error", REST_DOCS);
    };
    let now = SystemTime::now();
    let client_id = action.client().client_id();
    let described = match api.lifecycle.live(action.token(), now).await {
        Ok(Some(described)) if described.client_id() == client_id => described,
        Ok(_) => return rest_error(StatusCode::NOT_FOUND, "Not Found", APPLICATION_DOCS),
        Err(()) => return rest_error(StatusCode::INTERNAL_SERVER_ERROR, "Server Error", REST_DOCS),
    };
    let tokens = &api.lifecycle.tokens;
    match action.kind() {
        TokenActionKind::CheckToken => authorization(&api, action.token(), &described),
        TokenActionKind::ResetToken => {
            let fresh = format!("gho_{}", crate::random_hex::<20>());
            match tokens.replace(action.token(), client_id, &fresh, now) {
                Some(reset) => authorization(&api, &fresh, &reset),
                None => rest_error(StatusCode::NOT_FOUND, "Not Found", APPLICATION_DOCS),
            }
        }
        TokenActionKind::DeleteToken => {
            if tokens.revoke(action.token(), client_id) {
                no_content()
            } else {
                rest_error(StatusCode::NOT_FOUND, "Not Found", APPLICATION_DOCS)
            }
        }
        TokenActionKind::DeleteGrant => {
            let Some(subject) = described.subject() else {
                // A client-credentials token: no user's authorization.
                tokens.revoke(action.token(), client_id);
                return no_content();
            };
            for family in tokens.revoke_grant(client_id, subject, now) {
                if let Err(error) = (api.lifecycle.revoke_family)(family.to_string()).await {
                    tracing::error!(%error, "could not revoke a refresh family of a revoked grant");
                    return rest_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Server Error",
                        REST_DOCS,
                    );
                }
            }
            no_content()
        }
        _ => rest_error(StatusCode::NOT_FOUND, "Not Found", APPLICATION_DOCS),
    }
}

/// GitHub's authorization JSON for `token`, as its check and reset answer.
fn authorization(api: &Api, token: &str, described: &Described) -> Response<Body> {
    let issuer = &api.lifecycle.issuer;
    let (issued_at, expires_at) = described.times();
    let hashed = hex::encode(Sha256::digest(token.as_bytes()));
    let last_eight = &token[token.len().saturating_sub(8)..];
    // Stable for a token, as GitHub's authorization id is for its grant.
    let id = u32::from_str_radix(&hashed[..7], 16).unwrap_or(1).max(1);
    let client_id = described.client_id();
    let body = serde_json::json!({
        "id": id,
        "url": format!("{issuer}/api/v3/authorizations/{id}"),
        "scopes": described.scopes(),
        "token": token,
        "token_last_eight": last_eight,
        "hashed_token": hashed,
        "app": {
            "url": issuer.to_string(),
            "name": client_id,
            "client_id": client_id,
        },
        "note": null,
        "note_url": null,
        "updated_at": iso8601(issued_at),
        "created_at": iso8601(issued_at),
        "fingerprint": null,
        "expires_at": iso8601(expires_at),
        "user": described.subject().map(|_| api.user.simple(issuer)),
        "installation": null,
    })
    .to_string();
    json_response(StatusCode::OK, body)
}

/// GitHub's times: ISO 8601 in UTC, to the second.
fn iso8601(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// The token of `Authorization: token T` or `Authorization: Bearer T`
/// (either scheme in any case), as GitHub takes both.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    let known = scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer");
    (known && !token.is_empty() && !token.contains(' ')).then_some(token)
}

/// GitHub's REST error: `{"message", "documentation_url", "status"}`.
pub(crate) fn rest_error(status: StatusCode, message: &str, docs: &str) -> Response<Body> {
    let body = serde_json::json!({
        "message": message,
        "documentation_url": docs,
        "status": status.as_str(),
    })
    .to_string();
    json_response(status, body)
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        "x-github-media-type",
        HeaderValue::from_static("github.v3; format=json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}
