//! The plumbing of every controller loop: a [`Cache`] of one resource type
//! fed by [`store::Store::reflect`] through [`feed`] (with write-through
//! of the controller's own writes so a pass never acts twice on a stale
//! view), a [`Pacer`] that debounces watch events into reconcile passes
//! and backs off after failures, and [`Pass`], which classifies write
//! outcomes.
//!
//! No decisions live here; controllers own those.

use api::k8s_openapi::Resource;
use toolkit::cache::HasMeta;
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
