//! `mcp-guard serve`.

use std::io::IsTerminal as _;

use super::{Exit, ServeArgs};
use crate::config;

/// Starts logging, loads the configuration and runs the gateway until a signal stops it.
pub fn run(args: &ServeArgs) -> Exit {
    init_logging();
    let mut config = match config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Exit::Usage;
        }
    };
    if let Some(bind) = args.bind {
        config.server.bind = bind;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Runtime;
        }
    };
    match runtime.block_on(crate::serve::run(config)) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Runtime
        }
    }
}

/// Human-readable logs on standard error; `RUST_LOG` chooses what (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
