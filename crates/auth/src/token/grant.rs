//! The token endpoint's grants (RFC 6749): `client_credentials` and `refresh_token`, with RFC 8707
//! `resource` checks. HTTP framing lives with the endpoints; this is the logic they call.

use std::collections::BTreeSet;

use serde_json::Map;

use super::issue::{AccessClaims, IssueError, Issued, TokenIssuer, random_id, token_hash};
use super::verify::Verifier;
use crate::audit::{AuditEvent, AuditSink};
use crate::clients::Client;
use crate::store::{Family, Rotation, Store, StoreError};

/// A grant refused, with its RFC 6749 error code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// `invalid_grant`: the refresh token is invalid, spent, revoked or another client's.
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    /// `invalid_target`: `resource` names another resource server.
    #[error("invalid_target: the resource is not this server")]
    InvalidTarget,
    /// `invalid_scope`: a scope the client may not have.
    #[error("invalid_scope: scope `{0}` is not allowed for this client")]
    InvalidScope(String),
    /// The store failed (answer 503; never issue).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error(transparent)]
    Issue(#[from] IssueError),
}

impl GrantError {
    /// The RFC 6749 `error` value, or `None` for server-side failures.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            GrantError::InvalidGrant(_) => Some("invalid_grant"),
            GrantError::InvalidTarget => Some("invalid_target"),
            GrantError::InvalidScope(_) => Some("invalid_scope"),
            GrantError::Store(_) | GrantError::Issue(_) => None,
        }
    }
}

/// What the token endpoint answers.
#[derive(Debug)]
pub struct Granted {
    /// The access token.
    pub access: Issued,
    /// A new refresh token, when the grant gives one.
    pub refresh: Option<Issued>,
    /// The granted scope, space-separated.
    pub scope: Option<String>,
}

/// Issues tokens for grants, with the store and audit sink they need.
pub struct Grants<'a> {
    /// Signs tokens.
    pub issuer: &'a TokenIssuer,
    /// Verifies presented refresh tokens.
    pub verifier: &'a Verifier,
    /// Families and revocations.
    pub store: &'a dyn Store,
    /// Where issuance, rotation and reuse are recorded.
    pub audit: &'a dyn AuditSink,
    /// The current time, RFC 3339, for audit lines.
    pub time: String,
}

impl Grants<'_> {
    fn check_resource(&self, resource: Option<&str>) -> Result<(), GrantError> {
        match resource {
            Some(r) if r != self.issuer.audience() => Err(GrantError::InvalidTarget),
            _ => Ok(()),
        }
    }

    fn event(&self, name: &'static str, client: &Client) -> AuditEvent {
        AuditEvent {
            time: self.time.clone(),
            event: name,
            client_id: Some(client.id.clone()),
            ..AuditEvent::default()
        }
    }

    /// `grant_type=client_credentials` for an authenticated client. No refresh token
    /// (RFC 6749 section 4.4.3).
    pub fn client_credentials(
        &self,
        client: &Client,
        scope: Option<&str>,
        resource: Option<&str>,
        now: i64,
    ) -> Result<Granted, GrantError> {
        self.check_resource(resource)?;
        let granted: BTreeSet<&str> = match scope {
            None => client.scopes.iter().map(String::as_str).collect(),
            Some(s) => {
                let mut set = BTreeSet::new();
                for want in s.split_whitespace() {
                    if !client.scopes.iter().any(|c| c == want) {
                        return Err(GrantError::InvalidScope(want.to_owned()));
                    }
                    set.insert(want);
                }
                set
            }
        };
        let scope =
            (!granted.is_empty()).then(|| granted.into_iter().collect::<Vec<_>>().join(" "));
        let access = self.issuer.access(
            &AccessClaims {
                subject: client.id.clone(),
                client_id: Some(client.id.clone()),
                roles: client.roles.clone(),
                scope: scope.clone(),
                metadata: Map::new(),
                ..AccessClaims::default()
            },
            now,
        )?;
        self.audit.record(&AuditEvent {
            subject: Some(client.id.clone()),
            jti: Some(access.jti.clone()),
            outcome: Some("ok"),
            reason: Some("client_credentials".into()),
            ..self.event("token_issued", client)
        });
        Ok(Granted {
            access,
            refresh: None,
            scope,
        })
    }

    /// Starts a refresh family for `subject` at `client_id`; returns its first refresh token and
    /// the family id.
    pub fn start_family(
        &self,
        client_id: &str,
        subject: &str,
        now: i64,
    ) -> Result<(Issued, String), GrantError> {
        let family = random_id()?;
        let refresh = self.issuer.refresh(subject, client_id, &family, now)?;
        self.store.create_family(&Family {
            id: family.clone(),
            client_id: client_id.to_owned(),
            subject: subject.to_owned(),
            current_hash: token_hash(refresh.token.expose()),
            exp: refresh.exp,
            revoked: false,
        })?;
        Ok((refresh, family))
    }

    /// `grant_type=refresh_token`: rotates the presented token. A spent token revokes its family.
    pub fn refresh(
        &self,
        client: &Client,
        presented: &str,
        resource: Option<&str>,
        now: i64,
    ) -> Result<Granted, GrantError> {
        self.check_resource(resource)?;
        let verified = self
            .verifier
            .verify_refresh(presented, now)
            .map_err(|_| GrantError::InvalidGrant("the refresh token is not valid"))?;
        if verified.principal.client_id.as_deref() != Some(client.id.as_str()) {
            return Err(GrantError::InvalidGrant(
                "the refresh token was issued to another client",
            ));
        }
        let family = verified
            .family()
            .ok_or(GrantError::InvalidGrant("the refresh token has no family"))?;
        let subject = verified.principal.subject.clone();
        let next = self.issuer.refresh(&subject, &client.id, family, now)?;
        match self.store.rotate(
            family,
            &token_hash(presented),
            &token_hash(next.token.expose()),
            next.exp,
        )? {
            Rotation::Rotated => {}
            Rotation::ReuseDetected => {
                self.audit.record(&AuditEvent {
                    subject: Some(subject),
                    jti: verified.jti().map(str::to_owned),
                    family: Some(family.to_owned()),
                    outcome: Some("fail"),
                    reason: Some("a spent refresh token was presented: family revoked".into()),
                    ..self.event("refresh_reuse", client)
                });
                return Err(GrantError::InvalidGrant(
                    "the refresh token was already used",
                ));
            }
            Rotation::Revoked => {
                return Err(GrantError::InvalidGrant("the refresh token was revoked"));
            }
            Rotation::Unknown => return Err(GrantError::InvalidGrant("unknown refresh token")),
        }
        let access = self.issuer.access(
            &AccessClaims {
                subject: subject.clone(),
                client_id: Some(client.id.clone()),
                ..AccessClaims::default()
            },
            now,
        )?;
        self.audit.record(&AuditEvent {
            subject: Some(subject),
            jti: Some(access.jti.clone()),
            family: Some(family.to_owned()),
            outcome: Some("ok"),
            ..self.event("token_refreshed", client)
        });
        Ok(Granted {
            access,
            refresh: Some(next),
            scope: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::audit::MemorySink;
    use crate::store::MemoryStore;
    use crate::token::{Algorithm, IssuerPolicy, KeySet, SigningKey};

    const NOW: i64 = 1_795_665_360;
    const AUD: &str = "https://gw.example/mcp";

    struct Fixture {
        issuer: TokenIssuer,
        verifier: Verifier,
        store: MemoryStore,
        audit: MemorySink,
    }

    fn fixture() -> Fixture {
        let key = Arc::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
        let mut keys = KeySet::new();
        keys.insert(key.verify_key().clone());
        let verifier = Verifier::new(vec![IssuerPolicy {
            issuer: "https://gw.example".into(),
            own: true,
            audiences: vec![AUD.into()],
            algorithms: vec![Algorithm::EdDSA],
            keys,
            required_typ: Some("at+jwt".into()),
            roles_claim: "roles".into(),
        }]);
        Fixture {
            issuer: TokenIssuer::new(
                "https://gw.example",
                AUD,
                Duration::from_secs(600),
                Duration::from_secs(86_400),
                key,
            ),
            verifier,
            store: MemoryStore::new(),
            audit: MemorySink::new(),
        }
    }

    fn grants(f: &Fixture) -> Grants<'_> {
        Grants {
            issuer: &f.issuer,
            verifier: &f.verifier,
            store: &f.store,
            audit: &f.audit,
            time: "t".into(),
        }
    }

    fn client(id: &str) -> Client {
        Client {
            id: id.into(),
            secret_hash: String::new(),
            roles: vec!["user".into()],
            scopes: vec!["mcp:read".into(), "mcp:tools".into()],
            may_introspect: false,
        }
    }

    #[test]
    fn client_credentials_checks_resource_and_scope() {
        let f = fixture();
        let g = grants(&f);
        let c = client("svc");
        let ok = g
            .client_credentials(&c, Some("mcp:read"), Some(AUD), NOW)
            .unwrap();
        assert_eq!(ok.scope.as_deref(), Some("mcp:read"));
        assert!(ok.refresh.is_none());
        let v = f.verifier.verify(ok.access.token.expose(), NOW).unwrap();
        assert_eq!(v.principal.client_id.as_deref(), Some("svc"));
        assert_eq!(v.principal.roles, vec!["user"]);
        assert_eq!(v.principal.scopes, vec!["mcp:read"]);
        let e = g
            .client_credentials(&c, None, Some("https://other.example/mcp"), NOW)
            .unwrap_err();
        assert_eq!(e.code(), Some("invalid_target"));
        let e = g
            .client_credentials(&c, Some("mcp:admin"), None, NOW)
            .unwrap_err();
        assert_eq!(e.code(), Some("invalid_scope"));
        assert_eq!(
            g.client_credentials(&c, None, None, NOW)
                .unwrap()
                .scope
                .as_deref(),
            Some("mcp:read mcp:tools")
        );
    }

    #[test]
    fn refresh_rotates_binds_to_the_client_and_revokes_on_reuse() {
        let f = fixture();
        let g = grants(&f);
        let c = client("app");
        let (first, _family) = g.start_family(&c.id, "alice", NOW).unwrap();
        let second = g
            .refresh(&c, first.token.expose(), Some(AUD), NOW + 1)
            .unwrap();
        let v = f
            .verifier
            .verify(second.access.token.expose(), NOW + 1)
            .unwrap();
        assert_eq!(v.principal.subject, "alice");
        let next = second.refresh.unwrap();
        // Another client cannot use it.
        let e = g
            .refresh(&client("thief"), next.token.expose(), None, NOW + 2)
            .unwrap_err();
        assert!(matches!(e, GrantError::InvalidGrant(m) if m.contains("another client")));
        // Replaying the spent first token: reuse, the family dies, and is audited.
        let e = g
            .refresh(&c, first.token.expose(), None, NOW + 3)
            .unwrap_err();
        assert!(matches!(
            e,
            GrantError::InvalidGrant("the refresh token was already used")
        ));
        assert!(
            f.audit
                .events()
                .iter()
                .any(|ev| ev.event == "refresh_reuse")
        );
        // Even the current one no longer works.
        let e = g
            .refresh(&c, next.token.expose(), None, NOW + 4)
            .unwrap_err();
        assert!(matches!(
            e,
            GrantError::InvalidGrant("the refresh token was revoked")
        ));
        // An access token is not a refresh token.
        let e = g
            .refresh(&c, second.access.token.expose(), None, NOW + 5)
            .unwrap_err();
        assert_eq!(e.code(), Some("invalid_grant"));
        // No audit line holds a token.
        let lines = format!("{:?}", f.audit.events());
        for t in [&first.token, &next.token, &second.access.token] {
            assert!(!lines.contains(t.expose()));
        }
    }
}
