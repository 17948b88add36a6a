//! What every request meets before MCP: Host and Origin checks, the client address, bearer
//! authentication, and the 401/403 challenges of DESIGN.md section 8.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mcp_guard_auth::Fingerprint;
use mcp_guard_auth::attributes::Asker;
use mcp_guard_auth::audit::AuditEvent;
use mcp_guard_auth::endpoints::ClientAddr;
use mcp_guard_auth::token::{AuthnError, SecretToken, VerifiedToken, bearer_token};
use mcp_guard_core::Subject;
use serde_json::Value;

use super::sessions::Owner;
use super::{Gateway, Refusal, Rules};
use crate::config::{ServerSettings, strip_port};
use crate::tokens::{event, now_unix};

/// An authenticated caller (or the anonymous one, for public methods).
pub struct Caller {
    /// The verified token; `None` for the anonymous caller.
    pub token: Option<Arc<VerifiedToken>>,
    /// Roles and grants resolved for it.
    pub subject: Subject,
    /// Whose sessions it may use.
    pub owner: Owner,
    /// A short hash of the credential, for the audit log.
    pub credential: Fingerprint,
    /// The bearer token itself, for a userinfo attribute provider only (which sends it to the
    /// token's own issuer and nowhere else); its `Debug` shows a fingerprint.
    pub bearer: Option<SecretToken>,
}

impl Caller {
    /// Whom attribute providers are asked about: the principal, and its token when it has one.
    pub fn asker(&self) -> Asker<'_> {
        let asker = Asker::new(self.subject.principal());
        match (&self.token, &self.bearer) {
            (Some(verified), Some(token)) => asker.with_bearer(token.expose(), verified.exp),
            _ => asker,
        }
    }
}

/// Refuses requests whose `Host` or `Origin` is not allowed (DNS rebinding): 403, no body.
pub async fn host_and_origin(
    State(gw): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    let server = &gw.config.server;
    let host_ok = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| strip_port(h).to_ascii_lowercase())
        .is_some_and(|h| server.allowed_hosts.contains(&h));
    // HTTP/1.1 requires Host; a request without one is refused like a bad one.
    if !host_ok {
        tracing::debug!("request refused: Host not allowed");
        return StatusCode::FORBIDDEN.into_response();
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| {
            server
                .allowed_origins
                .iter()
                .any(|a| a.eq_ignore_ascii_case(o))
        });
        if !allowed {
            tracing::debug!("request refused: Origin not allowed");
            return StatusCode::FORBIDDEN.into_response();
        }
    }
    next.run(request).await
}

/// The client's address: the socket peer, or the last untrusted hop of `X-Forwarded-For` when
/// the peer is a trusted proxy.
pub fn client_ip(
    server: &ServerSettings,
    peer: Option<&ClientAddr>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let peer = peer?.0;
    if !server.trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !server.trusted_proxies.contains(ip))
            .unwrap_or(peer),
    )
}

/// Authenticates the request's bearer token; the error is the finished 401 or 503 response.
pub fn authenticate(
    gw: &Gateway,
    rules: &Rules,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
) -> Result<Caller, Refusal> {
    let started = std::time::Instant::now();
    let result = authenticate_untimed(gw, rules, headers, ip);
    super::metrics::auth_time(started.elapsed());
    result
}

fn authenticate_untimed(
    gw: &Gateway,
    rules: &Rules,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
) -> Result<Caller, Refusal> {
    let values = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .map(HeaderValue::as_bytes);
    let token = match bearer_token(values) {
        Ok(Some(t)) => t,
        Ok(None) => return Err(Box::new(gw.unauthorized(None))),
        Err(e) => {
            super::metrics::authn_failure(e.kind());
            gw.audit_authn_failure(None, &e.to_string(), ip);
            return Err(Box::new(gw.unauthorized(Some("invalid_token"))));
        }
    };
    let (credential, verified) = gw.auth.authn.authenticate_fingerprinted(token, now_unix());
    match verified {
        Ok(verified) => {
            let principal = verified.principal.clone();
            let owner = Owner {
                issuer: principal.issuer.clone(),
                subject: principal.subject.clone(),
                client_id: principal.client_id.clone(),
            };
            let subject = rules.authorizer.resolve(principal);
            Ok(Caller {
                token: Some(verified),
                subject,
                owner,
                credential,
                // Kept only for a userinfo provider: otherwise no copy of the token outlives
                // this function.
                bearer: rules
                    .attributes
                    .providers
                    .read_bearer()
                    .then(|| SecretToken::new(token.to_owned())),
            })
        }
        Err(AuthnError::Token(e)) => {
            super::metrics::authn_failure(e.kind());
            gw.audit_authn_failure(Some(&credential), &e.to_string(), ip);
            Err(Box::new(gw.unauthorized(Some("invalid_token"))))
        }
        Err(e) => {
            super::metrics::authn_failure("store_unavailable");
            tracing::error!("cannot check the token: {e}");
            Err(Box::new(unavailable("the state store is unreachable")))
        }
    }
}

/// The issuer of the anonymous principal, which no token can claim (it is not a URL).
pub const ANONYMOUS_ISSUER: &str = "urn:mcp-guard:anonymous";

/// The caller of a request without any credential whose every message calls a public method.
/// It is still authorized like anyone else (it has the default role at most), and its sessions
/// are protected only by their unguessable ids.
pub fn anonymous(rules: &Rules, headers: &HeaderMap, body: &[u8]) -> Option<Caller> {
    let public = &rules.public_methods;
    if public.is_empty() || headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        method: Option<String>,
    }
    let methods: Vec<Option<String>> = match serde_json::from_slice::<Value>(body).ok()? {
        Value::Array(items) => items
            .into_iter()
            .map(|v| {
                serde_json::from_value::<Probe>(v)
                    .ok()
                    .and_then(|p| p.method)
            })
            .collect(),
        v => vec![
            serde_json::from_value::<Probe>(v)
                .ok()
                .and_then(|p| p.method),
        ],
    };
    if methods.is_empty()
        || !methods
            .iter()
            .all(|m| m.as_ref().is_some_and(|m| public.contains(m)))
    {
        return None;
    }
    let principal = mcp_guard_core::Principal::new(
        Some(ANONYMOUS_ISSUER.into()),
        "anonymous",
        mcp_guard_core::AuthMethod::Anonymous,
    );
    Some(Caller {
        token: None,
        owner: Owner {
            issuer: principal.issuer.clone(),
            subject: principal.subject.clone(),
            client_id: None,
        },
        subject: rules.authorizer.resolve(principal),
        credential: Fingerprint::of(b"anonymous"),
        bearer: None,
    })
}

// The answers of DESIGN.md section 8 live in the auth crate, shared with its tower layer.
pub use mcp_guard_auth::respond::{json_rpc_error, unavailable};

impl Gateway {
    /// 401: no credential (a plain challenge) or an invalid one (`error="invalid_token"`).
    pub fn unauthorized(&self, error: Option<&str>) -> Response {
        let rules = self.rules();
        mcp_guard_auth::respond::unauthorized(
            &self.resource_metadata_url,
            error,
            &rules.challenge_scope,
        )
    }

    fn audit_authn_failure(
        &self,
        credential: Option<&Fingerprint>,
        reason: &str,
        ip: Option<IpAddr>,
    ) {
        let mut e: AuditEvent = event("authn_failed");
        e.outcome = Some("fail");
        e.credential = credential.map(|c| c.as_str().to_owned());
        e.reason = Some(reason.to_owned());
        e.client_ip = ip.map(|i| i.to_string());
        self.audit.record(&e);
    }
}

/// The Protected Resource Metadata document (RFC 9728).
pub async fn resource_metadata(State(gw): State<Arc<Gateway>>) -> Response {
    let mut r = axum::Json(gw.rules().resource_metadata.clone()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    r
}

/// An empty 404 for unknown paths.
pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Body::empty()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut server = ServerSettings::default();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.2"),
        );
        let peer = ClientAddr("10.0.0.2".parse().unwrap());
        assert_eq!(client_ip(&server, Some(&peer), &headers), Some(peer.0));
        server.trusted_proxies = vec!["10.0.0.2".parse().unwrap()];
        assert_eq!(
            client_ip(&server, Some(&peer), &headers),
            Some("203.0.113.9".parse().unwrap())
        );
        // A client cannot push its own claim past the proxy's: the last untrusted hop wins.
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.1, 203.0.113.9"),
        );
        assert_eq!(
            client_ip(&server, Some(&peer), &headers),
            Some("203.0.113.9".parse().unwrap())
        );
    }
}
