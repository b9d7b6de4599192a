//! Client authentication (RFC 6749 §2.3; docs/contract.md#client-authentication, check 3).

use std::{
    hint::black_box,
    sync::{Arc, LazyLock},
};

use crate::{
    client::Client,
    error::Failure,
    parse::{BasicCredentials, TokenRequest},
    secret::SecretDigest,
    store::ClientStore,
};

/// Who the request says it is, and how it proves it (borrowed from the
/// request: nothing is copied).
struct Claim<'a> {
    client_id: &'a str,
    secret: Option<&'a str>,
}

/// Picks the one authentication method the request used.
fn claim(request: &TokenRequest) -> Result<Claim<'_>, Failure> {
    match &request.basic {
        Some(basic) => {
            let BasicCredentials {
                client_id,
                client_secret,
            } = basic.as_ref().map_err(|failure| *failure)?;
            if request.client_secret.is_some() {
                return Err(Failure::TwoAuthMethods);
            }
            // RFC 6749 allows the body to repeat the client_id; it must then
            // name the same client.
            if request
                .client_id
                .as_ref()
                .is_some_and(|id| id.as_str() != client_id)
            {
                return Err(Failure::ClientIdConflict);
            }
            Ok(Claim {
                client_id,
                secret: Some(client_secret.as_str()).filter(|s| !s.is_empty()),
            })
        }
        None => Ok(Claim {
            client_id: request
                .client_id
                .as_deref()
                .ok_or(Failure::BadClientCredentials)?,
            secret: request.client_secret.as_deref(),
        }),
    }
}

/// The client id the request claims, for logs, before authentication.
pub(crate) fn claimed_id(request: &TokenRequest) -> Option<&str> {
    match &request.basic {
        Some(Ok(basic)) => Some(&basic.client_id),
        _ => request.client_id.as_deref(),
    }
}

/// Authenticates the client of `request`: `client_secret_basic`,
/// `client_secret_post`, or none for a public client.
///
/// An unknown client, a wrong secret, a missing secret and a secret sent by
/// a public client all give the same failure after the same work: one
/// SHA-256 and a constant-time comparison against at least one digest.
///
/// `id_suffices` accepts a confidential client that sends no secret at all:
/// GitHub's device flow identifies the client by `client_id` alone. A secret
/// that is sent must still be right.
pub(crate) async fn authenticate<C: ClientStore>(
    store: &C,
    request: &TokenRequest,
    id_suffices: bool,
) -> Result<Arc<Client>, Failure> {
    let claim = claim(request)?;
    let client = store.client(claim.client_id).await.map_err(|error| {
        tracing::error!(%error, "credential store failed");
        Failure::Store
    })?;
    let presented = SecretDigest::of(claim.secret.unwrap_or(""));
    let accepted = match &client {
        Some(client) if client.is_public() => {
            // Burn the same comparison a confidential client would cost.
            black_box(DUMMY.matches(&presented));
            claim.secret.is_none()
        }
        Some(client) => match claim.secret {
            Some(_) => client.verify_digest(&presented),
            None => {
                black_box(DUMMY.matches(&presented));
                id_suffices
            }
        },
        None => {
            black_box(DUMMY.matches(&presented));
            false
        }
    };
    match client {
        Some(client) if accepted => Ok(client),
        _ => Err(Failure::BadClientCredentials),
    }
}

/// A digest no secret hashes to in practice, compared against when there is
/// no real one so that the time taken does not reveal which case it was.
static DUMMY: LazyLock<SecretDigest> =
    LazyLock::new(|| SecretDigest::of("tokengate: no such client"));
