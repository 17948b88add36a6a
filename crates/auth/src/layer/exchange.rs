//! One HTTP request through the layer: authenticate, check the session, classify and authorize
//! every message, forward what is permitted, and hand the answer to the filter.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use mcp_guard_core::{
    Classified, ClassifyOptions, Context, Decision, Environment, ListKind, Message, MessageKind,
    Operation, Permitted, Principal, ProvidedAttributes, Reason, RequestId, SessionFacts, Subject,
    classify, codes,
};
use serde_json::Value;

use super::filter::{Filter, finish};
use super::sessions::{Owner, Session};
use super::{BoxError, Shared};
use crate::Fingerprint;
use crate::attributes::Asker;
use crate::audit::AuditEvent;
use crate::endpoints::ClientAddr;
use crate::respond::{self, json_rpc_error};
use crate::token::{AuthnError, bearer_token};

/// The `Mcp-Session-Id` header.
pub(super) const SESSION_HEADER: &str = "mcp-session-id";

/// An authenticated caller.
pub(super) struct Caller {
    pub(super) subject: Subject,
    pub(super) owner: Owner,
    pub(super) credential: Fingerprint,
    pub(super) ip: Option<IpAddr>,
    pub(super) user_agent: Option<String>,
    /// What the attribute providers said about the principal.
    pub(super) attributes: ProvidedAttributes,
}

impl Caller {
    pub(super) fn environment(&self) -> Environment {
        Environment {
            now_unix: Some(now_unix()),
            client_ip: self.ip.map(|i| i.to_string()),
            user_agent: self.user_agent.clone(),
        }
    }

    /// An audit event about this caller.
    pub(super) fn event(&self, name: &'static str, session: Option<&Session>) -> AuditEvent {
        let p = self.subject.principal();
        let mut e = AuditEvent::now(name);
        e.issuer = p.issuer.clone();
        e.subject = Some(p.subject.clone());
        e.client_id = p.client_id.clone();
        e.auth_method = Some(p.auth_method.as_str());
        e.credential = Some(self.credential.as_str().to_owned());
        e.session = session.map(|s| s.short.clone());
        e.client_ip = self.ip.map(|i| i.to_string());
        e
    }
}

fn now_unix() -> i64 {
    crate::audit::now_millis().div_euclid(1000)
}

/// Runs one request through the layer.
pub(super) async fn handle<S, B, ResB>(
    shared: Arc<Shared>,
    mut inner: S,
    request: Request<B>,
) -> Result<Response<Body>, S::Error>
where
    S: tower_service::Service<Request<Body>, Response = Response<ResB>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    let ip = client_ip(&parts.extensions);
    let (mut caller, token, exp) =
        match authenticate(&shared, &parts.headers, parts.uri.query(), ip) {
            Ok(c) => c,
            Err(r) => return Ok(*r),
        };
    if !shared.providers.is_empty() {
        // The token goes along for a userinfo provider, which sends it only to its own issuer.
        let asker = Asker::new(caller.subject.principal()).with_bearer(token, exp);
        caller.attributes = shared
            .providers
            .gather(asker, shared.attribute_timeout)
            .await;
    }
    let session_id = parts
        .headers
        .get(SESSION_HEADER)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let session = match &session_id {
        None => None,
        Some(id) => match shared.sessions.get(id) {
            Some(s) if s.owner == caller.owner => Some(s),
            found => {
                let mut e = caller.event("session_refused", found.as_deref());
                e.outcome = Some("deny");
                e.reason = Some(match found {
                    Some(_) => "the session belongs to another principal".into(),
                    None => "unknown session".into(),
                });
                shared.audit.record(&e);
                return Ok(session_not_found());
            }
        },
    };
    // The server gets the verified principal, not the credential: a handler cannot pass the
    // client's token on to another service (the MCP spec forbids token passthrough), and the
    // inner service's logs cannot show it.
    parts.headers.remove(header::AUTHORIZATION);
    parts
        .extensions
        .insert::<Principal>(caller.subject.principal().clone());
    if parts.method != Method::POST {
        // Streamable HTTP has only POST, GET and DELETE, and only POST carries messages: any
        // other method, or a body on GET or DELETE, would reach the server unauthorized.
        if parts.method != Method::GET && parts.method != Method::DELETE {
            return Ok(Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header(header::ALLOW, "GET, POST, DELETE")
                .body(Body::empty())
                .unwrap_or_default());
        }
        drop(body);
        parts.headers.remove(header::CONTENT_LENGTH);
        let deleting = parts.method == Method::DELETE;
        let request = Request::from_parts(parts, Body::empty());
        let response = inner.call(request).await?;
        if deleting
            && response.status().is_success()
            && let Some(id) = &session_id
        {
            shared.sessions.remove(id);
        }
        // A GET stream carries the server's own messages and, when resumed, replays of earlier
        // answers, list results among them: those are recognized by their shape.
        let filter = Filter::new(shared, caller, session, HashMap::new()).sniffing();
        return Ok(finish(filter, response, Vec::new()).await);
    }
    let bytes = match http_body_util::Limited::new(body, shared.max_body_bytes)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(json_rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                codes::INVALID_REQUEST,
                "Request body too large",
            ));
        }
        Err(_) => {
            return Ok(json_rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                codes::PARSE_ERROR,
                "Parse error: the request body could not be read",
            ));
        }
    };
    let options = ClassifyOptions {
        allow_batch: true,
        max_batch: shared.max_batch,
    };
    let mut lists: HashMap<RequestId, ListKind> = HashMap::new();
    match classify(&bytes, options) {
        Classified::Single(Err(e)) => Ok(json_rpc_error(
            StatusCode::BAD_REQUEST,
            e.id.as_ref().map(RequestId::to_value),
            e.code,
            &e.message,
        )),
        Classified::Single(Ok(message)) => {
            let id = message.id.clone();
            let (decision, permitted) =
                authorize(&shared, &caller, session.as_deref(), message, bytes);
            let Some(permitted) = permitted else {
                return Ok(denied(&shared, &decision, id));
            };
            let (message, bytes) = permitted.into_inner();
            note_forwarded(&message, session.as_deref(), &mut lists);
            parts.extensions.insert::<Decision>(decision);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            let request = Request::from_parts(parts, Body::from(bytes));
            let response = inner.call(request).await?;
            let session = bind(&shared, &caller, session, session_id.is_some(), &response);
            let filter = Filter::new(shared, caller, session, lists);
            Ok(finish(filter, response, Vec::new()).await)
        }
        Classified::Batch(items) => {
            let mut answers: Vec<Value> = Vec::new();
            let mut forward: Vec<Bytes> = Vec::new();
            for item in items {
                let message = match item.message {
                    Ok(m) => m,
                    Err(e) => {
                        answers.push(e.to_response());
                        continue;
                    }
                };
                // A denied notification or response gets no answer: JSON-RPC has none for it.
                let denied_id = (message.kind == MessageKind::Request)
                    .then(|| message.id.clone())
                    .flatten();
                let raw = Bytes::from(item.raw.into_string());
                let (decision, permitted) =
                    authorize(&shared, &caller, session.as_deref(), message, raw);
                match permitted {
                    Some(p) => {
                        let (message, raw) = p.into_inner();
                        note_forwarded(&message, session.as_deref(), &mut lists);
                        forward.push(raw);
                    }
                    None => {
                        if let Some(id) = denied_id {
                            let (code, text) = respond::denial_error(&decision, shared.hide_denied);
                            answers.push(serde_json::json!({"jsonrpc": "2.0", "id": id.to_value(),
                                "error": {"code": code, "message": text}}));
                        }
                    }
                }
            }
            if forward.is_empty() {
                return Ok(batch_answer(answers));
            }
            let mut body = Vec::with_capacity(bytes.len());
            body.push(b'[');
            for (i, raw) in forward.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(raw);
            }
            body.push(b']');
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            let request = Request::from_parts(parts, Body::from(body));
            let response = inner.call(request).await?;
            let session = bind(&shared, &caller, session, session_id.is_some(), &response);
            let filter = Filter::new(shared, caller, session, lists);
            Ok(finish(filter, response, answers).await)
        }
    }
}

/// The client's address: an `axum` `ConnectInfo<SocketAddr>` or a [`ClientAddr`] extension.
fn client_ip(ext: &axum::http::Extensions) -> Option<IpAddr> {
    ext.get::<ClientAddr>().map(|a| a.0).or_else(|| {
        ext.get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
    })
}

/// Authenticates the bearer token; the error is the finished 401 or 503 response.
/// The caller, with the bearer token it was verified from and that token's `exp`.
fn authenticate<'h>(
    shared: &Shared,
    headers: &'h HeaderMap,
    query: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<(Caller, &'h str, i64), Box<Response<Body>>> {
    let fail = |credential: Option<&Fingerprint>, reason: &str| {
        let mut e = AuditEvent::now("authn_failed");
        e.outcome = Some("fail");
        e.credential = credential.map(|c| c.as_str().to_owned());
        e.reason = Some(reason.to_owned());
        e.client_ip = ip.map(|i| i.to_string());
        shared.audit.record(&e);
        tracing::info!(target: "mcp_guard::authn", reason, "authentication failed");
    };
    let unauthorized =
        |error| respond::unauthorized(&shared.resource_metadata, error, &shared.challenge_scope);
    // A token in the URL leaks into logs and histories: it is never read, and saying so in the
    // audit log helps whoever configured the client.
    if query.is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token"))
    {
        fail(None, "a token in the query string is not accepted");
    }
    let values = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .map(HeaderValue::as_bytes);
    let token = match bearer_token(values) {
        Ok(Some(t)) => t,
        Ok(None) => return Err(Box::new(unauthorized(None))),
        Err(e) => {
            fail(None, &e.to_string());
            return Err(Box::new(unauthorized(Some("invalid_token"))));
        }
    };
    let (credential, verified) = shared
        .authenticator
        .authenticate_fingerprinted(token, now_unix());
    match verified {
        Ok(verified) => {
            let principal = verified.principal.clone();
            let caller = Caller {
                // Gathered after authentication, once per request (see `handle`).
                attributes: ProvidedAttributes::new(),
                owner: Owner::of(&principal),
                subject: shared.authorizer.resolve(principal),
                credential,
                ip,
                user_agent: headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            };
            Ok((caller, token, verified.exp))
        }
        Err(AuthnError::Token(e)) => {
            fail(Some(&credential), &e.to_string());
            Err(Box::new(unauthorized(Some("invalid_token"))))
        }
        Err(e) => {
            tracing::error!(target: "mcp_guard::authn", error = %e, "cannot check the token");
            Err(Box::new(respond::unavailable(
                "the state store is unreachable",
            )))
        }
    }
}

/// Decides one message and records the decision.
fn authorize(
    shared: &Shared,
    caller: &Caller,
    session: Option<&Session>,
    message: Message,
    bytes: Bytes,
) -> (Decision, Option<Permitted<(Message, Bytes)>>) {
    let environment = caller.environment();
    let catalog = match &message.operation {
        Operation::CallTool { .. } if shared.authorizer.needs_tool_catalog() => {
            session.and_then(Session::tools)
        }
        _ => None,
    };
    let facts = SessionFacts {
        // The layer does not see who created a task: unknown, which the core denies.
        task_owned: None,
        response_outstanding: match (message.kind, &message.id) {
            (MessageKind::Response, Some(id)) => {
                Some(session.is_some_and(|s| s.is_outstanding(id)))
            }
            (MessageKind::Response, None) => Some(false),
            _ => None,
        },
    };
    let mut ctx = Context::new(&environment, &caller.attributes).with_session(facts);
    if let Some(c) = &catalog {
        ctx = ctx.with_tools(c);
    }
    let mut e = caller.event("decision", session);
    e.method = message.method.clone().or_else(|| Some("(response)".into()));
    e.target = target_of(&message.operation);
    e.request_id = message.id.as_ref().map(RequestId::to_json);
    let (decision, permitted) =
        shared
            .authorizer
            .permit_with(&caller.subject, message, bytes.clone(), &ctx);
    // A list request is recorded once its answer is filtered, with the counts.
    if !matches!(decision.reason, Reason::ListFiltered) {
        e.outcome = Some(decision.verdict.as_str());
        e.permission = decision.permission.as_ref().map(ToString::to_string);
        e.reason = Some(decision.explain());
        e.reason_kind = Some(decision.reason.kind());
        if !decision.is_allow() {
            // Denials are rare: the full explanation (unknown attributes too) is worth a second
            // parse of the message, which the authorizer consumed.
            if let Classified::Single(Ok(m)) = classify(&bytes, ClassifyOptions::default()) {
                let full = shared
                    .authorizer
                    .explain(&caller.subject, &m.operation, &ctx);
                let mut reason = full.explain();
                for (i, u) in full.unknown.iter().enumerate() {
                    reason.push_str(if i == 0 { "; unknown: " } else { ", " });
                    reason.push_str(&format!("`{}` ({})", u.path, u.reason));
                }
                e.reason = Some(reason);
                e.unknown = full.unknown.iter().map(Into::into).collect();
            }
        }
        shared.audit.record(&e);
    }
    if !decision.is_allow() {
        let who = caller.subject.principal().display_id();
        tracing::info!(
            target: "mcp_guard::authz",
            principal = %who,
            method = e.method.as_deref().unwrap_or_default(),
            reason = decision.reason.kind(),
            "Request denied"
        );
    }
    (decision, permitted)
}

/// Remembers what the answer to a forwarded message needs: its list kind, or that it answered
/// a server request.
fn note_forwarded(
    message: &Message,
    session: Option<&Session>,
    lists: &mut HashMap<RequestId, ListKind>,
) {
    let Some(id) = &message.id else { return };
    match (message.kind, &message.operation) {
        (MessageKind::Response, _) => {
            if let Some(s) = session {
                s.answered(id);
            }
        }
        (MessageKind::Request, Operation::List(kind)) => {
            lists.insert(id.clone(), *kind);
        }
        _ => {}
    }
}

/// The session of the answer: the request's, or the one the inner service just opened, bound
/// to the caller.
fn bind<ResB>(
    shared: &Shared,
    caller: &Caller,
    session: Option<Arc<Session>>,
    had_id: bool,
    response: &Response<ResB>,
) -> Option<Arc<Session>> {
    if had_id || session.is_some() {
        return session;
    }
    let id = response.headers().get(SESSION_HEADER)?.to_str().ok()?;
    let bound = shared.sessions.bind(id, caller.owner.clone());
    if bound.is_none() {
        tracing::warn!(
            target: "mcp_guard::authz",
            "the inner service reused another principal's session id"
        );
    }
    bound
}

/// The answer to a denied single message (DESIGN.md section 8).
fn denied(shared: &Shared, decision: &Decision, id: Option<RequestId>) -> Response<Body> {
    let scopes = respond::granting_scopes(&shared.authorizer, decision);
    respond::denied(
        &shared.resource_metadata,
        decision,
        shared.hide_denied,
        id.as_ref().map(RequestId::to_value),
        &scopes,
    )
}

/// A batch answered without the inner service: the errors, or 202 when there are none.
fn batch_answer(answers: Vec<Value>) -> Response<Body> {
    if answers.is_empty() {
        return Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(Value::Array(answers).to_string()))
        .unwrap_or_default()
}

fn session_not_found() -> Response<Body> {
    json_rpc_error(
        StatusCode::NOT_FOUND,
        None,
        codes::INVALID_REQUEST,
        "Session not found",
    )
}

fn target_of(op: &Operation) -> Option<String> {
    match op {
        Operation::CallTool { name, .. } | Operation::GetPrompt { name, .. } => {
            Some(name.to_string())
        }
        Operation::ReadResource { uri, .. } => Some(uri.to_string()),
        Operation::Task { task_id, .. } => Some(task_id.to_string()),
        _ => None,
    }
}
