//! The layer: configuration shared by every service it wraps.

use std::{fmt, sync::Arc};

use tower_layer::Layer;

use crate::{
    authorize::Authorizer,
    builder::Builder,
    decide::Decide,
    device::Devices,
    issuing::Issuing,
    metadata::Metadata,
    refresh::RefreshTokens,
    service::TokenGate,
    store::{ClientStore, CodeStore, RefreshStore},
};

/// Applies [`TokenGate`] to a service.
///
/// ```
/// use tokengate::{Client, MemoryStore, TokenGateLayer};
///
/// let store = MemoryStore::new();
/// store.insert_client(Client::confidential("app").with_secret("s3cret")
///     .with_redirect_uri("https://app.example/cb"));
/// let layer = TokenGateLayer::new(store);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct TokenGateLayer {
    gate: Arc<dyn Decide>,
    issuing: Arc<Issuing>,
}

impl TokenGateLayer {
    /// Guards `POST /login/oauth/access_token` in the RFC 6749 dialect with
    /// default settings, using `store` for clients, codes and refresh
    /// tokens.
    ///
    /// The device flow is left off: its endpoint must tell users where to
    /// go, which takes the server's public URL. Configure it with the
    /// [`builder`](Self::builder): `.store(store).issuer(url)`.
    pub fn new<St>(store: St) -> Self
    where
        St: ClientStore + CodeStore + RefreshStore + Clone,
    {
        Self::builder()
            .client_store(store.clone())
            .code_store(store.clone())
            .refresh_store(store)
            .build()
    }

    /// Starts a configuration; see [`Builder`].
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn from_parts(gate: Arc<dyn Decide>, issuing: Arc<Issuing>) -> Self {
        Self { gate, issuing }
    }

    /// The issuing side that shares this layer's stores, clock and code
    /// lifetime: validates authorization requests and mints codes.
    pub fn authorizer(&self) -> Authorizer {
        Authorizer::new(Arc::clone(&self.issuing))
    }

    /// The helper the inner service uses to hand out refresh tokens.
    pub fn refresh_tokens(&self) -> RefreshTokens {
        RefreshTokens::new(Arc::clone(&self.issuing))
    }

    /// The RFC 8414 metadata for this layer's configuration, with endpoint
    /// URLs under `issuer` (e.g. `https://auth.example.com`).
    ///
    /// The `issuer` given here is used as is, even when the builder
    /// configured another: prefer [`metadata_document`](Self::metadata_document)
    /// then. Never pass a value taken from the request (its `Host` header):
    /// the client chooses it, and a cache may keep the forged document.
    pub fn metadata(&self, issuer: &str) -> Metadata {
        Metadata::new(&self.issuing.settings, issuer)
    }

    /// The RFC 8414 metadata under the issuer configured with
    /// [`Builder::issuer`]; `None` when none was. Serve it at
    /// `/.well-known/oauth-authorization-server` with
    /// [`Metadata::response`].
    ///
    /// ```
    /// use tokengate::{MemoryStore, TokenGateLayer};
    ///
    /// let layer = TokenGateLayer::builder()
    ///     .store(MemoryStore::new())
    ///     .issuer("https://auth.example.com/")
    ///     .build();
    /// let metadata = layer.metadata_document().expect("an issuer is configured");
    /// let json = serde_json::to_value(&metadata).unwrap();
    /// assert_eq!(json["issuer"], "https://auth.example.com");
    /// assert_eq!(
    ///     json["device_authorization_endpoint"],
    ///     "https://auth.example.com/login/device/code"
    /// );
    /// assert!(TokenGateLayer::new(MemoryStore::new()).metadata_document().is_none());
    /// ```
    pub fn metadata_document(&self) -> Option<Metadata> {
        let settings = &self.issuing.settings;
        let issuer = settings.issuer.as_deref()?;
        Some(Metadata::new(settings, issuer))
    }

    /// The verification side of the device flow: the page where a user
    /// types a user code and approves or denies it.
    pub fn devices(&self) -> Devices {
        Devices::new(Arc::clone(&self.issuing))
    }
}

impl<S> Layer<S> for TokenGateLayer {
    type Service = TokenGate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenGate::new(inner, Arc::clone(&self.gate))
    }
}

impl fmt::Debug for TokenGateLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGateLayer")
            .field("settings", self.gate.settings())
            .finish()
    }
}
