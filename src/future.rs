//! The response future: read the body, decide, then forward or answer.
//!
//! Four states: reading the body; deciding (one boxed future, over the
//! erased stores); forwarded to the inner service, with a claim still to
//! end by its answer; answered by the gate itself.

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
    header::{CACHE_CONTROL, PRAGMA},
    request::Parts,
};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::{
    answer::refuse,
    body::{RequestBody, ResponseBody},
    deadline::Deadline,
    decide::{Arrived, ClaimGuard, Decide, Decision, End},
    error::Failure,
    format::ResponseFormat,
    store::{BoxFuture, StoreError},
    telemetry::Endpoint,
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
        Reading {
            #[pin]
            body: B,
            received: BytesMut,
            deadline: Deadline,
            pending: Option<Box<Pending<S>>>,
        },
        Deciding {
            decision: BoxFuture<'static, Decision>,
            pending: Option<Box<Pending<S>>>,
        },
        // The request is the inner service's now; only the body type of its
        // answer changes (and, on the gate's paths, a missing Cache-Control).
        Forwarded {
            #[pin]
            future: S::Future,
            gated: bool,
            // Kept while the request holds a claim on its code or refresh
            // token, ended by the inner service's answer (two-phase
            // redemption); dropping it releases the claim.
            claim: Option<Box<Ending<Answer<S, B>>>>,
        },
        Answered {
            response: Option<Box<Response<Bytes>>>,
        },
    }
}

/// The inner service's answer to a forwarded request.
type Answer<S, B> = Result<
    <S as Service<Request<RequestBody<B>>>>::Response,
    <S as Service<Request<RequestBody<B>>>>::Error,
>;

/// What a gated request carries until it is decided.
pub(crate) struct Pending<S> {
    /// The request's head; the decide step borrows it, then hands it back.
    pub(crate) parts: Option<Parts>,
    pub(crate) service: S,
    pub(crate) gate: Arc<dyn Decide>,
    pub(crate) format: ResponseFormat,
    pub(crate) endpoint: Endpoint,
    pub(crate) started: Instant,
}

/// A forwarded request's claim, and the inner service's answer while the
/// claim ends.
struct Ending<A> {
    claim: ClaimGuard,
    ending: Option<BoxFuture<'static, Result<bool, StoreError>>>,
    answer: Option<A>,
    /// A 2xx, which may only pass if the claim still held.
    must_hold: bool,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<RequestBody<B>>>,
    B: Body,
{
    pub(crate) fn pass_through(future: S::Future) -> Self {
        let (gated, claim) = (false, None);
        let state = State::Forwarded {
            future,
            gated,
            claim,
        };
        Self { state }
    }

    pub(crate) fn refused(response: Response<Bytes>) -> Self {
        let response = Some(Box::new(response));
        let state = State::Answered { response };
        Self { state }
    }

    pub(crate) fn read(body: B, pending: Pending<S>) -> Self {
        let deadline = Deadline::after(pending.gate.settings().read_timeout);
        let state = State::Reading {
            body,
            received: BytesMut::new(),
            deadline,
            pending: Some(Box::new(pending)),
        };
        Self { state }
    }
}

const POLLED_AFTER_COMPLETION: &str = "ResponseFuture polled after completion";

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    B: Body<Data = Bytes>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    // A request for another path only polls the inner service: that much
    // inlines, and the gate's own states stay out of line.
    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let StateProj::Forwarded {
            future,
            gated: false,
            claim: None,
        } = self.as_mut().project().state.project()
        {
            return future
                .poll(cx)
                .map(|answer| answer.map(|response| response.map(ResponseBody::inner)));
        }
        self.poll_gated(cx)
    }
}

impl<S, B, ResBody> ResponseFuture<S, B>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    B: Body<Data = Bytes>,
{
    #[inline(never)]
    fn poll_gated(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<ResponseBody<ResBody>>, S::Error>> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Forwarded {
                    mut future,
                    gated,
                    claim,
                } => {
                    if let Some(ending) = claim
                        && let Some(end) = &mut ending.ending
                    {
                        let ended = ready!(end.as_mut().poll(cx));
                        return Poll::Ready(ending.finish(ended));
                    }
                    let answer = ready!(future.as_mut().poll(cx));
                    match claim {
                        Some(ending) => ending.begin(answer),
                        None => return Poll::Ready(deliver(answer, *gated)),
                    }
                    continue;
                }
                StateProj::Answered { response } => {
                    let response = response.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Ok((*response).map(ResponseBody::gate)));
                }
                StateProj::Reading {
                    body,
                    received,
                    deadline,
                    pending,
                } => {
                    let gate = &pending.as_ref().expect(POLLED_AFTER_COMPLETION).gate;
                    let limit = gate.settings().body_limit;
                    let read = match poll_read(body, cx, received, limit) {
                        Poll::Ready(read) => read,
                        Poll::Pending if deadline.poll_expired(cx) => Err(Failure::ReadTimeout),
                        Poll::Pending => return Poll::Pending,
                    };
                    let body = read.map(|()| std::mem::take(received).freeze());
                    decide(pending.take().expect(POLLED_AFTER_COMPLETION), body)
                }
                StateProj::Deciding { decision, pending } => {
                    match ready!(decision.as_mut().poll(cx)) {
                        Decision::Forward { parts, body, claim } => {
                            let mut pending = pending.take().expect(POLLED_AFTER_COMPLETION);
                            let body = RequestBody::buffered(body);
                            let request = Request::from_parts(parts, body);
                            forward(&mut pending.service, request, claim)
                        }
                        Decision::Answer(response) => {
                            return Poll::Ready(Ok(response.map(ResponseBody::gate)));
                        }
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

/// The body is in (or could not be read): start the decide step.
fn decide<S, B>(mut pending: Box<Pending<S>>, body: Result<Bytes, Failure>) -> State<S, B>
where
    S: Service<Request<RequestBody<B>>>,
    B: Body,
{
    let arrived = Arrived {
        parts: pending.parts.take().expect(POLLED_AFTER_COMPLETION),
        body,
        endpoint: pending.endpoint,
        format: pending.format,
        started: pending.started,
    };
    let decision = Arc::clone(&pending.gate).decide(arrived);
    let pending = Some(pending);
    State::Deciding { decision, pending }
}

/// Every check passed: the request goes to the inner service with its body
/// as received, holding its claim until the answer ends it.
fn forward<S, B>(
    service: &mut S,
    request: Request<RequestBody<B>>,
    claim: Option<ClaimGuard>,
) -> State<S, B>
where
    S: Service<Request<RequestBody<B>>>,
    B: Body,
{
    // Should `call` panic, dropping the guard hands the claim back.
    let future = service.call(request);
    let claim = claim.map(Ending::new);
    State::Forwarded {
        future,
        gated: true,
        claim,
    }
}

impl<A> Ending<A> {
    fn new(claim: ClaimGuard) -> Box<Self> {
        Box::new(Self {
            claim,
            ending: None,
            answer: None,
            must_hold: false,
        })
    }
}

impl<ResBody, E> Ending<Result<Response<ResBody>, E>> {
    /// The inner service answered: a 2xx uses the value up (and passes only
    /// if the claim still held); a 5xx, a 408 or 429 (a timeout or rate
    /// limit inside the gate) or an error hands it back for the client's
    /// retry; any other answer is final and uses it up.
    fn begin(&mut self, answer: Result<Response<ResBody>, E>) {
        let status = answer.as_ref().map(Response::status).ok();
        let (how, must_hold) = match status {
            Some(status) if status.is_success() => (End::Confirm, true),
            Some(status)
                if !status.is_server_error()
                    && status != StatusCode::REQUEST_TIMEOUT
                    && status != StatusCode::TOO_MANY_REQUESTS =>
            {
                (End::Confirm, false)
            }
            _ => (End::Release, false),
        };
        self.ending = Some(self.claim.end(how));
        self.answer = Some(answer);
        self.must_hold = must_hold;
    }

    /// The claim ended: hand the answer on, or withhold a token whose claim
    /// was lost.
    fn finish(
        &mut self,
        ended: Result<bool, StoreError>,
    ) -> Result<Response<ResponseBody<ResBody>>, E> {
        let answer = self.answer.take().expect(POLLED_AFTER_COMPLETION);
        match (self.must_hold, ended) {
            (_, Ok(true)) | (false, Ok(false)) => deliver(answer, true),
            (false, Err(error)) => {
                tracing::error!(%error, "store failed while ending a claim after a non-2xx answer; it lapses by itself");
                deliver(answer, true)
            }
            (true, lost) => {
                // The token the inner service minted must not leave: the
                // code may be another request's now.
                let client_id = self.claim.grant.client().client_id();
                match lost {
                    Err(error) => {
                        tracing::error!(%error, "store failed while confirming a claim; withholding the token");
                    }
                    Ok(_) => {
                        tracing::error!(
                            ?client_id,
                            "claim lost before the inner service answered; withholding the token"
                        );
                    }
                }
                let settings = self.claim.settings();
                let format = self.claim.format;
                let response = refuse(settings, Failure::Store, format, Some(client_id));
                Ok(response.map(ResponseBody::gate))
            }
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

/// Hands the inner service's answer on. RFC 6749 §5.1: token responses must
/// not be cached, so one without `Cache-Control` gets `no-store`.
fn deliver<ResBody, E>(
    answer: Result<Response<ResBody>, E>,
    gated: bool,
) -> Result<Response<ResponseBody<ResBody>>, E> {
    let mut response = answer?;
    if gated && !response.headers().contains_key(CACHE_CONTROL) {
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    }
    Ok(response.map(ResponseBody::inner))
}
