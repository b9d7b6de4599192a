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
