//! Grant checks (SPEC.md, check 5), one file per grant type, and the
//! [`ValidatedGrant`] a forwarded request carries.

pub(crate) mod authorization_code;

use std::sync::Arc;

use crate::{
    client::{Client, GrantType},
    code::CodeRecord,
};

/// What the gate established about a forwarded request, in its extensions.
///
/// The inner service only has to mint the token:
///
/// ```
/// use tokengate::ValidatedGrant;
///
/// fn handler(request: http::Request<()>) -> String {
///     let grant = request.extensions().get::<ValidatedGrant>().expect("behind the gate");
///     format!("token for {:?} via {}", grant.subject(), grant.client().client_id())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct ValidatedGrant {
    client: Arc<Client>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    AuthorizationCode(CodeRecord),
}

impl ValidatedGrant {
    pub(crate) fn authorization_code(client: Arc<Client>, record: CodeRecord) -> Self {
        Self {
            client,
            kind: Kind::AuthorizationCode(record),
        }
    }

    /// The grant type that was checked.
    pub fn grant_type(&self) -> GrantType {
        match self.kind {
            Kind::AuthorizationCode(_) => GrantType::AuthorizationCode,
        }
    }

    /// The authenticated client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The user the token is for.
    pub fn subject(&self) -> Option<&str> {
        match &self.kind {
            Kind::AuthorizationCode(record) => Some(&record.subject),
        }
    }

    /// The scopes to grant.
    pub fn scopes(&self) -> &[String] {
        match &self.kind {
            Kind::AuthorizationCode(record) => &record.scopes,
        }
    }

    /// The redeemed code's record, for the authorization-code grant.
    pub fn code(&self) -> Option<&CodeRecord> {
        match &self.kind {
            Kind::AuthorizationCode(record) => Some(record),
        }
    }
}
