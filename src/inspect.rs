//! Running the gate's checks without an inner service: the answer a request
//! would get, as a value. For unit tests of policies and configurations.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::{
    body::RequestBody, error::Rejection, grant::ValidatedGrant, layer::TokenGateLayer,
    lifecycle::TokenAction,
};

/// An inner service that only hands back the grant it was given.
#[derive(Clone, Copy)]
struct Capture;

impl<B> Service<Request<RequestBody<B>>> for Capture {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<RequestBody<B>>) -> Self::Future {
        let mut response = Response::new(String::new());
        if let Some(grant) = request.extensions().get::<ValidatedGrant>() {
            response.extensions_mut().insert(grant.clone());
        }
        if let Some(action) = request.extensions().get::<TokenAction>() {
            response.extensions_mut().insert(action.clone());
        }
        ready(Ok(response))
    }
}

/// What the gate made of a request.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Every check and policy passed: the request would be forwarded with
    /// this grant (and the code or token is now used, as it would be).
    Forwarded(ValidatedGrant),
    /// The gate answered instead: its rejection.
    Rejected(Rejection),
    /// The revocation or introspection endpoint authenticated the caller
    /// and would hand the token to the inner service (it is none of the
    /// gate's refresh tokens).
    Handed(TokenAction),
    /// The gate answered with something other than an error (the device
    /// authorization endpoint's reply, a revocation or introspection of one
    /// of its refresh tokens), or the request is for another path and would
    /// pass through untouched.
    NotChecked,
}

impl TokenGateLayer {
    /// Runs every check the gate would run on `request` (and the policies)
    /// and says how it ended, without an inner service. Stores are used as
    /// for real: a code that passes is redeemed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tokengate::{Client, ErrorCode, MemoryStore, TokenGateLayer, Verdict};
    ///
    /// let store = MemoryStore::new();
    /// store.insert_client(Client::confidential("app").with_secret("s3cret"));
    /// let layer = TokenGateLayer::new(store);
    /// let request = http::Request::post("/login/oauth/access_token")
    ///     .header("content-type", "application/x-www-form-urlencoded")
    ///     .body("grant_type=authorization_code&code=nope&client_id=app&client_secret=s3cret".to_owned())
    ///     .unwrap();
    /// match layer.check(request).await {
    ///     Verdict::Rejected(rejection) => assert_eq!(rejection.code(), ErrorCode::InvalidGrant),
    ///     other => panic!("{other:?}"),
    /// }
    /// # }
    /// ```
    pub async fn check<B>(&self, request: Request<B>) -> Verdict
    where
        B: Body<Data = Bytes>,
    {
        let mut gate = tower_layer::Layer::layer(self, Capture);
        let response = match gate.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        if let Some(rejection) = response.extensions().get::<Rejection>() {
            return Verdict::Rejected(rejection.clone());
        }
        if let Some(action) = response.extensions().get::<TokenAction>() {
            return Verdict::Handed(action.clone());
        }
        match response.extensions().get::<ValidatedGrant>() {
            Some(grant) => Verdict::Forwarded(grant.clone()),
            None => Verdict::NotChecked,
        }
    }
}
