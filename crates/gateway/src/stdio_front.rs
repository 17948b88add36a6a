//! `mcp-guard stdio`: the stdio front (DESIGN.md sections 1, 8, 9).
//!
//! A local MCP client starts mcp-guard as its stdio server; mcp-guard starts the real server as a
//! child and stands between them. Guarantees:
//! - Standard output carries only JSON-RPC messages, one per line; logs go to standard error and
//!   audit lines to the configured audit file (never standard output).
//! - Every client line is classified by the core's strict parse and authorized before anything is
//!   written to the child; a line holding invalid JSON, two JSON values or a batch is answered
//!   with an error and never reaches the child. An allowed message is written as exactly one line.
//! - The principal comes from the environment (`MCP_GUARD_TOKEN`, verified like a bearer token
//!   and again before every message) or from the configured local identity; with neither, nothing
//!   starts.
//! - The child gets only the configured environment, never the guard's secrets, runs in its own
//!   process group, and that group is killed when the client goes away or the guard stops.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use mcp_guard_auth::Fingerprint;
use mcp_guard_auth::attributes::Asker;
use mcp_guard_auth::audit::AuditSink;
use mcp_guard_auth::token::{AuthnError, TokenAuthenticator};
use mcp_guard_core::{
    AuthMethod, Authorizer, Classified, ClassifyOptions, Context, Environment, ListKind, Message,
    MessageKind, Operation, Principal, ProvidedAttributes, Reason, RequestId, SessionFacts,
    Subject, ToolCatalog, classify, codes,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::config::{AuditPath, Config, DenyMode, LOCAL_ISSUER, TOKEN_ENV};
use crate::serve::link::{Connector, Link, LinkError, ServerMessage, read_line};
use crate::serve::session::{fetch_catalog, learn_tools};
use crate::serve::{attributes, common};
use crate::tokens::{self, event, now_unix};

/// Why `mcp-guard stdio` did not start, or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StdioError {
    /// Neither `MCP_GUARD_TOKEN` nor `[stdio] identity`.
    #[error(
        "no principal: set `{TOKEN_ENV}` to an access token, or configure a local identity in \
         `{0}`: `[stdio]` `identity = {{ subject = \"me\", roles = [\"user\"] }}`"
    )]
    NoPrincipal(String),
    /// `MCP_GUARD_TOKEN` is set but does not verify (expired, revoked, wrong key or audience).
    #[error("the token in `{TOKEN_ENV}` is not valid: {0}")]
    InvalidToken(String),
    /// The configuration cannot serve the stdio front.
    #[error("{0}")]
    Config(String),
    /// Something failed at run time (the child cannot start, the store is unreachable).
    #[error("{0}")]
    Runtime(String),
    /// The MCP server exited before the client closed its input.
    #[error("the MCP server exited")]
    ChildExited,
}

/// How the principal proved who it is.
enum Credential {
    /// A token from the environment, checked again before every message.
    Token {
        token: String,
        /// Its `exp`, for a userinfo provider's cache.
        exp: i64,
        authn: TokenAuthenticator,
    },
    /// The configured local identity.
    Local,
}

/// What the writer task writes to standard output.
enum Out {
    /// One JSON-RPC message.
    Line(Bytes),
    /// Everything before this is written: stop.
    Stop,
}

/// What the stdin reader hands to the main loop.
enum In {
    Line(Vec<u8>),
    /// A line longer than [`crate::serve::link::MAX_LINE_BYTES`], already skipped.
    TooLong,
}

/// Why the main loop ended.
enum End {
    ClientClosed,
    ChildExited,
    Signal,
}

/// The state of one stdio session.
struct Front {
    authorizer: Authorizer,
    /// The attribute providers the policies read (none for RBAC).
    attributes: crate::config::AttributeSettings,
    deny_mode: DenyMode,
    audit: Arc<dyn AuditSink>,
    subject: Subject,
    credential: Credential,
    /// The credential's fingerprint for audit lines (none for the local identity).
    fingerprint: Option<Fingerprint>,
    /// A random id for this run, to correlate its audit lines.
    session: String,
    timeout: Duration,
    out: mpsc::Sender<Out>,
    link: OnceLock<Weak<Link>>,
    /// Requests the server sent and the client has not answered yet.
    outstanding: Mutex<HashSet<RequestId>>,
    /// The upstream's tool annotations, for annotation groups.
    tools: Mutex<Option<Arc<ToolCatalog>>>,
    /// Tasks created in this session (all the principal's own).
    tasks: Mutex<HashSet<String>>,
    seq: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the stdio front until the client closes its input, the child exits, or a signal stops
/// it. `command` is the MCP server's program and arguments.
pub fn run(config: Config, command: &[String]) -> Result<(), StdioError> {
    let Some((program, args)) = command.split_first() else {
        return Err(StdioError::Config("no MCP server command given".into()));
    };
    let audit = match &config.audit.path {
        AuditPath::Stdout => {
            return Err(StdioError::Config(format!(
                "{}: `audit.path` is `stdout`, which carries the MCP messages of `mcp-guard stdio`; \
                 write the audit log to a file",
                config.source
            )));
        }
        _ => tokens::open_audit(&config).map_err(|e| StdioError::Config(format!("{e:#}")))?,
    };
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let (credential, principal, fingerprint) = principal(&config, &*audit)?;
    let subject = config.authorizer.resolve(principal);
    let session = mcp_guard_auth::token::issue::random_id()
        .map(|id| id.chars().take(8).collect::<String>())
        .map_err(|e| StdioError::Runtime(format!("no randomness for a session id: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StdioError::Runtime(format!("cannot start the async runtime: {e}")))?;
    let spec = config.stdio.child(program, args);
    let (out, out_rx) = mpsc::channel(config.session.queue_capacity.max(16));
    let front = Arc::new(Front {
        authorizer: config.authorizer.clone(),
        attributes: config.attributes.clone(),
        deny_mode: config.deny_mode,
        audit,
        subject,
        credential,
        fingerprint,
        session,
        timeout: config.server.request_timeout,
        out,
        link: OnceLock::new(),
        outstanding: Mutex::new(HashSet::new()),
        tools: Mutex::new(None),
        tasks: Mutex::new(HashSet::new()),
        seq: AtomicU64::new(0),
    });
    let grace = config.server.shutdown_grace;
    let result = runtime.block_on(serve(front, spec, out_rx, grace));
    // A thread may still be blocked reading standard input: do not wait for it.
    runtime.shutdown_background();
    result
}

/// The principal from `MCP_GUARD_TOKEN`, else the configured local identity.
fn principal(
    config: &Config,
    audit: &dyn AuditSink,
) -> Result<(Credential, Principal, Option<Fingerprint>), StdioError> {
    let Some(raw) = std::env::var_os(TOKEN_ENV) else {
        let Some(identity) = &config.stdio.identity else {
            return Err(StdioError::NoPrincipal(config.source.clone()));
        };
        let mut p = Principal::new(
            Some(LOCAL_ISSUER.into()),
            identity.subject.clone(),
            AuthMethod::Environment,
        );
        p.roles.clone_from(&identity.roles);
        return Ok((Credential::Local, p, None));
    };
    // A token that is present but unusable fails: it never falls back to the local identity.
    let token = raw
        .into_string()
        .map_err(|_| StdioError::InvalidToken("not UTF-8".into()))?
        .trim()
        .to_owned();
    if token.is_empty() {
        return Err(StdioError::InvalidToken("the variable is empty".into()));
    }
    let store = tokens::open_store(config).map_err(|e| StdioError::Runtime(format!("{e:#}")))?;
    let verifier = tokens::open_verifier(config, &*store)
        .map_err(|e| StdioError::Config(format!("cannot verify tokens: {e:#}")))?;
    let authn = TokenAuthenticator::new(verifier, store, 16);
    let (fingerprint, verified) = authn.authenticate_fingerprinted(&token, now_unix());
    let verified = match verified {
        Ok(v) => v,
        Err(AuthnError::Token(e)) => {
            authn_failed(audit, &fingerprint, &e.to_string());
            return Err(StdioError::InvalidToken(e.to_string()));
        }
        Err(e) => {
            return Err(StdioError::Runtime(format!("cannot check the token: {e}")));
        }
    };
    let principal = verified.principal.clone();
    let exp = verified.exp;
    Ok((
        Credential::Token { token, exp, authn },
        principal,
        Some(fingerprint),
    ))
}

fn authn_failed(audit: &dyn AuditSink, credential: &Fingerprint, reason: &str) {
    let mut e = event("authn_failed");
    e.outcome = Some("fail");
    e.auth_method = Some(AuthMethod::Environment.as_str());
    e.credential = Some(credential.as_str().to_owned());
    e.reason = Some(reason.to_owned());
    audit.record(&e);
}

async fn serve(
    front: Arc<Front>,
    spec: crate::config::StdioUpstream,
    out_rx: mpsc::Receiver<Out>,
    grace: Duration,
) -> Result<(), StdioError> {
    use tokio::signal::unix::{SignalKind, signal};
    // Watched before the child starts, so no signal can end the guard and leave the child.
    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    let (Ok(mut term), Ok(mut int)) = signals else {
        return Err(StdioError::Runtime(
            "cannot watch SIGTERM and SIGINT".into(),
        ));
    };
    let writer = tokio::spawn(write_lines(out_rx));
    let children = Arc::new(AtomicUsize::new(0));
    let program = spec.command.clone();
    let connector = Connector::Stdio(Box::new(spec), children.clone());
    let weak = Arc::downgrade(&front);
    let link = connector
        .connect(Box::new(move |m| {
            if let Some(f) = weak.upgrade() {
                f.on_server_message(m);
            }
        }))
        .map_err(|e| StdioError::Runtime(format!("cannot start `{program}`: {e}")))?;
    let _ = front.link.set(Arc::downgrade(&link));
    let p = front.subject.principal();
    tracing::info!(
        principal.id = %p.display_id(),
        auth.method = p.auth_method.as_str(),
        session = %front.session,
        "mcp-guard stdio: serving"
    );

    let mut input = spawn_reader();
    let mut pending: JoinSet<()> = JoinSet::new();
    let mut check = tokio::time::interval(Duration::from_millis(100));
    let end = loop {
        tokio::select! {
            line = input.recv() => match line {
                Some(In::Line(line)) => front.handle(&link, line, &mut pending).await,
                Some(In::TooLong) => {
                    front.write(common::error_line(None, codes::INVALID_REQUEST,
                        "Invalid Request: message longer than the limit")).await;
                }
                None => break End::ClientClosed,
            },
            _ = check.tick() => if !link.is_alive() { break End::ChildExited },
            Some(_) = pending.join_next(), if !pending.is_empty() => {}
            _ = term.recv() => break End::Signal,
            _ = int.recv() => break End::Signal,
        }
    };
    if !matches!(end, End::Signal) {
        // Answers to requests already sent still reach the client, within the grace period (when
        // the child is gone they are -31502 errors, at once).
        let drain = async { while pending.join_next().await.is_some() {} };
        tokio::select! {
            () = drain => {}
            () = tokio::time::sleep(grace) => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    pending.abort_all();
    link.kill();
    drop(link);
    // The watcher reaps the child and counts it down.
    for _ in 0..250 {
        if children.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = front.out.send(Out::Stop).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    match end {
        End::ClientClosed => {
            tracing::info!("client closed its input: stopped");
            Ok(())
        }
        End::Signal => {
            tracing::info!("signal received: stopped");
            Ok(())
        }
        End::ChildExited => Err(StdioError::ChildExited),
    }
}

/// Reads standard input on its own task, one bounded line at a time, so the main loop can wait
/// for it and for other events without losing a half-read line.
fn spawn_reader() -> mpsc::Receiver<In> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut input = BufReader::new(tokio::io::stdin());
        let mut line = Vec::new();
        loop {
            let item = match read_line(&mut input, &mut line).await {
                Ok(true) => In::Line(std::mem::take(&mut line)),
                Ok(false) => break,
                Err(_) => {
                    // Over the limit (or unreadable): drop the rest of the line and go on.
                    if skip_line(&mut input).await.is_err() {
                        break;
                    }
                    In::TooLong
                }
            };
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// Discards input up to and including the next `\n`.
async fn skip_line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<()> {
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        match memchr::memchr(b'\n', chunk) {
            Some(i) => {
                r.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = chunk.len();
                r.consume(n);
            }
        }
    }
}

/// Writes each message as exactly one line; raw CR and LF (only ever whitespace between the
/// tokens of a valid JSON value) are dropped, so no message spans two lines.
async fn write_lines(mut rx: mpsc::Receiver<Out>) {
    let mut stdout = tokio::io::stdout();
    while let Some(Out::Line(line)) = rx.recv().await {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend(line.iter().copied().filter(|b| *b != b'\n' && *b != b'\r'));
        buf.push(b'\n');
        if stdout.write_all(&buf).await.is_err() || stdout.flush().await.is_err() {
            tracing::warn!("standard output is closed: the client is gone");
            break;
        }
    }
}

// ===== impl Front =====

impl Front {
    async fn write(&self, line: impl Into<Bytes>) {
        let _ = self.out.send(Out::Line(line.into())).await;
    }

    /// Decides one client line and forwards it when permitted.
    async fn handle(self: &Arc<Self>, link: &Arc<Link>, line: Vec<u8>, pending: &mut JoinSet<()>) {
        if line.trim_ascii().is_empty() {
            return;
        }
        let options = ClassifyOptions {
            allow_batch: false,
            max_batch: 1,
        };
        let message = match classify(&line, options) {
            Classified::Single(Ok(m)) => m,
            Classified::Single(Err(e)) => {
                tracing::debug!(code = e.code, "client message refused: {}", e.message);
                return self.write(e.to_response().to_string()).await;
            }
            // Refused by the options above; kept total all the same.
            Classified::Batch(_) => {
                let text = "Invalid Request: batches are not supported over stdio";
                return self
                    .write(common::error_line(None, codes::INVALID_REQUEST, text))
                    .await;
            }
        };
        let is_request = message.kind == MessageKind::Request;
        let request_id = message.id.clone();
        if let Err((code, text)) = self.still_valid() {
            if is_request {
                self.write(common::error_line(request_id.as_ref(), code, text))
                    .await;
            }
            return;
        }
        let catalog = match &message.operation {
            Operation::CallTool { .. } if self.authorizer.needs_tool_catalog() => {
                self.tools(link).await
            }
            _ => None,
        };
        let facts = SessionFacts {
            // Only tasks created in this session are known; any other has an unknown owner,
            // which the core denies.
            task_owned: match &message.operation {
                Operation::Task { task_id, .. } => {
                    lock(&self.tasks).contains(&**task_id).then_some(true)
                }
                _ => None,
            },
            response_outstanding: match (message.kind, &message.id) {
                (MessageKind::Response, Some(id)) => Some(lock(&self.outstanding).contains(id)),
                (MessageKind::Response, None) => Some(false),
                _ => None,
            },
        };
        let environment = environment();
        let attributes = self.attributes_for(&message.operation).await;
        let mut ctx = Context::new(&environment, &attributes).with_session(facts);
        if let Some(c) = &catalog {
            ctx = ctx.with_tools(c);
        }
        let audit = self.event(&message);
        let explain_later = (!attributes.is_empty())
            .then(|| attributes::keep_for_audit(Some(&attributes), &message.operation))
            .flatten();
        let (mut decision, permitted) =
            self.authorizer
                .permit_with(&self.subject, message, Bytes::from(line), &ctx);
        if let Some(op) = &explain_later {
            attributes::note_unknown(&self.authorizer, &self.subject, op, &ctx, &mut decision);
        }
        if !matches!(decision.reason, Reason::ListFiltered) {
            common::record_decision(&*self.audit, audit, &decision);
        }
        let Some(permitted) = permitted else {
            if is_request {
                let (code, text) = mcp_guard_auth::respond::denial_error(
                    &decision,
                    self.deny_mode == DenyMode::Hide,
                );
                return self
                    .write(common::error_line(request_id.as_ref(), code, &text))
                    .await;
            }
            return;
        };
        let (message, bytes) = permitted.into_inner();
        match message.kind {
            MessageKind::Response => {
                if let Some(id) = &message.id {
                    lock(&self.outstanding).remove(id);
                }
                let _ = link.send(&bytes).await;
            }
            MessageKind::Notification => {
                let _ = link.send(&bytes).await;
            }
            MessageKind::Request => {
                let Some(id) = message.id.clone() else {
                    return;
                };
                let rx = match link.expect(id.clone()) {
                    Ok(rx) => rx,
                    Err(LinkError::InFlight) => {
                        let text = "Invalid Request: a request with this id is already in flight";
                        return self
                            .write(common::error_line(Some(&id), codes::INVALID_REQUEST, text))
                            .await;
                    }
                    Err(LinkError::Dead) => return self.write(upstream_failed(&id)).await,
                };
                if link.send(&bytes).await.is_err() {
                    link.forget(&id);
                    return self.write(upstream_failed(&id)).await;
                }
                let front = self.clone();
                let link = link.clone();
                pending.spawn(async move {
                    front.answer(link, message, bytes, id, rx, attributes).await;
                });
            }
        }
    }

    /// Checks the token again (cached; the cache never outlives `exp` and asks the store about
    /// revocation every 30 seconds). The error is the code and message to answer with.
    fn still_valid(&self) -> Result<(), (i32, &'static str)> {
        let Credential::Token { token, authn, .. } = &self.credential else {
            return Ok(());
        };
        match authn.authenticate(token, now_unix()) {
            Ok(_) => Ok(()),
            Err(AuthnError::Token(e)) => {
                if let Some(f) = &self.fingerprint {
                    authn_failed(&*self.audit, f, &e.to_string());
                }
                tracing::info!(target: "mcp_guard::authn", reason = e.kind(), "message refused: the token is no longer valid");
                Err((
                    codes::INVALID_REQUEST,
                    "Unauthorized: the token is no longer valid",
                ))
            }
            Err(e) => {
                tracing::error!("cannot check the token: {e}");
                Err((
                    codes::UNAVAILABLE,
                    "Service unavailable: the state store is unreachable",
                ))
            }
        }
    }

    /// The upstream's tool annotations: from the last `tools/list`, else asked for now.
    async fn tools(&self, link: &Arc<Link>) -> Option<Arc<ToolCatalog>> {
        if let Some(t) = lock(&self.tools).clone() {
            return Some(t);
        }
        let next_id = || {
            RequestId::String(format!(
                "mcp-guard-{}",
                self.seq.fetch_add(1, Ordering::Relaxed)
            ))
        };
        let catalog = Arc::new(fetch_catalog(link, next_id, false, self.timeout).await?);
        *lock(&self.tools) = Some(catalog.clone());
        Some(catalog)
    }

    fn event(&self, message: &Message) -> mcp_guard_auth::audit::AuditEvent {
        common::decision_event(
            self.subject.principal(),
            self.fingerprint.as_ref().map(Fingerprint::as_str),
            message,
            &self.session,
        )
    }

    /// Waits for the upstream's answer to one request and writes it, filtered.
    async fn answer(
        self: Arc<Self>,
        link: Arc<Link>,
        message: Message,
        request: Bytes,
        id: RequestId,
        reply: oneshot::Receiver<Bytes>,
        attributes: ProvidedAttributes,
    ) {
        let line = match tokio::time::timeout(self.timeout, reply).await {
            Ok(Ok(line)) => self.finish(&message, &request, line, &attributes),
            Ok(Err(_)) => upstream_failed(&id),
            Err(_) => {
                if link.forget(&id) {
                    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": id.to_value(), "reason": "timed out"}});
                    let _ = link.send(cancel.to_string().as_bytes()).await;
                }
                common::error_line(Some(&id), codes::UPSTREAM_TIMEOUT, "Upstream timeout").into()
            }
        };
        self.write(line).await;
    }

    /// The response as the client gets it: list results filtered, tasks noted, the rest as is.
    fn finish(
        &self,
        message: &Message,
        request: &[u8],
        line: Bytes,
        attributes: &ProvidedAttributes,
    ) -> Bytes {
        if message.operation == Operation::ListTasks {
            let tasks = lock(&self.tasks).clone();
            let Some((filtered, shown, hidden)) = common::own_tasks(&line, |t| tasks.contains(t))
            else {
                return line;
            };
            self.record_list(message, shown, hidden);
            return filtered.into();
        }
        if let Some(task) = common::created_task(&line) {
            lock(&self.tasks).insert(task);
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
            self.learn_tools(result, !common::has_cursor(request));
        }
        let environment = environment();
        let ctx = Context::new(&environment, attributes);
        let counts = self
            .authorizer
            .filter_list(&self.subject, kind, result, &ctx);
        self.record_list(message, counts.shown, counts.hidden);
        reply.to_string().into()
    }

    /// What the policies' attribute providers say of this principal, when a decision on `op`
    /// can read them (a failure is recorded as such and can only take access away).
    async fn attributes_for(&self, op: &Operation) -> ProvidedAttributes {
        if self.attributes.providers.is_empty() || !attributes::reads_attributes(op) {
            return ProvidedAttributes::new();
        }
        // The environment's token goes along for a userinfo provider (which sends it only to its
        // own issuer); the local identity has none.
        let asker = Asker::new(self.subject.principal());
        let asker = match &self.credential {
            Credential::Token { token, exp, .. } => asker.with_bearer(token, *exp),
            Credential::Local => asker,
        };
        self.attributes
            .providers
            .gather(asker, self.attributes.timeout)
            .await
    }

    fn record_list(&self, message: &Message, shown: usize, hidden: usize) {
        let mut e = self.event(message);
        e.event = "list";
        e.outcome = Some("allow");
        e.shown = Some(shown);
        e.hidden = Some(hidden);
        self.audit.record(&e);
    }

    /// Learns annotations from a `tools/list` result the client asked for (before filtering).
    fn learn_tools(&self, result: &Value, first_page: bool) {
        learn_tools(&self.tools, result, first_page);
    }

    /// A request or notification from the server: passed to the client. A request is noted, so
    /// that the client's answer to it (and only to it) is let through.
    fn on_server_message(&self, m: ServerMessage) {
        let method = m.value.get("method").and_then(Value::as_str).unwrap_or("");
        if method == "notifications/tools/list_changed" {
            *lock(&self.tools) = None;
        }
        let request_id = m.value.get("id").and_then(RequestId::from_value);
        if let Some(id) = &request_id {
            lock(&self.outstanding).insert(id.clone());
        }
        if self.out.try_send(Out::Line(m.raw)).is_ok() {
            return;
        }
        // The client does not read fast enough: never queue without bound.
        tracing::warn!(method, "server message dropped: the client's queue is full");
        let Some(id) = request_id else {
            return;
        };
        lock(&self.outstanding).remove(&id);
        if let Some(link) = self.link.get().and_then(Weak::upgrade) {
            let answer = json!({"jsonrpc": "2.0", "id": id.to_value(), "error": {
                "code": codes::RATE_LIMITED,
                "message": "the client's message queue is full",
            }});
            tokio::spawn(async move {
                let _ = link.send(answer.to_string().as_bytes()).await;
            });
        }
    }
}

fn environment() -> Environment {
    Environment {
        now_unix: Some(now_unix()),
        client_ip: None,
        user_agent: None,
    }
}

fn upstream_failed(id: &RequestId) -> Bytes {
    common::error_line(
        Some(id),
        codes::UPSTREAM_FAILED,
        "Upstream failed: the MCP server is not available",
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn skip_line_drops_the_rest_of_a_line_only() {
        let data: &[u8] = b"rest of a long line\n{\"next\":1}\n";
        let mut r = tokio::io::BufReader::with_capacity(4, data);
        skip_line(&mut r).await.unwrap();
        let mut line = Vec::new();
        assert!(read_line(&mut r, &mut line).await.unwrap());
        assert_eq!(line, b"{\"next\":1}");
        assert!(skip_line(&mut r).await.is_err(), "end of input");
    }
}
