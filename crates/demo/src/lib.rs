//! A small MCP server to put behind mcp-guard in tests, demos and the quickstart; the `mcp-guard`
//! binary runs it as `mcp-guard demo stdio` (MCP on stdin/stdout) or `mcp-guard demo http`
//! (streamable HTTP at `/mcp`, with sessions).
//!
//! Besides its own tools (`echo`, `add`, `delete_file`, `deploy`), resources and prompt, it serves
//! every fixture the MCP conformance suite's server scenarios call; see `fixtures.rs`.

mod fixtures;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use rmcp::ServiceExt as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

pub use crate::server::DemoServer;

/// Why the demo server stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The stdio session could not start or failed.
    #[error("the MCP session on stdio failed: {0}")]
    Stdio(String),
    /// The HTTP listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("the HTTP server failed: {0}")]
    Http(#[from] std::io::Error),
}

/// Serves one session on stdin/stdout until the client closes stdin.
pub async fn serve_stdio() -> Result<(), DemoError> {
    let session = DemoServer::new()
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| DemoError::Stdio(e.to_string()))?;
    session
        .waiting()
        .await
        .map_err(|e| DemoError::Stdio(e.to_string()))?;
    Ok(())
}

/// Serves streamable HTTP at `/mcp` on `bind` until the process is stopped; `listening` is told
/// the address in use (useful with port 0). `allow_hosts` adds `Host` names to rmcp's loopback
/// allow-list.
pub async fn serve_http(
    bind: SocketAddr,
    allow_hosts: Vec<String>,
    listening: impl FnOnce(SocketAddr),
) -> Result<(), DemoError> {
    let config = StreamableHttpServerConfig::default();
    let allowed_hosts: Vec<String> = (config.allowed_hosts.iter().cloned())
        .chain(allow_hosts)
        .collect();
    let config = config.with_allowed_hosts(allowed_hosts);
    // rmcp's defaults otherwise: stateful sessions (`Mcp-Session-Id`), SSE responses with a
    // priming event, keep-alive pings every 15 s, sessions dropped after 5 idle minutes.
    let service = StreamableHttpService::new(
        || Ok(DemoServer::new()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new().route_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| DemoError::Listen { addr: bind, source })?;
    listening(listener.local_addr()?);
    // An SSE answer goes out in two writes; without TCP_NODELAY the second waits for the
    // client's delayed ACK (tens of milliseconds on a keep-alive connection).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, app).await?;
    Ok(())
}
