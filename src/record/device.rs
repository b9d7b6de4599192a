//! The device authorization grant (RFC 8628; GitHub's device flow): the
//! record behind a device code, and its polling rules, defined once here for
//! every store.

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};

/// How long an expired device code is remembered, so its polls keep getting
/// `expired_token` (RFC 8628 §3.5) rather than an unknown-code error.
pub const DEVICE_TOMBSTONE: Duration = Duration::from_secs(600);

/// RFC 8628 §3.5: each `slow_down` adds 5 seconds to the interval.
pub const SLOW_DOWN_STEP: u64 = 5;

/// The letters of a user code: consonants only (RFC 8628 §6.1), so no code
/// spells a word and none is mistaken for a digit.
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// A device authorization: what the device asked for and what the user
/// decided. Stores keep it under the digest of the device code and find it by
/// its user code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The client that asked.
    pub client_id: String,
    /// The scopes it asked for.
    pub scopes: Vec<String>,
    /// The code the user types, normalized (`WDJB-MJHT`).
    pub user_code: String,
    /// The user's decision so far.
    pub status: DeviceStatus,
    /// The minimum seconds between polls; grows with each `slow_down`.
    pub interval: u64,
    /// When the device last polled.
    pub last_poll: Option<SystemTime>,
    /// When the authorization was issued.
    pub issued_at: SystemTime,
    /// When the device code expires.
    pub expires_at: SystemTime,
}

impl fmt::Debug for DeviceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A live user code lets whoever reads it approve the device.
        f.debug_struct("DeviceRecord")
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("user_code", &"<redacted>")
            .field("status", &self.status)
            .field("interval", &self.interval)
            .field("last_poll", &self.last_poll)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where a device authorization stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DeviceStatus {
    /// The user has not decided yet.
    Pending,
    /// The user approved; the next timely poll redeems it.
    Approved {
        /// The user who approved.
        subject: String,
    },
    /// The user declined.
    Denied,
}

/// The user's answer on the verification page.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceDecision {
    /// Approve for this user.
    Approve {
        /// The user who approved.
        subject: String,
    },
    /// Decline.
    Deny,
}

/// What one poll of the token endpoint finds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PollOutcome {
    /// No such device code for this client (or already redeemed).
    Unknown,
    /// `authorization_pending`.
    Pending,
    /// `slow_down`: polled before the interval passed; the new interval.
    SlowDown {
        /// The interval the device must now keep, in seconds.
        interval: u64,
    },
    /// `access_denied`.
    Denied,
    /// `expired_token`.
    Expired,
    /// Approved and redeemed by this poll; the store must forget the code.
    Approved(DeviceRecord),
}

impl DeviceRecord {
    /// Applies one poll by `client_id` at `now` and says what it found.
    ///
    /// A store calls this under its own atomicity (a lock, a transaction, a
    /// script) and then saves the record, or deletes it when the outcome is
    /// [`PollOutcome::Approved`] (redeemed exactly once). An expired record
    /// is kept for [`DEVICE_TOMBSTONE`] so that later polls still hear
    /// `expired_token`. Another client's poll changes nothing.
    pub fn poll(&mut self, client_id: &str, now: SystemTime) -> PollOutcome {
        if self.client_id != client_id {
            return PollOutcome::Unknown;
        }
        if now >= self.expires_at {
            return PollOutcome::Expired;
        }
        let too_soon = self
            .last_poll
            .is_some_and(|last| now < last + Duration::from_secs(self.interval));
        self.last_poll = Some(now);
        if too_soon {
            self.interval += SLOW_DOWN_STEP;
            return PollOutcome::SlowDown {
                interval: self.interval,
            };
        }
        match &self.status {
            DeviceStatus::Pending => PollOutcome::Pending,
            DeviceStatus::Denied => PollOutcome::Denied,
            DeviceStatus::Approved { .. } => PollOutcome::Approved(self.clone()),
        }
    }

    /// Records `decision` if the authorization is live and undecided.
    pub fn decide(&mut self, decision: DeviceDecision, now: SystemTime) -> bool {
        if now >= self.expires_at || self.status != DeviceStatus::Pending {
            return false;
        }
        self.status = match decision {
            DeviceDecision::Approve { subject } => DeviceStatus::Approved { subject },
            DeviceDecision::Deny => DeviceStatus::Denied,
        };
        true
    }

    /// The user who approved, once approved.
    pub fn subject(&self) -> Option<&str> {
        match &self.status {
            DeviceStatus::Approved { subject } => Some(subject),
            _ => None,
        }
    }
}

/// A fresh user code: 8 letters of [`USER_CODE_ALPHABET`] as `XXXX-XXXX`
/// (about 34.6 bits; RFC 8628 §5.1 relies on the short lifetime and the
/// verification page's rate limit, not on entropy).
pub(crate) fn random_user_code() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 8];
    let mut code = String::with_capacity(9);
    let mut filled = 0;
    while filled < 8 {
        getrandom::fill(&mut bytes)?;
        for b in bytes {
            // Rejection sampling keeps every letter equally likely.
            if b < 240 && filled < 8 {
                if filled == 4 {
                    code.push('-');
                }
                code.push(USER_CODE_ALPHABET[usize::from(b % 20)] as char);
                filled += 1;
            }
        }
    }
    Ok(code)
}

/// A user code as typed (`wdjb mjht`, `WDJBMJHT`, `wdjb-mjht`) in its stored
/// form `WDJB-MJHT`, or `None` if it cannot be one.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let letters: Vec<u8> = typed
        .bytes()
        .filter(|b| !matches!(b, b'-' | b' ' | b'\t'))
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if letters.len() != 8 || !letters.iter().all(|b| USER_CODE_ALPHABET.contains(b)) {
        return None;
    }
    let mut code = String::with_capacity(9);
    for (i, &b) in letters.iter().enumerate() {
        if i == 4 {
            code.push('-');
        }
        code.push(b as char);
    }
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(t0: SystemTime) -> DeviceRecord {
        DeviceRecord {
            client_id: "cli".into(),
            scopes: vec![],
            user_code: "WDJB-MJHT".into(),
            status: DeviceStatus::Pending,
            interval: 5,
            last_poll: None,
            issued_at: t0,
            expires_at: t0 + Duration::from_secs(900),
        }
    }

    #[test]
    fn the_spec_interval_vector() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |s| t0 + Duration::from_secs(s);
        let mut r = record(t0);
        assert_eq!(r.poll("cli", at(0)), PollOutcome::Pending);
        assert_eq!(r.poll("cli", at(2)), PollOutcome::SlowDown { interval: 10 });
        assert_eq!(r.poll("cli", at(8)), PollOutcome::SlowDown { interval: 15 });
        assert_eq!(r.poll("cli", at(24)), PollOutcome::Pending);
    }

    #[test]
    fn another_client_changes_nothing() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut r = record(t0);
        let before = r.clone();
        assert_eq!(r.poll("other", t0), PollOutcome::Unknown);
        assert_eq!(r, before);
    }

    #[test]
    fn decisions_and_expiry() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut r = record(t0);
        assert!(r.decide(
            DeviceDecision::Approve {
                subject: "u".into()
            },
            t0
        ));
        assert!(!r.decide(DeviceDecision::Deny, t0), "decided once");
        assert!(
            matches!(r.poll("cli", t0), PollOutcome::Approved(rec) if rec.subject() == Some("u"))
        );
        let mut r = record(t0);
        assert!(r.decide(DeviceDecision::Deny, t0));
        assert_eq!(r.poll("cli", t0), PollOutcome::Denied);
        let mut r = record(t0);
        assert!(!r.decide(DeviceDecision::Deny, t0 + Duration::from_secs(900)));
        assert_eq!(
            r.poll("cli", t0 + Duration::from_secs(900)),
            PollOutcome::Expired
        );
    }

    #[test]
    fn debug_hides_the_user_code() {
        let shown = format!("{:?}", record(SystemTime::UNIX_EPOCH));
        assert!(!shown.contains("WDJB-MJHT"), "{shown}");
    }

    #[test]
    fn user_codes() {
        let code = random_user_code().unwrap();
        assert_eq!(code.len(), 9);
        assert_eq!(normalize_user_code(&code).as_deref(), Some(code.as_str()));
        assert_eq!(
            normalize_user_code("wdjb mjht").as_deref(),
            Some("WDJB-MJHT")
        );
        assert_eq!(
            normalize_user_code("WDJBMJHT").as_deref(),
            Some("WDJB-MJHT")
        );
        assert_eq!(normalize_user_code("WDJB-MJH"), None);
        assert_eq!(normalize_user_code("AEIO-UAEI"), None);
        assert_ne!(random_user_code().unwrap(), random_user_code().unwrap());
    }
}
