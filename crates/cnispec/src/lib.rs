//! The CNI specification's types (0.3.0 to 1.1.0), shared by both sides
//! of the interface: the plugin `cilium-cni` writes them, the lab
//! kubelet's CNI client reads them.
//!
//! - [`version`]: the supported versions, their order, the `VERSION`
//!   command's answer and comparisons of a configuration's version;
//! - [`command`]: the `CNI_COMMAND` operations and the version each
//!   appeared in;
//! - [`result`]: the ADD result (interfaces, ips, routes, dns) and its
//!   conversion between versions;
//! - [`error`]: the error object (`code`, `msg`, `details`) and the
//!   specification's codes.
//!
//! Pure data and pure functions: no I/O, no processes, no async runtime.
//! Neither side's behaviour lives here (how the plugin talks to its agent,
//! how the client runs plugins).

pub mod command;
pub mod error;
pub mod result;
pub mod version;

pub use command::Command;
pub use error::CniError;
pub use result::AddResult;
pub use version::CniVersion;
