//! The authorization server endpoints the gateway mounts: token (RFC 6749, RFC 8707), revocation
//! (RFC 7009), introspection (RFC 7662), JWKS, and authorization server metadata (RFC 8414).
//!
//! Every handler answers with a response, never a Rust error. Errors use RFC 6749 codes with
//! `Cache-Control: no-store`. Client authentication is throttled per client and per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::audit::{AuditEvent, AuditSink, rfc3339_millis};
use crate::clients::{Client, ClientRegistry};
use crate::store::Store;
use crate::token::{GrantError, Grants, TokenAuthenticator, TokenIssuer, Verifier};

/// The client address, put into request extensions by whoever accepts the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// A source of the current time (Unix milliseconds), so tests can move the clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What the endpoints share.
pub struct AuthServer {
    /// Signs tokens.
    pub issuer: TokenIssuer,
    /// Verifies and revokes.
    pub authn: TokenAuthenticator,
    /// State.
    pub store: Arc<dyn Store>,
    /// Audit events.
    pub audit: Arc<dyn AuditSink>,
    /// Confidential clients.
    pub clients: ClientRegistry,
    /// The JWKS document.
    pub jwks: Value,
    /// The issuer URL; endpoints are served under it.
    pub base_url: String,
    /// The clock.
    pub clock: Clock,
    /// Failed client authentications.
    pub throttle: Throttle,
}

/// The endpoint paths, relative to the issuer URL.
pub mod paths {
    /// Token endpoint.
    pub const TOKEN: &str = "/oauth/token";
    /// Revocation endpoint.
    pub const REVOKE: &str = "/oauth/revoke";
    /// Introspection endpoint.
    pub const INTROSPECT: &str = "/oauth/introspect";
    /// JWKS.
    pub const JWKS: &str = "/oauth/jwks";
    /// RFC 8414 metadata.
    pub const METADATA: &str = "/.well-known/oauth-authorization-server";
}

/// The router of the five endpoints.
pub fn router(server: Arc<AuthServer>) -> Router {
    Router::new()
        .route(paths::TOKEN, post(token))
        .route(paths::REVOKE, post(revoke))
        .route(paths::INTROSPECT, post(introspect))
        .route(paths::JWKS, get(jwks))
        .route(paths::METADATA, get(metadata))
        .with_state(server)
}

// ===== throttling =====

/// Counts failed client authentications per (client, address) and per address in fixed windows;
/// bounded in memory.
pub struct Throttle {
    window: Duration,
    per_client: u32,
    per_addr: u32,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

const THROTTLE_MAX_KEYS: usize = 100_000;

impl Throttle {
    /// At most `per_client` failures per client and address, and `per_addr` per address, in
    /// each `window`.
    pub fn new(window: Duration, per_client: u32, per_addr: u32) -> Self {
        Throttle {
            window,
            per_client,
            per_addr,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn keys(client: &str, addr: &str) -> [String; 2] {
        [format!("{client}\u{0}{addr}"), format!("\u{0}{addr}")]
    }

    /// Seconds to wait before trying again, when over a limit.
    fn blocked(&self, client: &str, addr: &str) -> Option<u64> {
        let counts = self.counts.lock().ok()?;
        let now = Instant::now();
        let [k1, k2] = Self::keys(client, addr);
        for (key, limit) in [(k1, self.per_client), (k2, self.per_addr)] {
            if let Some((start, n)) = counts.get(&key)
                && now.duration_since(*start) < self.window
                && *n >= limit
            {
                let left = self.window.saturating_sub(now.duration_since(*start));
                return Some(left.as_secs().max(1));
            }
        }
        None
    }

    fn failed(&self, client: &str, addr: &str) {
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        let now = Instant::now();
        if counts.len() >= THROTTLE_MAX_KEYS {
            let window = self.window;
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        for key in Self::keys(client, addr) {
            let entry = counts.entry(key).or_insert((now, 0));
            if now.duration_since(entry.0) >= self.window {
                *entry = (now, 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
    }
}

// ===== helpers =====

fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    no_store(
        (
            status,
            axum::Json(json!({"error": code, "error_description": description})),
        )
            .into_response(),
    )
}

/// The form, with each parameter at most once (RFC 6749 section 3.2), `resource` excepted.
/// A refusal, boxed: a `Response` is large and most calls succeed.
type Refusal = Box<Response>;

fn parse_form(body: &[u8]) -> Result<(HashMap<String, String>, Vec<String>), Refusal> {
    let mut params = HashMap::new();
    let mut resources = Vec::new();
    for (k, v) in form_urlencoded::parse(body) {
        if k == "resource" {
            resources.push(v.into_owned());
            continue;
        }
        if params
            .insert(k.clone().into_owned(), v.into_owned())
            .is_some()
        {
            return Err(Box::new(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("parameter `{k}` given more than once"),
            )));
        }
    }
    Ok((params, resources))
}

enum Credentials {
    Basic(String, String),
    Post(String, String),
}

fn credentials(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Credentials, Refusal> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let text = v.to_str().unwrap_or_default();
            match text.split_once(' ') {
                Some((scheme, b64)) if scheme.eq_ignore_ascii_case("basic") => {
                    let decoded = STANDARD
                        .decode(b64.trim())
                        .ok()
                        .and_then(|d| String::from_utf8(d).ok());
                    let pair = decoded
                        .as_deref()
                        .and_then(|d| d.split_once(':'))
                        .map(|(i, s)| {
                            // RFC 6749 section 2.3.1: both parts are form-urlencoded.
                            let dec = |x: &str| {
                                form_urlencoded::parse(format!("x={x}").as_bytes())
                                    .next()
                                    .map(|(_, v)| v.into_owned())
                                    .unwrap_or_default()
                            };
                            (dec(i), dec(s))
                        });
                    match pair {
                        Some(p) => Some(p),
                        None => return Err(Box::new(invalid_client(true))),
                    }
                }
                _ => return Err(Box::new(invalid_client(false))),
            }
        }
    };
    let post = match (params.get("client_id"), params.get("client_secret")) {
        (Some(i), Some(s)) => Some((i.clone(), s.clone())),
        _ => None,
    };
    match (basic, post) {
        (Some(_), Some(_)) => Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "use one client authentication method",
        ))),
        (Some((i, s)), None) => Ok(Credentials::Basic(i, s)),
        (None, Some((i, s))) => Ok(Credentials::Post(i, s)),
        (None, None) => Err(Box::new(invalid_client(false))),
    }
}

fn invalid_client(basic: bool) -> Response {
    let mut r = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed",
    );
    if basic {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"mcp-guard\""),
        );
    }
    r
}

fn client_addr(ext: Option<&ClientAddr>) -> String {
    ext.map_or_else(|| "unknown".to_owned(), |a| a.0.to_string())
}

/// Authenticates the calling client, throttled; argon2 runs off the async workers.
async fn authenticate_client(
    server: &Arc<AuthServer>,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    addr: &str,
) -> Result<Client, Refusal> {
    let creds = credentials(headers, params)?;
    let (basic, id, secret) = match creds {
        Credentials::Basic(i, s) => (true, i, s),
        Credentials::Post(i, s) => (false, i, s),
    };
    if let Some(wait) = server.throttle.blocked(&id, addr) {
        let mut r = oauth_error(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "too many failed client authentications",
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(Box::new(r));
    }
    let s = server.clone();
    let id2 = id.clone();
    let result =
        tokio::task::spawn_blocking(move || s.clients.authenticate(&id2, &secret).cloned()).await;
    match result {
        Ok(Ok(client)) => Ok(client),
        _ => {
            server.throttle.failed(&id, addr);
            server.audit.record(&AuditEvent {
                time: rfc3339_millis((server.clock)()),
                event: "client_auth_failed",
                client_id: Some(id),
                outcome: Some("fail"),
                reason: Some(format!("from {addr}")),
                ..AuditEvent::default()
            });
            Err(Box::new(invalid_client(basic)))
        }
    }
}

/// A form request from an authenticated client.
struct ClientRequest {
    client: Client,
    params: HashMap<String, String>,
    resources: Vec<String>,
}

/// Parses the form and authenticates the client: the first steps of every POST endpoint.
async fn client_request(
    server: &Arc<AuthServer>,
    addr: Option<axum::Extension<ClientAddr>>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<ClientRequest, Refusal> {
    let (params, resources) = parse_form(body)?;
    let addr = client_addr(addr.as_ref().map(|a| &a.0));
    let client = authenticate_client(server, headers, &params, &addr).await?;
    Ok(ClientRequest {
        client,
        params,
        resources,
    })
}

fn grants<'a>(server: &'a AuthServer, verifier: &'a Verifier) -> Grants<'a> {
    Grants {
        issuer: &server.issuer,
        verifier,
        store: &*server.store,
        audit: &*server.audit,
        time: rfc3339_millis((server.clock)()),
    }
}

// ===== handlers =====

async fn token(
    State(server): State<Arc<AuthServer>>,
    addr: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ClientRequest {
        client,
        params,
        resources,
    } = match client_request(&server, addr, &headers, &body).await {
        Ok(r) => r,
        Err(r) => return *r,
    };
    if resources.len() > 1 {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "one resource per token",
        );
    }
    let resource = resources.first().map(String::as_str);
    let now = (server.clock)() / 1000;
    let verifier = server.authn.verifier();
    let g = grants(&server, &verifier);
    let result = match params.get("grant_type").map(String::as_str) {
        Some("client_credentials") => g.client_credentials(
            &client,
            params.get("scope").map(String::as_str),
            resource,
            now,
        ),
        Some("refresh_token") => match params.get("refresh_token") {
            Some(t) => g.refresh(&client, t, resource, now),
            None => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "`refresh_token` is required",
                );
            }
        },
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "use client_credentials or refresh_token",
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "`grant_type` is required",
            );
        }
    };
    match result {
        Ok(granted) => {
            let mut body = json!({
                "access_token": granted.access.token.expose(),
                "token_type": "Bearer",
                "expires_in": granted.access.exp - now,
            });
            if let Some(s) = granted.scope {
                body["scope"] = json!(s);
            }
            if let Some(r) = granted.refresh {
                body["refresh_token"] = json!(r.token.expose());
            }
            no_store(axum::Json(body).into_response())
        }
        Err(e) => match e.code() {
            Some(code) => oauth_error(StatusCode::BAD_REQUEST, code, &e.to_string()),
            None => {
                tracing::error!(target: "mcp_guard::authn", error = %e, "token endpoint failure");
                let mut r = oauth_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "try again later",
                );
                if matches!(e, GrantError::Issue(_)) {
                    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                }
                r
            }
        },
    }
}

async fn revoke(
    State(server): State<Arc<AuthServer>>,
    addr: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ClientRequest { client, params, .. } =
        match client_request(&server, addr, &headers, &body).await {
            Ok(r) => r,
            Err(r) => return *r,
        };
    let Some(token) = params.get("token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "`token` is required",
        );
    };
    let now = (server.clock)() / 1000;
    let verifier = server.authn.verifier();
    // RFC 7009 section 2.2: an invalid token is answered 200.
    let Ok((verified, family)) = verifier.verify_any(token, now) else {
        return no_store(StatusCode::OK.into_response());
    };
    // A client revokes only its own tokens; others get the same 200 and nothing happens.
    if verified.principal.client_id.as_deref() != Some(client.id.as_str()) {
        server.audit.record(&AuditEvent {
            time: rfc3339_millis((server.clock)()),
            event: "revocation_refused",
            client_id: Some(client.id.clone()),
            jti: verified.jti().map(str::to_owned),
            outcome: Some("fail"),
            reason: Some("the token belongs to another client".into()),
            ..AuditEvent::default()
        });
        return no_store(StatusCode::OK.into_response());
    }
    let mut failed = false;
    if let Some(jti) = verified.jti() {
        failed |= server.authn.revoke(jti, verified.exp).is_err();
    }
    if let Some(fam) = &family {
        failed |= server.store.revoke_family(fam).is_err();
    }
    if failed {
        return oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "try again later",
        );
    }
    server.audit.record(&AuditEvent {
        time: rfc3339_millis((server.clock)()),
        event: "token_revoked",
        client_id: Some(client.id),
        subject: Some(verified.principal.subject.clone()),
        jti: verified.jti().map(str::to_owned),
        family,
        outcome: Some("ok"),
        ..AuditEvent::default()
    });
    no_store(StatusCode::OK.into_response())
}

async fn introspect(
    State(server): State<Arc<AuthServer>>,
    addr: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ClientRequest { client, params, .. } =
        match client_request(&server, addr, &headers, &body).await {
            Ok(r) => r,
            Err(r) => return *r,
        };
    if !client.may_introspect {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "unauthorized_client",
            "this client may not introspect",
        );
    }
    let Some(token) = params.get("token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "`token` is required",
        );
    };
    let now = (server.clock)() / 1000;
    let body = match server.authn.authenticate(token, now) {
        Ok(v) => {
            let mut out = json!({"active": true, "token_type": "Bearer"});
            for key in [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "nbf",
                "jti",
                "client_id",
                "scope",
            ] {
                if let Some(val) = v.claims.get(key) {
                    out[key] = val.clone();
                }
            }
            out
        }
        Err(crate::token::AuthnError::Store(e)) => {
            tracing::error!(target: "mcp_guard::authn", error = %e, "introspection failure");
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again later",
            );
        }
        Err(_) => json!({"active": false}),
    };
    no_store(axum::Json(body).into_response())
}

async fn jwks(State(server): State<Arc<AuthServer>>) -> Response {
    axum::Json(server.jwks.clone()).into_response()
}

async fn metadata(State(server): State<Arc<AuthServer>>) -> Response {
    let base = &server.base_url;
    axum::Json(json!({
        "issuer": server.issuer.issuer(),
        "token_endpoint": format!("{base}{}", paths::TOKEN),
        "revocation_endpoint": format!("{base}{}", paths::REVOKE),
        "introspection_endpoint": format!("{base}{}", paths::INTROSPECT),
        "jwks_uri": format!("{base}{}", paths::JWKS),
        "grant_types_supported": ["client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
    }))
    .into_response()
}

#[cfg(test)]
mod tests;
