//! The reconciler: one owned task per target that applies a [`Table`]'s
//! changes through the target's [`Operations`].
//!
//! Each round applies up to `round_size` changes in revision order, then
//! the retries that are due, then commits the outcomes to the rows'
//! statuses in one short lock. A failed key is retried after a delay that
//! doubles from `retry_min` to `retry_max`; any newer change to the key
//! replaces its retry. Once the table is initialized the reconciler prunes
//! (removes from the target whatever no row owns) at once and then every
//! `prune_interval`, and every `refresh_interval` it re-applies every row
//! (repairing drift such as an entry removed by hand).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use toolkit::health::Reporter;
use toolkit::{Backoff, Health, OwnedTask};

use crate::metrics::ReconcilerMetrics;
use crate::table::{Change, Revision, Row, Table};

/// A failed operation, with the message shown in the row's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OpError(pub String);

impl OpError {
    /// From anything printable.
    pub fn new(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// How one target is written. Every operation must be idempotent: it is
/// retried, and re-run on refresh.
pub trait Operations<R: Row>: Send + Sync + 'static {
    /// Make the target hold `row` (insert or replace).
    fn update(&self, row: &R) -> impl Future<Output = Result<(), OpError>> + Send;

    /// Remove `row` from the target; absent is success.
    fn delete(&self, row: &R) -> impl Future<Output = Result<(), OpError>> + Send;

    /// Remove from the target everything this reconciler owns that is not
    /// in `desired` (every live row). Runs only once the table is
    /// initialized. A target without provable ownership does nothing.
    fn prune(&self, desired: &[Arc<R>]) -> impl Future<Output = Result<(), OpError>> + Send;
}

/// A reconciler's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Name: the controller status row and the metrics' `module_id`.
    pub name: String,
    /// First retry delay of a failed key.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Time between prunes (the first runs as soon as the table is
    /// initialized).
    pub prune_interval: Duration,
    /// Time between refreshes of every row (None: never).
    pub refresh_interval: Option<Duration>,
    /// Most changes applied per round.
    pub round_size: usize,
}

impl Config {
    /// Defaults: retries 100 ms doubling to 1 min, prune every 5 min,
    /// refresh every 10 min, 1000 changes per round.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(60),
            prune_interval: Duration::from_secs(300),
            refresh_interval: Some(Duration::from_secs(600)),
            round_size: 1000,
        }
    }
}

/// A running reconciler; dropping it stops the task (the target keeps
/// what was written).
#[derive(Debug)]
pub struct Reconciler {
    name: String,
    prune: Arc<Notify>,
    _task: OwnedTask,
}

impl Reconciler {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Prune at the next opportunity (if the table is initialized).
    pub fn prune_now(&self) {
        self.prune.notify_one();
    }
}

/// A pending retry of one key.
#[derive(Debug)]
enum Retry<R> {
    /// Re-apply the row at this revision.
    Update { revision: Revision },
    /// Remove the deleted row again.
    Delete { row: Arc<R>, attempts: u32 },
}

#[derive(Debug)]
struct Pending<R> {
    retry: Retry<R>,
    due: Instant,
    error: String,
}

struct Loop<R: Row, O> {
    table: Table<R>,
    ops: O,
    cfg: Config,
    backoff: Backoff,
    metrics: ReconcilerMetrics,
    reporter: Reporter,
    /// Every change up to here has been read.
    seen: Revision,
    retries: BTreeMap<R::Key, Pending<R>>,
    next_prune: Option<Instant>,
    next_refresh: Option<Instant>,
    prune_requested: bool,
    last_prune_error: Option<String>,
}

/// Start reconciling `table` into the target behind `ops`.
///
/// # Panics
/// If `table` already has a reconciler.
pub fn spawn<R: Row, O: Operations<R>>(
    table: Table<R>,
    ops: O,
    cfg: Config,
    health: &Health,
    metrics: &ReconcilerMetrics,
) -> Reconciler {
    table.attach_reconciler();
    let prune = Arc::new(Notify::new());
    let name = cfg.name.clone();
    let state = Loop {
        reporter: health.register(&cfg.name),
        backoff: Backoff::new(cfg.retry_min, cfg.retry_max),
        next_refresh: cfg.refresh_interval.map(|d| Instant::now() + d),
        table,
        ops,
        cfg,
        metrics: metrics.clone(),
        seen: 0,
        retries: BTreeMap::new(),
        next_prune: None,
        prune_requested: false,
        last_prune_error: None,
    };
    let task = OwnedTask::spawn(format!("reconciler-{name}"), run(state, prune.clone()));
    Reconciler {
        name,
        prune,
        _task: task,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn run<R: Row, O: Operations<R>>(mut st: Loop<R, O>, prune: Arc<Notify>) {
    let mut rows = st.table.subscribe_rows();
    loop {
        rows.borrow_and_update();
        st.round().await;
        let next_retry = st.retries.values().map(|p| p.due).min();
        let more = st.table.revision() > st.seen;
        if more {
            continue; // a round was cut at round_size
        }
        tokio::select! {
            biased;
            () = prune.notified() => st.prune_requested = true,
            r = rows.changed() => if r.is_err() { return },
            () = sleep_until_opt(next_retry) => {}
            () = sleep_until_opt(st.next_prune) => {}
            () = sleep_until_opt(st.next_refresh) => {}
        }
    }
}

impl<R: Row, O: Operations<R>> Loop<R, O> {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn timed(
        &self,
        op: &str,
        f: impl Future<Output = Result<(), OpError>>,
    ) -> Result<(), String> {
        let start = Instant::now();
        let r = f.await;
        self.metrics
            .operation(self.name(), op, start.elapsed().as_secs_f64(), r.is_err());
        r.map_err(|e| e.0)
    }

    async fn round(&mut self) {
        let (changes, upto) = self.table.changes(self.seen, self.cfg.round_size);
        let mut results = Vec::new();
        let mut attempted = !changes.is_empty();
        for change in changes {
            match change {
                Change::Upsert(row, revision) => {
                    let key = row.key();
                    self.retries.remove(&key);
                    let r = self.timed("update", self.ops.update(&row)).await;
                    results.push((key, revision, r));
                }
                Change::Delete(row, _) => {
                    let key = row.key();
                    self.retries.remove(&key);
                    if let Err(error) = self.timed("delete", self.ops.delete(&row)).await {
                        self.retry_delete(key, row, 1, error);
                    }
                }
            }
        }
        self.seen = upto;
        attempted |= self.due_retries(&mut results).await;
        attempted |= self.refresh_if_due(&mut results).await;
        for (key, revision, attempts) in self.table.commit(std::mem::take(&mut results), upto) {
            let error = self
                .table
                .get(&key)
                .and_then(|(_, _, s)| s.error().map(str::to_string))
                .unwrap_or_default();
            tracing::warn!(reconciler = %self.cfg.name, key = ?key, attempts, %error, "update failed; will retry");
            self.retries.insert(
                key,
                Pending {
                    retry: Retry::Update { revision },
                    due: Instant::now() + self.backoff.delay_for(attempts),
                    error,
                },
            );
        }
        attempted |= self.prune_if_due().await;
        if attempted {
            self.metrics.round(self.name());
            self.report();
        }
    }

    fn retry_delete(&mut self, key: R::Key, row: Arc<R>, attempts: u32, error: String) {
        tracing::warn!(reconciler = %self.cfg.name, key = ?key, attempts, %error, "delete failed; will retry");
        self.retries.insert(
            key,
            Pending {
                retry: Retry::Delete { row, attempts },
                due: Instant::now() + self.backoff.delay_for(attempts),
                error,
            },
        );
    }

    /// Retry the keys whose delay has passed.
    async fn due_retries(
        &mut self,
        results: &mut Vec<(R::Key, Revision, Result<(), String>)>,
    ) -> bool {
        let now = Instant::now();
        let due: Vec<R::Key> = self
            .retries
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &due {
            let Some(pending) = self.retries.remove(key) else {
                continue;
            };
            match pending.retry {
                Retry::Update { revision } => match self.table.current(key) {
                    Some((row, current)) if current == revision => {
                        let r = self.timed("update", self.ops.update(&row)).await;
                        results.push((key.clone(), revision, r));
                    }
                    // Changed or deleted since: that change is applied
                    // on its own.
                    _ => {}
                },
                Retry::Delete { row, attempts } => {
                    if self.table.current(key).is_some() {
                        continue; // re-created: the insert owns the key now
                    }
                    if let Err(error) = self.timed("delete", self.ops.delete(&row)).await {
                        self.retry_delete(key.clone(), row, attempts + 1, error);
                    }
                }
            }
        }
        !due.is_empty()
    }

    /// Re-apply every row whose update is not failing, when a refresh is
    /// due.
    async fn refresh_if_due(
        &mut self,
        results: &mut Vec<(R::Key, Revision, Result<(), String>)>,
    ) -> bool {
        let (Some(at), Some(every)) = (self.next_refresh, self.cfg.refresh_interval) else {
            return false;
        };
        if Instant::now() < at {
            return false;
        }
        self.next_refresh = Some(Instant::now() + every);
        let rows = self.table.snapshot();
        for (row, revision) in rows {
            let key = row.key();
            if self.retries.contains_key(&key) || revision > self.seen {
                continue;
            }
            let r = self.timed("update", self.ops.update(&row)).await;
            results.push((key, revision, r));
        }
        true
    }

    async fn prune_if_due(&mut self) -> bool {
        if !self.table.initialized() {
            return false;
        }
        let due = self.prune_requested || self.next_prune.is_none_or(|at| Instant::now() >= at);
        if !due {
            return false;
        }
        self.prune_requested = false;
        self.next_prune = Some(Instant::now() + self.cfg.prune_interval);
        let desired: Vec<Arc<R>> = self.table.snapshot().into_iter().map(|(r, _)| r).collect();
        let start = Instant::now();
        let r = self.ops.prune(&desired).await;
        self.metrics
            .prune(self.name(), start.elapsed().as_secs_f64(), r.is_err());
        self.last_prune_error = match r {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(reconciler = %self.cfg.name, error = %e, "prune failed");
                Some(e.0)
            }
        };
        true
    }

    /// Health: failing while any key awaits a retry or the last prune
    /// failed; the message lists up to ten errors.
    fn report(&self) {
        self.metrics.current_errors(self.name(), self.retries.len());
        let mut errors: Vec<String> = self
            .retries
            .iter()
            .take(10)
            .map(|(k, p)| format!("{k:?}: {}", p.error))
            .collect();
        if let Some(e) = &self.last_prune_error {
            errors.push(format!("prune: {e}"));
        }
        if errors.is_empty() {
            self.reporter.ok();
        } else {
            let n = self.retries.len() + usize::from(self.last_prune_error.is_some());
            self.reporter
                .failed(format!("{n} error(s): {}", errors.join("; ")));
        }
    }
}
