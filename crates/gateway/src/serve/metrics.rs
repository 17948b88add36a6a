//! Prometheus metrics and health checks on their own listener (`[metrics] bind`), apart from the
//! MCP port so that it can stay private. Labels are bounded: MCP method names from a fixed list,
//! status codes, decision results and reason kinds, token error kinds; never a principal, an
//! address or a tool name.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use super::Gateway;
use crate::config::Upstream;

/// The methods that get their own label value; anything else is `other`.
const METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/result",
    "tasks/cancel",
    "tasks/list",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "(response)",
];

/// A bounded label for a JSON-RPC method.
pub fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once); without it every metric call is a no-op.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let latency = [
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets(&latency)
                .map_err(|e| tracing::error!("metrics buckets: {e}"))
                .ok()?;
            builder
                .install_recorder()
                .map_err(|e| tracing::error!("cannot install the metrics recorder: {e}"))
                .ok()
        })
        .as_ref()
}

/// Decision results, in the order of their slots.
const RESULTS: &[&str] = &["allow", "deny"];
/// Decision reason kinds (`Reason::kind`), in the order of their slots.
const REASONS: &[&str] = &[
    "granted",
    "authentication_only",
    "list_filtered",
    "no_grant",
    "denied_by_policy",
    "no_allow_policy",
    "task_not_owned",
    "task_owner_unknown",
    "unsolicited_response",
];
/// HTTP methods of the MCP endpoint, in the order of their slots.
const HTTP_METHODS: &[&str] = &["POST", "GET", "DELETE", "other"];
/// The statuses whose request counters get a slot; others are looked up each time.
const STATUSES: &[u16] = &[
    200, 202, 204, 400, 401, 403, 404, 405, 406, 409, 413, 415, 429, 500, 502, 503, 504,
];

/// Metric handles registered on first use and kept, so that a request does not build, hash and
/// look up a key for each metric it touches. Only used once the recorder is installed: a handle
/// taken before that would stay a no-op.
struct Slots<T, const N: usize>([OnceLock<T>; N]);

impl<T, const N: usize> Slots<T, N> {
    const fn new() -> Self {
        Slots([const { OnceLock::new() }; N])
    }

    /// Hands `update` the handle in slot `index`, registered there on first use; without a slot
    /// (no index, or no recorder yet), a handle registered for this call only.
    fn with(&self, index: Option<usize>, register: impl Fn() -> T, update: impl FnOnce(&T)) {
        let installed = matches!(HANDLE.get(), Some(Some(_)));
        match index.and_then(|i| self.0.get(i)).filter(|_| installed) {
            Some(slot) => update(slot.get_or_init(register)),
            None => update(&register()),
        }
    }
}

const DECISION_SLOTS: usize = (METHODS.len() + 1) * RESULTS.len() * REASONS.len();
static DECISIONS: Slots<Counter, DECISION_SLOTS> = Slots::new();
static REQUESTS: Slots<Counter, { HTTP_METHODS.len() * STATUSES.len() }> = Slots::new();
static DURATIONS: Slots<Histogram, { HTTP_METHODS.len() }> = Slots::new();
static AUTH_TIME: Slots<Histogram, 1> = Slots::new();
static UPSTREAM_TIME: Slots<Histogram, 1> = Slots::new();

fn position<T: PartialEq>(list: &[T], item: &T) -> Option<usize> {
    list.iter().position(|x| x == item)
}

/// The slot of a decision's counter: its bounded method label, result and reason kind.
fn decision_slot(method: &str, result: &str, reason: &str) -> Option<usize> {
    let m = position(METHODS, &method).or((method == "other").then_some(METHODS.len()))?;
    let r = position(RESULTS, &result)?;
    let k = position(REASONS, &reason)?;
    Some((m * RESULTS.len() + r) * REASONS.len() + k)
}

/// Counts one decision.
pub fn decision(method: &str, result: &'static str, reason: &'static str) {
    let method = method_label(method);
    let register = || {
        metrics::counter!(
            "mcp_guard_decisions_total",
            "method" => method,
            "result" => result,
            "reason" => reason,
        )
    };
    DECISIONS.with(decision_slot(method, result, reason), register, |c| {
        c.increment(1);
    });
}

/// Counts one failed authentication.
pub fn authn_failure(kind: &'static str) {
    metrics::counter!("mcp_guard_authn_failures_total", "kind" => kind).increment(1);
}

/// Times authentication.
pub fn auth_time(elapsed: Duration) {
    let register = || metrics::histogram!("mcp_guard_auth_duration_seconds");
    AUTH_TIME.with(Some(0), register, |h| h.record(elapsed.as_secs_f64()));
}

/// Times the upstream's answer to one request.
pub fn upstream_time(elapsed: Duration) {
    let register = || metrics::histogram!("mcp_guard_upstream_duration_seconds");
    UPSTREAM_TIME.with(Some(0), register, |h| h.record(elapsed.as_secs_f64()));
}

/// Counts an upstream failure: `failed` (gone, refused) or `timeout`.
pub fn upstream_error(kind: &'static str) {
    metrics::counter!("mcp_guard_upstream_errors_total", "kind" => kind).increment(1);
}

/// Counts a replacement upstream process or session.
pub fn upstream_restart() {
    metrics::counter!("mcp_guard_upstream_restarts_total").increment(1);
}

/// Counts every MCP endpoint request by HTTP method and status, and times it.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let m = match *request.method() {
        axum::http::Method::POST => 0,
        axum::http::Method::GET => 1,
        axum::http::Method::DELETE => 2,
        _ => 3,
    };
    let method = HTTP_METHODS[m];
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let count = || {
        let status = status.to_string();
        metrics::counter!("mcp_guard_http_requests_total", "method" => method, "status" => status)
    };
    let slot = position(STATUSES, &status).map(|s| m * STATUSES.len() + s);
    REQUESTS.with(slot, count, |c| c.increment(1));
    let time = || metrics::histogram!("mcp_guard_request_duration_seconds", "method" => method);
    let elapsed = started.elapsed().as_secs_f64();
    DURATIONS.with(Some(m), time, |h| h.record(elapsed));
    response
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `bind` until the process ends.
pub async fn serve(gw: Arc<Gateway>, bind: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind} for metrics: {e}"))?;
    tracing::info!(address = %listener.local_addr()?, "metrics and health listening");
    // Histograms keep raw samples until upkeep folds them; without scrapes that is unbounded.
    if let Some(handle) = install() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(gw);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the metrics listener failed: {e}");
        }
    });
    Ok(())
}

async fn render(State(gw): State<Arc<Gateway>>) -> Response {
    let Some(handle) = install() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    // Gauges and totals kept elsewhere are read at scrape time.
    metrics::gauge!("mcp_guard_sessions").set(gw.session_count() as f64);
    metrics::gauge!("mcp_guard_upstream_processes").set(gw.children() as f64);
    let (hits, misses) = gw.auth.authn.cache_counts();
    metrics::counter!("mcp_guard_token_cache_total", "result" => "hit").absolute(hits);
    metrics::counter!("mcp_guard_token_cache_total", "result" => "miss").absolute(misses);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// 200 when the store answers and the upstream can be reached, else 503 saying which failed.
async fn ready(State(gw): State<Arc<Gateway>>) -> Response {
    let store = gw.auth.store.is_revoked("readyz-probe").is_ok();
    let upstream = match &gw.config.upstream {
        Upstream::Stdio(s) => command_exists(&s.command),
        Upstream::Http(h) => reachable(&h.url).await,
    };
    let status = if store && upstream {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"store": store, "upstream": upstream})),
    )
        .into_response()
}

fn command_exists(command: &str) -> bool {
    let path = crate::config::resolve_command(command);
    if path.components().count() > 1 {
        return path.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(&path).is_file()))
}

async fn reachable(url: &str) -> bool {
    let Some(origin) = crate::config::origin_of(url) else {
        return false;
    };
    let authority = origin.split_once("://").map_or("", |(_, a)| a);
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else if origin.starts_with("https:") {
        format!("{authority}:443")
    } else {
        format!("{authority}:80")
    };
    tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(with_port),
    )
    .await
    .is_ok_and(|c| c.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_decision_label_set_has_its_own_slot() {
        let mut seen = std::collections::HashSet::new();
        for m in METHODS.iter().chain(&["other"]) {
            for r in RESULTS {
                for k in REASONS {
                    let slot = decision_slot(m, r, k).unwrap();
                    assert!(slot < DECISION_SLOTS);
                    assert!(seen.insert(slot), "{m} {r} {k} shares a slot");
                }
            }
        }
        assert_eq!(seen.len(), DECISION_SLOTS);
        // Anything else is counted through the registry, not a slot.
        assert_eq!(decision_slot("tools/call", "allow", "new_reason"), None);
        assert_eq!(decision_slot("tools/call", "maybe", "granted"), None);
        assert_eq!(decision_slot("tools/nope", "allow", "granted"), None);
    }

    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(method_label("tools/call/../../x"), "other");
        assert_eq!(method_label("alice@example.com"), "other");
    }
}
