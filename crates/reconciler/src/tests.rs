//! The framework against a fake target, on tokio's paused clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use toolkit::Health;

use crate::{Config, OpError, Operations, ReconcilerMetrics, Row, StatusKind, Table, WaitError};

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    key: u32,
    value: &'static str,
}

impl Row for Entry {
    type Key = u32;
    fn key(&self) -> u32 {
        self.key
    }
}

/// A fake kernel map: contents, a log of calls, and keys made to fail.
#[derive(Debug, Default)]
struct Target {
    map: BTreeMap<u32, &'static str>,
    log: Vec<String>,
    /// key -> how many more updates or deletes of it fail.
    failing: BTreeMap<u32, u32>,
}

#[derive(Debug, Clone, Default)]
struct Fake(Arc<Mutex<Target>>);

impl Fake {
    fn with<T>(&self, f: impl FnOnce(&mut Target) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }
    fn map(&self) -> BTreeMap<u32, &'static str> {
        self.with(|t| t.map.clone())
    }
    fn log(&self) -> Vec<String> {
        self.with(|t| std::mem::take(&mut t.log))
    }
    fn fail(&self, key: u32, times: u32) {
        self.with(|t| t.failing.insert(key, times));
    }
    fn attempt(&self, what: String, key: u32) -> Result<(), OpError> {
        self.with(|t| {
            t.log.push(what);
            match t.failing.get_mut(&key) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    Err(OpError(format!("key {key} is stuck")))
                }
                _ => Ok(()),
            }
        })
    }
}

impl Operations<Entry> for Fake {
    async fn update(&self, row: &Entry) -> Result<(), OpError> {
        self.attempt(format!("update({})", row.key), row.key)?;
        self.with(|t| t.map.insert(row.key, row.value));
        Ok(())
    }

    async fn delete(&self, row: &Entry) -> Result<(), OpError> {
        self.attempt(format!("delete({})", row.key), row.key)?;
        self.with(|t| t.map.remove(&row.key));
        Ok(())
    }

    async fn prune(&self, desired: &[Arc<Entry>]) -> Result<(), OpError> {
        let keep: BTreeSet<u32> = desired.iter().map(|r| r.key).collect();
        self.with(|t| {
            t.log.push("prune".to_string());
            t.map.retain(|k, _| keep.contains(k));
        });
        Ok(())
    }
}

struct Setup {
    table: Table<Entry>,
    fake: Fake,
    health: Health,
    metrics: ReconcilerMetrics,
    _reconciler: crate::Reconciler,
}

fn setup(configure: impl FnOnce(&mut Config)) -> Setup {
    let table = Table::new("test");
    let fake = Fake::default();
    let health = Health::new();
    let metrics = ReconcilerMetrics::new();
    let mut cfg = Config::new("test-map");
    configure(&mut cfg);
    let reconciler = crate::spawn(table.clone(), fake.clone(), cfg, &health, &metrics);
    Setup {
        table,
        fake,
        health,
        metrics,
        _reconciler: reconciler,
    }
}

fn e(key: u32, value: &'static str) -> Entry {
    Entry { key, value }
}

/// Let the reconciler task run until it blocks.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(start_paused = true)]
async fn rows_are_applied_in_order_and_marked_done() {
    let s = setup(|_| {});
    let r1 = s.table.insert(e(1, "a"));
    let r2 = s.table.insert(e(2, "b"));
    s.table.wait_row(&2, |_| true, WAIT).await.unwrap();
    assert!(r1 < r2);
    assert_eq!(s.fake.map(), BTreeMap::from([(1, "a"), (2, "b")]));
    assert_eq!(s.fake.log(), ["update(1)", "update(2)"]);
    assert_eq!(s.table.get(&1).unwrap().2.kind, StatusKind::Done);

    // An equal row is not a change; a different one is.
    assert_eq!(s.table.insert(e(1, "a")), r1);
    let r3 = s.table.insert(e(1, "c"));
    let r4 = s.table.delete(&2).unwrap();
    s.table.wait_reconciled(r4, WAIT).await.unwrap();
    assert!(r3 > r2);
    assert_eq!(s.fake.map(), BTreeMap::from([(1, "c")]));
    assert_eq!(s.fake.log(), ["update(1)", "delete(2)"]);
    assert!(s.health.snapshot()[0].healthy());
}

#[tokio::test(start_paused = true)]
async fn failed_update_is_retried_with_backoff_and_shown_in_health() {
    let s = setup(|_| {});
    s.fake.fail(7, 2);
    s.table.insert(e(7, "x"));
    let err = s.table.wait_row(&7, |_| true, WAIT).await.unwrap_err();
    assert_eq!(
        err,
        WaitError::Failed {
            table: "test".into(),
            error: "key 7 is stuck".into()
        }
    );
    let (_, _, status) = s.table.get(&7).unwrap();
    assert_eq!(status.kind, StatusKind::Error("key 7 is stuck".into()));
    assert_eq!(status.attempts, 1);
    let row = &s.health.snapshot()[0];
    assert_eq!(row.name, "test-map");
    assert_eq!(
        row.last_error.as_deref(),
        Some("1 error(s): 7: key 7 is stuck")
    );
    assert_eq!(s.fake.log(), ["update(7)"]);

    // First retry after 100 ms, the second 200 ms after that (t = 300).
    tokio::time::sleep(Duration::from_millis(99)).await;
    settle().await;
    assert!(s.fake.log().is_empty());
    tokio::time::sleep(Duration::from_millis(2)).await;
    settle().await;
    assert_eq!(s.fake.log(), ["update(7)"]);
    assert_eq!(s.table.get(&7).unwrap().2.attempts, 2);
    assert_eq!(s.health.snapshot()[0].consecutive_failures, 2);
    tokio::time::sleep(Duration::from_millis(197)).await;
    settle().await;
    assert!(s.fake.log().is_empty());
    tokio::time::sleep(Duration::from_millis(3)).await;
    settle().await;
    assert_eq!(s.fake.log(), ["update(7)"]);
    assert_eq!(s.table.get(&7).unwrap().2.kind, StatusKind::Done);
    assert_eq!(s.fake.map(), BTreeMap::from([(7, "x")]));
    let row = &s.health.snapshot()[0];
    assert!(row.healthy() && row.last_error.is_none(), "{row:?}");
    assert_eq!(row.total_failures, 2);

    let mut registry = prometheus_client::registry::Registry::default();
    s.metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(r#"cilium_reconciler_errors_total{module_id="test-map"} 2"#),
        "{text}"
    );
    assert!(text.contains(r#"cilium_reconciler_errors_current{module_id="test-map"} 0"#));
    assert!(text.contains(
        r#"cilium_reconciler_duration_seconds_count{module_id="test-map",op="update"} 3"#
    ));
}

#[tokio::test(start_paused = true)]
async fn a_newer_change_replaces_a_pending_retry() {
    let s = setup(|_| {});
    s.fake.fail(1, 1);
    let rev = s.table.insert(e(1, "old"));
    s.table.wait_reconciled(rev, WAIT).await.unwrap();
    s.table.insert(e(1, "new"));
    s.table.wait_row(&1, |_| true, WAIT).await.unwrap();
    assert_eq!(s.fake.log(), ["update(1)", "update(1)"]);
    tokio::time::sleep(Duration::from_secs(120)).await;
    settle().await;
    assert!(s.fake.log().is_empty(), "the stale retry is gone");
    assert_eq!(s.fake.map(), BTreeMap::from([(1, "new")]));
}

#[tokio::test(start_paused = true)]
async fn failed_delete_is_retried_unless_the_key_comes_back() {
    let s = setup(|_| {});
    let rev = s.table.insert(e(3, "a"));
    s.table.wait_reconciled(rev, WAIT).await.unwrap();
    s.fake.fail(3, 1);
    let rev = s.table.delete(&3).unwrap();
    s.table.wait_reconciled(rev, WAIT).await.unwrap();
    assert_eq!(s.fake.map(), BTreeMap::from([(3, "a")]));
    assert!(!s.health.snapshot()[0].healthy());
    tokio::time::sleep(Duration::from_millis(101)).await;
    settle().await;
    assert!(s.fake.map().is_empty(), "the delete was retried");
    assert!(s.health.snapshot()[0].healthy());
    s.fake.log();

    // A failed delete followed by a re-insert: the insert wins.
    let rev = s.table.insert(e(4, "a"));
    s.table.wait_reconciled(rev, WAIT).await.unwrap();
    s.fake.fail(4, 1);
    let rev = s.table.delete(&4).unwrap();
    s.table.wait_reconciled(rev, WAIT).await.unwrap();
    s.table.insert(e(4, "b"));
    s.table.wait_row(&4, |_| true, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    settle().await;
    assert_eq!(s.fake.map(), BTreeMap::from([(4, "b")]));
    assert_eq!(s.fake.log(), ["update(4)", "delete(4)", "update(4)"]);
}

#[tokio::test(start_paused = true)]
async fn prune_waits_for_initializers_then_removes_orphans_only() {
    let s = setup(|c| c.prune_interval = Duration::from_secs(60));
    // What a previous agent left in the target: one live entry, one orphan.
    s.fake.with(|t| {
        t.map.insert(1, "live");
        t.map.insert(9, "orphan");
    });
    let restore = s.table.register_initializer("restore");
    let sync = s.table.register_initializer("cluster");
    let rev = s.table.insert(e(1, "live"));
    s.table.wait_reconciled(rev, WAIT).await.unwrap();
    restore.done();
    settle().await;
    assert!(!s.table.initialized());
    assert_eq!(s.fake.map().len(), 2, "no prune before every writer spoke");
    sync.done();
    settle().await;
    assert!(s.table.initialized());
    assert_eq!(s.fake.map(), BTreeMap::from([(1, "live")]));
    assert_eq!(s.fake.log(), ["update(1)", "prune"]);

    // Then periodically, and on request.
    s.fake.with(|t| t.map.insert(10, "orphan"));
    tokio::time::sleep(Duration::from_secs(61)).await;
    settle().await;
    assert_eq!(s.fake.map(), BTreeMap::from([(1, "live")]));
    s.fake.with(|t| t.map.insert(11, "orphan"));
    s._reconciler.prune_now();
    settle().await;
    assert_eq!(s.fake.map(), BTreeMap::from([(1, "live")]));
    assert_eq!(s.fake.log(), ["prune", "prune"]);
}

#[tokio::test(start_paused = true)]
async fn refresh_repairs_drift() {
    let s = setup(|c| c.refresh_interval = Some(Duration::from_secs(30)));
    let rev = s.table.insert(e(5, "v"));
    s.table.wait_reconciled(rev, WAIT).await.unwrap();
    s.fake.with(|t| t.map.clear()); // removed behind our back
    tokio::time::sleep(Duration::from_secs(31)).await;
    settle().await;
    assert_eq!(s.fake.map(), BTreeMap::from([(5, "v")]));
}

#[tokio::test(start_paused = true)]
async fn sync_replaces_only_the_owned_rows() {
    let s = setup(|_| {});
    s.table.insert(e(100, "other writer"));
    s.table.sync(|r| r.key < 100, [e(1, "a"), e(2, "b")]);
    let rev = s.table.sync(|r| r.key < 100, [e(2, "b"), e(3, "c")]);
    s.table.wait_reconciled(rev, WAIT).await.unwrap();
    assert_eq!(
        s.fake.map(),
        BTreeMap::from([(2, "b"), (3, "c"), (100, "other writer")])
    );
    assert_eq!(s.table.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn wait_row_waits_for_the_accepted_version() {
    let s = setup(|_| {});
    let table = s.table.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        table.insert(e(8, "second"));
    });
    s.table.insert(e(8, "first"));
    s.table
        .wait_row(&8, |r| r.value == "second", WAIT)
        .await
        .unwrap();
    writer.await.unwrap();
    assert_eq!(s.fake.map(), BTreeMap::from([(8, "second")]));
    let err = s
        .table
        .wait_row(&9, |_| true, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, WaitError::Timeout { .. }));
}

#[tokio::test(start_paused = true)]
async fn wait_times_out_without_a_reconciler() {
    let table: Table<Entry> = Table::new("lonely");
    let rev = table.insert(e(1, "a"));
    let err = table
        .wait_reconciled(rev, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "lonely: not reconciled in time");
}

#[test]
#[should_panic(expected = "registered after the table was initialized")]
fn late_initializers_are_a_bug() {
    let table: Table<Entry> = Table::new("t");
    table.register_initializer("first").done();
    let _late = table.register_initializer("late");
}

#[tokio::test]
#[should_panic(expected = "already has a reconciler")]
async fn one_reconciler_per_table() {
    let s = setup(|_| {});
    let _second = crate::spawn(
        s.table.clone(),
        Fake::default(),
        Config::new("second"),
        &s.health,
        &s.metrics,
    );
}
