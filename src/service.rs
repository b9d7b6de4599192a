//! The middleware: let other paths through, take token requests apart.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use http::{Method, Request, Response, header::CONTENT_LENGTH};
use http_body::Body;
use tower_service::Service;

use crate::{
    answer::refuse_at,
    body::{RequestBody, ResponseBody},
    decide::Decide,
    error::Failure,
    format::ResponseFormat,
    future::{Pending, ResponseFuture},
    layer::TokenGateLayer,
    lifecycle::application_route,
    store::{ClientStore, CodeStore, DeviceStore, RefreshStore},
    telemetry::{self, Endpoint},
};

/// Guards the token endpoint of the inner service `S`.
///
/// Created by [`TokenGateLayer`]. Requests to other paths reach `S` as they
/// are; token requests reach it only after every check passed, with the
/// [`ValidatedGrant`](crate::ValidatedGrant) and the
/// [`ResponseFormat`] in their extensions. Every refusal is an HTTP
/// response: the service's error type is the inner service's.
#[derive(Clone)]
pub struct TokenGate<S> {
    inner: S,
    gate: Arc<dyn Decide>,
}

impl<S> TokenGate<S> {
    pub(crate) fn new(inner: S, gate: Arc<dyn Decide>) -> Self {
        Self { inner, gate }
    }

    /// A layer guarding the default token path with `store` and default
    /// settings; see [`TokenGateLayer::builder`] for the rest.
    pub fn layer<St>(store: St) -> TokenGateLayer
    where
        St: ClientStore + CodeStore + RefreshStore + DeviceStore + Clone,
    {
        TokenGateLayer::new(store)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for TokenGate<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGate")
            .field("inner", &self.inner)
            .field("settings", self.gate.settings())
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for TokenGate<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>> + Clone,
    B: Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    // Small, so it inlines: a request for another path costs a path
    // comparison and the body's wrapping, and the rest stays out of line.
    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let settings = self.gate.settings();
        let path = request.uri().path();
        let endpoint = if path == settings.token_path {
            Endpoint::Token
        } else if let Some(endpoint) = settings.other_endpoint(path) {
            endpoint
        } else {
            return ResponseFuture::pass_through(
                self.inner.call(request.map(RequestBody::streaming)),
            );
        };
        self.gated(request, endpoint)
    }
}

impl<S> TokenGate<S> {
    /// A request for one of the gate's own endpoints.
    #[inline(never)]
    fn gated<B>(&mut self, request: Request<B>, endpoint: Endpoint) -> ResponseFuture<S, B>
    where
        S: Service<Request<RequestBody<B>>> + Clone,
        B: Body<Data = Bytes>,
    {
        let settings = self.gate.settings();
        let started = Instant::now();
        // The revocation and introspection endpoints answer JSON in either
        // dialect, as their RFCs say.
        let dialect = settings.presentation_at(endpoint).dialect;
        let format = ResponseFormat::negotiate(request.headers(), dialect);
        let allowed = match (endpoint, settings.application_api.as_deref()) {
            // GitHub's OAuth-app routes: any other method or path under
            // them is GitHub's `404`.
            (Endpoint::Application, Some(prefix)) => {
                application_route(prefix, request.method(), request.uri().path()).is_some()
            }
            _ => request.method() == Method::POST,
        };
        let early = if !allowed {
            Some(if endpoint == Endpoint::Application {
                Failure::ApplicationRouteUnknown
            } else {
                Failure::MethodNotAllowed
            })
        } else if declared_length(&request).is_some_and(|len| len > settings.body_limit as u64) {
            // Refused before one byte of the body is read.
            Some(Failure::BodyTooLarge)
        } else {
            None
        };
        if let Some(failure) = early {
            let response = refuse_at(settings, endpoint, failure, format, None);
            telemetry::record_answer(settings.dialect(), endpoint, started, &response);
            return ResponseFuture::refused(response);
        }
        // The ready service goes with this request; the clone waits for the
        // next poll_ready (see tower-service's docs on `call`).
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = request.into_parts();
        let pending = Pending {
            parts: Some(parts),
            service,
            gate: Arc::clone(&self.gate),
            format,
            endpoint,
            started,
        };
        ResponseFuture::read(body, pending)
    }
}

/// The body length the client announced, from `Content-Length` or, failing
/// that, an exact size hint.
fn declared_length<B: Body>(request: &Request<B>) -> Option<u64> {
    let header = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    header.or_else(|| Some(request.body().size_hint().lower()).filter(|&n| n > 0))
}
