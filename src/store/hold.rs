//! Two-phase redemption: a code or refresh token is held while the inner
//! service mints the token, then used up (confirmed) or handed back
//! (released).

use std::{fmt, time::Duration};

use super::StoreError;

/// A claim on one code or refresh token while the request that presented
/// it is in the inner service.
///
/// Its `id` tells this claim from any other, so a late [`confirm`] or
/// [`release`] of a claim that expired and was taken over by another
/// request changes nothing. A store keeps the claim for `ttl` at most: a
/// process that dies holding it loses the claim by itself, and the code
/// can be redeemed again (once).
///
/// [`confirm`]: crate::CodeStore::confirm
/// [`release`]: crate::CodeStore::release
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    id: [u8; 16],
    ttl: Duration,
}

impl Hold {
    /// A new claim with a random id, lasting `ttl`.
    pub fn new(ttl: Duration) -> Result<Self, StoreError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id)
            .map_err(|e| StoreError::with_source("no randomness for a hold", e))?;
        Ok(Self { id, ttl })
    }

    /// The claim's identity, to compare with the holder a store kept.
    pub fn id(&self) -> &[u8; 16] {
        &self.id
    }

    /// The id as 32 lowercase hex digits, for stores that keep text.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// How long the store keeps the claim at most.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

impl fmt::Debug for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hold")
            .field("id", &self.id_hex())
            .field("ttl", &self.ttl)
            .finish()
    }
}
