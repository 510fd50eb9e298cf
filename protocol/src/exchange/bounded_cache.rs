//! The list cache of a shell that has the whole process to itself (the native module): one
//! map for every worker thread, bounded in bytes, least recently used entries evicted first,
//! and an upstream's lists dropped the moment it announces a change (the wasm shell has to
//! keep generation counters in Envoy's shared data, which cannot delete).

use super::ListCache;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// A [`ListCache`] in this process's memory.
#[derive(Debug)]
pub struct BoundedCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Last use → key: the oldest first.
    by_use: BTreeMap<u64, String>,
    clock: u64,
    bytes: usize,
    generations: HashMap<String, u64>,
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    used: u64,
}

impl Inner {
    fn remove(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.by_use.remove(&e.used);
            self.bytes -= key.len() + e.value.len();
        }
    }

    fn touch(&mut self, key: &str) -> u64 {
        self.clock += 1;
        let now = self.clock;
        if let Some(e) = self.entries.get_mut(key) {
            self.by_use.remove(&e.used);
            e.used = now;
            self.by_use.insert(now, key.to_string());
        }
        now
    }
}

impl BoundedCache {
    /// At most `max_bytes` of keys and values; an entry larger than that is not kept.
    pub fn new(max_bytes: usize) -> BoundedCache {
        BoundedCache {
            inner: Mutex::new(Inner::default()),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent map (every edit completes
        // before anything can panic), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes held now (keys and values).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ListCache for BoundedCache {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut inner = self.lock();
        inner.touch(key);
        inner.entries.get(key).map(|e| e.value.clone())
    }

    fn put(&self, key: &str, value: &[u8]) {
        let size = key.len() + value.len();
        let mut inner = self.lock();
        inner.remove(key);
        if size > self.max_bytes {
            return;
        }
        while inner.bytes + size > self.max_bytes {
            let Some((_, oldest)) = inner.by_use.pop_first() else {
                break;
            };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.bytes -= oldest.len() + e.value.len();
            }
        }
        inner.clock += 1;
        let used = inner.clock;
        inner.by_use.insert(used, key.to_string());
        inner.entries.insert(
            key.to_string(),
            Entry {
                value: value.to_vec(),
                used,
            },
        );
        inner.bytes += size;
    }

    fn generation(&self, upstream: &str) -> u64 {
        self.lock().generations.get(upstream).copied().unwrap_or(0)
    }

    fn bump(&self, upstream: &str) {
        let mut inner = self.lock();
        *inner.generations.entry(upstream.to_string()).or_insert(0) += 1;
        // Its lists are stale now: drop them instead of waiting for them to age out.
        let prefix = format!("list/{upstream}/");
        let stale: Vec<String> = inner
            .entries
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for key in stale {
            inner.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entries_go_first_and_the_bound_holds() {
        let cache = BoundedCache::new(30);
        cache.put("a", b"123456789"); // 10 bytes
        cache.put("b", b"123456789");
        cache.put("c", b"123456789");
        assert_eq!(cache.bytes(), 30);
        assert!(cache.get("a").is_some(), "a used last now");
        cache.put("d", b"123456789");
        assert!(cache.get("b").is_none(), "b was the least recently used");
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        assert!(cache.bytes() <= 30);
        cache.put("big", &[0; 40]);
        assert!(
            cache.get("big").is_none(),
            "larger than the bound: not kept"
        );
        cache.put("a", b"1");
        assert_eq!(cache.get("a").as_deref(), Some(&b"1"[..]), "replaced");
        assert_eq!(cache.bytes(), 2 + 10 + 10);
    }

    #[test]
    fn a_change_drops_that_upstreams_lists_only() {
        let cache = BoundedCache::new(1 << 20);
        cache.put("list/gh/v/tools/list/", b"x");
        cache.put("list/gh2/v/tools/list/", b"y");
        cache.put("era/gh", b"legacy");
        assert_eq!(cache.generation("gh"), 0);
        cache.bump("gh");
        assert_eq!(cache.generation("gh"), 1);
        assert!(cache.get("list/gh/v/tools/list/").is_none());
        assert!(
            cache.get("list/gh2/v/tools/list/").is_some(),
            "another upstream"
        );
        assert!(cache.get("era/gh").is_some(), "not a list");
        assert_eq!(cache.len(), 2);
    }
}
