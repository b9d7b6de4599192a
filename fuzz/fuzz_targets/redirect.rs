//! The redirect-URI policies on any registered and requested pair.
//! Invariants: `exact` allows only equal strings, and allows equal strings
//! without a fragment or a query; every policy allows what `exact` allows;
//! a URI with a fragment, a backslash or a dot-segment is never allowed
//! unless identical; no policy allows a URI whose query names a parameter
//! of the authorization response, identical or not; the GitHub policy
//! allows no other path with a `;` or an encoded `%`, `.`, `/` or `;`.
//!
//! The oracle reads URIs with its own few lines, not with the crate's
//! code, so a mistake in one is not repeated in the other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::client::RedirectPolicy;

/// The parameters an authorization response adds to the redirect URI.
const RESPONSE_PARAMETERS: [&str; 5] = ["code", "state", "error", "error_description", "error_uri"];

/// Whether the query of `uri` names a response parameter as a client reads
/// it: form-decoded, split at `&` and `;`. (The gate also folds case and a
/// few frameworks' spellings; those only refuse more, which this oracle
/// does not need to know.)
fn plants_a_response_parameter(uri: &str) -> bool {
    let uri = uri.split('#').next().unwrap_or("");
    let Some((_, query)) = uri.split_once('?') else {
        return false;
    };
    query.split(';').any(|part| {
        form_urlencoded::parse(part.as_bytes())
            .any(|(name, _)| RESPONSE_PARAMETERS.contains(&name.as_ref()))
    })
}

/// The path of an absolute URI: from the first `/` after `://` to the
/// query.
fn path_of(uri: &str) -> &str {
    let rest = uri.split_once("://").map_or("", |(_, rest)| rest);
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    rest.find('/').map_or("", |start| &rest[start..])
}

// Input: the registered URI, a newline, the requested one.
fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((registered, requested)) = text.split_once('\n') else {
        return;
    };
    let planted = plants_a_response_parameter(requested);
    let exact = RedirectPolicy::Exact.allows(registered, requested);
    if exact {
        assert_eq!(registered, requested, "exact allows another string");
        assert!(!requested.contains('#'), "exact allows a fragment");
    }
    if registered == requested && !requested.contains(['#', '?']) {
        assert!(exact, "exact refuses an identical URI without query");
    }
    for policy in [
        RedirectPolicy::Exact,
        RedirectPolicy::Loopback,
        RedirectPolicy::GitHub,
    ] {
        let allowed = policy.allows(registered, requested);
        if exact {
            assert!(allowed, "{policy:?} refuses what exact allows");
        }
        if !allowed {
            continue;
        }
        assert!(!planted, "{policy:?} allows a planted response parameter");
        if registered == requested {
            continue;
        }
        assert!(!requested.contains('#'), "{policy:?} allows a fragment");
        assert!(!requested.contains('\\'), "{policy:?} allows a backslash");
        // In the path: a dot-segment in the query climbs nowhere.
        let path = requested.split('?').next().unwrap_or("");
        assert!(
            !path.contains("/../") && !path.contains("/./") && !path.ends_with("/.."),
            "{policy:?} allows a dot-segment"
        );
        if policy == RedirectPolicy::GitHub {
            let path = path_of(requested).to_ascii_lowercase();
            assert!(!path.contains(';'), "github allows a path parameter");
            for encoded in ["%25", "%2e", "%2f", "%3b"] {
                assert!(
                    !path.contains(encoded),
                    "github allows {encoded} in the path"
                );
            }
            // Below the registered path: nothing a lenient decoder folds
            // into a dot (an encoded NUL, `%u`, an encoded byte above ASCII).
            if path_of(requested) != path_of(registered) {
                let lenient = path.match_indices('%').any(|(at, _)| {
                    matches!(
                        path.as_bytes().get(at + 1..at + 3),
                        Some([b'u', _]) | Some([b'0', b'0']) | Some([b'8'..=b'9' | b'a'..=b'f', _])
                    )
                });
                assert!(!lenient, "github allows a lenient encoding below the path");
            }
        }
    }
});
