//! Neither a token nor a tool's argument values reach the logs or the audit trail.
//!
//! This is the only test in its binary, on purpose: it installs the process-wide tracing
//! subscriber. Beside other tests, a thread-local subscriber can miss an event: tracing caches
//! each call site's interest, and a call site that another test's thread registers while the
//! subscriber is being installed keeps the interest computed without it.

#![expect(clippy::unwrap_used, reason = "test code")]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use mcp_guard_auth::audit::MemorySink;
use mcp_guard_auth::layer::AuthLayer;
use mcp_guard_auth::token::{Algorithm, IssuerPolicy, SigningKey, Verifier, VerifyKey};
use mcp_guard_core::{AuthorizerBuilder, Pattern};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use tower_layer::Layer as _;

const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "https://mcp.example/mcp";
const SECRET: &[u8] = b"an HS256 secret of at least 32 bytes, for tests";

/// Collects everything tracing writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn token(sub: &str, roles: &[&str]) -> String {
    let key = SigningKey::hs256("k1", SECRET).unwrap();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    mcp_guard_auth::danger::sign_with(
        &key,
        &json!({"alg": "HS256", "kid": "k1", "typ": "at+jwt"}),
        &json!({"iss": ISSUER, "sub": sub, "aud": AUDIENCE, "exp": exp, "roles": roles}),
    )
    .unwrap()
}

/// Answers each call with `{"ok": true}`, as a server whose tools all work.
async fn answer_ok(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let call: Value = serde_json::from_slice(&body).unwrap();
    let answer = json!({"jsonrpc": "2.0", "id": call["id"], "result": {"ok": true}});
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(answer.to_string()))
        .unwrap())
}

fn call(tool: &str, arguments: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}})
    .to_string()
}

#[tokio::test]
async fn neither_the_token_nor_argument_values_reach_logs_or_audit() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let key = VerifyKey::hmac(Some("k1".into()), Algorithm::HS256, SECRET).unwrap();
    let verifier = Verifier::new(vec![IssuerPolicy::external(ISSUER, AUDIENCE, key)]);
    let authorizer = AuthorizerBuilder::new()
        .role(
            "reader",
            vec![Pattern::parse("tools:execute:echo").unwrap()],
        )
        .build()
        .unwrap();
    let audit = Arc::new(MemorySink::new());
    let layer = AuthLayer::builder()
        .authenticator(verifier)
        .authorizer(authorizer)
        .resource_metadata("https://mcp.example/.well-known/oauth-protected-resource/mcp")
        .audit(audit.clone())
        .build()
        .unwrap();
    let service = layer.layer(tower::service_fn(answer_ok));
    let post = |token: &str, body: String| {
        Request::post("/mcp")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from(body))
            .unwrap()
    };

    let alice = token("alice", &["reader"]);
    let secret_arg = "s3cr3t-argument-value";
    let mut statuses = Vec::new();
    for tool in ["echo", "deploy"] {
        let req = post(&alice, call(tool, json!({"text": secret_arg})));
        statuses.push(service.clone().oneshot(req).await.unwrap().status());
    }
    let mut tampered = alice.clone();
    tampered.push('x');
    let req = post(&tampered, call("echo", json!({})));
    statuses.push(service.clone().oneshot(req).await.unwrap().status());
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::FORBIDDEN,
            StatusCode::UNAUTHORIZED
        ]
    );

    let audit = audit
        .events()
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("Request denied"),
        "the denial is logged: {logs}"
    );
    assert!(
        logs.contains("authentication failed"),
        "the bad token is logged: {logs}"
    );
    assert!(audit.contains("authn_failed"), "{audit}");
    assert!(audit.contains("tools:execute:deploy"), "{audit}");
    let payload = alice.split('.').nth(1).unwrap();
    let signature = alice.rsplit('.').next().unwrap();
    for (what, text) in [("logs", &logs), ("audit", &audit)] {
        assert!(!text.contains(payload), "the token is in the {what}");
        assert!(!text.contains(signature), "the signature is in the {what}");
        assert!(
            !text.contains(secret_arg),
            "an argument value is in the {what}"
        );
    }
}
