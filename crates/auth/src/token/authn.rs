//! Bearer-token authentication: verification, revocation, and a bounded cache of verified tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use super::verify::{TokenError, VerifiedToken, Verifier};
use crate::fingerprint::{Fingerprint, TokenDigest};
use crate::store::{Store, StoreError};

/// Why a bearer token did not authenticate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthnError {
    /// The token is invalid (401 `invalid_token`).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The store could not say whether it is revoked (503; never an allow).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The longest a verified token is trusted from the cache without asking the store again, so a
/// revocation made by another process is seen within this time.
pub const CACHE_RECHECK: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Entry {
    token: Arc<VerifiedToken>,
    /// When the entry must go: the token's `exp`, or the recheck time, whichever is first.
    expires: Instant,
}

struct EntryExpiry;

impl moka::Expiry<TokenDigest, Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &TokenDigest,
        value: &Entry,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.expires.saturating_duration_since(created_at))
    }
}

/// Verifies bearer tokens, checks revocation, and caches the result.
pub struct TokenAuthenticator {
    verifier: arc_swap::ArcSwap<Verifier>,
    store: Arc<dyn Store>,
    cache: Cache<TokenDigest, Entry>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TokenAuthenticator {
    /// An authenticator over a verifier and a store, caching up to `capacity` tokens.
    pub fn new(verifier: Verifier, store: Arc<dyn Store>, capacity: u64) -> Self {
        TokenAuthenticator {
            verifier: arc_swap::ArcSwap::from_pointee(verifier),
            store,
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(EntryExpiry)
                .support_invalidation_closures()
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Authenticates a bearer token at `now` (Unix seconds).
    pub fn authenticate(&self, token: &str, now: i64) -> Result<Arc<VerifiedToken>, AuthnError> {
        self.check(TokenDigest::of(token.as_bytes()), token, now)
    }

    /// [`Self::authenticate`], and the token's [`Fingerprint`] for logs and audit lines, taken
    /// from the same SHA-256 that keys the cache.
    pub fn authenticate_fingerprinted(
        &self,
        token: &str,
        now: i64,
    ) -> (Fingerprint, Result<Arc<VerifiedToken>, AuthnError>) {
        let key = TokenDigest::of(token.as_bytes());
        (key.fingerprint(), self.check(key, token, now))
    }

    /// `key` is `token`'s digest: only the two public functions above call this, each with the
    /// digest it has just computed, so a cached entry is never reached through another token.
    /// Keyed by a hash, so the cache holds no token that could be read back out of memory dumps.
    fn check(
        &self,
        key: TokenDigest,
        token: &str,
        now: i64,
    ) -> Result<Arc<VerifiedToken>, AuthnError> {
        if let Some(hit) = self.cache.get(&key) {
            // A cache entry never outlives its token, but the clock may have moved past `exp`
            // between insertions and lookups.
            if hit.token.exp >= now {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(hit.token);
            }
            self.cache.invalidate(&key);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let verified = self.verifier.load().verify(token, now)?;
        if let Some(jti) = verified.jti()
            && self.store.is_revoked(jti)?
        {
            return Err(TokenError::Revoked.into());
        }
        let remaining = u64::try_from(verified.exp.saturating_sub(now)).unwrap_or(0);
        let ttl = Duration::from_secs(remaining).min(CACHE_RECHECK);
        let token = Arc::new(verified);
        self.cache.insert(
            key,
            Entry {
                token: token.clone(),
                expires: Instant::now() + ttl,
            },
        );
        Ok(token)
    }

    /// Revokes a token id until `exp` and drops it from the cache at once.
    pub fn revoke(&self, jti: &str, exp: i64) -> Result<(), StoreError> {
        self.store.revoke(jti, exp)?;
        let jti = jti.to_owned();
        // Only fails when invalidation closures are not enabled, and they are.
        let _ = self
            .cache
            .invalidate_entries_if(move |_, e| e.token.jti() == Some(jti.as_str()));
        Ok(())
    }

    /// Drops every cached token (keys or issuers changed).
    pub fn flush(&self) {
        self.cache.invalidate_all();
    }

    /// Cache hits and misses so far, for metrics.
    pub fn cache_counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// The verifier in use.
    pub fn verifier(&self) -> Arc<Verifier> {
        self.verifier.load_full()
    }

    /// Replaces the verifier (keys or issuers changed) and drops every cached token, so none
    /// verified under the old keys outlives the change.
    pub fn replace_verifier(&self, verifier: Verifier) {
        self.verifier.store(Arc::new(verifier));
        self.flush();
    }
}
