//! [`ReconcilerMetrics`]: upstream's `cilium_reconciler_*` families, one
//! set shared by every reconciler of a process and labelled by
//! `module_id` (the reconciler's name).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Module {
    module_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModuleOp {
    module_id: String,
    op: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 10 µs .. ~2.6 s.
    Histogram::new(exponential_buckets(0.00001, 4.0, 10))
}

/// The metric families (cheap to clone; clones share the values).
#[derive(Debug, Clone)]
pub struct ReconcilerMetrics {
    rounds: Family<Module, Counter>,
    duration: HistogramFamily<ModuleOp>,
    errors_total: Family<Module, Counter>,
    errors_current: Family<Module, Gauge>,
    prunes: Family<Module, Counter>,
    prune_errors: Family<Module, Counter>,
    prune_duration: HistogramFamily<Module>,
}

impl Default for ReconcilerMetrics {
    fn default() -> Self {
        Self {
            rounds: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            errors_total: Family::default(),
            errors_current: Family::default(),
            prunes: Family::default(),
            prune_errors: Family::default(),
            prune_duration: Family::new_with_constructor(duration_histogram),
        }
    }
}

fn module(name: &str) -> Module {
    Module {
        module_id: name.to_string(),
    }
}

impl ReconcilerMetrics {
    /// Empty families.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the families to `registry` (they keep their values: a fresh
    /// registry per scrape is fine).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "cilium_reconciler_count",
            "Reconciliation rounds",
            self.rounds.clone(),
        );
        registry.register(
            "cilium_reconciler_duration_seconds",
            "Duration of reconciliation operations",
            self.duration.clone(),
        );
        registry.register(
            "cilium_reconciler_errors",
            "Failed reconciliation operations",
            self.errors_total.clone(),
        );
        registry.register(
            "cilium_reconciler_errors_current",
            "Objects currently failing to reconcile",
            self.errors_current.clone(),
        );
        registry.register(
            "cilium_reconciler_prune_count",
            "Prune rounds",
            self.prunes.clone(),
        );
        registry.register(
            "cilium_reconciler_prune_errors",
            "Failed prune rounds",
            self.prune_errors.clone(),
        );
        registry.register(
            "cilium_reconciler_prune_duration_seconds",
            "Duration of prune rounds",
            self.prune_duration.clone(),
        );
    }

    pub(crate) fn round(&self, name: &str) {
        self.rounds.get_or_create(&module(name)).inc();
    }

    pub(crate) fn operation(&self, name: &str, op: &str, seconds: f64, failed: bool) {
        let labels = ModuleOp {
            module_id: name.to_string(),
            op: op.to_string(),
        };
        self.duration.get_or_create(&labels).observe(seconds);
        if failed {
            self.errors_total.get_or_create(&module(name)).inc();
        }
    }

    pub(crate) fn current_errors(&self, name: &str, n: usize) {
        self.errors_current
            .get_or_create(&module(name))
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub(crate) fn prune(&self, name: &str, seconds: f64, failed: bool) {
        let m = module(name);
        self.prunes.get_or_create(&m).inc();
        self.prune_duration.get_or_create(&m).observe(seconds);
        if failed {
            self.prune_errors.get_or_create(&m).inc();
        }
    }
}
