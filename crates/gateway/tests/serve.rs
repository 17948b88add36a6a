//! The gateway's HTTP contract (DESIGN.md section 8), in process: the real router, the real
//! session table and a real upstream child (`mcp-guard demo stdio` behind `tee`, so the test can
//! read exactly what reached the upstream).
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use mcp_guard::config;
use mcp_guard::serve::Gateway;
use mcp_guard_auth::audit::{AuditEvent, MemorySink};
use mcp_guard_auth::endpoints::ClientAddr;
use mcp_guard_auth::token::AccessClaims;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const PUBLIC: &str = "http://127.0.0.1:8080/mcp";

struct Harness {
    gw: Arc<Gateway>,
    audit: Arc<MemorySink>,
    upstream_log: PathBuf,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn harness(extra: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("upstream.log");
    let exe = env!("CARGO_BIN_EXE_mcp-guard");
    let text = format!(
        r#"
[authorization]
default_role = "readonly"
{extra}
[[users]]
subject = "alice"
roles = ["user"]

[scope_map]
"mcp:read" = ["resources:read:*", "prompts:read:*"]
"mcp:tools" = ["tools:execute:@safe"]
"mcp:admin" = ["tools:*:*"]

[server]
public_url = "{PUBLIC}"
max_body_bytes = 4096

[store]
path = ":memory:"

[upstream]
command = "sh"
args = ["-c", "tee -a '{log}' | '{exe}' demo stdio"]
"#,
        log = log.display()
    );
    let config = config::load_str("test.toml", &text, Some(dir.path())).unwrap();
    let audit = Arc::new(MemorySink::new());
    let gw = Gateway::with_audit(config, audit.clone()).unwrap();
    Harness {
        gw,
        audit,
        upstream_log: log,
        _dir: dir,
    }
}

impl Harness {
    fn token(&self, subject: &str) -> String {
        self.token_with(AccessClaims {
            subject: subject.into(),
            ..AccessClaims::default()
        })
    }

    fn token_with(&self, claims: AccessClaims) -> String {
        let now = mcp_guard::tokens::now_unix();
        self.gw
            .auth
            .issuer
            .access(&claims, now)
            .unwrap()
            .token
            .expose()
            .to_owned()
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let mut request = request;
        request
            .extensions_mut()
            .insert(ClientAddr("127.0.0.1".parse().unwrap()));
        let response = self.gw.router().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn post(&self, token: Option<&str>, session: Option<&str>, body: &str) -> Reply {
        let mut b = Request::post("/mcp")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream");
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(s) = session {
            b = b.header("mcp-session-id", s);
        }
        self.send(b.body(Body::from(body.to_owned())).unwrap())
            .await
    }

    /// initialize + notifications/initialized; returns the session id.
    async fn open(&self, token: &str) -> String {
        let r = self
            .post(
                Some(token),
                None,
                r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let id = r.header("mcp-session-id").expect("a session id").to_owned();
        assert!(id.len() >= 22, "at least 128 random bits: {id}");
        let n = self
            .post(
                Some(token),
                Some(&id),
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            )
            .await;
        assert_eq!(n.status, StatusCode::ACCEPTED);
        // The notification is written to the child after the 202; snapshots of what the
        // upstream saw must not race it.
        self.wait_upstream(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        id
    }

    async fn wait_upstream(&self, needle: &str) {
        for _ in 0..200 {
            if self.upstream_saw().contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the upstream never saw {needle}");
    }

    fn upstream_saw(&self) -> String {
        std::fs::read_to_string(&self.upstream_log).unwrap_or_default()
    }

    fn events(&self, name: &str) -> Vec<AuditEvent> {
        self.audit
            .events()
            .into_iter()
            .filter(|e| e.event == name)
            .collect()
    }
}

fn call(id: u32, tool: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": {"message": "hi", "path": "/tmp/x", "a": 1, "b": 2}}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_gets_the_challenge_and_an_invalid_one_says_so() {
    let h = harness("");
    let r = h.post(None, None, &call(1, "echo")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            "Bearer resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:read mcp:tools mcp:admin\""
        )
    );

    let r = h.post(Some("not.a.jwt"), None, &call(1, "echo")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\", resource_metadata="),
        "{challenge}"
    );
    let failures = h.events("authn_failed");
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("bad base64"),
        "{failures:?}"
    );

    // A token in the query string is not a credential.
    let t = h.token("alice");
    let r = h
        .send(
            Request::post(format!("/mcp?access_token={t}"))
                .header(header::HOST, "127.0.0.1:8080")
                .body(Body::from(call(1, "echo")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.header("www-authenticate").unwrap().contains("error="));
    assert_eq!(h.upstream_saw(), "", "nothing reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_filtered_and_forbidden_calls_get_403_naming_the_permission() {
    let h = harness("");
    let alice = h.token("alice");
    let sid = h.open(&alice).await;

    let r = h
        .post(
            Some(&alice),
            Some(&sid),
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let names: Vec<String> = r.json()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"echo".to_owned()), "{names:?}");
    assert!(names.contains(&"add".to_owned()), "{names:?}");
    assert!(!names.contains(&"delete_file".to_owned()), "{names:?}");
    assert!(!names.contains(&"deploy".to_owned()), "{names:?}");
    let list = h.events("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].shown, Some(names.len()));
    assert!(list[0].hidden.unwrap() >= 2);

    let before = h.upstream_saw();
    let r = h
        .post(Some(&alice), Some(&sid), &call(3, "delete_file"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            "Bearer error=\"insufficient_scope\", resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:admin\""
        )
    );
    let body = r.json();
    assert_eq!(body["id"], 3);
    assert_eq!(body["error"]["code"], -31003);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tools:execute:delete_file")
    );
    assert_eq!(
        h.upstream_saw(),
        before,
        "the denied call never reached the upstream"
    );
    let deny = h
        .events("decision")
        .into_iter()
        .find(|e| e.outcome == Some("deny"))
        .expect("a deny audit line");
    assert_eq!(deny.subject.as_deref(), Some("alice"));
    assert_eq!(deny.target.as_deref(), Some("delete_file"));
    assert_eq!(
        deny.permission.as_deref(),
        Some("tools:execute:delete_file")
    );
    assert_eq!(deny.reason_kind, Some("no_grant"));
    assert_eq!(deny.client_ip.as_deref(), Some("127.0.0.1"));

    let r = h.post(Some(&alice), Some(&sid), &call(4, "echo")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["id"], 4);
    assert!(r.body.contains("hi"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_bound_to_its_principal_and_gone_after_delete() {
    let h = harness("");
    let alice = h.token("alice");
    let bob = h.token("bob");
    let sid = h.open(&alice).await;
    let before = h.upstream_saw();

    let r = h.post(Some(&bob), Some(&sid), &call(9, "echo")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        h.upstream_saw(),
        before,
        "nothing from the hijacker reached the upstream"
    );
    let r = h
        .post(Some(&alice), Some("made-up-id"), &call(9, "echo"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h.post(Some(&alice), None, &call(9, "echo")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Bob cannot delete it either.
    let del = |t: &str| {
        Request::delete("/mcp")
            .header(header::HOST, "localhost")
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .header("mcp-session-id", sid.clone())
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(h.send(del(&bob)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.gw.children(), 1);
    assert_eq!(h.send(del(&alice)).await.status, StatusCode::OK);
    let r = h.post(Some(&alice), Some(&sid), &call(10, "echo")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for _ in 0..100 {
        if h.gw.children() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.gw.children(), 0, "the child was reaped on DELETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_origin_size_and_json_are_checked_first() {
    let h = harness("");
    let alice = h.token("alice");
    let req = |host: &str, origin: Option<&str>| {
        let mut b = Request::post("/mcp")
            .header(header::HOST, host)
            .header(header::AUTHORIZATION, format!("Bearer {alice}"));
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        b.body(Body::from(call(1, "echo"))).unwrap()
    };
    assert_eq!(
        h.send(req("evil.example", None)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.send(req("127.0.0.1:8080", Some("http://evil.example")))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // The allowed origin and no origin pass the check (and then need a session).
    assert_eq!(
        h.send(req("127.0.0.1:8080", Some("http://127.0.0.1:8080")))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(5000)
    );
    assert_eq!(
        h.post(Some(&alice), None, &big).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    let sid = h.open(&alice).await;
    let r = h.post(Some(&alice), Some(&sid), "{not json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], -32700);
    let r = h
        .post(
            Some(&alice),
            Some(&sid),
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","name":"delete_file"}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], -32600);
    let r = h
        .post(
            Some(&alice),
            Some(&sid),
            r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":7}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], -32602);
    assert!(!h.upstream_saw().contains("delete_file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_spread_over_lines_reaches_the_upstream_as_one_line() {
    let h = harness("");
    let alice = h.token("alice");
    let sid = h.open(&alice).await;
    let body = "{\"jsonrpc\":\"2.0\",\r\n\"id\":7,\n\"method\":\"tools/call\",\n\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"one\\nline\"}}}";
    let r = h.post(Some(&alice), Some(&sid), body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let saw = h.upstream_saw();
    let line = saw
        .lines()
        .find(|l| l.contains("\"id\":7"))
        .expect("the call reached the upstream");
    assert!(
        line.contains("\"method\":\"tools/call\""),
        "one line holds the whole message: {line}"
    );
    assert!(
        line.contains(r#"one\nline"#),
        "escaped newlines in strings are kept: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hide_mode_answers_as_if_the_tool_did_not_exist() {
    let h = harness("deny_mode = \"hide\"");
    let alice = h.token("alice");
    let sid = h.open(&alice).await;
    let r = h
        .post(Some(&alice), Some(&sid), &call(3, "delete_file"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("www-authenticate").is_none());
    assert_eq!(r.json()["error"]["code"], -32602);
    assert_eq!(r.json()["error"]["message"], "Unknown tool: delete_file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_stop_working_at_once() {
    let h = harness("");
    let now = mcp_guard::tokens::now_unix();
    let issued =
        h.gw.auth
            .issuer
            .access(
                &AccessClaims {
                    subject: "alice".into(),
                    ..AccessClaims::default()
                },
                now,
            )
            .unwrap();
    let token = issued.token.expose().to_owned();
    let sid = h.open(&token).await;
    h.gw.auth.authn.revoke(&issued.jti, issued.exp).unwrap();
    let r = h.post(Some(&token), Some(&sid), &call(2, "echo")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    assert!(
        h.events("authn_failed")
            .iter()
            .any(|e| e.reason.as_deref() == Some("token revoked")),
        "{:?}",
        h.events("authn_failed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_resource_metadata_at_both_paths() {
    let h = harness("");
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let r = h
            .send(
                Request::get(path)
                    .header(header::HOST, "127.0.0.1:8080")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let m = r.json();
        assert_eq!(m["resource"], PUBLIC);
        assert_eq!(m["authorization_servers"], json!(["http://127.0.0.1:8080"]));
        assert_eq!(
            m["scopes_supported"],
            json!(["mcp:read", "mcp:tools", "mcp:admin"])
        );
    }
    // The token endpoints are mounted beside them.
    let r = h
        .send(
            Request::get("/.well-known/oauth-authorization-server")
                .header(header::HOST, "127.0.0.1:8080")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["token_endpoint"],
        "http://127.0.0.1:8080/oauth/token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_only_on_2025_03_26_each_element_decided_alone() {
    let h = harness("");
    let alice = h.token("alice");
    let sid = h.open(&alice).await;
    let batch = format!("[{},{}]", call(20, "echo"), call(21, "delete_file"));
    let r = h.post(Some(&alice), Some(&sid), &batch).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "2025-11-25 has no batches"
    );
    assert_eq!(r.json()["error"]["code"], -32600);

    let r = h
        .post(
            Some(&alice),
            None,
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        )
        .await;
    let old = r.header("mcp-session-id").unwrap().to_owned();
    let r = h.post(Some(&alice), Some(&old), &batch).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let answers = r.json();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 2);
    let by_id = |id: i64| answers.iter().find(|a| a["id"] == id).unwrap();
    assert!(by_id(20)["result"].is_object());
    assert_eq!(by_id(21)["error"]["code"], -31003);
    assert!(!h.upstream_saw().contains("delete_file"));
}

fn modern(id: u32, method: &str, params: Value) -> (String, Vec<(&'static str, String)>) {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let name = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28".to_owned()),
        ("mcp-method", method.to_owned()),
    ];
    if let Some(n) = name {
        headers.push(("mcp-name", n));
    }
    (body, headers)
}

impl Harness {
    async fn post_modern(
        &self,
        token: &str,
        body: &str,
        headers: &[(&'static str, String)],
    ) -> Reply {
        let mut b = Request::post("/mcp")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        for (k, v) in headers {
            b = b.header(*k, v);
        }
        self.send(b.body(Body::from(body.to_owned())).unwrap())
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_2026_07_28_requests_are_checked_filtered_and_marked_private() {
    let h = harness("");
    let alice = h.token("alice");
    let (body, headers) = modern(1, "tools/list", json!({}));
    let r = h.post_modern(&alice, &body, &headers).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.header("mcp-session-id").is_none(),
        "no sessions in 2026-07-28"
    );
    let result = &r.json()["result"];
    assert_eq!(
        result["cacheScope"], "private",
        "filtered per principal: never shared"
    );
    let names: Vec<&str> = result["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"echo") && !names.contains(&"delete_file"),
        "{names:?}"
    );

    let (body, headers) = modern(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "stateless"}}),
    );
    let r = h.post_modern(&alice, &body, &headers).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("stateless"));

    // The body asks for delete_file while the header says echo: refused before any decision.
    let (body, mut headers) = modern(
        3,
        "tools/call",
        json!({"name": "delete_file", "arguments": {}}),
    );
    headers.retain(|(k, _)| *k != "mcp-name");
    headers.push(("mcp-name", "echo".into()));
    let r = h.post_modern(&alice, &body, &headers).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], -32020);
    let (body, headers) = modern(
        4,
        "tools/call",
        json!({"name": "delete_file", "arguments": {}}),
    );
    let r = h.post_modern(&alice, &body, &headers).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"]["code"], -31003);
    assert!(!h.upstream_saw().contains("delete_file"));

    let get = Request::get("/mcp")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::AUTHORIZATION, format!("Bearer {alice}"))
        .header("mcp-protocol-version", "2026-07-28")
        .body(Body::empty())
        .unwrap();
    let r = h.send(get).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("POST"));

    let r = h
        .post_modern(
            &alice,
            &body,
            &[("mcp-protocol-version", "1999-01-01".into())],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], -32022);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_response_nobody_asked_for_never_reaches_the_upstream() {
    let h = harness("");
    let alice = h.token("alice");
    let sid = h.open(&alice).await;
    let before = h.upstream_saw();
    let r = h
        .post(
            Some(&alice),
            Some(&sid),
            r#"{"jsonrpc":"2.0","id":"made-up","result":{"content":[]}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], -31003);
    assert_eq!(h.upstream_saw(), before);
    assert!(
        h.events("decision")
            .iter()
            .any(|e| e.reason_kind == Some("unsolicited_response"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_before_any_list_uses_the_upstreams_own_annotations() {
    let h = harness("");
    let alice = h.token("alice");
    let sid = h.open(&alice).await;
    // The gateway asks the upstream for its tools itself: `add` is read-only there.
    let r = h.post(Some(&alice), Some(&sid), &call(2, "add")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let saw = h.upstream_saw();
    assert!(saw.contains(r#""method":"tools/list""#), "{saw}");
    let granted = h
        .events("decision")
        .into_iter()
        .find(|e| e.target.as_deref() == Some("add"))
        .unwrap();
    assert!(granted.reason.unwrap().contains("@safe"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_methods_need_no_credential_but_are_still_authorized() {
    let h = harness(
        r#"public_methods = ["initialize", "notifications/initialized", "tools/list", "ping"]"#,
    );
    let r = h
        .post(
            None,
            None,
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let sid = r.header("mcp-session-id").unwrap().to_owned();
    let r = h
        .post(
            None,
            Some(&sid),
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.json()["result"]["tools"],
        json!([]),
        "the anonymous caller has only the default role, which grants no tool"
    );
    let list = h.events("list");
    assert_eq!(list[0].auth_method, Some("anonymous"));
    // A method that is not public still needs a credential, and a bad credential is never
    // downgraded to anonymous.
    let r = h.post(None, Some(&sid), &call(3, "echo")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = h
        .post(
            Some("garbage"),
            Some(&sid),
            r#"{"jsonrpc":"2.0","id":4,"method":"ping"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Nor is alice's session reachable anonymously.
    let alice = h.token("alice");
    let hers = h.open(&alice).await;
    let r = h
        .post(
            None,
            Some(&hers),
            r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
