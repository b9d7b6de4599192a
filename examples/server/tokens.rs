//! The access tokens the demo mints, and its part of the revocation
//! (RFC 7009) and introspection (RFC 7662) endpoints: the gate
//! authenticates the caller there and answers for its own refresh tokens;
//! any other token reaches these handlers as a [`TokenAction`], and the
//! demo looks it up here.
//!
//! The registry keeps each access token under its SHA-256 digest, never
//! the token itself, with its client, user, scopes, issue time (expiry is
//! eight hours later, as the demo tells clients), the thumbprint of the
//! DPoP key it is bound to, the refresh family it belongs to where the
//! grant says (a refresh grant's), and the digest of the refresh token
//! issued with it, if any.
//!
//! - Revocation deletes the token when it is the calling client's (another
//!   client's token is left alone), and answers `200` either way.
//! - Introspection answers `active` for a live token, else
//!   `{"active":false}`. A token issued with a refresh token is live only
//!   while that refresh token's family is: the refresh store is asked, so a
//!   family revoked through another demo process on the same store (or
//!   before the demo knew the family, for a code's first tokens) counts
//!   too.
//! - A family revoked here (a refresh token revoked at the revocation
//!   endpoint, or a rotated one replayed) drops its access tokens at once
//!   (`Builder::on_refresh_revocation`, `Builder::on_refresh_replay`).
//!
//! Memory is bounded: at most [`CAPACITY`] live tokens. Expired ones are
//! dropped first (oldest first, as they come due); when every slot holds a
//! live token, the oldest is forgotten to make room, so it introspects
//! `{"active":false}` from then on: a full registry fails closed, never
//! open, and the demo keeps minting (forgetting is the safe way here: a
//! forgotten access token is refused, where a forgotten replay marker
//! would let a replay through). The first eviction is logged.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, SystemTime},
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, Response, StatusCode, header},
};
use tokengate::{
    StoreError, TokenAction, ValidatedGrant,
    lifecycle::{Introspection, TokenActionKind},
    store::CodeKey,
};

/// The most live access tokens the demo keeps: 458,752 (7 × 2^16, some
/// 16 tokens a second for their 8 hours). Under churn (tokens minted,
/// expired, revoked) a hash table needs half its slots free to stay put,
/// and this many settle in a table of 2^20 slots; more, and it doubles
/// as tombstones pile up. Measured when full: about 125 MiB, 260 MiB when every token is
/// DPoP-bound and of a refresh family of its own.
pub(crate) const CAPACITY: usize = 7 << 16;

/// The most distinct (client, user, scopes) triples shared between
/// entries; past it, each entry keeps its own copy.
const MAX_SHAPES: usize = 4096;

/// Whether the refresh token with this key is still known to the gate's
/// refresh store (unused or rotated, in a family not revoked).
pub(crate) type RefreshAlive = Arc<
    dyn Fn(CodeKey) -> Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>> + Send + Sync,
>;

/// Revokes a refresh family in the store the gate shares (GitHub's grant
/// revocation takes every token of an authorization, refresh tokens
/// included).
pub(crate) type RevokeFamily = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>> + Send + Sync,
>;

/// What an access token was issued for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Issued<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) subject: Option<&'a str>,
    pub(crate) scopes: &'a [String],
    pub(crate) dpop_jkt: Option<&'a str>,
    /// The refresh family, where the grant names it (a refresh grant).
    pub(crate) family: Option<&'a str>,
    /// The refresh token issued in the same answer.
    pub(crate) refresh_token: Option<&'a str>,
}

impl<'a> Issued<'a> {
    /// The token minted for `grant`, with `refresh_token` beside it.
    pub(crate) fn of(grant: &'a ValidatedGrant, refresh_token: Option<&'a str>) -> Self {
        Self {
            client_id: grant.client().client_id(),
            subject: grant.subject(),
            scopes: grant.scopes(),
            dpop_jkt: grant.dpop_jkt(),
            family: grant.refresh().map(|previous| previous.family.as_str()),
            refresh_token,
        }
    }
}

/// Client, user and scopes: the part most tokens share.
#[derive(PartialEq, Eq, Hash)]
struct Shape {
    client_id: Box<str>,
    subject: Option<Box<str>>,
    scopes: Box<[String]>,
}

struct Entry {
    shape: Arc<Shape>,
    issued_at: SystemTime,
    dpop_jkt: Option<Box<str>>,
    family: Option<Arc<str>>,
    refresh: Option<CodeKey>,
}

/// A live token as the registry knows it.
pub(crate) struct Described {
    shape: Arc<Shape>,
    issued_at: SystemTime,
    expires_at: SystemTime,
    dpop_jkt: Option<Box<str>>,
    refresh: Option<CodeKey>,
}

impl Described {
    /// The key of the refresh token issued with it, whose family it lives
    /// and dies with.
    pub(crate) fn refresh(&self) -> Option<CodeKey> {
        self.refresh
    }

    /// The scopes it was granted.
    pub(crate) fn scopes(&self) -> &[String] {
        &self.shape.scopes
    }

    /// The client it was issued to.
    pub(crate) fn client_id(&self) -> &str {
        &self.shape.client_id
    }

    /// The user it acts for (none for a client-credentials grant).
    pub(crate) fn subject(&self) -> Option<&str> {
        self.shape.subject.as_deref()
    }

    /// When it was issued, and when it expires.
    pub(crate) fn times(&self) -> (SystemTime, SystemTime) {
        (self.issued_at, self.expires_at)
    }

    /// Whether it is bound to a DPoP key (RFC 9449): only a proof of that
    /// key makes its use valid.
    pub(crate) fn is_dpop_bound(&self) -> bool {
        self.dpop_jkt.is_some()
    }

    /// The RFC 7662 answer for it, as issued by `issuer`.
    pub(crate) fn introspection(&self, issuer: &str) -> Introspection {
        let shape = &self.shape;
        let mut answer = Introspection::active(&shape.client_id)
            .token_type(if self.dpop_jkt.is_some() {
                "DPoP"
            } else {
                "Bearer"
            })
            .issued_at(self.issued_at)
            .expires_at(self.expires_at)
            .issuer(issuer);
        if !shape.scopes.is_empty() {
            answer = answer.scope(&shape.scopes);
        }
        if let Some(subject) = &shape.subject {
            answer = answer.subject(subject);
        }
        if let Some(jkt) = &self.dpop_jkt {
            answer = answer.dpop_jkt(jkt);
        }
        answer
    }
}

/// The registry of live access tokens; clones share it.
#[derive(Clone)]
pub(crate) struct Registry {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
    lifetime: Duration,
}

struct Inner {
    /// Boxed: the table keeps twice as many slots as entries, so a slot
    /// is a key and a pointer, not a whole entry.
    tokens: HashMap<CodeKey, Box<Entry>>,
    /// Keys in the order they were issued, which is the order they expire
    /// in (one lifetime for all); revoked keys stay until they reach the
    /// front or the queue is compacted.
    order: VecDeque<CodeKey>,
    /// The live tokens of each refresh family, oldest first.
    families: HashMap<Arc<str>, VecDeque<CodeKey>>,
    shapes: HashSet<Arc<Shape>>,
    evicted: bool,
    /// When each (client, user) authorization was revoked as a whole
    /// (GitHub's `DELETE /applications/{client_id}/grant`): refresh tokens
    /// issued before then are refused at their next use, even those whose
    /// access tokens this registry no longer holds. At most `capacity`.
    revoked_grants: HashMap<(Box<str>, Box<str>), SystemTime>,
}

impl Registry {
    /// An empty registry of at most `capacity` live tokens, each live for
    /// `lifetime` from its issue.
    pub(crate) fn new(capacity: usize, lifetime: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                tokens: HashMap::new(),
                order: VecDeque::new(),
                families: HashMap::new(),
                shapes: HashSet::new(),
                evicted: false,
                revoked_grants: HashMap::new(),
            })),
            capacity: capacity.max(1),
            lifetime,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the maps consistent before it can panic.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `token`, issued at `now` for `issued`.
    pub(crate) fn insert(&self, token: &str, issued: Issued<'_>, now: SystemTime) {
        // Digests before the lock: it is held by every mint.
        let key = CodeKey::of(token);
        let refresh = issued.refresh_token.map(CodeKey::of);
        let mut inner = self.lock();
        inner.sweep(now, self.lifetime);
        let mut evicted = 0usize;
        while inner.tokens.len() >= self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if inner.remove(&oldest).is_some() {
                evicted += 1;
            }
        }
        if evicted > 0 && !inner.evicted {
            inner.evicted = true;
            tracing::warn!(
                capacity = self.capacity,
                "the access-token registry is full: the oldest live tokens are forgotten (they introspect inactive) to make room"
            );
        }
        let shape = inner.shape(issued);
        let family = issued.family.map(|family| inner.family(family, key));
        inner.tokens.insert(
            key,
            Box::new(Entry {
                shape,
                issued_at: now,
                dpop_jkt: issued.dpop_jkt.map(Box::from),
                family,
                refresh,
            }),
        );
        inner.order.push_back(key);
        if inner.order.len() > 2 * inner.tokens.len() + 1024 {
            let Inner { tokens, order, .. } = &mut *inner;
            order.retain(|key| tokens.contains_key(key));
        }
    }

    /// The live token `token`, if the registry has it at `now`.
    pub(crate) fn describe(&self, token: &str, now: SystemTime) -> Option<Described> {
        let key = CodeKey::of(token);
        let inner = self.lock();
        let entry = inner.tokens.get(&key)?;
        let expires_at = entry.issued_at + self.lifetime;
        (now < expires_at).then(|| Described {
            shape: Arc::clone(&entry.shape),
            issued_at: entry.issued_at,
            expires_at,
            dpop_jkt: entry.dpop_jkt.clone(),
            refresh: entry.refresh,
        })
    }

    /// Deletes `token` if it was issued to `client_id`; whether it did.
    pub(crate) fn revoke(&self, token: &str, client_id: &str) -> bool {
        let key = CodeKey::of(token);
        let mut inner = self.lock();
        match inner.tokens.get(&key) {
            Some(entry) if &*entry.shape.client_id == client_id => {
                inner.remove(&key);
                true
            }
            _ => false,
        }
    }

    /// Replaces `token`, issued to `client_id` and live at `now`, by
    /// `fresh` (GitHub's token reset): the same client, user, scopes,
    /// binding and refresh family, a new lifetime from `now`. The old
    /// token is dead. `None` if `token` is not such a token.
    pub(crate) fn replace(
        &self,
        token: &str,
        client_id: &str,
        fresh: &str,
        now: SystemTime,
    ) -> Option<Described> {
        let key = CodeKey::of(token);
        let fresh_key = CodeKey::of(fresh);
        let mut inner = self.lock();
        let live = inner.tokens.get(&key).is_some_and(|entry| {
            &*entry.shape.client_id == client_id && now < entry.issued_at + self.lifetime
        });
        if !live {
            return None;
        }
        let old = inner.remove(&key)?;
        let family = old
            .family
            .as_deref()
            .map(|family| inner.family(family, fresh_key));
        let entry = Entry {
            shape: old.shape,
            issued_at: now,
            dpop_jkt: old.dpop_jkt,
            family,
            refresh: old.refresh,
        };
        let described = Described {
            shape: Arc::clone(&entry.shape),
            issued_at: now,
            expires_at: now + self.lifetime,
            dpop_jkt: entry.dpop_jkt.clone(),
            refresh: entry.refresh,
        };
        inner.tokens.insert(fresh_key, Box::new(entry));
        inner.order.push_back(fresh_key);
        Some(described)
    }

    /// Revokes the whole authorization of `subject` for `client_id` at
    /// `now`: deletes every access token of theirs here, remembers the time
    /// (refresh tokens issued before it are refused at their next use, see
    /// [`Self::grant_revoked`]), and answers the refresh families of the
    /// tokens it deleted, for the caller to revoke in the store.
    pub(crate) fn revoke_grant(
        &self,
        client_id: &str,
        subject: &str,
        now: SystemTime,
    ) -> Vec<Arc<str>> {
        let mut inner = self.lock();
        let keys: Vec<CodeKey> = inner
            .tokens
            .iter()
            .filter(|(_, entry)| {
                &*entry.shape.client_id == client_id
                    && entry.shape.subject.as_deref() == Some(subject)
            })
            .map(|(key, _)| *key)
            .collect();
        let mut families = Vec::new();
        for key in keys {
            if let Some(family) = inner.remove(&key).and_then(|entry| entry.family)
                && !families.contains(&family)
            {
                families.push(family);
            }
        }
        if inner.revoked_grants.len() >= self.capacity {
            // Full: the oldest revocation goes. Its refresh tokens were
            // revoked with their families when it was made, or are older
            // than every other one kept.
            if let Some(oldest) = inner
                .revoked_grants
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(who, _)| who.clone())
            {
                inner.revoked_grants.remove(&oldest);
            }
        }
        inner
            .revoked_grants
            .insert((client_id.into(), subject.into()), now);
        families
    }

    /// Whether a refresh token of `subject` for `client_id` issued at
    /// `issued_at` belongs to an authorization revoked since.
    pub(crate) fn grant_revoked(
        &self,
        client_id: &str,
        subject: &str,
        issued_at: SystemTime,
    ) -> bool {
        let inner = self.lock();
        inner
            .revoked_grants
            .get(&(Box::from(client_id), Box::from(subject)))
            .is_some_and(|revoked| issued_at <= *revoked)
    }

    /// Deletes `token` whatever its client (its refresh family is gone).
    pub(crate) fn forget(&self, token: &str) {
        let key = CodeKey::of(token);
        self.lock().remove(&key);
    }

    /// Deletes every token of the refresh family `family`; how many.
    pub(crate) fn revoke_family(&self, family: &str) -> usize {
        let mut inner = self.lock();
        let Some(keys) = inner.families.remove(family) else {
            return 0;
        };
        let dropped = keys
            .iter()
            .filter(|key| inner.tokens.remove(key).is_some())
            .count();
        if dropped > 0 {
            tracing::info!(dropped, "access tokens of a revoked refresh family dropped");
        }
        dropped
    }

    /// How many tokens the registry holds (expired ones not yet dropped
    /// included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().tokens.len()
    }

    /// How many keys wait in the expiry queue (revoked ones included).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.lock().order.len()
    }

    /// How many refresh families have live tokens here.
    #[cfg(test)]
    pub(crate) fn families(&self) -> usize {
        self.lock().families.len()
    }
}

impl Inner {
    /// Drops the expired tokens at the front of the queue, and the keys
    /// there of tokens already gone.
    fn sweep(&mut self, now: SystemTime, lifetime: Duration) {
        while let Some(front) = self.order.front() {
            match self.tokens.get(front) {
                Some(entry) if now < entry.issued_at + lifetime => break,
                Some(_) => {
                    let key = *front;
                    self.remove(&key);
                }
                None => {}
            }
            self.order.pop_front();
        }
    }

    /// Removes the token `key` from the map and from its family.
    fn remove(&mut self, key: &CodeKey) -> Option<Box<Entry>> {
        let entry = self.tokens.remove(key)?;
        if let Some(family) = &entry.family
            && let Some(keys) = self.families.get_mut(&**family)
        {
            // Tokens leave a family mostly in the order they joined it.
            if keys.front() == Some(key) {
                keys.pop_front();
            } else if let Some(at) = keys.iter().position(|k| k == key) {
                keys.remove(at);
            }
            if keys.is_empty() {
                self.families.remove(&**family);
            }
        }
        Some(entry)
    }

    /// The shared shape of `issued`.
    fn shape(&mut self, issued: Issued<'_>) -> Arc<Shape> {
        let shape = Shape {
            client_id: issued.client_id.into(),
            subject: issued.subject.map(Box::from),
            scopes: issued.scopes.into(),
        };
        if let Some(shared) = self.shapes.get(&shape) {
            return Arc::clone(shared);
        }
        let shape = Arc::new(shape);
        if self.shapes.len() < MAX_SHAPES {
            self.shapes.insert(Arc::clone(&shape));
        }
        shape
    }

    /// The family `family`, with `key` added to its tokens.
    fn family(&mut self, family: &str, key: CodeKey) -> Arc<str> {
        let known = self
            .families
            .get_key_value(family)
            .map(|(name, _)| Arc::clone(name));
        match known {
            Some(name) => {
                if let Some(keys) = self.families.get_mut(&*name) {
                    keys.push_back(key);
                }
                name
            }
            None => {
                let name: Arc<str> = Arc::from(family);
                self.families
                    .insert(Arc::clone(&name), VecDeque::from([key]));
                name
            }
        }
    }
}

/// What the revocation and introspection handlers share.
#[derive(Clone)]
pub(crate) struct Lifecycle {
    pub(crate) tokens: Registry,
    pub(crate) refresh_alive: RefreshAlive,
    pub(crate) revoke_family: RevokeFamily,
    /// The issuer, the introspection answers' `iss`.
    pub(crate) issuer: Arc<str>,
}

/// `POST /login/oauth/revoke` (RFC 7009), for a token the gate did not
/// keep: deleted if it is the caller's access token; `200` in every case
/// (§2.2: the client only wants it gone, and learns nothing of others').
pub(crate) async fn revoke(State(lifecycle): State<Lifecycle>, request: Request) -> Response<Body> {
    let Some(action) = action(&request, TokenActionKind::Revocation) else {
        return server_error();
    };
    if lifecycle
        .tokens
        .revoke(action.token(), action.client().client_id())
    {
        tracing::info!(client_id = ?action.client().client_id(), "access token revoked on request");
    }
    no_store(Response::new(Body::empty()))
}

/// `POST /login/oauth/introspect` (RFC 7662), for a token the gate did not
/// keep: an access token of the demo's, or `{"active":false}`.
pub(crate) async fn introspect(
    State(lifecycle): State<Lifecycle>,
    request: Request,
) -> Response<Body> {
    let Some(action) = action(&request, TokenActionKind::Introspection) else {
        return server_error();
    };
    let described = match lifecycle.live(action.token(), SystemTime::now()).await {
        Ok(Some(described)) => described,
        Ok(None) => return Introspection::inactive().response().map(Body::from),
        Err(()) => return server_error(),
    };
    described
        .introspection(&lifecycle.issuer)
        .response()
        .map(Body::from)
}

impl Lifecycle {
    /// The live access token `token` at `now`: known to the registry, not
    /// expired, and, when a refresh token was issued with it, that token's
    /// family not revoked, here or through another process sharing the
    /// store. `Err` when the store cannot say (the caller fails closed).
    pub(crate) async fn live(&self, token: &str, now: SystemTime) -> Result<Option<Described>, ()> {
        let Some(described) = self.tokens.describe(token, now) else {
            return Ok(None);
        };
        let Some(refresh) = described.refresh() else {
            return Ok(Some(described));
        };
        match (self.refresh_alive)(refresh).await {
            Ok(true) => Ok(Some(described)),
            Ok(false) => {
                self.tokens.forget(token);
                Ok(None)
            }
            Err(error) => {
                tracing::error!(%error, "could not look up the refresh token of an access token");
                Err(())
            }
        }
    }
}

/// The gate's hand-over, when the request came through the gate to the
/// endpoint it was meant for.
fn action(request: &Request, kind: TokenActionKind) -> Option<&TokenAction> {
    let action = request.extensions().get::<TokenAction>();
    // Behind the gate this cannot fail; if a misconfiguration ever routed
    // a request around it, refuse rather than answer unauthenticated.
    action.filter(|action| action.kind() == kind)
}

/// `Cache-Control: no-store` and `Pragma: no-cache`: answers about
/// credentials are never cached.
fn no_store(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// An RFC 6749 `server_error`, in JSON as every error at these endpoints.
fn server_error() -> Response<Body> {
    let mut response = no_store(Response::new(Body::from(
        r#"{"error":"server_error","error_description":"the authorization server could not complete the request"}"#,
    )));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
