//! End to end: an rmcp `StreamableHttpService` behind `AuthLayer` on a real socket, driven by the
//! official TypeScript MCP SDK client (`interop/sdk-client.mjs`).
//!
//! Needs `node` and `interop/node_modules` (`npm ci` in interop/). Without them it fails, unless
//! `MCP_GUARD_SKIP_INTEROP=1` says to skip on purpose.

#![expect(clippy::unwrap_used, reason = "test code")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use mcp_guard_auth::audit::MemorySink;
use mcp_guard_auth::layer::AuthLayer;
use mcp_guard_auth::token::{Algorithm, IssuerPolicy, SigningKey, Verifier, VerifyKey};
use mcp_guard_core::{AuthorizerBuilder, Pattern};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tower_layer::Layer as _;

const ISSUER: &str = "https://idp.example";
const SECRET: &[u8] = b"an HS256 secret of at least 32 bytes, for tests";

/// The example's own server (`examples/whoami.rs`), so this test runs what the example shows.
#[path = "../examples/whoami.rs"]
#[expect(
    dead_code,
    reason = "the example's `main` and the constants only it reads are not used here"
)]
mod example;
use example::Whoami;

fn interop_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop");
    if dir.join("node_modules/@modelcontextprotocol/sdk").is_dir() {
        return Some(dir);
    }
    if std::env::var_os("MCP_GUARD_SKIP_INTEROP").is_some() {
        return None;
    }
    panic!(
        "interop/node_modules is missing: run `npm ci` in interop/ (or set MCP_GUARD_SKIP_INTEROP=1)"
    );
}

/// Serves the layered rmcp server on 127.0.0.1:0; returns its URL.
async fn serve(audit: Arc<MemorySink>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let resource = format!("{base}/mcp");
    let key = VerifyKey::hmac(None, Algorithm::HS256, SECRET).unwrap();
    let verifier = Verifier::new(vec![IssuerPolicy::external(ISSUER, &resource, key)]);
    let grants = vec![Pattern::parse("tools:execute:whoami").unwrap()];
    let authorizer = AuthorizerBuilder::new()
        .role("reader", grants)
        .scope("mcp:admin", vec![Pattern::parse("tools:*:*").unwrap()])
        .build()
        .unwrap();
    let layer = AuthLayer::builder()
        .authenticator(verifier)
        .authorizer(authorizer)
        .resource_metadata(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .audit(audit)
        .build()
        .unwrap();
    let mcp = StreamableHttpService::new(
        || Ok(Whoami),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().route_service("/mcp", layer.layer(mcp));
    tokio::spawn(async move { axum::serve(listener, app).await });
    resource
}

fn token(sub: &str, roles: &[&str], aud: &str) -> String {
    let key = SigningKey::hs256("unused", SECRET).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    mcp_guard_auth::danger::sign_with(
        &key,
        &json!({"alg": "HS256", "typ": "at+jwt"}),
        &json!({"iss": ISSUER, "sub": sub, "aud": aud, "exp": now + 300, "roles": roles}),
    )
    .unwrap()
}

async fn sdk_client(js: &Path, url: &str, token: &str, allowed: &str, forbidden: &str) -> Value {
    let mut c = Command::new("node");
    c.arg("sdk-client.mjs")
        .arg(url)
        .current_dir(js)
        .env("MCP_TOKEN", token)
        .env("ALLOWED_TOOL", allowed)
        .env("ALLOWED_ARGS", r#"{"text":"hi"}"#)
        .env("FORBIDDEN_TOOL", forbidden);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert!(
        o.status.success(),
        "sdk client failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_client_against_an_rmcp_server_behind_the_layer() {
    let Some(js) = interop_dir() else { return };
    let audit = Arc::new(MemorySink::new());
    let url = serve(audit.clone()).await;

    let alice = token("alice", &["reader"], &url);
    let r = sdk_client(&js, &url, &alice, "whoami", "deploy").await;
    assert_eq!(r["no_token"]["connected"], false, "{r}");
    assert_eq!(r["no_token"]["code"], 401, "{r}");
    assert_eq!(r["session"], true, "{r}");
    assert_eq!(r["tools"], json!(["whoami"]), "tools filtered by role: {r}");
    assert_eq!(r["allowed"]["isError"], false, "{r}");
    assert_eq!(
        r["allowed"]["text"], "alice",
        "the handler read the principal: {r}"
    );
    assert_eq!(r["forbidden"]["refused"], true, "{r}");
    assert_eq!(r["forbidden"]["code"], 403, "{r}");
    let message = r["forbidden"]["message"].as_str().unwrap();
    assert!(message.contains("tools:execute:deploy"), "{message}");
    assert_eq!(r["after_terminate"], 404, "{r}");

    let events = audit.events();
    let denied: Vec<_> = events
        .iter()
        .filter(|e| e.event == "decision" && e.outcome == Some("deny"))
        .collect();
    assert_eq!(denied.len(), 1, "{events:?}");
    assert_eq!(denied[0].subject.as_deref(), Some("alice"));
    assert_eq!(
        denied[0].permission.as_deref(),
        Some("tools:execute:deploy")
    );
    let lists: Vec<_> = events.iter().filter(|e| e.event == "list").collect();
    assert_eq!((lists[0].shown, lists[0].hidden), (Some(1), Some(2)));

    // The admin role (a default role) sees and calls every tool.
    let root = token("root", &["admin"], &url);
    let r = sdk_client(&js, &url, &root, "whoami", "no_such_tool").await;
    assert_eq!(r["tools"], json!(["deploy", "echo", "whoami"]), "{r}");
    assert_eq!(r["allowed"]["text"], "root", "{r}");

    // A token for another resource is refused as invalid, with the challenge.
    let elsewhere = token("alice", &["reader"], "https://other.example/mcp");
    let head = tokio::task::spawn_blocking(move || {
        let o = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-D", "-", "-X", "POST", &url])
            .args(["-H", &format!("Authorization: Bearer {elsewhere}")])
            .args(["-H", "Content-Type: application/json"])
            .args(["-H", "Accept: application/json, text/event-stream"])
            .args(["-d", r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_lowercase()
    })
    .await
    .unwrap();
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(
        head.contains("www-authenticate: bearer error=\"invalid_token\", resource_metadata="),
        "{head}"
    );
}
