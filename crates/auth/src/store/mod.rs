//! One storage interface for state that must survive a restart and be shared by gateway
//! instances (DESIGN.md section 11): revocations, refresh-token families and signing keys.
//!
//! The interface is synchronous and small so that each backend (memory, SQLite, later Redis)
//! can implement every operation atomically on its own terms; async callers run it on a
//! blocking thread. When the store fails, callers fail closed.

mod memory;
mod sqlite;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// A storage failure. Callers answer 503 and never allow.
#[derive(Debug, thiserror::Error)]
#[error("state store unavailable: {0}")]
pub struct StoreError(pub String);

/// A refresh-token family: one chain of rotations from one grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    /// Family id (random).
    pub id: String,
    /// The client it was issued to; refresh only for this client.
    pub client_id: String,
    /// The subject.
    pub subject: String,
    /// SHA-256 (base64url) of the one refresh token that may be used next.
    pub current_hash: String,
    /// When the current refresh token expires, Unix seconds.
    pub exp: i64,
    /// Whether the family was revoked (reuse detected, or revoked by the client).
    pub revoked: bool,
}

/// What happened to a refresh attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The presented token was current; it is now spent and `new_hash` is current.
    Rotated,
    /// The presented token was already spent: the whole family is now revoked.
    ReuseDetected,
    /// The family was revoked before.
    Revoked,
    /// No such family.
    Unknown,
}

/// A signing key as stored: private material in PKCS#8 DER. Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Key id.
    pub kid: String,
    /// JOSE algorithm name.
    pub alg: String,
    /// PKCS#8 DER.
    pub pkcs8: Vec<u8>,
    /// Unix seconds when it was made.
    pub created: i64,
    /// Unix seconds from which it no longer signs (its public key stays published until the
    /// tokens it signed have expired).
    pub retired: Option<i64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created", &self.created)
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

/// The state store.
pub trait Store: Send + Sync {
    /// Revokes a token id until `exp` (after which the token is invalid anyway).
    fn revoke(&self, jti: &str, exp: i64) -> Result<(), StoreError>;
    /// Whether a token id is revoked.
    fn is_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    /// Starts a refresh family.
    fn create_family(&self, family: &Family) -> Result<(), StoreError>;
    /// Reads a family.
    fn family(&self, id: &str) -> Result<Option<Family>, StoreError>;
    /// Atomically replaces the current refresh hash if it equals `presented_hash`; otherwise
    /// detects reuse (and revokes the family) or reports why not.
    fn rotate(
        &self,
        id: &str,
        presented_hash: &str,
        new_hash: &str,
        new_exp: i64,
    ) -> Result<Rotation, StoreError>;
    /// Revokes a family.
    fn revoke_family(&self, id: &str) -> Result<(), StoreError>;
    /// Adds a signing key.
    fn put_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// All signing keys, oldest first.
    fn keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Marks a key as no longer signing from `at`.
    fn retire_key(&self, kid: &str, at: i64) -> Result<(), StoreError>;
    /// Drops revocations and families that expired before `now`.
    fn purge_expired(&self, now: i64) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests;
