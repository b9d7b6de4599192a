//! The Lua scripts, each atomic on the server and one round trip.
//!
//! On a single server, a refresh token's scripts also check its family's
//! revocation marker (passed as a key prefix), and issuing a refresh token
//! or a device authorization writes its two keys in one script. On a
//! Redis Cluster every script touches one hash slot: the marker is checked
//! by a second call on the family's slot, and the two-key writes are two
//! calls ([`JOIN_FAMILY`] and [`STORE_REFRESH`]; [`SET_NEW`] twice).

use std::sync::LazyLock;

use redis::Script;

/// Stores a record under a key that must not exist yet.
const ISSUE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'uses', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Claims an unused code or refresh token for ARGV[2] (the claim's id) for
/// ARGV[3] ms: `claimed` and the record (also when this very claim holds it
/// already: a client library that lost the reply sends the call again);
/// `used` and the record; `busy` and the record while another live claim
/// has it; nothing for no such value, or one of a
/// revoked family (ARGV[1] the revoked-marker prefix, or ''). Claims lapse
/// by the server's clock.
const CLAIM: &str = r"
local f = redis.call('HMGET', KEYS[1], 'rec', 'uses', 'family', 'held_until', 'holder')
if not f[1] then return false end
if ARGV[1] ~= '' and f[3] and redis.call('EXISTS', ARGV[1] .. f[3]) == 1 then return false end
if tonumber(f[2]) > 0 then return {'used', f[1]} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if f[4] and tonumber(f[4]) > now then
  if f[5] == ARGV[2] then return {'claimed', f[1]} end
  return {'busy', f[1]}
end
redis.call('HSET', KEYS[1], 'holder', ARGV[2], 'held_until', now + tonumber(ARGV[3]))
return {'claimed', f[1]}
";
/// Uses up a value claimed by ARGV[1]: 0 if the claim was lost (to another
/// claim after it lapsed, or, for a refresh token, to its family's
/// revocation, ARGV[2] the revoked-marker prefix or ''), else the refresh
/// token's family, or 1 for a code. A confirmation of a value this very
/// claim used up already answers the same again (a client library that
/// lost the reply sends the call again), so it is noted who confirmed. Notes when, by the server's clock: a
/// refresh token's reuse window starts there.
const CONFIRM: &str = r"
local f = redis.call('HMGET', KEYS[1], 'holder', 'uses', 'family', 'confirmed_by')
if ARGV[2] ~= '' and f[3] and redis.call('EXISTS', ARGV[2] .. f[3]) == 1 then return 0 end
if tonumber(f[2]) ~= 0 then
  if f[4] == ARGV[1] then return f[3] or 1 end
  return 0
end
if f[1] ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HINCRBY', KEYS[1], 'uses', 1)
redis.call('HSET', KEYS[1], 'used_at', now, 'confirmed_by', ARGV[1])
redis.call('HDEL', KEYS[1], 'holder', 'held_until')
return f[3] or 1
";
/// One more use of a rotated refresh token (ARGV[1] the revoked-marker
/// prefix, or ''): `granted` and the record when it was used less than
/// ARGV[2] ms ago (or is claimed by a live claim) and granted fewer than
/// ARGV[3] reuses, counted here; `refused` and the record when used
/// otherwise; `held` and the record when claimed past the limit; `free`
/// and the record when neither used nor claimed; nothing for no live
/// token.
const REUSE: &str = r"
local f = redis.call('HMGET', KEYS[1], 'rec', 'uses', 'family', 'held_until', 'used_at', 'reuses')
if not f[1] then return false end
if ARGV[1] ~= '' and f[3] and redis.call('EXISTS', ARGV[1] .. f[3]) == 1 then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local in_window = false
if tonumber(f[2]) > 0 then
  in_window = f[5] ~= false and tonumber(f[5]) + tonumber(ARGV[2]) > now
elseif f[4] and tonumber(f[4]) > now then
  in_window = true
else
  return {'free', f[1]}
end
if in_window and tonumber(f[6] or '0') < tonumber(ARGV[3]) then
  redis.call('HINCRBY', KEYS[1], 'reuses', 1)
  return {'granted', f[1]}
end
if tonumber(f[2]) == 0 then return {'held', f[1]} end
return {'refused', f[1]}
";

/// Hands back a value claimed by ARGV[1], unused; a lost claim is left be.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'holder', 'held_until')
end
return 1
";

/// Reads a refresh token without using it: the record and its use count;
/// nothing for a token of a revoked family (ARGV[1] the revoked-marker
/// prefix, or '').
const PEEK_REFRESH: &str = r"
local f = redis.call('HMGET', KEYS[1], 'rec', 'uses', 'family')
if not f[1] then return false end
if ARGV[1] ~= '' and f[3] and redis.call('EXISTS', ARGV[1] .. f[3]) == 1 then return false end
return {f[1], tonumber(f[2])}
";

/// Stores a refresh token and adds it to its family, unless the family was
/// revoked (-1) or the key exists (0).
const ISSUE_REFRESH: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'uses', 0, 'family', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[4])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return 1
";

/// Marks a family revoked for as long as any of its tokens would live (at
/// least ARGV[1] ms): one write, whatever the family's size. Redemption and
/// issuing check the marker; the members expire by themselves.
const REVOKE_FAMILY: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[1]) then ttl = tonumber(ARGV[1]) end
redis.call('SET', KEYS[2], '1', 'PX', ttl)
return 1
";

/// Stores a device authorization (ARGV[1], its JSON) and its user code,
/// unless either exists. The record outlives the code by ARGV[3] ms, so late
/// polls still hear `expired_token`; the user code (mapped to ARGV[4], the
/// device key) is freed at expiry, after ARGV[2] ms.
const ISSUE_DEVICE: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]) + tonumber(ARGV[3]))
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[2])
return 1
";

/// Compare-and-set of a device record: if KEYS[1] still holds ARGV[1] (the
/// JSON read before the core's rules ran), writes ARGV[2] keeping its
/// expiry, or, when ARGV[2] is empty, deletes it (redeemed) and frees its
/// user code KEYS[2], when given, if that still names this device
/// (ARGV[3]). 1 when written, 0 when another poll or decision changed it
/// first.
const SWAP_DEVICE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  if KEYS[2] and redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
else
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
end
return 1
";

/// The lockout's check: KEYS are failure counters, ARGV[i] the limit of
/// KEYS[i]. Answers the longest time left (ms) among the counters at or past
/// their limit, 0 when none is.
const LOCKED: &str = r"
local wait = 0
for i, key in ipairs(KEYS) do
  local failures = tonumber(redis.call('GET', key) or '0')
  if failures >= tonumber(ARGV[i]) then
    local left = redis.call('PTTL', key)
    if left > wait then wait = left end
  end
end
return wait
";

/// Counts a failure on each counter: KEYS are the counters, ARGV[i] the
/// window of KEYS[i] in ms. The first failure opens the window, which then
/// expires by itself; a counter found without an expiry gets one, so no
/// key can lock anyone out for good.
const FAIL: &str = r"
for i, key in ipairs(KEYS) do
  local failures = redis.call('INCR', key)
  if failures == 1 or redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, ARGV[i])
  end
end
return 1
";

/// On a cluster, the first half of issuing a refresh token, on its
/// family's slot: the family KEYS[1] lives as long as its longest-lived
/// token (ARGV[1] ms), unless the family was revoked (KEYS[2], its
/// marker): -1.
const JOIN_FAMILY: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
redis.call('SADD', KEYS[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
";

/// The second half, on the token's own slot: stores the token (ARGV[1] its
/// record, ARGV[2] its lifetime, ARGV[3] its family) unless its key exists
/// (0). A revocation between the halves is caught where the token is used:
/// its family's marker is checked there.
const STORE_REFRESH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'uses', 0, 'family', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Stores ARGV[1] under KEYS[1] for ARGV[2] ms, unless the key exists: 1
/// when stored. On a cluster, a device authorization's user code, then its
/// record.
const SET_NEW: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
";

/// Deletes KEYS[1] if it holds ARGV[1]: on a cluster, frees a redeemed
/// device's user code, unless it names another device by now.
const DELETE_IF: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

/// The scripts, hashed once.
pub(crate) struct Scripts {
    pub(crate) issue: Script,
    pub(crate) claim: Script,
    pub(crate) confirm: Script,
    pub(crate) release: Script,
    pub(crate) reuse: Script,
    pub(crate) peek_refresh: Script,
    pub(crate) issue_refresh: Script,
    pub(crate) revoke_family: Script,
    pub(crate) issue_device: Script,
    pub(crate) swap_device: Script,
    pub(crate) locked: Script,
    pub(crate) fail: Script,
    pub(crate) join_family: Script,
    pub(crate) store_refresh: Script,
    pub(crate) set_new: Script,
    pub(crate) delete_if: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    issue: Script::new(ISSUE),
    claim: Script::new(CLAIM),
    confirm: Script::new(CONFIRM),
    release: Script::new(RELEASE),
    reuse: Script::new(REUSE),
    peek_refresh: Script::new(PEEK_REFRESH),
    issue_refresh: Script::new(ISSUE_REFRESH),
    revoke_family: Script::new(REVOKE_FAMILY),
    issue_device: Script::new(ISSUE_DEVICE),
    swap_device: Script::new(SWAP_DEVICE),
    locked: Script::new(LOCKED),
    fail: Script::new(FAIL),
    join_family: Script::new(JOIN_FAMILY),
    store_refresh: Script::new(STORE_REFRESH),
    set_new: Script::new(SET_NEW),
    delete_if: Script::new(DELETE_IF),
});
