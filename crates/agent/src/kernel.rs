//! The kernel side of the agent: the only module that uses the `datapath`
//! crate. It implements the [`Dataplane`] seam, the reconciler operations
//! of every kernel table (BPF maps `cilium_lxc` and `cilium_ipcache_v2`,
//! endpoint programs, routes, tunnel devices), and the few one-shot
//! start-up steps (host devices, sysctls, loading the programs).
//!
//! Everything here translates agent rows into datapath calls and back; no
//! decisions are made.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use datapath::Datapath;
use datapath::net::Route;
use ipnet::Ipv4Net;
use reconciler::{OpError, Operations};

use crate::dataplane::{
    DatapathMetric, Dataplane, DataplaneError, IpcacheEntry, LinkInfo, LinkRequest,
};
use crate::routes::{InstalledRoute, PROTO_KERNEL, RouteOwnership, stale_routes};
use crate::tables::{IpcacheRow, LxcRow, ProgramRow, RouteOwner, RouteRow, TunnelKind, TunnelRow};

/// The node's loaded datapath, shared by the map and program reconcilers
/// and the [`Dataplane`] readers.
#[derive(Clone)]
pub struct Kernel {
    dp: Arc<Mutex<Datapath>>,
}

/// What loading the datapath needs.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// This node's bpffs directory.
    pub bpf_dir: PathBuf,
    /// Router IP.
    pub router_ip: Ipv4Addr,
    /// The node's InternalIP.
    pub node_ip: Ipv4Addr,
    /// Native devices.
    pub native_devices: Vec<String>,
    /// `cluster-id`.
    pub cluster_id: u16,
    /// The tunnel (its device must exist), or native routing.
    pub tunnel: Option<TunnelRow>,
}

fn op_err(e: impl std::fmt::Display) -> OpError {
    OpError::new(e)
}

fn dp_err(e: impl std::fmt::Display) -> DataplaneError {
    DataplaneError::new(e)
}

fn protocol(kind: TunnelKind) -> datapath::TunnelProtocol {
    match kind {
        TunnelKind::Vxlan => datapath::TunnelProtocol::Vxlan,
        TunnelKind::Geneve => datapath::TunnelProtocol::Geneve,
    }
}

impl Kernel {
    /// Load the programs, pin or reuse the maps, attach the host programs
    /// (a restart replaces programs without dropping traffic).
    pub fn load(cfg: &LoadConfig) -> Result<Self, DataplaneError> {
        let dp = Datapath::load(&datapath::DatapathConfig {
            bpf_dir: cfg.bpf_dir.clone(),
            router_ip: cfg.router_ip,
            node_ip: cfg.node_ip,
            native_devices: cfg.native_devices.clone(),
            cluster_id: cfg.cluster_id,
            tunnel: cfg.tunnel.map(|t| datapath::TunnelConfig {
                protocol: protocol(t.kind),
                port: t.port,
            }),
        })
        .map_err(dp_err)?;
        Ok(Self {
            dp: Arc::new(Mutex::new(dp)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Datapath) -> T) -> T {
        let mut dp = self.dp.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut dp)
    }

    /// Operations of the `cilium_lxc` reconciler.
    pub fn lxc_map(&self) -> LxcMap {
        LxcMap(self.clone())
    }

    /// Operations of the `cilium_ipcache_v2` reconciler.
    pub fn ipcache_map(&self) -> IpcacheMap {
        IpcacheMap(self.clone())
    }

    /// Operations of the endpoint-programs reconciler.
    pub fn endpoint_programs(&self) -> EndpointPrograms {
        EndpointPrograms(self.clone())
    }
}

impl Dataplane for Kernel {
    async fn create_link(&self, req: &LinkRequest) -> Result<LinkInfo, DataplaneError> {
        let l = datapath::net::create_endpoint_link(
            &req.netns,
            &req.host_ifname,
            &req.ifname,
            req.ip,
            req.gateway,
            req.mtu,
            req.route_mtu,
        )
        .await
        .map_err(dp_err)?;
        Ok(LinkInfo {
            host_ifindex: l.host_ifindex,
            host_mac: l.host_mac,
            container_mac: l.container_mac,
        })
    }

    async fn delete_link(&self, name: &str) -> Result<(), DataplaneError> {
        datapath::net::delete_link(name).await.map_err(dp_err)
    }

    fn link_ifindex(&self, name: &str) -> Option<u32> {
        crate::sys::link_ifindex(name)
    }

    fn lxc_entries(&self) -> Result<Vec<LxcRow>, DataplaneError> {
        let all = self.with(|dp| dp.lxc_dump()).map_err(dp_err)?;
        Ok(all
            .into_iter()
            .map(|(ip, e)| LxcRow {
                ip,
                ifindex: e.ifindex,
                endpoint_id: e.lxc_id,
                mac: e.mac,
                node_mac: e.node_mac,
                identity: e.sec_id,
            })
            .collect())
    }

    fn ipcache_entries(&self) -> Result<Vec<(Ipv4Net, IpcacheEntry)>, DataplaneError> {
        let all = self.with(|dp| dp.ipcache_dump()).map_err(dp_err)?;
        Ok(all
            .into_iter()
            .map(|(p, e)| {
                let entry = IpcacheEntry {
                    identity: e.sec_identity,
                    tunnel_endpoint: e.tunnel_endpoint,
                    encrypt_key: e.encrypt_key,
                };
                (p, entry)
            })
            .collect())
    }

    fn metrics(&self) -> Result<Vec<DatapathMetric>, DataplaneError> {
        let all = self.with(|dp| dp.metrics_dump()).map_err(dp_err)?;
        Ok(all
            .into_iter()
            .map(|(k, v)| DatapathMetric {
                reason: k.reason,
                direction: k.dir,
                packets: v.count,
                bytes: v.bytes,
            })
            .collect())
    }
}

/// Delete from a map every key not in `desired` (keys collected first:
/// deleting while iterating a BPF map is unsafe).
fn prune_keys<K: Ord + Copy>(
    actual: Vec<K>,
    desired: &BTreeSet<K>,
    mut delete: impl FnMut(K) -> datapath::Result<()>,
) -> Result<(), OpError> {
    let mut errors = Vec::new();
    for key in actual.into_iter().filter(|k| !desired.contains(k)) {
        if let Err(e) = delete(key) {
            errors.push(e.to_string());
        }
    }
    match errors.is_empty() {
        true => Ok(()),
        false => Err(OpError(errors.join("; "))),
    }
}

/// `cilium_lxc`: one entry per local endpoint.
pub struct LxcMap(Kernel);

impl Operations<LxcRow> for LxcMap {
    async fn update(&self, row: &LxcRow) -> Result<(), OpError> {
        let info = datapath::EndpointInfo {
            ifindex: row.ifindex,
            lxc_id: row.endpoint_id,
            flags: 0,
            mac: row.mac,
            node_mac: row.node_mac,
            sec_id: row.identity,
        };
        self.0
            .with(|dp| dp.lxc_upsert(row.ip, &info))
            .map_err(op_err)
    }

    async fn delete(&self, row: &LxcRow) -> Result<(), OpError> {
        self.0.with(|dp| dp.lxc_delete(row.ip)).map_err(op_err)
    }

    async fn prune(&self, desired: &[Arc<LxcRow>]) -> Result<(), OpError> {
        let desired: BTreeSet<Ipv4Addr> = desired.iter().map(|r| r.ip).collect();
        self.0.with(|dp| {
            let actual = dp.lxc_dump().map_err(op_err)?;
            prune_keys(
                actual.into_iter().map(|(ip, _)| ip).collect(),
                &desired,
                |ip| {
                    tracing::info!(%ip, "cilium_lxc: pruning an entry no endpoint owns");
                    dp.lxc_delete(ip)
                },
            )
        })
    }
}

/// `cilium_ipcache_v2`: the whole map is ours.
pub struct IpcacheMap(Kernel);

impl Operations<IpcacheRow> for IpcacheMap {
    async fn update(&self, row: &IpcacheRow) -> Result<(), OpError> {
        let e = datapath::IpcacheEntry {
            sec_identity: row.identity,
            tunnel_endpoint: row.tunnel_endpoint,
            encrypt_key: 0,
        };
        self.0
            .with(|dp| dp.ipcache_upsert(row.prefix, &e))
            .map_err(op_err)
    }

    async fn delete(&self, row: &IpcacheRow) -> Result<(), OpError> {
        self.0
            .with(|dp| dp.ipcache_delete(row.prefix))
            .map_err(op_err)
    }

    async fn prune(&self, desired: &[Arc<IpcacheRow>]) -> Result<(), OpError> {
        let desired: BTreeSet<Ipv4Net> = desired.iter().map(|r| r.prefix).collect();
        self.0.with(|dp| {
            let actual = dp.ipcache_dump().map_err(op_err)?;
            prune_keys(
                actual.into_iter().map(|(p, _)| p).collect(),
                &desired,
                |prefix| {
                    tracing::info!(%prefix, "cilium_ipcache_v2: pruning an entry no source owns");
                    dp.ipcache_delete(prefix)
                },
            )
        })
    }
}

/// The endpoint programs on each `lxc*` veth.
pub struct EndpointPrograms(Kernel);

impl Operations<ProgramRow> for EndpointPrograms {
    async fn update(&self, row: &ProgramRow) -> Result<(), OpError> {
        self.0
            .with(|dp| dp.attach_endpoint(&row.host_ifname))
            .map_err(op_err)
    }

    async fn delete(&self, row: &ProgramRow) -> Result<(), OpError> {
        self.0
            .with(|dp| dp.detach_endpoint(&row.host_ifname))
            .map_err(op_err)
    }

    /// A filter belongs to its device: a gone endpoint's veth takes its
    /// filter with it. Nothing else to prune.
    async fn prune(&self, _desired: &[Arc<ProgramRow>]) -> Result<(), OpError> {
        Ok(())
    }
}

fn to_route(r: &RouteRow) -> Route {
    Route {
        dst: r.dst,
        via: r.via,
        dev: r.dev.clone(),
        src: r.src,
        mtu: r.mtu,
        proto: PROTO_KERNEL,
        scope_link: r.scope_link,
    }
}

/// Routes of protocol `kernel` in the node's main table.
pub struct Routes {
    ownership: RouteOwnership,
    /// Destinations this agent installed since it started (ownership for
    /// routes whose shape alone does not prove it).
    installed: Mutex<BTreeSet<Ipv4Net>>,
}

impl Routes {
    /// Operations owning the routes `ownership` describes.
    pub fn new(ownership: RouteOwnership) -> Self {
        Self {
            ownership,
            installed: Mutex::default(),
        }
    }

    fn installed(&self) -> std::sync::MutexGuard<'_, BTreeSet<Ipv4Net>> {
        self.installed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Operations<RouteRow> for Routes {
    async fn update(&self, row: &RouteRow) -> Result<(), OpError> {
        self.installed().insert(row.dst);
        datapath::net::route_replace(&to_route(row))
            .await
            .map_err(op_err)?;
        tracing::debug!(dst = %row.dst, via = ?row.via, dev = %row.dev, mtu = row.mtu, "route installed");
        Ok(())
    }

    async fn delete(&self, row: &RouteRow) -> Result<(), OpError> {
        datapath::net::route_delete(&to_route(row))
            .await
            .map_err(op_err)?;
        tracing::debug!(dst = %row.dst, dev = %row.dev, "route removed");
        Ok(())
    }

    async fn prune(&self, desired: &[Arc<RouteRow>]) -> Result<(), OpError> {
        let listed = datapath::net::routes_with_proto(PROTO_KERNEL)
            .await
            .map_err(op_err)?;
        let installed: Vec<InstalledRoute> = listed
            .into_iter()
            .map(|r| InstalledRoute {
                proto: r.proto,
                route: RouteRow {
                    dst: r.dst,
                    via: r.via,
                    dev: r.dev,
                    src: r.src,
                    mtu: r.mtu,
                    scope_link: r.scope_link,
                    owner: RouteOwner::NodeRoutes,
                },
            })
            .collect();
        let wanted: BTreeSet<Ipv4Net> = desired.iter().map(|r| r.dst).collect();
        let ours = self.installed().clone();
        let mut errors = Vec::new();
        for r in stale_routes(&installed, &wanted, &self.ownership, &ours) {
            match datapath::net::route_delete(&to_route(r)).await {
                Ok(()) => {
                    tracing::info!(dst = %r.dst, via = ?r.via, dev = %r.dev, "stale route removed");
                }
                Err(e) => errors.push(format!("{}: {e}", r.dst)),
            }
        }
        match errors.is_empty() {
            true => Ok(()),
            false => Err(OpError(errors.join("; "))),
        }
    }
}

/// The tunnel devices (`cilium_vxlan`, `cilium_geneve`): the desired one
/// is created, the others removed.
pub struct TunnelDevices;

impl Operations<TunnelRow> for TunnelDevices {
    async fn update(&self, row: &TunnelRow) -> Result<(), OpError> {
        let ifindex = datapath::net::setup_tunnel_device(protocol(row.kind), row.port)
            .await
            .map_err(op_err)?;
        tracing::info!(
            device = row.kind.device(),
            port = row.port,
            ifindex,
            "tunnel device ready"
        );
        Ok(())
    }

    async fn delete(&self, row: &TunnelRow) -> Result<(), OpError> {
        datapath::net::delete_link(row.kind.device())
            .await
            .map_err(op_err)
    }

    async fn prune(&self, desired: &[Arc<TunnelRow>]) -> Result<(), OpError> {
        for kind in [TunnelKind::Vxlan, TunnelKind::Geneve] {
            if desired.iter().all(|r| r.kind != kind) {
                datapath::net::delete_link(kind.device())
                    .await
                    .map_err(op_err)?;
            }
        }
        Ok(())
    }
}

/// Create or update `cilium_host`/`cilium_net` with the router IP.
pub async fn setup_host_devices(router_ip: Ipv4Addr, mtu: u32) -> Result<(), DataplaneError> {
    datapath::net::setup_host_devices(router_ip, mtu)
        .await
        .map(|_| ())
        .map_err(dp_err)
}

/// Set a sysctl of the node's network namespace; a failure is logged.
pub fn set_sysctl(key: &str, value: &str) {
    match datapath::net::sysctl_set(key, value) {
        Ok(()) => tracing::debug!(key, value, "sysctl set"),
        Err(e) => tracing::warn!(key, value, error = %e, "sysctl failed"),
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    datapath::net::format_mac(mac)
}
