//! The latest known state of every object of one type, fed by
//! [`store::Store::reflect`] and by the controller's own writes (so a pass
//! never acts twice on a stale view). Revisions order the updates: a late
//! watch event never undoes a newer write, a deletion of an old instance
//! never removes a re-created one.

use std::collections::BTreeMap;

use api::Object;
use store::{Change, WatchEvent};

fn revision<T: Object>(obj: &T) -> i64 {
    obj.meta()
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

fn key<T: Object>(obj: &T) -> String {
    match obj.namespace() {
        Some(ns) => format!("{ns}/{}", obj.name()),
        None => obj.name().to_string(),
    }
}

/// Objects of one type by `namespace/name` (or `name`).
#[derive(Debug)]
pub(crate) struct Cache<T> {
    objects: BTreeMap<String, T>,
    synced: bool,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            synced: false,
        }
    }
}

impl<T: Object> Cache<T> {
    /// Whether a complete snapshot has been received.
    pub(crate) fn synced(&self) -> bool {
        self.synced
    }

    /// Every object, sorted by key.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.objects.values()
    }

    /// Apply one change from the reflector.
    pub(crate) fn apply(&mut self, change: Change<T>) {
        match change {
            Change::Synced(items) => {
                self.objects = items.into_iter().map(|o| (key(&o), o)).collect();
                self.synced = true;
            }
            Change::Event(WatchEvent::Added(obj) | WatchEvent::Modified(obj)) => self.written(obj),
            Change::Event(WatchEvent::Deleted(obj)) => {
                let key = key(&obj);
                if self
                    .objects
                    .get(&key)
                    .is_none_or(|cur| revision(cur) <= revision(&obj))
                {
                    self.objects.remove(&key);
                }
            }
        }
    }

    /// Record a stored state (own write or watch event) unless a newer one
    /// is known.
    pub(crate) fn written(&mut self, obj: T) {
        let key = key(&obj);
        if self
            .objects
            .get(&key)
            .is_some_and(|cur| revision(cur) > revision(&obj))
        {
            return;
        }
        self.objects.insert(key, obj);
    }
}

#[cfg(test)]
mod tests {
    use api::cilium::node::CiliumNode;

    use super::*;

    fn node(name: &str, rv: i64, id: &str) -> CiliumNode {
        let mut n = CiliumNode::default();
        n.metadata.name = Some(name.into());
        n.metadata.resource_version = Some(rv.to_string());
        n.spec.instance_id = Some(id.into());
        n
    }

    fn id_of(c: &Cache<CiliumNode>, name: &str) -> Option<String> {
        c.values()
            .find(|n| n.metadata.name.as_deref() == Some(name))
            .and_then(|n| n.spec.instance_id.clone())
    }

    #[test]
    fn events_are_ordered_by_revision() {
        let mut c = Cache::default();
        assert!(!c.synced());
        c.apply(Change::Synced(vec![node("a", 5, "v5")]));
        assert!(c.synced());
        c.written(node("a", 7, "v7"));
        c.apply(Change::Event(WatchEvent::Modified(node("a", 6, "v6"))));
        assert_eq!(id_of(&c, "a").as_deref(), Some("v7"));
        c.apply(Change::Event(WatchEvent::Deleted(node("a", 6, "v6"))));
        assert_eq!(id_of(&c, "a").as_deref(), Some("v7"));
        c.apply(Change::Event(WatchEvent::Deleted(node("a", 8, "v7"))));
        assert_eq!(id_of(&c, "a"), None);
        c.apply(Change::Event(WatchEvent::Added(node("a", 9, "v9"))));
        assert_eq!(id_of(&c, "a").as_deref(), Some("v9"));
        c.apply(Change::Synced(vec![]));
        assert_eq!(c.values().count(), 0);
    }
}
