//! The allocator's local view of every `CiliumIdentity`, fed by a store
//! watch ([`store::Store::reflect`]) and by the allocator's own writes.
//!
//! Pure bookkeeping: no store access. Revisions order the updates so a
//! late watch event never undoes a newer write-through, and a deletion of
//! an old instance never removes a re-created one.

use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;

use api::cilium::identity::CiliumIdentity;
use store::{Change, WatchEvent};
use toolkit::Cache;

use crate::Labels;

/// Every known global identity (the shared reflector cache), plus an
/// index from labels to the ids carrying them.
#[derive(Debug, Default)]
pub(crate) struct IdentityCache {
    objects: Cache<CiliumIdentity>,
    /// Labels -> ids carrying them (more than one only during a race).
    by_labels: HashMap<Labels, BTreeSet<u32>>,
}

fn labels(identity: &CiliumIdentity) -> Labels {
    Labels(identity.security_labels.clone())
}

impl IdentityCache {
    /// Whether a full snapshot has been applied.
    pub(crate) fn synced(&self) -> bool {
        self.objects.synced()
    }

    /// The lowest id in `range` carrying exactly `labels`.
    pub(crate) fn id_of(&self, labels: &Labels, range: RangeInclusive<u32>) -> Option<u32> {
        self.by_labels.get(labels)?.range(range).next().copied()
    }

    /// The labels of `id`.
    pub(crate) fn labels_of(&self, id: u32) -> Option<Labels> {
        self.objects.get(&id.to_string()).map(labels)
    }

    /// Apply one change of the identity watch.
    pub(crate) fn apply(&mut self, change: Change<CiliumIdentity>) {
        match change {
            Change::Synced(_) => {
                self.objects.apply(change);
                self.by_labels.clear();
                for identity in self.objects.values() {
                    if let Some(id) = identity.id() {
                        self.by_labels
                            .entry(labels(identity))
                            .or_default()
                            .insert(id);
                    }
                }
            }
            Change::Event(
                WatchEvent::Added(ref i) | WatchEvent::Modified(ref i) | WatchEvent::Deleted(ref i),
            ) => {
                let name = i.metadata.name.clone().unwrap_or_default();
                self.reindexed(&name, |objects| {
                    objects.apply(change);
                });
            }
        }
    }

    /// Record an identity as stored by the allocator itself.
    pub(crate) fn written(&mut self, identity: &CiliumIdentity) {
        let name = identity.metadata.name.clone().unwrap_or_default();
        self.reindexed(&name, |objects| objects.written(identity.clone()));
    }

    /// Change the object `name` with `f`, keeping the label index in step.
    fn reindexed(&mut self, name: &str, f: impl FnOnce(&mut Cache<CiliumIdentity>)) {
        let before = self
            .objects
            .get(name)
            .and_then(|i| Some((i.id()?, labels(i))));
        f(&mut self.objects);
        let after = self
            .objects
            .get(name)
            .and_then(|i| Some((i.id()?, labels(i))));
        if before == after {
            return;
        }
        if let Some((id, old)) = before
            && let Some(ids) = self.by_labels.get_mut(&old)
        {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_labels.remove(&old);
            }
        }
        if let Some((id, new)) = after {
            self.by_labels.entry(new).or_default().insert(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn identity(id: u32, app: &str, rv: i64) -> CiliumIdentity {
        let mut i = CiliumIdentity::default();
        i.metadata.name = Some(id.to_string());
        i.metadata.resource_version = Some(rv.to_string());
        i.security_labels = BTreeMap::from([("k8s:app".into(), app.into())]);
        i
    }

    const ALL: RangeInclusive<u32> = 1..=u32::MAX;

    fn app(name: &str) -> Labels {
        Labels(BTreeMap::from([("k8s:app".into(), name.into())]))
    }

    #[test]
    fn snapshot_events_and_write_through_are_ordered_by_revision() {
        let mut c = IdentityCache::default();
        assert!(!c.synced());
        c.apply(Change::Synced(vec![identity(300, "a", 5)]));
        assert!(c.synced());
        assert_eq!(c.id_of(&app("a"), ALL), Some(300));

        // Own write at rv 9, then a stale event at rv 7: the write stays.
        c.written(&identity(301, "b", 9));
        c.apply(Change::Event(WatchEvent::Modified(identity(301, "x", 7))));
        assert_eq!(c.id_of(&app("b"), ALL), Some(301));
        assert_eq!(c.id_of(&app("x"), ALL), None);

        // Duplicates: the lowest id wins; deleting it exposes the other.
        c.apply(Change::Event(WatchEvent::Added(identity(299, "b", 10))));
        assert_eq!(c.id_of(&app("b"), ALL), Some(299));
        c.apply(Change::Event(WatchEvent::Deleted(identity(299, "b", 11))));
        assert_eq!(c.id_of(&app("b"), ALL), Some(301));
        assert_eq!(c.id_of(&app("b"), 1..=300), None);

        // A deletion older than the known state (re-created) is ignored.
        c.apply(Change::Event(WatchEvent::Added(identity(302, "c", 20))));
        c.apply(Change::Event(WatchEvent::Deleted(identity(302, "c", 15))));
        assert_eq!(c.labels_of(302), Some(app("c")));

        c.apply(Change::Synced(vec![]));
        assert_eq!(c.id_of(&app("a"), ALL), None);
        assert_eq!(c.labels_of(302), None);
    }
}
