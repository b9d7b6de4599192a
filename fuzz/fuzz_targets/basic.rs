//! The `Authorization: Basic` decoder on any header value. What it accepts
//! must round-trip: encoding the decoded id and secret again and decoding
//! that gives the same pair (or, if the re-encoding outgrew the 4 KiB
//! limit, a refusal for length).
#![no_main]

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
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Standard base64 with padding, kept here so the target checks the
/// decoder against an independent encoder.
fn encode(input: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
