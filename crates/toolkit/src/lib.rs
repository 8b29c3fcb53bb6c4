//! The toolkit every component shares, one copy of each piece:
//!
//! - [`cache`]: the latest state of every object of one type, fed by a
//!   list-then-watch reflector ([`cache::Change`]) and by the owner's own
//!   writes, ordered by resource version, with tombstones;
//! - [`backoff`]: exponential backoff and a retry-until-success helper;
//! - [`pacer`]: when a controller's next pass is due (debounce, backoff);
//! - [`task`]: owned tasks (aborted on drop) and a supervisor that restarts
//!   a failed or panicked task with backoff;
//! - [`health`]: the controller status registry that supervised tasks and
//!   reconcilers report to (`cilium-dbg status --all-controllers`);
//! - [`keyed`]: one async lock per key;
//! - [`selector`]: Kubernetes label-selector matching;
//! - [`fs`]: atomic file writes;
//! - [`duration`]: Go-style duration parsing (`1m30s`, `500ms`);
//! - [`logging`]: the `tracing` subscriber of every binary (text without
//!   colour codes unless on a terminal, or JSON).
//!
//! Nothing here knows about Cilium's objects or the datapath.

pub mod backoff;
pub mod cache;
pub mod duration;
pub mod fs;
pub mod health;
pub mod keyed;
pub mod logging;
pub mod pacer;
pub mod selector;
pub mod task;

pub use backoff::{Backoff, retry};
pub use cache::{Cache, Change, WatchEvent};
pub use duration::parse_duration;
pub use fs::write_atomic;
pub use health::{ControllerStatus, Health};
pub use keyed::KeyedLocks;
pub use pacer::Pacer;
pub use task::{OwnedTask, Supervisor};
