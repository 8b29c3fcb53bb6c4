//! Pod runtime (a minimal kubelet): sandboxes, CNI calls, workloads.
//!
//! - [`kubelet`]: the per-node agent (Node object, pod watch, pod
//!   lifecycle and status), running inside the node's network namespace;
//! - [`cni`]: the CNI client (configuration, plugin execution, results);
//! - [`sandbox`]: the single-threaded namespace helper that execs
//!   workloads, and the on-disk sandbox records the CLI reads;
//! - [`whoami`]: the built-in `traefik/whoami` server and a static web
//!   server.
//!
//! This module owns only the node's pod sandboxes: namespaces named
//! `<lab>-pod-*`, files under `<node state dir>/pods/` and the CNI
//! configuration it writes; it never changes the host's namespaces.

pub mod cni;
pub mod kubelet;
pub mod sandbox;
pub mod whoami;

pub use sandbox::SandboxRecord;
#[cfg(test)]
use sandbox::pod_dir;

#[cfg(test)]
mod root_tests;
