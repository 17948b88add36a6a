//! `mcp-guard config check`: validate everything a start would.

use super::{ConfigCheckArgs, Exit};
use crate::config::{self, Config};
use crate::tokens;

pub(super) fn run(args: &ConfigCheckArgs) -> Exit {
    let config = match config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    if let Err(e) = check_keys(&config) {
        eprintln!("error: {}: {e:#}", config.source);
        return Exit::Usage;
    }
    if let Some(tls) = &config.server.tls
        && let Err(e) = crate::serve::tls_acceptor(&tls.cert_file, &tls.key_file)
    {
        eprintln!("error: {}: {e:#}", config.source);
        return Exit::Usage;
    }
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "{}: ok (mode {}, {} roles, {} grant patterns, {} policies)",
        config.source,
        config.authorizer.mode().as_str(),
        config.authorizer.role_names().len(),
        config.authorizer.grant_count(),
        config.authorizer.policy_count(),
    );
    Exit::Ok
}

/// The signing key a start would load: a PEM file must parse, an HS256 secret must be set and
/// long enough. Keys kept in the store are made at first start, so there is nothing to check.
fn check_keys(config: &Config) -> anyhow::Result<()> {
    if config.token.algorithm == "HS256" || config.token.private_key_file.is_some() {
        let store = mcp_guard_auth::store::MemoryStore::new();
        tokens::load_keys(config, &store, false)?;
    }
    Ok(())
}
