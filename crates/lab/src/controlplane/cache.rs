//! The plumbing of every controller loop: a [`Cache`] of one resource type
//! fed by [`store::Store::reflect`] (with write-through of the
//! controller's own writes so a pass never acts twice on a stale view), a
//! [`Pacer`] that debounces watch events into reconcile passes and backs
//! off after failures, and [`Pass`], which classifies write outcomes.
//!
//! No decisions live here; controllers own those.

pub use toolkit::{Cache, Pacer};

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
