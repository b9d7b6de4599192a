//! The Lua scripts: each one atomic on the server, one round trip, and
//! touching one hash slot only (a script's keys share a hash tag), so every
//! one runs on a Redis Cluster as on a single server.

use std::sync::LazyLock;

use redis::Script;

/// Stores a record under a key that must not exist yet.
const ISSUE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'uses', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Claims an unused code or refresh token for ARGV[1] (the claim's id) for
/// ARGV[2] ms: `claimed` and the record; `used` and the record; `busy`
/// while another live claim has it; nothing for no such value, or a
/// refresh token marked revoked. Claims lapse by the server's clock.
const CLAIM: &str = r"
local f = redis.call('HMGET', KEYS[1], 'rec', 'uses', 'revoked', 'held_until')
if not f[1] or f[3] then return false end
if tonumber(f[2]) > 0 then return {'used', f[1]} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if f[4] and tonumber(f[4]) > now then return {'busy'} end
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'held_until', now + tonumber(ARGV[2]))
return {'claimed', f[1]}
";

/// Uses up a value claimed by ARGV[1]: 1, or 0 if the claim was lost (to
/// another claim after it lapsed, or, for a refresh token, to its family's
/// revocation). Notes when, by the server's clock: a refresh token's reuse
/// window starts there.
const CONFIRM: &str = r"
local f = redis.call('HMGET', KEYS[1], 'holder', 'uses', 'revoked')
if f[1] ~= ARGV[1] or tonumber(f[2]) ~= 0 or f[3] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HINCRBY', KEYS[1], 'uses', 1)
redis.call('HSET', KEYS[1], 'used_at', now)
redis.call('HDEL', KEYS[1], 'holder', 'held_until')
return 1
";

/// One more use of a rotated refresh token: `granted` and the record when
/// it was used less than ARGV[1] ms ago (or is claimed by a live claim) and
/// granted fewer than ARGV[2] reuses, counted here; `refused` and the
/// record when used otherwise; `held` when claimed past the limit; `free`
/// when neither used nor claimed; nothing for no live token.
const REUSE: &str = r"
local f = redis.call('HMGET', KEYS[1], 'rec', 'uses', 'revoked', 'held_until', 'used_at', 'reuses')
if not f[1] or f[3] then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local in_window = false
if tonumber(f[2]) > 0 then
  in_window = f[5] ~= false and tonumber(f[5]) + tonumber(ARGV[1]) > now
elseif f[4] and tonumber(f[4]) > now then
  in_window = true
else
  return {'free'}
end
if in_window and tonumber(f[6] or '0') < tonumber(ARGV[2]) then
  redis.call('HINCRBY', KEYS[1], 'reuses', 1)
  return {'granted', f[1]}
end
if tonumber(f[2]) == 0 then return {'held'} end
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
/// nothing for a token marked revoked.
const PEEK_REFRESH: &str = r"
local f = redis.call('HMGET', KEYS[1], 'rec', 'uses', 'revoked')
if not f[1] or f[3] then return false end
return {f[1], tonumber(f[2])}
";

/// The first half of issuing a refresh token, on its family's slot: adds
/// the token (ARGV[1], its key's hex) to the family KEYS[1], kept for as
/// long as its longest-lived token (ARGV[2] ms), unless the family was
/// revoked (KEYS[2], its marker): -1.
const JOIN_FAMILY: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
";

/// The second half, on the token's own slot: stores the token (ARGV[1] its
/// record, ARGV[2] its lifetime, ARGV[3] its family) unless its key exists
/// (0), or was marked revoked by a revocation that ran between the halves
/// (-1).
const ISSUE_REFRESH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HEXISTS', KEYS[1], 'revoked') == 1 then return -1 end
  return 0
end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'uses', 0, 'family', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Revokes a family, on its slot: marks it revoked (KEYS[2]) for as long
/// as any of its tokens would live (at least ARGV[1] ms), so that no token
/// joins it again, and answers that time and its tokens, each to be marked
/// on its own slot ([`MARK_REVOKED`]).
const REVOKE_FAMILY: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[1]) then ttl = tonumber(ARGV[1]) end
redis.call('SET', KEYS[2], '1', 'PX', ttl)
return {ttl, redis.call('SMEMBERS', KEYS[1])}
";

/// Marks one token of a revoked family revoked. A token not stored yet (one
/// whose issuing joined the family just before the revocation) is marked
/// too, for ARGV[1] ms, so that its issuing fails.
const MARK_REVOKED: &str = r"
redis.call('HSET', KEYS[1], 'revoked', 1)
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
";

/// Stores ARGV[1] under KEYS[1] for ARGV[2] ms, unless the key exists: 1
/// when stored. A device authorization's user code and its record.
const SET_NEW: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
";

/// Compare-and-set of a device record: if KEYS[1] still holds ARGV[1] (the
/// JSON read before the core's rules ran), writes ARGV[2] keeping its
/// expiry, or, when ARGV[2] is empty, deletes it (redeemed). 1 when
/// written, 0 when another poll or decision changed it first.
const SWAP_DEVICE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
end
return 1
";

/// Deletes KEYS[1] if it holds ARGV[1]: frees a redeemed device's user
/// code, unless it names another device by now.
const DELETE_IF: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
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

/// The scripts, hashed once.
pub(crate) struct Scripts {
    pub(crate) issue: Script,
    pub(crate) claim: Script,
    pub(crate) confirm: Script,
    pub(crate) release: Script,
    pub(crate) join_family: Script,
    pub(crate) issue_refresh: Script,
    pub(crate) peek_refresh: Script,
    pub(crate) revoke_family: Script,
    pub(crate) mark_revoked: Script,
    pub(crate) reuse: Script,
    pub(crate) set_new: Script,
    pub(crate) swap_device: Script,
    pub(crate) delete_if: Script,
    pub(crate) locked: Script,
    pub(crate) fail: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    issue: Script::new(ISSUE),
    claim: Script::new(CLAIM),
    confirm: Script::new(CONFIRM),
    release: Script::new(RELEASE),
    join_family: Script::new(JOIN_FAMILY),
    issue_refresh: Script::new(ISSUE_REFRESH),
    peek_refresh: Script::new(PEEK_REFRESH),
    revoke_family: Script::new(REVOKE_FAMILY),
    mark_revoked: Script::new(MARK_REVOKED),
    reuse: Script::new(REUSE),
    set_new: Script::new(SET_NEW),
    swap_device: Script::new(SWAP_DEVICE),
    delete_if: Script::new(DELETE_IF),
    locked: Script::new(LOCKED),
    fail: Script::new(FAIL),
});
