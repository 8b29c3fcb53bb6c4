//! The seam between agent logic and the node's datapath. What the
//! endpoint manager, the REST API and metrics need from the kernel, in
//! the agent's own terms: no type of the `datapath` crate crosses it.
//! [`crate::kernel`] implements it for real; tests use fakes.
//!
//! Kernel state the agent *desires* (map entries, routes, programs,
//! devices) does not go through this trait: it is written as rows into
//! [`crate::tables`] and applied by reconcilers.

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

use crate::tables::LxcRow;

/// A failed datapath operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DataplaneError(pub String);

impl DataplaneError {
    /// From anything printable.
    pub fn new(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// The veth pair of a new endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest {
    /// The pod's network namespace (a path).
    pub netns: PathBuf,
    /// Host-side name (`lxc…`).
    pub host_ifname: String,
    /// Pod-side name (`eth0`).
    pub ifname: String,
    /// The pod's address (a /32 on `ifname`).
    pub ip: Ipv4Addr,
    /// The pod's default gateway (the router IP).
    pub gateway: Ipv4Addr,
    /// Interface MTU (both ends).
    pub mtu: u32,
    /// MTU on the pod's routes (0: none).
    pub route_mtu: u32,
}

/// A created veth pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    /// Host-side ifindex.
    pub host_ifindex: u32,
    /// Host-side MAC.
    pub host_mac: [u8; 6],
    /// Pod-side MAC.
    pub container_mac: [u8; 6],
}

/// A `cilium_ipcache_v2` entry as the map holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcacheEntry {
    /// Security identity.
    pub identity: u32,
    /// Tunnel endpoint, when the prefix is behind a tunnel.
    pub tunnel_endpoint: Option<Ipv4Addr>,
    /// Encryption key index.
    pub encrypt_key: u8,
}

/// One `cilium_metrics` row, summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatapathMetric {
    /// 0 forwarded, else the drop reason code.
    pub reason: u8,
    /// 1 ingress, 2 egress, 3 service.
    pub direction: u8,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// What the agent asks of the node's datapath directly.
pub trait Dataplane: Send + Sync + 'static {
    /// Create the veth pair of an endpoint and configure the pod side.
    fn create_link(
        &self,
        req: &LinkRequest,
    ) -> impl Future<Output = Result<LinkInfo, DataplaneError>> + Send;

    /// Delete a host-side link (absent is fine).
    fn delete_link(&self, name: &str) -> impl Future<Output = Result<(), DataplaneError>> + Send;

    /// The ifindex of a link of the node, if it exists.
    fn link_ifindex(&self, name: &str) -> Option<u32>;

    /// `cilium_lxc`, every entry.
    fn lxc_entries(&self) -> Result<Vec<LxcRow>, DataplaneError>;

    /// `cilium_ipcache_v2`, every entry.
    fn ipcache_entries(&self) -> Result<Vec<(Ipv4Net, IpcacheEntry)>, DataplaneError>;

    /// `cilium_metrics`, every row.
    fn metrics(&self) -> Result<Vec<DatapathMetric>, DataplaneError>;
}
