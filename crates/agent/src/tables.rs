//! The agent's desired state: one [`reconciler::Table`] per kernel or
//! cluster target, each written by the controllers named below and applied
//! by exactly one reconciler ([`crate::tasks`]).
//!
//! | table | row | written by | target |
//! |---|---|---|---|
//! | `lxc` | [`LxcRow`] | endpoint manager | BPF map `cilium_lxc` |
//! | `ipcache` | [`IpcacheRow`] | ipcache controller | BPF map `cilium_ipcache_v2` |
//! | `endpoint-programs` | [`ProgramRow`] | endpoint manager | tc filters on `lxc*` veths |
//! | `routes` | [`RouteRow`] | start-up (pod CIDR), endpoint manager (endpoint routes), node-route controller | main routing table, `proto kernel` |
//! | `tunnel-devices` | [`TunnelRow`] | start-up | `cilium_vxlan` / `cilium_geneve` |
//! | `cilium-endpoints` | [`CepRow`] | endpoint manager | CiliumEndpoint objects of this node |
//! | `cilium-node` | [`NodeRow`] | start-up | this node's CiliumNode |
//!
//! Rows are plain data with no datapath types: the reconcilers' operations
//! ([`crate::kernel`], [`crate::cluster`]) translate them.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use reconciler::{Initializer, Row, Table};

use crate::endpoint::EndpointState;
pub use crate::ipcache::IpcacheRow;
use crate::node::CiliumNodeIntent;

/// A `cilium_lxc` entry: how the datapath delivers to a local endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LxcRow {
    /// The endpoint's IPv4 (the key).
    pub ip: Ipv4Addr,
    /// Host-side veth ifindex.
    pub ifindex: u32,
    /// Endpoint ID.
    pub endpoint_id: u16,
    /// The pod interface's MAC.
    pub mac: [u8; 6],
    /// The host-side veth MAC.
    pub node_mac: [u8; 6],
    /// Security identity.
    pub identity: u32,
}

impl Row for LxcRow {
    type Key = Ipv4Addr;
    fn key(&self) -> Ipv4Addr {
        self.ip
    }
}

impl Row for IpcacheRow {
    type Key = Ipv4Net;
    fn key(&self) -> Ipv4Net {
        self.prefix
    }
}

/// The endpoint programs attached to a host-side veth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramRow {
    /// Host-side veth (the key).
    pub host_ifname: String,
}

impl Row for ProgramRow {
    type Key = String;
    fn key(&self) -> String {
        self.host_ifname.clone()
    }
}

/// Who wants a route (each writer syncs only its own rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteOwner {
    /// This node's pod CIDRs via `cilium_host` (start-up).
    PodCidr,
    /// `<ip>/32 dev lxc…` of an endpoint (endpoint manager).
    Endpoint,
    /// Other nodes' pod CIDRs (node-route controller).
    NodeRoutes,
}

/// A route in the main table with protocol `kernel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRow {
    /// Destination (the key).
    pub dst: Ipv4Net,
    /// Gateway.
    pub via: Option<Ipv4Addr>,
    /// Output device.
    pub dev: String,
    /// Preferred source.
    pub src: Option<Ipv4Addr>,
    /// Route MTU (0: none).
    pub mtu: u32,
    /// Scope link (endpoint routes) or universe.
    pub scope_link: bool,
    /// The writer.
    pub owner: RouteOwner,
}

impl Row for RouteRow {
    type Key = Ipv4Net;
    fn key(&self) -> Ipv4Net {
        self.dst
    }
}

/// Encapsulation of the tunnel device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelKind {
    /// `cilium_vxlan`.
    Vxlan,
    /// `cilium_geneve`.
    Geneve,
}

impl TunnelKind {
    /// The device's name.
    pub fn device(self) -> &'static str {
        match self {
            TunnelKind::Vxlan => "cilium_vxlan",
            TunnelKind::Geneve => "cilium_geneve",
        }
    }
}

/// The tunnel device of `routing-mode: tunnel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelRow {
    /// Protocol.
    pub kind: TunnelKind,
    /// UDP port.
    pub port: u16,
}

impl Row for TunnelRow {
    type Key = &'static str;
    fn key(&self) -> &'static str {
        self.kind.device()
    }
}

/// A CiliumEndpoint this node publishes for one of its pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CepRow {
    /// The endpoint it describes.
    pub endpoint: EndpointState,
}

impl Row for CepRow {
    type Key = (String, String);
    fn key(&self) -> (String, String) {
        (
            self.endpoint.pod_namespace.clone(),
            self.endpoint.pod_name.clone(),
        )
    }
}

/// What this agent writes into its CiliumNode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// Node name (the key).
    pub name: String,
    /// Addresses and pod CIDRs.
    pub intent: CiliumNodeIntent,
}

impl Row for NodeRow {
    type Key = String;
    fn key(&self) -> String {
        self.name.clone()
    }
}

/// Every desired-state table of the agent.
#[derive(Debug, Clone)]
pub struct Tables {
    /// `cilium_lxc`.
    pub lxc: Table<LxcRow>,
    /// `cilium_ipcache_v2`.
    pub ipcache: Table<IpcacheRow>,
    /// Endpoint programs.
    pub programs: Table<ProgramRow>,
    /// Routes.
    pub routes: Table<RouteRow>,
    /// Tunnel devices.
    pub tunnels: Table<TunnelRow>,
    /// CiliumEndpoints.
    pub ceps: Table<CepRow>,
    /// This node's CiliumNode.
    pub node: Table<NodeRow>,
}

/// The endpoint manager's promises to declare its initial rows.
#[derive(Debug)]
pub struct EndpointWriters {
    /// `lxc`.
    pub lxc: Initializer<LxcRow>,
    /// `endpoint-programs`.
    pub programs: Initializer<ProgramRow>,
    /// `routes` (endpoint routes).
    pub routes: Initializer<RouteRow>,
    /// `cilium-endpoints`.
    pub ceps: Initializer<CepRow>,
}

impl EndpointWriters {
    /// Every restored endpoint has its rows.
    pub fn done(self) {
        self.lxc.done();
        self.programs.done();
        self.routes.done();
        self.ceps.done();
    }
}

/// The cluster controller's promises.
#[derive(Debug)]
pub struct ClusterWriters {
    /// `ipcache`.
    pub ipcache: Initializer<IpcacheRow>,
    /// `routes` (node routes).
    pub routes: Initializer<RouteRow>,
}

/// Start-up's promises.
#[derive(Debug)]
pub struct StartupWriters {
    /// `routes` (this node's pod CIDRs).
    pub routes: Initializer<RouteRow>,
    /// `tunnel-devices`.
    pub tunnels: Initializer<TunnelRow>,
}

/// Every writer's initializer, registered when the tables are made (so
/// no table can count as initialized before all its writers have spoken).
#[derive(Debug)]
pub struct Writers {
    /// The endpoint manager's.
    pub endpoints: EndpointWriters,
    /// The cluster controller's.
    pub cluster: ClusterWriters,
    /// Start-up's.
    pub startup: StartupWriters,
}

impl Tables {
    /// Empty tables, and the initializers of their writers.
    pub fn new() -> (Self, Writers) {
        let t = Self {
            lxc: Table::new("lxc"),
            ipcache: Table::new("ipcache"),
            programs: Table::new("endpoint-programs"),
            routes: Table::new("routes"),
            tunnels: Table::new("tunnel-devices"),
            ceps: Table::new("cilium-endpoints"),
            node: Table::new("cilium-node"),
        };
        let writers = Writers {
            endpoints: EndpointWriters {
                lxc: t.lxc.register_initializer("endpoints"),
                programs: t.programs.register_initializer("endpoints"),
                routes: t.routes.register_initializer("endpoints"),
                ceps: t.ceps.register_initializer("endpoints"),
            },
            cluster: ClusterWriters {
                ipcache: t.ipcache.register_initializer("cluster-controller"),
                routes: t.routes.register_initializer("cluster-controller"),
            },
            startup: StartupWriters {
                routes: t.routes.register_initializer("start-up"),
                tunnels: t.tunnels.register_initializer("start-up"),
            },
        };
        (t, writers)
    }
}
