//! Parsing: from the request's head and buffered body to the parameters of a
//! token request, or the framing failure that stops it (docs/contract.md#order-of-checks, check 1).
//!
//! Only the defined parameters are kept; unknown ones are ignored
//! (RFC 6749 §3.2), a defined one sent twice is refused, and an empty value
//! counts as absent.

pub(crate) mod basic;
pub(crate) mod form;
mod json;

use std::borrow::Cow;

use bytes::Bytes;
use http::{
    HeaderMap,
    header::{AUTHORIZATION, CONTENT_TYPE},
    request::Parts,
};

pub(crate) use self::basic::BasicCredentials;
use crate::{dialect::Dialect, error::Failure, telemetry::Endpoint};

/// The parameters the gate reads from a token request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param {
    GrantType,
    Code,
    RedirectUri,
    ClientId,
    ClientSecret,
    CodeVerifier,
    RefreshToken,
    Scope,
    DeviceCode,
    ClientAssertion,
    ClientAssertionType,
    Token,
    TokenTypeHint,
}

const PARAMS: usize = 13;

impl Param {
    #[cfg(test)]
    const ALL: [Self; PARAMS] = [
        Self::GrantType,
        Self::Code,
        Self::RedirectUri,
        Self::ClientId,
        Self::ClientSecret,
        Self::CodeVerifier,
        Self::RefreshToken,
        Self::Scope,
        Self::DeviceCode,
        Self::ClientAssertion,
        Self::ClientAssertionType,
        Self::Token,
        Self::TokenTypeHint,
    ];

    fn from_name(name: &str) -> Option<Self> {
        // A match, not a scan of ALL: compiled to a length switch, it costs
        // the same however many parameters there are.
        Some(match name {
            "grant_type" => Self::GrantType,
            "code" => Self::Code,
            "redirect_uri" => Self::RedirectUri,
            "client_id" => Self::ClientId,
            "client_secret" => Self::ClientSecret,
            "code_verifier" => Self::CodeVerifier,
            "refresh_token" => Self::RefreshToken,
            "scope" => Self::Scope,
            "device_code" => Self::DeviceCode,
            "client_assertion" => Self::ClientAssertion,
            "client_assertion_type" => Self::ClientAssertionType,
            "token" => Self::Token,
            "token_type_hint" => Self::TokenTypeHint,
            _ => return None,
        })
    }

    #[cfg(test)]
    const fn name(self) -> &'static str {
        match self {
            Self::GrantType => "grant_type",
            Self::Code => "code",
            Self::RedirectUri => "redirect_uri",
            Self::ClientId => "client_id",
            Self::ClientSecret => "client_secret",
            Self::CodeVerifier => "code_verifier",
            Self::RefreshToken => "refresh_token",
            Self::Scope => "scope",
            Self::DeviceCode => "device_code",
            Self::ClientAssertion => "client_assertion",
            Self::ClientAssertionType => "client_assertion_type",
            Self::Token => "token",
            Self::TokenTypeHint => "token_type_hint",
        }
    }

    const fn repeated(self) -> &'static str {
        match self {
            Self::GrantType => "the grant_type parameter is repeated",
            Self::Code => "the code parameter is repeated",
            Self::RedirectUri => "the redirect_uri parameter is repeated",
            Self::ClientId => "the client_id parameter is repeated",
            Self::ClientSecret => "the client_secret parameter is repeated",
            Self::CodeVerifier => "the code_verifier parameter is repeated",
            Self::RefreshToken => "the refresh_token parameter is repeated",
            Self::Scope => "the scope parameter is repeated",
            Self::DeviceCode => "the device_code parameter is repeated",
            Self::ClientAssertion => "the client_assertion parameter is repeated",
            Self::ClientAssertionType => "the client_assertion_type parameter is repeated",
            Self::Token => "the token parameter is repeated",
            Self::TokenTypeHint => "the token_type_hint parameter is repeated",
        }
    }
}

/// Collected values, and which parameters were seen at all (an empty value
/// is absent, but still counts when the same name comes again).
#[derive(Default)]
pub(crate) struct Params {
    values: [Option<Value>; PARAMS],
    seen: [bool; PARAMS],
}

impl Params {
    fn set(&mut self, param: Param, value: Value) -> Result<(), Failure> {
        let slot = param as usize;
        if std::mem::replace(&mut self.seen[slot], true) {
            return Err(Failure::Repeated(param.repeated()));
        }
        if !value.is_empty() {
            self.values[slot] = Some(value);
        }
        Ok(())
    }

    fn take(&mut self, param: Param) -> Option<Value> {
        self.values[param as usize].take()
    }

    /// Reads form pairs from `input`; a value that needed no decoding is
    /// kept as a slice of `shared` (the body) when given, without a copy.
    fn read_form(&mut self, input: &[u8], shared: Option<&Bytes>) -> Result<(), Failure> {
        for pair in form::pairs(input) {
            let (name, value) = pair.map_err(Failure::Malformed)?;
            if let Some(param) = Param::from_name(&name) {
                let value = match (value, shared) {
                    (Cow::Borrowed(text), Some(body)) => {
                        Value::Shared(body.slice_ref(text.as_bytes()))
                    }
                    (value, _) => Value::Owned(value.into_owned()),
                };
                self.set(param, value)?;
            }
        }
        Ok(())
    }
}

/// A parameter's value: a slice of the request body when it needed no
/// decoding (the common case, and no copy), else the decoded text.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// Bytes of the body, checked to be UTF-8 when parsed.
    Shared(Bytes),
    Owned(String),
}

impl Value {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Checked when parsed; an empty string would only ever follow a
            // bug, and refuses rather than panics.
            Self::Shared(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
            Self::Owned(text) => text,
        }
    }
}

impl std::ops::Deref for Value {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

/// A token request, parsed but not yet checked.
///
/// No `Debug`: it holds the client secret, the code and the verifier.
pub(crate) struct TokenRequest {
    pub(crate) grant_type: Option<Value>,
    pub(crate) code: Option<Value>,
    pub(crate) redirect_uri: Option<Value>,
    pub(crate) client_id: Option<Value>,
    pub(crate) client_secret: Option<Value>,
    pub(crate) code_verifier: Option<Value>,
    pub(crate) refresh_token: Option<Value>,
    pub(crate) scope: Option<Value>,
    pub(crate) device_code: Option<Value>,
    /// What signed requests carry: rare, so boxed, and absent from the
    /// exchanges that send a secret.
    pub(crate) signed: Option<Box<Signed>>,
    /// The token a revocation or introspection request is about: absent
    /// from token requests, so boxed.
    pub(crate) presented: Option<Box<Presented>>,
    /// The `Authorization` header's credentials; a bad header is reported
    /// when client authentication runs, so earlier checks win (docs/contract.md#order-of-checks).
    pub(crate) basic: Option<Result<BasicCredentials, Failure>>,
}

impl TokenRequest {
    /// A request of no parameters but its `Authorization` header's
    /// credentials: the OAuth-app REST endpoints read nothing else to
    /// authenticate.
    pub(crate) fn empty(basic: Option<Result<BasicCredentials, Failure>>) -> Self {
        Self {
            grant_type: None,
            code: None,
            redirect_uri: None,
            client_id: None,
            client_secret: None,
            code_verifier: None,
            refresh_token: None,
            scope: None,
            device_code: None,
            signed: None,
            presented: None,
            basic,
        }
    }
}

#[cfg(feature = "fuzzing")]
impl TokenRequest {
    /// How many parameters are present, for the fuzz targets.
    pub(crate) fn present(&self) -> usize {
        [
            &self.grant_type,
            &self.code,
            &self.redirect_uri,
            &self.client_id,
            &self.client_secret,
            &self.code_verifier,
            &self.refresh_token,
            &self.scope,
            &self.device_code,
        ]
        .iter()
        .filter(|value| value.is_some())
        .count()
            + usize::from(self.basic.is_some())
            + self.presented.as_ref().map_or(0, |presented| {
                usize::from(presented.token.is_some())
                    + usize::from(presented.token_type_hint.is_some())
            })
            + self.signed.as_ref().map_or(0, |signed| {
                usize::from(signed.assertion.is_some())
                    + usize::from(signed.assertion_type.is_some())
            })
    }
}

/// Parses the parameters of a request to `endpoint` with head `parts` and
/// the buffered `body`.
pub(crate) fn parse(
    parts: &Parts,
    body: &Bytes,
    dialect: Dialect,
    endpoint: Endpoint,
) -> Result<TokenRequest, Failure> {
    if endpoint == Endpoint::Application {
        return parse_application(parts, body);
    }
    let mut params = Params::default();
    match body_kind(&parts.headers, body)? {
        BodyKind::Empty => {}
        BodyKind::Form => params.read_form(body, Some(body))?,
        BodyKind::Json if dialect == Dialect::GitHub => json::read(body, &mut params)?,
        BodyKind::Json => return Err(Failure::JsonBody),
    }
    if let Some(query) = parts.uri.query() {
        // The GitHub dialect reads the query for GitHub's clients, at the
        // endpoints GitHub has. The revocation and introspection endpoints
        // are RFC 7009's and RFC 7662's, which take a form body only: a
        // token there would be left in every log the URL reaches.
        if dialect == Dialect::GitHub
            && matches!(endpoint, Endpoint::Token | Endpoint::DeviceAuthorization)
        {
            params.read_form(query.as_bytes(), None)?;
        } else {
            // Parameters in the URI end up in logs and histories (RFC 6749
            // §2.3.1, §3.2); other query parameters are not ours to judge.
            // Names are decoded leniently here: `client_secret=x%zz` must
            // not slip through because its value is malformed.
            let ours = query.split('&').any(|pair| {
                let name = pair.split('=').next().unwrap_or("").replace('+', " ");
                let name = percent_encoding::percent_decode_str(&name).decode_utf8_lossy();
                Param::from_name(&name).is_some()
            });
            if ours {
                return Err(Failure::ParametersInQuery);
            }
        }
    }
    let basic = basic_credentials(parts);
    Ok(TokenRequest {
        grant_type: params.take(Param::GrantType),
        code: params.take(Param::Code),
        redirect_uri: params.take(Param::RedirectUri),
        client_id: params.take(Param::ClientId),
        client_secret: params.take(Param::ClientSecret),
        code_verifier: params.take(Param::CodeVerifier),
        refresh_token: params.take(Param::RefreshToken),
        scope: params.take(Param::Scope),
        device_code: params.take(Param::DeviceCode),
        signed: Signed::read(&mut params),
        presented: Presented::read(&mut params),
        basic,
    })
}

/// The `Authorization` header's Basic credentials: none without the
/// header, an error for a malformed one or for two; a bad header is reported
/// when client authentication runs, so earlier checks win.
fn basic_credentials(parts: &Parts) -> Option<Result<BasicCredentials, Failure>> {
    let mut headers = parts.headers.get_all(AUTHORIZATION).iter();
    match (headers.next(), headers.next()) {
        (None, _) => None,
        (Some(value), None) => Some(basic::parse(value)),
        (Some(_), Some(_)) => Some(Err(Failure::MalformedAuthorization(
            "more than one Authorization header",
        ))),
    }
}

/// The body these endpoints take. GitHub reads a JSON object; its other
/// members are ignored.
#[derive(serde::Deserialize)]
struct ApplicationBody {
    access_token: Option<String>,
}

/// Reads the request: its Basic credentials (the only way to authenticate
/// here: no client id or secret is read from the body) and the token.
fn parse_application(parts: &Parts, body: &Bytes) -> Result<TokenRequest, Failure> {
    let basic = basic_credentials(parts);
    let token = if body.is_empty() {
        None
    } else {
        serde_json::from_slice::<ApplicationBody>(body)
            .map_err(|_| Failure::Malformed("the body must be a JSON object"))?
            .access_token
    };
    let mut request = TokenRequest::empty(basic);
    request.presented = Some(Box::new(Presented {
        token: token.map(Value::Owned),
        token_type_hint: None,
    }));
    Ok(request)
}

/// The parameters of a revocation (RFC 7009 §2.1) or introspection
/// (RFC 7662 §2.1) request.
pub(crate) struct Presented {
    pub(crate) token: Option<Value>,
    pub(crate) token_type_hint: Option<Value>,
}

impl Presented {
    fn read(params: &mut Params) -> Option<Box<Self>> {
        let token = params.take(Param::Token);
        let token_type_hint = params.take(Param::TokenTypeHint);
        (token.is_some() || token_type_hint.is_some()).then(|| {
            Box::new(Self {
                token,
                token_type_hint,
            })
        })
    }
}

/// A signed client assertion (RFC 7523 §2.2) with its type, and the key
/// of a DPoP proof once it verified.
#[derive(Default)]
pub(crate) struct Signed {
    pub(crate) assertion: Option<Value>,
    pub(crate) assertion_type: Option<Value>,
    /// The `sub` the assertion claims, unverified: the client id the
    /// request names when it sends no `client_id`, for the lockout and logs.
    pub(crate) subject: Option<String>,
    /// The thumbprint of the key of the request's DPoP proof, once the
    /// proof verified: what the grant's bindings are compared with.
    pub(crate) dpop_jkt: Option<String>,
}

impl Signed {
    fn read(params: &mut Params) -> Option<Box<Self>> {
        let assertion = params.take(Param::ClientAssertion);
        let assertion_type = params.take(Param::ClientAssertionType);
        if assertion.is_none() && assertion_type.is_none() {
            return None;
        }
        let subject = assertion.as_deref().and_then(assertion_subject);
        Some(Box::new(Self {
            assertion,
            assertion_type,
            subject,
            dpop_jkt: None,
        }))
    }
}

impl TokenRequest {
    /// The assertion and its type, as sent.
    pub(crate) fn assertion(&self) -> (Option<&Value>, Option<&Value>) {
        match &self.signed {
            Some(signed) => (signed.assertion.as_ref(), signed.assertion_type.as_ref()),
            None => (None, None),
        }
    }

    /// The `sub` of the assertion, unverified.
    pub(crate) fn assertion_subject(&self) -> Option<&str> {
        self.signed.as_ref()?.subject.as_deref()
    }

    /// The thumbprint of the verified DPoP proof's key.
    pub(crate) fn dpop_jkt(&self) -> Option<&str> {
        self.signed.as_ref()?.dpop_jkt.as_deref()
    }

    pub(crate) fn set_dpop_jkt(&mut self, jkt: String) {
        self.signed.get_or_insert_with(Box::default).dpop_jkt = Some(jkt);
    }
}

/// The `sub` of a JWT's payload, read without verifying anything: only
/// ever used to name the client the request claims to be.
fn assertion_subject(jwt: &str) -> Option<String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    #[derive(serde::Deserialize)]
    struct Subject {
        sub: String,
    }
    // No longer than the JWS reader takes.
    if jwt.len() > 8 * 1024 {
        return None;
    }
    let payload = jwt.split('.').nth(1)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Subject>(&payload)
        .ok()
        .map(|s| s.sub)
}

enum BodyKind {
    Empty,
    Form,
    Json,
}

fn body_kind(headers: &HeaderMap, body: &[u8]) -> Result<BodyKind, Failure> {
    let Some(content_type) = headers.get(CONTENT_TYPE) else {
        // A request whose parameters are all in the query (GitHub) has no
        // body and often no Content-Type.
        return if body.is_empty() {
            Ok(BodyKind::Empty)
        } else {
            Err(Failure::ContentType)
        };
    };
    let content_type = content_type.to_str().map_err(|_| Failure::ContentType)?;
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or("").trim();
    // Only UTF-8 is read; a body declared in another charset would be
    // misread, so it is refused.
    let charset_ok = parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    });
    if !charset_ok {
        return Err(Failure::ContentType);
    }
    if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Ok(BodyKind::Form)
    } else if media.eq_ignore_ascii_case("application/json") {
        Ok(BodyKind::Json)
    } else {
        Err(Failure::ContentType)
    }
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    #[test]
    fn every_parameter_is_found_by_its_name() {
        for param in Param::ALL {
            assert!(Param::from_name(param.name()) == Some(param));
            assert!(param.repeated().contains(param.name()));
        }
        assert!(Param::from_name("Code").is_none() && Param::from_name("").is_none());
    }

    fn request(uri: &str, content_type: Option<&str>) -> Parts {
        let mut builder = Request::post(uri);
        if let Some(ct) = content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        builder.body(()).unwrap().into_parts().0
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    fn run(parts: &Parts, body: &[u8], dialect: Dialect) -> Result<TokenRequest, Failure> {
        parse(
            parts,
            &Bytes::copy_from_slice(body),
            dialect,
            Endpoint::Token,
        )
    }

    #[test]
    fn reads_defined_parameters_and_ignores_others() {
        let parts = request("/token", FORM);
        let req = run(
            &parts,
            b"grant_type=authorization_code&code=abc&foo=1&foo=2&client_id=",
            Dialect::Rfc6749,
        )
        .ok()
        .unwrap();
        assert_eq!(req.grant_type.as_deref(), Some("authorization_code"));
        assert_eq!(req.code.as_deref(), Some("abc"));
        assert!(req.client_id.is_none());
    }

    #[test]
    fn repeated_parameters_are_refused_even_when_empty() {
        let parts = request("/token", FORM);
        for body in ["code=a&code=b", "code=&code=b", "code=a&code="] {
            assert!(
                matches!(
                    run(&parts, body.as_bytes(), Dialect::Rfc6749),
                    Err(Failure::Repeated(_))
                ),
                "{body}"
            );
        }
        // Encoded names are the same parameter.
        assert!(matches!(
            run(&parts, b"code=a&c%6Fde=b", Dialect::Rfc6749),
            Err(Failure::Repeated(_))
        ));
    }

    #[test]
    fn content_type_rules() {
        let cases: &[(Option<&str>, &[u8], Dialect, bool)] = &[
            (
                Some("application/x-www-form-urlencoded; charset=UTF-8"),
                b"code=a",
                Dialect::Rfc6749,
                true,
            ),
            (
                Some("application/x-www-form-urlencoded; charset=latin1"),
                b"code=a",
                Dialect::Rfc6749,
                false,
            ),
            (Some("text/plain"), b"code=a", Dialect::Rfc6749, false),
            (None, b"code=a", Dialect::GitHub, false),
            (None, b"", Dialect::GitHub, true),
            (
                Some("application/json"),
                br#"{"code":"a"}"#,
                Dialect::GitHub,
                true,
            ),
            (
                Some("application/json"),
                br#"{"code":"a"}"#,
                Dialect::Rfc6749,
                false,
            ),
        ];
        for (ct, body, dialect, ok) in cases {
            let parts = request("/token", *ct);
            assert_eq!(
                run(&parts, body, *dialect).is_ok(),
                *ok,
                "{ct:?} {dialect:?}"
            );
        }
    }

    #[test]
    fn query_parameters_by_dialect() {
        let parts = request("/token?client_id=a&code=b", None);
        let req = run(&parts, b"", Dialect::GitHub).ok().unwrap();
        assert_eq!(req.client_id.as_deref(), Some("a"));
        assert!(matches!(
            run(&parts, b"", Dialect::Rfc6749),
            Err(Failure::ContentType) | Err(Failure::ParametersInQuery)
        ));
        let parts = request("/token?client_secret=x", FORM);
        assert!(matches!(
            run(&parts, b"code=a", Dialect::Rfc6749),
            Err(Failure::ParametersInQuery)
        ));
        let parts = request("/token?client_secret=s3cret%zz", FORM);
        assert!(matches!(
            run(&parts, b"code=a", Dialect::Rfc6749),
            Err(Failure::ParametersInQuery)
        ));
        let parts = request("/token?tenant=x&odd=%zz", FORM);
        assert!(run(&parts, b"code=a", Dialect::Rfc6749).is_ok());
        // A parameter in both the body and the query is repeated.
        let parts = request("/token?code=a", FORM);
        assert!(matches!(
            run(&parts, b"code=b", Dialect::GitHub),
            Err(Failure::Repeated(_))
        ));
    }

    #[test]
    fn json_bodies() {
        let parts = request("/token", Some("application/json"));
        for (body, ok) in [
            (
                &br#"{"code":"a","client_id":"c","extra":{"deep":[1,2,{"x":null}]}}"#[..],
                true,
            ),
            (br#"{"code":null}"#, true),
            (br#"{"code":1}"#, false),
            (br#"["code"]"#, false),
            (br#"{"code":"a""#, false),
            (b"", false),
        ] {
            assert_eq!(
                run(&parts, body, Dialect::GitHub).is_ok(),
                ok,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(
            run(&parts, br#"{"code":"a","code":"b"}"#, Dialect::GitHub),
            Err(Failure::Repeated(_))
        ));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        // Deep nesting in an unknown member is skipped without recursion.
        let body = format!(r#"{{"x":{deep},"code":"a"}}"#);
        assert!(run(&parts, body.as_bytes(), Dialect::GitHub).is_ok());
        // In a defined parameter it is refused, without overflowing the stack.
        let body = format!(r#"{{"code":{deep}}}"#);
        assert!(matches!(
            run(&parts, body.as_bytes(), Dialect::GitHub),
            Err(Failure::Malformed(_))
        ));
    }
}
