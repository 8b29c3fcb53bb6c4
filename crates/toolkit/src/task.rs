//! Owned tasks and their supervision.
//!
//! [`OwnedTask`] is a spawned task aborted when its handle is dropped, so
//! every task has an owner and shutdown is the owner's drop. [`Supervisor`]
//! runs named tasks that report to [`Health`]: a task that fails (returns
//! an error) or panics is restarted after a growing delay and its error
//! shows in the controller status; [`Supervisor::spawn_periodic`] runs a
//! job every interval (upstream's "controller").

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::Backoff;
use crate::health::{Health, Reporter};

/// A spawned task that is aborted when dropped.
#[derive(Debug)]
pub struct OwnedTask {
    name: String,
    handle: JoinHandle<()>,
}

impl OwnedTask {
    /// Spawn `fut` as task `name`.
    pub fn spawn(name: impl Into<String>, fut: impl Future<Output = ()> + Send + 'static) -> Self {
        Self {
            name: name.into(),
            handle: tokio::spawn(fut),
        }
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Wait for the task to end.
    pub async fn join(mut self) -> Result<(), tokio::task::JoinError> {
        (&mut self.handle).await
    }
}

impl Drop for OwnedTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// First delay before restarting a failed task.
const RESTART_MIN: Duration = Duration::from_millis(500);
/// Longest delay between restarts.
const RESTART_MAX: Duration = Duration::from_secs(30);

/// Runs named tasks, restarts them when they fail or panic, reports their
/// health, and aborts them all when dropped.
#[derive(Debug, Default)]
pub struct Supervisor {
    health: Health,
    tasks: Vec<OwnedTask>,
    /// The rows of the supervised tasks: they stay listed after a
    /// one-shot task is done, until the supervisor is dropped.
    reporters: Vec<Arc<Reporter>>,
}

/// The text of a panic payload.
fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown payload".to_string());
            format!("panicked: {text}")
        }
        Err(e) => format!("cancelled: {e}"),
    }
}

/// Aborts the task when dropped (the inner task of one attempt).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Run one attempt as its own task (so a panic is contained); `Err`
/// carries the returned error or the panic text.
async fn attempt<E, Fut>(fut: Fut) -> Result<(), String>
where
    E: std::fmt::Display + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
{
    let mut inner = AbortOnDrop(tokio::spawn(fut));
    match (&mut inner.0).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(panic_message(e)),
    }
}

impl Supervisor {
    /// A supervisor reporting to `health`.
    pub fn new(health: Health) -> Self {
        Self {
            health,
            tasks: Vec::new(),
            reporters: Vec::new(),
        }
    }

    /// The registry its tasks report to.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Run `make()` as task `name` until it returns `Ok` (done). An error
    /// or a panic is reported and the task restarted after a delay that
    /// doubles from 0.5 s to 30 s. The task's row stays listed after it is
    /// done.
    pub fn spawn<E, F, Fut>(&mut self, name: &str, make: F)
    where
        E: std::fmt::Display + Send + 'static,
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.supervise(name, Backoff::new(RESTART_MIN, RESTART_MAX), None, make);
    }

    /// Run `job()` now and then every `interval` as controller `name`;
    /// a failed run is retried with backoff (0.5 s doubling up to
    /// `interval`) instead of waiting a whole interval.
    pub fn spawn_periodic<E, F, Fut>(&mut self, name: &str, interval: Duration, job: F)
    where
        E: std::fmt::Display + Send + 'static,
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let backoff = Backoff::new(RESTART_MIN.min(interval), interval);
        self.supervise(name, backoff, Some(interval), job);
    }

    /// Run `make()` under a health row: after a success, stop (`every`
    /// is None) or run again after `every`; after a failure, retry with
    /// `backoff`.
    fn supervise<E, F, Fut>(
        &mut self,
        name: &str,
        mut backoff: Backoff,
        every: Option<Duration>,
        make: F,
    ) where
        E: std::fmt::Display + Send + 'static,
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let reporter = Arc::new(self.health.register(name));
        self.reporters.push(reporter.clone());
        self.tasks.push(OwnedTask::spawn(name, async move {
            loop {
                match attempt(make()).await {
                    Ok(()) => {
                        reporter.ok();
                        let Some(every) = every else { return };
                        backoff.reset();
                        tokio::time::sleep(every).await;
                    }
                    Err(e) => restart_after_failure(&reporter, &e, &mut backoff).await,
                }
            }
        }));
    }

    /// Keep `task` alive as long as the supervisor (no restart, no row).
    pub fn own(&mut self, task: OwnedTask) {
        self.tasks.push(task);
    }

    /// Names of the tasks that have ended (finished one-shot tasks and
    /// owned tasks that returned).
    pub fn finished(&self) -> Vec<&str> {
        self.tasks
            .iter()
            .filter(|t| t.is_finished())
            .map(OwnedTask::name)
            .collect()
    }
}

async fn restart_after_failure(reporter: &Reporter, error: &str, backoff: &mut Backoff) {
    reporter.failed(error);
    let delay = backoff.next_delay();
    tracing::error!(controller = reporter.name(), error, retry_in = ?delay, "controller failed; restarting");
    tokio::time::sleep(delay).await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn restarts_failed_and_panicked_tasks_with_backoff() {
        let health = Health::new();
        let mut sup = Supervisor::new(health.clone());
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        sup.spawn("flaky", move || {
            let n = r.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                match n {
                    1 => Err("first run fails".to_string()),
                    2 => panic!("second run panics"),
                    _ => Ok(()),
                }
            }
        });
        settle().await;
        let row = &health.snapshot()[0];
        assert_eq!(row.name, "flaky");
        assert_eq!(row.last_error.as_deref(), Some("first run fails"));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        tokio::time::sleep(RESTART_MIN).await;
        settle().await;
        let row = &health.snapshot()[0];
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(row.consecutive_failures, 2);
        assert!(
            row.last_error
                .as_deref()
                .unwrap()
                .contains("second run panics"),
            "{row:?}"
        );
        // The second delay is twice the first.
        tokio::time::sleep(RESTART_MIN).await;
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        tokio::time::sleep(RESTART_MIN).await;
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert!(health.snapshot()[0].healthy());
        assert_eq!(sup.finished(), ["flaky"]);
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_jobs_and_drop_aborts() {
        let health = Health::new();
        let mut sup = Supervisor::new(health.clone());
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        sup.spawn_periodic("tick", Duration::from_secs(10), move || {
            r.fetch_add(1, Ordering::SeqCst);
            async { Ok::<(), String>(()) }
        });
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(25)).await;
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert!(health.snapshot()[0].last_success.is_some());
        drop(sup);
        settle().await;
        assert!(health.snapshot().is_empty(), "rows go with their tasks");
        tokio::time::sleep(Duration::from_secs(60)).await;
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn owned_task_aborts_on_drop() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let t = OwnedTask::spawn("holder", async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        assert_eq!(t.name(), "holder");
        drop(t);
        assert!(
            rx.await.is_err(),
            "the task was aborted and dropped its sender"
        );
    }
}
