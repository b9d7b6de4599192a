//! The parameter parser on any request head and body (form, JSON or
//! anything else, any query and `Authorization`), in both dialects. It must
//! answer, parsed or refused, and never panic.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tokengate::{Dialect, fuzzing::parse_token_request};

fuzz_target!(|data: &[u8]| {
    let Some(input) = common::parse(data) else {
        return;
    };
    let dialect = if input.github {
        Dialect::GitHub
    } else {
        Dialect::Rfc6749
    };
    let (parts, body) = input.request.into_parts();
    if let Ok(present) = parse_token_request(&parts, &body, dialect) {
        assert!(present <= 10);
    }
});
