//! The device authorization endpoint (RFC 8628 §3.1-3.2), which the gate
//! answers itself: authenticate the client, check it may use the device
//! flow and the scopes, and issue a device code and a user code.

use bytes::Bytes;
use http::Response;

use super::Gate;
use crate::{
    authenticate::authenticate,
    client::GrantType,
    dialect::Dialect,
    error::Failure,
    format::{FieldValue, ResponseFormat},
    grant::store_failed,
    parse::TokenRequest,
    record::device::{DeviceRecord, DeviceStatus, random_user_code},
    scope,
    secret::CodeKey,
    store::{ClientStore, CodeStore, DeviceStore, RefreshStore, StoreError},
};

/// What the device authorization endpoint answers (RFC 8628 §3.2).
pub(super) struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    expires_in: u64,
    interval: u64,
}

impl DeviceAuthorization {
    pub(super) fn response(&self, format: ResponseFormat) -> Response<Bytes> {
        format
            .response(&[
                ("device_code", FieldValue::from(self.device_code.as_str())),
                ("user_code", self.user_code.as_str().into()),
                ("verification_uri", self.verification_uri.as_str().into()),
                ("expires_in", self.expires_in.into()),
                ("interval", self.interval.into()),
            ])
            .map(Bytes::from)
    }
}

impl<C, K, R, D> Gate<C, K, R, D>
where
    C: ClientStore,
    K: CodeStore,
    R: RefreshStore,
    D: DeviceStore,
{
    pub(super) async fn authorize_device(
        &self,
        request: &TokenRequest,
    ) -> Result<DeviceAuthorization, Failure> {
        let settings = &*self.settings;
        let store = self
            .devices
            .as_deref()
            .ok_or(Failure::GrantTypeUnsupported)?;
        let id_suffices = settings.dialect() == Dialect::GitHub;
        let client = authenticate(&*self.clients, &self.settings, request, id_suffices).await?;
        if !client.allows_grant(GrantType::DeviceCode) {
            return Err(Failure::DeviceFlowDisabled);
        }
        let scopes = scope::parse(request.scope.as_deref(), settings.dialect());
        if !scope::is_valid(&scopes) || !client.allows_scopes(&scopes) {
            return Err(Failure::ScopeNotAllowed);
        }
        let now = settings.clock.now();
        // 40 hex digits in GitHub's shape, 43 base64url characters
        // otherwise; stored under its digest only.
        let device_code = settings
            .token_shape
            .device_code()
            .map_err(|_| Failure::Store)?;
        let key = CodeKey::of(&device_code);
        // A user code is short; on the rare collision with a live one, draw
        // again.
        for _ in 0..8 {
            let user_code = random_user_code().map_err(|_| Failure::Store)?;
            let record = DeviceRecord {
                client_id: client.client_id().to_owned(),
                scopes: scopes.clone(),
                user_code: user_code.clone(),
                status: DeviceStatus::Pending,
                interval: settings.device_interval,
                last_poll: None,
                issued_at: now,
                expires_at: now + settings.device_lifetime,
            };
            if store.issue(key, record).await.map_err(store_failed)? {
                return Ok(DeviceAuthorization {
                    device_code,
                    user_code,
                    // Configured, never read from the request: its Host
                    // header is the client's to forge (docs/contract.md,
                    // "Device flow").
                    verification_uri: settings.verification_uri.clone(),
                    expires_in: settings.device_lifetime.as_secs(),
                    interval: settings.device_interval,
                });
            }
        }
        Err(store_failed(StoreError::new(
            "no free user code after 8 draws",
        )))
    }
}
