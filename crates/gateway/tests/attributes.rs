//! ABAC with attribute providers through the gateway (DESIGN.md section 6), in process: the real
//! router and session table, the demo server as a stdio child, a static attribute file and a small
//! HTTP attribute service on loopback that the test can stop.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, Uri, header};
use http_body_util::BodyExt as _;
use mcp_guard::config;
use mcp_guard::serve::Gateway;
use mcp_guard_auth::audit::{AuditEvent, MemorySink};
use mcp_guard_auth::endpoints::ClientAddr;
use mcp_guard_auth::token::AccessClaims;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const PUBLIC: &str = "http://127.0.0.1:8080/mcp";

/// Deploys are allowed only to staging and only to members of the deployer team (static file);
/// `add` only to principals the HR service approves (HTTP).
const POLICIES: &str = r#"
[authorization]
mode = "abac"

[attributes.team]
kind = "static"
file = "team.toml"

[attributes.hr]
kind = "http"
url = "{HR_URL}"
timeout = "300ms"
# No cache: every call asks, so a stopped service shows at once.
cache_size = 0

[[policies]]
id = "deploy-staging"
effect = "allow"
resources = ["tools:deploy"]
actions = ["execute"]
conditions = [
  { attribute = "resource.arguments.env", operator = "equals", value = "staging" },
  { attribute = "team.deployer", operator = "equals", value = true },
]

[[policies]]
id = "hr-approved"
effect = "allow"
resources = ["tools:add"]
actions = ["execute"]
conditions = [{ attribute = "hr.approved", operator = "equals", value = true }]
"#;

const TEAM: &str = r#"
[[subjects]]
subject = "alice"
attributes = { deployer = true }

[[subjects]]
subject = "bob"
attributes = { deployer = false }
"#;

struct Harness {
    gw: Arc<Gateway>,
    audit: Arc<MemorySink>,
    dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn harness(hr_url: &str) -> Harness {
    harness_with(
        &POLICIES.replace("{HR_URL}", hr_url),
        &[("team.toml", TEAM.to_owned())],
    )
}

/// A gateway with these policies and providers, and these files beside its configuration.
fn harness_with(policies: &str, files: &[(&str, String)]) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let exe = env!("CARGO_BIN_EXE_mcp-guard");
    let text = format!(
        r#"{policies}
[server]
public_url = "{PUBLIC}"

[store]
path = ":memory:"

[upstream]
command = "{exe}"
args = ["demo", "stdio"]
"#,
    );
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, text).unwrap();
    let config = config::load_file(&path).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let audit = Arc::new(MemorySink::new());
    let gw = Gateway::with_audit(config, audit.clone()).unwrap();
    Harness { gw, audit, dir }
}

impl Harness {
    fn token(&self, subject: &str) -> String {
        let claims = AccessClaims {
            subject: subject.into(),
            ..AccessClaims::default()
        };
        let now = mcp_guard::tokens::now_unix();
        let issued = self.gw.auth.issuer.access(&claims, now).unwrap();
        issued.token.expose().to_owned()
    }

    async fn post(
        &self,
        token: &str,
        session: Option<&str>,
        body: &str,
    ) -> (Reply, Option<String>) {
        let mut b = Request::post("/mcp")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(s) = session {
            b = b.header("mcp-session-id", s);
        }
        let mut request = b.body(Body::from(body.to_owned())).unwrap();
        request
            .extensions_mut()
            .insert(ClientAddr("127.0.0.1".parse().unwrap()));
        let response = self.gw.router().oneshot(request).await.unwrap();
        let status = response.status();
        let sid = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let reply = Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        (reply, sid)
    }

    /// initialize + notifications/initialized; returns the session id.
    async fn open(&self, token: &str) -> String {
        let (r, sid) = self
            .post(
                token,
                None,
                r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let sid = sid.expect("a session id");
        let (n, _) = self
            .post(
                token,
                Some(&sid),
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            )
            .await;
        assert_eq!(n.status, StatusCode::ACCEPTED);
        sid
    }

    async fn call(&self, token: &str, sid: &str, tool: &str, arguments: Value) -> Reply {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}});
        self.post(token, Some(sid), &body.to_string()).await.0
    }

    async fn tool_names(&self, token: &str, sid: &str) -> Vec<String> {
        let (r, _) = self
            .post(
                token,
                Some(sid),
                r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.json()["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The last decision audited for `subject`.
    fn last_decision(&self, subject: &str) -> AuditEvent {
        self.audit
            .events()
            .into_iter()
            .rev()
            .find(|e| e.event == "decision" && e.subject.as_deref() == Some(subject))
            .expect("a decision event")
    }
}

#[track_caller]
fn assert_allowed(r: &Reply) {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = r.json();
    assert!(v.get("error").is_none(), "{v}");
    assert!(v["result"]["content"][0]["text"].is_string(), "{v}");
}

#[track_caller]
fn assert_forbidden(r: &Reply, permission: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["code"], -31003, "{v}");
    assert_eq!(
        v["error"]["message"],
        format!("Forbidden: missing permission {permission}"),
        "{v}"
    );
}

/// A one-route attribute service: `{"approved": true}` for alice, `{"approved": false}` for
/// anyone else. Every answer closes its connection, so stopping the task stops the service.
async fn hr_service() -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route(
        "/attrs",
        axum::routing::get(|uri: Uri| async move {
            let alice = uri.query().unwrap_or("").contains("subject=alice");
            (
                [(header::CONNECTION, "close")],
                axum::Json(json!({"approved": alice})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/attrs", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_attribute_and_a_tool_argument_decide_a_deploy() {
    let (hr, _service) = hr_service().await;
    let h = harness(&hr);
    let alice = h.token("alice");
    let bob = h.token("bob");
    let carol = h.token("carol");
    let a = h.open(&alice).await;
    let b = h.open(&bob).await;
    let c = h.open(&carol).await;

    // Both conditions hold: allowed, and the audit line names the policy.
    let r = h
        .call(
            &alice,
            &a,
            "deploy",
            json!({"service": "api", "env": "staging"}),
        )
        .await;
    assert_allowed(&r);
    let e = h.last_decision("alice");
    assert_eq!(e.outcome, Some("allow"));
    assert_eq!(
        e.reason.as_deref(),
        Some("`tools:execute:deploy` granted by allow policy `deploy-staging`")
    );
    assert!(e.unknown.is_empty(), "{e:?}");

    // The argument fails the condition.
    let r = h
        .call(
            &alice,
            &a,
            "deploy",
            json!({"service": "api", "env": "production"}),
        )
        .await;
    assert_forbidden(&r, "tools:execute:deploy");
    let e = h.last_decision("alice");
    assert_eq!(
        (e.outcome, e.reason_kind),
        (Some("deny"), Some("no_allow_policy"))
    );
    assert!(e.unknown.is_empty(), "nothing was unknown: {e:?}");

    // Bob's static attribute says no.
    let r = h
        .call(
            &bob,
            &b,
            "deploy",
            json!({"service": "api", "env": "staging"}),
        )
        .await;
    assert_forbidden(&r, "tools:execute:deploy");
    let e = h.last_decision("bob");
    assert_eq!(e.reason_kind, Some("no_allow_policy"));
    assert!(e.unknown.is_empty(), "{e:?}");

    // Carol is not in the file: the attribute is missing, so unknown, and the allow does not apply.
    let r = h
        .call(
            &carol,
            &c,
            "deploy",
            json!({"service": "billing-svc-7q", "env": "staging"}),
        )
        .await;
    assert_forbidden(&r, "tools:execute:deploy");
    let e = h.last_decision("carol");
    assert_eq!(e.outcome, Some("deny"));
    assert_eq!(e.unknown.len(), 1, "{e:?}");
    assert_eq!(e.unknown[0].attribute, "team.deployer");
    assert_eq!(e.unknown[0].reason, "missing");
    assert_eq!(e.unknown[0].policy, "deploy-staging");
    // Never an argument value in the audit line.
    let line = serde_json::to_string(&e).unwrap();
    assert!(!line.contains("billing-svc-7q"), "{line}");

    // Lists: a tool stays listed when some call to it could be allowed.
    assert!(
        h.tool_names(&alice, &a)
            .await
            .contains(&"deploy".to_owned())
    );
    assert!(!h.tool_names(&bob, &b).await.contains(&"deploy".to_owned()));

    // The static file is read again at reload: bob joins the deployers.
    std::fs::write(
        h.dir.path().join("team.toml"),
        TEAM.replace("deployer = false", "deployer = true"),
    )
    .unwrap();
    h.gw.reload().unwrap();
    let r = h
        .call(
            &bob,
            &b,
            "deploy",
            json!({"service": "api", "env": "staging"}),
        )
        .await;
    assert_allowed(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_http_provider_takes_access_away_and_the_audit_says_why() {
    let (hr, service) = hr_service().await;
    let h = harness(&hr);
    let alice = h.token("alice");
    let bob = h.token("bob");
    let a = h.open(&alice).await;
    let b = h.open(&bob).await;

    let r = h.call(&alice, &a, "add", json!({"a": 1, "b": 2})).await;
    assert_allowed(&r);
    assert_eq!(h.last_decision("alice").outcome, Some("allow"));
    let r = h.call(&bob, &b, "add", json!({"a": 1, "b": 2})).await;
    assert_forbidden(&r, "tools:execute:add");

    service.abort();
    let _ = service.await;

    let r = h.call(&alice, &a, "add", json!({"a": 1, "b": 2})).await;
    assert_forbidden(&r, "tools:execute:add");
    let e = h.last_decision("alice");
    assert_eq!(e.outcome, Some("deny"));
    assert_eq!(e.reason_kind, Some("no_allow_policy"));
    assert_eq!(e.unknown.len(), 1, "{e:?}");
    assert_eq!(e.unknown[0].attribute, "hr.approved");
    assert_eq!(e.unknown[0].reason, "provider failed: cannot connect");
    assert_eq!(e.unknown[0].policy, "hr-approved");
    let line = serde_json::to_value(&e).unwrap();
    assert_eq!(
        line["unknown"],
        json!([{"attribute": "hr.approved", "reason": "provider failed: cannot connect", "policy": "hr-approved"}])
    );
    assert!(
        !line.to_string().contains(&hr),
        "no provider URL in the audit line"
    );

    // A message that reads no attributes is not held up by the failed provider.
    let (r, _) = h
        .post(
            &alice,
            Some(&a),
            r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The static provider still answers while the HTTP one is down.
    let r = h
        .call(
            &alice,
            &a,
            "deploy",
            json!({"service": "api", "env": "staging"}),
        )
        .await;
    assert_allowed(&r);
}

const IDP: &str = "https://idp.example";

/// `add` only for principals whose identity provider says they are in ops: its userinfo
/// endpoint, asked with the caller's own token of that issuer.
const USERINFO_POLICIES: &str = r#"
[authorization]
mode = "abac"

[[issuers]]
issuer = "https://idp.example"
algorithms = ["EdDSA"]
jwks_file = "idp.json"

[attributes.idp]
kind = "userinfo"
url = "{USERINFO_URL}"
issuer = "https://idp.example"
timeout = "300ms"
# No cache: every call asks, so a stopped endpoint shows at once.
cache_size = 0

[[policies]]
id = "ops-only"
effect = "allow"
resources = ["tools:add"]
actions = ["execute"]
conditions = [{ attribute = "idp.department", operator = "equals", value = "ops" }]
"#;

/// A userinfo endpoint: `{"sub": "alice", "department": "ops"}` for any bearer token, keeping
/// every Authorization header it is sent.
async fn userinfo_service() -> (
    String,
    Arc<std::sync::Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/userinfo",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let s = s.clone();
            async move {
                let auth = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                s.lock().unwrap().push(auth);
                (
                    [(header::CONNECTION, "close")],
                    axum::Json(json!({"sub": "alice", "department": "ops"})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/userinfo", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_of_the_tokens_own_issuer_decides_and_a_stopped_endpoint_takes_access_away() {
    use mcp_guard_auth::token::{Algorithm, SigningKey, keys::jwks};

    let (url, seen, service) = userinfo_service().await;
    let idp = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let h = harness_with(
        &USERINFO_POLICIES.replace("{USERINFO_URL}", &url),
        &[("idp.json", jwks([&idp]).to_string())],
    );
    let exp = mcp_guard::tokens::now_unix() + 300;
    let external = mcp_guard_auth::danger::sign_with(
        &idp,
        &json!({"alg": "EdDSA", "kid": idp.kid(), "typ": "at+jwt"}),
        &json!({"iss": IDP, "sub": "alice", "aud": PUBLIC, "exp": exp}),
    )
    .unwrap();
    let a = h.open(&external).await;

    // The identity provider says ops: allowed, and it was asked with the caller's own token.
    let r = h.call(&external, &a, "add", json!({"a": 1, "b": 2})).await;
    assert_allowed(&r);
    let e = h.last_decision("alice");
    assert_eq!(e.outcome, Some("allow"));
    assert_eq!(e.issuer.as_deref(), Some(IDP));
    assert_eq!(
        *seen.lock().unwrap(),
        [format!("Bearer {external}")],
        "one userinfo request, with the caller's token"
    );

    // The gateway's own token for a subject of the same name is never sent there.
    let own = h.token("alice");
    let o = h.open(&own).await;
    let r = h.call(&own, &o, "add", json!({"a": 1, "b": 2})).await;
    assert_forbidden(&r, "tools:execute:add");
    let e = h.last_decision("alice");
    assert_eq!(e.issuer, None);
    assert_eq!(e.unknown.len(), 1, "{e:?}");
    assert_eq!(e.unknown[0].attribute, "idp.department");
    assert_eq!(
        e.unknown[0].reason,
        "provider failed: not a token of this issuer"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "no request for the own token"
    );

    // The endpoint stops: the allow that needs its attribute no longer applies.
    service.abort();
    let _ = service.await;
    let r = h.call(&external, &a, "add", json!({"a": 1, "b": 2})).await;
    assert_forbidden(&r, "tools:execute:add");
    let e = h.last_decision("alice");
    assert_eq!(e.outcome, Some("deny"));
    assert_eq!(e.issuer.as_deref(), Some(IDP));
    assert_eq!(e.reason_kind, Some("no_allow_policy"));
    assert_eq!(e.unknown.len(), 1, "{e:?}");
    assert_eq!(e.unknown[0].attribute, "idp.department");
    assert_eq!(e.unknown[0].reason, "provider failed: cannot connect");
    assert_eq!(e.unknown[0].policy, "ops-only");
    // Neither the token nor the endpoint in any audit line.
    for event in h.audit.events() {
        let line = serde_json::to_string(&event).unwrap();
        assert!(!line.contains(&external), "{line}");
        assert!(!line.contains(&own), "{line}");
        assert!(!line.contains(&url), "{line}");
    }
}
