//! `client_secret_basic` (RFC 6749 §2.3.1): the `Authorization: Basic` header.

use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use http::HeaderValue;

use super::form;
use crate::error::Failure;

/// Standard base64, padding optional: some clients drop it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// No legitimate client id and secret come near this; longer headers are
/// refused before decoding.
const MAX_HEADER_LEN: usize = 4096;

/// Client credentials from a Basic header, already form-decoded.
pub(crate) struct BasicCredentials {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
}

/// Reads the `Authorization` header. A scheme other than Basic is not a
/// client authentication method the endpoint supports, so it fails client
/// authentication; a Basic header that does not decode is a malformed request.
pub(crate) fn parse(value: &HeaderValue) -> Result<BasicCredentials, Failure> {
    let malformed = Failure::MalformedAuthorization;
    if value.len() > MAX_HEADER_LEN {
        return Err(malformed("the Authorization header is too long"));
    }
    let raw = value.as_bytes();
    let (scheme, rest) = match raw.iter().position(|&b| b == b' ') {
        Some(space) => (&raw[..space], &raw[space..]),
        None => (raw, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(Failure::BadClientCredentials);
    }
    let token = rest.trim_ascii();
    let decoded = BASE64
        .decode(token)
        .map_err(|_| malformed("the Authorization header is not valid base64"))?;
    let colon = decoded.iter().position(|&b| b == b':').ok_or(malformed(
        "the Authorization header has no `:` between client id and secret",
    ))?;
    let not_encoded = |_| malformed("the Authorization credentials are not form-urlencoded UTF-8");
    let client_id = form::decode(&decoded[..colon])
        .map_err(not_encoded)?
        .into_owned();
    let client_secret = form::decode(&decoded[colon + 1..])
        .map_err(not_encoded)?
        .into_owned();
    Ok(BasicCredentials {
        client_id,
        client_secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(value: &str) -> Result<BasicCredentials, Failure> {
        parse(&HeaderValue::from_str(value).unwrap())
    }

    #[test]
    fn rfc6749_example() {
        let creds = basic("Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3").unwrap();
        assert_eq!(creds.client_id, "s6BhdRkqt3");
        assert_eq!(creds.client_secret, "7Fjfp0ZBr1KtDRbnfVdmIw");
    }

    #[test]
    fn secrets_are_form_decoded() {
        use base64::engine::general_purpose::STANDARD;
        let header = format!(
            "basic {}",
            STANDARD.encode("my%20app:+%25%26%2B%C2%A3%E2%82%AC")
        );
        let creds = basic(&header).unwrap();
        assert_eq!(creds.client_id, "my app");
        assert_eq!(creds.client_secret, " %&+£€");
    }

    #[test]
    fn splits_on_the_first_colon() {
        use base64::engine::general_purpose::STANDARD;
        let creds = basic(&format!("Basic {}", STANDARD.encode("id:se:cret"))).unwrap();
        assert_eq!(creds.client_secret, "se:cret");
    }

    #[test]
    fn refuses_malformed_headers() {
        use base64::engine::general_purpose::STANDARD;
        assert!(matches!(
            basic("Bearer abc"),
            Err(Failure::BadClientCredentials)
        ));
        for bad in [
            "Basic !!!".to_owned(),
            format!("Basic {}", STANDARD.encode("no-colon")),
            format!("Basic {}", STANDARD.encode("id:%zz")),
            format!("Basic {}", STANDARD.encode(b"id:\xff")),
            format!("Basic {}", "A".repeat(5000)),
        ] {
            assert!(
                matches!(basic(&bad), Err(Failure::MalformedAuthorization(_))),
                "{bad}"
            );
        }
    }
}
