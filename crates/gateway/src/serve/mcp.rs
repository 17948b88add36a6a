//! The streamable-HTTP MCP endpoint: POST (JSON or SSE answers), GET (the session's stream) and
//! DELETE, with every message authenticated, authorized and audited (DESIGN.md sections 2, 8, 9).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use mcp_guard_auth::audit::AuditEvent;
use mcp_guard_auth::endpoints::ClientAddr;
use mcp_guard_core::{
    BatchItem, Classified, ClassifyOptions, Context, Decision, Environment, ListKind, Message,
    MessageKind, Operation, Permitted, ProvidedAttributes, RequestId, SessionFacts, ToolCatalog,
    UnknownAttribute, UnknownReason, Verdict, classify_parsed, codes, parse_strict,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::attributes::{self, RequestAttributes};
use super::common;
use super::front::{Caller, anonymous, authenticate, client_ip, json_rpc_error};
use super::link::{Link, LinkError, Outgoing};
use super::metrics;
use super::routing::{self, Era, MODERN, RoutingError};
use super::session::{Pending, Session, short};
use super::{Gateway, Refusal, Rules};
use crate::config::DenyMode;
use crate::tokens::now_unix;

/// The protocol revisions the gateway speaks.
pub const SUPPORTED_PROTOCOLS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25", MODERN];

const SESSION_HEADER: &str = "mcp-session-id";
const PROTOCOL_HEADER: &str = "mcp-protocol-version";

/// Everything one request needs besides the gateway.
struct Exchange {
    /// The rules this request started with (a reload does not change them mid-request).
    rules: Arc<Rules>,
    caller: Caller,
    /// The client's address as the audit log and policies show it, formatted once.
    ip: Option<String>,
    user_agent: Option<String>,
    wants_sse: bool,
    /// A stateless 2026-07-28 request.
    modern: bool,
    /// Its checked routing headers, passed on to an HTTP upstream.
    routing: HeaderMap,
    /// `params._meta.progressToken` of a single message, to route progress notifications by.
    progress: Option<Value>,
    /// Attribute provider results, gathered when a message first needs them.
    attributes: RequestAttributes,
}

impl Exchange {
    fn environment(&self) -> Environment {
        Environment {
            now_unix: Some(now_unix()),
            client_ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
        }
    }
}

/// POST: one message or a batch from the client.
pub async fn post(
    State(gw): State<Arc<Gateway>>,
    peer: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = client_ip(&gw.config.server, peer.as_deref(), &headers);
    let rules = gw.rules();
    let caller = match authenticate(&gw, &rules, &headers, ip) {
        Ok(c) => c,
        // The strict parse below still decides what the body is; this only lets a body whose
        // every method is public through without a credential.
        Err(r) => match anonymous(&rules, &headers, &body) {
            Some(c) => c,
            None => return *r,
        },
    };
    if let Some(r) = check_protocol_header(&headers) {
        return r;
    }
    // The one parse of the body: the routing check, the progress token and the classification
    // all read this tree.
    let parsed = parse_strict(&body);
    let era = match routing::check(&headers, parsed.as_ref().ok()) {
        Ok(era) => era,
        Err(e @ RoutingError::Mismatch(_)) => {
            return json_rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                codes::HEADER_MISMATCH,
                &e.to_string(),
            );
        }
        Err(e @ RoutingError::MissingMeta(_)) => {
            return json_rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                codes::INVALID_PARAMS,
                &e.to_string(),
            );
        }
    };
    let modern = matches!(era, Era::Modern(_));
    let session = if modern {
        // Stateless: a session id, if sent, is ignored; the principal's own pool serves it.
        match gw.pool_session(&caller.owner) {
            Ok(s) => Some(s),
            Err(r) => return *r,
        }
    } else {
        match session_of(&gw, &headers, &caller) {
            Ok(s) => s,
            Err(r) => return *r,
        }
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let routing_headers = if modern {
        routing_headers(&headers)
    } else {
        HeaderMap::new()
    };
    let x = Exchange {
        rules,
        caller,
        ip: ip.map(|i| i.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        wants_sse: accept.contains("text/event-stream"),
        modern,
        routing: routing_headers,
        progress: parsed.as_ref().ok().and_then(progress_token),
        attributes: RequestAttributes::default(),
    };
    let allow_batch = !modern
        && session
            .as_ref()
            .and_then(|s| s.protocol())
            .is_some_and(|p| p == "2025-03-26");
    let options = ClassifyOptions {
        allow_batch,
        max_batch: gw.config.server.max_batch,
    };
    match classify_parsed(&body, parsed, options) {
        Classified::Single(Err(e)) => json_rpc_error(
            StatusCode::BAD_REQUEST,
            e.id.as_ref().map(RequestId::to_value),
            e.code,
            &e.message,
        ),
        Classified::Single(Ok(message)) => single(&gw, x, session, message, body).await,
        Classified::Batch(items) => match session {
            Some(s) => batch(&gw, &x, &s, items).await,
            None => session_required(),
        },
    }
}

/// 400 with -32022 for a protocol revision the gateway does not speak.
fn check_protocol_header(headers: &HeaderMap) -> Option<Response> {
    let v = headers.get(PROTOCOL_HEADER)?;
    if v.to_str().is_ok_and(|v| SUPPORTED_PROTOCOLS.contains(&v)) {
        return None;
    }
    let body = serde_json::json!({"jsonrpc": "2.0", "id": Value::Null, "error": {
        "code": UNSUPPORTED_PROTOCOL_VERSION,
        "message": "Unsupported protocol version",
        "data": {"supported": SUPPORTED_PROTOCOLS, "requested": v.to_str().unwrap_or("")},
    }});
    Some(
        (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
    )
}

/// -32022, defined by protocol revision 2026-07-28.
const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;

/// The 2026-07-28 headers an HTTP upstream gets: the checked standard ones and the tool's own
/// `Mcp-Param-*` ones (which intermediaries forward unchanged).
fn routing_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let n = name.as_str();
        if n == PROTOCOL_HEADER
            || n == "mcp-method"
            || n == "mcp-name"
            || n.starts_with("mcp-param-")
        {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// 405 for GET and DELETE under 2026-07-28, which has no sessions or standalone stream.
fn stateless_method(headers: &HeaderMap) -> Option<Response> {
    let v = headers.get(PROTOCOL_HEADER)?.to_str().ok()?;
    (v >= MODERN).then(|| {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST")],
            "protocol revision 2026-07-28 has no sessions: use POST",
        )
            .into_response()
    })
}

/// The caller's session named by `Mcp-Session-Id`; 404 when unknown or not the caller's.
fn session_of(
    gw: &Gateway,
    headers: &HeaderMap,
    caller: &Caller,
) -> Result<Option<Arc<Session>>, Refusal> {
    let Some(id) = headers.get(SESSION_HEADER) else {
        return Ok(None);
    };
    let id = id.to_str().unwrap_or("");
    gw.find_session(id, &caller.owner)
        .map(Some)
        .ok_or_else(|| Box::new(session_not_found()))
}

fn session_not_found() -> Response {
    json_rpc_error(
        StatusCode::NOT_FOUND,
        None,
        codes::INVALID_REQUEST,
        "Session not found",
    )
}

fn session_required() -> Response {
    json_rpc_error(
        StatusCode::BAD_REQUEST,
        None,
        codes::INVALID_REQUEST,
        "Bad Request: Mcp-Session-Id header is required",
    )
}

fn upstream_failed(id: Option<&RequestId>, status: StatusCode) -> Response {
    metrics::upstream_error("failed");
    json_rpc_error(
        status,
        id.map(RequestId::to_value),
        codes::UPSTREAM_FAILED,
        "Upstream failed: the MCP server is not available",
    )
}

async fn single(
    gw: &Arc<Gateway>,
    x: Exchange,
    session: Option<Arc<Session>>,
    message: Message,
    body: Bytes,
) -> Response {
    let is_initialize = message.method.as_deref() == Some("initialize");
    let (session, created) = match session {
        Some(s) => (s, false),
        None if is_initialize && message.kind == MessageKind::Request && !x.modern => {
            match gw.open_session(&x.caller.owner) {
                Ok(s) => (s, true),
                Err(r) => return *r,
            }
        }
        None => return session_required(),
    };
    let id = message.id.clone();
    let (decision, permitted) = authorize(gw, &x, &session, message, body).await;
    let Some(permitted) = permitted else {
        if created {
            gw.close_session(&session.id);
        }
        return denied(gw, &x.rules, &decision, id.as_ref());
    };
    let link = match session.link(gw.config.server.request_timeout).await {
        Ok(l) => l,
        Err(_) => {
            if created {
                gw.close_session(&session.id);
            }
            return upstream_failed(permitted.get().0.id.as_ref(), StatusCode::BAD_GATEWAY);
        }
    };
    let kind = permitted.get().0.kind;
    if kind != MessageKind::Request {
        return match forward_one_way(&session, &link, permitted, &x.routing).await {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(_) => upstream_failed(None, StatusCode::BAD_GATEWAY),
        };
    }
    let mut response = request(gw, x, session.clone(), link, permitted).await;
    if created {
        if session.protocol().is_some() {
            if let Ok(v) = HeaderValue::from_str(&session.id) {
                response.headers_mut().insert(SESSION_HEADER, v);
            }
        } else {
            gw.close_session(&session.id);
        }
    }
    response
}

/// Decides one message and records the decision.
async fn authorize(
    gw: &Arc<Gateway>,
    x: &Exchange,
    session: &Arc<Session>,
    message: Message,
    bytes: Bytes,
) -> (Decision, Option<Permitted<(Message, Bytes)>>) {
    let environment = x.environment();
    let gathered = x
        .attributes
        .for_operation(&x.rules, x.caller.asker(), &message.operation)
        .await;
    let empty = ProvidedAttributes::new();
    let attributes = gathered.unwrap_or(&empty);
    let needs_catalog = matches!(message.operation, Operation::CallTool { .. })
        && x.rules.authorizer.needs_tool_catalog();
    let catalog: Option<Arc<ToolCatalog>> = if needs_catalog {
        session.tools(gw.config.server.request_timeout).await
    } else {
        None
    };
    let catalog_missing = needs_catalog && catalog.is_none();
    let facts = SessionFacts {
        // A task the gateway never saw created (before a restart, by another gateway) has an
        // unknown owner, which the core denies.
        task_owned: match &message.operation {
            Operation::Task { task_id, .. } => {
                gw.tasks.get(&**task_id).map(|o| o == x.caller.owner)
            }
            _ => None,
        },
        response_outstanding: match (message.kind, &message.id) {
            (MessageKind::Response, Some(id)) => Some(session.is_outstanding(id)),
            (MessageKind::Response, None) => Some(false),
            _ => None,
        },
    };
    let mut ctx = Context::new(&environment, attributes).with_session(facts);
    if let Some(c) = &catalog {
        ctx = ctx.with_tools(c);
    }
    let audit = decision_event(x, session, &message);
    let explain_later = attributes::keep_for_audit(gathered, &message.operation);
    let (mut decision, permitted) =
        x.rules
            .authorizer
            .permit_with(&x.caller.subject, message, bytes, &ctx);
    if let Some(op) = &explain_later {
        attributes::note_unknown(
            &x.rules.authorizer,
            &x.caller.subject,
            op,
            &ctx,
            &mut decision,
        );
    }
    if catalog_missing && decision.verdict == Verdict::Deny {
        // Annotation-defined tool groups matched nothing: say why in the audit line, or the
        // operator sees a missing grant where the upstream's tool list was unreadable.
        decision.unknown.push(UnknownAttribute {
            path: "tool.annotations".into(),
            reason: UnknownReason::ProviderFailed(
                "the upstream's tools/list could not be read".into(),
            ),
            policy: "tool groups defined by annotations".into(),
        });
    }
    if !matches!(decision.reason, mcp_guard_core::Reason::ListFiltered) {
        gw.record_decision(audit, &decision);
    }
    (decision, permitted)
}

fn decision_event(x: &Exchange, session: &Session, message: &Message) -> AuditEvent {
    let mut e = common::decision_event(
        x.caller.subject.principal(),
        Some(x.caller.credential.as_str()),
        message,
        short(&session.id),
    );
    e.client_ip = x.ip.clone();
    e
}

/// The answer to a denied message that stands alone: 403 with a challenge naming the scopes that
/// would grant it, or the hidden-item error.
fn denied(gw: &Gateway, rules: &Rules, decision: &Decision, id: Option<&RequestId>) -> Response {
    let scopes = mcp_guard_auth::respond::granting_scopes(&rules.authorizer, decision);
    mcp_guard_auth::respond::denied(
        &gw.resource_metadata_url,
        decision,
        rules.deny_mode == DenyMode::Hide,
        id.map(RequestId::to_value),
        &scopes,
    )
}

/// The JSON-RPC error for a denial: -31003 naming the permission, or -32602 when hiding.
fn denial_error(rules: &Rules, decision: &Decision) -> (i32, String) {
    mcp_guard_auth::respond::denial_error(decision, rules.deny_mode == DenyMode::Hide)
}

async fn forward_one_way(
    session: &Session,
    link: &Arc<Link>,
    permitted: Permitted<(Message, Bytes)>,
    routing: &HeaderMap,
) -> Result<(), LinkError> {
    let (message, bytes) = permitted.into_inner();
    match message.kind {
        MessageKind::Response => {
            if let Some(id) = &message.id {
                session.take_outstanding(id);
            }
        }
        _ if message.method.as_deref() == Some("notifications/initialized") => {
            session.mark_initialized();
        }
        _ => {}
    }
    let known = Outgoing {
        method: message.method.as_deref(),
        id: message.id.as_ref(),
    };
    link.send_routed(&bytes, routing, Some(known)).await
}

/// Stops waiting for a request when dropped: forgets it and, unless the upstream already
/// answered, tells the upstream the client went away.
struct InFlight {
    session: Arc<Session>,
    link: Arc<Link>,
    id: RequestId,
    pending: Option<Pending>,
    /// Whether to send `notifications/cancelled` (2026-07-28 has no such notification outside a
    /// request: closing the answer stream is the cancellation).
    notify: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(p) = &self.pending {
            self.session.end(p);
        }
        if self.link.forget(&self.id) && self.notify {
            let cancel = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": self.id.to_value(), "reason": "the client went away"}});
            let link = self.link.clone();
            tokio::spawn(async move {
                let _ = link.send(cancel.to_string().as_bytes()).await;
            });
        }
    }
}

/// Forwards one request and answers with its response: as JSON, or as an SSE stream once the
/// upstream sends messages of its own before the response.
async fn request(
    gw: &Arc<Gateway>,
    x: Exchange,
    session: Arc<Session>,
    link: Arc<Link>,
    permitted: Permitted<(Message, Bytes)>,
) -> Response {
    let (message, bytes) = permitted.into_inner();
    let Some(id) = message.id.clone() else {
        return upstream_failed(None, StatusCode::BAD_GATEWAY);
    };
    let pending = match session.begin(&link, id.clone(), x.progress.clone()) {
        Ok(p) => p,
        Err(LinkError::InFlight) => {
            return json_rpc_error(
                StatusCode::BAD_REQUEST,
                Some(id.to_value()),
                codes::INVALID_REQUEST,
                "Invalid Request: a request with this id is already in flight",
            );
        }
        Err(LinkError::Dead) => return upstream_failed(Some(&id), StatusCode::BAD_GATEWAY),
    };
    let mut flight = InFlight {
        session: session.clone(),
        link: link.clone(),
        id: id.clone(),
        pending: Some(pending),
        notify: !x.modern || link.is_stdio(),
    };
    let known = Outgoing {
        method: message.method.as_deref(),
        id: Some(&id),
    };
    if link
        .send_routed(&bytes, &x.routing, Some(known))
        .await
        .is_err()
    {
        return upstream_failed(Some(&id), StatusCode::BAD_GATEWAY);
    }
    let sent = Instant::now();
    let deadline = sent + gw.config.server.request_timeout;
    let first = {
        let Some(p) = flight.pending.as_mut() else {
            return upstream_failed(Some(&id), StatusCode::BAD_GATEWAY);
        };
        // Messages the upstream sent before its answer are queued before the answer is, so
        // polling them first keeps their order (and keeps them from being lost to a JSON reply).
        tokio::select! {
            biased;
            Some(event) = p.events.recv(), if x.wants_sse => First::Event(event),
            reply = &mut p.reply => First::Reply(reply.ok()),
            () = tokio::time::sleep_until(deadline) => First::Timeout,
        }
    };
    if matches!(first, First::Reply(Some(_))) {
        metrics::upstream_time(sent.elapsed());
    }
    match first {
        First::Reply(Some(line)) => {
            let mut unread = match flight.pending.as_mut() {
                Some(p) => session.finish(p),
                None => Vec::new(),
            };
            let line = finish_reply(gw, &x, &session, &message, &bytes, line);
            if !x.wants_sse {
                // A client that takes only JSON here gets them on its standalone stream.
                for m in unread.drain(..) {
                    session.to_standalone(m);
                }
            }
            if unread.is_empty() {
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    line,
                )
                    .into_response();
            }
            // Messages routed to this request just as its answer came: streamed before it.
            let (tx, rx) = mpsc::channel::<Bytes>(unread.len() + 1);
            for m in unread.iter().chain(std::iter::once(&line)) {
                let _ = tx.try_send(sse_frame(m));
            }
            sse_response(rx)
        }
        First::Reply(None) => upstream_failed(Some(&id), StatusCode::BAD_GATEWAY),
        First::Timeout => {
            metrics::upstream_error("timeout");
            json_rpc_error(
                StatusCode::GATEWAY_TIMEOUT,
                Some(id.to_value()),
                codes::UPSTREAM_TIMEOUT,
                "Upstream timeout",
            )
        }
        First::Event(event) => {
            let (tx, rx) = mpsc::channel::<Bytes>(16);
            let gw = gw.clone();
            tokio::spawn(async move {
                if tx.send(sse_frame(&event)).await.is_err() {
                    return;
                }
                let Some(mut p) = flight.pending.take() else {
                    return;
                };
                let last = loop {
                    tokio::select! {
                        biased;
                        Some(event) = p.events.recv() => {
                            if tx.send(sse_frame(&event)).await.is_err() {
                                session.end(&p);
                                return;
                            }
                        }
                        reply = &mut p.reply => break match reply {
                            Ok(line) => finish_reply(&gw, &x, &session, &message, &bytes, line),
                            Err(_) => error_line(&id, codes::UPSTREAM_FAILED, "Upstream failed: the MCP server is not available"),
                        },
                        () = tokio::time::sleep_until(deadline) => break error_line(&id, codes::UPSTREAM_TIMEOUT, "Upstream timeout"),
                        // The client went away: dropping `flight` tells the upstream at once.
                        () = tx.closed() => {
                            session.end(&p);
                            return;
                        }
                    }
                };
                for event in session.finish(&mut p) {
                    if tx.send(sse_frame(&event)).await.is_err() {
                        return;
                    }
                }
                let _ = tx.send(sse_frame(&last)).await;
            });
            sse_response(rx)
        }
    }
}

enum First {
    Reply(Option<Bytes>),
    Event(Bytes),
    Timeout,
}

fn error_line(id: &RequestId, code: i32, message: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({"jsonrpc": "2.0", "id": id.to_value(), "error": {"code": code, "message": message}})
            .to_string(),
    )
}

/// `params._meta.progressToken` of a request, to route its progress notifications.
fn progress_token(message: &Value) -> Option<Value> {
    message
        .get("params")?
        .get("_meta")?
        .get("progressToken")
        .filter(|t| !t.is_null())
        .cloned()
}

/// The response line as the client gets it: list results filtered, everything else unchanged.
fn finish_reply(
    gw: &Gateway,
    x: &Exchange,
    session: &Arc<Session>,
    message: &Message,
    request: &Bytes,
    line: Bytes,
) -> Bytes {
    if message.method.as_deref() == Some("initialize") {
        note_initialize(session, message, request, &line);
        return line;
    }
    if message.operation == Operation::ListTasks {
        return own_tasks_only(gw, x, session, message, line);
    }
    if memchr::memmem::find(&line, b"\"taskId\"").is_some() {
        note_task(gw, x, &line);
    }
    let Operation::List(kind) = message.operation else {
        return line;
    };
    let Ok(mut reply) = serde_json::from_slice::<Value>(&line) else {
        return line;
    };
    let Some(result) = reply.get_mut("result") else {
        return line;
    };
    if kind == ListKind::Tools {
        session.learn_tools(result, !common::has_cursor(request));
    }
    let environment = x.environment();
    let empty = ProvidedAttributes::new();
    let ctx = Context::new(&environment, x.attributes.gathered().unwrap_or(&empty));
    let counts = x
        .rules
        .authorizer
        .filter_list(&x.caller.subject, kind, result, &ctx);
    if x.modern
        && let Some(r) = result.as_object_mut()
    {
        // Filtered for this principal: no cache may share it across authorization contexts.
        r.insert("cacheScope".into(), Value::from("private"));
    }
    let mut e = decision_event(x, session, message);
    e.event = "list";
    e.outcome = Some("allow");
    e.shown = Some(counts.shown);
    e.hidden = Some(counts.hidden);
    gw.audit.record(&e);
    Bytes::from(reply.to_string())
}

/// Binds a task the upstream created (`result.task.taskId`) to the principal that asked for it.
fn note_task(gw: &Gateway, x: &Exchange, line: &[u8]) {
    let Ok(reply) = serde_json::from_slice::<Value>(line) else {
        return;
    };
    if let Some(id) = reply.pointer("/result/task/taskId").and_then(Value::as_str) {
        gw.tasks.insert(id.to_owned(), x.caller.owner.clone());
    }
}

/// A `tasks/list` result with only the caller's own tasks.
fn own_tasks_only(
    gw: &Gateway,
    x: &Exchange,
    session: &Session,
    message: &Message,
    line: Bytes,
) -> Bytes {
    let Ok(mut reply) = serde_json::from_slice::<Value>(&line) else {
        return line;
    };
    let Some(tasks) = reply
        .pointer_mut("/result/tasks")
        .and_then(Value::as_array_mut)
    else {
        return line;
    };
    let before = tasks.len();
    tasks.retain(|t| {
        t.get("taskId")
            .and_then(Value::as_str)
            .and_then(|id| gw.tasks.get(id))
            .is_some_and(|owner| owner == x.caller.owner)
    });
    let mut e = decision_event(x, session, message);
    e.event = "list";
    e.outcome = Some("allow");
    e.shown = Some(tasks.len());
    e.hidden = Some(before - tasks.len());
    gw.audit.record(&e);
    Bytes::from(reply.to_string())
}

/// Remembers a successful `initialize` (its protocol revision, and the request to replay to a
/// replacement child).
fn note_initialize(session: &Session, message: &Message, request: &Bytes, line: &[u8]) {
    let Ok(reply) = serde_json::from_slice::<Value>(line) else {
        return;
    };
    let Some(result) = reply.get("result") else {
        return;
    };
    let protocol = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let (Some(id), Some(protocol)) = (message.id.clone(), protocol) {
        session.initialized_with(id, request.clone(), protocol);
    }
}

fn sse_frame(json: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(json.len() + 22);
    frame.extend_from_slice(b"event: message\ndata: ");
    frame.extend_from_slice(json);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

fn sse_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let body = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// A batch (2025-03-26): each element decided alone; denials become errors in the answer array.
async fn batch(
    gw: &Arc<Gateway>,
    x: &Exchange,
    session: &Arc<Session>,
    items: Vec<BatchItem>,
) -> Response {
    let link = match session.link(gw.config.server.request_timeout).await {
        Ok(l) => l,
        Err(_) => return upstream_failed(None, StatusCode::BAD_GATEWAY),
    };
    let mut answers: Vec<Bytes> = Vec::new();
    let mut waits = Vec::new();
    for item in items {
        let message = match item.message {
            Ok(m) => m,
            Err(e) => {
                answers.push(Bytes::from(e.to_response().to_string()));
                continue;
            }
        };
        let raw = Bytes::from(item.raw.into_string());
        // A denied notification or response gets no answer, as JSON-RPC has none for it.
        let denied_id = (message.kind == MessageKind::Request)
            .then(|| message.id.clone())
            .flatten();
        let (decision, permitted) = authorize(gw, x, session, message, raw).await;
        let Some(permitted) = permitted else {
            if let Some(id) = &denied_id {
                let (code, text) = denial_error(&x.rules, &decision);
                answers.push(error_line(id, code, &text));
            }
            continue;
        };
        if permitted.get().0.kind != MessageKind::Request {
            if forward_one_way(session, &link, permitted, &x.routing)
                .await
                .is_err()
            {
                return upstream_failed(None, StatusCode::BAD_GATEWAY);
            }
            continue;
        }
        let (message, bytes) = permitted.into_inner();
        let Some(id) = message.id.clone() else {
            continue;
        };
        match link.expect(id.clone()) {
            Ok(rx) => {
                if link.send(&bytes).await.is_err() {
                    answers.push(error_line(&id, codes::UPSTREAM_FAILED, "Upstream failed"));
                    continue;
                }
                waits.push((message, bytes, id, rx));
            }
            Err(_) => answers.push(error_line(
                &id,
                codes::INVALID_REQUEST,
                "Invalid Request: a request with this id is already in flight",
            )),
        }
    }
    let deadline = Instant::now() + gw.config.server.request_timeout;
    for (message, bytes, id, rx) in waits {
        let line = match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(line)) => finish_reply(gw, x, session, &message, &bytes, line),
            Ok(Err(_)) => error_line(&id, codes::UPSTREAM_FAILED, "Upstream failed"),
            Err(_) => {
                link.forget(&id);
                error_line(&id, codes::UPSTREAM_TIMEOUT, "Upstream timeout")
            }
        };
        answers.push(line);
    }
    if answers.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    let mut body = Vec::new();
    body.push(b'[');
    for (i, a) in answers.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(a);
    }
    body.push(b']');
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// What GET and DELETE check first: the caller, and that the revision has sessions at all.
fn session_request(
    gw: &Gateway,
    peer: Option<&ClientAddr>,
    headers: &HeaderMap,
) -> Result<Caller, Refusal> {
    let ip = client_ip(&gw.config.server, peer, headers);
    let caller = authenticate(gw, &gw.rules(), headers, ip)?;
    match stateless_method(headers) {
        Some(r) => Err(Box::new(r)),
        None => Ok(caller),
    }
}

/// GET: the session's stream of server-to-client messages; ends when the token expires or is
/// revoked, or the session closes.
pub async fn get(
    State(gw): State<Arc<Gateway>>,
    peer: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Response {
    let caller = match session_request(&gw, peer.as_deref(), &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let session = match session_of(&gw, &headers, &caller) {
        Ok(Some(s)) => s,
        Ok(None) => return session_required(),
        Err(r) => return *r,
    };
    let accepts_sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if !accepts_sse {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "Accept must include text/event-stream",
        )
            .into_response();
    }
    let mut messages = session.open_stream();
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let token = caller.token.clone();
    let store = gw.auth.store.clone();
    tokio::spawn(async move {
        // The anonymous caller's stream lasts as long as its session.
        let expires_in = token.as_ref().map_or(u64::MAX / 4, |t| {
            u64::try_from(t.exp.saturating_sub(now_unix())).unwrap_or(0)
        });
        let expiry = tokio::time::sleep(Duration::from_secs(expires_in));
        tokio::pin!(expiry);
        let every = Duration::from_secs(15);
        let mut recheck = tokio::time::interval_at(Instant::now() + every, every);
        loop {
            tokio::select! {
                m = messages.recv() => match m {
                    Some(m) => if tx.send(sse_frame(&m)).await.is_err() { break },
                    None => break,
                },
                () = &mut expiry => {
                    tracing::info!(session = %short(&session.id), "stream closed: its token expired");
                    break;
                }
                _ = recheck.tick() => {
                    let revoked = token
                        .as_ref()
                        .and_then(|t| t.jti())
                        .is_some_and(|j| store.is_revoked(j).unwrap_or(true));
                    if revoked {
                        tracing::info!(session = %short(&session.id), "stream closed: its token was revoked");
                        break;
                    }
                    // A comment line keeps proxies from closing an idle stream.
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() { break }
                }
            }
        }
    });
    sse_response(rx)
}

/// DELETE: ends the session and its upstream process.
pub async fn delete(
    State(gw): State<Arc<Gateway>>,
    peer: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Response {
    let caller = match session_request(&gw, peer.as_deref(), &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match session_of(&gw, &headers, &caller) {
        Ok(Some(s)) => {
            gw.close_session(&s.id);
            StatusCode::OK.into_response()
        }
        Ok(None) => session_required(),
        Err(r) => *r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_token_is_read_from_params_meta() {
        let token = |body: &str| progress_token(&serde_json::from_str(body).unwrap());
        assert_eq!(
            token(r#"{"id":1,"params":{"_meta":{"progressToken":"p1"}}}"#),
            Some(Value::from("p1"))
        );
        assert_eq!(
            token(r#"{"id":1,"params":{"_meta":{"progressToken":7}}}"#),
            Some(Value::from(7))
        );
        for none in [
            r#"{"id":1}"#,
            r#"{"id":1,"params":[{"_meta":{"progressToken":"p1"}}]}"#,
            r#"{"id":1,"params":{"_meta":"p1"}}"#,
            r#"{"id":1,"params":{"_meta":{"progressToken":null}}}"#,
            r#"{"id":1,"params":{"progressToken":"p1"}}"#,
        ] {
            assert_eq!(token(none), None, "{none}");
        }
    }
}
