//! Properties over generated input (proptest): the invariants the gate's
//! answers rest on, checked on many more cases than the examples.

mod common;

use std::sync::OnceLock;

use common::*;
use proptest::prelude::*;
use tokengate::{Dialect, client::RedirectPolicy};

/// One runtime for every generated case (the gate's futures are short).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

const DEFINED: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "code_verifier",
    "refresh_token",
    "scope",
    "device_code",
];

/// The parameters an authorization response adds to the redirect URI.
const RESPONSE_NAMES: &[&str] = &["code", "state", "error", "error_description", "error_uri"];

/// A form value: any text, form-encoded.
fn value() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| form_urlencoded::byte_serialize(s.as_bytes()).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A defined parameter sent twice is refused, whatever the values, the
    /// other parameters and the order, in both dialects.
    #[test]
    fn a_repeated_defined_parameter_is_always_refused(
        name in proptest::sample::select(DEFINED),
        first in value(),
        second in value(),
        others in proptest::collection::vec(("[a-z_]{1,12}", value()), 0..6),
        github in any::<bool>(),
    ) {
        let mut pairs: Vec<(String, String)> = others
            .into_iter()
            .filter(|(n, _)| !DEFINED.contains(&n.as_str()))
            .collect();
        pairs.insert(0, (name.to_owned(), first));
        pairs.push((name.to_owned(), second));
        let body = pairs
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let dialect = if github { Dialect::GitHub } else { Dialect::Rfc6749 };
        let answer = runtime().block_on(Harness::new(dialect).refused(post(&body)));
        let rejection = answer.rejection.expect("refused");
        prop_assert_eq!(rejection.error(), "invalid_request");
        prop_assert!(rejection.description().contains("repeated"));
    }

    /// The exact policy is string equality: nothing else matches, and equal
    /// strings without a fragment or a query always do (a query may plant a
    /// response parameter: the next property).
    #[test]
    fn the_exact_policy_is_string_equality(registered in ".{0,40}", requested in ".{0,40}") {
        let allowed = RedirectPolicy::Exact.allows(&registered, &requested);
        prop_assert!(!allowed || registered == requested, "{:?} {:?}", registered, requested);
        prop_assert_eq!(allowed, registered == requested && !requested.contains(['#', '?']));
    }

    /// No policy allows a redirect URI whose query names a parameter of the
    /// authorization response, wherever it sits in the query and however
    /// its name is percent-encoded, not even one equal to the registered
    /// URI; the same URI without it is allowed, so the name is the reason.
    #[test]
    fn no_policy_allows_a_planted_response_parameter(
        name in proptest::sample::select(RESPONSE_NAMES),
        encoded in proptest::collection::vec(any::<bool>(), 17),
        planted in value(),
        // Plain values: a relaxed policy refuses a `%5C` wherever it is,
        // which would make the check on the clean URI fail for another reason.
        before in proptest::collection::vec(("[a-z_]{1,8}", "[a-z0-9.~-]{0,8}"), 0..3),
        after in proptest::collection::vec(("[a-z_]{1,8}", "[a-z0-9.~-]{0,8}"), 0..3),
        sub in "(/[a-z]{1,6}){0,2}",
        policy in proptest::sample::select(&[RedirectPolicy::Exact, RedirectPolicy::Loopback, RedirectPolicy::GitHub][..]),
    ) {
        let spelled: String = name
            .chars()
            .zip(&encoded)
            .map(|(c, &encode)| if encode { format!("%{:02X}", c as u32) } else { c.to_string() })
            .collect();
        let others = |pairs: &[(String, String)]| -> Vec<String> {
            pairs
                .iter()
                .filter(|(n, _)| !RESPONSE_NAMES.contains(&n.as_str()))
                .map(|(n, v)| format!("{n}={v}"))
                .collect()
        };
        let (before, after) = (others(&before), others(&after));
        let with = [before.clone(), vec![format!("{spelled}={planted}")], after.clone()].concat();
        let without = [before, after].concat();
        let registered = "http://127.0.0.1/cb";
        let requested = format!("http://127.0.0.1:9/cb{sub}?{}", with.join("&"));
        prop_assert!(!policy.allows(registered, &requested), "{}", requested);
        prop_assert!(!policy.allows(&requested, &requested), "{}", requested);
        let clean = format!("http://127.0.0.1:9/cb{sub}?{}", without.join("&"));
        prop_assert!(RedirectPolicy::GitHub.allows(registered, &clean), "{}", clean);
        prop_assert!(policy.allows(&clean, &clean), "{}", clean);
    }

    /// No relaxed policy allows a URI carrying a backslash, a fragment or
    /// userinfo, or one of another scheme than the registered one.
    #[test]
    fn relaxed_policies_refuse_what_browsers_read_differently(
        path in "[a-z/]{0,12}",
        trick in proptest::sample::select(&["\\\\", "%5c", "%5C", "#x", "user@"][..]),
        policy in proptest::sample::select(&[RedirectPolicy::Loopback, RedirectPolicy::GitHub][..]),
    ) {
        let registered = "http://127.0.0.1/cb";
        let requested = if trick == "user@" {
            format!("http://user@127.0.0.1:9/cb/{path}")
        } else {
            format!("http://127.0.0.1:9/cb/{path}{trick}")
        };
        prop_assert!(!policy.allows(registered, &requested), "{}", requested);
        prop_assert!(!policy.allows(registered, &requested.replacen("http", "https", 1)));
    }

    /// An unknown client and a wrong secret get byte-identical answers,
    /// whatever the id and secret.
    #[test]
    fn unknown_client_and_wrong_secret_answer_identically(
        id in "[A-Za-z0-9._-]{1,24}",
        secret in "[ -~]{0,40}",
        github in any::<bool>(),
    ) {
        prop_assume!(id != "app" && secret != "s3cret" && secret != "rotated-s3cret");
        let dialect = if github { Dialect::GitHub } else { Dialect::Rfc6749 };
        let h = Harness::new(dialect);
        let body = "grant_type=authorization_code&code=x";
        let unknown = runtime().block_on(h.refused(post_basic(&id, &secret, body)));
        let wrong = runtime().block_on(h.refused(post_basic("app", &secret, body)));
        prop_assert_eq!(unknown.status, wrong.status);
        prop_assert_eq!(unknown.body, wrong.body);
        prop_assert_eq!(unknown.headers, wrong.headers);
    }
}
