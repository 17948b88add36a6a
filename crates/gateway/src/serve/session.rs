//! One MCP session behind the gateway: its upstream child, the routes of server-to-client
//! messages, the requests the server is waiting on, and the upstream's tool annotations.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mcp_guard_core::{RequestId, ToolCatalog};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use axum::http::{HeaderMap, HeaderValue};

use super::link::{Connector, Link, LinkError, Outgoing, ServerMessage};
use super::routing::{META_VERSION, MODERN};

/// Capacity of one response stream's channel.
const STREAM_CHANNEL: usize = 64;
/// The most pages of `tools/list` the gateway reads for itself.
const MAX_CATALOG_PAGES: usize = 20;

/// A live session.
pub struct Session {
    /// The gateway-minted `Mcp-Session-Id`.
    pub id: Arc<str>,
    upstream: Arc<Connector>,
    /// A stateless (2026-07-28) pool member rather than a client's session.
    modern: bool,
    link: Mutex<Option<Arc<Link>>>,
    respawn: tokio::sync::Mutex<()>,
    init: Mutex<Option<(RequestId, Bytes)>>,
    initialized: AtomicBool,
    protocol: Mutex<Option<String>>,
    tools: Mutex<Option<Arc<ToolCatalog>>>,
    routes: Mutex<Routes>,
    outstanding: Mutex<HashSet<RequestId>>,
    closed: AtomicBool,
    seq: AtomicU64,
    /// Server messages dropped because no stream took them and the queue was full.
    pub overflowed: AtomicU64,
}

struct Routes {
    waiters: Vec<Waiter>,
    get: Option<mpsc::Sender<Bytes>>,
    queue: VecDeque<Bytes>,
    capacity: usize,
}

impl Routes {
    /// Hands a message to the standalone stream, else queues it for the next one; gives it back
    /// when the queue is full.
    fn standalone(&mut self, mut message: Bytes) -> Result<(), Bytes> {
        if let Some(get) = &self.get {
            match get.try_send(message) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b)) => {
                    message = b;
                }
            }
        }
        if self.queue.len() < self.capacity {
            self.queue.push_back(message);
            return Ok(());
        }
        Err(message)
    }
}

struct Waiter {
    key: u64,
    progress: Option<Value>,
    tx: mpsc::Sender<Bytes>,
}

/// A request waiting for its response; the server's own messages meanwhile arrive on `events`.
pub struct Pending {
    /// The response line.
    pub reply: oneshot::Receiver<Bytes>,
    /// Server-to-client messages routed to this request's stream.
    pub events: mpsc::Receiver<Bytes>,
    key: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session {
    /// A session whose child starts on first use.
    pub fn new(
        id: Arc<str>,
        upstream: Arc<Connector>,
        modern: bool,
        queue_capacity: usize,
    ) -> Arc<Self> {
        Arc::new(Session {
            id,
            upstream,
            modern,
            link: Mutex::new(None),
            respawn: tokio::sync::Mutex::new(()),
            init: Mutex::new(None),
            initialized: AtomicBool::new(false),
            protocol: Mutex::new(None),
            tools: Mutex::new(None),
            routes: Mutex::new(Routes {
                waiters: Vec::new(),
                get: None,
                queue: VecDeque::new(),
                capacity: queue_capacity,
            }),
            outstanding: Mutex::new(HashSet::new()),
            closed: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
        })
    }

    /// The negotiated protocol revision, once `initialize` has been answered.
    pub fn protocol(&self) -> Option<String> {
        lock(&self.protocol).clone()
    }

    /// Records a successful `initialize`: replayed to a replacement child if this one dies.
    pub fn initialized_with(&self, id: RequestId, request: Bytes, protocol: String) {
        *lock(&self.init) = Some((id, request));
        *lock(&self.protocol) = Some(protocol);
    }

    /// Records that the client sent `notifications/initialized`.
    pub fn mark_initialized(&self) {
        self.initialized.store(true, Ordering::SeqCst);
    }

    /// Whether the session was closed (deleted, evicted, expired).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The running child, started (and re-initialized) when there is none.
    pub async fn link(self: &Arc<Self>, timeout: Duration) -> Result<Arc<Link>, LinkError> {
        if let Some(l) = lock(&self.link).as_ref().filter(|l| l.is_alive()) {
            return Ok(l.clone());
        }
        let _one_at_a_time = self.respawn.lock().await;
        if let Some(l) = lock(&self.link).as_ref().filter(|l| l.is_alive()) {
            return Ok(l.clone());
        }
        if self.is_closed() {
            return Err(LinkError::Dead);
        }
        let weak = Arc::downgrade(self);
        let link = self
            .upstream
            .connect(Box::new(move |m| {
                if let Some(s) = weak.upgrade() {
                    s.on_server_message(m);
                }
            }))
            .map_err(|e| {
                tracing::error!("cannot start the upstream: {e}");
                LinkError::Dead
            })?;
        let replay = lock(&self.init).clone();
        if let Some((id, request)) = replay {
            tracing::info!(session = %short(&self.id), "replaying initialize to a new upstream process");
            super::metrics::upstream_restart();
            let rx = link.expect(id)?;
            link.send(&request).await?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(_)) => {}
                _ => {
                    link.kill();
                    return Err(LinkError::Dead);
                }
            }
            if self.initialized.load(Ordering::SeqCst) {
                link.send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
                    .await?;
            }
        }
        *lock(&self.link) = Some(link.clone());
        Ok(link)
    }

    /// Registers a request that waits for `id`'s response and takes server messages meanwhile.
    pub fn begin(
        &self,
        link: &Link,
        id: RequestId,
        progress: Option<Value>,
    ) -> Result<Pending, LinkError> {
        let reply = link.expect(id)?;
        let (tx, events) = mpsc::channel(STREAM_CHANNEL);
        let key = self.seq.fetch_add(1, Ordering::Relaxed);
        lock(&self.routes)
            .waiters
            .push(Waiter { key, progress, tx });
        Ok(Pending { reply, events, key })
    }

    /// Ends a request's claim on server messages.
    pub fn end(&self, pending: &Pending) {
        lock(&self.routes).waiters.retain(|w| w.key != pending.key);
    }

    /// Ends a request's claim on server messages once its answer is in, and gives back those
    /// routed to it that it has not read.
    ///
    /// An HTTP upstream may send a message during a request on its standalone stream and the
    /// answer on the request's own: the message can then reach the gateway just after the
    /// answer, while the request is still the newest, and be routed to it. Routing and this
    /// happen under one lock, so nothing reaches the request after it, and nothing routed
    /// before it is lost.
    pub fn finish(&self, pending: &mut Pending) -> Vec<Bytes> {
        self.end(pending);
        let mut unread = Vec::new();
        while let Ok(message) = pending.events.try_recv() {
            unread.push(message);
        }
        unread
    }

    /// Hands a server message that no request stream will carry to the standalone stream, or
    /// queues it for the next one.
    pub fn to_standalone(&self, message: Bytes) {
        let mut routes = lock(&self.routes);
        if let Err(message) = routes.standalone(message) {
            drop(routes);
            let value: Value = serde_json::from_slice(&message).unwrap_or_default();
            let method = value.get("method").and_then(Value::as_str).unwrap_or("");
            self.dropped(method, value.get("id").and_then(RequestId::from_value));
        }
    }

    /// Opens the standalone (GET) stream: queued messages first. A newer stream replaces an
    /// older one, which then ends.
    pub fn open_stream(&self) -> mpsc::Receiver<Bytes> {
        let mut routes = lock(&self.routes);
        let (tx, rx) = mpsc::channel(routes.capacity.max(STREAM_CHANNEL));
        while let Some(m) = routes.queue.pop_front() {
            if let Err(mpsc::error::TrySendError::Full(m)) = tx.try_send(m) {
                routes.queue.push_front(m);
                break;
            }
        }
        routes.get = Some(tx);
        rx
    }

    /// Whether the client may answer `id`: the server asked it and is still waiting. Taking the
    /// answer removes it, so a second answer is refused.
    pub fn take_outstanding(&self, id: &RequestId) -> bool {
        lock(&self.outstanding).remove(id)
    }

    /// Whether the server is waiting on the client for `id`.
    pub fn is_outstanding(&self, id: &RequestId) -> bool {
        lock(&self.outstanding).contains(id)
    }

    /// The upstream's tool annotations: from the last `tools/list`, else asked for now.
    pub async fn tools(self: &Arc<Self>, timeout: Duration) -> Option<Arc<ToolCatalog>> {
        if let Some(t) = lock(&self.tools).clone() {
            return Some(t);
        }
        let link = self.link(timeout).await.ok()?;
        let next_id = || {
            RequestId::String(format!(
                "mcp-guard-{}",
                self.seq.fetch_add(1, Ordering::Relaxed)
            ))
        };
        let catalog = fetch_catalog(&link, next_id, self.modern, timeout).await?;
        let catalog = Arc::new(catalog);
        *lock(&self.tools) = Some(catalog.clone());
        Some(catalog)
    }

    /// Learns annotations from a `tools/list` result the client asked for (before filtering).
    pub fn learn_tools(&self, result: &Value, first_page: bool) {
        learn_tools(&self.tools, result, first_page);
    }

    fn on_server_message(&self, m: ServerMessage) {
        let method = m.value.get("method").and_then(Value::as_str).unwrap_or("");
        if method == "notifications/tools/list_changed" {
            *lock(&self.tools) = None;
        }
        let request_id = m.value.get("id").and_then(RequestId::from_value);
        if let Some(id) = &request_id {
            lock(&self.outstanding).insert(id.clone());
        }
        let progress = (method == "notifications/progress")
            .then(|| m.value.pointer("/params/progressToken"))
            .flatten();
        let mut routes = lock(&self.routes);
        routes.waiters.retain(|w| !w.tx.is_closed());
        // A progress notification goes to the request that asked for it; anything else to the
        // newest request stream, where the request that caused it most likely waits.
        let mut order: Vec<usize> = (0..routes.waiters.len()).rev().collect();
        if let Some(token) = progress
            && let Some(i) = routes
                .waiters
                .iter()
                .position(|w| w.progress.as_ref() == Some(token))
        {
            order.retain(|&j| j != i);
            order.insert(0, i);
        }
        let mut message = m.raw;
        for i in order {
            match routes.waiters[i].tx.try_send(message) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b)) => {
                    message = b;
                }
            }
        }
        if routes.standalone(message).is_ok() {
            return;
        }
        drop(routes);
        self.dropped(method, request_id);
    }

    /// Counts and logs a server message dropped for a full queue; a dropped server request is
    /// answered with an error, so the server does not wait for it.
    fn dropped(&self, method: &str, request_id: Option<RequestId>) {
        self.overflowed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(session = %short(&self.id), method, "server message dropped: the session's queue is full");
        if let Some(id) = request_id {
            lock(&self.outstanding).remove(&id);
            let link = lock(&self.link).clone();
            if let Some(link) = link {
                let answer = json!({"jsonrpc": "2.0", "id": id.to_value(), "error": {
                    "code": mcp_guard_core::codes::RATE_LIMITED,
                    "message": "the client's message queue is full",
                }});
                tokio::spawn(async move {
                    let _ = link.send(answer.to_string().as_bytes()).await;
                });
            }
        }
    }

    /// Ends the standalone stream, if one is open.
    pub fn end_stream(&self) {
        lock(&self.routes).get = None;
    }

    /// Ends the session: kills its child, ends its streams. Returns whether a live upstream
    /// connection was ended (its child is reaped shortly after).
    pub fn close(&self) -> bool {
        self.closed.store(true, Ordering::SeqCst);
        let mut ended = false;
        if let Some(link) = lock(&self.link).take() {
            ended = link.is_alive();
            link.kill();
        }
        let mut routes = lock(&self.routes);
        routes.get = None;
        routes.waiters.clear();
        routes.queue.clear();
        ended
    }
}

/// Reads the upstream's whole tool catalog (up to [`MAX_CATALOG_PAGES`] pages of `tools/list`)
/// for annotation groups; `next_id` names each request. `None` when the upstream does not answer.
pub(crate) async fn fetch_catalog(
    link: &Arc<Link>,
    mut next_id: impl FnMut() -> RequestId,
    modern: bool,
    timeout: Duration,
) -> Option<ToolCatalog> {
    let mut catalog = ToolCatalog::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_CATALOG_PAGES {
        let id = next_id();
        let mut params = match &cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        let mut routing = HeaderMap::new();
        if modern {
            params["_meta"] = json!({
                META_VERSION: MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            });
            routing.insert("mcp-protocol-version", HeaderValue::from_static(MODERN));
            routing.insert("mcp-method", HeaderValue::from_static("tools/list"));
        }
        let request = json!({"jsonrpc": "2.0", "id": id.to_value(), "method": "tools/list", "params": params});
        let rx = link.expect(id.clone()).ok()?;
        let known = Outgoing {
            method: Some("tools/list"),
            id: Some(&id),
        };
        link.send_routed(request.to_string().as_bytes(), &routing, Some(known))
            .await
            .ok()?;
        let Ok(Ok(reply)) = tokio::time::timeout(timeout, rx).await else {
            link.forget(&id);
            return None;
        };
        let reply: Value = serde_json::from_slice(&reply).ok()?;
        let result = reply.get("result")?;
        merge(&mut catalog, result);
        cursor = result
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    Some(catalog)
}

/// Updates a cached catalog from one `tools/list` page: the first page starts it anew.
pub(crate) fn learn_tools(
    tools: &Mutex<Option<Arc<ToolCatalog>>>,
    result: &Value,
    first_page: bool,
) {
    let mut tools = lock(tools);
    let mut catalog = match (&*tools, first_page) {
        (Some(t), false) => (**t).clone(),
        _ => ToolCatalog::new(),
    };
    merge(&mut catalog, result);
    *tools = Some(Arc::new(catalog));
}

fn merge(catalog: &mut ToolCatalog, result: &Value) {
    let page = ToolCatalog::from_list_result(result);
    for name in page.names() {
        if let Some(a) = page.get(name) {
            catalog.insert(name, a.clone());
        }
    }
}

/// The first characters of a session id, enough to correlate log lines.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::super::upstream_http::{HttpConn, HttpUpstreamClient};
    use super::*;
    use crate::config::HttpUpstream;

    /// A session and a link to an HTTP upstream that is never contacted: nothing here sends.
    fn session(queue: usize) -> (Arc<Session>, Arc<Link>) {
        let spec = HttpUpstream {
            url: "http://127.0.0.1:9/mcp".into(),
            bearer_token_env: None,
        };
        let client = Arc::new(HttpUpstreamClient::new(&spec).unwrap());
        let connector = Arc::new(Connector::Http(client.clone()));
        let session = Session::new("test-session".into(), connector, false, queue);
        (session, HttpConn::open(client, Box::new(|_| {})))
    }

    fn log(text: &str) -> ServerMessage {
        let value = json!({"jsonrpc": "2.0", "method": "notifications/message",
            "params": {"level": "info", "data": text}});
        ServerMessage {
            raw: Bytes::from(value.to_string()),
            value,
        }
    }

    #[tokio::test]
    async fn a_message_routed_to_a_request_it_no_longer_reads_is_given_back() {
        let (session, link) = session(8);
        let mut pending = session.begin(&link, RequestId::Number(1), None).unwrap();
        // The request's answer is in; a log message of the call arrives just after it (an
        // HTTP upstream's standalone stream racing its answer stream) and is routed to it.
        session.on_server_message(log("third"));
        let unread = session.finish(&mut pending);
        assert_eq!(unread, vec![log("third").raw]);

        // Once finished, the request takes nothing more: the next message waits for the
        // standalone stream instead, and is the first thing a new one carries.
        session.on_server_message(log("after"));
        assert!(pending.events.try_recv().is_err());
        let mut stream = session.open_stream();
        assert_eq!(stream.try_recv().unwrap(), log("after").raw);
        assert!(stream.try_recv().is_err());
        assert_eq!(session.overflowed.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn messages_handed_to_the_standalone_stream_are_queued_then_counted_when_full() {
        let (session, _link) = session(1);
        session.to_standalone(log("kept").raw);
        session.to_standalone(log("no room").raw);
        assert_eq!(session.overflowed.load(Ordering::Relaxed), 1);
        let mut stream = session.open_stream();
        assert_eq!(stream.try_recv().unwrap(), log("kept").raw);
        assert!(stream.try_recv().is_err());
        // With a stream open, a message goes straight to it.
        session.to_standalone(log("live").raw);
        assert_eq!(stream.try_recv().unwrap(), log("live").raw);
    }
}
