//! Identity garbage collection decisions (mark and sweep): a global
//! identity that no CiliumEndpoint references is marked; if it is still
//! unreferenced when a sweep runs a grace period later, it is deleted.
//! Reserved identities (< 256) are never collected.
//!
//! Pure: time is passed in; the controller owns the store writes.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Marks of unreferenced identities.
#[derive(Debug, Default)]
pub struct IdentityGc {
    unused_since: HashMap<u32, Instant>,
}

impl IdentityGc {
    /// One pass over the stored `identities` with the ids `in_use` by
    /// endpoints at `now`: returns the ids to delete (unreferenced for at
    /// least `grace`), sorted. Forgets ids that are gone or used again.
    pub fn sweep(
        &mut self,
        identities: impl IntoIterator<Item = u32>,
        in_use: &HashSet<u32>,
        now: Instant,
        grace: Duration,
    ) -> Vec<u32> {
        let mut marks = HashMap::new();
        let mut expired = Vec::new();
        for id in identities {
            if id < identity::MIN_GLOBAL || in_use.contains(&id) {
                continue;
            }
            let since = self.unused_since.get(&id).copied().unwrap_or(now);
            if now.duration_since(since) >= grace {
                expired.push(id);
            } else {
                marks.insert(id, since);
            }
        }
        self.unused_since = marks;
        expired.sort_unstable();
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_identities_are_deleted_after_the_grace_period_only() {
        let grace = Duration::from_secs(30);
        let t0 = Instant::now();
        let mut gc = IdentityGc::default();
        let used = HashSet::from([300]);
        // First pass marks 256 and 301; 5 (reserved) and 300 (used) untouched.
        assert!(gc.sweep([5, 256, 300, 301], &used, t0, grace).is_empty());
        // Before the grace period: nothing.
        assert!(
            gc.sweep([5, 256, 300, 301], &used, t0 + grace / 2, grace)
                .is_empty()
        );
        // 256 got referenced meanwhile: its mark is dropped.
        let used = HashSet::from([300, 256]);
        assert_eq!(
            gc.sweep([5, 256, 300, 301], &used, t0 + grace, grace),
            [301]
        );
        // Unused again: a fresh grace period starts.
        let used = HashSet::from([300]);
        assert!(
            gc.sweep([256, 300], &used, t0 + grace * 2, grace)
                .is_empty()
        );
        assert_eq!(gc.sweep([256, 300], &used, t0 + grace * 3, grace), [256]);
        // A zero grace collects on the first pass.
        assert_eq!(
            IdentityGc::default().sweep([400, 257], &used, t0, Duration::ZERO),
            [257, 400]
        );
    }
}
