//! Confidential OAuth clients: ids with argon2-hashed secrets (DESIGN.md section 10).
//!
//! A secret is shown once, when it is made, and kept only as an argon2id PHC string. Checking a
//! secret costs the same whether the client exists or not, so timing does not tell which ids
//! are registered.

use std::collections::HashMap;
use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::token::SecretToken;

/// Why a client could not be registered or authenticated.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Unknown client or wrong secret (RFC 6749 `invalid_client`); deliberately the same error.
    #[error("invalid client credentials")]
    InvalidClient,
    /// A stored hash is not a valid PHC string.
    #[error("the stored secret hash of `{0}` is not a valid argon2 PHC string")]
    BadHash(String),
    /// The random source or the hasher failed.
    #[error("secret hashing failed: {0}")]
    Hashing(String),
}

/// A registered client.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    /// `client_id`.
    pub id: String,
    /// argon2id PHC string of the secret.
    pub secret_hash: String,
    /// Roles its client_credentials tokens carry.
    pub roles: Vec<String>,
    /// Scopes it may request (empty: none).
    pub scopes: Vec<String>,
    /// Whether it may call the introspection endpoint.
    pub may_introspect: bool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("roles", &self.roles)
            .field("scopes", &self.scopes)
            .field("may_introspect", &self.may_introspect)
            .finish_non_exhaustive()
    }
}

/// A fresh client secret: 256 random bits, base64url. Show it once; store [`hash_secret`] of it.
pub fn generate_secret() -> Result<SecretToken, ClientError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ClientError::Hashing("no randomness available".into()))?;
    Ok(SecretToken::new(URL_SAFE_NO_PAD.encode(bytes)))
}

/// The argon2id PHC string of a secret, with a random salt.
pub fn hash_secret(secret: &str) -> Result<String, ClientError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| ClientError::Hashing("no randomness available".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| ClientError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ClientError::Hashing(e.to_string()))
}

/// Checks that a stored hash is an argon2 PHC string, without hashing anything.
pub fn check_hash(hash: &str) -> bool {
    hash.starts_with("$argon2") && PasswordHash::new(hash).is_ok()
}

/// The registered clients.
#[derive(Clone, Debug)]
pub struct ClientRegistry {
    clients: HashMap<String, Client>,
    /// Verified against when the id is unknown, so both paths cost one argon2 run.
    decoy: String,
}

impl ClientRegistry {
    /// A registry of these clients; every hash must parse.
    pub fn new(clients: Vec<Client>) -> Result<Self, ClientError> {
        if let Some(c) = clients.iter().find(|c| !check_hash(&c.secret_hash)) {
            return Err(ClientError::BadHash(c.id.clone()));
        }
        Ok(ClientRegistry {
            clients: clients.into_iter().map(|c| (c.id.clone(), c)).collect(),
            decoy: hash_secret("decoy secret that matches nothing")?,
        })
    }

    /// The client with this id and secret.
    pub fn authenticate(&self, id: &str, secret: &str) -> Result<&Client, ClientError> {
        let (client, hash) = match self.clients.get(id) {
            Some(c) => (Some(c), c.secret_hash.as_str()),
            None => (None, self.decoy.as_str()),
        };
        let parsed = PasswordHash::new(hash).map_err(|_| ClientError::BadHash(id.to_owned()))?;
        let ok = Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok();
        match (client, ok) {
            (Some(c), true) => Ok(c),
            _ => Err(ClientError::InvalidClient),
        }
    }

    /// A client by id (no authentication).
    pub fn get(&self, id: &str) -> Option<&Client> {
        self.clients.get(id)
    }

    /// All clients, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Client> {
        self.clients.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_hash_and_verify_and_unknown_ids_look_the_same() {
        let secret = generate_secret().unwrap();
        assert_eq!(secret.expose().len(), 43);
        let hash = hash_secret(secret.expose()).unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(secret.expose()));
        let reg = ClientRegistry::new(vec![Client {
            id: "svc".into(),
            secret_hash: hash,
            roles: vec!["user".into()],
            scopes: vec![],
            may_introspect: false,
        }])
        .unwrap();
        assert_eq!(reg.authenticate("svc", secret.expose()).unwrap().id, "svc");
        assert_eq!(
            reg.authenticate("svc", "wrong").unwrap_err(),
            ClientError::InvalidClient
        );
        assert_eq!(
            reg.authenticate("nobody", secret.expose()).unwrap_err(),
            ClientError::InvalidClient
        );
        assert!(
            !format!("{:?}", reg.get("svc").unwrap()).contains("argon2"),
            "no hash in Debug"
        );
    }

    #[test]
    fn bad_hashes_are_refused_at_load() {
        let bad = Client {
            id: "x".into(),
            secret_hash: "plaintext-secret".into(),
            roles: vec![],
            scopes: vec![],
            may_introspect: false,
        };
        assert_eq!(
            ClientRegistry::new(vec![bad]).unwrap_err(),
            ClientError::BadHash("x".into())
        );
    }
}
