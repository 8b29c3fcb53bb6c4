//! The allocator's local view of every `CiliumIdentity`, fed by a store
//! watch ([`store::Store::reflect`]) and by the allocator's own writes.
//!
//! Pure bookkeeping: no store access. Revisions order the updates so a
//! late watch event never undoes a newer write-through, and a deletion of
//! an old instance never removes a re-created one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::RangeInclusive;

use api::cilium::identity::CiliumIdentity;
use store::{Change, WatchEvent};

use crate::Labels;

/// One known identity.
#[derive(Debug, Clone)]
struct Entry {
    labels: Labels,
    /// Store revision of the last write seen.
    revision: i64,
}

/// Every known global identity, by id and by labels.
#[derive(Debug, Default)]
pub(crate) struct IdentityCache {
    by_id: BTreeMap<u32, Entry>,
    /// Labels -> ids carrying them (more than one only during a race).
    by_labels: HashMap<Labels, BTreeSet<u32>>,
    synced: bool,
}

fn revision(identity: &CiliumIdentity) -> i64 {
    identity
        .metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

impl IdentityCache {
    /// Whether a full snapshot has been applied.
    pub(crate) fn synced(&self) -> bool {
        self.synced
    }

    /// The lowest id in `range` carrying exactly `labels`.
    pub(crate) fn id_of(&self, labels: &Labels, range: RangeInclusive<u32>) -> Option<u32> {
        self.by_labels.get(labels)?.range(range).next().copied()
    }

    /// The labels of `id`.
    pub(crate) fn labels_of(&self, id: u32) -> Option<&Labels> {
        self.by_id.get(&id).map(|e| &e.labels)
    }

    /// Apply one change of the identity watch.
    pub(crate) fn apply(&mut self, change: Change<CiliumIdentity>) {
        match change {
            Change::Synced(items) => {
                self.by_id.clear();
                self.by_labels.clear();
                for identity in &items {
                    self.written(identity);
                }
                self.synced = true;
            }
            Change::Event(WatchEvent::Added(identity) | WatchEvent::Modified(identity)) => {
                self.written(&identity);
            }
            Change::Event(WatchEvent::Deleted(identity)) => self.deleted(&identity),
        }
    }

    /// Record an identity as stored (watch event or own write), unless a
    /// newer state is known.
    pub(crate) fn written(&mut self, identity: &CiliumIdentity) {
        let Some(id) = identity.id() else { return };
        let rev = revision(identity);
        if self.by_id.get(&id).is_some_and(|e| e.revision > rev) {
            return;
        }
        self.remove(id);
        let labels = Labels(identity.security_labels.clone());
        self.by_labels.entry(labels.clone()).or_default().insert(id);
        self.by_id.insert(
            id,
            Entry {
                labels,
                revision: rev,
            },
        );
    }

    /// Record a deletion (its revision is the deletion's), unless the
    /// known state is newer (re-created since).
    pub(crate) fn deleted(&mut self, identity: &CiliumIdentity) {
        let Some(id) = identity.id() else { return };
        if self
            .by_id
            .get(&id)
            .is_some_and(|e| e.revision > revision(identity))
        {
            return;
        }
        self.remove(id);
    }

    fn remove(&mut self, id: u32) {
        let Some(old) = self.by_id.remove(&id) else {
            return;
        };
        if let Some(ids) = self.by_labels.get_mut(&old.labels) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_labels.remove(&old.labels);
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(c.labels_of(302), Some(&app("c")));

        c.apply(Change::Synced(vec![]));
        assert_eq!(c.id_of(&app("a"), ALL), None);
        assert_eq!(c.labels_of(302), None);
    }
}
