//! `mcp-guard demo stdio|http`: the bundled demo MCP server.

use std::io::IsTerminal as _;

use super::{DemoCommand, Exit};

/// Runs the demo server until stdin closes (stdio) or the process is stopped (http).
pub fn run(cmd: DemoCommand) -> Exit {
    if let DemoCommand::Passthrough(args) = &cmd {
        return super::passthrough::run(args);
    }
    // stdout may belong to the MCP stdio transport: logs go to stderr. rmcp logs every message
    // at info, too much for a default.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,mcp_guard_demo=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Runtime;
        }
    };
    let result = runtime.block_on(async {
        match cmd {
            DemoCommand::Stdio => mcp_guard_demo::serve_stdio().await,
            DemoCommand::Http(args) => {
                mcp_guard_demo::serve_http(args.bind, args.allow_hosts, |addr| {
                    // A fixed line, apart from the logs, that tests and scripts wait for.
                    eprintln!("mcp-guard demo: listening on http://{addr}/mcp");
                })
                .await
            }
            DemoCommand::Passthrough(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Runtime
        }
    }
}
