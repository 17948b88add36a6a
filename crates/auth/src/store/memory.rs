//! An in-memory store for tests and for the library when nothing must survive a restart.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Family, Rotation, Store, StoreError, StoredKey};

#[derive(Default)]
struct State {
    revoked: HashMap<String, i64>,
    families: HashMap<String, Family>,
    keys: Vec<StoredKey>,
}

/// State in a mutex; lost when the process ends.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, StoreError> {
        let mut guard = self
            .state
            .lock()
            .map_err(|_| StoreError("memory store lock poisoned".into()))?;
        Ok(f(&mut guard))
    }
}

impl Store for MemoryStore {
    fn revoke(&self, jti: &str, exp: i64) -> Result<(), StoreError> {
        self.with(|s| {
            s.revoked.insert(jti.to_owned(), exp);
        })
    }

    fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        self.with(|s| s.revoked.contains_key(jti))
    }

    fn create_family(&self, family: &Family) -> Result<(), StoreError> {
        self.with(|s| {
            s.families.insert(family.id.clone(), family.clone());
        })
    }

    fn family(&self, id: &str) -> Result<Option<Family>, StoreError> {
        self.with(|s| s.families.get(id).cloned())
    }

    fn rotate(
        &self,
        id: &str,
        presented_hash: &str,
        new_hash: &str,
        new_exp: i64,
    ) -> Result<Rotation, StoreError> {
        self.with(|s| match s.families.get_mut(id) {
            None => Rotation::Unknown,
            Some(f) if f.revoked => Rotation::Revoked,
            Some(f) if f.current_hash == presented_hash => {
                f.current_hash = new_hash.to_owned();
                f.exp = new_exp;
                Rotation::Rotated
            }
            Some(f) => {
                f.revoked = true;
                Rotation::ReuseDetected
            }
        })
    }

    fn revoke_family(&self, id: &str) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(f) = s.families.get_mut(id) {
                f.revoked = true;
            }
        })
    }

    fn put_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        self.with(|s| s.keys.push(key.clone()))
    }

    fn keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.with(|s| s.keys.clone())
    }

    fn retire_key(&self, kid: &str, at: i64) -> Result<(), StoreError> {
        self.with(|s| {
            for k in s
                .keys
                .iter_mut()
                .filter(|k| k.kid == kid && k.retired.is_none())
            {
                k.retired = Some(at);
            }
        })
    }

    fn purge_expired(&self, now: i64) -> Result<(), StoreError> {
        self.with(|s| {
            s.revoked.retain(|_, exp| *exp >= now);
            s.families.retain(|_, f| f.exp >= now);
        })
    }
}
