//! [`AuthLayer`]: the seed's AuthenticationMiddleware for Rust MCP servers, as a tower layer in
//! front of rmcp's `StreamableHttpService` or any tower HTTP service (DESIGN.md sections 1, 8, 9).
//!
//! For every HTTP request it:
//! - authenticates one `Authorization: Bearer` header (scheme case-insensitive; a token in the
//!   query string is never read): none is a 401 challenge, an invalid one a 401 with
//!   `error="invalid_token"`, and an unreachable revocation store a 503, never an allow;
//! - checks the `Mcp-Session-Id` against the principal the session was opened by: another
//!   principal's, or an unknown, session id gets 404;
//! - classifies a POST body with the core's strict parse and authorizes every JSON-RPC message,
//!   batch elements one by one. A denied message never reaches the inner service: a single one
//!   is answered with 403 and an `insufficient_scope` challenge, a batch element with -31003 in
//!   the answer array;
//! - filters `tools/list`, `resources/list`, `resources/templates/list` and `prompts/list`
//!   results, in JSON and in `text/event-stream` answers, to what the principal may use;
//! - records every decision and authentication failure as an [`AuditEvent`];
//! - puts the [`Principal`] (and, for a single message, its [`Decision`]) into the request's
//!   extensions. rmcp hands handlers the request's `http::request::Parts`, so a tool reads
//!   `parts.extensions.get::<Principal>()`. The `Authorization` header itself is removed: the
//!   server never sees the client's token, so it cannot pass it on.
//!
//! Methods other than POST, GET and DELETE get 405, and a GET or DELETE body is dropped: only
//! POST carries messages, and only authorized ones.
//!
//! Not covered: the layer does not check `Host`/`Origin` (rmcp's service does), rate-limit,
//! serve the Protected Resource Metadata document (it names its URL in challenges), or answer
//! CORS preflights (put a CORS layer outside it). Tasks (`tasks/get|result|cancel`) are denied,
//! since the layer does not track task owners.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use mcp_guard_auth::layer::AuthLayer;
//! # use mcp_guard_auth::token::TokenAuthenticator;
//! # fn demo(authn: TokenAuthenticator, authorizer: mcp_guard_core::Authorizer)
//! # -> Result<(), mcp_guard_auth::layer::BuildError> {
//! let layer = AuthLayer::builder()
//!     .authenticator(authn)
//!     .authorizer(authorizer)
//!     .resource_metadata("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
//!     .build()?;
//! // axum::Router::new().route_service("/mcp", layer.layer(streamable_http_service))
//! # Ok(()) }
//! ```
//!
//! [`AuditEvent`]: crate::audit::AuditEvent
//! [`Principal`]: mcp_guard_core::Principal
//! [`Decision`]: mcp_guard_core::Decision

mod exchange;
mod filter;
mod sessions;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use mcp_guard_core::Authorizer;

use crate::Fingerprint;
use crate::attributes::Providers;
use crate::audit::AuditSink;
use crate::token::{AuthnError, TokenAuthenticator, VerifiedToken, Verifier};

/// What verifies a bearer token for the layer: a [`TokenAuthenticator`] (verification,
/// revocation, cache) or a bare [`Verifier`] (no revocation check).
pub trait Authenticate: Send + Sync + 'static {
    /// Verifies `token` at `now` (Unix seconds).
    fn authenticate(&self, token: &str, now: i64) -> Result<Arc<VerifiedToken>, AuthnError>;

    /// Verifies `token` and fingerprints it for the audit trail; an implementation that hashes
    /// the token anyway (a cache key) can give both from one hash.
    fn authenticate_fingerprinted(
        &self,
        token: &str,
        now: i64,
    ) -> (Fingerprint, Result<Arc<VerifiedToken>, AuthnError>) {
        (
            Fingerprint::of(token.as_bytes()),
            self.authenticate(token, now),
        )
    }
}

impl Authenticate for TokenAuthenticator {
    fn authenticate(&self, token: &str, now: i64) -> Result<Arc<VerifiedToken>, AuthnError> {
        TokenAuthenticator::authenticate(self, token, now)
    }

    fn authenticate_fingerprinted(
        &self,
        token: &str,
        now: i64,
    ) -> (Fingerprint, Result<Arc<VerifiedToken>, AuthnError>) {
        TokenAuthenticator::authenticate_fingerprinted(self, token, now)
    }
}

impl Authenticate for Verifier {
    fn authenticate(&self, token: &str, now: i64) -> Result<Arc<VerifiedToken>, AuthnError> {
        Ok(Arc::new(self.verify(token, now)?))
    }
}

impl<T: Authenticate> Authenticate for Arc<T> {
    fn authenticate(&self, token: &str, now: i64) -> Result<Arc<VerifiedToken>, AuthnError> {
        (**self).authenticate(token, now)
    }

    fn authenticate_fingerprinted(
        &self,
        token: &str,
        now: i64,
    ) -> (Fingerprint, Result<Arc<VerifiedToken>, AuthnError>) {
        (**self).authenticate_fingerprinted(token, now)
    }
}

/// Why [`AuthLayerBuilder::build`] refused: a choice the layer will not make for you.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No authenticator: the layer never lets unauthenticated traffic through.
    #[error("an AuthLayer needs an authenticator")]
    MissingAuthenticator,
    /// No authorizer: the layer never allows by default.
    #[error("an AuthLayer needs an authorizer")]
    MissingAuthorizer,
    /// No resource metadata URL, which every 401 and 403 challenge names (RFC 9728).
    #[error("an AuthLayer needs the URL of its protected resource metadata")]
    MissingResourceMetadata,
    /// The resource metadata URL is not an absolute http(s) URL or cannot go in a header.
    #[error("the resource metadata URL `{0}` is not an absolute http(s) URL")]
    InvalidResourceMetadata(String),
}

/// Builds an [`AuthLayer`]. The authenticator, the authorizer and the resource metadata URL are
/// required; everything else has a default that only restricts.
pub struct AuthLayerBuilder {
    authenticator: Option<Arc<dyn Authenticate>>,
    authorizer: Option<Arc<Authorizer>>,
    resource_metadata: Option<String>,
    audit: Option<Arc<dyn AuditSink>>,
    challenge_scope: Option<String>,
    hide_denied: bool,
    max_body_bytes: usize,
    max_batch: usize,
    max_sessions: u64,
    session_idle: Duration,
    providers: Providers,
    attribute_timeout: Duration,
}

impl AuthLayerBuilder {
    /// Who verifies bearer tokens (required).
    pub fn authenticator(mut self, authenticator: impl Authenticate) -> Self {
        self.authenticator = Some(Arc::new(authenticator));
        self
    }

    /// The roles, scopes, groups and policies that decide every message (required).
    pub fn authorizer(mut self, authorizer: impl Into<Arc<Authorizer>>) -> Self {
        self.authorizer = Some(authorizer.into());
        self
    }

    /// The URL of this server's Protected Resource Metadata document, named in every challenge
    /// (required; serve the document there yourself).
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// Where audit events go. Default: one `info` event per audit line on the
    /// `mcp_guard::audit` tracing target.
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// The scopes a 401 challenge offers. Default: every scope the authorizer's `scope_map`
    /// defines.
    pub fn challenge_scope(mut self, scopes: impl Into<String>) -> Self {
        self.challenge_scope = Some(scopes.into());
        self
    }

    /// Answers a denied tool, prompt or resource as unknown (-32602) instead of 403 with -31003
    /// (the gateway's `deny_mode = "hide"`). Default: off.
    pub fn hide_denied(mut self, hide: bool) -> Self {
        self.hide_denied = hide;
        self
    }

    /// The largest request body read (413 above it). Default: 4 MiB.
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// The most elements a JSON-RPC batch may hold. Default: 64.
    pub fn max_batch(mut self, max: usize) -> Self {
        self.max_batch = max;
        self
    }

    /// How many session bindings are kept, and how long an unused one lives; a session whose
    /// binding is gone gets 404 and the client initializes again. Defaults: 10 000, 1 hour.
    pub fn sessions(mut self, max: u64, idle: Duration) -> Self {
        self.max_sessions = max;
        self.session_idle = idle;
        self
    }

    /// The attribute providers ABAC policies read as `<name>.<path>` (static file, claims, HTTP,
    /// userinfo: see [`crate::attributes`]), run together once per request for at most `within`.
    /// They are handed the request's bearer token, which only a userinfo provider sends, and
    /// only to its own issuer. A provider that fails or is late makes its attributes unknown,
    /// which only takes access away. Default: none.
    pub fn attribute_providers(mut self, providers: Providers, within: Duration) -> Self {
        self.providers = providers;
        self.attribute_timeout = within;
        self
    }

    /// Checks the required parts and builds the layer.
    pub fn build(self) -> Result<AuthLayer, BuildError> {
        let authenticator = self.authenticator.ok_or(BuildError::MissingAuthenticator)?;
        let authorizer = self.authorizer.ok_or(BuildError::MissingAuthorizer)?;
        let resource_metadata = self
            .resource_metadata
            .ok_or(BuildError::MissingResourceMetadata)?;
        let absolute =
            resource_metadata.starts_with("https://") || resource_metadata.starts_with("http://");
        if !absolute
            || axum::http::HeaderValue::from_str(&resource_metadata).is_err()
            || resource_metadata.contains('"')
        {
            return Err(BuildError::InvalidResourceMetadata(resource_metadata));
        }
        let challenge_scope = self
            .challenge_scope
            .unwrap_or_else(|| authorizer.scope_names().join(" "));
        let audit = self
            .audit
            .unwrap_or_else(|| Arc::new(crate::audit::TracingSink));
        Ok(AuthLayer {
            shared: Arc::new(Shared {
                authenticator,
                authorizer,
                resource_metadata,
                audit,
                challenge_scope,
                hide_denied: self.hide_denied,
                max_body_bytes: self.max_body_bytes,
                max_batch: self.max_batch,
                sessions: sessions::Sessions::new(self.max_sessions, self.session_idle),
                providers: self.providers,
                attribute_timeout: self.attribute_timeout,
            }),
        })
    }
}

/// What every request of one layer shares.
struct Shared {
    authenticator: Arc<dyn Authenticate>,
    authorizer: Arc<Authorizer>,
    resource_metadata: String,
    audit: Arc<dyn AuditSink>,
    challenge_scope: String,
    hide_denied: bool,
    max_body_bytes: usize,
    max_batch: usize,
    sessions: sessions::Sessions,
    providers: Providers,
    attribute_timeout: Duration,
}

/// A tower layer that authenticates, authorizes, filters and audits MCP traffic; see the
/// [module docs](self). Build it with [`AuthLayer::builder`].
#[derive(Clone)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

impl AuthLayer {
    /// A builder with nothing chosen; [`AuthLayerBuilder::build`] refuses until the
    /// authenticator, authorizer and resource metadata URL are set.
    pub fn builder() -> AuthLayerBuilder {
        AuthLayerBuilder {
            authenticator: None,
            authorizer: None,
            resource_metadata: None,
            audit: None,
            challenge_scope: None,
            hide_denied: false,
            max_body_bytes: 4 << 20,
            max_batch: 64,
            max_sessions: 10_000,
            session_idle: Duration::from_secs(3_600),
            providers: Providers::default(),
            attribute_timeout: Duration::from_secs(1),
        }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around an inner HTTP service.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> AuthService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// An error boxed for `Send + Sync`, as http-body uses.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The future of [`AuthService`].
pub type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

impl<S, B, ResB> tower_service::Service<Request<B>> for AuthService<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone may not be ready; the one `poll_ready` readied is the one that gets called.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(exchange::handle(shared, inner, request))
    }
}
