//! The only crate that loads BPF or talks netlink.
//!
//! - [`Datapath`]: loads the clang-built object (`bpf/*.c`), pins its maps
//!   under a per-node bpffs directory (reusing existing pins so an agent
//!   restart keeps state), attaches programs to `cilium_host`,
//!   `cilium_net`, the native devices and each endpoint's `lxc*` veth (TCX
//!   with pinned links, clsact fallback), and gives typed access to the
//!   maps (`cilium_lxc`, `cilium_ipcache_v2`, `cilium_metrics`) and the
//!   event stream (`cilium_events`).
//! - [`net`]: netlink helpers: the `cilium_host`/`cilium_net` pair, an
//!   endpoint's veth pair plumbed into a pod namespace, routes, sysctls.
//!
//! Layouts shared with C come from `bpf/include/` (one source of truth;
//! size/offset assertions on the Rust side).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

pub mod net;

/// Errors of the datapath.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading or attaching a program failed (verifier log included).
    #[error("bpf: {0}")]
    Bpf(String),
    /// A map operation failed.
    #[error("map {map}: {message}")]
    Map {
        /// Map name.
        map: &'static str,
        /// What failed.
        message: String,
    },
    /// A netlink operation failed.
    #[error("netlink: {0}")]
    Netlink(String),
    /// Anything else (I/O, sysctl, ...).
    #[error("{0}")]
    Other(String),
}

/// Result of datapath operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Node-wide settings fixed when the programs load.
#[derive(Debug, Clone)]
pub struct DatapathConfig {
    /// Per-node bpffs directory (`/sys/fs/bpf/<lab>/<node>`); maps and
    /// links are pinned below it. Never the bare `/sys/fs/bpf`.
    pub bpf_dir: PathBuf,
    /// The node's router IP (on `cilium_host`): the pods' gateway.
    pub router_ip: Ipv4Addr,
    /// Native devices (`eth1`).
    pub native_devices: Vec<String>,
    /// This node's cluster ID.
    pub cluster_id: u16,
}

/// `cilium_lxc` value: a local endpoint, keyed by its IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Host-side veth ifindex.
    pub ifindex: u32,
    /// Endpoint ID.
    pub lxc_id: u16,
    /// Flags (1 = host endpoint).
    pub flags: u32,
    /// The pod's MAC (container side).
    pub mac: [u8; 6],
    /// The host-side veth MAC.
    pub node_mac: [u8; 6],
    /// Security identity.
    pub sec_id: u32,
}

/// `cilium_ipcache_v2` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcacheEntry {
    /// Security identity of the prefix.
    pub sec_identity: u32,
    /// Tunnel endpoint (remote node IP) when the prefix is behind a tunnel.
    pub tunnel_endpoint: Option<Ipv4Addr>,
    /// Encryption key index.
    pub encrypt_key: u8,
}

/// `cilium_metrics` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricsKey {
    /// 0 forwarded, else a drop reason code (unsigned form of the negative code).
    pub reason: u8,
    /// 1 ingress, 2 egress, 3 service.
    pub dir: u8,
}

/// `cilium_metrics` value summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsValue {
    /// Packets.
    pub count: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The loaded datapath of one node.
pub struct Datapath {
    _todo: (),
}

impl Datapath {
    /// Load the programs, pin or reuse maps, attach to `cilium_host`,
    /// `cilium_net` and the native devices (idempotent: re-running after a
    /// restart replaces the programs without dropping traffic).
    pub fn load(cfg: &DatapathConfig) -> Result<Self> {
        let _ = cfg;
        todo!()
    }

    /// Attach the endpoint programs to a host-side veth (idempotent).
    pub fn attach_endpoint(&mut self, host_ifname: &str) -> Result<()> {
        let _ = host_ifname;
        todo!()
    }

    /// Detach from a host-side veth and unpin its links (idempotent; a
    /// vanished device is fine).
    pub fn detach_endpoint(&mut self, host_ifname: &str) -> Result<()> {
        let _ = host_ifname;
        todo!()
    }

    /// Insert or replace a `cilium_lxc` entry.
    pub fn lxc_upsert(&self, ip: Ipv4Addr, ep: &EndpointInfo) -> Result<()> {
        let _ = (ip, ep);
        todo!()
    }

    /// Delete a `cilium_lxc` entry (absent is fine).
    pub fn lxc_delete(&self, ip: Ipv4Addr) -> Result<()> {
        let _ = ip;
        todo!()
    }

    /// Every `cilium_lxc` entry.
    pub fn lxc_dump(&self) -> Result<Vec<(Ipv4Addr, EndpointInfo)>> {
        todo!()
    }

    /// Insert or replace a `cilium_ipcache_v2` entry.
    pub fn ipcache_upsert(&self, prefix: Ipv4Net, e: &IpcacheEntry) -> Result<()> {
        let _ = (prefix, e);
        todo!()
    }

    /// Delete a `cilium_ipcache_v2` entry (absent is fine).
    pub fn ipcache_delete(&self, prefix: Ipv4Net) -> Result<()> {
        let _ = prefix;
        todo!()
    }

    /// Every `cilium_ipcache_v2` entry.
    pub fn ipcache_dump(&self) -> Result<Vec<(Ipv4Net, IpcacheEntry)>> {
        todo!()
    }

    /// `cilium_metrics`, summed over CPUs.
    pub fn metrics_dump(&self) -> Result<Vec<(MetricsKey, MetricsValue)>> {
        todo!()
    }
}
