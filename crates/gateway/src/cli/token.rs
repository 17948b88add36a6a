//! `mcp-guard token issue|verify|revoke`.

use mcp_guard_auth::audit::{AuditEvent, rfc3339_millis};
use mcp_guard_auth::token::{AccessClaims, AuthnError, Grants, TokenError};
use serde_json::{Map, Value, json};

use super::{Exit, TokenIssueArgs, TokenRevokeArgs, TokenVerifyArgs};
use crate::config::{self, parse_duration};
use crate::tokens::{self, event, now_unix};

fn fail(e: impl std::fmt::Display) -> Exit {
    eprintln!("error: {e}");
    Exit::Usage
}

fn runtime(e: anyhow::Error) -> Exit {
    eprintln!("error: {e:#}");
    Exit::Runtime
}

/// Loads the configuration (exit 2 when invalid) and opens store and keys (exit 3 on failure).
fn open(config: Option<&std::path::Path>) -> Result<tokens::Tokens, Exit> {
    let config = config::load(config).map_err(fail)?;
    tokens::open(&config).map_err(runtime)
}

pub(super) fn issue(args: &TokenIssueArgs) -> Exit {
    let ttl = match args.ttl.as_deref().map(|t| parse_duration(t).ok_or(t)) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(t)) => return fail(format!("invalid --ttl `{t}`: write e.g. `30m`, `1h`, `7d`")),
    };
    let t = match open(args.config.as_deref()) {
        Ok(t) => t,
        Err(exit) => return exit,
    };
    let now = now_unix();
    let claims = AccessClaims {
        subject: args.sub.clone(),
        client_id: args.client.clone(),
        permissions: args.permissions.clone(),
        roles: args.roles.clone(),
        scope: (!args.scopes.is_empty()).then(|| args.scopes.join(" ")),
        metadata: Map::new(),
        ttl,
    };
    let access = match t.issuer.access(&claims, now) {
        Ok(a) => a,
        Err(e) => return runtime(e.into()),
    };
    t.audit.record(&AuditEvent {
        subject: Some(args.sub.clone()),
        client_id: args.client.clone(),
        jti: Some(access.jti.clone()),
        outcome: Some("ok"),
        reason: Some("issued by `mcp-guard token issue`".into()),
        ..event("token_issued")
    });
    if !args.refresh {
        println!("{}", access.token.expose());
        return Exit::Ok;
    }
    let client = args.client.clone().unwrap_or_else(|| args.sub.clone());
    let verifier = t.authn.verifier();
    let grants = Grants {
        issuer: &t.issuer,
        verifier: &verifier,
        store: &*t.store,
        audit: &*t.audit,
        time: rfc3339_millis(tokens::now_millis()),
    };
    let (refresh, family) = match grants.start_family(&client, &args.sub, now) {
        Ok(r) => r,
        Err(e) => return runtime(e.into()),
    };
    t.audit.record(&AuditEvent {
        subject: Some(args.sub.clone()),
        client_id: Some(client),
        jti: Some(refresh.jti.clone()),
        family: Some(family),
        outcome: Some("ok"),
        ..event("refresh_issued")
    });
    let out = json!({
        "access_token": access.token.expose(),
        "token_type": "Bearer",
        "expires_in": access.exp - now,
        "refresh_token": refresh.token.expose(),
        "scope": claims.scope,
    });
    println!("{out}");
    Exit::Ok
}

pub(super) fn verify(args: &TokenVerifyArgs) -> Exit {
    let t = match open(args.config.as_deref()) {
        Ok(t) => t,
        Err(exit) => return exit,
    };
    let token = args.token.trim();
    match t.authn.authenticate(token, now_unix()) {
        Ok(v) => {
            if args.json {
                let p = &v.principal;
                println!(
                    "{}",
                    json!({
                        "valid": true,
                        "subject": p.subject,
                        "issuer": p.issuer,
                        "claims": Value::Object(v.claims.clone()),
                    })
                );
            } else {
                println!(
                    "valid: subject `{}`, expires at {}",
                    v.principal.subject, v.exp
                );
                println!("{}", Value::Object(v.claims.clone()));
            }
            Exit::Ok
        }
        Err(AuthnError::Token(e)) => {
            if args.json {
                println!(
                    "{}",
                    json!({"valid": false, "reason": e.to_string(), "reason_kind": e.kind()})
                );
            } else {
                println!("invalid: {e}");
            }
            Exit::Fail
        }
        Err(e @ AuthnError::Store(_)) => runtime(e.into()),
        Err(e) => runtime(anyhow::anyhow!("{e}")),
    }
}

pub(super) fn revoke(args: &TokenRevokeArgs) -> Exit {
    let t = match open(args.config.as_deref()) {
        Ok(t) => t,
        Err(exit) => return exit,
    };
    let token = args.token.trim();
    let now = now_unix();
    let verifier = t.authn.verifier();
    // A refresh token revokes its whole family; an access token its `jti`.
    let (verified, family) = match verifier.verify_any(token, now) {
        Ok(v) => v,
        Err(TokenError::Expired) => {
            println!("already expired: nothing to revoke");
            return Exit::Ok;
        }
        Err(e) => return invalid(&e),
    };
    let Some(jti) = verified.jti().map(str::to_owned) else {
        return fail("the token has no `jti`, so it cannot be revoked by id");
    };
    if let Err(e) = t.authn.revoke(&jti, verified.exp) {
        return runtime(e.into());
    }
    if let Some(fam) = &family
        && let Err(e) = t.store.revoke_family(fam)
    {
        return runtime(e.into());
    }
    t.audit.record(&AuditEvent {
        subject: Some(verified.principal.subject.clone()),
        client_id: verified.principal.client_id.clone(),
        jti: Some(jti.clone()),
        family,
        outcome: Some("ok"),
        ..event("token_revoked")
    });
    println!("revoked `{jti}`");
    Exit::Ok
}

fn invalid(e: &TokenError) -> Exit {
    eprintln!("error: not a valid token of this gateway: {e}");
    Exit::Fail
}
