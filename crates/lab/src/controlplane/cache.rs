//! The plumbing of every controller loop: a [`Cache`] of one resource type
//! fed by [`store::Store::reflect`] (with write-through of the
//! controller's own writes so a pass never acts twice on a stale view), a
//! [`Pacer`] that debounces watch events into reconcile passes and backs
//! off after failures, and [`Pass`], which classifies write outcomes.
//!
//! No decisions live here; controllers own those.

use std::collections::{BTreeMap, HashMap};

use api::k8s_openapi::{Metadata, apimachinery::pkg::apis::meta::v1::ObjectMeta};
pub use store::Pacer;
use store::{Change, WatchEvent};

use super::meta::key_of;

/// The latest known state of every object of one type, keyed by
/// `namespace/name`.
#[derive(Debug)]
pub struct Cache<T> {
    objects: BTreeMap<String, T>,
    /// Objects this controller deleted, with their last resourceVersion:
    /// older watch events must not resurrect them.
    tombstones: HashMap<String, i64>,
    synced: bool,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            tombstones: HashMap::new(),
            synced: false,
        }
    }
}

fn revision(meta: &ObjectMeta) -> Option<i64> {
    meta.resource_version.as_deref()?.parse().ok()
}

/// `a` is known to be strictly older than `b`.
fn older(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    matches!((revision(a), revision(b)), (Some(a), Some(b)) if a < b)
}

impl<T: Metadata<Ty = ObjectMeta>> Cache<T> {
    /// Whether a complete snapshot has been received.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Every object, sorted by key.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.objects.values()
    }

    /// Apply one change from [`store::Store::reflect`].
    pub fn apply(&mut self, change: Change<T>) {
        match change {
            Change::Synced(items) => {
                self.tombstones.clear();
                self.objects = items
                    .into_iter()
                    .map(|o| (key_of(o.metadata()), o))
                    .collect();
                self.synced = true;
            }
            Change::Event(WatchEvent::Added(obj) | WatchEvent::Modified(obj)) => {
                let key = key_of(obj.metadata());
                if let (Some(&dead), Some(rv)) =
                    (self.tombstones.get(&key), revision(obj.metadata()))
                    && rv <= dead
                {
                    return;
                }
                self.tombstones.remove(&key);
                self.put_unless_older(key, obj);
            }
            Change::Event(WatchEvent::Deleted(obj)) => {
                let key = key_of(obj.metadata());
                self.tombstones.remove(&key);
                // Keep a newer instance (re-created after this deletion).
                if let Some(cur) = self.objects.get(&key)
                    && older(obj.metadata(), cur.metadata())
                {
                    return;
                }
                self.objects.remove(&key);
            }
        }
    }

    fn put_unless_older(&mut self, key: String, obj: T) {
        if let Some(cur) = self.objects.get(&key)
            && older(obj.metadata(), cur.metadata())
        {
            return;
        }
        self.objects.insert(key, obj);
    }

    /// Record the result of this controller's own create or update.
    pub fn written(&mut self, obj: T) {
        let key = key_of(obj.metadata());
        self.tombstones.remove(&key);
        self.put_unless_older(key, obj);
    }

    /// Record this controller's own deletion of `obj`.
    pub fn deleted(&mut self, obj: &T) {
        let key = key_of(obj.metadata());
        if let Some(rv) = revision(obj.metadata()) {
            self.tombstones.insert(key.clone(), rv);
        }
        self.objects.remove(&key);
    }
}

/// Bookkeeping of one reconcile pass: logs write failures and tells the
/// [`Pacer`] whether to retry.
#[derive(Debug)]
pub struct Pass {
    controller: &'static str,
    ok: bool,
}

impl Pass {
    /// A new pass of `controller`.
    pub fn new(controller: &'static str) -> Self {
        Self {
            controller,
            ok: true,
        }
    }

    /// Whether every write succeeded (or failed harmlessly).
    pub fn ok(&self) -> bool {
        self.ok
    }

    /// Classify a write result. Conflicts and vanished objects mean a newer
    /// watch event is on its way (which triggers the next pass); anything
    /// else schedules a retry.
    pub fn check<R>(&mut self, action: &str, key: &str, result: store::Result<R>) -> Option<R> {
        match result {
            Ok(r) => {
                tracing::debug!(controller = self.controller, action, object = key, "done");
                Some(r)
            }
            Err(e @ (store::Error::Conflict { .. } | store::Error::NotFound { .. })) => {
                tracing::debug!(controller = self.controller, action, object = key, error = %e, "stale view; waiting for the watch");
                None
            }
            Err(e) => {
                tracing::warn!(controller = self.controller, action, object = key, error = %e, "write failed; will retry");
                self.ok = false;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use api::k8s_openapi::api::core::v1::Pod;

    use super::*;

    fn pod(name: &str, rv: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p.metadata.resource_version = Some(rv.into());
        p
    }

    fn rv_of(c: &Cache<Pod>, name: &str) -> Option<String> {
        c.values()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .and_then(|p| p.metadata.resource_version.clone())
    }

    #[test]
    fn write_through_is_not_undone_by_stale_events() {
        let mut c = Cache::<Pod>::default();
        assert!(!c.synced());
        c.apply(Change::Synced(vec![pod("a", "5")]));
        assert!(c.synced());
        c.written(pod("a", "7"));
        c.apply(Change::Event(WatchEvent::Modified(pod("a", "6"))));
        assert_eq!(rv_of(&c, "a").as_deref(), Some("7"));
        c.apply(Change::Event(WatchEvent::Modified(pod("a", "8"))));
        assert_eq!(rv_of(&c, "a").as_deref(), Some("8"));

        c.deleted(&pod("a", "8"));
        c.apply(Change::Event(WatchEvent::Modified(pod("a", "8"))));
        assert_eq!(rv_of(&c, "a"), None);
        c.apply(Change::Event(WatchEvent::Deleted(pod("a", "8"))));
        c.apply(Change::Event(WatchEvent::Added(pod("a", "9"))));
        assert_eq!(rv_of(&c, "a").as_deref(), Some("9"));

        // A deletion of an older instance keeps the re-created one.
        c.written(pod("b", "12"));
        c.apply(Change::Event(WatchEvent::Deleted(pod("b", "10"))));
        assert_eq!(rv_of(&c, "b").as_deref(), Some("12"));
        c.apply(Change::Synced(vec![]));
        assert_eq!(c.values().count(), 0);
    }
}
