//! A streamable-HTTP upstream: each gateway session opens its own session there (the upstream's
//! `Mcp-Session-Id` stays inside the gateway), authenticated with the gateway's own credential
//! for it, never the client's token.
//!
//! Every message is POSTed as the permitted bytes. A JSON answer or each event of an SSE answer
//! goes through [`Link::dispatch`], as do the events of the standalone GET stream, opened once
//! the client has finished initializing.
//!
//! The client is hyper's pooled HTTP/1.1 client with rustls, not reqwest: reqwest parsed the URL
//! twice for every request and ran redirect and retry layers, a sixth of the instructions a
//! proxied request took (docs/PERFORMANCE.md, run 7).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mcp_guard_auth::sse::SseParser;
use mcp_guard_core::RequestId;
use rustls_platform_verifier::BuilderVerifierExt as _;
use serde_json::Value;
use tokio::task::AbortHandle;

use super::link::{Link, LinkError, OnServerMessage, Outgoing};
use crate::config::HttpUpstream;

const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
const PROTOCOL_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// The largest SSE event or JSON body read from the upstream.
const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// How long an unused pooled connection to the upstream is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// The HTTP client for upstream servers: kept-alive pooled HTTP/1.1 connections with
/// `TCP_NODELAY`, TLS by rustls with the platform's trust roots for `https`. Proxy settings in
/// the environment are not used: the upstream is reached directly.
pub type UpstreamClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A new [`UpstreamClient`].
pub fn upstream_client() -> anyhow::Result<UpstreamClient> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(Duration::from_secs(10)));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(connector))
}

/// The upstream's MCP endpoint as a request target: an `http` or `https` URL.
pub fn upstream_uri(url: &str) -> anyhow::Result<Uri> {
    let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("`{url}`: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        anyhow::bail!("`{url}`: not an http or https URL");
    }
    parsed
        .as_str()
        .parse::<Uri>()
        .map_err(|e| anyhow::anyhow!("`{url}`: {e}"))
}

/// What every session on one HTTP upstream shares.
pub struct HttpUpstreamClient {
    client: UpstreamClient,
    uri: Uri,
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
        Ok(HttpUpstreamClient {
            client: upstream_client()?,
            uri: upstream_uri(&spec.url).map_err(|e| anyhow::anyhow!("`upstream.url` {e}"))?,
            authorization,
        })
    }

    fn request(
        &self,
        method: Method,
        session: Option<&HeaderValue>,
        protocol: Option<&HeaderValue>,
        body: Bytes,
    ) -> Request<Full<Bytes>> {
        let mut r = Request::new(Full::new(body));
        *r.method_mut() = method;
        *r.uri_mut() = self.uri.clone();
        let headers = r.headers_mut();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if let Some(a) = &self.authorization {
            headers.insert(AUTHORIZATION, a.clone());
        }
        if let Some(s) = session {
            headers.insert(SESSION_HEADER, s.clone());
        }
        if let Some(p) = protocol {
            headers.insert(PROTOCOL_HEADER, p.clone());
        }
        r
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(request).await
    }
}

/// One session on the upstream.
pub struct HttpConn {
    client: Arc<HttpUpstreamClient>,
    session: Mutex<Option<HeaderValue>>,
    protocol: Mutex<Option<HeaderValue>>,
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
        known: Option<Outgoing<'_>>,
    ) -> Result<(), LinkError> {
        let probe: Probe<'_>;
        let (method, id) = match known {
            Some(k) => (k.method, k.id.cloned()),
            None => {
                probe = serde_json::from_slice(&body).unwrap_or_default();
                (
                    probe.method.as_deref(),
                    probe.id.as_ref().and_then(RequestId::from_value),
                )
            }
        };
        let is_initialize = method == Some("initialize");
        let opens_stream = method == Some("notifications/initialized");
        let session = lock(&self.session).clone();
        let protocol = lock(&self.protocol).clone();
        let mut request =
            self.client
                .request(Method::POST, session.as_ref(), protocol.as_ref(), body);
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in routing {
            headers.append(name, value.clone());
        }
        let response = self.client.send(request).await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("upstream request failed: {}", with_causes(&e));
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
            *lock(&self.session) = HeaderValue::from_str(s).ok();
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
        let learned = Arc::new(Mutex::new(None::<HeaderValue>));
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
                let request = client.request(
                    Method::GET,
                    session.as_ref(),
                    protocol.as_ref(),
                    Bytes::new(),
                );
                let response = client.send(request).await;
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
                        tracing::debug!("upstream GET stream failed: {}", with_causes(&e));
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
            Method::DELETE,
            Some(&session),
            lock(&self.protocol).as_ref(),
            Bytes::new(),
        );
        let client = self.client.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = client.send(request).await;
            });
        }
    }
}

/// An error and its chain of causes, for the log: hyper's own text says only "client error
/// (Connect)", the cause says which (refused, a certificate not trusted, ...).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn note_protocol(slot: &Mutex<Option<HeaderValue>>, message: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(message) else {
        return;
    };
    // A revision that is not a valid header value is not sent rather than failing every request.
    if let Some(p) = v
        .pointer("/result/protocolVersion")
        .and_then(Value::as_str)
        .and_then(|p| HeaderValue::from_str(p).ok())
    {
        *lock(slot) = Some(p);
    }
}

/// The next chunk of a response body; `None` at its end or on an error.
async fn next_chunk(body: &mut Incoming) -> Option<Bytes> {
    loop {
        match body.frame().await? {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(data);
                }
                // Trailers: skip.
            }
            Err(e) => {
                tracing::debug!("upstream body failed: {e}");
                return None;
            }
        }
    }
}

/// The whole body, or `None` when it fails midway or passes [`MAX_MESSAGE_BYTES`].
async fn read_body(response: Response<Incoming>) -> Option<Bytes> {
    let limited = http_body_util::Limited::new(response.into_body(), MAX_MESSAGE_BYTES);
    // A body that arrives as one chunk is kept without a copy.
    limited.collect().await.ok().map(|c| c.to_bytes())
}

/// Reads an SSE body, handing each event's data to `on_event` (events without data, such as
/// priming events, are skipped). Stops at the end of the body or an oversized event.
async fn read_events(response: Response<Incoming>, mut on_event: impl FnMut(&[u8])) {
    let mut parser = SseParser::new(MAX_MESSAGE_BYTES);
    let mut body = response.into_body();
    while let Some(chunk) = next_chunk(&mut body).await {
        if parser.feed(&chunk, &mut on_event).is_err() {
            tracing::warn!("upstream SSE event too large; stream dropped");
            return;
        }
    }
}
