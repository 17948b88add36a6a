//! The token's claims under a provider name: what the verified credential already carries, so a
//! policy can say `claims.email` as plainly as `subject.email`. Never fails.

use mcp_guard_core::Principal;
use serde_json::{Map, Value};

use super::{Asker, AttributesFuture, Provider};

/// Exposes the principal's claims: `sub`, `iss` (external issuers only), `client_id`, `roles`,
/// `scopes`, `permissions`, `auth_method` and every unregistered claim the token held.
#[derive(Clone, Debug)]
pub struct ClaimsProvider {
    name: String,
}

impl ClaimsProvider {
    /// A claims provider read as `<name>.<claim>`.
    pub fn new(name: impl Into<String>) -> Self {
        ClaimsProvider { name: name.into() }
    }

    /// The object it answers with for `principal`.
    pub fn claims_of(principal: &Principal) -> Value {
        let strings =
            |v: &[String]| Value::Array(v.iter().map(|s| Value::String(s.clone())).collect());
        // Unregistered claims first: the typed fields below win over a claim of the same name.
        let mut out: Map<String, Value> = (*principal.attributes).clone();
        out.insert("sub".into(), Value::String(principal.subject.clone()));
        if let Some(iss) = &principal.issuer {
            out.insert("iss".into(), Value::String(iss.clone()));
        }
        if let Some(c) = &principal.client_id {
            out.insert("client_id".into(), Value::String(c.clone()));
        }
        out.insert("roles".into(), strings(&principal.roles));
        out.insert("scopes".into(), strings(&principal.scopes));
        out.insert("permissions".into(), strings(&principal.permissions));
        out.insert(
            "auth_method".into(),
            Value::String(principal.auth_method.as_str().into()),
        );
        Value::Object(out)
    }
}

impl Provider for ClaimsProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn attributes<'a>(&'a self, asker: Asker<'a>) -> AttributesFuture<'a> {
        let principal = asker.principal;
        Box::pin(std::future::ready(Ok(Self::claims_of(principal))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_guard_core::AuthMethod;
    use serde_json::json;

    #[tokio::test]
    async fn claims_and_identity_under_the_name() {
        let mut p = Principal::new(
            Some("https://idp.example".into()),
            "alice",
            AuthMethod::ExternalJwt,
        );
        p.scopes = vec!["mcp:tools".into()];
        p.attributes.insert("email".into(), json!("a@example"));
        // A claim cannot pose as the verified subject.
        p.attributes.insert("sub".into(), json!("mallory"));
        let c = ClaimsProvider::new("claims");
        assert_eq!(c.name(), "claims");
        let v = c.attributes((&p).into()).await.unwrap();
        assert_eq!(v["sub"], "alice");
        assert_eq!(v["iss"], "https://idp.example");
        assert_eq!(v["email"], "a@example");
        assert_eq!(v["scopes"], json!(["mcp:tools"]));
        assert_eq!(v["auth_method"], "external_jwt");
        assert!(v.get("client_id").is_none());
    }
}
