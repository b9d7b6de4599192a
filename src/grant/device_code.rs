//! The device grant (RFC 8628 §3.4-3.5): one poll of a device code.

use super::store_failed;
use crate::{
    client::Client,
    error::Failure,
    parse::TokenRequest,
    record::device::{DeviceRecord, PollOutcome},
    secret::CodeKey,
    settings::Settings,
    store::DeviceStore,
};

/// Polls the request's device code for `client`; its key, the approved
/// record and its user when the user approved (redeemed by this poll,
/// exactly once).
pub(crate) async fn poll<D: DeviceStore>(
    store: &D,
    settings: &Settings,
    client: &Client,
    request: &TokenRequest,
) -> Result<(CodeKey, DeviceRecord, String), Failure> {
    let device_code = request
        .device_code
        .as_deref()
        .ok_or(Failure::DeviceCodeMissing)?;
    let key = CodeKey::of(device_code);
    let outcome = store
        .poll(&key, client.client_id(), settings.clock.now())
        .await
        .map_err(store_failed)?;
    match outcome {
        PollOutcome::Unknown => Err(Failure::DeviceCodeInvalid),
        PollOutcome::Pending => Err(Failure::DevicePending),
        PollOutcome::SlowDown { interval } => Err(Failure::DeviceSlowDown(interval)),
        PollOutcome::Denied => Err(Failure::DeviceDenied),
        PollOutcome::Expired => Err(Failure::DeviceExpired),
        PollOutcome::Approved(record) => match record.subject() {
            Some(subject) => {
                let subject = subject.to_owned();
                Ok((key, record, subject))
            }
            // A store that answers Approved for an undecided record is
            // broken; refuse rather than issue a token for nobody.
            None => Err(Failure::Store),
        },
    }
}
