//! Exponential backoff: a delay that doubles from `min` up to `max`, and
//! [`retry`], which runs an operation until it succeeds.

use std::time::Duration;

/// A delay doubling from `min` to `max` on every failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starting at `min`, doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay to wait now; the following one is twice as long (capped).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        d
    }

    /// The delay after `attempts` consecutive failures (1 = the first),
    /// without changing the state.
    pub fn delay_for(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(31);
        self.min.saturating_mul(1 << shift).min(self.max)
    }

    /// Back to `min` (after a success).
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Run `f` until it succeeds, logging each failure as `what` and waiting
/// with backoff from 200 ms up to 5 s between attempts.
pub async fn retry<T, E, F, Fut>(what: &str, mut f: F) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(what, error = %e, retry_in = ?delay, "retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let d: Vec<u64> = (0..5).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 5, 5]);
        b.reset();
        assert_eq!(b.next_delay().as_secs(), 1);
    }

    #[test]
    fn delay_for_attempts_never_overflows() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(60));
        assert_eq!(b.delay_for(0), Duration::from_millis(100));
        assert_eq!(b.delay_for(1), Duration::from_millis(100));
        assert_eq!(b.delay_for(2), Duration::from_millis(200));
        assert_eq!(b.delay_for(4), Duration::from_millis(800));
        assert_eq!(b.delay_for(u32::MAX), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_waits_between_failures() {
        let start = tokio::time::Instant::now();
        let mut calls = 0;
        let v: u32 = retry("test", || {
            calls += 1;
            let n = calls;
            async move { if n < 3 { Err("not yet") } else { Ok(n) } }
        })
        .await;
        assert_eq!(v, 3);
        assert_eq!(start.elapsed(), Duration::from_millis(600));
    }
}
