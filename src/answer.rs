//! Answering a refused request: the dialect's error, in the negotiated
//! format, with the headers RFC 6749 §5.2 asks for.

use bytes::Bytes;
use http::{
    HeaderValue, Response, StatusCode,
    header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE},
};

use crate::{
    check::Settings,
    error::{Failure, Rejection},
    format::{FieldValue, ResponseFormat},
};

/// The response for `failure`, and a log event naming it. `client_id` is
/// the id the request claimed, if any; secrets and codes are never logged.
pub(crate) fn refuse(
    settings: &Settings,
    failure: Failure,
    format: ResponseFormat,
    client_id: Option<&str>,
) -> Response<Bytes> {
    let rejection = settings.presentation.reject(failure);
    if rejection.status().is_server_error() {
        tracing::warn!(
            error = rejection.code().as_str(),
            client_id,
            "token request failed"
        );
    } else {
        tracing::info!(
            error = rejection.code().as_str(),
            client_id,
            "token request refused"
        );
    }
    render(rejection, format, &settings.www_authenticate)
}

fn render(
    rejection: Rejection,
    format: ResponseFormat,
    www_authenticate: &HeaderValue,
) -> Response<Bytes> {
    let mut fields = vec![
        ("error", FieldValue::from(rejection.code().as_str())),
        (
            "error_description",
            FieldValue::from(rejection.description()),
        ),
    ];
    if let Some(uri) = rejection.uri() {
        fields.push(("error_uri", FieldValue::from(uri)));
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
    response.extensions_mut().insert(rejection);
    response
}
