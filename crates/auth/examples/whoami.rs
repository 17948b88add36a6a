//! An rmcp server behind [`AuthLayer`]: every request needs a bearer token, every tool call is
//! authorized, `tools/list` shows each caller only its tools, and the `whoami` tool reads the
//! caller's [`Principal`] from the request parts rmcp hands it.
//!
//! Run with
//! `WHOAMI_SECRET=$(openssl rand -hex 32) cargo run -p mcp-guard-auth --example whoami`,
//! then call `http://127.0.0.1:8000/mcp` with an HS256 token signed with that secret, with
//! `iss` `https://idp.example`, `aud` `http://127.0.0.1:8000/mcp` and `roles: ["reader"]` (only
//! `whoami`) or `["admin"]` (every tool).

use std::env;
use std::sync::Arc;

use axum::http::request::Parts;
use mcp_guard_auth::layer::AuthLayer;
use mcp_guard_auth::token::{Algorithm, IssuerPolicy, Verifier, VerifyKey};
use mcp_guard_core::{AuthorizerBuilder, Pattern, Principal};
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use tower_layer::Layer as _;

const ISSUER: &str = "https://idp.example";
const RESOURCE: &str = "http://127.0.0.1:8000/mcp";
const METADATA: &str = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp";

/// The MCP handler of one session; `#[tool_handler]` routes to the tools below. Public so that
/// `tests/layer_rmcp.rs` can serve this very handler.
#[derive(Clone)]
pub struct Whoami;

/// Arguments of `echo` and `deploy`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Text {
    /// Any text.
    text: String,
}

#[tool_router]
impl Whoami {
    /// Returns the subject of the caller's token.
    #[tool]
    async fn whoami(&self, Extension(parts): Extension<Parts>) -> String {
        // The layer put the verified principal into the request's extensions.
        parts
            .extensions
            .get::<Principal>()
            .map_or_else(|| "nobody".to_owned(), |p| p.subject.clone())
    }

    /// Returns its argument.
    #[tool]
    async fn echo(&self, Parameters(Text { text }): Parameters<Text>) -> String {
        text
    }

    /// Pretends to deploy.
    #[tool]
    async fn deploy(&self, Parameters(Text { text }): Parameters<Text>) -> String {
        format!("deployed {text}")
    }
}

#[tool_handler]
impl ServerHandler for Whoami {}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The whole auth setup: tokens from one issuer (a `TokenAuthenticator` would add revocation
    // and a cache), the `reader` role may call `whoami` only, `admin` (a default role) anything.
    let secret = env::var("WHOAMI_SECRET")?;
    let key = VerifyKey::hmac(None, Algorithm::HS256, secret.as_bytes())?;
    let verifier = Verifier::new(vec![IssuerPolicy::external(ISSUER, RESOURCE, key)]);
    let grants = vec![Pattern::parse("tools:execute:whoami")?];
    let authorizer = AuthorizerBuilder::new().role("reader", grants).build()?;
    let layer = AuthLayer::builder()
        .authenticator(verifier)
        .authorizer(authorizer)
        .resource_metadata(METADATA)
        .build()?;

    let mcp = StreamableHttpService::new(
        || Ok(Whoami),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let metadata = serde_json::json!({
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
    });
    let app = axum::Router::new()
        .route_service("/mcp", layer.layer(mcp))
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            axum::routing::get(move || async move { axum::Json(metadata) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
