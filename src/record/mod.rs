//! What the gate redeems, as stores keep it: the records behind codes,
//! refresh tokens and device codes, each stored under the digest of its
//! value. Pure data and rules; the public modules `authorize`, `refresh` and
//! `device` re-export them.

pub(crate) mod code;
pub(crate) mod device;
pub(crate) mod refresh;
