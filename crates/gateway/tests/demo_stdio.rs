//! `mcp-guard demo stdio` speaks MCP on stdin/stdout: it answers the handshake, lists its own
//! tools with the annotations a gateway policy reads, and exits when stdin closes.

mod support;

use std::{
    io::Write,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::{ChildGuard, Lines};

/// How long the server may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// The line-delimited JSON-RPC messages a client opens a session with, then `tools/list`.
fn opening_messages() -> String {
    let messages = [
        json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": { "name": "mcp-guard-demo-test", "version": "0" },
            },
        }),
        json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
        json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" }),
    ];
    messages
        .iter()
        .map(|message| format!("{message}\n"))
        .collect()
}

#[test]
fn stdio_lists_the_own_tools_with_their_annotations() {
    let child = Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .args(["demo", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the demo binary starts");
    let mut demo = ChildGuard::new(child);
    let mut stdin = demo.child().stdin.take().expect("stdin is piped");
    let stdout = Lines::spawn(demo.child().stdout.take().expect("stdout is piped"), None);

    stdin
        .write_all(opening_messages().as_bytes())
        .expect("the demo reads stdin");
    stdin.flush().expect("the demo reads stdin");

    // Every stdout line must be JSON-RPC: logs go to stderr.
    let mut initialize = None;
    let tools = stdout
        .find(ANSWER_TIMEOUT, |line| {
            let message: Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("stdout line is not JSON ({error}): {line}"));
            match message["id"].as_i64() {
                Some(1) => initialize = Some(message),
                Some(2) => return Some(message),
                _ => {}
            }
            None
        })
        .expect("an answer to tools/list");

    let initialize = initialize.expect("an answer to initialize before tools/list");
    assert_eq!(
        initialize["result"]["serverInfo"]["name"], "mcp-guard-demo",
        "{initialize}"
    );
    let tools = tools["result"]["tools"]
        .as_array()
        .expect("tools/list returns a tool array");
    let annotations = |name: &str| {
        let tool = tools
            .iter()
            .find(|tool| tool["name"] == name)
            .unwrap_or_else(|| panic!("tool `{name}` is listed"));
        (
            tool["annotations"]["readOnlyHint"].as_bool(),
            tool["annotations"]["destructiveHint"].as_bool(),
        )
    };
    // (readOnlyHint, destructiveHint)
    assert_eq!(annotations("echo"), (Some(true), Some(false)));
    assert_eq!(annotations("add"), (Some(true), Some(false)));
    assert_eq!(annotations("delete_file"), (Some(false), Some(true)));
    assert_eq!(annotations("deploy"), (Some(false), Some(true)));

    // Closing stdin ends the session, and the process with it.
    drop(stdin);
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let status = loop {
        if let Some(status) = demo.child().try_wait().expect("the demo can be waited for") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not exit after stdin closed"
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the demo exited with {status}");
}
