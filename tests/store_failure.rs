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
    Client, CodeKey, CodeRecord, CodeStore, CredentialStore, DeviceDecision, DeviceRecord,
    DeviceStore, Dialect, Lookup, MemoryStore, PollOutcome, Redemption, RefreshRecord,
    RefreshStore, StoreError, TokenGateLayer,
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

impl RefreshStore for Flaky {
    async fn find_refresh_token(&self, key: &CodeKey) -> Result<Lookup<RefreshRecord>, StoreError> {
        self.tokens()?;
        self.inner.find_refresh_token(key).await
    }

    async fn issue_refresh_token(
        &self,
        key: CodeKey,
        record: RefreshRecord,
    ) -> Result<(), StoreError> {
        self.tokens()?;
        self.inner.issue_refresh_token(key, record).await
    }

    async fn rotate_refresh_token(
        &self,
        key: &CodeKey,
    ) -> Result<Redemption<RefreshRecord>, StoreError> {
        self.tokens()?;
        self.inner.rotate_refresh_token(key).await
    }

    async fn revoke_family(&self, family: &str) -> Result<(), StoreError> {
        self.tokens()?;
        self.inner.revoke_family(family).await
    }
}

impl DeviceStore for Flaky {
    async fn issue_device_code(
        &self,
        key: CodeKey,
        record: DeviceRecord,
    ) -> Result<bool, StoreError> {
        self.tokens()?;
        self.inner.issue_device_code(key, record).await
    }

    async fn poll_device_code(
        &self,
        key: &CodeKey,
        client_id: &str,
        now: SystemTime,
    ) -> Result<PollOutcome, StoreError> {
        self.tokens()?;
        self.inner.poll_device_code(key, client_id, now).await
    }

    async fn find_user_code(
        &self,
        user_code: &str,
        now: SystemTime,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        self.tokens()?;
        self.inner.find_user_code(user_code, now).await
    }

    async fn decide_user_code(
        &self,
        user_code: &str,
        decision: DeviceDecision,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        self.tokens()?;
        self.inner.decide_user_code(user_code, decision, now).await
    }
}

impl CredentialStore for Flaky {
    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        if self.clients_down.load(Ordering::SeqCst) {
            return Err(StoreError::new("connection refused"));
        }
        self.inner.client(client_id).await
    }
}

impl CodeStore for Flaky {
    async fn issue(&self, key: CodeKey, record: CodeRecord) -> Result<(), StoreError> {
        self.inner.issue(key, record).await
    }

    async fn redeem(&self, key: &CodeKey) -> Result<Redemption, StoreError> {
        if self.codes_down.load(Ordering::SeqCst) {
            return Err(StoreError::new("timed out"));
        }
        self.inner.redeem(key).await
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
    impl CredentialStore for Broken {
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
        async fn redeem(&self, _: &CodeKey) -> Result<Redemption, StoreError> {
            Err(StoreError::new("disk full"))
        }
    }
    let layer = TokenGateLayer::builder()
        .credential_store(Broken)
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
            Dialect::GitHub => device.form()["device_code"].clone(),
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
        assert!(h.layer.devices().lookup("BCDF-GHJK").await.is_err());
        store.tokens_down.store(false, Ordering::SeqCst);
        assert_eq!(h.forwarded(post(&refresh_body)).await.0.status, 200);
        let answer = h
            .refused(with_accept(post(&poll), "application/json"))
            .await;
        assert_eq!(answer.json()["error"], "authorization_pending");
    }
}
