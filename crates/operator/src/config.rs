//! The operator's configuration types. The `cilium-config` key set is
//! read and validated by the `ciliumconfig` crate, shared with the agent
//! and the lab; this module names what the operator uses.

pub use ciliumconfig::{IpamMode, OperatorConfig};
