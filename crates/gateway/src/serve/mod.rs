//! `mcp-guard serve`: the gateway (DESIGN.md sections 1, 2, 8, 9). Streamable HTTP in front,
//! plain or TLS; a stdio child per session behind; every request authenticated, every message
//! authorized, every list filtered, every decision audited.

pub(crate) mod attributes;
pub(crate) mod common;
mod front;
pub(crate) mod link;
mod mcp;
mod metrics;
mod routing;
pub(crate) mod session;
pub mod sessions;
pub(crate) mod upstream_http;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use mcp_guard_auth::audit::{AuditEvent, AuditSink};
use mcp_guard_auth::clients::ClientRegistry;
use mcp_guard_auth::endpoints::{self, AuthServer, ClientAddr, Throttle};
use mcp_guard_auth::token::issue::random_id;
use mcp_guard_core::Decision;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, Upstream};
use crate::tokens::{self, KeySource};
use link::Connector;
use session::Session;
use sessions::{Limits, Miss, Owner, SessionTable};
use upstream_http::HttpUpstreamClient;

pub use mcp::SUPPORTED_PROTOCOLS;

/// A finished error response, boxed because it is large and rare.
type Refusal = Box<axum::response::Response>;

/// The running gateway's shared state.
pub struct Gateway {
    /// The configuration it serves.
    pub config: Arc<Config>,
    /// Token endpoints, verifier and store.
    pub auth: Arc<AuthServer>,
    /// Audit events.
    pub audit: Arc<dyn AuditSink>,
    sessions: Mutex<SessionTable<Arc<Session>>>,
    /// Who created each task the upstream reported (bounded; entries live a day).
    tasks: moka::sync::Cache<String, Owner>,
    /// Each principal's stateless (2026-07-28) sessions, kept in `sessions` too.
    pools: Mutex<HashMap<Owner, Vec<Arc<str>>>>,
    pool_size: usize,
    children: Arc<AtomicUsize>,
    max_children: usize,
    upstream: Arc<Connector>,
    resource_metadata_url: String,
    /// What a reload replaces; each request works with the snapshot it started with.
    rules: ArcSwap<Rules>,
    /// The configuration file, when there is one (reloads read it again).
    source: Option<std::path::PathBuf>,
}

/// The reloadable part of the configuration.
pub struct Rules {
    /// Roles, groups, scopes, assignments, policies.
    pub authorizer: mcp_guard_core::Authorizer,
    /// Methods that need no credential.
    pub public_methods: Vec<String>,
    /// Forbid or hide.
    pub deny_mode: crate::config::DenyMode,
    /// The scopes of a 401 challenge.
    pub challenge_scope: String,
    /// The Protected Resource Metadata document.
    pub resource_metadata: Value,
    /// The attribute providers the policies read, with their caches.
    pub attributes: crate::config::AttributeSettings,
}

impl Rules {
    fn of(config: &Config, own_issuer: &str) -> Self {
        let server = &config.server;
        let mut authorization_servers = vec![if crate::config::origin_of(own_issuer).is_some() {
            own_issuer.to_owned()
        } else {
            server.base_url.clone()
        }];
        authorization_servers.extend(config.issuers.iter().map(|i| i.issuer.clone()));
        let scopes = config.authorizer.scope_names().to_vec();
        Rules {
            authorizer: config.authorizer.clone(),
            public_methods: config.public_methods.clone(),
            deny_mode: config.deny_mode,
            challenge_scope: scopes.join(" "),
            resource_metadata: json!({
                "resource": server.public_url,
                "authorization_servers": authorization_servers,
                "scopes_supported": scopes,
                "bearer_methods_supported": ["header"],
                "resource_name": "mcp-guard",
            }),
            attributes: config.attributes.clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Gateway {
    /// Opens the store, keys, clients and audit sink and prepares the routes' state.
    pub fn new(config: Config) -> anyhow::Result<Arc<Self>> {
        let audit = tokens::open_audit(&config)?;
        Self::with_audit(config, audit)
    }

    /// Like [`Gateway::new`], with audit events going to `audit`.
    pub fn with_audit(config: Config, audit: Arc<dyn AuditSink>) -> anyhow::Result<Arc<Self>> {
        let children = Arc::new(AtomicUsize::new(0));
        let (upstream, max_children, pool_size) = match &config.upstream {
            Upstream::Stdio(s) => (
                Connector::Stdio(s.clone(), children.clone()),
                s.max_children,
                s.pool_per_principal,
            ),
            // One upstream client serves concurrent requests: no pool needed.
            Upstream::Http(h) => (
                Connector::Http(Arc::new(HttpUpstreamClient::new(h)?)),
                usize::MAX,
                1,
            ),
        };
        let t = tokens::open(&config)?;
        let jwks = match &t.keys {
            KeySource::Store(ring) => ring.jwks(),
            KeySource::Config(k) => mcp_guard_auth::token::keys::jwks([&**k]),
        };
        let clients =
            ClientRegistry::new(config.clients.clone()).context("the configured clients")?;
        let issuer_url = t.issuer.issuer().to_owned();
        let auth = Arc::new(AuthServer {
            issuer: t.issuer,
            authn: t.authn,
            store: t.store,
            audit: audit.clone(),
            clients,
            jwks,
            base_url: config.server.base_url.clone(),
            clock: Arc::new(tokens::now_millis),
            throttle: Throttle::new(std::time::Duration::from_secs(60), 10, 100),
        });
        let server = &config.server;
        let path = if server.path == "/" {
            ""
        } else {
            server.path.as_str()
        };
        let resource_metadata_url = format!(
            "{}/.well-known/oauth-protected-resource{path}",
            server.base_url
        );
        let rules = Rules::of(&config, &issuer_url);
        let s = &config.session;
        let limits = Limits {
            idle: s.timeout,
            lifetime: s.max_lifetime,
            max_sessions: s.max_sessions,
            max_per_owner: s.max_per_principal,
        };
        Ok(Arc::new(Gateway {
            rules: ArcSwap::from_pointee(rules),
            source: config.path.clone(),
            config: Arc::new(config),
            auth,
            audit,
            sessions: Mutex::new(SessionTable::new(limits)),
            pools: Mutex::new(HashMap::new()),
            tasks: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(24 * 3_600))
                .build(),
            pool_size,
            children,
            max_children,
            upstream: Arc::new(upstream),
            resource_metadata_url,
        }))
    }

    /// The routes: MCP at the public URL's path, the protected resource metadata, the token
    /// endpoints.
    pub fn router(self: &Arc<Self>) -> Router {
        let server = &self.config.server;
        let path = if server.path == "/" {
            ""
        } else {
            server.path.as_str()
        };
        let mcp = Router::new()
            .route(
                &server.path,
                axum::routing::post(mcp::post)
                    .get(mcp::get)
                    .delete(mcp::delete),
            )
            .layer(DefaultBodyLimit::max(server.max_body_bytes))
            .layer(axum::middleware::from_fn(metrics::track))
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                server.max_concurrent_requests,
            ));
        let mut router = mcp.route(
            "/.well-known/oauth-protected-resource",
            get(front::resource_metadata),
        );
        if !path.is_empty() {
            router = router.route(
                &format!("/.well-known/oauth-protected-resource{path}"),
                get(front::resource_metadata),
            );
        }
        router
            .fallback(front::not_found)
            .with_state(self.clone())
            .merge(endpoints::router(self.auth.clone()))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                front::host_and_origin,
            ))
    }

    /// Opens a session for `owner`, closing what the caps evict.
    fn open_session(&self, owner: &Owner) -> Result<Arc<Session>, Refusal> {
        self.new_session(owner, false)
    }

    /// One of `owner`'s stateless sessions (children are never shared between principals):
    /// a new one until the pool is full, then each in turn.
    fn pool_session(&self, owner: &Owner) -> Result<Arc<Session>, Refusal> {
        let mut pools = lock(&self.pools);
        let ids = pools.entry(owner.clone()).or_default();
        if ids.len() >= self.pool_size {
            ids.rotate_left(1);
            let id = ids[ids.len() - 1].clone();
            if let Some(s) = self.find_session(&id, owner) {
                return Ok(s);
            }
            ids.retain(|i| *i != id);
        }
        let session = self.new_session(owner, true)?;
        ids.push(session.id.clone());
        Ok(session)
    }

    fn new_session(&self, owner: &Owner, modern: bool) -> Result<Arc<Session>, Refusal> {
        let id: Arc<str> = match random_id() {
            Ok(id) => id.into(),
            Err(_) => {
                return Err(Box::new(front::unavailable(
                    "no randomness for a session id",
                )));
            }
        };
        // Children are capped apart from sessions: make room by ending the least active. A
        // killed child is reaped a moment later, so count what is being freed rather than
        // waiting for the counter (which would evict everyone).
        let mut freeing = 0;
        while self.children.load(Ordering::SeqCst).saturating_sub(freeing) >= self.max_children {
            let evicted = lock(&self.sessions).evict_least_active();
            match evicted {
                Some(s) => {
                    tracing::info!(session = %session::short(&s.id), "session evicted: child process cap");
                    if s.close() {
                        freeing += 1;
                    }
                }
                None => break,
            }
        }
        let session = Session::new(
            id.clone(),
            self.upstream.clone(),
            modern,
            self.config.session.queue_capacity,
        );
        let evicted =
            lock(&self.sessions).insert(id, owner.clone(), session.clone(), Instant::now());
        for s in evicted {
            tracing::info!(session = %session::short(&s.id), "session evicted");
            s.close();
        }
        Ok(session)
    }

    /// The caller's live session `id`.
    fn find_session(&self, id: &str, owner: &Owner) -> Option<Arc<Session>> {
        let found = lock(&self.sessions).touch(id, owner, Instant::now());
        match found {
            Ok(s) => Some(s),
            Err(Miss::Expired(s)) => {
                s.close();
                None
            }
            Err(Miss::NotOwner) => {
                tracing::warn!(session = %session::short(id), "a session id was presented by a principal that does not own it");
                None
            }
            Err(Miss::Unknown) => None,
        }
    }

    /// Removes and closes a session.
    fn close_session(&self, id: &str) {
        let removed = lock(&self.sessions).remove(id);
        if let Some(s) = removed {
            let _ = s.close();
        }
    }

    /// Closes expired sessions and forgets pools with none left.
    fn sweep(&self) {
        let gone = lock(&self.sessions).sweep(Instant::now());
        for s in gone {
            s.close();
        }
        let mut pools = lock(&self.pools);
        let sessions = lock(&self.sessions);
        pools.retain(|_, ids| {
            ids.retain(|id| sessions.contains(id));
            !ids.is_empty()
        });
    }

    /// Ends every session's standalone stream (shutdown), leaving requests to finish.
    fn end_streams(&self) {
        let all: Vec<Arc<Session>> = lock(&self.sessions).values();
        for s in all {
            s.end_stream();
        }
    }

    /// Closes every session (shutdown).
    fn close_all(&self) {
        let all = lock(&self.sessions).drain();
        for s in all {
            let _ = s.close();
        }
    }

    /// The rules in force now.
    pub fn rules(&self) -> Arc<Rules> {
        self.rules.load_full()
    }

    /// Reads the configuration file again and, if it is valid, replaces roles, policies,
    /// groups, scopes, users, public methods, deny mode, trusted issuers and keys at once.
    /// Requests already running finish under the rules they started with. A file that fails
    /// validation changes nothing. Listener, TLS, upstream and session settings need a restart.
    pub fn reload(&self) -> Result<(), String> {
        let Some(path) = &self.source else {
            return Err("the built-in defaults cannot be reloaded".into());
        };
        let new = crate::config::load_file(path).map_err(|e| e.to_string())?;
        let old = &self.config;
        if new.server != old.server || new.upstream != old.upstream || new.session != old.session {
            tracing::warn!(
                "server, upstream and session settings changed: they take effect at the next start"
            );
        }
        let verifier =
            tokens::open_verifier(&new, self.auth.store.as_ref()).map_err(|e| format!("{e:#}"))?;
        let rules = Rules::of(&new, self.auth.issuer.issuer());
        self.auth.authn.replace_verifier(verifier);
        self.rules.store(Arc::new(rules));
        Ok(())
    }

    /// How many sessions are live (stateless pools included).
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// How many upstream child processes are alive.
    pub fn children(&self) -> usize {
        self.children.load(Ordering::SeqCst)
    }

    fn record_decision(&self, e: AuditEvent, d: &Decision) {
        common::record_decision(&*self.audit, e, d);
    }
}

/// Runs the gateway until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let bind = config.server.bind;
    let tls = match &config.server.tls {
        Some(files) => Some(tls_acceptor(&files.cert_file, &files.key_file)?),
        None => None,
    };
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let gw = Gateway::new(config)?;
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        address = %local,
        public_url = %gw.config.server.public_url,
        tls = tls.is_some(),
        "mcp-guard listening"
    );
    if let Some(bind) = gw.config.metrics_bind {
        metrics::install();
        metrics::serve(gw.clone(), bind).await?;
    }
    let router = gw.router();
    let sweeper = {
        let gw = gw.clone();
        let every = gw.config.session.cleanup_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                gw.sweep();
            }
        })
    };
    let reloader = tokio::spawn(watch_for_reloads(gw.clone()));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                serve_connection(tcp, peer, tls.clone(), router.clone(), graceful.watcher());
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let grace = gw.config.server.shutdown_grace;
    tracing::info!(
        connections = graceful.count(),
        "shutting down: no new connections; in-flight requests have {grace:?} to finish"
    );
    sweeper.abort();
    reloader.abort();
    // Standalone streams carry no request of their own: end them now, so only requests are
    // waited for.
    gw.end_streams();
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over: closing the remaining connections");
    }
    gw.close_all();
    // Give the child watchers a moment to reap.
    for _ in 0..50 {
        if gw.children() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}

fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    router: Router,
    watcher: hyper_util::server::graceful::Watcher,
) {
    use hyper_util::rt::TokioIo;
    use tower::ServiceExt as _;
    let _ = tcp.set_nodelay(true);
    tokio::spawn(async move {
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ClientAddr(peer.ip()));
                // Redacted in any Debug output from here on.
                if let Some(v) = request.headers_mut().get_mut(hyper::header::AUTHORIZATION) {
                    v.set_sensitive(true);
                }
                router.clone().oneshot(request)
            },
        );
        let http = hyper::server::conn::http1::Builder::new();
        let result = match tls {
            Some(acceptor) => match acceptor.accept(tcp).await {
                Ok(stream) => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Err(e) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
            },
            None => {
                watcher
                    .watch(http.serve_connection(TokioIo::new(tcp), service))
                    .await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, "connection ended: {e}");
        }
    });
}

pub(crate) fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading TLS certificates from `{}`", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing TLS certificates in `{}`", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("`{}` holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS private key from `{}`", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not form a usable identity")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Reloads on SIGHUP and when the configuration file changes (checked every two seconds).
async fn watch_for_reloads(gw: Arc<Gateway>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot watch SIGHUP: {e}");
            None
        }
    };
    let modified = |gw: &Gateway| {
        gw.source
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok())
    };
    let mut seen = modified(&gw);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        let why = tokio::select! {
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => "SIGHUP",
            _ = tick.tick() => {
                let now = modified(&gw);
                if now == seen {
                    continue;
                }
                seen = now;
                "the file changed"
            }
        };
        let mut e = tokens::event("config_reload");
        match gw.reload() {
            Ok(()) => {
                tracing::info!("configuration reloaded ({why})");
                e.outcome = Some("ok");
            }
            Err(err) => {
                tracing::error!(
                    "configuration not reloaded ({why}); the previous one keeps serving: {err}"
                );
                e.outcome = Some("fail");
                e.reason = Some(err);
            }
        }
        gw.audit.record(&e);
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
