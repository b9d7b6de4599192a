//! Answering a refused request: the dialect's error, in the negotiated
//! format, with the headers RFC 6749 §5.2 asks for.

use std::borrow::Cow;

use bytes::Bytes;
use http::{
    HeaderValue, Response, StatusCode,
    header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE},
};

use crate::{
    error::{Failure, Rejection},
    format::{FieldValue, ResponseFormat},
    policy::PolicyError,
    settings::Settings,
    telemetry::Endpoint,
};

/// The response for `failure`, and a log event naming it. `client_id` is
/// the id the request claimed, if any; secrets and codes are never logged.
pub(crate) fn refuse(
    settings: &Settings,
    failure: Failure,
    format: ResponseFormat,
    client_id: Option<&str>,
) -> Response<Bytes> {
    refuse_at(settings, Endpoint::Token, failure, format, client_id)
}

/// [`refuse`] at `endpoint`, which may present errors its own way.
pub(crate) fn refuse_at(
    settings: &Settings,
    endpoint: Endpoint,
    failure: Failure,
    format: ResponseFormat,
    client_id: Option<&str>,
) -> Response<Bytes> {
    if endpoint == Endpoint::Application {
        let response = rest_refusal(failure);
        tracing::info!(
            client_id = client_id.map(loggable),
            status = %response.status(),
            "OAuth-app API request refused"
        );
        return response;
    }
    let rejection = settings.presentation_at(endpoint).reject(failure);
    let client_id = client_id.map(loggable);
    if rejection.status().is_server_error() {
        tracing::warn!(error = rejection.error(), client_id, "token request failed");
    } else {
        tracing::info!(
            error = rejection.error(),
            client_id,
            "token request refused"
        );
    }
    render(rejection, format, &settings.www_authenticate)
}

/// Where GitHub's answers on its OAuth-app REST endpoints point.
const APPLICATION_DOCS: &str = "https://docs.github.com/rest/apps/oauth-applications";

/// A refusal as GitHub's REST API answers it: `{"message",
/// "documentation_url", "status"}`. A client that does not authenticate,
/// or is not the one the path names, gets `404 Not Found`, as on GitHub
/// (nothing tells it whether the client exists); a missing token `422`.
pub(crate) fn rest_refusal(failure: Failure) -> Response<Bytes> {
    let (status, message) = match failure {
        Failure::TokenMissing => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid request.\n\n\"access_token\" wasn't supplied.",
        ),
        Failure::Malformed(_) | Failure::Repeated(_) | Failure::JsonBody => {
            (StatusCode::BAD_REQUEST, "Problems parsing JSON")
        }
        Failure::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"),
        Failure::LockedOut(_) => (
            StatusCode::TOO_MANY_REQUESTS,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        ),
        Failure::Store => (StatusCode::INTERNAL_SERVER_ERROR, "Server Error"),
        _ => (StatusCode::NOT_FOUND, "Not Found"),
    };
    let body = serde_json::json!({
        "message": message,
        "documentation_url": APPLICATION_DOCS,
        "status": status.as_str(),
    })
    .to_string();
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Failure::LockedOut(seconds) = failure {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The response for a policy's refusal of `client_id`'s request.
pub(crate) fn refuse_by_policy(
    settings: &Settings,
    error: PolicyError,
    format: ResponseFormat,
    client_id: &str,
) -> Response<Bytes> {
    let presentation = &settings.presentation;
    let status = error
        .status
        .unwrap_or_else(|| presentation.default_status());
    // A relative documentation path gets the configured base, as the
    // built-in errors do.
    let uri = match (error.uri, &presentation.error_uri_base) {
        (Some(uri), Some(base)) if uri.starts_with('/') => Some(Cow::Owned(format!("{base}{uri}"))),
        (uri, _) => uri,
    };
    let rejection = Rejection::named(status, error.error, error.description, uri);
    let client_id = loggable(client_id);
    tracing::info!(
        error = rejection.error(),
        client_id,
        "token request refused by a policy"
    );
    render(rejection, format, &settings.www_authenticate)
}

/// A client id as the client sent it may be anything: at most 64
/// characters of it reach the log.
fn loggable(client_id: &str) -> &str {
    match client_id.char_indices().nth(64) {
        Some((end, _)) => &client_id[..end],
        None => client_id,
    }
}

fn render(
    rejection: Rejection,
    format: ResponseFormat,
    www_authenticate: &HeaderValue,
) -> Response<Bytes> {
    let mut fields = vec![
        ("error", FieldValue::from(rejection.error())),
        (
            "error_description",
            FieldValue::from(rejection.description()),
        ),
    ];
    if let Some(uri) = rejection.uri() {
        fields.push(("error_uri", FieldValue::from(uri)));
    }
    if let Some(interval) = rejection.interval() {
        fields.push(("interval", FieldValue::from(interval)));
    }
    let body = format.encode(&fields);
    let mut response = Response::new(body);
    *response.status_mut() = rejection.status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, format.content_type_header());
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    match rejection.status() {
        StatusCode::UNAUTHORIZED => {
            headers.insert(WWW_AUTHENTICATE, www_authenticate.clone());
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            headers.insert(ALLOW, HeaderValue::from_static("POST"));
        }
        _ => {}
    }
    if let Some(seconds) = rejection.retry_after() {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response.extensions_mut().insert(rejection);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_githubs() {
        let read = |failure| {
            let response = rest_refusal(failure);
            let json: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            (
                response.status(),
                json["message"].as_str().unwrap().to_owned(),
            )
        };
        assert_eq!(
            read(Failure::BadClientCredentials),
            (StatusCode::NOT_FOUND, "Not Found".to_owned())
        );
        assert_eq!(
            read(Failure::ApplicationClientMismatch).0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            read(Failure::TokenMissing).0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(read(Failure::Store).0, StatusCode::INTERNAL_SERVER_ERROR);
        let locked = rest_refusal(Failure::LockedOut(7));
        assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(locked.headers()[RETRY_AFTER], "7");
    }
}
