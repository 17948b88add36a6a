//! `mcp-guard keys generate|rotate|list`: the gateway's own signing keys in the store.

use mcp_guard_auth::token::{KeyRing, alg_name};
use serde_json::json;

use super::{Exit, KeysArgs, KeysCommand};
use crate::config;
use crate::tokens::{self, KeySource, event, now_unix};

pub(super) fn run(cmd: &KeysCommand) -> Exit {
    let args: &KeysArgs = match cmd {
        KeysCommand::Generate(a)
        | KeysCommand::Rotate(a)
        | KeysCommand::List(a)
        | KeysCommand::Jwks(a) => a,
    };
    let config = match config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let result = (|| -> anyhow::Result<()> {
        let alg = tokens::algorithm(&config)?;
        let store = tokens::open_store(&config)?;
        let audit = tokens::open_audit(&config)?;
        if matches!(cmd, KeysCommand::Generate(_) | KeysCommand::Rotate(_))
            && (config.token.private_key_file.is_some() || alg_name(alg) == "HS256")
        {
            anyhow::bail!(
                "the signing key comes from configuration (`token.private_key_file` or HS256 `token.secret_env`), not from the store"
            );
        }
        match cmd {
            KeysCommand::Jwks(_) => {
                let keys = tokens::load_keys(&config, &*store, true)?;
                let jwks = match &keys {
                    KeySource::Store(ring) => ring.jwks(),
                    KeySource::Config(k) => mcp_guard_auth::token::keys::jwks([&**k]),
                };
                println!("{jwks}");
            }
            KeysCommand::Generate(_) => {
                let keys = tokens::load_keys(&config, &*store, true)?;
                if let KeySource::Store(ring) = keys {
                    println!("{} {}", ring.current().kid(), alg_name(alg));
                }
            }
            KeysCommand::Rotate(_) => {
                let kid = KeyRing::rotate(&*store, alg, now_unix())?;
                audit.record(&mcp_guard_auth::audit::AuditEvent {
                    outcome: Some("ok"),
                    reason: Some(format!("new signing key `{kid}`")),
                    ..event("key_rotated")
                });
                println!("{kid} {}", alg_name(alg));
            }
            KeysCommand::List(a) => {
                let now = now_unix();
                let retention = config
                    .token
                    .refresh_token_expiry
                    .max(config.token.access_token_expiry);
                let retention = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
                let rows: Vec<serde_json::Value> = store
                    .keys()?
                    .into_iter()
                    .map(|k| {
                        let published = k.retired.is_none_or(|r| r.saturating_add(retention) > now);
                        json!({
                            "kid": k.kid, "alg": k.alg, "created": k.created,
                            "retired": k.retired, "signing": k.retired.is_none(),
                            "published": published,
                        })
                    })
                    .collect();
                if a.json {
                    println!("{}", json!({ "keys": rows }));
                } else if rows.is_empty() {
                    println!("no keys in the store");
                } else {
                    for r in rows {
                        let state = if r["signing"] == true {
                            "signing"
                        } else if r["published"] == true {
                            "retired, published"
                        } else {
                            "retired"
                        };
                        println!(
                            "{} {} created {} ({state})",
                            r["kid"].as_str().unwrap_or_default(),
                            r["alg"].as_str().unwrap_or_default(),
                            r["created"]
                        );
                    }
                }
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Runtime
        }
    }
}
