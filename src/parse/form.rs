//! Strict `application/x-www-form-urlencoded` decoding.
//!
//! The usual decoders are lenient: a stray `%` passes through and invalid
//! UTF-8 becomes U+FFFD. A token endpoint must not guess what a client meant,
//! so malformed input is refused here instead of repaired.

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// Splits `input` into decoded `(name, value)` pairs. Empty pairs (`a=1&&b=2`)
/// are skipped; a pair without `=` has an empty value.
pub(crate) fn pairs(
    input: &[u8],
) -> impl Iterator<Item = Result<(Cow<'_, str>, Cow<'_, str>), &'static str>> {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &[][..]),
            };
            Ok((decode(name)?, decode(value)?))
        })
}

/// Decodes one component: `+` is a space, `%XX` a byte, and the result must
/// be UTF-8.
pub(crate) fn decode(raw: &[u8]) -> Result<Cow<'_, str>, &'static str> {
    let mut rest = raw;
    let mut escaped = false;
    while let Some(at) = rest.iter().position(|&b| b == b'%') {
        let hex = rest.get(at + 1..at + 3);
        if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
            return Err("the request body has malformed percent-encoding");
        }
        escaped = true;
        rest = &rest[at + 3..];
    }
    // Most values (codes, verifiers, ids) need no decoding: no second scan.
    if !escaped && !raw.contains(&b'+') {
        return std::str::from_utf8(raw)
            .map(Cow::Borrowed)
            .map_err(|_| INVALID_UTF8);
    }
    let plus_free: Cow<'_, [u8]> = if raw.contains(&b'+') {
        Cow::Owned(
            raw.iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    let decoded: Cow<'_, [u8]> = match plus_free {
        Cow::Borrowed(raw) => percent_decode(raw).into(),
        Cow::Owned(owned) => Cow::Owned(percent_decode(&owned).collect()),
    };
    match decoded {
        Cow::Borrowed(bytes) => std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|_| INVALID_UTF8),
        Cow::Owned(bytes) => String::from_utf8(bytes)
            .map(Cow::Owned)
            .map_err(|_| INVALID_UTF8),
    }
}

const INVALID_UTF8: &str = "the request body is not valid UTF-8";

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &str) -> Result<Vec<(String, String)>, &'static str> {
        pairs(input.as_bytes())
            .map(|r| r.map(|(n, v)| (n.into_owned(), v.into_owned())))
            .collect()
    }

    #[test]
    fn decodes_plus_and_percent() {
        assert_eq!(
            all("a=b+c&d=%20%26%2B%C2%A3&&e").unwrap(),
            vec![
                ("a".into(), "b c".into()),
                ("d".into(), " &+£".into()),
                ("e".into(), String::new())
            ]
        );
    }

    #[test]
    fn refuses_bad_percent_encoding() {
        for bad in ["a=%", "a=%2", "a=%zz", "a%=1", "a=%%41"] {
            assert!(all(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_invalid_utf8() {
        assert!(all("a=%ff").is_err());
        assert!(pairs(b"a=\xff").next().unwrap().is_err());
        assert!(all("a=%C3").is_err());
    }
}
