//! The seed's SessionManager, done properly (DESIGN.md section 9): sliding idle timeout, absolute
//! lifetime, a per-principal cap checked first, then a global cap that evicts the least recently
//! active session in O(log n), and sweeps that touch only expired entries.
//!
//! The table is synchronous and takes time as an argument, so it is tested without a clock; the
//! gateway keeps it behind a mutex and closes what it evicts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who a session belongs to: `(issuer, subject, client_id)` (DESIGN.md section 3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    /// `None` for the gateway's own tokens.
    pub issuer: Option<String>,
    /// The subject.
    pub subject: String,
    /// The OAuth client, when known.
    pub client_id: Option<String>,
}

/// Limits of the table.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Idle timeout.
    pub idle: Duration,
    /// Absolute lifetime.
    pub lifetime: Duration,
    /// Global cap.
    pub max_sessions: usize,
    /// Per-owner cap.
    pub max_per_owner: usize,
}

/// Why a lookup found no usable session. Each is answered with 404, alike, so a caller learns
/// nothing about other principals' sessions.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss<S> {
    /// No such id (never minted, deleted, evicted, or from before a restart).
    Unknown,
    /// It belongs to another principal; it is left untouched.
    NotOwner,
    /// It expired just now and was removed; the value is returned to be closed.
    Expired(S),
}

/// An ordering key: time plus a sequence number that makes every key unique.
type Key = (Instant, u64);

struct Slot<S> {
    value: S,
    owner: Owner,
    created: Key,
    active: Key,
}

/// Live sessions by id.
pub struct SessionTable<S> {
    limits: Limits,
    by_id: HashMap<Arc<str>, Slot<S>>,
    by_activity: BTreeMap<Key, Arc<str>>,
    by_creation: BTreeMap<Key, Arc<str>>,
    per_owner: HashMap<Owner, Vec<Arc<str>>>,
    seq: u64,
}

impl<S: Clone> SessionTable<S> {
    /// An empty table.
    pub fn new(limits: Limits) -> Self {
        SessionTable {
            limits,
            by_id: HashMap::new(),
            by_activity: BTreeMap::new(),
            by_creation: BTreeMap::new(),
            per_owner: HashMap::new(),
            seq: 0,
        }
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether `id` is live (expired or not).
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn key(&mut self, now: Instant) -> Key {
        self.seq += 1;
        (now, self.seq)
    }

    /// Adds a session under a fresh `id`; returns the sessions evicted to make room (the owner's
    /// own least recently active first when it is at its cap, else the globally least recent).
    pub fn insert(&mut self, id: Arc<str>, owner: Owner, value: S, now: Instant) -> Vec<S> {
        let mut evicted = Vec::new();
        let owned = self.per_owner.get(&owner).map_or(0, Vec::len);
        if owned >= self.limits.max_per_owner {
            let oldest = self.per_owner.get(&owner).and_then(|ids| {
                ids.iter()
                    .filter_map(|i| self.by_id.get(i).map(|s| (s.active, i.clone())))
                    .min()
                    .map(|(_, i)| i)
            });
            if let Some(v) = oldest.and_then(|i| self.remove(&i)) {
                evicted.push(v);
            }
        }
        while self.by_id.len() >= self.limits.max_sessions {
            let Some((_, oldest)) = self.by_activity.first_key_value() else {
                break;
            };
            let oldest = oldest.clone();
            match self.remove(&oldest) {
                Some(v) => evicted.push(v),
                None => break,
            }
        }
        let created = self.key(now);
        self.by_activity.insert(created, id.clone());
        self.by_creation.insert(created, id.clone());
        self.per_owner
            .entry(owner.clone())
            .or_default()
            .push(id.clone());
        self.by_id.insert(
            id,
            Slot {
                value,
                owner,
                created,
                active: created,
            },
        );
        evicted
    }

    fn expired(&self, slot: &Slot<S>, now: Instant) -> bool {
        now.saturating_duration_since(slot.active.0) > self.limits.idle
            || now.saturating_duration_since(slot.created.0) > self.limits.lifetime
    }

    /// The session `id` if `owner` owns it and it has not expired; marks it active now.
    pub fn touch(&mut self, id: &str, owner: &Owner, now: Instant) -> Result<S, Miss<S>> {
        let Some(slot) = self.by_id.get(id) else {
            return Err(Miss::Unknown);
        };
        if slot.owner != *owner {
            return Err(Miss::NotOwner);
        }
        if self.expired(slot, now) {
            return match self.remove(id) {
                Some(v) => Err(Miss::Expired(v)),
                None => Err(Miss::Unknown),
            };
        }
        let new_key = self.key(now);
        let Some(slot) = self.by_id.get_mut(id) else {
            return Err(Miss::Unknown);
        };
        let old_key = std::mem::replace(&mut slot.active, new_key);
        let value = slot.value.clone();
        if let Some(name) = self.by_activity.remove(&old_key) {
            self.by_activity.insert(new_key, name);
        }
        Ok(value)
    }

    /// Removes a session (DELETE, invalidation, eviction); `None` when it was not there.
    pub fn remove(&mut self, id: &str) -> Option<S> {
        let (name, slot) = self.by_id.remove_entry(id)?;
        self.by_activity.remove(&slot.active);
        self.by_creation.remove(&slot.created);
        if let Some(ids) = self.per_owner.get_mut(&slot.owner) {
            ids.retain(|i| *i != name);
            if ids.is_empty() {
                self.per_owner.remove(&slot.owner);
            }
        }
        Some(slot.value)
    }

    /// Removes the least recently active session (to free a capped resource).
    pub fn evict_least_active(&mut self) -> Option<S> {
        let id = self.by_activity.first_key_value()?.1.clone();
        self.remove(&id)
    }

    /// Removes every session idle too long or alive too long; visits only those.
    pub fn sweep(&mut self, now: Instant) -> Vec<S> {
        let mut gone = Vec::new();
        loop {
            let idle = self
                .by_activity
                .first_key_value()
                .filter(|(k, _)| now.saturating_duration_since(k.0) > self.limits.idle)
                .map(|(_, id)| id.clone());
            let old = self
                .by_creation
                .first_key_value()
                .filter(|(k, _)| now.saturating_duration_since(k.0) > self.limits.lifetime)
                .map(|(_, id)| id.clone());
            match idle.or(old) {
                Some(id) => gone.extend(self.remove(&id)),
                None => return gone,
            }
        }
    }

    /// Every live session.
    pub fn values(&self) -> Vec<S> {
        self.by_id.values().map(|s| s.value.clone()).collect()
    }

    /// Removes and returns every session (shutdown).
    pub fn drain(&mut self) -> Vec<S> {
        self.by_activity.clear();
        self.by_creation.clear();
        self.per_owner.clear();
        self.by_id.drain().map(|(_, s)| s.value).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(s: &str) -> Owner {
        Owner {
            issuer: None,
            subject: s.into(),
            client_id: None,
        }
    }

    fn table(max_sessions: usize, max_per_owner: usize) -> SessionTable<u32> {
        SessionTable::new(Limits {
            idle: Duration::from_secs(60),
            lifetime: Duration::from_secs(600),
            max_sessions,
            max_per_owner,
        })
    }

    #[test]
    fn another_owner_gets_a_miss_and_the_session_survives() {
        let t0 = Instant::now();
        let mut t = table(10, 10);
        t.insert("a".into(), owner("alice"), 1, t0);
        assert_eq!(t.touch("a", &owner("bob"), t0), Err(Miss::NotOwner));
        assert_eq!(t.touch("a", &owner("alice"), t0), Ok(1));
        assert_eq!(t.touch("zzz", &owner("alice"), t0), Err(Miss::Unknown));
        assert_eq!(t.remove("a"), Some(1));
        assert_eq!(t.touch("a", &owner("alice"), t0), Err(Miss::Unknown));
    }

    #[test]
    fn global_cap_evicts_the_least_recently_active() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = table(3, 10);
        t.insert("a".into(), owner("u1"), 1, t0);
        t.insert("b".into(), owner("u2"), 2, t0 + s);
        t.insert("c".into(), owner("u3"), 3, t0 + 2 * s);
        // `a` becomes the most recent; `b` is now the least recently active.
        assert_eq!(t.touch("a", &owner("u1"), t0 + 3 * s), Ok(1));
        assert_eq!(t.insert("d".into(), owner("u4"), 4, t0 + 4 * s), vec![2]);
        assert_eq!(t.len(), 3);
        assert_eq!(t.touch("b", &owner("u2"), t0 + 4 * s), Err(Miss::Unknown));
    }

    #[test]
    fn per_owner_cap_evicts_only_that_owners_oldest() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = table(100, 2);
        t.insert("other".into(), owner("bob"), 9, t0);
        t.insert("a1".into(), owner("alice"), 1, t0 + s);
        t.insert("a2".into(), owner("alice"), 2, t0 + 2 * s);
        assert_eq!(
            t.insert("a3".into(), owner("alice"), 3, t0 + 3 * s),
            vec![1]
        );
        assert_eq!(t.touch("other", &owner("bob"), t0 + 3 * s), Ok(9));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn idle_and_lifetime_expiry() {
        let t0 = Instant::now();
        let mut t = table(10, 10);
        t.insert("a".into(), owner("u"), 1, t0);
        t.insert("b".into(), owner("u"), 2, t0);
        // Kept alive by activity every 50 s, `b` still dies at its 600 s lifetime.
        for i in 1..=11 {
            let now = t0 + Duration::from_secs(50 * i);
            assert_eq!(t.touch("b", &owner("u"), now), Ok(2), "at {}s", 50 * i);
        }
        assert_eq!(
            t.touch("a", &owner("u"), t0 + Duration::from_secs(61)),
            Err(Miss::Expired(1))
        );
        assert_eq!(t.sweep(t0 + Duration::from_secs(601)), vec![2]);
        assert!(t.is_empty());
    }

    #[test]
    fn sweep_leaves_live_sessions() {
        let t0 = Instant::now();
        let mut t = table(10, 10);
        t.insert("old".into(), owner("u"), 1, t0);
        t.insert("new".into(), owner("u"), 2, t0 + Duration::from_secs(30));
        assert_eq!(t.sweep(t0 + Duration::from_secs(70)), vec![1]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.drain(), vec![2]);
    }
}
