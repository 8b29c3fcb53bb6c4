//! [`Allocator`]: cluster-wide allocation of global identities through
//! `CiliumIdentity` objects (name = decimal id, `security-labels` = the
//! labels).
//!
//! Protocol, safe with any number of allocators on any number of nodes:
//! 1. Known labels are answered from a local cache fed by a store watch
//!    (started on first use, owned by the allocator, aborted when the last
//!    clone is dropped): no store round trip once warm.
//! 2. Otherwise list all identities; an identity with exactly these labels
//!    is used (the lowest if there are several).
//! 3. Otherwise create the lowest free id. Create fails if the name exists,
//!    so one id never carries two label sets; on that failure the winner is
//!    read: same labels, use it; else try the next free id.
//! 4. After a successful create, list again: if another allocator created
//!    the same labels at a lower id meanwhile, delete ours and use theirs
//!    (lowest id wins), so racing allocators converge on one id.
//!
//! Allocation never deletes an identity it did not create; garbage
//! collection of unused identities is the operator's job.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use api::cilium::identity::CiliumIdentity;
use futures::StreamExt;
use store::Store;
use toolkit::OwnedTask;

use crate::cache::IdentityCache;
use crate::{Error, Labels};

/// Cluster-wide identity allocator over `CiliumIdentity` objects.
#[derive(Debug, Clone)]
pub struct Allocator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    min: u32,
    max: u32,
    cache: Arc<Mutex<IdentityCache>>,
    /// The task feeding `cache`, started on first use, aborted with the
    /// last handle.
    watcher: OnceLock<OwnedTask>,
}

fn lock(cache: &Mutex<IdentityCache>) -> MutexGuard<'_, IdentityCache> {
    // The cache is consistent after every method; a panic elsewhere while
    // holding the lock does not corrupt it.
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The lowest id of `range` not in `taken`.
fn lowest_free(range: RangeInclusive<u32>, taken: &BTreeSet<u32>) -> Option<u32> {
    let (min, max) = (*range.start(), *range.end());
    let mut candidate = min;
    for &id in taken.range(range) {
        if id != candidate {
            break;
        }
        candidate = candidate.checked_add(1)?;
    }
    (candidate <= max).then_some(candidate)
}

impl Allocator {
    /// An allocator for the global range `min..=max`.
    pub fn new(store: Store, min: u32, max: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                min,
                max,
                cache: Arc::default(),
                watcher: OnceLock::new(),
            }),
        }
    }

    fn range(&self) -> RangeInclusive<u32> {
        self.inner.min..=self.inner.max
    }

    /// Start the cache's watch task if it is not running yet (needs a
    /// tokio runtime, which every async caller has).
    fn ensure_watch(&self) {
        self.inner.watcher.get_or_init(|| {
            let cache = Arc::clone(&self.inner.cache);
            let mut changes = self.inner.store.reflect::<CiliumIdentity>(None);
            OwnedTask::spawn("identity-watch", async move {
                while let Some(change) = changes.next().await {
                    lock(&cache).apply(change);
                }
            })
        });
    }

    /// The identity of `labels` if the local cache knows it; no I/O. The
    /// cache is filled by a watch started by the first
    /// [`Allocator::allocate`] or [`Allocator::lookup`]; `None` until it
    /// has its first snapshot.
    pub fn cached(&self, labels: &Labels) -> Option<u32> {
        if let Some(id) = labels.reserved_id() {
            return Some(id);
        }
        let cache = lock(&self.inner.cache);
        if cache.synced() {
            cache.id_of(labels, self.range())
        } else {
            None
        }
    }

    /// The identity of `labels`: an existing CiliumIdentity with exactly
    /// these labels, or a new one (lowest free id, created with
    /// compare-and-swap; retried on conflict).
    ///
    /// Reserved labels (`reserved:host` alone, ...) give the reserved id.
    pub async fn allocate(&self, labels: &Labels) -> Result<u32, Error> {
        self.ensure_watch();
        if let Some(id) = self.cached(labels) {
            return Ok(id);
        }
        let store = &self.inner.store;
        let list = store.list::<CiliumIdentity>(None).await?;
        let mut taken = BTreeSet::new();
        let mut existing = None;
        for identity in &list.items {
            let Some(id) = identity.id().filter(|id| self.range().contains(id)) else {
                continue;
            };
            taken.insert(id);
            if identity.security_labels == labels.0 && existing.is_none_or(|e| id < e) {
                existing = Some(id);
            }
        }
        if let Some(id) = existing {
            return Ok(id);
        }
        loop {
            let candidate = lowest_free(self.range(), &taken)
                .ok_or(Error::Exhausted(self.inner.min, self.inner.max))?;
            let mut identity = CiliumIdentity::default();
            identity.metadata.name = Some(candidate.to_string());
            identity.security_labels.clone_from(&labels.0);
            match store.create(&identity).await {
                Ok(created) => return Ok(self.settle(labels, candidate, &created).await),
                Err(store::Error::AlreadyExists { .. }) => {
                    // Listed, not read: agents may list and watch
                    // identities but not get them (upstream's RBAC).
                    let name = candidate.to_string();
                    let winner = store
                        .list::<CiliumIdentity>(None)
                        .await?
                        .items
                        .into_iter()
                        .find(|i| i.metadata.name.as_deref() == Some(name.as_str()));
                    if let Some(winner) = winner.filter(|w| w.security_labels == labels.0) {
                        lock(&self.inner.cache).written(&winner);
                        return Ok(candidate);
                    }
                    // Taken by other labels (or deleted meanwhile: skip it
                    // anyway, so the loop is bounded by the range).
                    taken.insert(candidate);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// After creating `ours` for `labels`: if a lower id carries the same
    /// labels (a racing allocator), delete ours and use that one.
    async fn settle(&self, labels: &Labels, ours: u32, created: &CiliumIdentity) -> u32 {
        let store = &self.inner.store;
        let lowest = match store.list::<CiliumIdentity>(None).await {
            Ok(list) => list
                .items
                .into_iter()
                .filter(|i| i.security_labels == labels.0)
                .filter(|i| i.id().is_some_and(|id| self.range().contains(&id)))
                .min_by_key(|i| i.id()),
            Err(error) => {
                tracing::warn!(identity = ours, %error, "cannot re-check new identity for duplicates; keeping it");
                None
            }
        };
        match lowest {
            Some(theirs) if theirs.id().is_some_and(|id| id < ours) => {
                let id = theirs.id().unwrap_or(ours);
                tracing::info!(
                    identity = ours,
                    winner = id,
                    labels = ?labels.to_strings(),
                    "identity allocated concurrently elsewhere; using the lower id"
                );
                match store
                    .delete::<CiliumIdentity>(None, &ours.to_string())
                    .await
                {
                    Ok(_) => {}
                    // Unused; the operator's identity GC removes it later.
                    Err(error) => {
                        tracing::warn!(identity = ours, %error, "cannot delete duplicate identity");
                    }
                }
                lock(&self.inner.cache).written(&theirs);
                id
            }
            _ => {
                lock(&self.inner.cache).written(created);
                tracing::debug!(identity = ours, labels = ?labels.to_strings(), "allocated identity");
                ours
            }
        }
    }

    /// Labels of an identity (reserved or global), if known.
    ///
    /// Served from the local cache when it knows the id, else read from
    /// the store.
    pub async fn lookup(&self, id: u32) -> Result<Option<Labels>, Error> {
        if let Some(labels) = Labels::reserved(id) {
            return Ok(Some(labels));
        }
        self.ensure_watch();
        if let Some(labels) = lock(&self.inner.cache).labels_of(id) {
            return Ok(Some(labels));
        }
        let identity = self
            .inner
            .store
            .get::<CiliumIdentity>(None, &id.to_string())
            .await?;
        Ok(identity.map(|i| Labels(i.security_labels)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_skips_taken_ids_and_respects_the_range() {
        let taken = BTreeSet::from([256, 257, 259, 70_000]);
        assert_eq!(lowest_free(256..=65535, &taken), Some(258));
        assert_eq!(lowest_free(259..=259, &taken), None);
        assert_eq!(lowest_free(260..=300, &taken), Some(260));
        assert_eq!(lowest_free(1..=u32::MAX, &BTreeSet::from([1, 2])), Some(3));
        assert_eq!(
            lowest_free(u32::MAX..=u32::MAX, &BTreeSet::from([u32::MAX])),
            None
        );
    }
}
