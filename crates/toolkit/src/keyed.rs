//! [`KeyedLocks`]: one async lock per key, so operations on the same key
//! run one at a time while operations on different keys run in parallel.
//! Entries are dropped when nobody holds or waits for them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// A lock per key.
#[derive(Debug)]
pub struct KeyedLocks<K: Ord + Clone> {
    locks: Arc<Mutex<BTreeMap<K, Arc<tokio::sync::Mutex<()>>>>>,
}

impl<K: Ord + Clone> Default for KeyedLocks<K> {
    fn default() -> Self {
        Self {
            locks: Arc::default(),
        }
    }
}

/// Holds the lock of one key; releasing it forgets the key when nobody
/// else wants it.
#[derive(Debug)]
pub struct KeyGuard<K: Ord + Clone> {
    guard: Option<OwnedMutexGuard<()>>,
    key: K,
    locks: Arc<Mutex<BTreeMap<K, Arc<tokio::sync::Mutex<()>>>>>,
}

impl<K: Ord + Clone> Drop for KeyGuard<K> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map holds it: nobody waits.
        if locks
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            locks.remove(&self.key);
        }
    }
}

impl<K: Ord + Clone> KeyedLocks<K> {
    /// No locks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wait for the lock of `key`.
    pub async fn lock(&self, key: K) -> KeyGuard<K> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(key.clone()).or_default().clone()
        };
        KeyGuard {
            guard: Some(lock.lock_owned().await),
            key,
            locks: self.locks.clone(),
        }
    }

    /// Keys currently held or waited for.
    pub fn len(&self) -> usize {
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn same_key_serializes_other_keys_do_not() {
        let locks = Arc::new(KeyedLocks::new());
        let a = locks.lock("a").await;
        let _b = locks.lock("b").await; // another key: no wait
        let l = locks.clone();
        let waiter = tokio::spawn(async move {
            let _a = l.lock("a").await;
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished(), "a is held");
        drop(a);
        waiter.await.unwrap();
        assert_eq!(locks.len(), 1, "only b is left");
    }
}
