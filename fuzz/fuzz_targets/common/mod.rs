//! Fuzz input as raw HTTP, so seeds are readable requests: one leading
//! byte of settings, then an HTTP/1.1 request head and its body.
//!
//! The settings byte: bit 0 picks the dialect (0 = rfc6749, 1 = github);
//! the other bits, plus one, are the size of the chunks the body arrives in.

use bytes::Bytes;

pub struct Input {
    pub github: bool,
    #[allow(dead_code)] // only the service target streams the body
    pub chunk: usize,
    pub request: http::Request<Bytes>,
}

pub fn parse(data: &[u8]) -> Option<Input> {
    let (&settings, raw) = data.split_first()?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut head = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(length) = head.parse(raw).ok()? else {
        return None;
    };
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(head.method?.as_bytes()).ok()?)
        .uri(head.path?);
    for header in head.headers.iter() {
        builder = builder.header(
            http::HeaderName::from_bytes(header.name.as_bytes()).ok()?,
            http::HeaderValue::from_bytes(header.value).ok()?,
        );
    }
    let request = builder.body(Bytes::copy_from_slice(&raw[length..])).ok()?;
    Some(Input {
        github: settings & 1 == 1,
        chunk: usize::from(settings >> 1) + 1,
        request,
    })
}
