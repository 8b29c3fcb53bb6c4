//! Desired state in tables, written to the kernel by reconcilers.
//!
//! Every writer of kernel state in the agent has the same shape:
//!
//! ```text
//!  cluster objects, local events         controllers (pure functions)
//!            │                                    │ insert / delete / sync
//!            ▼                                    ▼
//!      input tables or caches ──────────▶ desired-state Table<R>
//!                                                 │ changes (by revision)
//!                                                 ▼
//!                                  Reconciler (one task per target)
//!                                  update / delete / prune via Operations
//!                                  per-row Status, retries with backoff,
//!                                  periodic prune + refresh, metrics, health
//!                                                 │
//!                                                 ▼
//!                               BPF map, route set, device set, store
//! ```
//!
//! - A [`Table`] holds rows ([`Row`]) by key. Every insert or delete takes a
//!   new, monotonically increasing [`Revision`]; a row carries a [`Status`]
//!   (pending, done, or error with its message and attempt count) that only
//!   its reconciler sets. Writers never wait for the kernel; they can wait
//!   for their change to be reconciled ([`Table::wait_reconciled`]).
//! - A [`Reconciler`] ([`spawn`]) owns the target's [`Operations`]: it
//!   applies changed rows in revision order, retries failed keys with
//!   exponential backoff (a newer change to the key replaces the retry),
//!   prunes what no row owns once every writer has declared its initial
//!   content ([`Initializer`]) and then periodically, and re-applies old rows
//!   periodically (refresh) so drift is repaired. Prune is what makes a
//!   restart safe: tables start empty, writers refill them, the first prune
//!   removes only what nobody wants any more.
//! - Each reconciler reports to the controller status registry
//!   ([`toolkit::Health`]) and to [`ReconcilerMetrics`] (upstream's
//!   `cilium_reconciler_*` families, label `module_id`).
//!
//! No I/O happens here except through the [`Operations`] a caller gives.

mod metrics;
mod reconcile;
mod table;

pub use metrics::ReconcilerMetrics;
pub use reconcile::{Config, OpError, Operations, Reconciler, spawn};
pub use table::{Initializer, Revision, Row, Status, StatusKind, Table, WaitError};

#[cfg(test)]
mod tests;
