//! A streamable-HTTP upstream: each gateway session opens its own session there (the upstream's
//! `Mcp-Session-Id` stays inside the gateway), authenticated with the gateway's own credential
//! for it, never the client's token.
//!
//! Every message is POSTed as the permitted bytes. A JSON answer or each event of an SSE answer
//! goes through [`Link::dispatch`], as do the events of the standalone GET stream, opened once
//! the client has finished initializing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use mcp_guard_auth::sse::SseParser;
use mcp_guard_core::RequestId;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::task::AbortHandle;

use super::link::{Link, LinkError, OnServerMessage};
use crate::config::HttpUpstream;

const SESSION_HEADER: &str = "mcp-session-id";
const PROTOCOL_HEADER: &str = "mcp-protocol-version";
/// The largest SSE event or JSON body read from the upstream.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// What every session on one HTTP upstream shares.
pub struct HttpUpstreamClient {
    client: reqwest::Client,
    /// Parsed once: reqwest would parse a string again on every request.
    url: reqwest::Url,
    authorization: Option<HeaderValue>,
}

impl HttpUpstreamClient {
    /// A client for `spec`; its bearer token is read from the environment now.
    pub fn new(spec: &HttpUpstream) -> anyhow::Result<Self> {
        let authorization = match &spec.bearer_token_env {
            None => None,
            Some(var) => {
                let token = std::env::var(var).map_err(|_| {
                    anyhow::anyhow!("`upstream.bearer_token_env` names `{var}`, which is not set")
                })?;
                let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    anyhow::anyhow!("the token in `{var}` is not a valid header value")
                })?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        // No overall timeout: it would cut SSE streams. Requests are bounded by the gateway's
        // request timeout instead.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(HttpUpstreamClient {
            client,
            url: reqwest::Url::parse(&spec.url)
                .map_err(|e| anyhow::anyhow!("`upstream.url` `{}`: {e}", spec.url))?,
            authorization,
        })
    }

    fn request(
        &self,
        method: reqwest::Method,
        session: Option<&str>,
        protocol: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut r = self
            .client
            .request(method, self.url.clone())
            .header(ACCEPT, "application/json, text/event-stream");
        if let Some(a) = &self.authorization {
            r = r.header(AUTHORIZATION, a.clone());
        }
        if let Some(s) = session {
            r = r.header(SESSION_HEADER, s);
        }
        if let Some(p) = protocol {
            r = r.header(PROTOCOL_HEADER, p);
        }
        r
    }
}

/// One session on the upstream.
pub struct HttpConn {
    client: Arc<HttpUpstreamClient>,
    session: Mutex<Option<String>>,
    protocol: Mutex<Option<String>>,
    stream_opened: AtomicBool,
    tasks: Mutex<Vec<AbortHandle>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The method and id of an outgoing message, read without trusting anything else in it.
#[derive(Default, serde::Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    method: Option<std::borrow::Cow<'a, str>>,
    id: Option<Value>,
}

impl HttpConn {
    /// A link whose upstream session starts with the first message (`initialize`).
    pub fn open(client: Arc<HttpUpstreamClient>, on_message: OnServerMessage) -> Arc<Link> {
        Link::over_http(
            HttpConn {
                client,
                session: Mutex::new(None),
                protocol: Mutex::new(None),
                stream_opened: AtomicBool::new(false),
                tasks: Mutex::new(Vec::new()),
            },
            on_message,
        )
    }

    /// POSTs one message; returns once the upstream accepted it (its answer, if any, arrives
    /// through `link.dispatch`).
    pub(super) async fn post(
        &self,
        link: &Arc<Link>,
        body: Bytes,
        routing: &HeaderMap,
    ) -> Result<(), LinkError> {
        let probe: Probe<'_> = serde_json::from_slice(&body).unwrap_or_default();
        let id = probe.id.as_ref().and_then(RequestId::from_value);
        let is_initialize = probe.method.as_deref() == Some("initialize");
        let opens_stream = probe.method.as_deref() == Some("notifications/initialized");
        let session = lock(&self.session).clone();
        let protocol = lock(&self.protocol).clone();
        let mut request = self
            .client
            .request(
                reqwest::Method::POST,
                session.as_deref(),
                protocol.as_deref(),
            )
            .header(CONTENT_TYPE, "application/json");
        for (name, value) in routing {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("upstream request failed: {e}");
                if let Some(id) = &id {
                    link.fail(id);
                }
                return Err(LinkError::Dead);
            }
        };
        let status = response.status();
        if status == StatusCode::NOT_FOUND && session.is_some() {
            tracing::info!(
                "the upstream session ended (404); a new one starts with the next request"
            );
            link.close();
            return Err(LinkError::Dead);
        }
        if !status.is_success() {
            tracing::warn!(%status, "upstream refused a message");
            if let Some(id) = &id {
                link.fail(id);
            }
            return Err(LinkError::Dead);
        }
        if is_initialize
            && let Some(s) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
        {
            *lock(&self.session) = Some(s.to_owned());
        }
        if opens_stream {
            self.open_stream(link);
        }
        if status == StatusCode::ACCEPTED {
            return Ok(());
        }
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let reader = link.clone();
        let learned = Arc::new(Mutex::new(None::<String>));
        let learned_in_task = learned.clone();
        let task = tokio::spawn(async move {
            let mut deliver = |message: &[u8]| {
                if is_initialize {
                    note_protocol(&learned_in_task, message);
                }
                reader.dispatch(message);
            };
            if is_sse {
                read_events(response, &mut deliver).await;
            } else {
                match read_body(response).await {
                    Some(body) => deliver(&body),
                    None => tracing::warn!("upstream answer unreadable or too large"),
                }
            }
            // An answer stream that ended without the answer fails the request.
            if let Some(id) = &id {
                reader.fail(id);
            }
        });
        {
            // Finished readers are dropped here, or a busy session would keep every one.
            let mut tasks = lock(&self.tasks);
            tasks.retain(|t| !t.is_finished());
            tasks.push(task.abort_handle());
        }
        if is_initialize {
            // The negotiated revision goes on every later request: learn it before going on.
            let _ = task.await;
            *lock(&self.protocol) = lock(&learned).clone();
        }
        Ok(())
    }

    /// Opens the standalone GET stream for the upstream's own messages, once.
    fn open_stream(&self, link: &Arc<Link>) {
        if self.stream_opened.swap(true, Ordering::SeqCst) {
            return;
        }
        let client = self.client.clone();
        let session = lock(&self.session).clone();
        let protocol = lock(&self.protocol).clone();
        let reader = Arc::downgrade(link);
        let task = tokio::spawn(async move {
            let mut failures = 0u32;
            while failures < 5 {
                let Some(link) = reader.upgrade().filter(|l| l.is_alive()) else {
                    return;
                };
                drop(link);
                let response = client
                    .request(
                        reqwest::Method::GET,
                        session.as_deref(),
                        protocol.as_deref(),
                    )
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == StatusCode::METHOD_NOT_ALLOWED => return,
                    Ok(r) if r.status().is_success() => {
                        failures = 0;
                        read_events(r, |data| {
                            if let Some(link) = reader.upgrade() {
                                link.dispatch(data);
                            }
                        })
                        .await;
                    }
                    Ok(r) => {
                        tracing::debug!(status = %r.status(), "upstream GET stream refused");
                        failures += 1;
                    }
                    Err(e) => {
                        tracing::debug!("upstream GET stream failed: {e}");
                        failures += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(500 << failures.min(4))).await;
            }
        });
        lock(&self.tasks).push(task.abort_handle());
    }

    /// Ends the upstream session: stops reading and sends DELETE (best effort).
    pub(super) fn end(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        let Some(session) = lock(&self.session).take() else {
            return;
        };
        let request = self.client.request(
            reqwest::Method::DELETE,
            Some(&session),
            lock(&self.protocol).as_deref(),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = request.send().await;
            });
        }
    }
}

fn note_protocol(slot: &Mutex<Option<String>>, message: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(message) else {
        return;
    };
    if let Some(p) = v.pointer("/result/protocolVersion").and_then(Value::as_str) {
        *lock(slot) = Some(p.to_owned());
    }
}

async fn read_body(response: reqwest::Response) -> Option<Bytes> {
    let mut body = BytesMut::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.ok()?;
        if body.len() + chunk.len() > MAX_MESSAGE_BYTES {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body.freeze())
}

/// Reads an SSE body, handing each event's data to `on_event` (events without data, such as
/// priming events, are skipped). Stops at the end of the body or an oversized event.
async fn read_events(response: reqwest::Response, mut on_event: impl FnMut(&[u8])) {
    let mut parser = SseParser::new(MAX_MESSAGE_BYTES);
    let mut chunks = response.bytes_stream();
    while let Some(Ok(chunk)) = chunks.next().await {
        if parser.feed(&chunk, &mut on_event).is_err() {
            tracing::warn!("upstream SSE event too large; stream dropped");
            return;
        }
    }
}
