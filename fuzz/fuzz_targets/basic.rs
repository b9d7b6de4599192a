//! The `Authorization: Basic` decoder on any header value. What it accepts
//! must round-trip: encoding the decoded id and secret again and decoding
//! that gives the same pair (or, if the re-encoding outgrew the 4 KiB
//! limit, a refusal for length).
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use tokengate::fuzzing::parse_basic;

fuzz_target!(|raw: &[u8]| {
    let Ok(value) = http::HeaderValue::from_bytes(raw) else {
        return;
    };
    let Ok((id, secret)) = parse_basic(&value) else {
        return;
    };
    let again = format!(
        "Basic {}",
        encode(&format!("{}:{}", form(&id), form(&secret)))
    );
    let value = http::HeaderValue::from_str(&again).expect("base64 is a valid header");
    if again.len() > 4096 {
        // Percent-escaping can triple a header the decoder took.
        assert!(parse_basic(&value).is_err_and(|e| e.contains("too long")));
        return;
    }
    assert_eq!(parse_basic(&value), Ok((id, secret)));
});

/// RFC 6749 §2.3.1: each half is form-urlencoded before joining.
fn form(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Standard base64 with padding, as RFC 7617 writes it.
fn encode(input: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(input)
}
