//! What a refresh token (RFC 6749 §6) is bound to, and the family that
//! links it to its predecessors for rotation (RFC 9700 §4.14.2).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Everything a refresh token was issued for. Stores keep it under the
/// digest of the token ([`CodeKey::of`](crate::store::CodeKey::of)); the token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// The client the token was issued to.
    pub client_id: String,
    /// The user the token acts for.
    pub subject: String,
    /// The scopes granted; a refresh may ask for fewer, never more.
    pub scopes: Vec<String>,
    /// The rotation family: every token descended from one authorization
    /// shares it, and a replay of any used member revokes them all.
    pub family: String,
    /// When the token was issued.
    pub issued_at: SystemTime,
    /// When it stops being accepted.
    pub expires_at: SystemTime,
    /// The thumbprint of the DPoP key the token is bound to (RFC 9449 §5:
    /// tokens issued to public clients with a proof): only a request
    /// proving possession of that key may use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

impl RefreshRecord {
    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires_at
    }
}
