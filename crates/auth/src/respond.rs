//! The answers of DESIGN.md section 8 that both the gateway and the [`crate::layer`] give: the
//! `WWW-Authenticate` challenges, JSON-RPC error bodies, and the error for a denied message.
//!
//! Pure functions: the caller supplies the resource metadata URL and the challenge scopes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcp_guard_core::{Authorizer, Context, Decision, Environment, ProvidedAttributes, codes};
use serde_json::{Value, json};

/// `Bearer [error="..", ]resource_metadata="..."[, scope=".."]`, for `WWW-Authenticate`.
pub fn challenge(resource_metadata: &str, error: Option<&str>, scope: Option<&str>) -> HeaderValue {
    let mut v = String::from("Bearer ");
    if let Some(e) = error {
        v.push_str(&format!("error=\"{e}\", "));
    }
    v.push_str(&format!("resource_metadata=\"{resource_metadata}\""));
    if let Some(s) = scope.filter(|s| !s.is_empty()) {
        v.push_str(&format!(", scope=\"{s}\""));
    }
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// A JSON-RPC error response with an HTTP status.
pub fn json_rpc_error(status: StatusCode, id: Option<Value>, code: i32, message: &str) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id.unwrap_or(Value::Null), "error": {"code": code, "message": message}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// 401: no credential (a plain challenge, `error` is `None`) or an invalid one
/// (`Some("invalid_token")`). `scope` lists the scopes a client may ask for.
pub fn unauthorized(resource_metadata: &str, error: Option<&str>, scope: &str) -> Response {
    let mut response = json_rpc_error(
        StatusCode::UNAUTHORIZED,
        None,
        codes::INVALID_REQUEST,
        match error {
            None => "Unauthorized: a bearer token is required",
            Some(_) => "Unauthorized: the bearer token is not valid",
        },
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        challenge(resource_metadata, error, Some(scope)),
    );
    response
}

/// 503 with -31503: the server cannot decide, so it does not allow.
pub fn unavailable(why: &str) -> Response {
    json_rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        codes::UNAVAILABLE,
        &format!("Service unavailable: {why}"),
    )
}

/// The JSON-RPC error for a denial: -31003 naming the permission, or, when `hide` is set and the
/// permission is on a tool, prompt or resource, -32602 as for an unknown name.
pub fn denial_error(decision: &Decision, hide: bool) -> (i32, String) {
    if hide && let Some(p) = &decision.permission {
        let what = match p.domain {
            "tools" => Some("tool"),
            "prompts" => Some("prompt"),
            "resources" => Some("resource"),
            _ => None,
        };
        if let Some(what) = what {
            return (
                codes::INVALID_PARAMS,
                format!("Unknown {what}: {}", p.target),
            );
        }
    }
    let message = match &decision.permission {
        Some(p) => format!("Forbidden: missing permission {p}"),
        None => format!("Forbidden: {}", decision.explain()),
    };
    (codes::FORBIDDEN, message)
}

/// The scopes, space-separated, that would grant the permission a decision lacked: the `scope`
/// of an `insufficient_scope` challenge. Empty when none would.
pub fn granting_scopes(authorizer: &Authorizer, decision: &Decision) -> String {
    let Some(p) = &decision.permission else {
        return String::new();
    };
    let env = Environment::default();
    let attrs = ProvidedAttributes::new();
    authorizer
        .scopes_granting(p, &Context::new(&env, &attrs))
        .join(" ")
}

/// The answer to a denied message that stands alone: 403 with an `insufficient_scope` challenge
/// (naming `scopes` when some scope would grant it) and -31003; or, for a hidden item, 200 with
/// -32602 as the server answers an unknown name.
pub fn denied(
    resource_metadata: &str,
    decision: &Decision,
    hide: bool,
    id: Option<Value>,
    scopes: &str,
) -> Response {
    let (code, message) = denial_error(decision, hide);
    if code == codes::INVALID_PARAMS {
        return json_rpc_error(StatusCode::OK, id, code, &message);
    }
    let mut r = json_rpc_error(StatusCode::FORBIDDEN, id, code, &message);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        challenge(resource_metadata, Some("insufficient_scope"), Some(scopes)),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_have_the_section_8_shape() {
        let url = "https://mcp.example/.well-known/oauth-protected-resource/mcp";
        assert_eq!(
            challenge(url, None, Some("mcp:read mcp:tools")),
            format!("Bearer resource_metadata=\"{url}\", scope=\"mcp:read mcp:tools\"")
        );
        assert_eq!(
            challenge(url, Some("invalid_token"), Some("")),
            format!("Bearer error=\"invalid_token\", resource_metadata=\"{url}\"")
        );
    }
}
