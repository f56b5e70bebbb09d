//! [`TtlCache`]: a small bounded map whose entries expire, for review
//! results (upstream caches TokenReviews 2 min, allowed SubjectAccessReviews
//! 5 min and denied ones 30 s).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use tokio::time::{Duration, Instant};

/// Default most entries per cache.
pub const DEFAULT_MAX_ENTRIES: usize = 4096;

/// A bounded map with a deadline per entry. When full, expired entries are
/// dropped; if it is still full, everything is (a burst of new callers
/// costs reviews, never memory).
#[derive(Debug)]
pub(crate) struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    max_entries: usize,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(max_entries: usize) -> Self {
        TtlCache { entries: Mutex::new(HashMap::new()), max_entries: max_entries.max(1) }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some((value, until)) if *until > Instant::now() => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn insert(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.max_entries && !entries.contains_key(&key) {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(key, (value, now + ttl));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_and_the_size_is_bounded() {
        let cache = TtlCache::new(3);
        cache.insert("a", 1, Duration::from_secs(10));
        cache.insert("b", 2, Duration::from_secs(1));
        cache.insert("z", 0, Duration::ZERO);
        assert_eq!(cache.get(&"a"), Some(1));
        assert_eq!(cache.get(&"z"), None, "a zero TTL is not cached");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.get(&"b"), None);
        assert_eq!(cache.get(&"a"), Some(1));
        for (i, k) in ["c", "d", "e", "f"].into_iter().enumerate() {
            cache.insert(k, i, Duration::from_secs(10));
            assert!(cache.len() <= 3);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(cache.get(&"f"), None);
    }
}
