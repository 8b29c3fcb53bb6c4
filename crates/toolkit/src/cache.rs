//! [`Cache`]: the latest known state of every object of one type, fed by
//! a list-then-watch reflector ([`Change`]) and by the owner's own writes
//! (so a controller pass never acts twice on a stale view).
//!
//! Resource versions order the updates: a late watch event never undoes a
//! newer write, the deletion of an old instance never removes a re-created
//! one, and an object this owner deleted is not resurrected by an older
//! event still in flight (a tombstone remembers its last version until the
//! watch confirms the deletion or a full re-list replaces everything).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<T> {
    /// The object was created.
    Added(T),
    /// The object was updated.
    Modified(T),
    /// The object was deleted (its last state).
    Deleted(T),
}

/// What a reflector yields: a full snapshot, then changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    /// The complete current state (first item, and again after every
    /// re-list following a broken or compacted watch). Replaces any cache.
    Synced(Vec<T>),
    /// One change after the last snapshot.
    Event(WatchEvent<T>),
}

/// Access to an object's metadata: implemented for every Kubernetes type
/// of `k8s-openapi`, and by the API crate for the Cilium resources.
pub trait HasMeta {
    /// The object's metadata.
    fn object_meta(&self) -> &ObjectMeta;
}

impl<T: k8s_openapi::Metadata<Ty = ObjectMeta>> HasMeta for T {
    fn object_meta(&self) -> &ObjectMeta {
        self.metadata()
    }
}

/// `namespace/name`, or `name` for cluster-scoped objects.
pub fn key_of(meta: &ObjectMeta) -> String {
    match &meta.namespace {
        Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or("")),
        None => meta.name.clone().unwrap_or_default(),
    }
}

/// The resource version as a number (the store's revision).
pub fn resource_version(meta: &ObjectMeta) -> Option<i64> {
    meta.resource_version.as_deref()?.parse().ok()
}

/// `a` is known to be strictly older than `b`.
fn older(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    matches!((resource_version(a), resource_version(b)), (Some(a), Some(b)) if a < b)
}

/// Objects of one type by [`key_of`].
#[derive(Debug)]
pub struct Cache<T> {
    objects: BTreeMap<String, T>,
    /// Objects this owner deleted, with their last resource version.
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

impl<T: HasMeta> Cache<T> {
    /// Whether a complete snapshot has been received.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Every object, sorted by key.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.objects.values()
    }

    /// The object with `key` ([`key_of`]).
    pub fn get(&self, key: &str) -> Option<&T> {
        self.objects.get(key)
    }

    /// How many objects are known.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether no object is known.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Apply one change from a reflector; returns true when it was a full
    /// snapshot.
    pub fn apply(&mut self, change: Change<T>) -> bool {
        match change {
            Change::Synced(items) => {
                self.tombstones.clear();
                self.objects = items
                    .into_iter()
                    .map(|o| (key_of(o.object_meta()), o))
                    .collect();
                self.synced = true;
                return true;
            }
            Change::Event(WatchEvent::Added(obj) | WatchEvent::Modified(obj)) => {
                let key = key_of(obj.object_meta());
                if let (Some(&dead), Some(rv)) = (
                    self.tombstones.get(&key),
                    resource_version(obj.object_meta()),
                ) && rv <= dead
                {
                    return false;
                }
                self.tombstones.remove(&key);
                self.put_unless_older(key, obj);
            }
            Change::Event(WatchEvent::Deleted(obj)) => {
                let key = key_of(obj.object_meta());
                self.tombstones.remove(&key);
                // Keep a newer instance (re-created after this deletion).
                if let Some(cur) = self.objects.get(&key)
                    && older(obj.object_meta(), cur.object_meta())
                {
                    return false;
                }
                self.objects.remove(&key);
            }
        }
        false
    }

    fn put_unless_older(&mut self, key: String, obj: T) {
        if let Some(cur) = self.objects.get(&key)
            && older(obj.object_meta(), cur.object_meta())
        {
            return;
        }
        self.objects.insert(key, obj);
    }

    /// Record the result of this owner's own create or update.
    pub fn written(&mut self, obj: T) {
        let key = key_of(obj.object_meta());
        self.tombstones.remove(&key);
        self.put_unless_older(key, obj);
    }

    /// Record this owner's own deletion of `obj`.
    pub fn deleted(&mut self, obj: &T) {
        let key = key_of(obj.object_meta());
        if let Some(rv) = resource_version(obj.object_meta()) {
            self.tombstones.insert(key.clone(), rv);
        }
        self.objects.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    fn pod(name: &str, rv: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p.metadata.resource_version = Some(rv.into());
        p
    }

    fn rv_of(c: &Cache<Pod>, name: &str) -> Option<String> {
        c.get(&format!("default/{name}"))
            .and_then(|p| p.metadata.resource_version.clone())
    }

    #[test]
    fn write_through_is_not_undone_by_stale_events() {
        let mut c = Cache::<Pod>::default();
        assert!(!c.synced());
        assert!(c.apply(Change::Synced(vec![pod("a", "5")])));
        assert!(c.synced());
        c.written(pod("a", "7"));
        assert!(!c.apply(Change::Event(WatchEvent::Modified(pod("a", "6")))));
        assert_eq!(rv_of(&c, "a").as_deref(), Some("7"));
        c.apply(Change::Event(WatchEvent::Modified(pod("a", "8"))));
        assert_eq!(rv_of(&c, "a").as_deref(), Some("8"));

        c.deleted(&pod("a", "8"));
        c.apply(Change::Event(WatchEvent::Modified(pod("a", "8"))));
        assert_eq!(rv_of(&c, "a"), None, "the tombstone holds");
        c.apply(Change::Event(WatchEvent::Deleted(pod("a", "8"))));
        c.apply(Change::Event(WatchEvent::Added(pod("a", "9"))));
        assert_eq!(rv_of(&c, "a").as_deref(), Some("9"));

        // A deletion of an older instance keeps the re-created one.
        c.written(pod("b", "12"));
        c.apply(Change::Event(WatchEvent::Deleted(pod("b", "10"))));
        assert_eq!(rv_of(&c, "b").as_deref(), Some("12"));
        assert_eq!(c.len(), 2);
        c.apply(Change::Synced(vec![]));
        assert!(c.is_empty());
    }

    #[test]
    fn keys() {
        let mut m = ObjectMeta {
            name: Some("n".into()),
            ..Default::default()
        };
        assert_eq!(key_of(&m), "n");
        m.namespace = Some("ns".into());
        assert_eq!(key_of(&m), "ns/n");
        assert_eq!(resource_version(&m), None);
    }
}
