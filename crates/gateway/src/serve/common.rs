//! Pieces of the MCP message path that the HTTP gateway and the stdio front share: what an audit
//! line of a decision holds, and small probes of a message's bytes.

use mcp_guard_auth::audit::{AuditEvent, AuditSink};
use mcp_guard_core::{Decision, Message, Operation, Principal, RequestId};
use serde_json::Value;

use crate::tokens::event;

/// The tool, prompt, resource or task a message names, for the audit line.
pub fn target_of(op: &Operation) -> Option<String> {
    match op {
        Operation::CallTool { name, .. } | Operation::GetPrompt { name, .. } => {
            Some(name.to_string())
        }
        Operation::ReadResource { uri, .. } => Some(uri.to_string()),
        Operation::Task { task_id, .. } => Some(task_id.to_string()),
        _ => None,
    }
}

/// The audit event of a decision on `message` by `principal` (`credential`: its fingerprint, if
/// it has one) in the session whose short id is `session`. The caller adds what only it knows
/// (the client address).
pub fn decision_event(
    principal: &Principal,
    credential: Option<&str>,
    message: &Message,
    session: &str,
) -> AuditEvent {
    let mut e = event("decision");
    e.issuer = principal.issuer.clone();
    e.subject = Some(principal.subject.clone());
    e.client_id = principal.client_id.clone();
    e.auth_method = Some(principal.auth_method.as_str());
    e.credential = credential.map(str::to_owned);
    e.method = message.method.clone().or_else(|| Some("(response)".into()));
    e.target = target_of(&message.operation);
    e.request_id = message.id.as_ref().map(RequestId::to_json);
    e.session = Some(session.to_owned());
    e
}

/// Counts a decision and writes its audit line.
pub fn record_decision(audit: &dyn AuditSink, mut e: AuditEvent, d: &Decision) {
    super::metrics::decision(
        e.method.as_deref().unwrap_or(""),
        d.verdict.as_str(),
        d.reason.kind(),
    );
    e.outcome = Some(d.verdict.as_str());
    e.permission = d.permission.as_ref().map(ToString::to_string);
    e.reason = Some(d.explain());
    e.reason_kind = Some(d.reason.kind());
    e.unknown = d.unknown.iter().map(Into::into).collect();
    audit.record(&e);
}

/// A JSON-RPC error response, as one line of JSON.
pub fn error_line(id: Option<&RequestId>, code: i32, message: &str) -> Vec<u8> {
    serde_json::json!({"jsonrpc": "2.0", "id": id.map_or(Value::Null, RequestId::to_value),
        "error": {"code": code, "message": message}})
    .to_string()
    .into_bytes()
}

/// Whether a list request asked for a later page (`params.cursor`).
pub fn has_cursor(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        params: Option<Params>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        cursor: Option<Value>,
    }
    serde_json::from_slice::<Probe>(bytes)
        .ok()
        .and_then(|p| p.params)
        .is_some_and(|p| p.cursor.is_some())
}

/// The id of a task the upstream reports as created (`result.task.taskId`), if any.
pub fn created_task(line: &[u8]) -> Option<String> {
    // Most replies hold no task: skip the parse for them.
    memchr::memmem::find(line, b"\"taskId\"")?;
    let reply: Value = serde_json::from_slice(line).ok()?;
    reply
        .pointer("/result/task/taskId")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Keeps in a `tasks/list` reply only the tasks `owned` accepts; `None` when it holds no list.
/// Returns the new line and the counts shown and hidden.
pub fn own_tasks(line: &[u8], owned: impl Fn(&str) -> bool) -> Option<(Vec<u8>, usize, usize)> {
    let mut reply: Value = serde_json::from_slice(line).ok()?;
    let tasks = reply
        .pointer_mut("/result/tasks")
        .and_then(Value::as_array_mut)?;
    let before = tasks.len();
    tasks.retain(|t| t.get("taskId").and_then(Value::as_str).is_some_and(&owned));
    let shown = tasks.len();
    Some((reply.to_string().into_bytes(), shown, before - shown))
}
