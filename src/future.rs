//! The response future: read the body, check, run the policies, then
//! forward or answer.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Instant,
};

use bytes::{Bytes, BytesMut};
use http::{
    HeaderValue, Request, Response, StatusCode,
    header::{CACHE_CONTROL, HOST, PRAGMA},
    request::Parts,
};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::{
    answer::{refuse, refuse_by_policy},
    authenticate::claimed_id,
    body::{RequestBody, ResponseBody},
    check::{BoxFuture, Checked, Checks, DeviceAuthorization, Refusal},
    deadline::Deadline,
    error::Failure,
    format::{FieldValue, ResponseFormat},
    grant::ValidatedGrant,
    parse::parse,
    policy::{self, PolicyError, PolicyRequest},
    reservation::{Claim, Reservation, Settle},
    store::StoreError,
    telemetry::{self, Outcome},
};

pin_project! {
    /// Response future of [`TokenGate`](crate::TokenGate).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<RequestBody<B>>>,
        B: Body,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<RequestBody<B>>>,
        B: Body,
    {
        // The request is the inner service's now; only the body type of its
        // answer changes (and, on the token path, a missing Cache-Control).
        Forwarded {
            #[pin]
            future: S::Future,
            token_path: bool,
            // Kept while the request holds a claim on its code or refresh
            // token, settled by the inner service's answer (two-phase
            // redemption); dropping it releases the claim.
            pending: Option<Box<Pending<S, Answer<S, B>>>>,
        },
        Reading {
            #[pin]
            body: B,
            received: BytesMut,
            limit: usize,
            deadline: Deadline,
            pending: Option<Box<Pending<S, Answer<S, B>>>>,
        },
        Checking {
            check: BoxFuture<Result<Checked, Refusal>>,
            body: Bytes,
            pending: Option<Box<Pending<S, Answer<S, B>>>>,
        },
        Policing {
            policies: BoxFuture<Result<(), PolicyError>>,
            grant: Option<ValidatedGrant>,
            parts: Option<Arc<Parts>>,
            body: Bytes,
            pending: Option<Box<Pending<S, Answer<S, B>>>>,
        },
        Committing {
            commit: BoxFuture<Result<Checked, Refusal>>,
            body: Bytes,
            pending: Option<Box<Pending<S, Answer<S, B>>>>,
        },
        AuthorizingDevice {
            authorize: BoxFuture<Result<DeviceAuthorization, Refusal>>,
            pending: Option<Box<Pending<S, Answer<S, B>>>>,
        },
        // A claim being confirmed or released, with the answer to give once
        // it is: the gate's own refusal, or the inner service's, kept in
        // `pending` with the claim (`must_hold`: a 2xx, which may only pass
        // if the claim still held).
        Settling {
            settle: BoxFuture<Result<bool, StoreError>>,
            refusal: Option<Box<Response<Bytes>>>,
            pending: Option<Box<Pending<S, Answer<S, B>>>>,
            must_hold: bool,
        },
        // The gate's own answer: a refusal, or the device endpoint's reply.
        Answered {
            response: Option<Box<Response<Bytes>>>,
        },
    }
}

/// Which endpoint of the gate a request is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Token,
    DeviceAuthorization,
}

/// The inner service's answer to a forwarded request.
type Answer<S, B> = Result<
    <S as Service<Request<RequestBody<B>>>>::Response,
    <S as Service<Request<RequestBody<B>>>>::Error,
>;

/// What a gated request carries from one state to the next. `A` is the
/// inner service's answer, kept here while a claim settles (in the box the
/// request already has, so the response future stays small).
pub(crate) struct Pending<S, A> {
    pub(crate) parts: Parts,
    pub(crate) service: S,
    pub(crate) gate: Arc<dyn Checks>,
    pub(crate) format: ResponseFormat,
    pub(crate) endpoint: Endpoint,
    /// When the gate received the request, for its latency histogram.
    pub(crate) started: Instant,
    /// The claim on the request's code or refresh token, once the checks
    /// took one (two-phase redemption).
    pub(crate) claim: Option<Claim>,
    /// The inner service's answer, while its claim settles.
    pub(crate) answer: Option<A>,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<RequestBody<B>>>,
    B: Body,
{
    pub(crate) fn pass_through(future: S::Future) -> Self {
        Self {
            state: State::Forwarded {
                future,
                token_path: false,
                pending: None,
            },
        }
    }

    pub(crate) fn refused(response: Response<Bytes>) -> Self {
        Self {
            state: State::Answered {
                response: Some(Box::new(response)),
            },
        }
    }

    pub(crate) fn read(body: B, limit: usize, pending: Pending<S, Answer<S, B>>) -> Self {
        let deadline = Deadline::after(pending.gate.settings().read_timeout);
        Self {
            state: State::Reading {
                body,
                received: BytesMut::new(),
                limit,
                deadline,
                pending: Some(Box::new(pending)),
            },
        }
    }
}

const POLLED_AFTER_COMPLETION: &str = "ResponseFuture polled after completion";

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    B: Body<Data = Bytes>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Forwarded {
                    future,
                    token_path,
                    pending,
                } => {
                    let answer = ready!(future.poll(cx));
                    match pending.take() {
                        None => return Poll::Ready(deliver(answer, *token_path)),
                        Some(pending) => settle_by(answer, pending),
                    }
                }
                StateProj::Settling {
                    settle,
                    refusal,
                    pending,
                    must_hold,
                } => {
                    let settled = ready!(settle.as_mut().poll(cx));
                    if let Some(refusal) = refusal.take() {
                        if let Err(error) = settled {
                            tracing::error!(%error, "store failed while using up a refused request's code");
                        }
                        return Poll::Ready(Ok((*refusal).map(ResponseBody::gate)));
                    }
                    let mut pending = pending.take().expect(POLLED_AFTER_COMPLETION);
                    let answer = pending.answer.take().expect(POLLED_AFTER_COMPLETION);
                    let claim = pending.claim.take().filter(|_| *must_hold);
                    match (claim, settled) {
                        (_, Ok(true)) => return Poll::Ready(deliver(answer, true)),
                        (None, Ok(false)) => return Poll::Ready(deliver(answer, true)),
                        (None, Err(error)) => {
                            tracing::error!(%error, "store failed while releasing a claim; it lapses by itself");
                            return Poll::Ready(deliver(answer, true));
                        }
                        (Some(claim), lost) => {
                            // The token the inner service minted must not
                            // leave: the code may be another request's now.
                            match lost {
                                Err(error) => {
                                    tracing::error!(%error, "store failed while confirming a claim; withholding the token")
                                }
                                Ok(_) => {
                                    tracing::error!(client_id = ?claim.grant.client().client_id(), "claim lost before the inner service answered; withholding the token")
                                }
                            }
                            let settings = claim.gate().settings();
                            let response = refuse(
                                settings,
                                Failure::Store,
                                claim.format,
                                Some(claim.grant.client().client_id()),
                            );
                            return Poll::Ready(Ok(response.map(ResponseBody::gate)));
                        }
                    }
                }
                StateProj::Answered { response } => {
                    let response = response.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Ok((*response).map(ResponseBody::gate)));
                }
                StateProj::Reading {
                    mut body,
                    received,
                    limit,
                    deadline,
                    pending,
                } => {
                    let read = match poll_read(body.as_mut(), cx, received, *limit) {
                        Poll::Ready(read) => read,
                        Poll::Pending if deadline.poll_expired(cx) => Err(Failure::ReadTimeout),
                        Poll::Pending => return Poll::Pending,
                    };
                    let pending = pending.take().expect(POLLED_AFTER_COMPLETION);
                    read_done(read.map(|()| std::mem::take(received).freeze()), pending)
                }
                StateProj::Checking {
                    check,
                    body,
                    pending,
                } => {
                    let verdict = ready!(check.as_mut().poll(cx));
                    let pending = pending.take().expect(POLLED_AFTER_COMPLETION);
                    match verdict {
                        Ok((grant, reservation)) => {
                            let mut pending = pending;
                            hold(&mut pending, &grant, reservation);
                            police(pending, std::mem::take(body), grant)
                        }
                        Err(Refusal { failure, client_id }) => {
                            refused(&pending, failure, client_id.as_deref())
                        }
                    }
                }
                StateProj::Policing {
                    policies,
                    grant,
                    parts,
                    body,
                    pending,
                } => {
                    let verdict = ready!(policies.as_mut().poll(cx));
                    let mut pending = pending.take().expect(POLLED_AFTER_COMPLETION);
                    let grant = grant.take().expect(POLLED_AFTER_COMPLETION);
                    let parts = parts.take().expect(POLLED_AFTER_COMPLETION);
                    match verdict {
                        Ok(()) => {
                            // The policies are done with the head; a policy
                            // that kept a clone costs a copy.
                            pending.parts =
                                Arc::try_unwrap(parts).unwrap_or_else(|shared| (*shared).clone());
                            commit(pending, std::mem::take(body), grant)
                        }
                        Err(error) => {
                            let refused = answered(
                                &pending,
                                refuse_by_policy(
                                    pending.gate.settings(),
                                    error,
                                    pending.format,
                                    grant.client().client_id(),
                                ),
                            );
                            match (pending.claim.take(), refused) {
                                // A refused code is used up, as a failed
                                // check would have.
                                (Some(mut claim), State::Answered { response }) => {
                                    State::Settling {
                                        settle: claim.settle(Settle::Confirm),
                                        refusal: response,
                                        pending: None,
                                        must_hold: false,
                                    }
                                }
                                (_, refused) => refused,
                            }
                        }
                    }
                }
                StateProj::Committing {
                    commit,
                    body,
                    pending,
                } => {
                    let verdict = ready!(commit.as_mut().poll(cx));
                    let pending = pending.take().expect(POLLED_AFTER_COMPLETION);
                    match verdict {
                        Ok((grant, reservation)) => {
                            let mut pending = pending;
                            hold(&mut pending, &grant, reservation);
                            forward(pending, std::mem::take(body), grant)
                        }
                        Err(Refusal { failure, client_id }) => {
                            refused(&pending, failure, client_id.as_deref())
                        }
                    }
                }
                StateProj::AuthorizingDevice { authorize, pending } => {
                    let verdict = ready!(authorize.as_mut().poll(cx));
                    let pending = pending.take().expect(POLLED_AFTER_COMPLETION);
                    match verdict {
                        Ok(authorization) => {
                            answered(&pending, device_response(&authorization, pending.format))
                        }
                        Err(Refusal { failure, client_id }) => {
                            refused(&pending, failure, client_id.as_deref())
                        }
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

/// Reads the body to its end into `received`, or fails as soon as it grows
/// past `limit`: a streamed body is cut there, never buffered whole.
fn poll_read<B: Body<Data = Bytes>>(
    mut body: Pin<&mut B>,
    cx: &mut Context<'_>,
    received: &mut BytesMut,
    limit: usize,
) -> Poll<Result<(), Failure>> {
    loop {
        match ready!(body.as_mut().poll_frame(cx)) {
            None => return Poll::Ready(Ok(())),
            Some(Err(_)) => return Poll::Ready(Err(Failure::BodyUnreadable)),
            Some(Ok(frame)) => {
                // Trailers carry no token parameters.
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if data.len() > limit - received.len() {
                    return Poll::Ready(Err(Failure::BodyTooLarge));
                }
                received.extend_from_slice(&data);
            }
        }
    }
}

/// The body is in (or could not be): parse it and start the checks.
fn read_done<S, B>(
    read: Result<Bytes, Failure>,
    pending: Box<Pending<S, Answer<S, B>>>,
) -> State<S, B>
where
    S: Service<Request<RequestBody<B>>>,
    B: Body,
{
    let body = match read {
        Ok(body) => body,
        Err(failure) => return refused(&pending, failure, None),
    };
    let settings = pending.gate.settings();
    let request = match parse(&pending.parts, &body, settings.dialect()) {
        Ok(request) => request,
        Err(failure) => return refused(&pending, failure, None),
    };
    // A locked-out id or address is refused before any store is asked.
    if let Some(lockouts) = &settings.lockouts {
        let client_id = claimed_id(&request);
        if let Some(wait) = lockouts.locked(client_id, &pending.parts, settings.clock.now()) {
            // Whole seconds, rounded up: never invite a retry too early.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return refused(&pending, Failure::LockedOut(seconds.max(1)), client_id);
        }
    }
    match pending.endpoint {
        Endpoint::Token => State::Checking {
            check: Arc::clone(&pending.gate).check(request),
            body,
            pending: Some(pending),
        },
        Endpoint::DeviceAuthorization => {
            let host = pending
                .parts
                .headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| pending.parts.uri.authority().map(|a| a.as_str()))
                .map(str::to_owned);
            State::AuthorizingDevice {
                authorize: Arc::clone(&pending.gate).authorize_device(request, host),
                pending: Some(pending),
            }
        }
    }
}

/// The response future takes over a claim the checks took.
fn hold<S, A>(
    pending: &mut Pending<S, A>,
    grant: &ValidatedGrant,
    reservation: Option<Reservation>,
) {
    if let Some(reservation) = reservation {
        pending.claim = Some(Claim::new(
            Arc::clone(&pending.gate),
            reservation,
            pending.format,
            grant.clone(),
        ));
    }
}

/// The inner service answered a request that holds a claim: a 2xx uses the
/// value up (and passes only if the claim still held); a 5xx, a 408 or 429
/// (a timeout or rate limit inside the gate) or an error hands it back for
/// the client's retry; any other answer is final and uses it up.
fn settle_by<S, B, ResBody>(
    answer: Result<S::Response, S::Error>,
    mut pending: Box<Pending<S, Answer<S, B>>>,
) -> State<S, B>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    B: Body,
{
    let status = answer.as_ref().map(Response::status).ok();
    let (how, must_hold) = match status {
        Some(status) if status.is_success() => (Settle::Confirm, true),
        Some(status)
            if !status.is_server_error()
                && status != StatusCode::REQUEST_TIMEOUT
                && status != StatusCode::TOO_MANY_REQUESTS =>
        {
            (Settle::Confirm, false)
        }
        _ => (Settle::Release, false),
    };
    let settle = match &mut pending.claim {
        Some(claim) => claim.settle(how),
        None => Box::pin(std::future::ready(Ok(true))),
    };
    pending.answer = Some(answer);
    State::Settling {
        settle,
        refusal: None,
        pending: Some(pending),
        must_hold,
    }
}

/// Hands the inner service's answer on. RFC 6749 §5.1: token responses must
/// not be cached, so one without `Cache-Control` gets `no-store`.
fn deliver<ResBody, E>(
    answer: Result<Response<ResBody>, E>,
    token_path: bool,
) -> Result<Response<ResponseBody<ResBody>>, E> {
    let mut response = answer?;
    if token_path && !response.headers().contains_key(CACHE_CONTROL) {
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    }
    Ok(response.map(ResponseBody::inner))
}

/// The built-in checks passed: run the application's policies, if any.
fn police<S, B>(
    mut pending: Box<Pending<S, Answer<S, B>>>,
    body: Bytes,
    grant: ValidatedGrant,
) -> State<S, B>
where
    S: Service<Request<RequestBody<B>>>,
    B: Body,
{
    let settings = pending.gate.settings();
    if settings.policies.is_empty() {
        return commit(pending, body, grant);
    }
    let parts = Arc::new(std::mem::replace(&mut pending.parts, empty_parts()));
    let request = PolicyRequest::new(grant.clone(), Arc::clone(&parts), settings.dialect());
    State::Policing {
        policies: Box::pin(policy::run(settings.policies.clone(), request)),
        grant: Some(grant),
        parts: Some(parts),
        body,
        pending: Some(pending),
    }
}

/// Every check and policy passed: use up what the grant consumes (a
/// refresh token), then forward.
fn commit<S, B>(
    pending: Box<Pending<S, Answer<S, B>>>,
    body: Bytes,
    grant: ValidatedGrant,
) -> State<S, B>
where
    S: Service<Request<RequestBody<B>>>,
    B: Body,
{
    if grant.uncommitted_refresh().is_none() {
        return forward(pending, body, grant);
    }
    State::Committing {
        commit: Arc::clone(&pending.gate).commit(grant),
        body,
        pending: Some(pending),
    }
}

fn empty_parts() -> Parts {
    Request::new(()).into_parts().0
}

/// Every check passed: hand the request, its body unchanged and the
/// validated grant to the inner service.
fn forward<S, B>(
    mut pending: Box<Pending<S, Answer<S, B>>>,
    body: Bytes,
    grant: ValidatedGrant,
) -> State<S, B>
where
    S: Service<Request<RequestBody<B>>>,
    B: Body,
{
    telemetry::record(
        pending.gate.settings().dialect(),
        pending.endpoint,
        pending.started,
        Outcome::Forwarded {
            grant: grant.grant_type().as_str(),
        },
    );
    tracing::debug!(client_id = ?grant.client().client_id(), "token request forwarded");
    let mut parts = std::mem::replace(&mut pending.parts, empty_parts());
    parts.extensions.insert(grant);
    parts.extensions.insert(pending.format);
    let request = Request::from_parts(parts, RequestBody::buffered(body));
    // Should `call` panic, dropping `pending` hands a claim back.
    let future = pending.service.call(request);
    State::Forwarded {
        future,
        token_path: true,
        // The box lives on only to hold a claim until the answer settles it.
        pending: pending.claim.is_some().then_some(pending),
    }
}

fn refused<S, B>(
    pending: &Pending<S, Answer<S, B>>,
    failure: Failure,
    client_id: Option<&str>,
) -> State<S, B>
where
    S: Service<Request<RequestBody<B>>>,
    B: Body,
{
    let settings = pending.gate.settings();
    if let Some(lockouts) = &settings.lockouts
        && failure.is_a_guess()
    {
        lockouts.fail(client_id, &pending.parts, settings.clock.now());
    }
    answered(
        pending,
        refuse(pending.gate.settings(), failure, pending.format, client_id),
    )
}

/// The gate answers `response` itself; counted as a rejection when it is one.
fn answered<S, B>(pending: &Pending<S, Answer<S, B>>, response: Response<Bytes>) -> State<S, B>
where
    S: Service<Request<RequestBody<B>>>,
    B: Body,
{
    telemetry::record_answer(
        pending.gate.settings().dialect(),
        pending.endpoint,
        pending.started,
        &response,
    );
    State::Answered {
        response: Some(Box::new(response)),
    }
}

/// RFC 8628 §3.2: the device authorization response.
fn device_response(authorization: &DeviceAuthorization, format: ResponseFormat) -> Response<Bytes> {
    format
        .response(&[
            (
                "device_code",
                FieldValue::from(authorization.device_code.as_str()),
            ),
            ("user_code", authorization.user_code.as_str().into()),
            (
                "verification_uri",
                authorization.verification_uri.as_str().into(),
            ),
            ("expires_in", authorization.expires_in.into()),
            ("interval", authorization.interval.into()),
        ])
        .map(Bytes::from)
}
