//! `mcp-guard stdio`.

use super::{Exit, StdioArgs};
use crate::config;
use crate::stdio_front::{self, StdioError};

/// Starts logging on standard error, loads the configuration and guards the server until the
/// client goes away.
pub(super) fn run(args: &StdioArgs) -> Exit {
    super::serve::init_logging(args.log_format);
    let config = match config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    match stdio_front::run(config, &args.command) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: mcp-guard stdio: {e}");
            exit_of(&e)
        }
    }
}

fn exit_of(e: &StdioError) -> Exit {
    match e {
        StdioError::InvalidToken(_) => Exit::Fail,
        StdioError::NoPrincipal(_) | StdioError::Config(_) => Exit::Usage,
        _ => Exit::Runtime,
    }
}
