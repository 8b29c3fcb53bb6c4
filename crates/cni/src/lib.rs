//! `cilium-cni`: the CNI 1.1 plugin (also speaking 0.3.0, 0.3.1, 0.4.0 and
//! 1.0.0). It is exec'd by the container runtime once per operation, reads
//! the `CNI_*` environment and the network configuration on stdin, and
//! forwards the operation to the node's cilium agent over its unix socket
//! (`socket-path`, default `/var/run/cilium/cilium.sock`):
//!
//! | command | agent call | stdout on success |
//! |---|---|---|
//! | ADD | `POST /v1/cni/add` | the CNI result |
//! | DEL | `POST /v1/cni/del` | nothing |
//! | CHECK | `POST /v1/cni/check` | nothing |
//! | STATUS | `GET /v1/healthz` | nothing |
//! | GC | `POST /v1/cni/gc` | nothing |
//! | VERSION | none | supported versions |
//!
//! The plugin creates nothing itself (the agent does all the plumbing), so
//! a failure never leaves anything half-created on its side. Failures print
//! the CNI error object on stdout and exit non-zero; see
//! [`cnispec::error`] and [`AGENT_FAILURE`] for the codes. The
//! specification's types (versions, commands, results, errors) come from
//! `cnispec`; this crate owns reading the invocation, talking to the agent
//! and shaping its answer. No async runtime: a blocking client keeps
//! start-up near 1 ms.

pub mod config;
pub mod env;
mod log;
mod plugin;
pub mod result;

pub use plugin::{Outcome, run};

/// The plugin's own error code (beyond the specification's 1-99, which
/// the agent may report too: its `ApiError.code` is passed through): 100,
/// the agent failed without naming a CNI code, or answered something this
/// plugin cannot use.
pub const AGENT_FAILURE: u32 = 100;
