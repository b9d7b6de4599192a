//! The redirect-URI policies on any registered and requested pair.
//! Invariants: `exact` is string equality (a fragment never matches);
//! every policy allows what `exact` allows; a URI with a fragment, a
//! backslash or a dot-segment is never allowed unless identical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::client::RedirectPolicy;

// Input: the registered URI, a newline, the requested one.
fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((registered, requested)) = text.split_once('\n') else {
        return;
    };
    let exact = RedirectPolicy::Exact.allows(registered, requested);
    assert_eq!(exact, registered == requested && !requested.contains('#'));
    for policy in [RedirectPolicy::Loopback, RedirectPolicy::GitHub] {
        let allowed = policy.allows(registered, requested);
        if exact {
            assert!(allowed, "{policy:?} refuses an identical URI");
        }
        if allowed && registered != requested {
            assert!(!requested.contains('#'), "{policy:?} allows a fragment");
            assert!(!requested.contains('\\'), "{policy:?} allows a backslash");
            // In the path: a dot-segment in the query climbs nowhere.
            let path = requested.split('?').next().unwrap_or("");
            assert!(
                !path.contains("/../") && !path.contains("/./") && !path.ends_with("/.."),
                "{policy:?} allows a dot-segment"
            );
        }
    }
});
