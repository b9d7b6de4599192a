//! The device flow (RFC 8628, GitHub's): the authorization endpoint the gate
//! answers itself, polling with the interval rules, the user's decision, and
//! a single redemption, in both dialects.

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use tokengate::{Dialect, GrantType, MemoryStore, TokenGateLayer};

/// Starts a device authorization for `client_id` with `scope`; returns
/// (device_code, user_code).
async fn start(h: &Harness, client_id: &str, scope: &str) -> (String, String) {
    let request = with_accept(
        post_device(&format!("client_id={client_id}&scope={scope}")),
        "application/json",
    );
    let answer = h.refused(request).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    (
        body["device_code"].as_str().unwrap().to_owned(),
        body["user_code"].as_str().unwrap().to_owned(),
    )
}

fn poll(client_id: &str, device_code: &str) -> String {
    format!("grant_type={DEVICE_GRANT}&client_id={client_id}&device_code={device_code}")
}

#[tokio::test]
async fn the_device_endpoint_answers_rfc8628_fields() {
    let h = Harness::new(Dialect::Rfc6749);
    let answer = h.refused(post_device("client_id=tv&scope=repo+user")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    answer.assert_no_store();
    let body = answer.json();
    assert_eq!(body["device_code"].as_str().unwrap().len(), 43);
    let user_code = body["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(
        user_code
            .chars()
            .filter(|c| *c != '-')
            .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c))
    );
    assert_eq!(
        body["verification_uri"],
        "https://auth.example.com/login/device"
    );
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["interval"], 5);
    // GitHub's default format is form-urlencoded.
    let g = Harness::new(Dialect::GitHub);
    let answer = g.refused(post_device("client_id=gh-tv&scope=repo")).await;
    let form = answer.form();
    assert_eq!(form["expires_in"], "900");
    assert_eq!(form["interval"], "5");
    assert!(form.contains_key("device_code") && form.contains_key("user_code"));
    // Each authorization is fresh.
    let (a, x) = start(&h, "tv", "").await;
    let (b, y) = start(&h, "tv", "").await;
    assert_ne!(a, b);
    assert_ne!(x, y);
}

#[tokio::test]
async fn the_device_endpoint_checks_client_flow_and_scope() {
    let h = Harness::new(Dialect::Rfc6749);
    h.refused(post_device("client_id=app&client_secret=s3cret"))
        .await
        .assert_rfc(400, "unauthorized_client");
    // Authentication comes first (docs/contract.md#order-of-checks).
    h.refused(post_device("client_id=app"))
        .await
        .assert_rfc(401, "invalid_client");
    h.refused(post_device("client_id=nobody"))
        .await
        .assert_rfc(401, "invalid_client");
    h.refused(post_device("client_id=tv&scope=admin"))
        .await
        .assert_rfc(400, "invalid_scope");
    // RFC 6749 dialect: a confidential client authenticates.
    h.refused(post_device("client_id=gh-tv"))
        .await
        .assert_rfc(401, "invalid_client");
    let answer = h
        .refused(post_device("client_id=gh-tv&client_secret=gh-tv-s3cret"))
        .await;
    assert_eq!(answer.status, 200);
    // Framing applies as on the token path.
    let get = http::Request::get(DEVICE).body(String::new()).unwrap();
    assert_eq!(h.refused(get).await.status, 405);

    let g = Harness::new(Dialect::GitHub);
    let answer = g.refused(post_device("client_id=app")).await;
    answer.assert_github("device_flow_disabled");
    // GitHub: the client id alone is enough, a wrong secret is not.
    assert_eq!(g.refused(post_device("client_id=gh-tv")).await.status, 200);
    g.refused(post_device("client_id=gh-tv&client_secret=wrong"))
        .await
        .assert_github("incorrect_client_credentials");
}

#[tokio::test]
async fn the_spec_interval_vector() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let (device_code, _) = start(&h, "tv", "repo").await;
        let at = |answer: Answer, expected: &str, interval: Option<u64>| {
            let request_json = answer.json();
            assert_eq!(request_json["error"], expected, "{request_json}");
            match dialect {
                Dialect::GitHub => {
                    assert_eq!(answer.status, 200);
                    assert_eq!(
                        request_json.get("interval").and_then(|v| v.as_u64()),
                        interval
                    );
                }
                _ => assert_eq!(answer.status, 400),
            }
        };
        let request = || with_accept(post(&poll("tv", &device_code)), "application/json");
        at(h.refused(request()).await, "authorization_pending", None); // t=0
        h.clock.advance(Duration::from_secs(2));
        at(h.refused(request()).await, "slow_down", Some(10)); // t=2
        h.clock.advance(Duration::from_secs(6));
        at(h.refused(request()).await, "slow_down", Some(15)); // t=8
        h.clock.advance(Duration::from_secs(16));
        at(h.refused(request()).await, "authorization_pending", None); // t=24
    }
}

#[tokio::test]
async fn an_approved_code_is_redeemed_exactly_once() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let (device_code, user_code) = start(&h, "tv", "repo").await;
        let devices = h.layer.devices();
        // The page shows what is asked, whatever case the user types.
        let pending = devices
            .lookup(&user_code.to_lowercase(), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pending.client_id, "tv");
        assert_eq!(pending.scopes, ["repo"]);
        assert!(
            devices
                .approve(&user_code.replace('-', " "), "alice", None)
                .await
                .unwrap()
        );
        assert!(
            !devices.deny(&user_code, None).await.unwrap(),
            "decided once"
        );
        assert!(devices.lookup(&user_code, None).await.unwrap().is_none());
        let body = poll("tv", &device_code);
        let (answer, seen) = h.forwarded(post(&body)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(&seen.body[..], body.as_bytes());
        let grant = seen.grant.unwrap();
        assert_eq!(grant.grant_type(), GrantType::DeviceCode);
        assert_eq!(grant.subject(), Some("alice"));
        assert_eq!(grant.scopes(), ["repo"]);
        assert_eq!(grant.device().unwrap().user_code, user_code);
        // The device may get a refresh token too.
        assert!(h.layer.refresh_tokens().issue(&grant).await.is_ok());
        h.clock.advance(Duration::from_secs(5));
        let answer = h.refused(post(&body)).await;
        match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, "invalid_grant"),
            _ => answer.assert_github("incorrect_device_code"),
        }
    }
}

#[tokio::test]
async fn concurrent_polls_of_an_approved_code_forward_one() {
    let h = Arc::new(Harness::new(Dialect::Rfc6749));
    let (device_code, user_code) = start(&h, "tv", "").await;
    assert!(
        h.layer
            .devices()
            .approve(&user_code, "alice", None)
            .await
            .unwrap()
    );
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let h = Arc::clone(&h);
            let body = poll("tv", &device_code);
            tokio::spawn(async move {
                use tower::{ServiceBuilder, ServiceExt, service_fn};
                let service = ServiceBuilder::new()
                    .layer(h.layer.clone())
                    .service(service_fn(
                        |_: http::Request<tokengate::RequestBody<String>>| async {
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                "token".to_owned(),
                            ))
                        },
                    ));
                Answer::read(service.oneshot(post(&body)).await.unwrap()).await
            })
        })
        .collect();
    let mut tokens = 0;
    for task in tasks {
        if task.await.unwrap().rejection.is_none() {
            tokens += 1;
        }
    }
    assert_eq!(tokens, 1);
}

#[tokio::test]
async fn denied_expired_unknown_and_missing() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let check = |answer: Answer, rfc: &str, github: &str| match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, rfc),
            _ => answer.assert_github(github),
        };
        let (device_code, user_code) = start(&h, "tv", "").await;
        assert!(h.layer.devices().deny(&user_code, None).await.unwrap());
        check(
            h.refused(post(&poll("tv", &device_code))).await,
            "access_denied",
            "access_denied",
        );

        let (device_code, user_code) = start(&h, "tv", "").await;
        h.clock.advance(Duration::from_secs(900));
        assert!(
            !h.layer
                .devices()
                .approve(&user_code, "alice", None)
                .await
                .unwrap()
        );
        check(
            h.refused(post(&poll("tv", &device_code))).await,
            "expired_token",
            "expired_token",
        );

        check(
            h.refused(post(&poll("tv", "forged"))).await,
            "invalid_grant",
            "incorrect_device_code",
        );
        check(
            h.refused(post(&format!("grant_type={DEVICE_GRANT}&client_id=tv")))
                .await,
            "invalid_request",
            "incorrect_device_code",
        );
    }
}

#[tokio::test]
async fn another_clients_poll_changes_nothing() {
    let h = Harness::new(Dialect::Rfc6749);
    let (device_code, _) = start(&h, "tv", "").await;
    // gh-tv authenticates properly but the code is tv's.
    let foreign = format!(
        "grant_type={DEVICE_GRANT}&client_id=gh-tv&client_secret=gh-tv-s3cret&device_code={device_code}"
    );
    h.refused(post(&foreign))
        .await
        .assert_rfc(400, "invalid_grant");
    // tv's own first poll is not slowed down by the stranger's.
    h.refused(post(&poll("tv", &device_code)))
        .await
        .assert_rfc(400, "authorization_pending");
}

#[tokio::test]
async fn the_device_grant_needs_the_flow_enabled() {
    let h = Harness::new(Dialect::Rfc6749);
    h.refused(post(&format!("{}&client_secret=s3cret", poll("app", "x"))))
        .await
        .assert_rfc(400, "unauthorized_client");
    let g = Harness::new(Dialect::GitHub);
    g.refused(post(&format!("{}&client_secret=s3cret", poll("app", "x"))))
        .await
        .assert_github("device_flow_disabled");
}

#[tokio::test]
async fn without_a_device_store_there_is_no_device_flow() {
    let store = MemoryStore::new();
    let layer = TokenGateLayer::builder()
        .client_store(store.clone())
        .code_store(store)
        .build();
    let h = Harness {
        layer,
        ..Harness::new(Dialect::Rfc6749)
    };
    h.refused(post(&poll("tv", "x")))
        .await
        .assert_rfc(400, "unsupported_grant_type");
    // The device path is just another path then.
    let (answer, _) = h.forwarded(post_device("client_id=tv")).await;
    assert_eq!(answer.text(), "inner");
}

#[tokio::test]
async fn the_verification_uri_and_timing_are_configurable() {
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.verification_uri("https://example.com/activate")
            .device_timing(Duration::from_secs(60), 2)
            .device_path("/device")
    });
    let answer = h.refused(post_to("/device", "client_id=tv")).await;
    let body = answer.json();
    assert_eq!(body["verification_uri"], "https://example.com/activate");
    assert_eq!(body["expires_in"], 60);
    assert_eq!(body["interval"], 2);
}

#[tokio::test]
async fn slow_down_carries_the_interval_only_at_github() {
    // RFC 8628 §3.5: the client adds 5 s itself; no field says so.
    let h = Harness::new(Dialect::Rfc6749);
    let (device_code, _) = start(&h, "tv", "").await;
    h.refused(post(&poll("tv", &device_code)))
        .await
        .assert_rfc(400, "authorization_pending");
    let answer = h.refused(post(&poll("tv", &device_code))).await;
    answer.assert_rfc(400, "slow_down");
    let body = answer.json();
    let fields: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, ["error", "error_description"], "{body}");
    assert_eq!(answer.rejection.unwrap().interval(), None);

    // GitHub: the new interval, last, in every format; each early poll adds
    // 5 s to it.
    let g = Harness::new(Dialect::GitHub);
    let (device_code, _) = start(&g, "tv", "").await;
    g.refused(post(&poll("tv", &device_code)))
        .await
        .assert_github("authorization_pending");
    let uri = "/apps/building-oauth-apps/authorizing-oauth-apps#error-codes-for-the-device-flow";
    let text = "Too many requests have been made in the same timeframe.";
    let form = g.refused(post(&poll("tv", &device_code))).await;
    form.assert_github("slow_down");
    assert_eq!(
        form.text(),
        format!(
            "error=slow_down&error_description={}&error_uri={}&interval=10",
            form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>()
        )
    );
    assert_eq!(form.rejection.unwrap().interval(), Some(10));
    let json = g
        .refused(with_accept(
            post(&poll("tv", &device_code)),
            "application/json",
        ))
        .await;
    assert_eq!(json.status, 200);
    assert_eq!(json.header("content-type"), Some("application/json"));
    json.assert_no_store();
    assert_eq!(
        json.text(),
        format!(
            r#"{{"error":"slow_down","error_description":"{text}","error_uri":"{uri}","interval":15}}"#
        )
    );
    let xml = g
        .refused(with_accept(
            post(&poll("tv", &device_code)),
            "application/xml",
        ))
        .await;
    assert_eq!(xml.status, 200);
    assert_eq!(
        xml.header("content-type"),
        Some("application/xml; charset=utf-8")
    );
    xml.assert_no_store();
    assert_eq!(
        xml.text(),
        format!(
            "<OAuth><error>slow_down</error><error_description>{text}</error_description><error_uri>{uri}</error_uri><interval>20</interval></OAuth>"
        )
    );
    // Only slow_down carries it: a poll on time is pending, without one.
    g.clock.advance(Duration::from_secs(20));
    let pending = g.refused(post(&poll("tv", &device_code))).await;
    pending.assert_github("authorization_pending");
    assert!(!pending.form().contains_key("interval"));
}

/// RFC 8628 §5.1: the verification side rate-limits failed user codes, per
/// peer by default (GitHub's 50 an hour). Past the limit a look-up is
/// refused without reaching the store, even for a real code, until the
/// window ends; other peers are not affected; a successful look-up costs
/// nothing.
#[tokio::test]
async fn failed_user_codes_are_limited_per_peer() {
    use tokengate::device::VerifyError;
    let h = Harness::new(Dialect::Rfc6749);
    let (_, user_code) = start(&h, "tv", "repo").await;
    let devices = h.layer.devices();
    let guesser = Some("203.0.113.5".parse().unwrap());
    let honest = Some("198.51.100.1".parse().unwrap());
    for _ in 0..5 {
        assert!(devices.lookup(&user_code, honest).await.unwrap().is_some());
    }
    for i in 0..50 {
        let guess = format!("BCDF-GH{}{}", ["J", "K", "L"][i % 3], ["M", "N"][i % 2]);
        let found = devices.lookup(&guess, guesser).await.unwrap();
        assert!(found.is_none(), "{guess} is not a live code");
    }
    // The 51st: refused, a real code included, whichever verb.
    let refused = |result: Result<_, VerifyError>| match result {
        Err(VerifyError::TooManyGuesses { retry_after }) => retry_after,
        Err(other) => panic!("expected TooManyGuesses, got {other}"),
        Ok(_) => panic!("expected TooManyGuesses"),
    };
    let wait = refused(devices.lookup(&user_code, guesser).await.map(|_| ()));
    assert_eq!(wait, Duration::from_secs(3600));
    refused(
        devices
            .approve(&user_code, "mallory", guesser)
            .await
            .map(|_| ()),
    );
    refused(devices.deny(&user_code, guesser).await.map(|_| ()));
    let error = devices.lookup("nope", guesser).await.unwrap_err();
    assert_eq!(error.retry_after_secs(), Some(3600));
    // The honest peer is unaffected, and its approval went through.
    assert!(devices.approve(&user_code, "alice", honest).await.unwrap());
    // The window ends.
    h.clock.advance(Duration::from_secs(3600));
    assert!(
        devices
            .lookup("BCDF-GHJK", guesser)
            .await
            .unwrap()
            .is_none()
    );
}

/// A wrong code is a guess whichever verb carries it: failed approvals and
/// denials (a code that matches nothing, or is not a user code at all)
/// count against the peer like failed look-ups, and successful ones cost
/// nothing, however many.
#[tokio::test]
async fn failed_approvals_and_denials_count_and_successful_ones_do_not() {
    use tokengate::device::{UserCodeLimits, VerifyError};
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.user_code_limits(Some(UserCodeLimits::new(3, Duration::from_secs(60))))
    });
    let devices = h.layer.devices();
    let peer = Some("203.0.113.5".parse().unwrap());
    for _ in 0..4 {
        let (_, user_code) = start(&h, "tv", "").await;
        assert!(devices.approve(&user_code, "alice", peer).await.unwrap());
        let (_, user_code) = start(&h, "tv", "").await;
        assert!(devices.deny(&user_code, peer).await.unwrap());
    }
    assert!(!devices.approve("BCDF-GHJK", "mallory", peer).await.unwrap());
    assert!(!devices.deny("BCDF-GHJK", peer).await.unwrap());
    assert!(
        !devices
            .approve("not a code", "mallory", peer)
            .await
            .unwrap()
    );
    // Three failures: the limit. A real code is refused now.
    let (_, user_code) = start(&h, "tv", "").await;
    match devices.approve(&user_code, "alice", peer).await {
        Err(VerifyError::TooManyGuesses { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(60));
        }
        other => panic!("expected TooManyGuesses, got {other:?}"),
    }
    // Another peer approves it.
    let other = Some("198.51.100.1".parse().unwrap());
    assert!(devices.approve(&user_code, "alice", other).await.unwrap());
}

/// The verification page finds the browser's address the way the gate
/// finds a token request's: the configured peer source, the connection by
/// default.
#[tokio::test]
async fn the_verification_side_finds_the_peer_as_the_gate_does() {
    use tokengate::peer::PeerSource;
    let page = |forwarded: &str| {
        let request = from_peer(
            http::Request::get("/device")
                .header("x-forwarded-for", forwarded)
                .body(())
                .unwrap(),
            "192.0.2.44",
        );
        request.into_parts().0
    };
    let h = Harness::with(Dialect::Rfc6749, |b| b.peer(PeerSource::x_forwarded_for(1)));
    let devices = h.layer.devices();
    assert_eq!(
        devices.peer(&page("10.0.0.1, 203.0.113.9")),
        Some("203.0.113.9".parse().unwrap())
    );
    let h = Harness::new(Dialect::Rfc6749);
    let devices = h.layer.devices();
    assert_eq!(
        devices.peer(&page("203.0.113.9")),
        Some("192.0.2.44".parse().unwrap())
    );
    let (without, ()) = http::Request::get("/device").body(()).unwrap().into_parts();
    assert_eq!(devices.peer(&without), None);
    // Its Debug output shows nothing of the stores behind it.
    assert_eq!(format!("{devices:?}"), "Devices { .. }");
}

#[tokio::test]
async fn user_code_limits_can_add_a_total_or_be_turned_off() {
    use tokengate::device::{UserCodeLimits, VerifyError};
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.user_code_limits(Some(
            UserCodeLimits::new(3, Duration::from_secs(60)).total(5),
        ))
    });
    let devices = h.layer.devices();
    for i in 0..5 {
        let peer = Some(format!("203.0.113.{i}").parse().unwrap());
        assert!(devices.lookup("BCDF-GHJK", peer).await.unwrap().is_none());
    }
    // Five failures from five peers: the total closes the page for all.
    let anyone = Some("198.51.100.1".parse().unwrap());
    assert!(matches!(
        devices.lookup("BCDF-GHJK", anyone).await,
        Err(VerifyError::TooManyGuesses { .. })
    ));

    let h = Harness::with(Dialect::Rfc6749, |b| b.user_code_limits(None));
    let devices = h.layer.devices();
    let peer = Some("203.0.113.1".parse().unwrap());
    for _ in 0..200 {
        assert!(devices.lookup("BCDF-GHJK", peer).await.unwrap().is_none());
    }
}

/// Issue 12, item 5: the `verification_uri` is configuration. A forged
/// `Host` (or an absolute request target naming another host) used to steer
/// it, sending users to the attacker's page to type their user code.
#[tokio::test]
async fn a_forged_host_does_not_steer_the_verification_uri() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let client = if dialect == Dialect::GitHub {
            "gh-tv"
        } else {
            "tv"
        };
        let body = format!("client_id={client}");
        let mut forged_host = with_accept(post_device(&body), "application/json");
        forged_host
            .headers_mut()
            .insert("host", "evil.example".parse().unwrap());
        let mut absolute = with_accept(post_to(DEVICE, &body), "application/json");
        *absolute.uri_mut() = format!("https://evil.example{DEVICE}").parse().unwrap();
        for request in [forged_host, absolute] {
            let answer = h.refused(request).await;
            assert_eq!(answer.status, 200, "{dialect:?}: {}", answer.text());
            answer.assert_no_store();
            assert_eq!(
                answer.json()["verification_uri"],
                "https://auth.example.com/login/device",
                "{dialect:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_verification_uri_defaults_to_the_issuer_and_an_explicit_one_wins() {
    let under_a_path = Harness::with(Dialect::Rfc6749, |b| {
        b.issuer("https://login.example.org/tenant/")
    });
    let answer = under_a_path.refused(post_device("client_id=tv")).await;
    assert_eq!(
        answer.json()["verification_uri"],
        "https://login.example.org/tenant/login/device"
    );
    let explicit = Harness::with(Dialect::Rfc6749, |b| {
        b.issuer("https://login.example.org")
            .verification_uri("https://example.com/activate")
    });
    let answer = explicit.refused(post_device("client_id=tv")).await;
    assert_eq!(
        answer.json()["verification_uri"],
        "https://example.com/activate"
    );
}

#[test]
fn a_device_store_without_an_issuer_or_verification_uri_does_not_build() {
    let error = TokenGateLayer::builder()
        .store(MemoryStore::new())
        .try_build()
        .expect_err("the device endpoint has no absolute URI to send users to");
    let message = error.to_string();
    assert!(message.contains("verification_uri"), "{message}");
    assert!(message.contains(".issuer(url)"), "{message}");
    // The device store alone is what needs one.
    TokenGateLayer::builder()
        .client_store(MemoryStore::new())
        .code_store(MemoryStore::new())
        .device_store(MemoryStore::new())
        .try_build()
        .expect_err("a device store alone needs one too");
    TokenGateLayer::builder()
        .store(MemoryStore::new())
        .verification_uri("https://example.com/activate")
        .try_build()
        .expect("an explicit verification_uri suffices");
    TokenGateLayer::builder()
        .client_store(MemoryStore::new())
        .code_store(MemoryStore::new())
        .refresh_store(MemoryStore::new())
        .try_build()
        .expect("without a device store, no issuer is needed");
}

/// `TokenGateLayer::new` has no issuer, so it leaves the device flow off
/// rather than guessing one: the device grant is unsupported and the device
/// path goes to the inner service.
#[tokio::test]
async fn the_one_line_layer_has_no_device_flow() {
    let base = Harness::new(Dialect::Rfc6749);
    let h = Harness {
        layer: TokenGateLayer::new(base.store.clone()),
        ..base
    };
    h.refused(post(&poll("tv", "x")))
        .await
        .assert_rfc(400, "unsupported_grant_type");
    let (answer, _) = h.forwarded(post_device("client_id=tv")).await;
    assert_eq!(answer.text(), "inner");
    // The refresh grant is still served.
    let token = h.app_refresh_token().await;
    let (answer, _) = h
        .forwarded(post(&format!(
            "grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret"
        )))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}
