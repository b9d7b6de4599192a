//! What an authorization code is bound to.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::pkce::PkceChallenge;

/// Everything an authorization code was issued for (RFC 6749 §4.1.2): the
/// client, the user who approved, the scopes, the redirect URI of the
/// authorization request, the PKCE challenge, and when it stops being valid.
///
/// The code's own value is never part of the record; stores keep the record
/// under the code's digest ([`CodeKey`](crate::store::CodeKey)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// The client the code was issued to.
    pub client_id: String,
    /// The user (resource owner) who approved the request.
    pub subject: String,
    /// The scopes the user approved.
    pub scopes: Vec<String>,
    /// The `redirect_uri` of the authorization request, when it carried one;
    /// the token request must then repeat it exactly (RFC 6749 §4.1.3).
    pub redirect_uri: Option<String>,
    /// The PKCE challenge, when the authorization request carried one.
    pub pkce: Option<PkceChallenge>,
    /// When the code was issued.
    pub issued_at: SystemTime,
    /// When the code stops being redeemable.
    pub expires_at: SystemTime,
    /// The thumbprint of the DPoP key the authorization request bound the
    /// code to (`dpop_jkt`, RFC 9449 §10): only a token request proving
    /// possession of that key redeems it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

impl CodeRecord {
    /// Whether the code has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires_at
    }
}
