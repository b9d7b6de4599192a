//! Entry points for the `cargo fuzz` targets in `fuzz/` (feature
//! `fuzzing`): the crate's private parsers, reachable without making them
//! part of the API. Not covered by semver.

use bytes::Bytes;
use http::{HeaderValue, request::Parts};

use crate::{dialect::Dialect, parse};

/// Parses a token request as the gate does. `Ok` carries how many of the
/// known parameters were present, so the fuzzer sees the parse's result.
pub fn parse_token_request(parts: &Parts, body: &Bytes, dialect: Dialect) -> Result<usize, String> {
    match parse::parse(parts, body, dialect) {
        Ok(request) => Ok(request.present()),
        Err(failure) => Err(format!("{failure:?}")),
    }
}

/// Decodes an `Authorization: Basic` header: the client id and secret, or
/// why not.
pub fn parse_basic(value: &HeaderValue) -> Result<(String, String), String> {
    parse::basic::parse(value)
        .map(|credentials| (credentials.client_id, credentials.client_secret))
        .map_err(|failure| format!("{failure:?}"))
}
