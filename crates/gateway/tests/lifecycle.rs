//! Sessions, upstream processes and streams over time (DESIGN.md section 9), in process: the real
//! router and session table, and real upstream children (`mcp-guard demo stdio` behind `tee`, so
//! a test reads exactly what reached the upstream, and finds the child by its command line).
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use mcp_guard::config;
use mcp_guard::serve::Gateway;
use mcp_guard_auth::audit::MemorySink;
use mcp_guard_auth::endpoints::ClientAddr;
use mcp_guard_auth::token::AccessClaims;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const PUBLIC: &str = "http://127.0.0.1:8080/mcp";
const JSON_ONLY: &str = "application/json";
const JSON_OR_SSE: &str = "application/json, text/event-stream";

struct Harness {
    gw: Arc<Gateway>,
    upstream_log: PathBuf,
    dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A gateway in front of the demo server; `alice` is an `admin` (she may call the conformance
/// fixtures), `bob` a `user`. `sections` is appended (e.g. a `[session]` table).
fn harness(sections: &str) -> Harness {
    harness_upstream(sections, "")
}

/// Like [`harness`], with at most `n` upstream children.
fn harness_with_children(n: usize) -> Harness {
    harness_upstream("", &format!("max_children = {n}"))
}

fn harness_upstream(sections: &str, upstream: &str) -> Harness {
    harness_behind(sections, upstream, None)
}

/// Like [`harness`], in front of `script` (POSIX shell, one MCP message per line on stdin and
/// stdout) instead of the demo server.
fn harness_script(script: &str) -> Harness {
    harness_behind("", "", Some(script))
}

fn harness_behind(sections: &str, upstream: &str, script: Option<&str>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("upstream.log");
    let exe = env!("CARGO_BIN_EXE_mcp-guard");
    let server = match script {
        None => format!("'{exe}' demo stdio"),
        Some(text) => {
            let path = dir.path().join("upstream.sh");
            std::fs::write(&path, text).unwrap();
            format!("sh '{}'", path.display())
        }
    };
    let text = format!(
        r#"
[authorization]
default_role = "readonly"

[[users]]
subject = "alice"
roles = ["admin"]

[[users]]
subject = "bob"
roles = ["user"]

[server]
public_url = "{PUBLIC}"
request_timeout = "20s"

[store]
path = ":memory:"

[upstream]
command = "sh"
args = ["-c", "tee -a '{log}' | {server}"]
{upstream}

{sections}
"#,
        log = log.display()
    );
    let config = config::load_str("test.toml", &text, Some(dir.path())).unwrap();
    let gw = Gateway::with_audit(config, Arc::new(MemorySink::new())).unwrap();
    Harness {
        gw,
        upstream_log: log,
        dir,
    }
}

fn token_for(gw: &Gateway, subject: &str, ttl: Option<Duration>) -> String {
    let claims = AccessClaims {
        subject: subject.into(),
        ttl,
        ..AccessClaims::default()
    };
    gw.auth
        .issuer
        .access(&claims, mcp_guard::tokens::now_unix())
        .unwrap()
        .token
        .expose()
        .to_owned()
}

/// A POST to the MCP endpoint.
fn post_request(token: &str, session: Option<&str>, accept: &str, body: &str) -> Request<Body> {
    let mut b = Request::post("/mcp")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, accept)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(s) = session {
        b = b.header("mcp-session-id", s);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

/// A GET of the MCP endpoint: `session`'s standalone stream.
fn get_request(token: &str, session: &str) -> Request<Body> {
    Request::get("/mcp")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ACCEPT, "text/event-stream")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("mcp-session-id", session)
        .body(Body::empty())
        .unwrap()
}

/// The response, its body not yet read.
async fn respond(router: Router, request: Request<Body>) -> axum::response::Response {
    let mut request = request;
    request
        .extensions_mut()
        .insert(ClientAddr("127.0.0.1".parse().unwrap()));
    router.oneshot(request).await.unwrap()
}

/// The whole response.
async fn exchange(router: Router, request: Request<Body>) -> Reply {
    let response = respond(router, request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The next chunk of a streamed body: `Some(text)`, `None` at its end; panics after `wait`.
async fn next_chunk(body: &mut Body, wait: Duration) -> Option<String> {
    loop {
        let frame = tokio::time::timeout(wait, body.frame())
            .await
            .expect("the stream stalled")?
            .unwrap();
        if let Ok(data) = frame.into_data() {
            return Some(String::from_utf8_lossy(&data).into_owned());
        }
    }
}

/// The JSON messages of SSE text (`data:` lines).
fn sse_messages(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn call(id: u32, tool: &str, arguments: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}})
    .to_string()
}

fn echo(id: u32) -> String {
    call(id, "echo", &json!({"message": "hi"}))
}

/// `test_elicitation` asks the client a question and waits for the answer: a request that stays
/// in flight as long as the test wants.
fn waits_for_the_client(id: u32) -> String {
    call(id, "test_elicitation", &json!({"message": "who are you?"}))
}

impl Harness {
    fn token(&self, subject: &str) -> String {
        token_for(&self.gw, subject, None)
    }

    async fn post(&self, token: &str, session: Option<&str>, body: &str) -> Reply {
        exchange(
            self.gw.router(),
            post_request(token, session, JSON_OR_SSE, body),
        )
        .await
    }

    /// initialize (declaring elicitation) + notifications/initialized; returns the session id.
    async fn open(&self, token: &str) -> String {
        let r = self
            .post(
                token,
                None,
                r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"t","version":"1"}}}"#,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let id = r
            .headers
            .get("mcp-session-id")
            .expect("a session id")
            .to_str()
            .unwrap()
            .to_owned();
        let n = self
            .post(
                token,
                Some(&id),
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            )
            .await;
        assert_eq!(n.status, StatusCode::ACCEPTED, "{}", n.body);
        id
    }

    /// `echo` in `session` succeeds.
    async fn echo_works(&self, token: &str, session: &str, id: u32) {
        let r = self.post(token, Some(session), &echo(id)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["id"], id);
        assert!(r.json()["result"].is_object(), "{}", r.body);
        assert!(r.body.contains("hi"), "{}", r.body);
    }

    /// `session` is gone: 404, and the call (its id unique in the test) reached no upstream.
    async fn gone(&self, token: &str, session: &str, id: u32) {
        let r = self.post(token, Some(session), &echo(id)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        // `tee` writes the log behind the upstream's back: give a stray line time to land.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !self
                .upstream_lines("tools/call")
                .iter()
                .any(|v| v["id"] == id),
            "nothing reached an upstream: {}",
            self.upstream_saw()
        );
    }

    fn upstream_saw(&self) -> String {
        std::fs::read_to_string(&self.upstream_log).unwrap_or_default()
    }

    /// Lines of the upstream log that are the message `method`.
    fn upstream_lines(&self, method: &str) -> Vec<Value> {
        self.upstream_saw()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["method"] == method)
            .collect()
    }

    /// Waits until the upstream log holds a message with `method` and `id`.
    async fn wait_upstream_saw(&self, method: &str, id: u32) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.upstream_lines(method).iter().any(|v| v["id"] == id) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{method} #{id} never reached the upstream: {}",
            self.upstream_saw()
        );
    }

    /// Waits until the upstream log holds `n` messages with `method` (`tee` writes it a little
    /// after the upstream reads them); returns them.
    async fn wait_lines(&self, method: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self.upstream_lines(method);
            if found.len() >= n || Instant::now() > deadline {
                assert_eq!(found.len(), n, "{method}: {}", self.upstream_saw());
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `gw.children()` is `n`.
    async fn wait_children(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.gw.children() != n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(self.gw.children(), n, "live upstream children");
    }

    /// The process groups of this harness's upstream children: each child (`sh -c "tee ... |
    /// mcp-guard demo stdio"`) leads its own group, and its command line names this test's folder.
    fn upstream_groups(&self) -> BTreeSet<i32> {
        let needle = self.dir.path().to_str().unwrap();
        let mut groups = BTreeSet::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            if !String::from_utf8_lossy(&cmdline).contains(needle) {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid pgrp ...`
            let pgrp = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(2))
                .and_then(|g| g.parse::<i32>().ok());
            if pgrp == Some(pid) {
                groups.insert(pid);
            }
        }
        groups
    }

    /// Kills this harness's only upstream child with its whole process group, as a crash would.
    fn kill_the_upstream(&self) -> i32 {
        let groups = self.upstream_groups();
        assert_eq!(groups.len(), 1, "one upstream child: {groups:?}");
        let group = *groups.first().unwrap();
        assert_ne!(
            nix::unistd::Pid::from_raw(group),
            nix::unistd::getpgrp(),
            "never the test's own group"
        );
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        group
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_child_is_replaced_and_the_session_goes_on() {
    let h = harness("");
    let alice = h.token("alice");
    let sid = h.open(&alice).await;
    h.echo_works(&alice, &sid, 2).await;
    h.wait_children(1).await;

    let old = h.kill_the_upstream();
    h.wait_children(0).await;

    // Same session, new child: the gateway replays initialize (and initialized) to it first.
    h.echo_works(&alice, &sid, 3).await;
    assert_eq!(h.gw.children(), 1);
    let now = h.upstream_groups();
    assert_eq!(now.len(), 1);
    assert!(!now.contains(&old), "a new process: {now:?} after {old}");
    let inits = h.wait_lines("initialize", 2).await;
    assert_eq!(inits[0], inits[1], "the client's own initialize, replayed");
    h.wait_lines("notifications/initialized", 2).await;
    h.wait_upstream_saw("tools/call", 3).await;
    let saw = h.upstream_saw();
    let replay = saw.rfind("\"method\":\"initialize\"").unwrap();
    let echo3 = saw.find("\"id\":3").unwrap();
    assert!(replay < echo3, "initialize came before the call: {saw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_the_child_dies_gets_31502() {
    let h = harness("");
    let alice = h.token("alice");
    let sid = h.open(&alice).await;

    // A JSON answer: the request fails with 502 before any stream started.
    let pending = tokio::spawn(exchange(
        h.gw.router(),
        post_request(&alice, Some(&sid), JSON_ONLY, &waits_for_the_client(7)),
    ));
    h.wait_upstream_saw("tools/call", 7).await;
    h.kill_the_upstream();
    let r = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("the request ends when its child dies")
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert_eq!(r.json()["id"], 7);
    assert_eq!(r.json()["error"]["code"], -31502, "{}", r.body);
    h.wait_children(0).await;

    // An SSE answer already under way (the server's question came first): the error comes in
    // the stream. This call also starts a replacement child.
    let response = respond(
        h.gw.router(),
        post_request(&alice, Some(&sid), JSON_OR_SSE, &waits_for_the_client(8)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();
    let first = next_chunk(&mut body, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        sse_messages(&first)[0]["method"],
        "elicitation/create",
        "{first}"
    );
    h.kill_the_upstream();
    let mut rest = String::new();
    while let Some(chunk) = next_chunk(&mut body, Duration::from_secs(5)).await {
        rest.push_str(&chunk);
    }
    let last = sse_messages(&rest);
    assert_eq!(last.len(), 1, "{rest}");
    assert_eq!(last[0]["id"], 8);
    assert_eq!(last[0]["error"]["code"], -31502, "{rest}");
    h.wait_children(0).await;

    // The session itself survives both deaths.
    h.echo_works(&alice, &sid, 9).await;
}

/// An upstream that answers each `tools/call` and writes a log message right after the answer,
/// as an HTTP upstream's standalone stream can deliver one just after the answer stream.
const LOGS_AFTER_ANSWERING: &str = r#"
while IFS= read -r line; do
  id=$(printf '%s\n' "$line" | sed -n -e 's/^.*"id":\("[^"]*"\).*$/\1/p' -e t -e 's/^.*"id":\([0-9][0-9]*\).*$/\1/p')
  case "$line" in
    *'"method":"initialize"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{},"logging":{}},"serverInfo":{"name":"late","version":"1"}}}\n' "$id" ;;
    *'"method":"tools/list"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}}\n' "$id" ;;
    *'"method":"tools/call"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"done"}]}}\n{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"after %s"}}\n' "$id" "$id" ;;
  esac
done
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_written_right_after_an_answer_still_reaches_the_client() {
    let h = harness_script(LOGS_AFTER_ANSWERING);
    let alice = h.token("alice");
    let sid = h.open(&alice).await;
    let ids: Vec<u32> = (10..40).collect();
    let mut seen: Vec<String> = Vec::new();
    for &id in &ids {
        let r = h
            .post(&alice, Some(&sid), &call(id, "echo", &json!({})))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        // JSON when the answer came alone; SSE, the message before the answer, when the message
        // was routed to the call.
        let messages = if r.body.starts_with('{') {
            vec![r.json()]
        } else {
            sse_messages(&r.body)
        };
        let answer = messages.last().unwrap();
        assert_eq!(answer["id"], id, "{}", r.body);
        assert_eq!(answer["result"]["content"][0]["text"], "done", "{}", r.body);
        for m in &messages[..messages.len() - 1] {
            seen.push(m["params"]["data"].as_str().unwrap().to_owned());
        }
    }
    // The others wait for the standalone stream, which carries them first once opened.
    let get = get_request(&alice, &sid);
    let response = respond(h.gw.router(), get).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut streamed = String::new();
    while seen.len() < ids.len() {
        let chunk = next_chunk(&mut body, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("the stream ended; seen so far: {seen:?}"));
        streamed.push_str(&chunk);
        // Whole events only: a chunk may end inside one.
        while let Some(end) = streamed.find("\n\n") {
            let event: String = streamed.drain(..end + 2).collect();
            for m in sse_messages(&event) {
                seen.push(m["params"]["data"].as_str().unwrap().to_owned());
            }
        }
    }
    seen.sort();
    let mut wanted: Vec<String> = ids.iter().map(|id| format!("after {id}")).collect();
    wanted.sort();
    assert_eq!(seen, wanted, "each message exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_get_stream_ends_when_its_token_expires() {
    let h = harness("");
    // The verifier's leeway still accepts it after `exp`; the stream must not outlive it.
    let short = token_for(&h.gw, "alice", Some(Duration::from_secs(2)));
    let sid = h.open(&short).await;
    let get = get_request(&short, &sid);
    let started = Instant::now();
    let response = respond(h.gw.router(), get).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();
    let mut seen = String::new();
    while let Some(chunk) = next_chunk(&mut body, Duration::from_secs(6)).await {
        seen.push_str(&chunk);
    }
    let lasted = started.elapsed();
    assert!(
        lasted >= Duration::from_secs(1),
        "not before the token expired: {lasted:?}"
    );
    assert!(
        lasted <= Duration::from_secs(4),
        "soon after it expired: {lasted:?}"
    );
    assert!(
        sse_messages(&seen).is_empty(),
        "only keep-alives were sent: {seen}"
    );

    // Only the stream ended: the session is alice's, and a fresh token of hers still uses it.
    let alice = h.token("alice");
    h.echo_works(&alice, &sid, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_cancels_its_upstream_request() {
    let h = harness("");
    let alice = h.token("alice");
    let sid = h.open(&alice).await;
    let gone = tokio::time::timeout(
        Duration::from_millis(300),
        exchange(
            h.gw.router(),
            post_request(&alice, Some(&sid), JSON_ONLY, &waits_for_the_client(9)),
        ),
    )
    .await;
    assert!(gone.is_err(), "the call was still waiting when dropped");
    h.wait_upstream_saw("tools/call", 9).await;

    let dropped = Instant::now();
    let cancelled = h.wait_lines("notifications/cancelled", 1).await;
    assert!(
        dropped.elapsed() < Duration::from_secs(1),
        "at once: {:?}",
        dropped.elapsed()
    );
    assert_eq!(cancelled[0]["params"]["requestId"], 9);

    // The session is fine, and the id can be used again.
    h.echo_works(&alice, &sid, 9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_drops_an_sse_response_cancels_its_upstream_request() {
    let h = harness("");
    let alice = h.token("alice");
    let sid = h.open(&alice).await;
    let response = respond(
        h.gw.router(),
        post_request(&alice, Some(&sid), JSON_OR_SSE, &waits_for_the_client(10)),
    )
    .await;
    let mut body = response.into_body();
    let first = next_chunk(&mut body, Duration::from_secs(5)).await.unwrap();
    assert_eq!(sse_messages(&first)[0]["method"], "elicitation/create");
    drop(body);

    let dropped = Instant::now();
    let cancelled = h.wait_lines("notifications/cancelled", 1).await;
    assert!(
        dropped.elapsed() < Duration::from_secs(1),
        "at once: {:?}",
        dropped.elapsed()
    );
    assert_eq!(cancelled[0]["params"]["requestId"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_expires_and_its_child_is_reaped() {
    let h = harness("[session]\ntimeout = \"1s\"\ncleanup_interval = \"1h\"");
    let alice = h.token("alice");
    let sid = h.open(&alice).await;
    h.wait_children(1).await;

    // The timeout slides: used every 0.5 s, the session outlives 1 s.
    for id in 2..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        h.echo_works(&alice, &sid, id).await;
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(h.gw.children(), 1, "no sweep ran: the child still lives");
    h.gone(&alice, &sid, 5).await;
    h.wait_children(0).await;
    assert!(h.upstream_groups().is_empty(), "the processes are gone too");
    // And it stays gone.
    h.gone(&alice, &sid, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_session_still_ends_at_its_absolute_lifetime() {
    let h = harness("[session]\ntimeout = \"1h\"\nmax_lifetime = \"2s\"");
    let alice = h.token("alice");
    let sid = h.open(&alice).await;
    let opened = Instant::now();
    let mut id = 2;
    while opened.elapsed() < Duration::from_millis(1500) {
        h.echo_works(&alice, &sid, id).await;
        id += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(2300).saturating_sub(opened.elapsed())).await;
    h.gone(&alice, &sid, 100).await;
    h.wait_children(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_principal_cap_evicts_that_principals_least_recently_active_session() {
    let h = harness("[session]\nmax_per_principal = 2");
    let alice = h.token("alice");
    let bob = h.token("bob");
    let b1 = h.open(&bob).await;
    let a1 = h.open(&alice).await;
    let a2 = h.open(&alice).await;
    // a1 is used after a2 was opened: a2 is now alice's least recently active.
    h.echo_works(&alice, &a1, 2).await;
    h.wait_children(3).await;

    let a3 = h.open(&alice).await;
    h.gone(&alice, &a2, 3).await;
    h.echo_works(&alice, &a1, 4).await;
    h.echo_works(&alice, &a3, 5).await;
    h.echo_works(&bob, &b1, 6).await;
    h.wait_children(3).await;
    assert_eq!(h.upstream_groups().len(), 3);

    // The cap is alice's alone: bob opens a second session without losing his first.
    let b2 = h.open(&bob).await;
    h.echo_works(&bob, &b1, 7).await;
    h.echo_works(&bob, &b2, 8).await;
    h.echo_works(&alice, &a1, 9).await;
    h.echo_works(&alice, &a3, 10).await;
    h.wait_children(4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_child_cap_ends_only_the_least_recently_active_session() {
    let h = harness_with_children(2);
    let alice = h.token("alice");
    let bob = h.token("bob");
    let a1 = h.open(&alice).await;
    let b1 = h.open(&bob).await;
    h.wait_children(2).await;

    // A third child needs room: only the least recently active session (a1) makes it.
    let b2 = h.open(&bob).await;
    h.gone(&alice, &a1, 2).await;
    h.echo_works(&bob, &b1, 3).await;
    h.echo_works(&bob, &b2, 4).await;
    h.wait_children(2).await;
}
