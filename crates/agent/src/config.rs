//! The agent's configuration types. The `cilium-config` key set is read
//! and validated by the `ciliumconfig` crate, shared with the operator and
//! the lab; this module names what the rest of the agent uses.

pub use ciliumconfig::{AgentConfig, IpamMode, TunnelProtocol};
