//! The claim of two-phase redemption: a code or refresh token is claimed
//! while the inner service mints the token, then used up (confirmed) or
//! handed back (released).

use std::{
    fmt,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use super::StoreError;

/// A claim on one code or refresh token while the request that presented
/// it is in the inner service.
///
/// Its `id` tells this claim from any other, so a late
/// [`confirm`](super::CodeStore::confirm) or
/// [`release`](super::CodeStore::release) of a claim that lapsed and was
/// taken over by another request changes nothing. A store keeps the claim
/// for `ttl` at most: a process that dies holding it loses the claim by
/// itself, and the code can be redeemed again (once).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    id: [u8; 16],
    ttl: Duration,
}

impl Claim {
    /// A new claim with an id no other claim has, lasting `ttl`.
    ///
    /// The id is this process's random 64-bit prefix and a counter: unique
    /// across processes sharing a store without a system call per claim
    /// (it is not a secret: it only tells claims apart).
    pub fn new(ttl: Duration) -> Result<Self, StoreError> {
        static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = match PREFIX.get() {
            Some(prefix) => *prefix,
            None => {
                let mut prefix = [0u8; 8];
                getrandom::fill(&mut prefix)
                    .map_err(|e| StoreError::with_source("no randomness for a claim", e))?;
                *PREFIX.get_or_init(|| prefix)
            }
        };
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&prefix);
        id[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
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

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim")
            .field("id", &self.id_hex())
            .field("ttl", &self.ttl)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_as_text_is_its_hex_and_debug_shows_it() {
        let a = Claim::new(Duration::from_secs(30)).unwrap();
        let b = Claim::new(Duration::from_secs(30)).unwrap();
        // What a text-keyed store compares: 32 lowercase hex digits of the
        // id, distinct for distinct claims.
        assert_eq!(a.id_hex(), hex::encode(a.id()));
        assert_eq!(a.id_hex().len(), 32);
        assert_ne!(a.id_hex(), b.id_hex());
        assert_ne!(a.id(), b.id());
        assert_eq!(a.ttl(), Duration::from_secs(30));
        assert_eq!(
            format!("{a:?}"),
            format!("Claim {{ id: \"{}\", ttl: 30s }}", a.id_hex())
        );
    }

    #[test]
    fn ids_are_distinct() {
        let ids: std::collections::HashSet<[u8; 16]> = (0..10_000)
            .map(|_| *Claim::new(Duration::from_secs(1)).unwrap().id())
            .collect();
        assert_eq!(ids.len(), 10_000);
    }
}
