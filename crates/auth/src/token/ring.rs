//! The gateway's own signing keys: created at first start and kept in the store, rotated by
//! `mcp-guard keys rotate`, old public keys published until every token they signed has expired.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::Value;

use super::keys::{KeyError, KeySet, SigningKey, alg_name, jwks, parse_alg};
use crate::store::{Store, StoreError, StoredKey};

/// Why the key ring could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored or generated key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Signing keys: the current one and those still published.
#[derive(Debug, Clone)]
pub struct KeyRing {
    current: Arc<SigningKey>,
    published: Vec<Arc<SigningKey>>,
}

impl KeyRing {
    /// Loads the keys from the store; when none of algorithm `alg` is active, makes one.
    /// Retired keys stay published for `retention` after retirement (the longest token life).
    pub fn load_or_create(
        store: &dyn Store,
        alg: Algorithm,
        now: i64,
        retention: Duration,
    ) -> Result<Self, RingError> {
        let stored = store.keys()?;
        if !stored
            .iter()
            .any(|k| k.retired.is_none() && k.alg == alg_name(alg))
        {
            let key = SigningKey::generate(alg)?;
            store.put_key(&to_stored(&key, now))?;
            tracing::info!(target: "mcp_guard::authn", kid = key.kid(), alg = alg_name(alg), "signing key created");
        }
        Self::load(store, alg, now, retention)
    }

    /// Loads the keys from the store; the newest active key of `alg` signs.
    pub fn load(
        store: &dyn Store,
        alg: Algorithm,
        now: i64,
        retention: Duration,
    ) -> Result<Self, RingError> {
        let retention = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        let mut current = None;
        let mut published = Vec::new();
        for k in store.keys()? {
            let Some(k_alg) = parse_alg(&k.alg) else {
                continue;
            };
            let live = k.retired.is_none_or(|r| r.saturating_add(retention) > now);
            if !live {
                continue;
            }
            let key = Arc::new(SigningKey::from_pkcs8(k_alg, &k.pkcs8)?);
            if k.retired.is_none() && k_alg == alg {
                current = Some(key.clone());
            }
            published.push(key);
        }
        let current = current.ok_or_else(|| {
            RingError::Store(StoreError(format!(
                "no active {} signing key in the store; run `mcp-guard keys generate`",
                alg_name(alg)
            )))
        })?;
        Ok(KeyRing { current, published })
    }

    /// Retires the current key of `alg` and makes a new one; returns the new key id.
    pub fn rotate(store: &dyn Store, alg: Algorithm, now: i64) -> Result<String, RingError> {
        let key = SigningKey::generate(alg)?;
        for k in store.keys()? {
            if k.retired.is_none() && k.alg == alg_name(alg) {
                store.retire_key(&k.kid, now)?;
            }
        }
        store.put_key(&to_stored(&key, now))?;
        tracing::info!(target: "mcp_guard::authn", kid = key.kid(), alg = alg_name(alg), "signing key rotated");
        Ok(key.kid().to_owned())
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> Arc<SigningKey> {
        self.current.clone()
    }

    /// Every published key (current and recently retired).
    pub fn published(&self) -> &[Arc<SigningKey>] {
        &self.published
    }

    /// The JWKS document of the published keys.
    pub fn jwks(&self) -> Value {
        jwks(self.published.iter().map(|k| &**k))
    }

    /// Verification keys for the gateway's own issuer.
    pub fn key_set(&self) -> KeySet {
        let mut set = KeySet::new();
        for k in &self.published {
            set.insert(k.verify_key().clone());
        }
        set
    }
}

fn to_stored(key: &SigningKey, now: i64) -> StoredKey {
    StoredKey {
        kid: key.kid().to_owned(),
        alg: alg_name(key.alg()).to_owned(),
        pkcs8: key.pkcs8_der().to_vec(),
        created: now,
        retired: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn created_once_rotated_and_retired_keys_stay_published_for_a_while() {
        let store = MemoryStore::new();
        let day = Duration::from_secs(86_400);
        let ring = KeyRing::load_or_create(&store, Algorithm::EdDSA, 1_000, day).unwrap();
        let first = ring.current().kid().to_owned();
        // Loading again does not make another key.
        let again = KeyRing::load_or_create(&store, Algorithm::EdDSA, 2_000, day).unwrap();
        assert_eq!(again.current().kid(), first);
        assert_eq!(store.keys().unwrap().len(), 1);

        let second = KeyRing::rotate(&store, Algorithm::EdDSA, 3_000).unwrap();
        assert_ne!(second, first);
        let ring = KeyRing::load(&store, Algorithm::EdDSA, 3_001, day).unwrap();
        assert_eq!(ring.current().kid(), second);
        let kids: Vec<String> = ring.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kids, vec![first.clone(), second.clone()]);
        // A day after retirement the old key is gone from the JWKS.
        let later = KeyRing::load(&store, Algorithm::EdDSA, 3_000 + 86_401, day).unwrap();
        assert_eq!(later.published().len(), 1);
        assert!(
            later
                .key_set()
                .find(Some(first.as_str()), Algorithm::EdDSA)
                .is_err()
        );
    }
}
