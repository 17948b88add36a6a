//! `mcp-guard config check`: validate everything a start would.

use super::{ConfigCheckArgs, Exit};
use crate::config;

pub(super) fn run(args: &ConfigCheckArgs) -> Exit {
    match config::load(args.config.as_deref()) {
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: ok (mode {}, {} roles, {} grant patterns, {} policies)",
                c.source,
                c.authorizer.mode().as_str(),
                c.authorizer.role_names().len(),
                c.authorizer.grant_count(),
                c.authorizer.policy_count(),
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Usage
        }
    }
}
