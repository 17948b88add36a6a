//! Issuing access and refresh tokens (the seed's `generateAccessToken` / `generateRefreshToken`,
//! with the claims of DESIGN.md section 10).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use serde_json::{Map, Value, json};

use super::keys::SigningKey;
use crate::Fingerprint;

/// A token string. It has no `Debug` or `Display` that shows it: print it on purpose with
/// [`SecretToken::expose`], log its [`Fingerprint`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// Wraps a token string.
    pub fn new(token: String) -> Self {
        SecretToken(token)
    }
    /// The token itself, for the one place that must send or print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A short hash for logs.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.0.as_bytes())
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretToken({})", self.fingerprint())
    }
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The system random source failed.
    #[error("no randomness available")]
    Random,
}

/// What an access token says about its holder.
#[derive(Clone, Debug, Default)]
pub struct AccessClaims {
    /// `sub`.
    pub subject: String,
    /// `client_id`, when issued to a client.
    pub client_id: Option<String>,
    /// The seed's `permissions` claim.
    pub permissions: Vec<String>,
    /// `roles`.
    pub roles: Vec<String>,
    /// `scope`, space-separated.
    pub scope: Option<String>,
    /// The seed's `metadata` claim.
    pub metadata: Map<String, Value>,
    /// Overrides the configured lifetime (shorter or longer, e.g. `token issue --ttl`).
    pub ttl: Option<Duration>,
}

/// A token just issued.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The token.
    pub token: SecretToken,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp`, Unix seconds.
    pub exp: i64,
}

/// Signs access and refresh tokens for this gateway.
#[derive(Clone, Debug)]
pub struct TokenIssuer {
    issuer: String,
    audience: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
    key: Arc<SigningKey>,
}

/// The SHA-256 (base64url) of a token: how refresh tokens are kept in the store.
pub fn token_hash(token: &str) -> String {
    crate::fingerprint::sha256_b64(token.as_bytes())
}

/// 128 random bits, base64url: token ids, family ids.
pub fn random_id() -> Result<String, IssueError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| IssueError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

impl TokenIssuer {
    /// An issuer with its `iss`, `aud`, lifetimes and current signing key.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        access_ttl: Duration,
        refresh_ttl: Duration,
        key: Arc<SigningKey>,
    ) -> Self {
        TokenIssuer {
            issuer: issuer.into(),
            audience: audience.into(),
            access_ttl,
            refresh_ttl,
            key,
        }
    }

    /// `iss` of issued tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `aud` of issued tokens.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The signing key in use.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The refresh token lifetime.
    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    /// Issues an access token (`typ: at+jwt`, `type: access`).
    pub fn access(&self, claims: &AccessClaims, now: i64) -> Result<Issued, IssueError> {
        let jti = random_id()?;
        let ttl = claims.ttl.unwrap_or(self.access_ttl);
        let exp = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let mut body = json!({
            "iss": self.issuer,
            "sub": claims.subject,
            "aud": self.audience,
            "exp": exp,
            "iat": now,
            "nbf": now,
            "jti": jti,
            "type": "access",
            "permissions": claims.permissions,
            "roles": claims.roles,
            "metadata": claims.metadata,
        });
        if let Some(c) = &claims.client_id {
            body["client_id"] = json!(c);
        }
        if let Some(s) = &claims.scope {
            body["scope"] = json!(s);
        }
        let token = self.sign("at+jwt", &body)?;
        Ok(Issued { token, jti, exp })
    }

    /// Issues a refresh token of `family` (`type: refresh`), bound to `client_id`.
    pub fn refresh(
        &self,
        subject: &str,
        client_id: &str,
        family: &str,
        now: i64,
    ) -> Result<Issued, IssueError> {
        let jti = random_id()?;
        let exp = now.saturating_add(i64::try_from(self.refresh_ttl.as_secs()).unwrap_or(i64::MAX));
        let body = json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": self.audience,
            "exp": exp,
            "iat": now,
            "jti": jti,
            "client_id": client_id,
            "fam": family,
            "type": "refresh",
        });
        let token = self.sign("refresh+jwt", &body)?;
        Ok(Issued { token, jti, exp })
    }

    fn sign(&self, typ: &str, body: &Value) -> Result<SecretToken, IssueError> {
        let mut header = Header::new(self.key.alg());
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.key.kid().to_owned());
        jsonwebtoken::encode(&header, body, self.key.encoding_key())
            .map(SecretToken)
            .map_err(|e| IssueError::Sign(e.to_string()))
    }
}
