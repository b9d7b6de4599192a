//! Redirect URI policies: how a requested `redirect_uri` is compared with a
//! client's registered ones.

use http::Uri;
use serde::Deserialize;

/// How a requested redirect URI must relate to a registered one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RedirectPolicy {
    /// Simple string comparison (RFC 9700 §4.1.3): the default, and the only
    /// policy that cannot be fooled by a parser's opinion of a URI.
    ///
    /// ```
    /// use tokengate::client::RedirectPolicy::Exact;
    /// let cb = "https://client.example.com/cb";
    /// assert!(Exact.allows(cb, cb));
    /// for other in ["https://client.example.com/cb/", "https://client.example.com/CB",
    ///               "https://client.example.com:443/cb", "https://client.example.com/cb?x=1"] {
    ///     assert!(!Exact.allows(cb, other));
    /// }
    /// ```
    #[default]
    Exact,
    /// RFC 8252 §7.3: for a registered `http://127.0.0.1/...` or
    /// `http://[::1]/...` URI the port may differ, since a native app binds
    /// whatever port is free; anything else is compared exactly.
    ///
    /// ```
    /// use tokengate::client::RedirectPolicy::Loopback;
    /// assert!(Loopback.allows("http://127.0.0.1/cb", "http://127.0.0.1:51004/cb"));
    /// assert!(Loopback.allows("http://[::1]/cb", "http://[::1]:8080/cb"));
    /// assert!(!Loopback.allows("http://127.0.0.1/cb", "http://127.0.0.1:51004/other"));
    /// assert!(!Loopback.allows("http://127.0.0.1/cb", "http://localhost:51004/cb"));
    /// ```
    Loopback,
    /// GitHub's rule for OAuth apps: scheme, host and port as registered
    /// (subdomains of the host allowed), the path equal to the registered one
    /// or below it on a segment boundary, no dot-segments; a loopback host
    /// may use any port. Unless the URI is the registered one, its path may
    /// hold no `;` (a path parameter: Tomcat reads `..;` as `..`) and no
    /// encoded `%`, `.`, `/` or `;` (`%25`, `%2E`, `%2F`, `%3B`), which a
    /// server that decodes once more resolves elsewhere.
    ///
    /// ```
    /// use tokengate::client::RedirectPolicy::GitHub;
    /// let cb = "http://example.com/path";
    /// for good in ["http://example.com/path", "http://example.com/path/subdir/other",
    ///              "http://oauth.example.com/path"] {
    ///     assert!(GitHub.allows(cb, good), "{good}");
    /// }
    /// for bad in ["http://example.com/bar", "http://example.com/", "http://example.com/pathX",
    ///             "http://example.com:8080/path", "http://oauth.example.com:8080/path",
    ///             "http://example.org", "http://example.com/path/../bar",
    ///             "http://example.com/path/..;/bar", "http://example.com/path/%252e%252e/bar"] {
    ///     assert!(!GitHub.allows(cb, bad), "{bad}");
    /// }
    /// ```
    #[serde(rename = "github")]
    GitHub,
}

impl RedirectPolicy {
    /// The policy's name in a clients file: `exact`, `loopback`, `github`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Loopback => "loopback",
            Self::GitHub => "github",
        }
    }

    /// The policy named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Exact, Self::Loopback, Self::GitHub]
            .into_iter()
            .find(|policy| policy.name() == name)
    }

    /// Whether `requested` is allowed by `registered` under this policy.
    ///
    /// No policy allows a URI whose query already names a parameter of the
    /// authorization response (`code`, `state`, `error`,
    /// `error_description`, `error_uri`), not even when it equals the
    /// registered one: the response would carry two of them, and a client
    /// that reads the first would take the one written into the URI.
    ///
    /// ```
    /// use tokengate::client::RedirectPolicy::{Exact, GitHub};
    /// let cb = "https://client.example.com/cb";
    /// assert!(!GitHub.allows(cb, "https://client.example.com/cb?code=planted"));
    /// let planted = "https://client.example.com/cb?%73tate=planted";
    /// assert!(!Exact.allows(planted, planted));
    /// ```
    pub fn allows(self, registered: &str, requested: &str) -> bool {
        if response_parameter_in(requested).is_some() {
            return false;
        }
        if registered == requested {
            // Equality passes every policy; a fragment is never registrable
            // (RFC 6749 §3.1.2), so a registered URI cannot carry one.
            return !requested.contains('#');
        }
        match self {
            Self::Exact => false,
            Self::Loopback => loopback(registered, requested),
            Self::GitHub => github(registered, requested),
        }
    }
}

/// The parameters an authorization response adds to the redirect URI's
/// query (RFC 6749 §4.1.2 and §4.1.2.1). `iss` (RFC 9207) is not among
/// them: the gate never sends it, so there is nothing for a planted one to
/// be confused with.
const RESPONSE_PARAMETERS: [&str; 5] = ["code", "state", "error", "error_description", "error_uri"];

/// The first of the [`RESPONSE_PARAMETERS`] that the query of `uri`
/// already names, read the way clients read a query: split at `&` (and at
/// `;`, as older parsers such as Python's before 3.9.2 do), each name
/// form-decoded, so `%63ode` is `code`. The spellings some frameworks fold
/// into the same name count too: any case (ASP.NET), `code[]` (PHP, Rails),
/// leading spaces, and `.` or a space for `_` (PHP). Anything after a `#`
/// is no query (a URI with one never passes anyway).
pub(crate) fn response_parameter_in(uri: &str) -> Option<&'static str> {
    let before_fragment = uri.split_once('#').map_or(uri, |(head, _)| head);
    let (_, query) = before_fragment.split_once('?')?;
    query
        .split(';')
        .flat_map(|part| form_urlencoded::parse(part.as_bytes()))
        .find_map(|(name, _)| response_parameter(&name))
}

fn response_parameter(name: &str) -> Option<&'static str> {
    // PHP ends a name at its first NUL (`code%00` is `code` there).
    let name = name.split('\0').next().unwrap_or(name);
    let name = name.trim_start_matches(' ');
    let name = name.split_once('[').map_or(name, |(head, _)| head);
    RESPONSE_PARAMETERS.into_iter().find(|reserved| {
        name.len() == reserved.len()
            && name.bytes().zip(reserved.bytes()).all(|(got, want)| {
                got.to_ascii_lowercase() == want || (want == b'_' && matches!(got, b'.' | b' '))
            })
    })
}

/// The parts of an absolute URI the policies compare.
struct Parts<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<u16>,
    path: &'a str,
    query: Option<&'a str>,
}

fn parts(uri: &Uri) -> Option<Parts<'_>> {
    let authority = uri.authority()?;
    // A userinfo part (`https://good.example@evil.example/`) is how a
    // lenient comparison gets fooled: never relax a policy for one.
    if authority.as_str().contains('@') {
        return None;
    }
    // `http::Uri` takes any characters after the host (`[::1]:abc`) and
    // then reports no port at all; a port that is not a number is not a URI
    // a browser would follow, and must not count as "no port" (found by the
    // redirect fuzz target).
    let port_ok = match authority.as_str().strip_prefix(authority.host()) {
        Some("") => true,
        Some(port) => {
            port.strip_prefix(':').is_some_and(|digits| {
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            }) && authority.port_u16().is_some()
        }
        None => false,
    };
    if !port_ok {
        return None;
    }
    Some(Parts {
        scheme: uri.scheme_str()?,
        host: authority.host(),
        port: authority.port_u16(),
        path: uri.path(),
        query: uri.query(),
    })
}

/// Parses a URI for a relaxed comparison. Anything a browser might read
/// differently from `http::Uri` is refused outright: a fragment, and a
/// backslash (plain or encoded), which WHATWG parsers treat as `/` in
/// http(s) URLs, so `/cb/..\\evil` would land on `/evil`.
fn parse(uri: &str) -> Option<Uri> {
    let lower = uri.to_ascii_lowercase();
    if uri.contains(['#', '\\']) || lower.contains("%5c") {
        return None;
    }
    uri.parse().ok()
}

/// Whether `host` is a DNS name (only names have subdomains).
fn is_dns_name(host: &str) -> bool {
    !host.starts_with('[') && host.parse::<std::net::Ipv4Addr>().is_err()
}

fn is_loopback_ip(host: &str) -> bool {
    host == "127.0.0.1" || host == "[::1]"
}

fn loopback(registered: &str, requested: &str) -> bool {
    let (Some(reg), Some(req)) = (parse(registered), parse(requested)) else {
        return false;
    };
    let (Some(reg), Some(req)) = (parts(&reg), parts(&req)) else {
        return false;
    };
    reg.scheme == "http"
        && req.scheme == "http"
        && is_loopback_ip(reg.host)
        && reg.host == req.host
        && reg.path == req.path
        && reg.query == req.query
        // `http::Uri` reads an empty path as `/`; the raw strings must agree
        // on it too, or `http://127.0.0.1` would match `http://127.0.0.1/`.
        && has_explicit_path(registered) == has_explicit_path(requested)
}

fn has_explicit_path(uri: &str) -> bool {
    uri.split_once("://")
        .is_some_and(|(_, rest)| rest.contains('/'))
}

fn github(registered: &str, requested: &str) -> bool {
    let (Some(reg), Some(req)) = (parse(registered), parse(requested)) else {
        return false;
    };
    let (Some(reg), Some(req)) = (parts(&reg), parts(&req)) else {
        return false;
    };
    let reg_host = reg.host.to_ascii_lowercase();
    let req_host = req.host.to_ascii_lowercase();
    // A subdomain is one or more non-empty labels in front of the
    // registered name (`oauth.example.com`, never `.example.com` or
    // `a..example.com`), and only a DNS name has any.
    let host_ok = req_host == reg_host
        || (is_dns_name(&reg_host)
            && req_host
                .strip_suffix(reg_host.as_str())
                .and_then(|sub| sub.strip_suffix('.'))
                .is_some_and(|labels| labels.split('.').all(|label| !label.is_empty())));
    let port_ok = req.port == reg.port || is_loopback_ip(&reg_host);
    reg.scheme.eq_ignore_ascii_case(req.scheme)
        && host_ok
        && port_ok
        && path_within(reg.path, req.path)
        && (reg.query.is_none() || reg.query == req.query)
}

/// Percent-encodings that some server or proxy on the way decodes into a
/// path separator, a dot-segment or a path parameter: `%2F` is `/`, `%2E`
/// makes `.%2e` a `..`, `%3B` is the `;` below, and `%25` is `%`, so a
/// proxy that decodes twice reads `%252e%252e` as `..`. None of them is
/// needed in a callback path (`.` is unreserved, RFC 3986 §2.3). (`%5C`,
/// the backslash, is refused for the whole URI by [`parse`].)
const AMBIGUOUS_ENCODINGS: [&str; 4] = ["%25", "%2e", "%2f", "%3b"];

/// `requested` equals `registered` or lies below it on a segment boundary,
/// and holds nothing that a server might resolve elsewhere. The whole
/// requested path is checked, the part that repeats the registered prefix
/// too: that a registration holds `;` or `%2F` lets no other path through.
fn path_within(registered: &str, requested: &str) -> bool {
    let lower = requested.to_ascii_lowercase();
    let has_dot_segment = requested
        .split('/')
        .any(|segment| segment == "." || segment == "..");
    // `;` opens a path parameter that Tomcat-style servers drop from the
    // segment before they resolve dot-segments, so `/cb/..;/evil` is
    // `/evil` there. An empty segment (`/cb//x`) is normalised away by some
    // servers and kept by others. Refuse both rather than guess.
    if has_dot_segment
        || requested.contains(';')
        || requested.contains("//")
        || AMBIGUOUS_ENCODINGS.iter().any(|code| lower.contains(code))
    {
        return false;
    }
    if requested == registered {
        return true;
    }
    // Beyond the registration itself, nothing that a lenient decoder could
    // fold into a separator: an encoded NUL, IIS's `%u` form, or any
    // encoded byte above ASCII (overlong UTF-8 such as `%c0%ae`, or a
    // full-width dot that NFKC turns into `.`).
    if has_lenient_encoding(&lower) {
        return false;
    }
    let base = registered.trim_end_matches('/');
    requested
        .strip_prefix(base)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// An encoded NUL, a `%u` escape, or an encoded byte of 0x80 or more in a
/// lower-cased path.
fn has_lenient_encoding(lower: &str) -> bool {
    lower.match_indices('%').any(|(at, _)| {
        let after = &lower.as_bytes()[at + 1..];
        match after {
            [b'u', ..] | [b'0', b'0', ..] => true,
            [high, ..] => matches!(high, b'8'..=b'9' | b'a'..=b'f'),
            [] => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::RedirectPolicy::{self, *};

    const CB: &str = "https://client.example.com/cb";

    #[test]
    fn policies_go_by_their_clients_file_names() {
        for (policy, name) in [(Exact, "exact"), (Loopback, "loopback"), (GitHub, "github")] {
            assert_eq!(policy.name(), name);
            assert_eq!(RedirectPolicy::from_name(name), Some(policy));
        }
        for unknown in ["", "loose", "Exact", "GitHub"] {
            assert_eq!(RedirectPolicy::from_name(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn exact_is_string_equality() {
        assert!(Exact.allows(CB, CB));
        for other in [
            "https://client.example.com/cb/",
            "https://client.example.com/CB",
            "https://client.example.com:443/cb",
            "https://client.example.com/cb?x=1",
            "https://client.example.com/cb#frag",
        ] {
            assert!(!Exact.allows(CB, other), "{other}");
        }
    }

    #[test]
    fn a_port_that_is_not_a_number_is_refused() {
        // Regression: cargo fuzz (redirect target) found
        // `http://[::1]:aaaa?a/../e` allowed against `http://[::1]:60+cb`.
        assert!(!GitHub.allows("http://[::1]:60+cb", "http://[::1]:aaaa?a/../e"));
        assert!(!GitHub.allows("http://[::1]/cb", "http://[::1]:abc/cb"));
        assert!(!Loopback.allows("http://127.0.0.1/cb", "http://127.0.0.1:abc/cb"));
        assert!(!GitHub.allows("http://example.com/cb", "http://example.com:8o/cb"));
        assert!(GitHub.allows("http://[::1]/cb", "http://[::1]:8080/cb"));
    }

    #[test]
    fn a_port_is_plain_digits_that_fit_sixteen_bits() {
        // `+80` reads as 80 to Rust's integer parser, and 65536 or more is
        // no port at all: neither may pass for the registered port.
        assert!(!GitHub.allows("http://example.com:80/path", "http://example.com:+80/path"));
        assert!(!GitHub.allows("http://example.com/path", "http://example.com:99999/path"));
        assert!(!GitHub.allows("http://example.com/path", "http://example.com:/path"));
        assert!(!Loopback.allows("http://127.0.0.1/cb", "http://127.0.0.1:+80/cb"));
        assert!(!Loopback.allows("http://127.0.0.1/cb", "http://127.0.0.1:99999/cb"));
        assert!(GitHub.allows("http://example.com:80/path", "http://example.com:80/path/x"));
    }

    #[test]
    fn loopback_lets_only_the_port_vary() {
        let reg = "http://127.0.0.1/callback";
        assert!(Loopback.allows(reg, "http://127.0.0.1:1234/callback"));
        assert!(Loopback.allows(reg, "http://127.0.0.1:65535/callback"));
        assert!(!Loopback.allows(reg, "https://127.0.0.1:1234/callback"));
        assert!(!Loopback.allows(reg, "http://127.0.0.2:1234/callback"));
        assert!(!Loopback.allows(reg, "http://127.0.0.1:1234/callback/x"));
        assert!(!Loopback.allows(reg, "http://127.0.0.1:1234/callback?x=1"));
        assert!(!Loopback.allows(reg, "http://evil@127.0.0.1:1234/callback"));
        assert!(Loopback.allows("http://[::1]/cb", "http://[::1]:9/cb"));
        // Not a loopback registration: exact.
        assert!(!Loopback.allows(CB, "https://client.example.com:8443/cb"));
    }

    #[test]
    fn github_rule_matches_the_documented_examples() {
        let cb = "http://example.com/path";
        for good in [
            "http://example.com/path",
            "http://example.com/path/subdir/other",
            "http://oauth.example.com/path",
            "http://oauth.example.com/path/subdir/other",
        ] {
            assert!(GitHub.allows(cb, good), "{good}");
        }
        for bad in [
            "http://example.com/bar",
            "http://example.com/",
            "http://example.com/pathX",
            "http://example.com:8080/path",
            "http://oauth.example.com:8080/path",
            "http://example.org",
            "http://example.com/path/../bar",
            "http://example.com/path/%2e%2E/bar",
            "http://example.com/path/./x",
            "http://evilexample.com/path",
            "http://example.com.evil.org/path",
            "http://example.com@evil.org/path",
            "http://evil.org/?http://example.com/path",
            "https://example.com/path",
            "http://example.com/path#x",
            "http://example.com/path/%2F..%2Fbar",
            "http://example.com/path/..\\evil",
            "http://example.com/path\\..\\evil",
            "http://example.com/path/%5c..%5cevil",
            "http://example.com/path/%5C",
            "http://example.com/path//x",
            "http://.example.com/path",
            "http://a..example.com/path",
        ] {
            assert!(!GitHub.allows(cb, bad), "{bad}");
        }
    }

    #[test]
    fn github_rule_corners() {
        let tenant = "http://example.com/path?tenant=a";
        assert!(GitHub.allows(tenant, "http://example.com/path/x?tenant=a"));
        assert!(!GitHub.allows(tenant, "http://example.com/path?tenant=b"));
        assert!(!GitHub.allows(tenant, "http://example.com/path"));
        // IP literals have no subdomains.
        assert!(!GitHub.allows("http://0.0.1/cb", "http://127.0.0.1:9/cb"));
        assert!(!GitHub.allows("http://10.0.0.1/cb", "http://1.10.0.0.1/cb"));
        assert!(!GitHub.allows("http://[::2]/cb", "http://x.[::2]/cb"));
        assert!(GitHub.allows("http://example.com/path", "http://a.b.example.com/path"));
    }

    #[test]
    fn github_rule_lets_a_query_be_added_unless_one_is_registered() {
        let cb = "http://example.com/path";
        assert!(GitHub.allows(cb, "http://example.com/path?x=1"));
        assert!(GitHub.allows(cb, "http://example.com/path/sub?x=1&y=2"));
        let tenant = "http://example.com/path?tenant=a";
        assert!(!GitHub.allows(tenant, "http://example.com/path?x=1"));
    }

    #[test]
    fn loopback_keeps_the_empty_path_distinct() {
        assert!(!Loopback.allows("http://127.0.0.1/", "http://127.0.0.1:5000"));
        assert!(!Loopback.allows("http://127.0.0.1", "http://127.0.0.1:5000/"));
        assert!(!Loopback.allows("http://127.0.0.1/cb", "http://127.0.0.1:5000/cb\\..\\x"));
    }

    #[test]
    fn github_rule_lets_loopback_use_any_port() {
        let reg = "http://127.0.0.1/cb";
        assert!(GitHub.allows(reg, "http://127.0.0.1:4000/cb"));
        assert!(GitHub.allows(reg, "http://127.0.0.1:4000/cb/deeper"));
        assert!(!GitHub.allows(reg, "http://x.127.0.0.1:4000/cb"));
    }

    #[test]
    fn github_rule_refuses_encodings_a_lenient_decoder_folds_into_dots() {
        let registered = "https://client.example.com/cb";
        for requested in [
            "https://client.example.com/cb/%c0%ae%c0%ae/evil",
            "https://client.example.com/cb/%e0%80%ae%e0%80%ae/evil",
            "https://client.example.com/cb/%u002e%u002e/evil",
            "https://client.example.com/cb/%EF%BC%8E%EF%BC%8E/evil",
            "https://client.example.com/cb/%E2%80%A5/evil",
            "https://client.example.com/cb/..%00/evil",
            "https://client.example.com/cb/x%00",
        ] {
            assert!(!GitHub.allows(registered, requested), "{requested}");
        }
        // Plain ASCII below the registration, and a registration that is
        // itself non-ASCII requested exactly, still pass.
        assert!(GitHub.allows(registered, "https://client.example.com/cb/a%41-b"));
        let unicode = "https://client.example.com/caf%C3%A9";
        assert!(GitHub.allows(unicode, unicode));
        assert!(!GitHub.allows(unicode, "https://client.example.com/caf%C3%A9/x%C3%A9"));
    }

    #[test]
    fn a_nul_ends_a_response_parameter_name_as_php_reads_it() {
        for query in ["code%00=evil", "error%00x=access_denied", "state%00=x"] {
            let uri = format!("https://client.example.com/cb?{query}");
            assert!(!GitHub.allows(CB, &uri), "{uri}");
            assert!(!Exact.allows(&uri, &uri), "{uri}");
        }
    }

    #[test]
    fn github_rule_refuses_path_parameters_and_encoded_separators() {
        let cb = "http://example.com/path";
        for bad in [
            // Tomcat-style servers drop `;params` from each segment before
            // resolving dot-segments: `..;` is `..`.
            "http://example.com/path/..;/other",
            "http://example.com/path/.;/x",
            "http://example.com/path;/x",
            "http://example.com/path/x;jsessionid=1",
            "http://example.com/path/;",
            // A proxy that decodes twice turns `%252e` into `.`.
            "http://example.com/path/%252e%252e/other",
            "http://example.com/path/%252f",
            "http://example.com/path/%25",
            // `%2e` is never needed (`.` is unreserved) and `.%2e` decodes
            // to `..`; `%3b` decodes to a `;` path parameter.
            "http://example.com/path/%2ex",
            "http://example.com/path/x%2E",
            "http://example.com/path/.%2e/other",
            "http://example.com/path/a%2fb",
            "http://example.com/path/..%3b/other",
            "http://example.com/path/x%3B",
        ] {
            assert!(!GitHub.allows(cb, bad), "{bad}");
        }
        // Encoded bytes above ASCII go too (a lenient decoder may fold
        // them into a dot); other encodings stay allowed, and so does
        // anything in the query, which names no path.
        assert!(!GitHub.allows(cb, "http://example.com/path/caf%C3%A9"));
        for good in [
            "http://example.com/path/a%20b",
            "http://example.com/path/x?v=a;b",
            "http://example.com/path/x?v=%25%2e%2f%3b",
        ] {
            assert!(GitHub.allows(cb, good), "{good}");
        }
    }

    #[test]
    fn github_rule_gives_no_pass_to_what_the_registered_prefix_holds() {
        // The whole requested path is checked, not just what follows the
        // registered prefix: below a registered path that holds `;` or an
        // encoded separator, only the registered string itself passes.
        for registered in [
            "http://example.com/a;v=1",
            "http://example.com/a%2eb",
            "http://example.com/a%2fb",
            "http://example.com/a%25b",
        ] {
            assert!(GitHub.allows(registered, registered), "{registered}");
            let below = format!("{registered}/x");
            assert!(!GitHub.allows(registered, &below), "{below}");
            let sub = registered.replacen("example.com", "oauth.example.com", 1);
            assert!(!GitHub.allows(registered, &sub), "{sub}");
        }
        // A registered prefix ending in `/` does not let `;` in either.
        assert!(!GitHub.allows("http://example.com/path/", "http://example.com/path/;x"));
        assert!(!GitHub.allows("http://example.com/path/", "http://example.com/path/..;/x"));
    }

    /// The five names an authorization response adds to the redirect URI.
    const RESPONSE_NAMES: [&str; 5] = ["code", "state", "error", "error_description", "error_uri"];

    #[test]
    fn no_policy_allows_a_query_that_already_carries_a_response_parameter() {
        let spellings = RESPONSE_NAMES.into_iter().flat_map(|name| {
            [
                name.to_owned(),
                // Percent-encoded, as a client decodes it.
                format!("%{:02X}{}", name.as_bytes()[0], &name[1..]),
                format!("%{:02x}{}", name.as_bytes()[0], &name[1..]),
                // ASP.NET reads query names without regard to case; PHP and
                // Rails read `code[]` as `code`, and PHP drops leading
                // spaces from a name.
                name.to_ascii_uppercase(),
                format!("{name}[]"),
                format!("{name}[x]"),
                format!("+{name}"),
            ]
        });
        for name in spellings {
            for query in [
                format!("{name}=evil"),
                format!("{name}="),
                name.clone(),
                format!("x=1&{name}=evil"),
                format!("{name}=evil&x=1"),
                // Older parsers (Python before 3.9.2) split at `;` too.
                format!("x=1;{name}=evil"),
            ] {
                let uri = format!("{CB}?{query}");
                for policy in [Exact, Loopback, GitHub] {
                    assert!(!policy.allows(&uri, &uri), "{policy:?} {uri}");
                }
                assert!(!GitHub.allows(CB, &uri), "{uri}");
                assert!(!GitHub.allows(CB, &format!("{CB}/sub?{query}")), "{query}");
                let loopback = format!("http://127.0.0.1/cb?{query}");
                let moved = format!("http://127.0.0.1:5000/cb?{query}");
                assert!(!Loopback.allows(&loopback, &moved), "{moved}");
                assert!(!GitHub.allows(&loopback, &moved), "{moved}");
            }
        }
        // PHP reads `.` and ` ` in a name as `_`.
        for php in ["error.uri", "error+description", "error%20uri"] {
            let uri = format!("{CB}?{php}=x");
            assert!(!Exact.allows(&uri, &uri), "{uri}");
        }
    }

    #[test]
    fn the_planted_parameter_is_named_by_its_response_name() {
        use super::response_parameter_in;
        for (uri, found) in [
            ("https://a.example/cb?%63ode=1", Some("code")),
            ("https://a.example/cb?x&ERROR.URI=1", Some("error_uri")),
            (
                "https://a.example/cb?x=1;+error+description",
                Some("error_description"),
            ),
            ("https://a.example/cb?state[]=1&code=2", Some("state")),
            ("https://a.example/cb?Error", Some("error")),
            ("https://a.example/cb?x=code", None),
            ("https://a.example/cb?error_urix=1", None),
            ("https://a.example/cb?xcode=1", None),
            ("https://a.example/code=1", None),
            // A `?` after the fragment opens no query.
            ("https://a.example/cb#x?code=1", None),
            ("https://a.example/cb?x=1#&code=1", None),
        ] {
            assert_eq!(response_parameter_in(uri), found, "{uri}");
        }
    }

    #[test]
    fn a_query_whose_names_only_look_alike_is_allowed() {
        for query in [
            "codes=1",
            "x=code",
            "my_state=1",
            "errors=1",
            "code_challenge=1",
            "x=%26code%3D1",
            "x=1%3Bcode%3D1",
            "c=ode",
            "cod=e",
            // `.` and a space stand only for `_`, not for any letter.
            "c.de=1",
            "co+e=1",
            ".....=1",
            "error.description.=1",
        ] {
            let uri = format!("{CB}?{query}");
            assert!(Exact.allows(&uri, &uri), "{uri}");
            assert!(GitHub.allows(CB, &uri), "{uri}");
            let loopback = format!("http://127.0.0.1/cb?{query}");
            let moved = format!("http://127.0.0.1:5000/cb?{query}");
            assert!(Loopback.allows(&loopback, &moved), "{moved}");
        }
        // A name in the path or the authority is no parameter.
        assert!(Exact.allows("https://code.example/code=1", "https://code.example/code=1"));
    }

    #[test]
    fn garbage_never_matches_a_relaxed_policy() {
        for policy in [Exact, Loopback, GitHub] {
            for junk in [
                "",
                "not a uri",
                "http://",
                "//example.com/path",
                "http://exa mple.com/path",
            ] {
                assert!(
                    !RedirectPolicy::allows(policy, "http://example.com/path", junk),
                    "{junk}"
                );
            }
        }
    }
}
