//! `mcp-guard stdio`, the real binary: driven by the TypeScript SDK's stdio transport in front of
//! `@modelcontextprotocol/server-everything`, and line by line in front of the demo server behind
//! `tee` (so the test reads exactly what reached the child).
//!
//! The SDK test needs `node` and `interop/node_modules` (`.ci/run` installs them with `npm ci`);
//! without them it fails, unless `MCP_GUARD_SKIP_INTEROP=1` says to skip on purpose.

#![expect(clippy::unwrap_used, reason = "test code")]

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{ChildGuard, Lines};

const EXE: &str = env!("CARGO_BIN_EXE_mcp-guard");

/// A configuration in a temporary folder: `alice` is a `user`, `root` an `admin`; state and
/// audit next to it; `extra` appended.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("guard.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[authorization]
default_role = "readonly"
[[users]]
subject = "alice"
roles = ["user"]
[[users]]
subject = "root"
roles = ["admin"]
[store]
path = "state.db"
[audit]
path = "audit.jsonl"
[token]
leeway = "1s"
{extra}
"#
        ),
    )
    .unwrap();
    Setup { dir, config }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn token(&self, sub: &str, ttl: &str) -> String {
        let o = Command::new(EXE)
            .args(["token", "issue", "--sub", sub, "--ttl", ttl, "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The demo server behind `tee`, which appends every line the child receives to `log`.
    fn teed_demo(&self) -> Vec<String> {
        let log = self.path("upstream.log");
        vec![
            "sh".into(),
            "-c".into(),
            format!("tee -a '{}' | '{EXE}' demo stdio", log.display()),
        ]
    }

    fn upstream_log(&self) -> String {
        std::fs::read_to_string(self.path("upstream.log")).unwrap_or_default()
    }

    fn command(&self, token: Option<&str>, server: &[String]) -> Command {
        let mut c = Command::new(EXE);
        c.args(["stdio", "--config"])
            .arg(&self.config)
            .arg("--")
            .args(server)
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match token {
            Some(t) => c.env("MCP_GUARD_TOKEN", t),
            None => c.env_remove("MCP_GUARD_TOKEN"),
        };
        c
    }
}

struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the guard with `input` on its stdin (then closed) and waits for it to exit.
fn run_lines(s: &Setup, token: Option<&str>, server: &[String], input: &[u8]) -> Finished {
    let mut child = s.command(token, server).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut guard = ChildGuard::new(child);
    // The guard may refuse to start before reading anything: a broken pipe is fine.
    let _ = stdin.write_all(input);
    drop(stdin);
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let code = wait(&mut guard, Duration::from_secs(30));
    Finished {
        code,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

#[track_caller]
fn wait(guard: &mut ChildGuard, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = guard.child().try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "mcp-guard stdio did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every stdout line parsed; fails unless each is one JSON-RPC 2.0 object.
#[track_caller]
fn messages(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l:?}"));
            assert_eq!(v["jsonrpc"], "2.0", "not JSON-RPC: {l}");
            v
        })
        .collect()
}

#[track_caller]
fn reply(messages: &[Value], id: Value) -> &Value {
    messages
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no answer to id {id}: {messages:?}"))
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// The pid the guard logged for its child (`upstream process started pid=N`).
fn child_pid(stderr: &str) -> u32 {
    stderr
        .lines()
        .find(|l| l.contains("upstream process started"))
        .and_then(|l| l.split("pid=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no child pid logged: {stderr}"))
}

#[test]
fn bad_lines_are_refused_and_never_reach_the_child() {
    let s = setup("[stdio]\nidentity = { subject = \"dev\", roles = [\"user\"] }");
    let lines: Vec<&[u8]> = vec![
        INIT.as_bytes(),
        INITIALIZED.as_bytes(),
        b"not json",
        // Two JSON values on one line: one could ride past the check on the other.
        br#"{"jsonrpc":"2.0","id":5,"method":"ping"}{"jsonrpc":"2.0","id":6,"method":"ping"}"#,
        br#"{"jsonrpc":"2.0","id":55,"method":"ping"} {"jsonrpc":"2.0","id":56,"method":"tools/call","params":{"name":"delete_file"}}"#,
        br#"[{"jsonrpc":"2.0","id":10,"method":"ping"}]"#,
        br#"{"jsonrpc":"2.0","id":11,"id":12,"method":"ping"}"#,
        // A raw CR between tokens is whitespace: allowed, and written to the child without it.
        b"{\"jsonrpc\":\"2.0\",\r\"id\":8,\"method\":\"ping\"}",
        // An answer to a request the server never sent.
        br#"{"jsonrpc":"2.0","id":"srv-1","result":{}}"#,
        br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#,
        br#"{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"delete_file","arguments":{"path":"/x"}}}"#,
        br#"{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#,
    ];
    let mut input = Vec::new();
    for l in lines {
        input.extend_from_slice(l);
        input.push(b'\n');
    }
    let f = run_lines(&s, None, &s.teed_demo(), &input);
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    // Only JSON-RPC on stdout, although debug logging was on.
    let out = messages(&f.stdout);
    assert!(
        f.stderr.contains("upstream process started"),
        "{}",
        f.stderr
    );

    let refused: Vec<i64> = out
        .iter()
        .filter(|m| m["id"].is_null())
        .map(|m| m["error"]["code"].as_i64().unwrap())
        .collect();
    // Not JSON, two values twice, a batch, a duplicate key.
    assert_eq!(
        refused,
        vec![-32700, -32700, -32700, -32600, -32600],
        "{out:?}"
    );
    assert!(reply(&out, 8.into())["result"].is_object());
    let tools: Vec<&str> = reply(&out, 7.into())["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"echo") && !tools.contains(&"delete_file"),
        "{tools:?}"
    );
    let denied = reply(&out, 20.into());
    assert_eq!(denied["error"]["code"], -31003, "{denied}");
    assert_eq!(
        denied["error"]["message"],
        "Forbidden: missing permission tools:execute:delete_file"
    );
    assert_eq!(reply(&out, 21.into())["result"]["content"][0]["text"], "hi");
    // The unsolicited answer got no answer of its own.
    assert!(!out.iter().any(|m| m["id"] == "srv-1"));

    let log = s.upstream_log();
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).expect("one JSON message per line upstream");
        assert_eq!(v["jsonrpc"], "2.0");
    }
    assert!(
        log.contains(r#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#),
        "{log}"
    );
    assert!(log.contains(r#""id":21"#), "{log}");
    for never in [
        "not json",
        r#""id":5,"#,
        r#""id":6,"#,
        r#""id":55"#,
        r#""id":56"#,
        r#""id":10"#,
        r#""id":11"#,
        r#""id":12"#,
        "srv-1",
        "delete_file",
        "\r",
    ] {
        assert!(!log.contains(never), "{never:?} reached the child: {log}");
    }

    let audit = s.audit();
    let deny = audit
        .iter()
        .find(|e| {
            e["event"] == "decision" && e["outcome"] == "deny" && e["target"] == "delete_file"
        })
        .expect("a deny line");
    assert_eq!(deny["subject"], "dev");
    assert_eq!(deny["issuer"], "urn:mcp-guard:local");
    assert_eq!(deny["auth_method"], "environment");
    assert_eq!(deny["method"], "tools/call");
    assert_eq!(deny["permission"], "tools:execute:delete_file");
    assert_eq!(deny["request_id"], "20");
    assert_eq!(deny["reason_kind"], "no_grant");
    let session = deny["session"].as_str().unwrap();
    assert_eq!(session.len(), 8);
    let allow = audit
        .iter()
        .find(|e| e["event"] == "decision" && e["target"] == "echo")
        .expect("an allow line");
    assert_eq!(allow["outcome"], "allow");
    assert_eq!(allow["permission"], "tools:execute:echo");
    assert_eq!(allow["session"], session);
    let list = audit
        .iter()
        .find(|e| e["event"] == "list")
        .expect("a list line");
    assert_eq!(list["method"], "tools/list");
    assert!(list["hidden"].as_u64().unwrap() >= 2, "{list}");
    assert!(
        audit
            .iter()
            .any(|e| e["outcome"] == "deny" && e["reason_kind"] == "unsolicited_response"),
        "{audit:?}"
    );
    // Tool argument values never reach the audit log.
    assert!(
        !std::fs::read_to_string(s.path("audit.jsonl"))
            .unwrap()
            .contains("\"hi\"")
    );
}

#[test]
fn without_a_token_or_identity_nothing_starts() {
    let s = setup("");
    let marker = s.path("started");
    let server = vec![
        "sh".into(),
        "-c".into(),
        format!("touch '{}'", marker.display()),
    ];
    let f = run_lines(&s, None, &server, INIT.as_bytes());
    assert_eq!(f.code, Some(2), "{}", f.stderr);
    assert!(
        f.stderr.contains("no principal")
            && f.stderr.contains("MCP_GUARD_TOKEN")
            && f.stderr.contains("[stdio]"),
        "{}",
        f.stderr
    );
    assert_eq!(f.stdout, "");
    assert!(!marker.exists(), "the server was started");
}

#[test]
fn an_invalid_token_refuses_to_start_and_never_falls_back() {
    // The identity is configured, but a token that is present and bad still fails.
    let s = setup("[stdio]\nidentity = { subject = \"dev\", roles = [\"admin\"] }");
    let marker = s.path("started");
    let server = vec![
        "sh".into(),
        "-c".into(),
        format!("touch '{}'", marker.display()),
    ];
    // The store gets its signing key; a token signed by another guard's key must still fail.
    let _ = s.token("alice", "1h");
    let foreign = setup("").token("root", "1h");
    for bad in [
        "not-a-token",
        "",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb290In0.",
        foreign.as_str(),
    ] {
        let f = run_lines(&s, Some(bad), &server, INIT.as_bytes());
        assert_eq!(f.code, Some(1), "{bad:?}: {}", f.stderr);
        assert!(
            f.stderr
                .contains("the token in `MCP_GUARD_TOKEN` is not valid"),
            "{}",
            f.stderr
        );
        assert_eq!(f.stdout, "");
    }
    assert!(!marker.exists(), "the server was started");
    let failed = s
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "authn_failed")
        .count();
    assert!(failed >= 3, "authentication failures are audited");
}

/// A token that expires during the session: later requests are refused and never reach the
/// child; the same token then cannot start a new session.
#[test]
fn an_expiring_token_ends_access() {
    let s = setup("");
    let token = s.token("alice", "3s");
    let issued = Instant::now();
    let mut child = s.command(Some(&token), &s.teed_demo()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let out = Lines::spawn(child.stdout.take().unwrap(), None);
    let err = Lines::spawn(child.stderr.take().unwrap(), Some("guard: "));
    let mut guard = ChildGuard::new(child);
    let send = |stdin: &mut std::process::ChildStdin, line: &str| {
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    };
    let answer = |id: i64| {
        out.find(Duration::from_secs(20), |l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["id"] == id).then_some(v)
        })
        .unwrap_or_else(|| panic!("no answer to {id}"))
    };
    send(&mut stdin, INIT);
    assert!(answer(1)["result"]["protocolVersion"].is_string());
    send(&mut stdin, INITIALIZED);
    send(
        &mut stdin,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    );
    assert!(answer(2)["result"]["tools"].is_array());
    // Past `exp` and the one-second leeway.
    let wait = Duration::from_millis(5_500).saturating_sub(issued.elapsed());
    std::thread::sleep(wait);
    send(
        &mut stdin,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
    );
    let refused = answer(3);
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    assert_eq!(
        refused["error"]["message"],
        "Unauthorized: the token is no longer valid"
    );
    drop(stdin);
    assert_eq!(wait_for(&mut guard), Some(0));
    drop(err);
    let log = s.upstream_log();
    assert!(
        log.contains(r#""id":2"#) && !log.contains(r#""id":3"#),
        "{log}"
    );
    let audit = s.audit();
    assert!(
        audit
            .iter()
            .any(|e| e["event"] == "authn_failed"
                && e["reason"].as_str().unwrap().contains("expired")),
        "{audit:?}"
    );

    let f = run_lines(&s, Some(&token), &s.teed_demo(), INIT.as_bytes());
    assert_eq!(f.code, Some(1), "{}", f.stderr);
    assert!(f.stderr.contains("expired"), "{}", f.stderr);
    assert!(!f.stderr.contains(&token), "the token was logged");
    let audit_text = std::fs::read_to_string(s.path("audit.jsonl")).unwrap();
    assert!(
        !audit_text.contains(&token),
        "the token reached the audit log"
    );
}

/// SIGTERM: the guard kills its child and exits 0.
#[test]
fn sigterm_stops_the_guard_and_its_child() {
    let s = setup("[stdio]\nidentity = { subject = \"dev\", roles = [\"user\"] }");
    let mut child = s.command(None, &s.teed_demo()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let out = Lines::spawn(child.stdout.take().unwrap(), None);
    let err = Lines::spawn(child.stderr.take().unwrap(), None);
    let guard_pid = child.id();
    let mut guard = ChildGuard::new(child);
    let server = err
        .find(Duration::from_secs(20), |l| {
            l.contains("upstream process started").then(|| child_pid(l))
        })
        .expect("the child started");
    stdin.write_all(INIT.as_bytes()).unwrap();
    stdin.write_all(b"\n").unwrap();
    stdin.flush().unwrap();
    out.find(Duration::from_secs(20), |l| {
        l.contains(r#""id":1"#).then_some(())
    })
    .expect("initialize answered");
    let killed = Command::new("kill")
        .args(["-TERM", &guard_pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(wait(&mut guard, Duration::from_secs(10)), Some(0));
    assert_gone(server);
}

fn wait_for(guard: &mut ChildGuard) -> Option<i32> {
    wait(guard, Duration::from_secs(30))
}

/// The child exits on its own: the guard follows (exit 3) without waiting for the client.
#[test]
fn the_guard_exits_when_the_child_does() {
    let s = setup("[stdio]\nidentity = { subject = \"dev\", roles = [\"user\"] }");
    // The server leaves a process behind in its group: that one must go too.
    let pid_file = s.path("left-behind.pid");
    let server = format!("sleep 300 & echo $! > '{}'; exit 0", pid_file.display());
    let mut child = s
        .command(None, &["sh".into(), "-c".into(), server])
        .spawn()
        .unwrap();
    // Standard input stays open: only the child's exit can end the guard.
    let _stdin = child.stdin.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut guard = ChildGuard::new(child);
    assert_eq!(wait(&mut guard, Duration::from_secs(10)), Some(3));
    let mut text = String::new();
    err.read_to_string(&mut text).unwrap();
    assert!(text.contains("the MCP server exited"), "{text}");
    let left: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_gone(left);
}

#[test]
fn help_names_the_environment_and_exit_codes() {
    let o = Command::new(EXE)
        .args(["stdio", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "MCP_GUARD_TOKEN",
        "[stdio] identity",
        "Exit codes",
        "RUST_LOG",
        "-- <CMD>",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    // The server command is required.
    let o = Command::new(EXE).args(["stdio"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn audit_on_stdout_is_refused() {
    let s = setup("[stdio]\nidentity = { subject = \"dev\", roles = [\"user\"] }");
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("path = \"audit.jsonl\"", "path = \"stdout\"");
    std::fs::write(&s.config, text).unwrap();
    let f = run_lines(&s, None, &s.teed_demo(), INIT.as_bytes());
    assert_eq!(f.code, Some(2), "{}", f.stderr);
    assert!(
        f.stderr.contains("`audit.path` is `stdout`"),
        "{}",
        f.stderr
    );
    assert_eq!(f.stdout, "");
}

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

/// Runs `interop/sdk-stdio-client.mjs`: the SDK starts the guard, which starts server-everything.
fn sdk_client(
    js: &Path,
    s: &Setup,
    token: &str,
    allowed: (&str, &str),
    forbidden: &str,
    sampling: bool,
) -> Value {
    let server = js.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let o = Command::new("node")
        .arg("sdk-stdio-client.mjs")
        .arg(EXE)
        .arg(&s.config)
        .arg("--")
        .arg("node")
        .arg(&server)
        .arg("stdio")
        .current_dir(js)
        .env("MCP_GUARD_TOKEN", token)
        .env("ALLOWED_TOOL", allowed.0)
        .env("ALLOWED_ARGS", allowed.1)
        .env("FORBIDDEN_TOOL", forbidden)
        .env("SAMPLING", if sampling { "1" } else { "0" })
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

#[track_caller]
fn assert_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!pid_alive(pid), "process {pid} outlived the client");
}

#[test]
fn typescript_sdk_stdio_client_through_the_guard() {
    let Some(js) = interop_dir() else { return };
    let s = setup("");
    let alice = s.token("alice", "1h");
    let root = s.token("root", "1h");
    let a = sdk_client(
        &js,
        &s,
        &alice,
        ("echo", r#"{"message":"over stdio"}"#),
        "toggle-simulated-logging",
        false,
    );
    let r = sdk_client(
        &js,
        &s,
        &root,
        ("get-env", "{}"),
        "no-such-tool-for-root",
        true,
    );

    let names = |v: &Value| -> Vec<String> {
        v["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    };
    let (alice_tools, root_tools) = (names(&a), names(&r));
    assert!(root_tools.len() >= 13, "admin sees every tool: {r}");
    assert!(alice_tools.len() < root_tools.len(), "{alice_tools:?}");
    assert!(alice_tools.iter().any(|t| t == "echo"), "{alice_tools:?}");
    assert!(
        !alice_tools.iter().any(|t| t == "toggle-simulated-logging"),
        "{alice_tools:?}"
    );
    assert_eq!(a["allowed"]["isError"], false, "{a}");
    assert!(
        a["allowed"]["text"]
            .as_str()
            .unwrap()
            .contains("over stdio"),
        "{a}"
    );
    assert_eq!(a["forbidden"]["refused"], true, "{a}");
    assert_eq!(a["forbidden"]["code"], -31003, "{a}");
    assert!(
        a["forbidden"]["message"]
            .as_str()
            .unwrap()
            .contains("tools:execute:toggle-simulated-logging"),
        "{a}"
    );
    // The child saw neither the token nor its variable.
    let env = r["allowed"]["text"].as_str().unwrap();
    assert!(env.contains("PATH"), "{env}");
    assert!(
        !env.contains("MCP_GUARD_TOKEN") && !env.contains(&root),
        "the child saw the guard's token: {env}"
    );

    // The server's sampling request reached the client, and the client's answer the server.
    assert_eq!(r["sampling_requests"], 1, "{r}");
    assert!(
        r["sampling"]
            .as_str()
            .unwrap()
            .contains("sampled-by-the-client"),
        "{r}"
    );

    // No process remains: neither guard nor server.
    for (report, token) in [(&a, &alice), (&r, &root)] {
        let stderr = report["stderr"].as_str().unwrap();
        assert!(!stderr.contains(token.as_str()), "the token was logged");
        assert_gone(child_pid(stderr));
        assert_gone(u32::try_from(report["guard_pid"].as_u64().unwrap()).unwrap());
    }

    let audit = s.audit();
    let deny = audit
        .iter()
        .find(|e| e["event"] == "decision" && e["outcome"] == "deny")
        .expect("a deny line");
    assert_eq!(deny["subject"], "alice");
    assert_eq!(deny["auth_method"], "own_token");
    assert_eq!(deny["target"], "toggle-simulated-logging");
    assert!(deny["credential"].is_string());
    assert!(
        !std::fs::read_to_string(s.path("audit.jsonl"))
            .unwrap()
            .contains(&alice),
        "a token reached the audit log"
    );
}

/// A userinfo endpoint on loopback (one answer per connection): alice is in ops. It keeps the
/// `Authorization` header of every request it is sent.
fn userinfo_endpoint() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/userinfo", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = vec![0u8; 16 * 1024];
            let n = conn.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let auth = head.lines().find_map(|l| {
                let (name, value) = l.split_once(": ")?;
                name.eq_ignore_ascii_case("authorization")
                    .then(|| value.to_owned())
            });
            s.lock().unwrap().push(auth.unwrap_or_default());
            let body = r#"{"sub":"alice","department":"ops"}"#;
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

/// The token in `MCP_GUARD_TOKEN` is the credential: a userinfo provider is asked with it. The
/// local identity has no token, and nothing is sent.
#[test]
fn userinfo_is_asked_with_the_environments_token_only() {
    use mcp_guard_auth::token::{Algorithm, SigningKey, keys::jwks};
    let (url, seen) = userinfo_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let idp = SigningKey::generate(Algorithm::EdDSA).unwrap();
    std::fs::write(dir.path().join("idp.json"), jwks([&idp]).to_string()).unwrap();
    let config = dir.path().join("guard.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[authorization]
mode = "abac"
[store]
path = "state.db"
[audit]
path = "audit.jsonl"
[stdio]
identity = {{ subject = "alice", roles = [] }}
[[issuers]]
issuer = "https://idp.example"
algorithms = ["EdDSA"]
jwks_file = "idp.json"
audiences = ["urn:stdio-test"]
[attributes.idp]
kind = "userinfo"
url = "{url}"
issuer = "https://idp.example"
[[policies]]
id = "ops-only"
effect = "allow"
resources = ["tools:echo"]
actions = ["execute"]
conditions = [{{ attribute = "idp.department", operator = "equals", value = "ops" }}]
"#
        ),
    )
    .unwrap();
    let s = Setup { dir, config };
    // The guard also verifies its own tokens: their signing key is made at first use.
    let own = s.token("alice", "5m");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = mcp_guard_auth::danger::sign_with(
        &idp,
        &serde_json::json!({"alg": "EdDSA", "kid": idp.kid(), "typ": "at+jwt"}),
        &serde_json::json!({"iss": "https://idp.example", "sub": "alice",
            "aud": "urn:stdio-test", "exp": now + 300}),
    )
    .unwrap();
    let call = r#"{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#;
    let input = format!("{INIT}\n{INITIALIZED}\n{call}\n");

    let f = run_lines(&s, Some(&token), &s.teed_demo(), input.as_bytes());
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let out = messages(&f.stdout);
    assert!(reply(&out, 21.into())["result"].is_object(), "{out:?}");
    assert_eq!(*seen.lock().unwrap(), [format!("Bearer {token}")]);

    // The local identity: no token to send, so the attribute is unknown and the call refused.
    let f = run_lines(&s, None, &s.teed_demo(), input.as_bytes());
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let out = messages(&f.stdout);
    assert_eq!(reply(&out, 21.into())["error"]["code"], -31003, "{out:?}");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "nothing sent for the local identity"
    );
    let audit = s.audit();
    let denied = audit
        .iter()
        .rev()
        .find(|e| e["event"] == "decision" && e["outcome"] == "deny")
        .unwrap();
    assert_eq!(
        denied["unknown"][0]["reason"], "provider failed: not a token of this issuer",
        "{denied}"
    );

    // Nor for the gateway's own token of a subject with the same name.
    let f = run_lines(&s, Some(&own), &s.teed_demo(), input.as_bytes());
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let out = messages(&f.stdout);
    assert_eq!(reply(&out, 21.into())["error"]["code"], -31003, "{out:?}");
    assert_eq!(seen.lock().unwrap().len(), 1, "the own token was not sent");
    let audit = s.audit();
    let denied = audit
        .iter()
        .rev()
        .find(|e| e["event"] == "decision" && e["outcome"] == "deny")
        .unwrap();
    assert_eq!(
        denied["unknown"][0]["reason"], "provider failed: not a token of this issuer",
        "{denied}"
    );
    let text = std::fs::read_to_string(s.path("audit.jsonl")).unwrap();
    assert!(
        !text.contains(&token) && !text.contains(&own),
        "a token reached the audit log"
    );
}
