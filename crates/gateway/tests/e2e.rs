//! End to end: the real `mcp-guard serve` process, driven by the official TypeScript MCP SDK
//! client, in front of the bundled demo server and of `@modelcontextprotocol/server-everything`.
//!
//! These tests need `node` and `interop/node_modules` (`.ci/run` installs them with `npm ci`).
//! Without them they fail, unless `MCP_GUARD_SKIP_INTEROP=1` says to skip on purpose.

#![expect(clippy::expect_used, clippy::unwrap_used, reason = "test code")]

#[path = "support/gateway.rs"]
mod gateway;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gateway::{Running, start};
use serde_json::Value;

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

fn sdk_client(
    js: &Path,
    gw: &Running,
    token: &str,
    allowed: (&str, &str),
    forbidden: &str,
) -> Value {
    let o = Command::new("node")
        .arg("sdk-client.mjs")
        .arg(&gw.url)
        .current_dir(js)
        .env("MCP_TOKEN", token)
        .env("ALLOWED_TOOL", allowed.0)
        .env("ALLOWED_ARGS", allowed.1)
        .env("FORBIDDEN_TOOL", forbidden)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "sdk client failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn pids_of_children(gateway: u32) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-P", &gateway.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn typescript_sdk_client_against_the_demo_server() {
    let Some(js) = interop_dir() else { return };
    let exe = env!("CARGO_BIN_EXE_mcp-guard");
    let gw = start(&format!(
        "command = \"{exe}\"\nargs = [\"demo\", \"stdio\"]"
    ));
    let alice = gw.token("alice");
    let r = sdk_client(
        &js,
        &gw,
        &alice,
        ("echo", r#"{"message":"hello"}"#),
        "delete_file",
    );

    assert_eq!(r["no_token"]["connected"], false, "{r}");
    assert_eq!(r["no_token"]["code"], 401, "{r}");
    assert_eq!(r["session"], true);
    let tools: Vec<&str> = r["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"echo") && tools.contains(&"add"),
        "{tools:?}"
    );
    assert!(
        !tools.contains(&"delete_file") && !tools.contains(&"deploy"),
        "{tools:?}"
    );
    assert_eq!(r["allowed"]["isError"], false, "{r}");
    assert!(
        r["allowed"]["text"].as_str().unwrap().contains("hello"),
        "{r}"
    );
    assert_eq!(r["forbidden"]["refused"], true, "{r}");
    assert_eq!(r["forbidden"]["code"], 403, "{r}");
    let message = r["forbidden"]["message"].as_str().unwrap();
    assert!(
        message.contains("-31003") && message.contains("tools:execute:delete_file"),
        "{r}"
    );
    assert_eq!(r["after_terminate"], 404, "{r}");

    let audit = gw.audit();
    let deny = audit
        .iter()
        .find(|e| e["event"] == "decision" && e["outcome"] == "deny")
        .expect("a deny line");
    assert_eq!(deny["target"], "delete_file");
    assert_eq!(deny["subject"], "alice");
    assert!(
        audit
            .iter()
            .any(|e| e["event"] == "list" && e["hidden"].as_u64() >= Some(2))
    );
}

#[test]
fn server_everything_as_a_stdio_child_filtered_by_role() {
    let Some(js) = interop_dir() else { return };
    let server = js.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let gw = start(&format!(
        "command = \"node\"\nargs = [\"{}\", \"stdio\"]",
        server.display()
    ));
    let alice = gw.token("alice");
    let root = gw.token("root");
    let a = sdk_client(
        &js,
        &gw,
        &alice,
        ("echo", r#"{"message":"from alice"}"#),
        "toggle-simulated-logging",
    );
    let r = sdk_client(&js, &gw, &root, ("get-env", "{}"), "no-such-tool-for-root");
    let alice_tools = a["tools"].as_array().unwrap().len();
    let root_tools = r["tools"].as_array().unwrap().len();
    assert!(root_tools >= 13, "admin sees every tool: {r}");
    assert!(
        alice_tools < root_tools,
        "user sees only the safe ones: {a}"
    );
    assert!(
        !a["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "toggle-simulated-logging")
    );
    assert!(
        a["allowed"]["text"]
            .as_str()
            .unwrap()
            .contains("from alice")
    );
    assert_eq!(a["forbidden"]["refused"], true, "{a}");
    let env = r["allowed"]["text"].as_str().unwrap();
    assert!(env.contains("PATH"), "{r}");
    assert!(
        !env.contains("gateway-only-secret") && !env.contains("MCP_GUARD_TEST_SECRET"),
        "the child saw the gateway's environment: {env}"
    );
    assert_eq!(a["after_terminate"], 404);

    // Both sessions were terminated: no upstream process remains.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pids_of_children(gw.child.id()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pids_of_children(gw.child.id()), Vec::<u32>::new());
}

#[test]
fn no_child_outlives_the_gateway() {
    let Some(js) = interop_dir() else { return };
    let server = js.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let mut gw = start(&format!(
        "command = \"node\"\nargs = [\"{}\", \"stdio\"]",
        server.display()
    ));
    let alice = gw.token("alice");
    // Open a session and leave it open.
    let o = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", &gw.url])
        .args(["-H", &format!("Authorization: Bearer {alice}")])
        .args(["-H", "Content-Type: application/json", "-H", "Accept: application/json, text/event-stream"])
        .args(["-d", r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "200");
    let children = pids_of_children(gw.child.id());
    assert_eq!(children.len(), 1, "one child for the session");
    let _ = Command::new("kill").arg(gw.child.id().to_string()).status();
    let status = gw.child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    for pid in children {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "child {pid} outlived the gateway"
        );
    }
    let _ = js;
}

#[test]
fn server_everything_as_an_http_upstream() {
    let Some(js) = interop_dir() else { return };
    let port = gateway::free_port();
    let server = js.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let upstream = Command::new("node")
        .arg(&server)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut upstream = support::ChildGuard::new(upstream);
    let out = upstream.child().stderr.take().unwrap();
    support::Lines::spawn(out, None)
        .find(Duration::from_secs(30), |l| {
            l.contains("listening").then_some(())
        })
        .expect("server-everything says it listens");
    let gw = start(&format!("url = \"http://127.0.0.1:{port}/mcp\""));
    let alice = gw.token("alice");
    let root = gw.token("root");
    let a = sdk_client(
        &js,
        &gw,
        &alice,
        ("echo", r#"{"message":"over http"}"#),
        "toggle-simulated-logging",
    );
    let r = sdk_client(
        &js,
        &gw,
        &root,
        ("get-sum", r#"{"a":20,"b":22}"#),
        "no-such-tool-for-root",
    );
    let alice_tools = a["tools"].as_array().unwrap().len();
    let root_tools = r["tools"].as_array().unwrap().len();
    assert!(root_tools >= 13, "admin sees every tool: {r}");
    assert!(
        alice_tools < root_tools,
        "user sees only the safe ones: {a}"
    );
    assert!(
        a["allowed"]["text"].as_str().unwrap().contains("over http"),
        "{a}"
    );
    assert_eq!(a["forbidden"]["refused"], true, "{a}");
    assert_eq!(a["forbidden"]["code"], 403, "{a}");
    assert!(r["allowed"]["text"].as_str().unwrap().contains("42"), "{r}");
    assert_eq!(r["after_terminate"], 404);
}

/// One POST with curl: (status, Mcp-Session-Id, body). SSE bodies are reduced to the last event.
fn curl_post(
    url: &str,
    token: &str,
    session: Option<&str>,
    body: &str,
) -> (u16, Option<String>, Value) {
    let mut c = Command::new("curl");
    c.args(["-s", "-i", "-X", "POST", url])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json"])
        .args(["-H", "Accept: application/json, text/event-stream"])
        .args(["-d", body]);
    if let Some(s) = session {
        c.args(["-H", &format!("Mcp-Session-Id: {s}")]);
    }
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let session = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("mcp-session-id:")
            .map(|_| l[15..].trim().to_owned())
    });
    let json = rest
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data: ").map(str::to_owned))
        .unwrap_or_else(|| rest.trim().to_owned());
    (
        status,
        session,
        serde_json::from_str(&json).unwrap_or(Value::Null),
    )
}

fn open_session(url: &str, token: &str) -> String {
    let (status, session, _) = curl_post(
        url,
        token,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#,
    );
    assert_eq!(status, 200);
    let session = session.expect("a session id");
    let (status, _, _) = curl_post(
        url,
        token,
        Some(&session),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(status, 202);
    session
}

#[test]
fn tasks_are_bound_to_the_principal_that_created_them() {
    let Some(js) = interop_dir() else { return };
    let port = gateway::free_port();
    let server = js.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let upstream = Command::new("node")
        .arg(&server)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut upstream = support::ChildGuard::new(upstream);
    let out = upstream.child().stderr.take().unwrap();
    support::Lines::spawn(out, None)
        .find(Duration::from_secs(30), |l| {
            l.contains("listening").then_some(())
        })
        .expect("server-everything says it listens");
    // One shared upstream: only the gateway keeps one principal from another's tasks.
    let gw = start(&format!("url = \"http://127.0.0.1:{port}/mcp\""));
    let root = gw.token("root");
    let intruder = gw.token("root2");
    let mine = open_session(&gw.url, &root);
    let (status, _, r) = curl_post(
        &gw.url,
        &root,
        Some(&mine),
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"simulate-research-query","arguments":{"topic":"x"},"task":{"ttl":60000}}}"#,
    );
    assert_eq!(status, 200, "{r}");
    let task = r["result"]["task"]["taskId"]
        .as_str()
        .expect("a task id")
        .to_owned();
    let get = format!(
        r#"{{"jsonrpc":"2.0","id":4,"method":"tasks/get","params":{{"taskId":"{task}"}}}}"#
    );
    let (status, _, r) = curl_post(&gw.url, &root, Some(&mine), &get);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"]["taskId"], task.as_str());

    let theirs = open_session(&gw.url, &intruder);
    let (status, _, r) = curl_post(&gw.url, &intruder, Some(&theirs), &get);
    assert_eq!(status, 403, "{r}");
    assert_eq!(r["error"]["code"], -31003);
    let list = r#"{"jsonrpc":"2.0","id":5,"method":"tasks/list"}"#;
    let (status, _, r) = curl_post(&gw.url, &intruder, Some(&theirs), list);
    assert_eq!(status, 200);
    assert_eq!(
        r["result"]["tasks"],
        serde_json::json!([]),
        "another principal's task is hidden"
    );
    let (_, _, r) = curl_post(&gw.url, &root, Some(&mine), list);
    assert!(
        r["result"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["taskId"] == task.as_str()),
        "{r}"
    );
    let cancel = format!(
        r#"{{"jsonrpc":"2.0","id":6,"method":"tasks/cancel","params":{{"taskId":"{task}"}}}}"#
    );
    let (status, _, _) = curl_post(&gw.url, &intruder, Some(&theirs), &cancel);
    assert_eq!(status, 403);
    let audit = gw.audit();
    assert!(audit.iter().any(|e| e["event"] == "decision"
        && e["outcome"] == "deny"
        && e["method"] == "tasks/cancel"
        && e["reason_kind"] == "task_not_owned"));
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_stops_every_child() {
    let Some(_js) = interop_dir() else { return };
    let exe = env!("CARGO_BIN_EXE_mcp-guard");
    let mut gw = start(&format!(
        "command = \"{exe}\"\nargs = [\"demo\", \"stdio\"]"
    ));
    let root = gw.token("root");
    let session = open_session(&gw.url, &root);
    // `test_reconnection` answers after a pause: SIGTERM arrives while it runs.
    let url = gw.url.clone();
    let call = std::thread::spawn(move || {
        curl_post(
            &url,
            &root,
            Some(&session),
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"test_reconnection","arguments":{}}}"#,
        )
    });
    std::thread::sleep(Duration::from_millis(40));
    let children = pids_of_children(gw.child.id());
    assert_eq!(children.len(), 1);
    let _ = Command::new("kill").arg(gw.child.id().to_string()).status();
    let (status, _, body) = call.join().unwrap();
    assert_eq!(status, 200, "the in-flight call finished: {body}");
    assert!(
        body["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("completed"),
        "{body}"
    );
    let exit = gw.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    for pid in children {
        let alive =
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
        assert!(!alive, "child {pid} outlived the gateway");
    }
}

fn http_get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn metrics_and_health_on_their_own_listener_with_bounded_labels() {
    let Some(_js) = interop_dir() else { return };
    let exe = env!("CARGO_BIN_EXE_mcp-guard");
    let port = gateway::free_port();
    let gw = gateway::start_with(
        &format!("command = \"{exe}\"\nargs = [\"demo\", \"stdio\"]"),
        &format!("[metrics]\nbind = \"127.0.0.1:{port}\""),
    );
    let base = format!("http://127.0.0.1:{port}");
    let alice = gw.token("alice");
    let session = open_session(&gw.url, &alice);
    let allowed = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"metric-secret-arg"}}}"#;
    let denied = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_file","arguments":{"path":"/x"}}}"#;
    assert_eq!(curl_post(&gw.url, &alice, Some(&session), allowed).0, 200);
    assert_eq!(curl_post(&gw.url, &alice, Some(&session), denied).0, 403);
    assert_eq!(
        curl_post(&gw.url, "bad.token.here", Some(&session), allowed).0,
        401
    );

    assert_eq!(http_get(&format!("{base}/healthz")).0, 200);
    let (status, body) = http_get(&format!("{base}/readyz"));
    assert_eq!(status, 200, "{body}");
    let (status, metrics) = http_get(&format!("{base}/metrics"));
    assert_eq!(status, 200);
    for needle in [
        r#"mcp_guard_decisions_total{method="tools/call",result="allow",reason="granted"} 1"#,
        r#"mcp_guard_decisions_total{method="tools/call",result="deny",reason="no_grant"} 1"#,
        r#"mcp_guard_http_requests_total{method="POST",status="403"} 1"#,
        r#"mcp_guard_http_requests_total{method="POST",status="401"} 1"#,
        "mcp_guard_authn_failures_total{kind=",
        "mcp_guard_upstream_duration_seconds_bucket",
        "mcp_guard_auth_duration_seconds_count",
        "mcp_guard_sessions 1",
        "mcp_guard_upstream_processes 1",
        r#"mcp_guard_token_cache_total{result="hit"}"#,
    ] {
        assert!(
            metrics.contains(needle),
            "missing `{needle}` in:\n{metrics}"
        );
    }
    for secret in [
        "alice",
        "127.0.0.1",
        "metric-secret-arg",
        "delete_file",
        &session[..8],
    ] {
        assert!(
            !metrics.contains(secret),
            "`{secret}` leaked into a label:\n{metrics}"
        );
    }
    // The MCP port does not serve them.
    assert_eq!(http_get(&gw.url.replace("/mcp", "/metrics")).0, 404);
}

#[test]
fn readyz_says_when_the_upstream_is_down() {
    let Some(_js) = interop_dir() else { return };
    let port = gateway::free_port();
    let dead = gateway::free_port();
    let gw = gateway::start_with(
        &format!("url = \"http://127.0.0.1:{dead}/mcp\""),
        &format!("[metrics]\nbind = \"127.0.0.1:{port}\""),
    );
    let (status, body) = http_get(&format!("http://127.0.0.1:{port}/readyz"));
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v, serde_json::json!({"store": true, "upstream": false}));
    assert_eq!(http_get(&format!("http://127.0.0.1:{port}/healthz")).0, 200);
    // And a request that needs the upstream gets 502 with -31502.
    let root = gw.token("root");
    let (status, _, body) = curl_post(
        &gw.url,
        &root,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#,
    );
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], -31502);
}

#[test]
fn no_token_secret_or_argument_value_reaches_logs_or_audit() {
    let Some(_js) = interop_dir() else { return };
    let exe = env!("CARGO_BIN_EXE_mcp-guard");
    let secret = mcp_guard_auth::clients::generate_secret().unwrap();
    let secret = secret.expose().to_owned();
    let hash = mcp_guard_auth::clients::hash_secret(&secret).unwrap();
    let gw = gateway::start_with(
        &format!("command = \"{exe}\"\nargs = [\"demo\", \"stdio\"]"),
        &format!("[[clients]]\nid = \"ci-bot\"\nsecret_hash = \"{hash}\"\nroles = [\"user\"]\n"),
    );
    let token_url = gw.url.replace("/mcp", "/oauth/token");
    let grant = |secret: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-u",
                &format!("ci-bot:{secret}"),
                "-d",
                "grant_type=client_credentials",
                &token_url,
            ])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let wrong_secret = "wrong-secret-Zq8vX1";
    assert_eq!(grant(wrong_secret)["error"], "invalid_client");
    let issued = grant(&secret);
    let bot = issued["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let alice = gw.token("alice");

    let echo_value = "argument-value-Kx93jQ";
    let path_value = "argument-path-Wm27pL";
    for token in [&bot, &alice] {
        let session = open_session(&gw.url, token);
        let call = format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"{echo_value}"}}}}}}"#
        );
        let (status, _, body) = curl_post(&gw.url, token, Some(&session), &call);
        assert_eq!(status, 200, "{body}");
        let denied = format!(
            r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"delete_file","arguments":{{"path":"{path_value}"}}}}}}"#
        );
        assert_eq!(curl_post(&gw.url, token, Some(&session), &denied).0, 403);
    }
    // A token with a forged signature: refused, and its parts are not echoed either.
    let mut parts: Vec<&str> = alice.split('.').collect();
    let forged_sig = "AAAAforgedsignatureAAAA";
    parts[2] = forged_sig;
    let forged = parts.join(".");
    assert_eq!(
        curl_post(
            &gw.url,
            &forged,
            None,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#
        )
        .0,
        401
    );

    std::thread::sleep(Duration::from_millis(200));
    let audit = std::fs::read_to_string(gw.config.with_file_name("audit.jsonl")).unwrap();
    let logs = gw.logs.lock().unwrap().clone();
    assert!(audit.contains("\"event\":\"decision\"") && audit.contains("authn_failed"));
    let mut needles: Vec<String> = vec![
        secret.clone(),
        wrong_secret.into(),
        echo_value.into(),
        path_value.into(),
        forged_sig.into(),
    ];
    for t in [&bot, &alice] {
        needles.extend(t.split('.').map(str::to_owned));
    }
    for needle in &needles {
        assert!(
            !audit.contains(needle.as_str()),
            "`{needle}` in the audit log"
        );
        assert!(!logs.contains(needle.as_str()), "`{needle}` in the logs");
    }
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn reloads_swap_the_rules_atomically_and_a_bad_file_keeps_the_old_ones() {
    let Some(_js) = interop_dir() else { return };
    let exe = env!("CARGO_BIN_EXE_mcp-guard");
    let gw = start(&format!(
        "command = \"{exe}\"\nargs = [\"demo\", \"stdio\"]"
    ));
    let alice = gw.token("alice");
    let session = open_session(&gw.url, &alice);
    let delete = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"delete_file","arguments":{"path":"/x"}}}"#;
    assert_eq!(curl_post(&gw.url, &alice, Some(&session), delete).0, 403);

    // SIGHUP after making alice an admin: the same token and session may now delete.
    let original = std::fs::read_to_string(&gw.config).unwrap();
    let promoted = original.replacen(
        "subject = \"alice\"\nroles = [\"user\"]",
        "subject = \"alice\"\nroles = [\"admin\"]",
        1,
    );
    assert_ne!(original, promoted);
    std::fs::write(&gw.config, &promoted).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status();
    wait_for("the reload", || {
        curl_post(&gw.url, &alice, Some(&session), delete).0 == 200
    });

    // A file that fails validation changes nothing and says why.
    std::fs::write(
        &gw.config,
        promoted.replace("roles = [\"admin\"]", "roles = [\"no-such-role\"]"),
    )
    .unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status();
    wait_for("the refused reload in the audit log", || {
        gw.audit()
            .iter()
            .any(|e| e["event"] == "config_reload" && e["outcome"] == "fail")
    });
    assert_eq!(
        curl_post(&gw.url, &alice, Some(&session), delete).0,
        200,
        "the old rules still serve"
    );
    let logs = gw.logs.lock().unwrap().clone();
    assert!(logs.contains("previous one keeps serving"), "{logs}");

    // Without a signal, a change of the file is picked up by the watch.
    std::fs::write(&gw.config, &original).unwrap();
    wait_for("the watched reload", || {
        curl_post(&gw.url, &alice, Some(&session), delete).0 == 403
    });
}

#[test]
fn tokens_verify_in_jose_against_the_live_jwks_endpoint() {
    let Some(js) = interop_dir() else { return };
    let exe = env!("CARGO_BIN_EXE_mcp-guard");
    let gw = start(&format!(
        "command = \"{exe}\"\nargs = [\"demo\", \"stdio\"]"
    ));
    let token = gw.token("alice");
    let base = gw.url.trim_end_matches("/mcp").to_owned();
    let jwks = format!("{base}/oauth/jwks");
    let verify = |token: &str, aud: &str| {
        Command::new("node")
            .args(["verify.mjs", token, &jwks, &base, aud])
            .current_dir(&js)
            .output()
            .unwrap()
    };
    let ok = verify(&token, &gw.url);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let claims: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["_alg"], "EdDSA");
    // Another audience, or a tampered token, fails in jose too.
    assert!(!verify(&token, "https://other.example/mcp").status.success());
    // Change a signature character in the middle (the last one may carry only padding bits).
    let at = token.len() - 20;
    let mut tampered = token.clone();
    let replacement = if &token[at..=at] == "A" { "B" } else { "A" };
    tampered.replace_range(at..=at, replacement);
    assert!(!verify(&tampered, &gw.url).status.success());
}

#[test]
fn two_gateways_on_one_store_let_one_concurrent_refresh_win() {
    let Some(_js) = interop_dir() else { return };
    let exe = env!("CARGO_BIN_EXE_mcp-guard");
    let shared = tempfile::tempdir().unwrap();
    let store = shared.path().join("shared.db");
    let secret = mcp_guard_auth::clients::generate_secret().unwrap();
    let secret = secret.expose().to_owned();
    let hash = mcp_guard_auth::clients::hash_secret(&secret).unwrap();
    // Both gateways name themselves alike, so each accepts the other's tokens.
    let extra = format!(
        "[token]\nissuer = \"https://gw.example\"\naudience = \"https://gw.example/mcp\"\n\
         [[clients]]\nid = \"ci-bot\"\nsecret_hash = \"{hash}\"\nroles = [\"user\"]\n"
    );
    let upstream = format!("command = \"{exe}\"\nargs = [\"demo\", \"stdio\"]");
    let a = gateway::start_full(&upstream, &extra, store.to_str().unwrap());
    let b = gateway::start_full(&upstream, &extra, store.to_str().unwrap());
    fn grant(url: &str, body: &str, secret: &str) -> Value {
        let out = Command::new("curl")
            .args([
                "-s",
                "-u",
                &format!("ci-bot:{secret}"),
                "-d",
                body,
                &url.replace("/mcp", "/oauth/token"),
            ])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    }
    let first = grant(&a.url, "grant_type=client_credentials", &secret);
    assert!(first["access_token"].is_string(), "{first}");
    // A refresh token from the CLI on the same store, bound to the client.
    let o = Command::new(exe)
        .args([
            "token",
            "issue",
            "--sub",
            "alice",
            "--client",
            "ci-bot",
            "--refresh",
            "--config",
        ])
        .arg(&a.config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pair: Value = serde_json::from_slice(&o.stdout).unwrap();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    let body = format!("grant_type=refresh_token&refresh_token={refresh}");
    let (ua, ub) = (a.url.clone(), b.url.clone());
    let (ba, bb) = (body.clone(), body.clone());
    let (sa, sb) = (secret.clone(), secret.clone());
    let ta = std::thread::spawn(move || grant(&ua, &ba, &sa));
    let tb = std::thread::spawn(move || grant(&ub, &bb, &sb));
    let results = [ta.join().unwrap(), tb.join().unwrap()];
    let winners = results
        .iter()
        .filter(|r| r["refresh_token"].is_string())
        .count();
    assert_eq!(winners, 1, "exactly one refresh wins: {results:?}");
    assert!(
        results.iter().any(|r| r["error"] == "invalid_grant"),
        "the other is refused: {results:?}"
    );
    // The winner's new access token works on either gateway.
    let winner = results
        .iter()
        .find(|r| r["access_token"].is_string())
        .unwrap();
    let token = winner["access_token"].as_str().unwrap();
    let (status, _, _) = curl_post(
        &b.url,
        token,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#,
    );
    assert_eq!(status, 200);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.toml");
    std::fs::write(&config, "[store]\npath = \":memory:\"\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .args([
            "serve",
            "--log-format",
            "json",
            "--bind",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut guard = support::ChildGuard::new(child);
    let line = support::Lines::spawn(stderr, None)
        .find(Duration::from_secs(30), |l| {
            l.contains("listening").then(|| l.to_owned())
        })
        .expect("a listening line");
    let v: Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["fields"]["message"], "mcp-guard listening");
    let _ = guard.child().kill();
}
