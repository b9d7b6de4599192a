//! The body format of an answer: JSON, form-urlencoded or XML, chosen by the
//! dialect and, in GitHub's, by the `Accept` header.

use bytes::Bytes;
use http::{
    HeaderMap, HeaderValue, Response,
    header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, PRAGMA},
};
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::dialect::Dialect;

/// The format a token-endpoint answer is written in.
///
/// The gate puts the negotiated format in the request extensions of every
/// forwarded request, so the inner service answers in the format the client
/// asked for:
///
/// ```
/// use tokengate::{FieldValue, ResponseFormat};
///
/// let format = ResponseFormat::Form;
/// let body = format.encode(&[
///     ("access_token", FieldValue::from("gho_abc")),
///     ("scope", "repo,user".into()),
///     ("token_type", "bearer".into()),
/// ]);
/// assert_eq!(&body[..], b"access_token=gho_abc&scope=repo%2Cuser&token_type=bearer");
/// assert_eq!(format.content_type(), "application/x-www-form-urlencoded; charset=utf-8");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseFormat {
    /// `application/json`.
    Json,
    /// `application/x-www-form-urlencoded`, GitHub's default.
    Form,
    /// `application/xml`, as `<OAuth><name>value</name>...</OAuth>`.
    Xml,
}

/// A value in an answer: text, or a number (JSON writes it unquoted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldValue<'a> {
    /// A string.
    Text(&'a str),
    /// A number, such as `expires_in`.
    Number(u64),
}

impl<'a> From<&'a str> for FieldValue<'a> {
    fn from(text: &'a str) -> Self {
        Self::Text(text)
    }
}

impl From<u64> for FieldValue<'_> {
    fn from(number: u64) -> Self {
        Self::Number(number)
    }
}

impl ResponseFormat {
    /// The format for a request with `headers` in `dialect`.
    ///
    /// RFC 6749 always answers JSON (§5.1). GitHub answers form-urlencoded
    /// unless `Accept` prefers `application/json` or `application/xml`.
    pub fn negotiate(headers: &HeaderMap, dialect: Dialect) -> Self {
        match dialect {
            Dialect::Rfc6749 => Self::Json,
            Dialect::GitHub => {
                headers
                    .get_all(ACCEPT)
                    .iter()
                    .filter_map(|value| value.to_str().ok())
                    .flat_map(|value| value.split(','))
                    .filter_map(media_range)
                    .fold((Self::Form, 0u16), |best, candidate| {
                        if candidate.1 > best.1 {
                            candidate
                        } else {
                            best
                        }
                    })
                    .0
            }
        }
    }

    /// The `Content-Type` of a body in this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Form => "application/x-www-form-urlencoded; charset=utf-8",
            Self::Xml => "application/xml; charset=utf-8",
        }
    }

    pub(crate) fn content_type_header(self) -> HeaderValue {
        HeaderValue::from_static(self.content_type())
    }

    /// Writes `fields`, in order, in this format.
    pub fn encode(self, fields: &[(&str, FieldValue<'_>)]) -> Bytes {
        Bytes::from(self.encode_string(fields))
    }

    /// A complete token-endpoint answer: `200 OK`, `fields` in this format,
    /// its `Content-Type`, and `Cache-Control: no-store` / `Pragma: no-cache`
    /// (RFC 6749 §5.1).
    ///
    /// ```
    /// use tokengate::{FieldValue, ResponseFormat};
    ///
    /// let response = ResponseFormat::Json.response(&[
    ///     ("access_token", FieldValue::from("2YotnFZFEjr1zCsicMWpAA")),
    ///     ("token_type", "bearer".into()),
    ///     ("expires_in", 3600.into()),
    /// ]);
    /// assert_eq!(response.headers()["cache-control"], "no-store");
    /// assert_eq!(
    ///     response.body(),
    ///     r#"{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"bearer","expires_in":3600}"#
    /// );
    /// ```
    pub fn response(self, fields: &[(&str, FieldValue<'_>)]) -> Response<String> {
        let mut response = Response::new(self.encode_string(fields));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, self.content_type_header());
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }

    fn encode_string(self, fields: &[(&str, FieldValue<'_>)]) -> String {
        match self {
            // Serializing strings and integers cannot fail.
            Self::Json => serde_json::to_string(&Fields(fields)).unwrap_or_default(),
            Self::Form => {
                let mut form = form_urlencoded::Serializer::new(String::new());
                for (name, value) in fields {
                    match value {
                        FieldValue::Text(text) => form.append_pair(name, text),
                        FieldValue::Number(n) => form.append_pair(name, &n.to_string()),
                    };
                }
                form.finish()
            }
            Self::Xml => {
                let mut xml = String::from("<OAuth>");
                for (name, value) in fields {
                    let text = match value {
                        FieldValue::Text(text) => escape_xml(text),
                        FieldValue::Number(n) => n.to_string(),
                    };
                    xml.push_str(&format!("<{name}>{text}</{name}>"));
                }
                xml.push_str("</OAuth>");
                xml
            }
        }
    }
}

/// One `Accept` media range we can serve, with its weight in thousandths.
fn media_range(range: &str) -> Option<(ResponseFormat, u16)> {
    let mut parts = range.split(';');
    let media = parts.next()?.trim();
    let format = if media.eq_ignore_ascii_case("application/json") {
        ResponseFormat::Json
    } else if media.eq_ignore_ascii_case("application/xml") {
        ResponseFormat::Xml
    } else {
        return None;
    };
    let mut weight = 1000;
    for param in parts {
        if let Some((name, value)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("q")
        {
            let q: f32 = value.trim().parse().ok()?;
            weight = (q.clamp(0.0, 1.0) * 1000.0) as u16;
        }
    }
    Some((format, weight))
}

struct Fields<'a>(&'a [(&'a str, FieldValue<'a>)]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            match value {
                FieldValue::Text(text) => map.serialize_entry(name, text)?,
                FieldValue::Number(n) => map.serialize_entry(name, n)?,
            }
        }
        map.end()
    }
}

fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> ResponseFormat {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(value).unwrap());
        ResponseFormat::negotiate(&headers, Dialect::GitHub)
    }

    #[test]
    fn github_negotiates_by_accept() {
        assert_eq!(
            ResponseFormat::negotiate(&HeaderMap::new(), Dialect::GitHub),
            ResponseFormat::Form
        );
        assert_eq!(accept("application/json"), ResponseFormat::Json);
        assert_eq!(accept("application/xml"), ResponseFormat::Xml);
        assert_eq!(accept("text/html, */*"), ResponseFormat::Form);
        assert_eq!(
            accept("Application/JSON; charset=utf-8"),
            ResponseFormat::Json
        );
        assert_eq!(
            accept("application/xml;q=0.5, application/json"),
            ResponseFormat::Json
        );
        assert_eq!(accept("application/json;q=0"), ResponseFormat::Form);
        assert_eq!(
            accept("application/json;q=0.4, application/xml;q=0.9"),
            ResponseFormat::Xml
        );
        assert_eq!(
            ResponseFormat::negotiate(&HeaderMap::new(), Dialect::Rfc6749),
            ResponseFormat::Json
        );
    }

    #[test]
    fn encodes_each_format() {
        let fields = [
            ("error", FieldValue::from("a<b&c")),
            ("interval", 10u64.into()),
        ];
        assert_eq!(
            &ResponseFormat::Json.encode(&fields)[..],
            br#"{"error":"a<b&c","interval":10}"#
        );
        assert_eq!(
            &ResponseFormat::Form.encode(&fields)[..],
            b"error=a%3Cb%26c&interval=10"
        );
        assert_eq!(
            &ResponseFormat::Xml.encode(&fields)[..],
            b"<OAuth><error>a&lt;b&amp;c</error><interval>10</interval></OAuth>"
        );
    }
}
