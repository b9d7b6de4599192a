//! The demo server driven by the real [`oauth2`] crate (5.x, over its
//! `reqwest` client), in both dialects: the authorization URL oauth2 builds
//! (PKCE S256, a random CSRF token as `state`), the demo's 302 read by hand,
//! `exchange_code(..).set_pkce_verifier(..)`, the refresh token exchanged
//! (and rotated), and the error paths as oauth2's typed errors.
//!
//! # oauth2 and GitHub's 200-status errors
//!
//! What running oauth2 5.0.0 against the GitHub dialect shows (each point is
//! asserted below):
//!
//! - oauth2 sends `Accept: application/json` on every token request, so
//!   GitHub answers JSON, errors included. Without that header GitHub answers
//!   form-urlencoded and oauth2 refuses even a successful exchange:
//!   `RequestTokenError::Other("unexpected response Content-Type: ..,
//!   should be `application/json`")`.
//! - oauth2 tells a token from an error by the status alone: anything but 200
//!   is parsed as an error response (`ServerResponse`), a 200 as a token
//!   (once its `Content-Type` is JSON); the body is never consulted. So
//!   GitHub's 200 errors (a wrong secret, a replayed code) do not come back
//!   as `ServerResponse` but as `RequestTokenError::Parse`: serde's
//!   "missing field `access_token`" at the root, with GitHub's error JSON
//!   only in the raw bytes the error carries.
//! - Typed errors take a small wrapper around the HTTP client
//!   ([`github_aware`]): a 200 whose JSON body has an `error` member becomes
//!   a 400 before oauth2 reads it. Then `incorrect_client_credentials`,
//!   `bad_verification_code` and `bad_refresh_token` arrive as
//!   `ServerResponse` with `BasicErrorResponseType::Extension(..)` (they are
//!   not RFC 6749 codes), description and `error_uri` intact. (A server
//!   built with tokengate could instead answer GitHub-dialect errors with
//!   400 through `Builder::github_error_status`, at the cost of no longer
//!   behaving like GitHub; the demo keeps GitHub's 200.)
//! - GitHub joins granted scopes with commas (`scope=repo,user`) and oauth2
//!   splits on spaces, so `scopes()` is the one `Scope("repo,user")`; the
//!   RFC 6749 dialect gives `["repo", "user"]`.
//!
//! The RFC 6749 dialect needs none of this: 401 `invalid_client` and 400
//! `invalid_grant` are `ServerResponse`s with `InvalidClient` and
//! `InvalidGrant`.

mod common;

use std::{error::Error, time::Duration};

use common::demo::{Server, start};
use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, HttpClientError, HttpRequest, HttpResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, StandardErrorResponse, TokenResponse,
    TokenUrl,
    basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse, BasicTokenType},
    http::{StatusCode, header},
    reqwest,
    url::Url,
};

/// A loopback redirect URI: the demo client accepts any port.
const REDIRECT: &str = "http://127.0.0.1:4567/callback";

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;
type TokenError<E> = RequestTokenError<E, StandardErrorResponse<BasicErrorResponseType>>;
type ReqwestError = HttpClientError<reqwest::Error>;

fn client(server: &Server, secret: &str, auth: AuthType) -> Client {
    BasicClient::new(ClientId::new("demo-client".to_owned()))
        .set_client_secret(ClientSecret::new(secret.to_owned()))
        .set_auth_uri(
            AuthUrl::new(format!("http://{}/login/oauth/authorize", server.addr)).unwrap(),
        )
        .set_token_uri(
            TokenUrl::new(format!("http://{}/login/oauth/access_token", server.addr)).unwrap(),
        )
        .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap())
        .set_auth_type(auth)
}

/// oauth2's advice: never follow redirects from the token endpoint (SSRF).
/// It also lets the test read the authorize endpoint's 302 itself.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The authorization request built by oauth2 (PKCE S256, a random CSRF
/// token, two scopes), sent to the demo, whose 302 is followed by hand: the
/// code from its `Location`, after checking `state` against the CSRF token.
async fn authorize(
    client: &Client,
    http: &reqwest::Client,
) -> (AuthorizationCode, PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("repo".to_owned()))
        .add_scope(Scope::new("user".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert!(query.contains(&("code_challenge_method".to_owned(), "S256".to_owned())));
    assert!(query.contains(&("response_type".to_owned(), "code".to_owned())));

    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    let location = Url::parse(location).unwrap();
    assert_eq!(
        location.as_str().split('?').next(),
        Some(REDIRECT),
        "{location}"
    );
    let params: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {location}"))
    };
    assert_eq!(
        &param("state"),
        csrf.secret(),
        "state must echo the CSRF token"
    );
    (AuthorizationCode::new(param("code")), verifier)
}

fn copy(verifier: &PkceCodeVerifier) -> PkceCodeVerifier {
    PkceCodeVerifier::new(verifier.secret().clone())
}

/// The server's typed error, or a panic naming what came back instead.
fn server_error<E: Error>(
    result: Result<BasicTokenResponse, TokenError<E>>,
) -> StandardErrorResponse<BasicErrorResponseType> {
    match result {
        Err(RequestTokenError::ServerResponse(error)) => error,
        Err(other) => panic!("expected ServerResponse, got {other:?}"),
        Ok(token) => panic!("expected an error, got a token: {token:?}"),
    }
}

fn assert_token(token: &BasicTokenResponse, scopes: &[&str]) {
    assert!(token.access_token().secret().starts_with("gho_"));
    assert_eq!(token.token_type(), &BasicTokenType::Bearer);
    assert_eq!(token.expires_in(), Some(Duration::from_secs(8 * 3600)));
    assert!(token.refresh_token().is_some(), "no refresh token");
    let scopes: Vec<Scope> = scopes.iter().map(|s| Scope::new((*s).to_owned())).collect();
    assert_eq!(token.scopes(), Some(&scopes));
}

#[tokio::test]
async fn rfc6749_dialect_round_trip_and_typed_errors() {
    let server = start(&["--dialect", "rfc6749"]);
    let http = http();
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = client(&server, "demo-secret", auth.clone());
        let (code, verifier) = authorize(&client, &http).await;
        let token = client
            .exchange_code(code.clone())
            .set_pkce_verifier(copy(&verifier))
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e:?}"));
        assert_token(&token, &["repo", "user"]);

        // The refresh token, rotated: a new pair, the old token spent.
        let refresh = token.refresh_token().unwrap();
        let refreshed = client
            .exchange_refresh_token(refresh)
            .request_async(&http)
            .await
            .unwrap();
        assert_token(&refreshed, &["repo", "user"]);
        assert_ne!(
            refreshed.access_token().secret(),
            token.access_token().secret()
        );
        assert_ne!(
            refreshed.refresh_token().unwrap().secret(),
            refresh.secret()
        );

        // The same code again: 400 invalid_grant.
        let error = server_error(
            client
                .exchange_code(code)
                .set_pkce_verifier(verifier)
                .request_async(&http)
                .await,
        );
        assert_eq!(error.error(), &BasicErrorResponseType::InvalidGrant);
        assert!(error.error_description().is_some());

        // The rotated-away refresh token: invalid_grant (and its family is
        // revoked, the successor with it).
        let error = server_error(
            client
                .exchange_refresh_token(refresh)
                .request_async(&http)
                .await,
        );
        assert_eq!(error.error(), &BasicErrorResponseType::InvalidGrant);
        let error = server_error(
            client
                .exchange_refresh_token(refreshed.refresh_token().unwrap())
                .request_async(&http)
                .await,
        );
        assert_eq!(error.error(), &BasicErrorResponseType::InvalidGrant);

        // A wrong secret: 401 invalid_client.
        let wrong = self::client(&server, "not-the-secret", auth);
        let (code, verifier) = authorize(&wrong, &http).await;
        let error = server_error(
            wrong
                .exchange_code(code)
                .set_pkce_verifier(verifier)
                .request_async(&http)
                .await,
        );
        assert_eq!(error.error(), &BasicErrorResponseType::InvalidClient);
    }
}

#[tokio::test]
async fn github_dialect_round_trip() {
    let server = start(&[]);
    let http = http();
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = client(&server, "demo-secret", auth.clone());
        let (code, verifier) = authorize(&client, &http).await;
        let token = client
            .exchange_code(code)
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e:?}"));
        // GitHub joins scopes with commas; oauth2 splits on spaces.
        assert_token(&token, &["repo,user"]);
        let refreshed = client
            .exchange_refresh_token(token.refresh_token().unwrap())
            .request_async(&http)
            .await
            .unwrap();
        assert_token(&refreshed, &["repo,user"]);
    }
}

/// Plain oauth2 against GitHub's errors: status 200, so it reads the body
/// as a token response and fails on the missing `access_token`. The error is
/// a `Parse`, not a `ServerResponse`; GitHub's error is only in its bytes.
#[tokio::test]
async fn github_dialect_errors_reach_plain_oauth2_as_parse_errors() {
    let server = start(&[]);
    let http = http();
    let cases = [
        ("not-the-secret", false, "incorrect_client_credentials"),
        ("demo-secret", true, "bad_verification_code"),
    ];
    for (secret, replay, expected) in cases {
        let client = client(&server, secret, AuthType::BasicAuth);
        let (code, verifier) = authorize(&client, &http).await;
        if replay {
            client
                .exchange_code(code.clone())
                .set_pkce_verifier(copy(&verifier))
                .request_async(&http)
                .await
                .unwrap();
        }
        let result = client
            .exchange_code(code)
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await;
        let Err(RequestTokenError::Parse(error, body)) = result else {
            panic!("expected a Parse error, got {result:?}");
        };
        assert_eq!(error.path().to_string(), ".");
        assert!(
            error
                .inner()
                .to_string()
                .starts_with("missing field `access_token`"),
            "{error}"
        );
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], expected, "{body}");
    }
}

/// oauth2's reqwest client with one adjustment for GitHub: a 200 answer
/// whose JSON body has an `error` member gets status 400 before oauth2 sees
/// it, so oauth2 parses it as the error response it is.
async fn github_aware(
    http: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, ReqwestError> {
    let mut response = http.call(request).await?;
    let is_error = serde_json::from_slice::<serde_json::Value>(response.body())
        .is_ok_and(|body| body.get("error").is_some());
    if response.status() == StatusCode::OK && is_error {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

#[tokio::test]
async fn github_dialect_errors_are_typed_with_a_status_adapter() {
    let server = start(&[]);
    let http = http();
    let github = |request: HttpRequest| github_aware(&http, request);

    // A valid exchange is untouched by the adapter.
    let client = client(&server, "demo-secret", AuthType::BasicAuth);
    let (code, verifier) = authorize(&client, &http).await;
    let token = client
        .exchange_code(code.clone())
        .set_pkce_verifier(copy(&verifier))
        .request_async(&github)
        .await
        .unwrap();
    assert_token(&token, &["repo,user"]);

    // The replayed code.
    let error = server_error(
        client
            .exchange_code(code)
            .set_pkce_verifier(verifier)
            .request_async(&github)
            .await,
    );
    assert_eq!(
        error.error(),
        &BasicErrorResponseType::Extension("bad_verification_code".to_owned())
    );
    assert_eq!(
        error.error_description().map(String::as_str),
        Some("The code passed is incorrect or expired.")
    );
    assert_eq!(
        error.error_uri().map(String::as_str),
        Some(
            "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"
        )
    );

    // The wrong secret, sent both ways.
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let wrong = self::client(&server, "not-the-secret", auth);
        let (code, verifier) = authorize(&wrong, &http).await;
        let error = server_error(
            wrong
                .exchange_code(code)
                .set_pkce_verifier(verifier)
                .request_async(&github)
                .await,
        );
        assert_eq!(
            error.error(),
            &BasicErrorResponseType::Extension("incorrect_client_credentials".to_owned())
        );
    }

    // The replay above revoked the refresh token of the first exchange
    // (RFC 6749 §4.1.2): it is refused, as bad_refresh_token.
    let revoked = token.refresh_token().unwrap();
    let error = server_error(
        client
            .exchange_refresh_token(revoked)
            .request_async(&github)
            .await,
    );
    assert_eq!(
        error.error(),
        &BasicErrorResponseType::Extension("bad_refresh_token".to_owned())
    );

    // A rotated-away refresh token, from a fresh code: bad_refresh_token.
    let (code, verifier) = authorize(&client, &http).await;
    let token = client
        .exchange_code(code)
        .set_pkce_verifier(verifier)
        .request_async(&github)
        .await
        .unwrap();
    let refresh = token.refresh_token().unwrap();
    client
        .exchange_refresh_token(refresh)
        .request_async(&github)
        .await
        .unwrap();
    let error = server_error(
        client
            .exchange_refresh_token(refresh)
            .request_async(&github)
            .await,
    );
    assert_eq!(
        error.error(),
        &BasicErrorResponseType::Extension("bad_refresh_token".to_owned())
    );
}

/// oauth2 asks for JSON on every token request, which is what makes GitHub
/// answer JSON at all: without `Accept: application/json` GitHub answers
/// form-urlencoded, and oauth2 refuses even a successful exchange.
#[tokio::test]
async fn github_dialect_needs_the_accept_header_oauth2_sends() {
    let server = start(&[]);
    let http = http();
    let without_accept = |mut request: HttpRequest| {
        assert_eq!(request.headers()[header::ACCEPT], "application/json");
        request.headers_mut().remove(header::ACCEPT);
        http.call(request)
    };
    let client = client(&server, "demo-secret", AuthType::BasicAuth);
    let (code, verifier) = authorize(&client, &http).await;
    let result = client
        .exchange_code(code)
        .set_pkce_verifier(verifier)
        .request_async(&without_accept)
        .await;
    let Err(RequestTokenError::Other(message)) = result else {
        panic!("expected Other, got {result:?}");
    };
    assert_eq!(
        message,
        "unexpected response Content-Type: \"application/x-www-form-urlencoded; charset=utf-8\", should be `application/json`"
    );
}
