//! Who is asking (DESIGN.md section 3).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

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
    pub attributes: Attributes,
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
            attributes: Attributes::default(),
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

/// A principal's own attributes, read and written as the `Map` they dereference to.
///
/// A verified token's attributes are its unregistered claims. Most decisions never read them, so
/// they may stay the token's JSON text until first read ([`Attributes::deferred`]): then parsed
/// once, for the principal and every clone of it, which share the result.
#[derive(Clone, Default)]
pub struct Attributes {
    /// The map, unless `deferred` holds it.
    built: Map<String, Value>,
    deferred: Option<Arc<Deferred>>,
}

/// Attributes kept as the text they came in.
struct Deferred {
    text: Arc<str>,
    build: fn(&str) -> Map<String, Value>,
    map: OnceLock<Map<String, Value>>,
}

impl Deferred {
    fn map(&self) -> &Map<String, Value> {
        self.map.get_or_init(|| (self.build)(&self.text))
    }
}

impl Attributes {
    /// The attributes `build` reads from `text`, built when first read.
    pub fn deferred(text: Arc<str>, build: fn(&str) -> Map<String, Value>) -> Self {
        Attributes {
            built: Map::new(),
            deferred: Some(Arc::new(Deferred {
                text,
                build,
                map: OnceLock::new(),
            })),
        }
    }

    /// Whether these are deferred attributes that nothing has read yet.
    pub fn is_unread(&self) -> bool {
        self.deferred
            .as_ref()
            .is_some_and(|d| d.map.get().is_none())
    }
}

impl From<Map<String, Value>> for Attributes {
    fn from(built: Map<String, Value>) -> Self {
        Attributes {
            built,
            deferred: None,
        }
    }
}

impl Deref for Attributes {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Map<String, Value> {
        match &self.deferred {
            Some(d) => d.map(),
            None => &self.built,
        }
    }
}

impl DerefMut for Attributes {
    /// A map of this principal's own: deferred attributes are parsed (if no clone did yet) and
    /// copied, so a change never shows through other clones.
    fn deref_mut(&mut self) -> &mut Map<String, Value> {
        if let Some(d) = self.deferred.take() {
            self.built = d.map().clone();
        }
        &mut self.built
    }
}

impl PartialEq for Attributes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The members of a JSON object other than `sub` and `exp`; none if it is not one.
    fn unregistered(text: &str) -> Map<String, Value> {
        match crate::parse_strict(text.as_bytes()) {
            Ok(Value::Object(mut members)) => {
                members.retain(|name, _| !matches!(name.as_str(), "sub" | "exp"));
                members
            }
            _ => Map::new(),
        }
    }

    fn deferred() -> Attributes {
        Attributes::deferred(
            r#"{"sub":"a","exp":1,"team":"blue","meta":{"x":[1,2]}}"#.into(),
            unregistered,
        )
    }

    #[test]
    fn deferred_attributes_are_the_kept_members_parsed_on_first_read() {
        let a = deferred();
        assert!(a.is_unread());
        let want = json!({"team": "blue", "meta": {"x": [1, 2]}});
        assert_eq!(Value::Object((*a).clone()), want);
        assert!(!a.is_unread());
        assert_eq!(
            a,
            Attributes::from(want.as_object().cloned().unwrap_or_default())
        );
    }

    #[test]
    fn clones_share_one_parse_and_a_change_stays_in_its_own_copy() {
        let a = deferred();
        let mut b = a.clone();
        assert_eq!(b.get("team"), Some(&json!("blue")));
        // `b` read it: `a` shares the parsed map.
        assert!(!a.is_unread());
        b.insert("team".into(), json!("red"));
        b.remove("meta");
        assert_eq!(a.get("team"), Some(&json!("blue")));
        assert!(a.contains_key("meta"));
        assert_eq!(b.len(), 1);
        assert!(!b.is_unread());
    }

    #[test]
    fn equal_whether_deferred_or_built() {
        let built = Attributes::from(unregistered(r#"{"sub":"a","team":"blue"}"#));
        assert_eq!(
            Attributes::deferred(r#"{"team":"blue","exp":2}"#.into(), unregistered),
            built
        );
        assert_ne!(Attributes::deferred("[1]".into(), unregistered), built);
    }
}
