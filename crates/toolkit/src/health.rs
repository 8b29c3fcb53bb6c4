//! [`Health`]: the registry of controller status, one row per supervised
//! task, periodic controller and reconciler, as upstream's `Controller
//! Status` block shows them (`cilium-dbg status --all-controllers`): last
//! success, last error, consecutive failures and the last message.
//!
//! A [`Reporter`] is a controller's handle on its row; dropping it removes
//! the row (a controller that is gone is not listed).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One controller's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerStatus {
    /// Controller name (`bpf-map-sync-cilium_lxc`, `write-cni-file` ...).
    pub name: String,
    /// When it last succeeded.
    pub last_success: Option<SystemTime>,
    /// When it last failed.
    pub last_failure: Option<SystemTime>,
    /// Failures since the last success.
    pub consecutive_failures: u64,
    /// Failures since it started.
    pub total_failures: u64,
    /// The last error, while failing (cleared by a success).
    pub last_error: Option<String>,
}

impl ControllerStatus {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            last_success: None,
            last_failure: None,
            consecutive_failures: 0,
            total_failures: 0,
            last_error: None,
        }
    }

    /// Healthy: not failing right now.
    pub fn healthy(&self) -> bool {
        self.consecutive_failures == 0
    }
}

type Rows = BTreeMap<String, (u64, ControllerStatus)>;

/// The registry (cheap to clone; clones share the rows).
#[derive(Debug, Clone, Default)]
pub struct Health {
    rows: Arc<Mutex<Rows>>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

impl Health {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a row for `name` (replacing one of the same name) and return
    /// its reporter.
    pub fn register(&self, name: impl Into<String>) -> Reporter {
        let name = name.into();
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock()
            .insert(name.clone(), (id, ControllerStatus::new(&name)));
        Reporter {
            health: self.clone(),
            name,
            id,
        }
    }

    /// Every row, sorted by name.
    pub fn snapshot(&self) -> Vec<ControllerStatus> {
        self.lock().values().map(|(_, s)| s.clone()).collect()
    }

    /// `(healthy, total)`.
    pub fn counts(&self) -> (usize, usize) {
        let rows = self.lock();
        let healthy = rows.values().filter(|(_, s)| s.healthy()).count();
        (healthy, rows.len())
    }
}

/// A controller's handle on its row.
#[derive(Debug)]
pub struct Reporter {
    health: Health,
    name: String,
    id: u64,
}

impl Reporter {
    fn update(&self, f: impl FnOnce(&mut ControllerStatus)) {
        if let Some((id, row)) = self.health.lock().get_mut(&self.name)
            && *id == self.id
        {
            f(row);
        }
    }

    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A run succeeded.
    pub fn ok(&self) {
        self.update(|s| {
            s.last_success = Some(SystemTime::now());
            s.consecutive_failures = 0;
            s.last_error = None;
        });
    }

    /// A run failed with `error`.
    pub fn failed(&self, error: impl std::fmt::Display) {
        let error = error.to_string();
        self.update(|s| {
            s.last_failure = Some(SystemTime::now());
            s.consecutive_failures += 1;
            s.total_failures += 1;
            s.last_error = Some(error);
        });
    }

    /// The row as it is now.
    pub fn status(&self) -> Option<ControllerStatus> {
        let rows = self.health.lock();
        rows.get(&self.name)
            .filter(|(id, _)| *id == self.id)
            .map(|(_, s)| s.clone())
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        let mut rows = self.health.lock();
        if rows.get(&self.name).is_some_and(|(id, _)| *id == self.id) {
            rows.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_reporters() {
        let h = Health::new();
        let a = h.register("a");
        let b = h.register("b");
        assert_eq!(h.counts(), (2, 2));
        b.failed("boom");
        b.failed("boom again");
        let rows = h.snapshot();
        assert_eq!(rows[1].consecutive_failures, 2);
        assert_eq!(rows[1].last_error.as_deref(), Some("boom again"));
        assert_eq!(h.counts(), (1, 2));
        b.ok();
        let s = b.status().unwrap();
        assert_eq!((s.consecutive_failures, s.total_failures), (0, 2));
        assert!(s.last_error.is_none() && s.last_success.is_some());
        drop(a);
        assert_eq!(h.counts(), (1, 1));
        // A re-registered name belongs to its new reporter only.
        let b2 = h.register("b");
        drop(b);
        assert_eq!(h.counts(), (1, 1));
        drop(b2);
        assert_eq!(h.counts(), (0, 0));
    }
}
