//! GitHub's REST side, GHES-style under `/api/v3`: what an application calls
//! once it holds a token. `GET /api/v3/user` answers the demo user for a
//! live access token, as GitHub answers `GET /user`.

use std::{sync::Arc, time::SystemTime};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, Response, StatusCode, header},
};
use tokengate::store::CodeKey;

use crate::tokens::Lifecycle;

/// The path of the authenticated user (`GET /user` on github.com).
pub(crate) const USER_PATH: &str = "/api/v3/user";

/// Where GitHub's REST errors point.
const REST_DOCS: &str = "https://docs.github.com/rest";
const USER_DOCS: &str = "https://docs.github.com/rest/users/users#get-the-authenticated-user";

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

    /// GitHub's user object for `GET /user`, with URLs under `issuer`.
    fn json(&self, issuer: &str) -> serde_json::Value {
        let login = &self.login;
        let api = format!("{issuer}/api/v3/users/{login}");
        serde_json::json!({
            "login": login,
            "id": self.id,
            "node_id": format!("U_demo{}", self.id),
            "avatar_url": format!("{issuer}/avatars/u/{}", self.id),
            "gravatar_id": "",
            "url": api,
            "html_url": format!("{issuer}/{login}"),
            "followers_url": format!("{api}/followers"),
            "following_url": format!("{api}/following{{/other_user}}"),
            "gists_url": format!("{api}/gists{{/gist_id}}"),
            "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
            "subscriptions_url": format!("{api}/subscriptions"),
            "organizations_url": format!("{api}/orgs"),
            "repos_url": format!("{api}/repos"),
            "events_url": format!("{api}/events{{/privacy}}"),
            "received_events_url": format!("{api}/received_events"),
            "type": "User",
            "site_admin": false,
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
        })
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
