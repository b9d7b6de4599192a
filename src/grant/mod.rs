//! The grants' own checks ([check 5](../../docs/contract.md#order-of-checks)),
//! one file per grant type over the store traits, the [`ValidatedGrant`] a
//! forwarded request carries, and the [`GrantClaim`] it may hold.

pub(crate) mod authorization_code;
pub(crate) mod client_credentials;
pub(crate) mod device_code;
pub(crate) mod refresh_token;

use std::sync::Arc;

use crate::{
    client::{Client, GrantType},
    error::Failure,
    record::{code::CodeRecord, device::DeviceRecord, refresh::RefreshRecord},
    secret::CodeKey,
    store::{Claim, StoreError},
};

/// A claim a grant holds on what it redeems (two-phase redemption), for the
/// response future to confirm or release by the inner service's answer.
pub(crate) struct GrantClaim {
    pub(crate) on: ClaimOn,
    pub(crate) key: CodeKey,
    pub(crate) claim: Claim,
}

/// What a [`GrantClaim`] is on.
#[derive(Debug)]
pub(crate) enum ClaimOn {
    Code,
    RefreshToken,
    /// A device code is redeemed by the poll itself (the store forgets it
    /// in the same atomic step); its claim is the record, put back on
    /// release. A process that dies holding it loses the device code: the
    /// device starts over, and is never given two tokens.
    DeviceCode(Box<DeviceRecord>),
}

impl std::fmt::Debug for GrantClaim {
    // The key is a digest, not the code, but it names a live code: keep it
    // out of logs all the same.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantClaim")
            .field("on", &self.on)
            .field("claim", &self.claim)
            .finish_non_exhaustive()
    }
}

/// A store failed: logged here, answered `500 server_error`.
pub(crate) fn store_failed(error: StoreError) -> Failure {
    tracing::error!(%error, "store failed");
    Failure::Store
}

/// What the gate established about a forwarded request, in its extensions.
///
/// The inner service only has to mint the token:
///
/// ```
/// use tokengate::ValidatedGrant;
///
/// fn handler(request: http::Request<()>) -> String {
///     let grant = request.extensions().get::<ValidatedGrant>().expect("behind the gate");
///     format!("token for {:?} via {}", grant.subject(), grant.client().client_id())
/// }
/// ```
///
/// Cloning is cheap (one reference count).
#[derive(Debug, Clone)]
pub struct ValidatedGrant {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    client: Arc<Client>,
    kind: Kind,
    /// The thumbprint of the request's DPoP key, when it carried a valid
    /// proof.
    dpop_jkt: Option<String>,
}

#[derive(Debug, Clone)]
enum Kind {
    AuthorizationCode {
        record: Arc<CodeRecord>,
        /// The redeemed code's key: its refresh tokens' family is derived
        /// from it, so that a replay of the code can revoke them.
        key: CodeKey,
    },
    RefreshToken {
        /// The token's key, to rotate it once every check passed.
        key: CodeKey,
        previous: RefreshRecord,
        scopes: Vec<String>,
        /// Rotated already, and granted a reuse within the window.
        reused: bool,
    },
    DeviceCode {
        record: DeviceRecord,
        subject: String,
    },
    ClientCredentials {
        scopes: Vec<String>,
    },
}

impl ValidatedGrant {
    fn new(client: Arc<Client>, kind: Kind) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                kind,
                dpop_jkt: None,
            }),
        }
    }

    /// The grant, proven by a DPoP proof with the key of thumbprint `jkt`.
    pub(crate) fn with_dpop(mut self, jkt: Option<String>) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.dpop_jkt = jkt,
            // Fresh from its constructor, so never shared; were it shared,
            // the binding would be lost, never invented.
            None => debug_assert!(jkt.is_none(), "a shared grant gets no DPoP key"),
        }
        self
    }

    /// The RFC 7638 thumbprint (SHA-256, base64url) of the key of the
    /// request's DPoP proof, when it carried one that verified (RFC 9449).
    /// Mint a DPoP-bound token with it (`cnf.jkt`, `token_type` `DPoP`);
    /// `None` means a bearer token.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.inner.dpop_jkt.as_deref()
    }

    pub(crate) fn authorization_code(
        client: Arc<Client>,
        record: Arc<CodeRecord>,
        key: CodeKey,
    ) -> Self {
        Self::new(client, Kind::AuthorizationCode { record, key })
    }

    /// The refresh family a new refresh token for this grant starts, when
    /// it is fixed in advance: the redeemed code's (see
    /// [`CodeKey::code_family`]).
    pub(crate) fn code_family(&self) -> Option<String> {
        match &self.inner.kind {
            Kind::AuthorizationCode { key, .. } => Some(key.code_family()),
            _ => None,
        }
    }

    pub(crate) fn refresh_token(client: Arc<Client>, checked: refresh_token::Checked) -> Self {
        let refresh_token::Checked {
            key,
            record,
            scopes,
            reused,
        } = checked;
        Self::new(
            client,
            Kind::RefreshToken {
                key,
                previous: record,
                scopes,
                reused,
            },
        )
    }

    /// The refresh token still to rotate before the request may be
    /// forwarded, for the refresh grant (none for a reuse: rotated already).
    pub(crate) fn uncommitted_refresh(&self) -> Option<&CodeKey> {
        match &self.inner.kind {
            Kind::RefreshToken {
                key, reused: false, ..
            } => Some(key),
            _ => None,
        }
    }

    /// The same grant, granted a reuse within the window when it was
    /// committed (a concurrent request rotated the token first).
    pub(crate) fn into_reuse(mut self) -> Self {
        if let Kind::RefreshToken { reused, .. } = &mut Arc::make_mut(&mut self.inner).kind {
            *reused = true;
        }
        self
    }

    /// Whether this refresh presented a token rotated a moment ago, granted
    /// one more use within the reuse window
    /// ([`Builder::refresh_reuse`](crate::Builder::refresh_reuse)) rather
    /// than taken for a replay. The successor the application issues joins
    /// the same family, like any other.
    pub fn is_refresh_reuse(&self) -> bool {
        matches!(self.inner.kind, Kind::RefreshToken { reused: true, .. })
    }

    pub(crate) fn device_code(client: Arc<Client>, record: DeviceRecord, subject: String) -> Self {
        Self::new(client, Kind::DeviceCode { record, subject })
    }

    pub(crate) fn client_credentials(client: Arc<Client>, scopes: Vec<String>) -> Self {
        Self::new(client, Kind::ClientCredentials { scopes })
    }

    /// The grant type that was checked.
    pub fn grant_type(&self) -> GrantType {
        match self.inner.kind {
            Kind::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Kind::RefreshToken { .. } => GrantType::RefreshToken,
            Kind::DeviceCode { .. } => GrantType::DeviceCode,
            Kind::ClientCredentials { .. } => GrantType::ClientCredentials,
        }
    }

    /// The authenticated client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The user the token is for; `None` for client credentials, where the
    /// client acts for itself.
    pub fn subject(&self) -> Option<&str> {
        match &self.inner.kind {
            Kind::AuthorizationCode { record, .. } => Some(&record.subject),
            Kind::RefreshToken { previous, .. } => Some(&previous.subject),
            Kind::DeviceCode { subject, .. } => Some(subject),
            Kind::ClientCredentials { .. } => None,
        }
    }

    /// The scopes to grant: the code's, the device request's, the refresh
    /// request's (never wider than the old token's), or the client's own.
    pub fn scopes(&self) -> &[String] {
        match &self.inner.kind {
            Kind::AuthorizationCode { record, .. } => &record.scopes,
            Kind::RefreshToken { scopes, .. } | Kind::ClientCredentials { scopes } => scopes,
            Kind::DeviceCode { record, .. } => &record.scopes,
        }
    }

    /// The redeemed code's record, for the authorization-code grant.
    pub fn code(&self) -> Option<&CodeRecord> {
        match &self.inner.kind {
            Kind::AuthorizationCode { record, .. } => Some(record),
            _ => None,
        }
    }

    /// The rotated-away refresh token's record, for the refresh grant: its
    /// `family` is the one the successor joins.
    pub fn refresh(&self) -> Option<&RefreshRecord> {
        match &self.inner.kind {
            Kind::RefreshToken { previous, .. } => Some(previous),
            _ => None,
        }
    }

    /// The refresh family, for the refresh grant.
    pub fn family(&self) -> Option<&str> {
        self.refresh().map(|record| record.family.as_str())
    }

    /// The redeemed device authorization, for the device grant.
    pub fn device(&self) -> Option<&DeviceRecord> {
        match &self.inner.kind {
            Kind::DeviceCode { record, .. } => Some(record),
            _ => None,
        }
    }
}
