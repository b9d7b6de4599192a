//! The decide step: everything between the body's arrival and the verdict,
//! in the order of [docs/contract.md](../../docs/contract.md#order-of-checks).
//!
//! parse -> lockout -> grant_type -> authenticate the client -> grant
//! allowed for it -> the grant's own checks -> policies -> claim. The
//! answer is a [`Decision`]: forward the request (with its grant in the
//! extensions and, with two-phase redemption, a claim on what it redeems),
//! or answer it with a rejection. The store types are erased once, behind
//! [`Decide`], so the tower plumbing above never names them.

mod application;
mod claim;
mod device_authorization;
mod dpop;
mod lifecycle;

use std::{net::IpAddr, sync::Arc, time::Instant};

use bytes::Bytes;
use http::{Request, Response, request::Parts};

pub(crate) use self::claim::{ClaimGuard, End};
use self::lifecycle::Handled;
use crate::{
    answer::{refuse, refuse_at, refuse_by_policy},
    authenticate::{authenticate, claimed_id},
    client::GrantType,
    dialect::Dialect,
    error::Failure,
    format::ResponseFormat,
    grant::{
        ClaimOn, GrantClaim, ValidatedGrant, authorization_code, client_credentials, device_code,
        refresh_token::{self, Committed},
        store_failed,
    },
    lockout::{Lockout, warn_no_peer},
    parse::{TokenRequest, parse},
    policy::{self, DynPolicy, PolicyRequest},
    settings::Settings,
    store::{BoxFuture, ClientStore, CodeStore, DeviceStore, RefreshStore, StoreError},
    telemetry::{self, Endpoint, Outcome},
};

/// A gated request whose body is in (or could not be read).
pub(crate) struct Arrived {
    pub(crate) parts: Parts,
    pub(crate) body: Result<Bytes, Failure>,
    pub(crate) endpoint: Endpoint,
    pub(crate) format: ResponseFormat,
    /// When the gate received the request, for its latency histogram.
    pub(crate) started: Instant,
}

/// The verdict on a gated request.
// The output of one boxed future per request, moved once: boxing the
// request's head to even the variants would cost an allocation for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Decision {
    /// Every check passed: hand the request on, its body unchanged, the
    /// [`ValidatedGrant`] and [`ResponseFormat`] in its extensions.
    Forward {
        parts: Parts,
        body: Bytes,
        /// The claim to confirm or release by the inner service's answer.
        claim: Option<ClaimGuard>,
    },
    /// The gate answers itself: a rejection, or the device endpoint's reply.
    Answer(Response<Bytes>),
}

/// What the steps found; the head they borrowed goes with it into the
/// [`Decision`].
enum Judged {
    Forward {
        body: Bytes,
        claim: Option<ClaimGuard>,
    },
    Answer(Response<Bytes>),
}

/// The decide step with the store types erased.
pub(crate) trait Decide: Send + Sync + 'static {
    fn settings(&self) -> &Settings;

    fn decide(self: Arc<Self>, arrived: Arrived) -> BoxFuture<'static, Decision>;

    /// Confirms or releases a claim a forwarded request held. Answers
    /// whether a confirmation still held the claim (a release: `true`).
    fn end(
        self: Arc<Self>,
        claim: GrantClaim,
        how: End,
    ) -> BoxFuture<'static, Result<bool, StoreError>>;
}

/// The decide step over concrete stores. The refresh and device stores are
/// optional: without one, its grant is not served.
pub(crate) struct Gate<C, K, R, D> {
    pub(crate) settings: Arc<Settings>,
    pub(crate) policies: Vec<Arc<dyn DynPolicy>>,
    pub(crate) clients: Arc<C>,
    pub(crate) codes: Arc<K>,
    pub(crate) refresh: Option<Arc<R>>,
    pub(crate) devices: Option<Arc<D>>,
}

/// A refused request: why, and which client it claimed to be (for logs and
/// the lockout).
struct Refusal {
    failure: Failure,
    client_id: Option<String>,
}

impl From<Failure> for Refusal {
    fn from(failure: Failure) -> Self {
        Self {
            failure,
            client_id: None,
        }
    }
}

impl<C, K, R, D> Gate<C, K, R, D>
where
    C: ClientStore,
    K: CodeStore,
    R: RefreshStore,
    D: DeviceStore,
{
    async fn run(self: Arc<Self>, arrived: Arrived) -> Decision {
        let Arrived {
            mut parts,
            body,
            endpoint,
            format,
            started,
        } = arrived;
        let settings = &*self.settings;
        let peer = settings.peer.find(&parts);
        // The head stays here and the steps borrow it: it is moved once
        // more, into the decision, however many steps run.
        let verdict = match body {
            Ok(body) => {
                Arc::clone(&self)
                    .judge(&mut parts, body, endpoint, format, peer)
                    .await
            }
            Err(failure) => Err(failure.into()),
        };
        let response = match verdict {
            Ok(Judged::Forward { body, claim }) => {
                let grant = parts.extensions.get::<ValidatedGrant>();
                let grant = grant.map_or("", |grant| grant.grant_type().as_str());
                let outcome = Outcome::Forwarded { grant };
                telemetry::record(settings.dialect(), endpoint, started, outcome);
                return Decision::Forward { parts, body, claim };
            }
            Ok(Judged::Answer(response)) => response,
            Err(Refusal { failure, client_id }) => {
                let client_id = client_id.as_deref();
                if let Some(lockout) = &settings.lockout
                    && failure.is_a_guess()
                {
                    let tally = lockout.tally(peer, client_id);
                    let now = settings.clock.now();
                    if let Err(error) = settings.counting.fail(tally, now).await {
                        // The request is refused anyway; the count is lost.
                        tracing::error!(%error, "store failed while counting a failed attempt");
                    }
                }
                refuse_at(settings, endpoint, failure, format, client_id)
            }
        };
        telemetry::record_answer(settings.dialect(), endpoint, started, &response);
        Decision::Answer(response)
    }

    /// Every check on a request whose body arrived.
    async fn judge(
        self: Arc<Self>,
        parts: &mut Parts,
        body: Bytes,
        endpoint: Endpoint,
        format: ResponseFormat,
        peer: Option<IpAddr>,
    ) -> Result<Judged, Refusal> {
        let settings = &*self.settings;
        let mut request = parse(parts, &body, settings.dialect(), endpoint)?;
        // A locked-out peer is refused before any other store is asked.
        if let Some(lockout) = &settings.lockout
            && let Some(wait) = locked(settings, lockout, peer, claimed_id(&request)).await?
        {
            // Whole seconds, rounded up: never invite a retry too early.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let failure = Failure::LockedOut(seconds.max(1));
            // Not counted again: a locked-out request is not a guess.
            let client_id = claimed_id(&request);
            let answer = refuse_at(settings, endpoint, failure, format, client_id);
            return Ok(Judged::Answer(answer));
        }
        if endpoint == Endpoint::Application {
            let prefix = settings.application_api.as_deref().unwrap_or_default();
            let action = Box::pin(self.application_action(parts, &request, prefix)).await;
            return match action {
                Ok(action) => {
                    parts.extensions.insert(action);
                    Ok(Judged::Forward { body, claim: None })
                }
                Err(failure) => {
                    let client_id = claimed_id(&request).map(str::to_owned);
                    Err(Refusal { failure, client_id })
                }
            };
        }
        if let Some(kind) = lifecycle::action_at(endpoint) {
            let handled = Box::pin(self.token_action(&request, kind)).await;
            return match handled {
                Ok(Handled::Answer(answer)) => Ok(Judged::Answer(answer)),
                Ok(Handled::Forward(action)) => {
                    parts.extensions.insert(action);
                    parts.extensions.insert(format);
                    Ok(Judged::Forward { body, claim: None })
                }
                Err(failure) => {
                    let client_id = claimed_id(&request).map(str::to_owned);
                    Err(Refusal { failure, client_id })
                }
            };
        }
        // The rarer paths run boxed: inline, their state would size the
        // future every token request allocates (past the allocator's fast
        // sizes, which cost every exchange more than these boxes cost them).
        if endpoint == Endpoint::DeviceAuthorization {
            let authorization = Box::pin(self.authorize_device(&request)).await;
            let refusal = |failure| {
                let client_id = claimed_id(&request).map(str::to_owned);
                Refusal { failure, client_id }
            };
            return Ok(Judged::Answer(
                authorization.map_err(refusal)?.response(format),
            ));
        }
        // The DPoP proof, before the client: its key is what the grant's
        // bindings are compared with.
        // A scan, not a hashed look-up: a request has a few headers, and
        // this runs on every exchange, proof or not.
        let proof = if parts.headers.keys().any(|name| *name == dpop::DPOP) {
            match Box::pin(dpop::verify(settings, parts)).await {
                Ok(proof) => proof,
                Err(Failure::DpopNonce) => {
                    let client_id = claimed_id(&request);
                    let answer = match Box::pin(dpop::nonce_header(settings)).await {
                        Ok(nonce) => dpop::with_nonce(
                            refuse(settings, Failure::DpopNonce, format, client_id),
                            nonce,
                        ),
                        Err(failure) => refuse(settings, failure, format, client_id),
                    };
                    return Ok(Judged::Answer(answer));
                }
                Err(failure) => {
                    let client_id = claimed_id(&request).map(str::to_owned);
                    return Err(Refusal { failure, client_id });
                }
            }
        } else {
            None
        };
        if let Some(proof) = &proof {
            request.set_dpop_jkt(proof.jkt.clone());
        }
        let refusal = |failure| {
            let client_id = claimed_id(&request).map(str::to_owned);
            Refusal { failure, client_id }
        };
        let (grant, claim) = self.check(&request).await.map_err(refusal)?;
        let grant = match request.dpop_jkt() {
            Some(jkt) => grant.with_dpop(Some(jkt.to_owned())),
            None => grant,
        };
        let claim = claim.map(|claim| self.guard(claim, format, &grant));
        if let Some(proof) = &proof {
            // A replayed proof drops the claim, which hands the code back.
            Box::pin(dpop::record(settings, proof))
                .await
                .map_err(refusal)?;
        }
        let claim = if self.policies.is_empty() {
            claim
        } else {
            match Box::pin(self.police(parts, &grant, claim, format)).await {
                Ok(claim) => claim,
                Err(refused) => return Ok(Judged::Answer(refused)),
            }
        };
        self.commit(parts, body, grant, claim, format).await
    }

    /// Checks 2 to 5: the grant type, the client, the grant's own checks.
    async fn check(
        &self,
        request: &TokenRequest,
    ) -> Result<(ValidatedGrant, Option<GrantClaim>), Failure> {
        let settings = &*self.settings;
        let grant = match request.grant_type.as_deref() {
            Some(name) => GrantType::from_param(name)
                .filter(|grant| settings.serves(*grant))
                .ok_or(Failure::GrantTypeUnsupported)?,
            None if settings.dialect() == Dialect::GitHub => GrantType::AuthorizationCode,
            None => return Err(Failure::GrantTypeMissing),
        };
        // GitHub's device flow identifies the client by its id alone.
        let id_suffices = grant == GrantType::DeviceCode && settings.dialect() == Dialect::GitHub;
        let client = authenticate(&*self.clients, &self.settings, request, id_suffices).await?;
        if !client.allows_grant(grant) {
            return Err(match grant {
                GrantType::DeviceCode => Failure::DeviceFlowDisabled,
                _ => Failure::GrantNotAllowed,
            });
        }
        // RFC 9449 §5.2: such a client gets no bearer token.
        if client.dpop_bound_access_tokens() && request.dpop_jkt().is_none() {
            return Err(Failure::DpopRequired);
        }
        match (grant, &self.refresh, &self.devices) {
            (GrantType::AuthorizationCode, _, _) => {
                let refresh = self.refresh.as_deref();
                let (record, key, claim) =
                    authorization_code::redeem(&*self.codes, refresh, settings, &client, request)
                        .await?;
                Ok((
                    ValidatedGrant::authorization_code(client, record, key),
                    claim,
                ))
            }
            (GrantType::RefreshToken, Some(store), _) => {
                let checked = refresh_token::check(&**store, settings, &client, request).await?;
                let grant = ValidatedGrant::refresh_token(client, checked);
                Ok((grant, None))
            }
            (GrantType::DeviceCode, _, Some(store)) => {
                // The claim first: once the poll took an approved code out of
                // the store, nothing may fail before it is put back or used.
                let (claim, at_once) = settings.claim().map_err(store_failed)?;
                let (key, record, subject) =
                    device_code::poll(&**store, settings, &client, request).await?;
                let on = ClaimOn::DeviceCode(Box::new(record.clone()));
                let claim = (!at_once).then_some(GrantClaim { on, key, claim });
                Ok((ValidatedGrant::device_code(client, record, subject), claim))
            }
            (GrantType::ClientCredentials, _, _) => {
                let scopes = client_credentials::scopes(settings, &client, request)?;
                Ok((ValidatedGrant::client_credentials(client, scopes), None))
            }
            // `serves` refused these already; a grant without its store is
            // not one this gate serves.
            (GrantType::RefreshToken | GrantType::DeviceCode, _, _) => {
                Err(Failure::GrantTypeUnsupported)
            }
        }
    }

    fn guard(
        self: &Arc<Self>,
        claim: GrantClaim,
        format: ResponseFormat,
        grant: &ValidatedGrant,
    ) -> ClaimGuard {
        let gate: Arc<dyn Decide> = Arc::clone(self) as Arc<dyn Decide>;
        ClaimGuard::new(gate, claim, format, grant.clone())
    }

    /// Check 6: the application's policies. A refusal uses the claimed
    /// value up, as a failed check would have.
    async fn police(
        &self,
        parts: &mut Parts,
        grant: &ValidatedGrant,
        claim: Option<ClaimGuard>,
        format: ResponseFormat,
    ) -> Result<Option<ClaimGuard>, Response<Bytes>> {
        let settings = &*self.settings;
        let shared = Arc::new(std::mem::replace(parts, Request::new(()).into_parts().0));
        let request = PolicyRequest::new(grant.clone(), Arc::clone(&shared), settings.dialect());
        let verdict = policy::run(&self.policies, request).await;
        // The policies are done with the head; one that kept a clone costs
        // a copy.
        *parts = Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone());
        let Err(error) = verdict else {
            return Ok(claim);
        };
        if let Some(mut claim) = claim
            && let Err(error) = claim.end(End::Confirm).await
        {
            tracing::error!(%error, "store failed while using up a refused request's code");
        }
        let client_id = grant.client().client_id();
        Err(refuse_by_policy(settings, error, format, client_id))
    }

    /// The last step: rotate (claim) a refresh token, now that every check
    /// and policy passed, then hand the grant on.
    async fn commit(
        self: &Arc<Self>,
        parts: &mut Parts,
        body: Bytes,
        grant: ValidatedGrant,
        claim: Option<ClaimGuard>,
        format: ResponseFormat,
    ) -> Result<Judged, Refusal> {
        let (grant, claim) = match (grant.uncommitted_refresh(), grant.refresh(), &self.refresh) {
            (Some(key), Some(previous), Some(store)) => {
                let client = grant.client();
                let settings = &self.settings;
                let commit = refresh_token::commit(&**store, settings, client, *key, previous);
                match Box::pin(commit).await {
                    Ok(Committed::Rotated(claim)) => {
                        let claim = claim.map(|claim| self.guard(claim, format, &grant));
                        (grant, claim)
                    }
                    Ok(Committed::Reused) => (grant.into_reuse(), None),
                    Err(failure) => {
                        let client_id = Some(client.client_id().to_owned());
                        return Err(Refusal { failure, client_id });
                    }
                }
            }
            _ => (grant, claim),
        };
        tracing::debug!(client_id = ?grant.client().client_id(), "token request forwarded");
        parts.extensions.insert(grant);
        parts.extensions.insert(format);
        Ok(Judged::Forward { body, claim })
    }
}

/// How long the request's peer (or peer and client id) stays locked out,
/// if it is. A store that cannot tell fails the request closed.
async fn locked(
    settings: &Settings,
    lockout: &Lockout,
    peer: Option<IpAddr>,
    client_id: Option<&str>,
) -> Result<Option<std::time::Duration>, Failure> {
    if peer.is_none() {
        warn_no_peer();
    }
    let tally = lockout.tally(peer, client_id);
    let now = settings.clock.now();
    settings
        .counting
        .locked(tally, now)
        .await
        .map_err(store_failed)
}

impl<C, K, R, D> Decide for Gate<C, K, R, D>
where
    C: ClientStore,
    K: CodeStore,
    R: RefreshStore,
    D: DeviceStore,
{
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn decide(self: Arc<Self>, arrived: Arrived) -> BoxFuture<'static, Decision> {
        Box::pin(self.run(arrived))
    }

    fn end(
        self: Arc<Self>,
        claim: GrantClaim,
        how: End,
    ) -> BoxFuture<'static, Result<bool, StoreError>> {
        Box::pin(async move {
            let GrantClaim { on, key, claim } = claim;
            match (on, how, &self.refresh, &self.devices) {
                (ClaimOn::Code, End::Confirm, _, _) => self.codes.confirm(&key, &claim).await,
                (ClaimOn::Code, End::Release, _, _) => {
                    self.codes.release(&key, &claim).await.map(|()| true)
                }
                (ClaimOn::RefreshToken, End::Confirm, Some(store), _) => {
                    store.confirm(&key, &claim).await
                }
                (ClaimOn::RefreshToken, End::Release, Some(store), _) => {
                    store.release(&key, &claim).await.map(|()| true)
                }
                // The poll already took the device code out of the store.
                (ClaimOn::DeviceCode(_), End::Confirm, _, _) => Ok(true),
                (ClaimOn::DeviceCode(record), End::Release, _, Some(store)) => {
                    if !store.issue(key, *record).await? {
                        // Its user code went to another device meanwhile.
                        tracing::warn!("a failed device grant could not be put back");
                    }
                    Ok(true)
                }
                // A claim is only taken on a store the gate has.
                (ClaimOn::RefreshToken | ClaimOn::DeviceCode(_), _, _, _) => Err(StoreError::new(
                    "a claim on a store this gate does not have",
                )),
            }
        })
    }
}
