//! DPoP proofs at the token endpoint (RFC 9449 §4.3), and the server's
//! nonces (§8).

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use super::{
    Jws, Malformed,
    assertion::{OneTime, at, seconds},
    asymmetric, decoding_key, thumbprint, to_jwk,
};
use crate::{
    jwks::PublicJwk,
    secret::{CodeKey, random_code},
    store::{Replays, StoreError},
};

/// What a proof is checked against.
pub(crate) struct Rules<'a> {
    /// The token endpoint's URL, without query or fragment.
    pub(crate) htu: &'a str,
    /// How far in the past `iat` may be.
    pub(crate) window: Duration,
    /// How far in the future `iat` may be (clock skew).
    pub(crate) leeway: Duration,
    pub(crate) now: SystemTime,
}

/// A proof whose signature and claims verified.
pub(crate) struct Proof {
    /// The RFC 7638 thumbprint of the proof's key: what a token is bound to.
    pub(crate) jkt: String,
    pub(crate) one_time: OneTime,
    /// The `nonce` claim, for the caller to check when nonces are required.
    pub(crate) nonce: Option<String>,
}

/// Checks a DPoP proof for a `POST` to `rules.htu`: every rule of RFC 9449
/// §4.3 but the `jti` (recorded by the caller once the request passed its
/// other checks) and the nonce (checked by the caller against [`Nonces`]).
pub(crate) fn verify(proof: &str, rules: &Rules<'_>) -> Result<Proof, Malformed> {
    let jws = Jws::parse(proof)?;
    if jws.header.typ.as_deref() != Some("dpop+jwt") {
        return Err(Malformed("the DPoP proof's typ is not dpop+jwt"));
    }
    let (algorithm, _) = asymmetric(&jws.header.alg).ok_or(Malformed(
        "the DPoP proof's alg is not an asymmetric one the server accepts",
    ))?;
    let jwk = jws
        .header
        .jwk
        .as_ref()
        .ok_or(Malformed("the DPoP proof has no jwk"))?;
    let jwk = PublicJwk::check(jwk).map_err(|error| Malformed(error.0))?;
    // The key's kind fits the alg, and so does the key's own `alg`, if it
    // names one.
    if !jwk.allows(&jws.header.alg) {
        return Err(Malformed("the DPoP proof's jwk does not fit its alg"));
    }
    // Converted once: the key and the thumbprint both come from it.
    let jwk = to_jwk(&jwk).ok_or(Malformed("the DPoP proof's jwk is not a valid key"))?;
    let key = decoding_key(&jwk).ok_or(Malformed("the DPoP proof's jwk is not a valid key"))?;
    if !jws.verifies(&key, algorithm) {
        return Err(Malformed("the DPoP proof's signature does not verify"));
    }
    if jws.text("htm")? != Some("POST") {
        return Err(Malformed("the DPoP proof's htm is not POST"));
    }
    let htu = jws
        .text("htu")?
        .ok_or(Malformed("the DPoP proof has no htu"))?;
    // §4.3: compared without query and fragment.
    let htu = htu.split(['?', '#']).next().unwrap_or_default();
    if htu != rules.htu {
        return Err(Malformed(
            "the DPoP proof's htu is not the token endpoint URL",
        ));
    }
    let now = seconds(rules.now);
    let iat = jws
        .seconds("iat")?
        .ok_or(Malformed("the DPoP proof has no iat"))?;
    let window = rules.window.as_secs() as i64;
    let leeway = rules.leeway.as_secs() as i64;
    if iat > now.saturating_add(leeway) || iat < now.saturating_sub(window) {
        return Err(Malformed(
            "the DPoP proof's iat is outside the accepted window",
        ));
    }
    let jti = jws
        .text("jti")?
        .filter(|jti| !jti.is_empty() && jti.len() <= 256)
        .ok_or(Malformed("the DPoP proof needs a jti of 1 to 256 bytes"))?;
    let jkt = thumbprint(&jwk).ok_or(Malformed("the DPoP proof's jwk is not a valid key"))?;
    let nonce = jws.text("nonce")?.map(str::to_owned);
    Ok(Proof {
        one_time: OneTime {
            key: CodeKey::of(&format!("dpop\0{jkt}\0{jti}")),
            // Past this, the iat check refuses the proof anyway; `now` is in
            // whole seconds, so it is accepted up to a second longer.
            until: at(iat
                .saturating_add(window)
                .saturating_add(leeway)
                .saturating_add(1)),
        },
        jkt,
        nonce,
    })
}

/// The server's DPoP nonces: one per time slot, the same in every process
/// that shares the replay store, and accepted during its slot and the
/// next, so a nonce handed out just before a rotation still works.
pub(crate) struct Nonces {
    rotation: Duration,
    /// The slots this process has learned: a nonce never changes within
    /// its slot, so the store is asked once per slot and process.
    known: Mutex<Vec<(u64, String)>>,
}

impl Nonces {
    pub(crate) fn new(rotation: Duration) -> Self {
        Self {
            rotation: rotation.max(Duration::from_secs(1)),
            known: Mutex::new(Vec::new()),
        }
    }

    fn slot(&self, now: SystemTime) -> u64 {
        seconds(now).max(0) as u64 / self.rotation.as_secs()
    }

    /// The nonce to hand out now.
    pub(crate) async fn current(
        &self,
        replays: &Replays,
        now: SystemTime,
    ) -> Result<String, StoreError> {
        self.of_slot(replays, self.slot(now), now).await
    }

    /// Whether `nonce` is this slot's or the previous one's.
    pub(crate) async fn accepts(
        &self,
        replays: &Replays,
        nonce: &str,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let slot = self.slot(now);
        for slot in [slot, slot.saturating_sub(1)] {
            if self.of_slot(replays, slot, now).await? == nonce {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn of_slot(
        &self,
        replays: &Replays,
        slot: u64,
        now: SystemTime,
    ) -> Result<String, StoreError> {
        if let Some(nonce) = self.known(slot) {
            return Ok(nonce);
        }
        let candidate = random_code().map_err(|e| StoreError::with_source("no randomness", e))?;
        // Kept while it is accepted: through the slot after its own.
        let secs = self.rotation.as_secs();
        let until = at(slot.saturating_add(2).saturating_mul(secs) as i64);
        let nonce = replays.nonce(slot, &candidate, until, now).await?;
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.retain(|(kept, _)| kept.saturating_add(1) >= slot && *kept != slot);
        known.push((slot, nonce.clone()));
        Ok(nonce)
    }

    fn known(&self, slot: u64) -> Option<String> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known
            .iter()
            .find(|(kept, _)| *kept == slot)
            .map(|(_, nonce)| nonce.clone())
    }
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("rotation", &self.rotation)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::store::MemoryReplays;

    /// A nonce is the same through its slot, accepted through the next, and
    /// this process remembers only the two slots it can still accept.
    #[tokio::test]
    async fn nonces_rotate_by_slot_and_are_forgotten_after_the_next() {
        let replays = Replays::Memory(MemoryReplays::default());
        let nonces = Nonces::new(Duration::from_secs(60));
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let first = nonces.current(&replays, start).await.unwrap();
        let later = start + Duration::from_secs(59);
        assert_eq!(nonces.current(&replays, later).await.unwrap(), first);
        let next = start + Duration::from_secs(60);
        assert_ne!(nonces.current(&replays, next).await.unwrap(), first);
        assert!(nonces.accepts(&replays, &first, next).await.unwrap());
        let after = start + Duration::from_secs(120);
        assert!(!nonces.accepts(&replays, &first, after).await.unwrap());
        for minute in 3..20 {
            let now = start + Duration::from_secs(60 * minute);
            nonces.current(&replays, now).await.unwrap();
            assert!(nonces.known.lock().unwrap().len() <= 2);
        }
    }

    /// Counts the store's nonce calls.
    struct Counting(MemoryReplays, std::sync::atomic::AtomicUsize);

    impl crate::store::ReplayStore for Counting {
        async fn first_use(
            &self,
            key: &CodeKey,
            until: SystemTime,
            now: SystemTime,
        ) -> Result<bool, StoreError> {
            self.0.first_use(key, until, now).await
        }

        async fn nonce(
            &self,
            slot: u64,
            candidate: &str,
            until: SystemTime,
            now: SystemTime,
        ) -> Result<String, StoreError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.nonce(slot, candidate, until, now).await
        }
    }

    /// The store is asked once per slot and process: the slot a process
    /// hands out, and the previous one it still accepts, are remembered.
    #[tokio::test]
    async fn the_store_is_asked_once_per_slot() {
        let store = std::sync::Arc::new(Counting(MemoryReplays::default(), 0.into()));
        let replays = Replays::Shared(store.clone());
        let calls = || store.1.load(std::sync::atomic::Ordering::SeqCst);
        let nonces = Nonces::new(Duration::from_secs(60));
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let first = nonces.current(&replays, start).await.unwrap();
        assert_eq!(calls(), 1);
        let next = start + Duration::from_secs(60);
        let second = nonces.current(&replays, next).await.unwrap();
        assert_eq!(calls(), 2);
        // Both are known now: no further call, whichever is presented.
        for _ in 0..3 {
            assert!(nonces.accepts(&replays, &first, next).await.unwrap());
            assert!(nonces.accepts(&replays, &second, next).await.unwrap());
            assert_eq!(nonces.current(&replays, next).await.unwrap(), second);
        }
        assert_eq!(calls(), 2);
    }
}
