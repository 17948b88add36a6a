//! Authentication for mcp-guard: verifying and issuing JWTs, refresh rotation, revocation, the
//! state store, the audit sink and the attribute providers ABAC reads; and [`layer::AuthLayer`],
//! the tower layer that puts all of it, with the core's authorization, in front of a Rust MCP
//! server (rmcp's `StreamableHttpService`).
//!
//! Guarantees:
//! - A credential that is present but invalid fails with a typed reason; it never falls through
//!   to a weaker method, and the reason goes to the audit log, not to the client.
//! - A token's header never chooses the key type: the issuer's configuration fixes the allowed
//!   algorithms and keys, `none` is never accepted, and `jku`, `x5u`, `jwk`, `x5c` and `crit`
//!   headers are refused, never fetched or trusted.
//! - Tokens, secrets and keys have no `Debug` or `Display` that shows them; logs carry a
//!   [`Fingerprint`] (a short hash) instead.
//! - An attribute provider that fails makes its attributes unknown, never empty: it can only take
//!   access away.
//! - [`layer::AuthLayer`] cannot be built without an authenticator and an authorizer; no
//!   credential is a 401, and a message the authorizer denied never reaches the inner service.

pub mod attributes;
pub mod audit;
pub mod clients;
pub mod endpoints;
mod fingerprint;
pub mod layer;
pub mod respond;
pub mod sse;
pub mod store;
pub mod token;

pub use fingerprint::Fingerprint;

/// Operations that bypass the normal issuing rules. For tests and tools that must craft tokens
/// (attack corpora, interop fixtures); never on a request path.
pub mod danger {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::Value;

    use crate::token::SigningKey;

    /// Signs any header and claims with `key`, whatever the header says.
    pub fn sign_with(key: &SigningKey, header: &Value, claims: &Value) -> Result<String, String> {
        let msg = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key.encoding_key(), key.alg())
            .map_err(|e| e.to_string())?;
        Ok(format!("{msg}.{sig}"))
    }
}
