//! What the issuing side shares with the gate: the settings and a handle on
//! each store, with the store types erased, so that [`Authorizer`],
//! [`RefreshTokens`] and [`Devices`] need no type parameters and never go
//! through the checker.
//!
//! [`Authorizer`]: crate::authorize::Authorizer
//! [`RefreshTokens`]: crate::refresh::RefreshTokens
//! [`Devices`]: crate::device::Devices

use std::{sync::Arc, time::SystemTime};

use crate::{
    client::Client,
    record::{
        code::CodeRecord,
        device::{DeviceDecision, DeviceRecord},
        refresh::RefreshRecord,
    },
    secret::CodeKey,
    settings::Settings,
    store::{BoxFuture, ClientStore, CodeStore, DeviceStore, RefreshStore, StoreError},
};

/// The settings and stores the issuing side uses; one per layer.
pub(crate) struct Issuing {
    pub(crate) settings: Arc<Settings>,
    pub(crate) clients: Arc<dyn FindClient>,
    pub(crate) codes: Arc<dyn IssueCode>,
    /// `None` when the layer has no refresh store.
    pub(crate) refresh: Option<Arc<dyn IssueRefresh>>,
    /// `None` when the layer has no device store.
    pub(crate) devices: Option<Arc<dyn DecideDevice>>,
}

// One object-safe trait per store, with only the calls the issuing side
// makes; each store trait gets them by a blanket impl. A boxed future per
// call is nothing next to minting a code, and keeps the gate's own path
// (generic, unboxed) apart.

pub(crate) trait FindClient: Send + Sync {
    fn client<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<Client>>, StoreError>>;
}

impl<C: ClientStore> FindClient for C {
    fn client<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<Client>>, StoreError>> {
        Box::pin(ClientStore::client(self, client_id))
    }
}

pub(crate) trait IssueCode: Send + Sync {
    fn issue(&self, key: CodeKey, record: CodeRecord) -> BoxFuture<'_, Result<(), StoreError>>;
}

impl<K: CodeStore> IssueCode for K {
    fn issue(&self, key: CodeKey, record: CodeRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(CodeStore::issue(self, key, record))
    }
}

pub(crate) trait IssueRefresh: Send + Sync {
    fn issue(&self, key: CodeKey, record: RefreshRecord) -> BoxFuture<'_, Result<(), StoreError>>;
}

impl<R: RefreshStore> IssueRefresh for R {
    fn issue(&self, key: CodeKey, record: RefreshRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(RefreshStore::issue(self, key, record))
    }
}

pub(crate) trait DecideDevice: Send + Sync {
    fn find<'a>(
        &'a self,
        user_code: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Option<DeviceRecord>, StoreError>>;

    fn decide<'a>(
        &'a self,
        user_code: &'a str,
        decision: DeviceDecision,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

impl<D: DeviceStore> DecideDevice for D {
    fn find<'a>(
        &'a self,
        user_code: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Option<DeviceRecord>, StoreError>> {
        Box::pin(DeviceStore::find(self, user_code, now))
    }

    fn decide<'a>(
        &'a self,
        user_code: &'a str,
        decision: DeviceDecision,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(DeviceStore::decide(self, user_code, decision, now))
    }
}
