//! The plumbing of every controller loop: a [`Cache`] of one resource type
//! fed by [`store::Store::reflect`] through [`feed`] (with write-through
//! of the controller's own writes so a pass never acts twice on a stale
//! view), a [`Pacer`] that debounces watch events into reconcile passes
//! and backs off after failures, and [`Pass`], which classifies write
//! outcomes.
//!
//! No decisions live here; controllers own those.

use api::Object;
use api::k8s_openapi::Resource;
use store::Store;
use toolkit::cache::{HasMeta, key_of};
pub use toolkit::{Cache, Change, Pacer};

use crate::Error;

/// Apply the next item of a reflector to `cache` and ask `pacer` for a
/// pass; the end of the stream is [`Error::WatchEnded`] (the controller
/// then restarts from a fresh list).
pub fn feed<T: Resource + HasMeta>(
    cache: &mut Cache<T>,
    change: Option<Change<T>>,
    pacer: &mut Pacer,
) -> Result<(), Error> {
    let change = change.ok_or_else(|| Error::WatchEnded {
        kind: T::KIND.to_ascii_lowercase(),
    })?;
    cache.apply(change);
    pacer.changed();
    Ok(())
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

/// A write a controller decided on.
#[derive(Debug, Clone, PartialEq)]
pub enum Write<T> {
    /// Create this object.
    Create(T),
    /// Replace the stored object (metadata incl. resourceVersion kept).
    Update(T),
    /// Delete this object.
    Delete(T),
}

impl Pass {
    /// Make `writes` against the store, keeping `cache` current with what
    /// was written (logged with the object's kind).
    pub async fn write_all<T: Object + Resource + HasMeta + Clone>(
        &mut self,
        store: &Store,
        cache: &mut Cache<T>,
        writes: Vec<Write<T>>,
    ) {
        let kind = T::KIND;
        for write in writes {
            match write {
                Write::Create(obj) => {
                    let key = key_of(obj.object_meta());
                    if let Some(w) = self.check("create", &key, store.create(&obj).await) {
                        tracing::info!(object = key, kind, "created");
                        cache.written(w);
                    }
                }
                Write::Update(obj) => {
                    let key = key_of(obj.object_meta());
                    if let Some(w) = self.check("update", &key, store.update(&obj).await) {
                        tracing::info!(object = key, kind, "updated");
                        cache.written(w);
                    }
                }
                Write::Delete(obj) => {
                    let meta = obj.object_meta();
                    let key = key_of(meta);
                    let (ns, name) = (
                        meta.namespace.as_deref(),
                        meta.name.as_deref().unwrap_or(""),
                    );
                    if self
                        .check("delete", &key, store.delete::<T>(ns, name).await)
                        .is_some()
                    {
                        tracing::info!(object = key, kind, "deleted");
                        cache.deleted(&obj);
                    }
                }
            }
        }
    }
}
