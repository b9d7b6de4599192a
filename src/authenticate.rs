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
    settings::Settings,
    store::ClientStore,
};

/// Who the request says it is, and how it proves it (borrowed from the
/// request: nothing is copied).
struct Claim<'a> {
    client_id: &'a str,
    secret: Option<&'a str>,
    /// Whether the secret came by HTTP Basic.
    basic: bool,
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
                basic: true,
            })
        }
        None => Ok(Claim {
            client_id: request
                .client_id
                .as_deref()
                .ok_or(Failure::BadClientCredentials)?,
            secret: request.client_secret.as_deref(),
            basic: false,
        }),
    }
}

/// The client id the request claims, for logs, before authentication.
pub(crate) fn claimed_id(request: &TokenRequest) -> Option<&str> {
    match &request.basic {
        Some(Ok(basic)) => Some(&basic.client_id),
        _ => request.client_id.as_deref().or(request.assertion_subject()),
    }
}

/// Authenticates the client of `request`: `client_secret_basic`,
/// `client_secret_post`, a signed assertion (`private_key_jwt`,
/// `client_secret_jwt`), or none for a public client. A client registered
/// for one method is refused when it uses another.
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
    settings: &Settings,
    request: &TokenRequest,
    id_suffices: bool,
) -> Result<Arc<Client>, Failure> {
    match request.assertion() {
        (None, None) => {}
        (Some(assertion), Some(kind)) => {
            if request.basic.is_some() || request.client_secret.is_some() {
                return Err(Failure::TwoAuthMethods);
            }
            return assertion::authenticate(store, settings, request, assertion, kind).await;
        }
        _ => {
            return Err(Failure::Malformed(
                "client_assertion and client_assertion_type go together",
            ));
        }
    }
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
            // Compared whatever the method, so that the time taken does not
            // tell a client registered for another method.
            Some(_) => client.verify_digest(&presented) & client.takes_secret(claim.basic),
            None => {
                black_box(DUMMY.matches(&presented));
                // Not for a client registered for a method: it is held to it.
                id_suffices && client.auth_method().is_none()
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

/// Signed client assertions (RFC 7523 §2.2).
mod assertion {
    use std::sync::Arc;

    use crate::{
        client::Client, error::Failure, parse::TokenRequest, settings::Settings, store::ClientStore,
    };

    /// Authenticates a request that carries `assertion` of type `kind`.
    #[cfg(feature = "jose")]
    pub(super) async fn authenticate<C: ClientStore>(
        store: &C,
        settings: &Settings,
        request: &TokenRequest,
        assertion: &str,
        kind: &str,
    ) -> Result<Arc<Client>, Failure> {
        use crate::jose::{
            Jws,
            assertion::{JWT_BEARER, Rules, subject, verify},
        };

        if kind != JWT_BEARER {
            return Err(Failure::BadClientCredentials);
        }
        let Ok(jws) = Jws::parse(assertion) else {
            return Err(Failure::BadClientCredentials);
        };
        let client_id = match request.client_id.as_deref() {
            Some(id) => id,
            None => subject(&jws).ok_or(Failure::BadClientCredentials)?,
        };
        let (Some(issuer), Some(endpoint)) = (&settings.issuer, &settings.signed.token_endpoint)
        else {
            tracing::error!("a client assertion needs the issuer: set Builder::issuer");
            return Err(Failure::BadClientCredentials);
        };
        let client = store.client(client_id).await.map_err(|error| {
            tracing::error!(%error, "credential store failed");
            Failure::Store
        })?;
        let signed = &settings.signed;
        let now = settings.clock.now();
        let rules = Rules {
            audiences: [issuer, endpoint],
            max_lifetime: signed.assertion_lifetime,
            leeway: signed.leeway,
            now,
        };
        let one_time = verify(&jws, client.as_deref(), client_id, &rules).map_err(|why| {
            tracing::debug!(why = why.0, "client assertion refused");
            Failure::BadClientCredentials
        })?;
        let Some(client) = client else {
            return Err(Failure::BadClientCredentials);
        };
        let first = signed
            .replays
            .first_use(&one_time.key, one_time.until, now)
            .await
            .map_err(crate::grant::store_failed)?;
        if !first {
            return Err(Failure::AssertionReplayed);
        }
        Ok(client)
    }

    /// Without the `jose` feature no assertion verifies.
    #[cfg(not(feature = "jose"))]
    pub(super) async fn authenticate<C: ClientStore>(
        _: &C,
        _: &Settings,
        _: &TokenRequest,
        _: &str,
        _: &str,
    ) -> Result<Arc<Client>, Failure> {
        Err(Failure::BadClientCredentials)
    }
}
