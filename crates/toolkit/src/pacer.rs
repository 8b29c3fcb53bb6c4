//! [`Pacer`]: when a controller's next reconcile pass is due: soon after
//! a watch event (events within a short debounce window share one pass),
//! later after a failed pass (growing backoff), never otherwise.

use std::time::Duration;

use tokio::time::Instant;

use crate::Backoff;

/// Debounce before a pass after a watch event.
const DEBOUNCE: Duration = Duration::from_millis(20);
/// First retry delay after a failed pass; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// When the next reconcile pass is due.
#[derive(Debug)]
pub struct Pacer {
    due: Option<Instant>,
    backoff: Backoff,
}

impl Default for Pacer {
    fn default() -> Self {
        Self {
            due: None,
            backoff: Backoff::new(MIN_BACKOFF, MAX_BACKOFF),
        }
    }
}

impl Pacer {
    /// Something changed: run a pass soon (events within the debounce
    /// window share one pass).
    pub fn changed(&mut self) {
        let soon = Instant::now() + DEBOUNCE;
        self.due = Some(self.due.map_or(soon, |d| d.min(soon)));
    }

    /// A pass finished; on failure retry after a growing delay.
    pub fn finished(&mut self, ok: bool) {
        if ok {
            self.backoff.reset();
            self.due = None;
        } else {
            self.due = Some(Instant::now() + self.backoff.next_delay());
        }
    }

    /// Resolves when a pass is due; pending forever when none is.
    pub async fn due(&self) {
        match self.due {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn debounces_and_backs_off() {
        let mut p = Pacer::default();
        assert!(p.due.is_none());
        p.changed();
        let first = p.due.unwrap();
        p.changed();
        assert_eq!(p.due.unwrap(), first, "a second event shares the pass");
        p.due().await;
        p.finished(false);
        let retry1 = p.due.unwrap() - Instant::now();
        p.finished(false);
        let retry2 = p.due.unwrap() - Instant::now();
        assert_eq!(retry1, MIN_BACKOFF);
        assert_eq!(retry2, MIN_BACKOFF * 2);
        p.finished(true);
        assert!(p.due.is_none());
    }
}
