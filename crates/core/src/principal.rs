//! Who is asking (DESIGN.md section 3).

use serde_json::{Map, Value};

/// How a principal proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A token this gateway issued.
    OwnToken,
    /// A JWT from a configured external issuer.
    ExternalJwt,
    /// An opaque token checked by OAuth 2.0 introspection.
    Introspection,
    /// A client certificate (mTLS).
    Mtls,
    /// Credentials from the process environment (stdio front).
    Environment,
    /// Stated on the command line (`mcp-guard check`, `policy test`).
    Cli,
    /// No credential, for a method configured as public (`authorization.public_methods`).
    Anonymous,
}

impl AuthMethod {
    /// A stable lowercase name for logs and attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::OwnToken => "own_token",
            AuthMethod::ExternalJwt => "external_jwt",
            AuthMethod::Introspection => "introspection",
            AuthMethod::Mtls => "mtls",
            AuthMethod::Environment => "environment",
            AuthMethod::Cli => "cli",
            AuthMethod::Anonymous => "anonymous",
        }
    }
}

/// An authenticated caller, as the authenticators report it.
///
/// The canonical identity is `(issuer, subject)`; configuration assigns roles by it and never by
/// email or any other mutable claim.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    /// The token issuer; `None` means this gateway's own tokens.
    pub issuer: Option<String>,
    /// `sub`, or `client:<client_id>` when the credential has no subject.
    pub subject: String,
    /// The OAuth client the credential was issued to, if known.
    pub client_id: Option<String>,
    /// How the principal authenticated.
    pub auth_method: AuthMethod,
    /// Role names from the credential (token `roles` claim, trusted-client entry).
    pub roles: Vec<String>,
    /// Permission patterns from the credential (the seed's `permissions` claim).
    pub permissions: Vec<String>,
    /// OAuth scopes; they grant only through `scope_map`.
    pub scopes: Vec<String>,
    /// Other attributes (claims, certificate fields), readable by ABAC as `subject.<key>`.
    pub attributes: Map<String, Value>,
    /// The tenant, when configured.
    pub tenant: Option<String>,
}

impl Principal {
    /// A principal with only an identity; everything else empty.
    pub fn new(
        issuer: Option<String>,
        subject: impl Into<String>,
        auth_method: AuthMethod,
    ) -> Self {
        Principal {
            issuer,
            subject: subject.into(),
            client_id: None,
            auth_method,
            roles: Vec::new(),
            permissions: Vec::new(),
            scopes: Vec::new(),
            attributes: Map::new(),
            tenant: None,
        }
    }

    /// The subject for a credential that names only a client (client_credentials introspection).
    pub fn client_subject(client_id: &str) -> String {
        format!("client:{client_id}")
    }

    /// `issuer|subject`, or just the subject for this gateway's own tokens: for display and logs.
    pub fn display_id(&self) -> String {
        match &self.issuer {
            Some(iss) => format!("{iss}|{}", self.subject),
            None => self.subject.clone(),
        }
    }
}
