//! Fail closed: a store that errors answers 500 server_error and the inner
//! service never runs; when it comes back, requests succeed again.

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use common::*;
use std::time::SystemTime;

use tokengate::{
    Client, Dialect, MemoryStore, StoreError, TokenGateLayer, authorize::CodeRecord,
    device::DeviceDecision, device::DeviceRecord, device::PollOutcome, refresh::RefreshRecord,
    store::Claim, store::ClientStore, store::CodeKey, store::CodeStore, store::DeviceStore,
    store::Lookup, store::Redemption, store::RefreshStore, store::Reuse, store::ReuseWindow,
};

/// A memory store whose client look-ups or redemptions can be switched off.
#[derive(Clone)]
struct Flaky {
    inner: MemoryStore,
    clients_down: Arc<AtomicBool>,
    codes_down: Arc<AtomicBool>,
    tokens_down: Arc<AtomicBool>,
}

impl Flaky {
    fn tokens(&self) -> Result<(), StoreError> {
        if self.tokens_down.load(Ordering::SeqCst) {
            return Err(StoreError::new("connection reset"));
        }
        Ok(())
    }
}

// Each call goes to the memory store, unless its kind is switched off.
// Qualified paths: the memory store implements every trait, and they share
// their verbs.

impl RefreshStore for Flaky {
    async fn issue(&self, key: CodeKey, record: RefreshRecord) -> Result<(), StoreError> {
        self.tokens()?;
        RefreshStore::issue(&self.inner, key, record).await
    }

    async fn find(&self, key: &CodeKey) -> Result<Lookup<RefreshRecord>, StoreError> {
        self.tokens()?;
        RefreshStore::find(&self.inner, key).await
    }

    async fn claim(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> Result<Redemption<RefreshRecord>, StoreError> {
        self.tokens()?;
        RefreshStore::claim(&self.inner, key, claim).await
    }

    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> Result<bool, StoreError> {
        self.tokens()?;
        RefreshStore::confirm(&self.inner, key, claim).await
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) -> Result<(), StoreError> {
        self.tokens()?;
        RefreshStore::release(&self.inner, key, claim).await
    }

    async fn revoke_family(&self, family: &str) -> Result<(), StoreError> {
        self.tokens()?;
        self.inner.revoke_family(family).await
    }

    async fn reuse(
        &self,
        key: &CodeKey,
        window: ReuseWindow,
    ) -> Result<Reuse<RefreshRecord>, StoreError> {
        self.tokens()?;
        self.inner.reuse(key, window).await
    }
}

impl DeviceStore for Flaky {
    async fn issue(&self, key: CodeKey, record: DeviceRecord) -> Result<bool, StoreError> {
        self.tokens()?;
        DeviceStore::issue(&self.inner, key, record).await
    }

    async fn poll(
        &self,
        key: &CodeKey,
        client_id: &str,
        now: SystemTime,
    ) -> Result<PollOutcome, StoreError> {
        self.tokens()?;
        self.inner.poll(key, client_id, now).await
    }

    async fn find(
        &self,
        user_code: &str,
        now: SystemTime,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        self.tokens()?;
        DeviceStore::find(&self.inner, user_code, now).await
    }

    async fn decide(
        &self,
        user_code: &str,
        decision: DeviceDecision,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        self.tokens()?;
        self.inner.decide(user_code, decision, now).await
    }
}

impl ClientStore for Flaky {
    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        if self.clients_down.load(Ordering::SeqCst) {
            return Err(StoreError::new("connection refused"));
        }
        self.inner.client(client_id).await
    }
}

impl CodeStore for Flaky {
    async fn issue(&self, key: CodeKey, record: CodeRecord) -> Result<(), StoreError> {
        CodeStore::issue(&self.inner, key, record).await
    }

    async fn claim(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> Result<Redemption<Arc<CodeRecord>>, StoreError> {
        if self.codes_down.load(Ordering::SeqCst) {
            return Err(StoreError::new("timed out"));
        }
        CodeStore::claim(&self.inner, key, claim).await
    }

    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> Result<bool, StoreError> {
        CodeStore::confirm(&self.inner, key, claim).await
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) -> Result<(), StoreError> {
        CodeStore::release(&self.inner, key, claim).await
    }
}

fn flaky(dialect: Dialect) -> (Harness, Flaky) {
    let h = Harness::new(dialect);
    let store = Flaky {
        inner: h.store.clone(),
        clients_down: Arc::default(),
        codes_down: Arc::default(),
        tokens_down: Arc::default(),
    };
    let layer = TokenGateLayer::builder()
        .store(store.clone())
        .issuer("https://auth.example.com")
        .dialect(dialect)
        .clock(h.clock.clone())
        .realm("tokengate-test")
        .build();
    (Harness { layer, ..h }, store)
}

#[tokio::test]
async fn a_failing_credential_store_is_a_500_and_recovers() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let (h, store) = flaky(dialect);
        let code = h.app_code().await;
        store.clients_down.store(true, Ordering::SeqCst);
        let answer = h
            .refused(with_accept(post(&exchange(&code)), "application/json"))
            .await;
        assert_eq!(answer.status, 500);
        assert_eq!(answer.json()["error"], "server_error");
        answer.assert_no_store();
        // The store failed before the code was touched: once it is back,
        // the same code works.
        store.clients_down.store(false, Ordering::SeqCst);
        assert_eq!(h.forwarded(post(&exchange(&code))).await.0.status, 200);
    }
}

#[tokio::test]
async fn a_failing_code_store_is_a_500_and_recovers() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let (h, store) = flaky(dialect);
        let code = h.app_code().await;
        store.codes_down.store(true, Ordering::SeqCst);
        let answer = h
            .refused(with_accept(post(&exchange(&code)), "application/json"))
            .await;
        assert_eq!(answer.status, 500);
        assert_eq!(answer.json()["error"], "server_error");
        assert_eq!(answer.rejection.unwrap().code().as_str(), "server_error");
        store.codes_down.store(false, Ordering::SeqCst);
        assert_eq!(h.forwarded(post(&exchange(&code))).await.0.status, 200);
    }
}

#[tokio::test]
async fn an_issuing_failure_is_reported_not_swallowed() {
    struct Broken;
    impl ClientStore for Broken {
        async fn client(&self, _: &str) -> Result<Option<Arc<Client>>, StoreError> {
            Ok(Some(Arc::new(
                Client::confidential("app")
                    .with_secret("s")
                    .with_redirect_uri(CB),
            )))
        }
    }
    impl CodeStore for Broken {
        async fn issue(&self, _: CodeKey, _: CodeRecord) -> Result<(), StoreError> {
            Err(StoreError::new("disk full"))
        }
        async fn claim(
            &self,
            _: &tokengate::store::CodeKey,
            _: &tokengate::store::Claim,
        ) -> Result<tokengate::store::Redemption<Arc<tokengate::authorize::CodeRecord>>, StoreError>
        {
            Err(StoreError::new("disk full"))
        }
        async fn confirm(
            &self,
            _: &tokengate::store::CodeKey,
            _: &tokengate::store::Claim,
        ) -> Result<bool, StoreError> {
            Err(StoreError::new("disk full"))
        }
        async fn release(
            &self,
            _: &tokengate::store::CodeKey,
            _: &tokengate::store::Claim,
        ) -> Result<(), StoreError> {
            Err(StoreError::new("disk full"))
        }
    }
    let layer = TokenGateLayer::builder()
        .client_store(Broken)
        .code_store(Broken)
        .build();
    let authorizer = layer.authorizer();
    let request = authorizer
        .validate(&format!(
            "response_type=code&client_id=app&redirect_uri={CB_ENC}"
        ))
        .await
        .unwrap();
    let error = authorizer.approve(&request, "u").await.unwrap_err();
    assert_eq!(error.error(), "server_error");
    assert_eq!(error.location(), None);
    assert_eq!(error.into_http_response().status(), 500);
}

#[tokio::test]
async fn failing_refresh_and_device_stores_are_500s_and_recover() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let (h, store) = flaky(dialect);
        let refresh = h.app_refresh_token().await;
        let device = h.refused(post_device("client_id=tv")).await;
        let device_code = match dialect {
            Dialect::Rfc6749 => device.json()["device_code"].as_str().unwrap().to_owned(),
            _ => device.form()["device_code"].clone(),
        };
        store.tokens_down.store(true, Ordering::SeqCst);
        let refresh_body = format!(
            "grant_type=refresh_token&refresh_token={refresh}&client_id=app&client_secret=s3cret"
        );
        let poll = format!("grant_type={DEVICE_GRANT}&client_id=tv&device_code={device_code}");
        for request in [
            post(&refresh_body),
            post(&poll),
            post_device("client_id=tv"),
        ] {
            let answer = h.refused(with_accept(request, "application/json")).await;
            assert_eq!(answer.status, 500);
            assert_eq!(answer.json()["error"], "server_error");
        }
        assert!(h.layer.devices().lookup("BCDF-GHJK", None).await.is_err());
        store.tokens_down.store(false, Ordering::SeqCst);
        assert_eq!(h.forwarded(post(&refresh_body)).await.0.status, 200);
        let answer = h
            .refused(with_accept(post(&poll), "application/json"))
            .await;
        assert_eq!(answer.json()["error"], "authorization_pending");
    }
}

/// Fail closed on a code replay: when the refresh store cannot revoke the
/// replayed code's refresh tokens, the answer is 500 (the hook is told all
/// the same); once the store is back, the next replay revokes them.
#[tokio::test]
async fn a_revocation_that_fails_on_a_code_replay_is_a_500() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let (base, store) = flaky(dialect);
        let replays = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::clone(&replays);
        let layer = TokenGateLayer::builder()
            .store(store.clone())
            .issuer("https://auth.example.com")
            .dialect(dialect)
            .clock(base.clock.clone())
            .on_code_replay(move |_| {
                seen.fetch_add(1, Ordering::SeqCst);
            })
            .build();
        let h = Harness { layer, ..base };
        let code = h.app_code().await;
        let (answer, seen) = h.forwarded(post(&exchange(&code))).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let token = h
            .layer
            .refresh_tokens()
            .issue(&seen.grant.unwrap())
            .await
            .unwrap();
        store.tokens_down.store(true, Ordering::SeqCst);
        let answer = h
            .refused(with_accept(post(&exchange(&code)), "application/json"))
            .await;
        assert_eq!(answer.status, 500, "{}", answer.text());
        assert_eq!(answer.json()["error"], "server_error");
        answer.assert_no_store();
        assert_eq!(replays.load(Ordering::SeqCst), 1);
        store.tokens_down.store(false, Ordering::SeqCst);
        let answer = h
            .refused(with_accept(post(&exchange(&code)), "application/json"))
            .await;
        assert_eq!(
            answer.status,
            if dialect == Dialect::GitHub { 200 } else { 400 }
        );
        assert_eq!(
            answer.json()["error"],
            if dialect == Dialect::GitHub {
                "bad_verification_code"
            } else {
                "invalid_grant"
            }
        );
        assert_eq!(replays.load(Ordering::SeqCst), 2);
        let refresh = format!(
            "grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret"
        );
        let answer = h
            .refused(with_accept(post(&refresh), "application/json"))
            .await;
        assert_eq!(
            answer.json()["error"],
            if dialect == Dialect::GitHub {
                "bad_refresh_token"
            } else {
                "invalid_grant"
            }
        );
    }
}
