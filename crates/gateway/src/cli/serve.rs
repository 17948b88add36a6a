//! `mcp-guard serve`.

use std::io::IsTerminal as _;

use super::{Exit, LogFormat, ServeArgs};
use crate::config;

/// Starts logging, loads the configuration and runs the gateway until a signal stops it.
pub fn run(args: &ServeArgs) -> Exit {
    init_logging(args.log_format);
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

/// Logs on standard error, as text or JSON; `RUST_LOG` chooses what (default `info`).
pub(super) fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A log write that fails (a full disk behind a redirected stderr) is dropped: the
    // subscriber would otherwise report it with `eprintln!`, which panics on the same failure
    // and takes the logging task (and any lock it holds) down with it.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
