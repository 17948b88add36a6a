//! The inner service's answers on their way out: list results filtered in JSON bodies and in
//! SSE streams, server-to-client requests noted, denied batch elements merged in.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use axum::body::Body;
use axum::http::{Response, StatusCode, header};
use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt as _;
use mcp_guard_core::{Context, ListKind, RequestId, ToolCatalog, codes};
use serde_json::Value;

use super::exchange::Caller;
use super::sessions::Session;
use super::{BoxError, Shared};
use crate::respond::json_rpc_error;
use crate::sse::{SseRewriter, frame};

/// The largest JSON answer or SSE event of the inner service that is read to be filtered.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// What filtering one exchange's answers needs.
pub(super) struct Filter {
    shared: Arc<Shared>,
    caller: Caller,
    session: Option<Arc<Session>>,
    /// The list requests of this exchange, by id.
    lists: HashMap<RequestId, ListKind>,
    /// Whether to filter any answer that looks like a list result (streams not opened by a
    /// list request of this exchange).
    sniff: bool,
}

impl Filter {
    pub(super) fn new(
        shared: Arc<Shared>,
        caller: Caller,
        session: Option<Arc<Session>>,
        lists: HashMap<RequestId, ListKind>,
    ) -> Self {
        Filter {
            shared,
            caller,
            session,
            lists,
            sniff: false,
        }
    }

    /// Also filters answers by their shape: a result holding a `tools`, `resources`,
    /// `resourceTemplates` or `prompts` array. Over-filtering a look-alike only hides items.
    pub(super) fn sniffing(mut self) -> Self {
        self.sniff = true;
        self
    }

    /// Filters one JSON-RPC message from the server; returns whether it changed.
    fn message(&self, v: &mut Value) -> bool {
        let id = v.get("id").and_then(RequestId::from_value);
        if v.get("method").is_some() {
            // A server-to-client request: the client's answer to it will be let through.
            if let (Some(s), Some(id)) = (&self.session, id) {
                s.server_asked(id);
            }
            return false;
        }
        let Some(id) = id else { return false };
        let kinds: Vec<ListKind> = match self.lists.get(&id) {
            Some(kind) => vec![*kind],
            None if self.sniff => v.get("result").map_or_else(Vec::new, |r| {
                [
                    ListKind::Tools,
                    ListKind::Resources,
                    ListKind::ResourceTemplates,
                    ListKind::Prompts,
                ]
                .into_iter()
                .filter(|k| r.get(k.result_key()).is_some_and(Value::is_array))
                .collect()
            }),
            None => Vec::new(),
        };
        let Some(result) = v.get_mut("result") else {
            return false;
        };
        let mut changed = false;
        for kind in kinds {
            self.filter_list(&id, kind, result);
            changed = true;
        }
        changed
    }

    /// Filters one list result and records the counts.
    fn filter_list(&self, id: &RequestId, kind: ListKind, result: &mut Value) {
        if kind == ListKind::Tools
            && let Some(s) = &self.session
        {
            s.learn_tools(ToolCatalog::from_list_result(result));
        }
        let environment = self.caller.environment();
        let ctx = Context::new(&environment, &self.caller.attributes);
        let counts = self
            .shared
            .authorizer
            .filter_list(&self.caller.subject, kind, result, &ctx);
        let mut e = self.caller.event("list", self.session.as_deref());
        e.outcome = Some("allow");
        e.method = Some(kind.method().to_owned());
        e.request_id = Some(id.to_json());
        e.shown = Some(counts.shown);
        e.hidden = Some(counts.hidden);
        self.shared.audit.record(&e);
    }

    /// Whether a message could need filtering or noting at all, judged cheaply from its bytes.
    fn may_need(&self, data: &[u8]) -> bool {
        // Only a prefilter for noting server requests: a request it misses (a key spelled with
        // escapes) is not noted, and the client's answer to it is refused, never let through.
        !self.lists.is_empty()
            || self.sniff
            || self.session.is_some() && memchr::memmem::find(data, b"\"method\"").is_some()
    }

    /// New JSON text for one SSE event's data or JSON body, or `None` to keep it as it is.
    fn rewrite(&self, data: &[u8], extra: &mut Vec<Value>) -> Option<Vec<u8>> {
        if extra.is_empty() && !self.may_need(data) {
            return None;
        }
        let mut v: Value = serde_json::from_slice(data).ok()?;
        let mut changed = match &mut v {
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |acc, item| self.message(item) | acc),
            other => self.message(other),
        };
        if !extra.is_empty() {
            let items = match v {
                Value::Array(items) => items,
                other => vec![other],
            };
            let mut items = items;
            items.append(extra);
            v = Value::Array(items);
            changed = true;
        }
        changed.then(|| v.to_string().into_bytes())
    }
}

/// The answer as the client gets it. `extra` holds answers to denied batch elements.
pub(super) async fn finish<ResB>(
    filter: Filter,
    response: Response<ResB>,
    mut extra: Vec<Value>,
) -> Response<Body>
where
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let (mut parts, body) = response.into_parts();
    if parts.status == StatusCode::ACCEPTED && !extra.is_empty() {
        parts.status = StatusCode::OK;
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        return Response::from_parts(parts, Body::from(Value::Array(extra).to_string()));
    }
    if !parts.status.is_success() {
        return Response::from_parts(parts, Body::new(body));
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("text/event-stream") {
        parts.headers.remove(header::CONTENT_LENGTH);
        let prefix: Vec<u8> = extra
            .drain(..)
            .flat_map(|v| frame(v.to_string().as_bytes()))
            .collect();
        let body = FilteredSse {
            inner: Body::new(body),
            rewriter: SseRewriter::new(MAX_ANSWER_BYTES),
            filter,
            prefix: (!prefix.is_empty()).then(|| Bytes::from(prefix)),
        };
        return Response::from_parts(parts, Body::new(body));
    }
    if !content_type.starts_with("application/json")
        || (filter.lists.is_empty() && !filter.sniff && extra.is_empty())
    {
        return Response::from_parts(parts, Body::new(body));
    }
    let bytes = match http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            // An answer that cannot be filtered is not passed on unfiltered.
            return json_rpc_error(
                StatusCode::BAD_GATEWAY,
                None,
                codes::UPSTREAM_FAILED,
                "Upstream failed: the answer could not be read",
            );
        }
    };
    let body = match filter.rewrite(&bytes, &mut extra) {
        Some(new) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Body::from(new)
        }
        None => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}

/// An SSE body whose events go through the filter as they arrive.
struct FilteredSse {
    inner: Body,
    rewriter: SseRewriter,
    filter: Filter,
    /// Events to send first (answers to denied batch elements).
    prefix: Option<Bytes>,
}

impl http_body::Body for FilteredSse {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Some(p) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        loop {
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                // The end: an unfinished last event is dropped, as a client would drop it.
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            let data = match frame.into_data() {
                Ok(d) => d,
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            };
            let filter = &this.filter;
            let mut none = Vec::new();
            match this
                .rewriter
                .feed(&data, &mut |event| filter.rewrite(event, &mut none))
            {
                Ok(out) if out.is_empty() => continue,
                Ok(out) => return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                Err(_) => {
                    // An event too large to filter is not passed on unfiltered: the stream ends.
                    tracing::warn!(
                        target: "mcp_guard::authz",
                        "SSE event too large to filter; stream closed"
                    );
                    return Poll::Ready(None);
                }
            }
        }
    }
}
