//! [`Table`]: rows of desired state by key, each with a revision and a
//! reconciliation [`Status`], and the change feed its reconciler reads.
//!
//! Writers (controllers) insert, delete or sync whole sets of rows; every
//! change takes a new table revision and makes the row pending. Deleted
//! rows are kept as tombstones until the reconciler has seen them. The lock
//! is held only for in-memory work, never across an await or a kernel
//! write.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

/// A table revision: every insert or delete takes the next one.
pub type Revision = u64;

/// A row of desired state.
pub trait Row: Clone + PartialEq + Debug + Send + Sync + 'static {
    /// The primary key.
    type Key: Ord + Clone + Debug + Send + Sync + 'static;

    /// This row's key.
    fn key(&self) -> Self::Key;
}

/// Where a row stands with its reconciler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusKind {
    /// Changed, not applied yet.
    Pending,
    /// Applied.
    Done,
    /// The last attempt failed with this message; it is retried.
    Error(String),
}

/// A row's reconciliation status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Pending, done or failed.
    pub kind: StatusKind,
    /// Failed attempts since the row last changed.
    pub attempts: u32,
    /// When the status last changed.
    pub updated_at: SystemTime,
}

impl Status {
    fn pending() -> Self {
        Self {
            kind: StatusKind::Pending,
            attempts: 0,
            updated_at: SystemTime::now(),
        }
    }

    /// The error message, when failed.
    pub fn error(&self) -> Option<&str> {
        match &self.kind {
            StatusKind::Error(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`Table::wait_reconciled`] gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The reconciler did not get there in time.
    #[error("{table}: not reconciled in time")]
    Timeout {
        /// The table.
        table: String,
    },
    /// The row was reconciled and failed.
    #[error("{table}: {error}")]
    Failed {
        /// The table.
        table: String,
        /// The error.
        error: String,
    },
}

#[derive(Debug)]
struct Entry<R> {
    row: Arc<R>,
    revision: Revision,
    status: Status,
}

#[derive(Debug)]
struct State<R: Row> {
    rows: BTreeMap<R::Key, Entry<R>>,
    /// Live rows by the revision of their last change.
    by_revision: BTreeMap<Revision, R::Key>,
    /// Deleted rows not yet seen by the reconciler.
    graveyard: BTreeMap<Revision, Arc<R>>,
    revision: Revision,
    /// Every change up to here has been attempted by the reconciler.
    reconciled: Revision,
    pending_initializers: BTreeSet<String>,
    initialized: bool,
    has_reconciler: bool,
}

#[derive(Debug)]
struct Shared<R: Row> {
    name: String,
    state: Mutex<State<R>>,
    /// Bumped on row changes and initialization (wakes the reconciler).
    rows_tx: watch::Sender<u64>,
    /// Bumped on status changes and reconciliation progress (wakes
    /// waiters).
    status_tx: watch::Sender<u64>,
}

/// A table of desired state (cheap to clone; clones share the rows).
#[derive(Debug)]
pub struct Table<R: Row> {
    shared: Arc<Shared<R>>,
}

impl<R: Row> Clone for Table<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

/// One change for the reconciler.
#[derive(Debug)]
pub(crate) enum Change<R> {
    /// The row was inserted or changed.
    Upsert(Arc<R>, Revision),
    /// The row was deleted.
    Delete(Arc<R>, Revision),
}

impl<R> Change<R> {
    pub(crate) fn revision(&self) -> Revision {
        match self {
            Change::Upsert(_, r) | Change::Delete(_, r) => *r,
        }
    }
}

/// A writer's promise to declare its initial content. The table counts as
/// initialized (and its reconciler may prune) once every registered
/// initializer is [`Initializer::done`].
#[derive(Debug)]
#[must_use = "an initializer that is never done blocks pruning forever"]
pub struct Initializer<R: Row> {
    table: Table<R>,
    name: String,
}

impl<R: Row> Initializer<R> {
    /// The writer has written its initial content.
    pub fn done(self) {
        let mut st = self.table.lock();
        st.pending_initializers.remove(&self.name);
        if st.pending_initializers.is_empty() && !st.initialized {
            st.initialized = true;
            drop(st);
            tracing::debug!(table = %self.table.name(), "table initialized");
            self.table.shared.rows_tx.send_modify(|v| *v += 1);
        }
    }
}

fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|v| *v = v.wrapping_add(1));
}

impl<R: Row> Table<R> {
    /// An empty table. It is not initialized until an initializer is
    /// registered and done, so nothing is pruned before its writers have
    /// spoken.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            shared: Arc::new(Shared {
                name: name.into(),
                state: Mutex::new(State {
                    rows: BTreeMap::new(),
                    by_revision: BTreeMap::new(),
                    graveyard: BTreeMap::new(),
                    revision: 0,
                    reconciled: 0,
                    pending_initializers: BTreeSet::new(),
                    initialized: false,
                    has_reconciler: false,
                }),
                rows_tx: watch::channel(0).0,
                status_tx: watch::channel(0).0,
            }),
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    fn lock(&self) -> MutexGuard<'_, State<R>> {
        // Every method leaves the state consistent before it can panic.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register a writer that will declare its initial content. Every
    /// writer must register before the first one is done.
    ///
    /// # Panics
    /// If the table is already initialized (a writer registered too late
    /// would have its rows pruned).
    pub fn register_initializer(&self, name: impl Into<String>) -> Initializer<R> {
        let name = name.into();
        let mut st = self.lock();
        assert!(
            !st.initialized,
            "table {}: initializer {name} registered after the table was initialized",
            self.shared.name
        );
        st.pending_initializers.insert(name.clone());
        drop(st);
        Initializer {
            table: self.clone(),
            name,
        }
    }

    /// Whether every registered writer has declared its initial content.
    pub fn initialized(&self) -> bool {
        self.lock().initialized
    }

    fn insert_locked(st: &mut State<R>, row: R) -> (Revision, bool) {
        let key = row.key();
        if let Some(e) = st.rows.get(&key)
            && *e.row == row
            && e.status.error().is_none()
        {
            return (e.revision, false);
        }
        st.revision += 1;
        let revision = st.revision;
        if let Some(old) = st.rows.get(&key) {
            st.by_revision.remove(&old.revision);
        }
        st.by_revision.insert(revision, key.clone());
        st.rows.insert(
            key,
            Entry {
                row: Arc::new(row),
                revision,
                status: Status::pending(),
            },
        );
        (revision, true)
    }

    fn delete_locked(st: &mut State<R>, key: &R::Key) -> Option<Revision> {
        let old = st.rows.remove(key)?;
        st.by_revision.remove(&old.revision);
        st.revision += 1;
        if st.has_reconciler {
            st.graveyard.insert(st.revision, old.row);
        }
        Some(st.revision)
    }

    fn changed(&self, changed: bool) {
        if changed {
            bump(&self.shared.rows_tx);
        }
    }

    /// Insert or replace a row; it becomes pending unless it is equal to
    /// the current row and that one is not failing. Returns the row's
    /// revision.
    pub fn insert(&self, row: R) -> Revision {
        let (revision, changed) = Self::insert_locked(&mut self.lock(), row);
        self.changed(changed);
        revision
    }

    /// Delete a row; returns the deletion's revision (None if absent).
    pub fn delete(&self, key: &R::Key) -> Option<Revision> {
        let revision = Self::delete_locked(&mut self.lock(), key);
        self.changed(revision.is_some());
        revision
    }

    /// Make the rows selected by `owned` exactly `rows` (inserted as by
    /// [`Table::insert`]; selected rows not in `rows` deleted), in one
    /// step. Rows `owned` does not select are left alone. Returns the
    /// table revision after the change.
    pub fn sync(&self, owned: impl Fn(&R) -> bool, rows: impl IntoIterator<Item = R>) -> Revision {
        let mut st = self.lock();
        let mut keep = BTreeSet::new();
        let mut changed = false;
        for row in rows {
            keep.insert(row.key());
            changed |= Self::insert_locked(&mut st, row).1;
        }
        let stale: Vec<R::Key> = st
            .rows
            .iter()
            .filter(|(k, e)| !keep.contains(*k) && owned(&e.row))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &stale {
            changed |= Self::delete_locked(&mut st, key).is_some();
        }
        let revision = st.revision;
        drop(st);
        self.changed(changed);
        revision
    }

    /// The row with `key`, its revision and status.
    pub fn get(&self, key: &R::Key) -> Option<(Arc<R>, Revision, Status)> {
        let st = self.lock();
        st.rows
            .get(key)
            .map(|e| (e.row.clone(), e.revision, e.status.clone()))
    }

    /// Every row with its revision and status, by key.
    pub fn rows(&self) -> Vec<(Arc<R>, Revision, Status)> {
        let st = self.lock();
        st.rows
            .values()
            .map(|e| (e.row.clone(), e.revision, e.status.clone()))
            .collect()
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.lock().rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.lock().rows.is_empty()
    }

    /// The latest revision.
    pub fn revision(&self) -> Revision {
        self.lock().revision
    }

    /// Wait until the reconciler has attempted every change up to
    /// `revision` (for example a deletion's).
    pub async fn wait_reconciled(
        &self,
        revision: Revision,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        self.wait(timeout, || {
            (self.lock().reconciled >= revision).then_some(Ok(()))
        })
        .await
    }

    /// Wait until the row of `key` satisfies `accept` and its reconciler
    /// has applied it: `Ok` when done, its error when the attempt failed.
    pub async fn wait_row(
        &self,
        key: &R::Key,
        accept: impl Fn(&R) -> bool,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        self.wait(timeout, || {
            let st = self.lock();
            let e = st.rows.get(key).filter(|e| accept(&e.row))?;
            match &e.status.kind {
                StatusKind::Pending => None,
                StatusKind::Done => Some(Ok(())),
                StatusKind::Error(error) => Some(Err(WaitError::Failed {
                    table: self.name().to_string(),
                    error: error.clone(),
                })),
            }
        })
        .await
    }

    /// Re-evaluate `check` after every row or status change until it
    /// gives an outcome, or time out.
    async fn wait(
        &self,
        timeout: Duration,
        check: impl Fn() -> Option<Result<(), WaitError>>,
    ) -> Result<(), WaitError> {
        let mut rows = self.shared.rows_tx.subscribe();
        let mut status = self.shared.status_tx.subscribe();
        let outcome = async {
            loop {
                if let Some(outcome) = check() {
                    return outcome;
                }
                // Both senders live as long as the table.
                tokio::select! {
                    _ = rows.changed() => {}
                    _ = status.changed() => {}
                }
            }
        };
        tokio::time::timeout(timeout, outcome)
            .await
            .unwrap_or_else(|_| {
                Err(WaitError::Timeout {
                    table: self.name().to_string(),
                })
            })
    }

    // ---- the reconciler's side ----

    /// Mark the table as reconciled by one reconciler (deletes are kept as
    /// tombstones from now on). Panics on a second reconciler: one target,
    /// one reconciler.
    pub(crate) fn attach_reconciler(&self) {
        let mut st = self.lock();
        assert!(
            !st.has_reconciler,
            "table {} already has a reconciler",
            self.shared.name
        );
        st.has_reconciler = true;
    }

    pub(crate) fn subscribe_rows(&self) -> watch::Receiver<u64> {
        self.shared.rows_tx.subscribe()
    }

    /// Up to `limit` changes after `after`, in revision order, and the
    /// revision they reach (the table's revision when all were taken).
    pub(crate) fn changes(&self, after: Revision, limit: usize) -> (Vec<Change<R>>, Revision) {
        let st = self.lock();
        let upserts = st.by_revision.range(after + 1..).map(|(rev, key)| {
            let e = &st.rows[key];
            Change::Upsert(e.row.clone(), *rev)
        });
        let deletes = st
            .graveyard
            .range(after + 1..)
            .map(|(rev, row)| Change::Delete(row.clone(), *rev));
        let mut all: Vec<Change<R>> = upserts.chain(deletes).collect();
        all.sort_by_key(Change::revision);
        if all.len() > limit {
            all.truncate(limit);
            let upto = all.last().map_or(after, Change::revision);
            (all, upto)
        } else {
            (all, st.revision)
        }
    }

    /// The current row of `key` and its revision.
    pub(crate) fn current(&self, key: &R::Key) -> Option<(Arc<R>, Revision)> {
        self.lock()
            .rows
            .get(key)
            .map(|e| (e.row.clone(), e.revision))
    }

    /// Record the outcome of attempts on live rows (ignored for rows that
    /// changed since), drop tombstones up to `upto`, and mark every change
    /// up to `upto` as attempted. Returns the attempt count of each
    /// recorded failure.
    pub(crate) fn commit(
        &self,
        results: Vec<(R::Key, Revision, Result<(), String>)>,
        upto: Revision,
    ) -> Vec<(R::Key, Revision, u32)> {
        let mut failures = Vec::new();
        let mut st = self.lock();
        let now = SystemTime::now();
        for (key, revision, result) in results {
            let Some(e) = st.rows.get_mut(&key).filter(|e| e.revision == revision) else {
                continue;
            };
            match result {
                Ok(()) => {
                    e.status = Status {
                        kind: StatusKind::Done,
                        attempts: 0,
                        updated_at: now,
                    };
                }
                Err(error) => {
                    e.status = Status {
                        kind: StatusKind::Error(error),
                        attempts: e.status.attempts + 1,
                        updated_at: now,
                    };
                    failures.push((key, revision, e.status.attempts));
                }
            }
        }
        let keep = st.graveyard.split_off(&(upto + 1));
        st.graveyard = keep;
        st.reconciled = st.reconciled.max(upto);
        drop(st);
        bump(&self.shared.status_tx);
        failures
    }

    /// Every live row (the desired set for prune and refresh).
    pub(crate) fn snapshot(&self) -> Vec<(Arc<R>, Revision)> {
        self.lock()
            .rows
            .values()
            .map(|e| (e.row.clone(), e.revision))
            .collect()
    }
}
