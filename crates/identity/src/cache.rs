//! A per-process cache of validated tokens.
//!
//! Validating a token costs two database queries; services validate on every request. Like
//! Keystone's token middleware, each control-plane process remembers what a token granted
//! for a short time (`token_cache_ttl`, default 5 s), never past the token's own expiry.
//! Every change made through this process that can shrink what a token grants (revocation,
//! disabling, password change, role or project removal) empties the cache at once; a change
//! made by another process reaches this one within the cache TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use nefos_db::time::now_micros;

use crate::AuthContext;

/// Bounds the memory a flood of distinct tokens can take.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
struct Entry {
    context: AuthContext,
    fresh_until: i64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Bumped by every [`TokenCache::clear`], so a validation that read the database before
    /// a change cannot put its stale answer back after the change emptied the cache.
    generation: u64,
}

#[derive(Debug)]
pub(crate) struct TokenCache {
    ttl_micros: i64,
    inner: Mutex<Inner>,
}

impl TokenCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        TokenCache {
            ttl_micros: i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map stays consistent whatever a panicking holder was doing.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Taken before reading the database; pass it to [`TokenCache::insert`].
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn enabled(&self) -> bool {
        self.ttl_micros > 0
    }

    /// What the token with this hash granted, if remembered and still fresh.
    pub(crate) fn get(&self, token_hash: &str) -> Option<AuthContext> {
        if !self.enabled() {
            return None;
        }
        let now = now_micros();
        self.lock()
            .entries
            .get(token_hash)
            .filter(|e| e.fresh_until > now && e.context.expires_at > now)
            .map(|e| e.context.clone())
    }

    /// Remembers a validation that started at `generation`, unless the cache was cleared
    /// since.
    pub(crate) fn insert(&self, token_hash: String, context: AuthContext, generation: u64) {
        if !self.enabled() {
            return;
        }
        let now = now_micros();
        let fresh_until = now.saturating_add(self.ttl_micros).min(context.expires_at);
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        let entries = &mut inner.entries;
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.fresh_until > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            token_hash,
            Entry {
                context,
                fresh_until,
            },
        );
    }

    /// Forgets everything: called after any change that can invalidate tokens.
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.generation = inner.generation.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(expires_at: i64) -> AuthContext {
        AuthContext {
            user_id: "u".into(),
            user_name: "alice".into(),
            project: None,
            roles: vec![],
            methods: vec!["password".into()],
            issued_at: 0,
            expires_at,
            audit_id: "a".into(),
        }
    }

    #[test]
    fn remembers_until_cleared() {
        let cache = TokenCache::new(Duration::from_secs(60));
        cache.insert("h".into(), context(i64::MAX), cache.generation());
        assert!(cache.get("h").is_some());
        assert!(cache.get("other").is_none());
        cache.clear();
        assert!(cache.get("h").is_none());
    }

    #[test]
    fn a_validation_older_than_a_clear_is_not_remembered() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let before = cache.generation();
        cache.clear();
        cache.insert("h".into(), context(i64::MAX), before);
        assert!(cache.get("h").is_none());
    }

    #[test]
    fn never_outlives_the_token() {
        let cache = TokenCache::new(Duration::from_secs(60));
        cache.insert("h".into(), context(now_micros() - 1), cache.generation());
        assert!(cache.get("h").is_none());
    }

    #[test]
    fn a_zero_ttl_disables_it() {
        let cache = TokenCache::new(Duration::ZERO);
        cache.insert("h".into(), context(i64::MAX), cache.generation());
        assert!(cache.get("h").is_none());
    }
}
