//! The agent's staged start-up and lifecycle.
//!
//! ```text
//! store ─▶ local state ─▶ Node (InternalIP) + CiliumNode ─▶ pod CIDR
//!       ─▶ IPAM (restore, router, health) ─▶ host devices + sysctls
//!       ─▶ tunnel device (tunnel mode: created; native: removed)
//!       ─▶ datapath loaded ─▶ kernel reconcilers ─▶ this node's pod CIDR route
//!       ─▶ endpoint manager ─▶ cluster controller ─▶ endpoints restored
//!       ─▶ REST API, metrics, kvstore probe ─▶ CNI config written (ready)
//! ```
//!
//! Each stage is a function; the tasks they start are listed in
//! [`crate::tasks`]. Switching routing modes is a restart with the other
//! config: the tunnel device is created or pruned before the datapath
//! loads (which attaches or detaches the overlay program), the restored
//! endpoints are re-attached, and the cluster controller rewrites the
//! ipcache entries (tunnel endpoints) and the old mode's node routes are
//! replaced or pruned. Existing pods keep the route MTU they were created
//! with.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use ipnet::Ipv4Net;
use reconciler::{Initializer, ReconcilerMetrics};
use store::Store;
use toolkit::{Health, retry};

use crate::cluster::StoreIdentities;
use crate::config::{AgentConfig, IpamMode, TunnelProtocol};
use crate::endpoint::EndpointState;
use crate::endpoints::{EndpointManager, EndpointsCfg, IpPool};
use crate::ipcache::LocalNode;
use crate::kernel::{Kernel, LoadConfig, set_sysctl, setup_host_devices};
use crate::metrics::MetricsSnapshot;
use crate::node::{self, CiliumNodeIntent};
use crate::routes::{self, NodeRouting, OwnNode, RouteOwnership};
use crate::state::{IpamState, StateDir};
use crate::status::StatusInputs;
use crate::tables::{NodeRow, RouteOwner, RouteRow, Tables, TunnelKind, TunnelRow};
use crate::tasks::{ClusterInputs, Manager, Tasks};

/// Process-level settings (command-line flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Node name.
    pub node_name: String,
    /// Where the cluster state is (the API server, or etcd).
    pub cluster: store::ClusterSource,
    /// REST socket.
    pub socket_path: PathBuf,
    /// State directory.
    pub state_dir: PathBuf,
    /// Per-node bpffs directory.
    pub bpf_root: PathBuf,
    /// Native device.
    pub native_device: String,
}

/// How long start-up waits for a device or route to be applied.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// This node's place in the cluster, once its pod CIDR is known.
struct NodeFacts {
    node_ip: Ipv4Addr,
    cidrs: Vec<Ipv4Net>,
    intent: CiliumNodeIntent,
}

/// The node's address pool and its reserved addresses.
struct Ipam {
    pool: Box<dyn IpPool>,
    router_ip: Ipv4Addr,
    health_ip: Ipv4Addr,
}

/// Run the agent until SIGTERM/SIGINT.
pub async fn run(settings: Settings, cfg: AgentConfig) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let cfg = Arc::new(cfg);
    if cfg.enable_ipv4_masquerade {
        tracing::warn!(
            "enable-ipv4-masquerade: true has no effect yet (masquerading is not implemented); pod traffic leaves unmasqueraded"
        );
    }
    let health = Health::new();
    let metrics = ReconcilerMetrics::new();
    let (tables, writers) = Tables::new();
    let mut tasks = Tasks::new(health.clone(), metrics.clone());

    let store = retry("connecting to the cluster", || {
        Store::connect(&settings.cluster)
    })
    .await;
    tracing::info!(cluster = %settings.cluster.describe(), "connected to the cluster");
    let state = StateDir::new(&settings.state_dir);
    let (saved_ipam, saved_endpoints) = load_local_state(&state)?;

    tasks.cilium_node_sync(&tables, &store);
    let node = node_stage(&store, &settings.node_name, &cfg, &tables).await;
    let ipam = ipam_stage(&node.cidrs, &saved_ipam, &state)?;
    tables.node.insert(NodeRow {
        name: settings.node_name.clone(),
        intent: CiliumNodeIntent {
            router_ip: Some(ipam.router_ip),
            health_ip: Some(ipam.health_ip),
            ..node.intent.clone()
        },
    });
    tracing::info!(router_ip = %ipam.router_ip, health_ip = %ipam.health_ip, "router and health IPs");

    let mtu = host_stage(&settings.native_device, &cfg, ipam.router_ip).await?;
    let tunnel = tunnel_stage(&cfg, &tables, writers.startup.tunnels, &mut tasks).await?;
    let kernel = kernel_stage(&settings, &cfg, &node, &ipam, tunnel, &tables, &mut tasks)?;
    tasks.cilium_endpoint_sync(&tables, &store, node.node_ip);
    pod_cidr_routes(&tables, writers.startup.routes, &node.cidrs, ipam.router_ip).await?;

    let routing = node_routing(&cfg, mtu);
    let (router_ip, health_ip) = (ipam.router_ip, ipam.health_ip);
    let endpoints = Arc::new(EndpointManager::new(
        kernel.clone(),
        StoreIdentities::new(store.clone(), cfg.cluster_name.clone()),
        (tables.clone(), writers.endpoints),
        endpoints_cfg(&cfg, router_ip, mtu, routing),
        state,
        ipam.pool,
    ));
    tasks.cluster_controller(
        ClusterInputs {
            store: store.clone(),
            local: LocalNode {
                name: settings.node_name.clone(),
                internal_ip: Some(node.node_ip),
                router_ip: Some(router_ip),
                health_ip: Some(health_ip),
                other_ips: Vec::new(),
            },
            own: OwnNode {
                name: settings.node_name.clone(),
                internal_ip: Some(node.node_ip),
                router_ip,
                pod_cidrs: node.cidrs.clone(),
            },
            routing,
            endpoints: endpoints.subscribe(),
            tables: tables.clone(),
            started,
        },
        writers.cluster,
    );
    endpoints.restore(saved_endpoints).await;

    serve_stage(
        &mut tasks,
        &settings,
        &cfg,
        &store,
        ServeInputs {
            router_ip,
            endpoints,
            kernel,
            tables,
            metrics,
        },
    );
    tracing::info!(node = %settings.node_name, "agent ready");
    wait_for_signal().await
}

/// The IPAM allocations and endpoints of the previous run.
fn load_local_state(state: &StateDir) -> anyhow::Result<(IpamState, Vec<EndpointState>)> {
    let saved_ipam = state.load_ipam().context("reading IPAM state")?;
    let (saved, bad) = state.load_endpoints().context("reading endpoint state")?;
    for e in bad {
        tracing::error!(error = %e, "skipping unreadable endpoint state");
    }
    tracing::info!(
        endpoints = saved.len(),
        allocations = saved_ipam.allocations.len(),
        "local state loaded"
    );
    Ok((saved_ipam, saved))
}

/// Wait for the Node, publish the CiliumNode, and wait for the pod CIDR
/// (from the Node, or from the operator through the CiliumNode).
async fn node_stage(store: &Store, name: &str, cfg: &AgentConfig, tables: &Tables) -> NodeFacts {
    let (_node, node_ip) = node::wait_for_node(store, name).await;
    tracing::info!(node = %name, internal_ip = %node_ip, "node found");
    let mut intent = CiliumNodeIntent {
        internal_ip: node_ip,
        router_ip: None,
        health_ip: None,
        pod_cidrs: None,
    };
    let row = |intent: &CiliumNodeIntent| NodeRow {
        name: name.to_string(),
        intent: intent.clone(),
    };
    let cidrs = match cfg.ipam {
        IpamMode::Kubernetes => {
            let c = node::wait_for_pod_cidrs(store, name, cfg.ipam, cfg.k8s_require_ipv4_pod_cidr)
                .await;
            intent.pod_cidrs = Some(c.clone());
            tables.node.insert(row(&intent));
            c
        }
        IpamMode::ClusterPool => {
            tables.node.insert(row(&intent));
            node::wait_for_pod_cidrs(store, name, cfg.ipam, false).await
        }
    };
    tracing::info!(pod_cidrs = ?cidrs, ipam = cfg.ipam.as_str(), "pod CIDR known");
    NodeFacts {
        node_ip,
        cidrs,
        intent,
    }
}

/// The node's pool with the previous run's allocations, and the router
/// and health addresses (kept from the previous run when possible).
fn ipam_stage(cidrs: &[Ipv4Net], saved: &IpamState, state: &StateDir) -> anyhow::Result<Ipam> {
    let mut pool: Box<dyn IpPool> = Box::new(ipam::NodeIpAllocator::new(cidrs));
    for (ip, owner) in &saved.allocations {
        if let Err(e) = pool.allocate(*ip, owner) {
            tracing::warn!(%ip, owner, error = %e, "dropping persisted allocation");
        }
    }
    let router_ip = reserved_ip(pool.as_mut(), "router")?;
    let health_ip = reserved_ip(pool.as_mut(), "health")?;
    state
        .save_ipam(&IpamState {
            cidrs: pool.cidrs(),
            allocations: pool.allocated(),
        })
        .context("saving IPAM state")?;
    Ok(Ipam {
        pool,
        router_ip,
        health_ip,
    })
}

/// Keep the router/health address from the previous run, or take the
/// lowest free one.
fn reserved_ip(pool: &mut dyn IpPool, owner: &str) -> anyhow::Result<Ipv4Addr> {
    if let Some((ip, _)) = pool.allocated().into_iter().find(|(_, o)| o == owner) {
        return Ok(ip);
    }
    pool.allocate_next(owner)
        .map_err(|e| anyhow::anyhow!("allocating the {owner} IP: {e}"))
}

/// Sysctls and `cilium_host`/`cilium_net`; returns the device MTU.
async fn host_stage(device: &str, cfg: &AgentConfig, router_ip: Ipv4Addr) -> anyhow::Result<u32> {
    set_sysctl("net.ipv4.ip_forward", "1");
    set_sysctl("net.ipv4.conf.all.rp_filter", "0");
    set_sysctl(&format!("net.ipv4.conf.{device}.rp_filter"), "0");
    let mtu = if cfg.mtu != 0 {
        cfg.mtu
    } else {
        crate::sys::device_mtu(device).unwrap_or_else(|| {
            tracing::warn!(%device, "cannot read the device MTU; using 1500");
            1500
        })
    };
    setup_host_devices(router_ip, mtu)
        .await
        .context("setting up cilium_host/cilium_net")?;
    set_sysctl("net.ipv4.conf.cilium_host.rp_filter", "0");
    set_sysctl("net.ipv4.conf.cilium_net.rp_filter", "0");
    Ok(mtu)
}

/// The tunnel device of `cfg` (every other one is pruned), ready before
/// the datapath loads.
async fn tunnel_stage(
    cfg: &AgentConfig,
    tables: &Tables,
    init: Initializer<TunnelRow>,
    tasks: &mut Tasks,
) -> anyhow::Result<Option<TunnelRow>> {
    let row = cfg.tunnel().map(|t| TunnelRow {
        kind: match t.protocol {
            TunnelProtocol::Vxlan => TunnelKind::Vxlan,
            TunnelProtocol::Geneve => TunnelKind::Geneve,
        },
        port: t.port,
    });
    tasks.tunnel_device_sync(tables);
    if let Some(row) = row {
        tables.tunnels.insert(row);
        tables
            .tunnels
            .wait_row(&row.kind.device(), |r| *r == row, APPLY_TIMEOUT)
            .await
            .with_context(|| {
                format!(
                    "setting up the tunnel device (tunnel-protocol: {}, tunnel-port: {})",
                    row.kind.device().trim_start_matches("cilium_"),
                    row.port
                )
            })?;
    }
    init.done();
    Ok(row)
}

/// The route of each of this node's pod CIDRs via `cilium_host`.
async fn pod_cidr_routes(
    tables: &Tables,
    init: Initializer<RouteRow>,
    cidrs: &[Ipv4Net],
    router_ip: Ipv4Addr,
) -> anyhow::Result<()> {
    let rows: Vec<_> = cidrs
        .iter()
        .map(|c| routes::cilium_host_route(*c, router_ip, 0, RouteOwner::PodCidr))
        .collect();
    tables
        .routes
        .sync(|r| r.owner == RouteOwner::PodCidr, rows.clone());
    for r in &rows {
        tables
            .routes
            .wait_row(&r.dst, |x| x == r, APPLY_TIMEOUT)
            .await
            .with_context(|| format!("installing the local pod CIDR route {}", r.dst))?;
    }
    init.done();
    Ok(())
}

/// Load the datapath and start the reconcilers of its maps, programs
/// and routes.
fn kernel_stage(
    settings: &Settings,
    cfg: &AgentConfig,
    node: &NodeFacts,
    ipam: &Ipam,
    tunnel: Option<TunnelRow>,
    tables: &Tables,
    tasks: &mut Tasks,
) -> anyhow::Result<Arc<Kernel>> {
    let kernel = Kernel::load(&LoadConfig {
        bpf_dir: settings.bpf_root.clone(),
        router_ip: ipam.router_ip,
        node_ip: node.node_ip,
        native_devices: vec![settings.native_device.clone()],
        cluster_id: cfg.cluster_id,
        tunnel,
    })
    .context("loading the datapath")?;
    let ownership = RouteOwnership {
        router_ip: ipam.router_ip,
        native_cidr: cfg.ipv4_native_routing_cidr,
    };
    tasks.kernel_sync(tables, &kernel, ownership);
    Ok(Arc::new(kernel))
}

/// The endpoint manager's settings.
fn endpoints_cfg(
    cfg: &AgentConfig,
    router_ip: Ipv4Addr,
    mtu: u32,
    routing: NodeRouting,
) -> EndpointsCfg {
    EndpointsCfg {
        router_ip,
        mtu,
        route_mtu: match routing {
            NodeRouting::Tunnel { mtu } => mtu,
            NodeRouting::Direct | NodeRouting::Network => 0,
        },
        endpoint_routes: cfg.enable_endpoint_routes,
        apply_timeout: APPLY_TIMEOUT,
    }
}

/// How the cluster controller routes other nodes' pod CIDRs; `mtu` is
/// the device MTU.
fn node_routing(cfg: &AgentConfig, mtu: u32) -> NodeRouting {
    match cfg.tunnel() {
        Some(t) => NodeRouting::Tunnel {
            mtu: mtu.saturating_sub(t.protocol.overhead()),
        },
        None if cfg.auto_direct_node_routes => NodeRouting::Direct,
        None => NodeRouting::Network,
    }
}

/// What the serving stage hands out.
struct ServeInputs {
    router_ip: Ipv4Addr,
    endpoints: Arc<Manager>,
    kernel: Arc<Kernel>,
    tables: Tables,
    metrics: ReconcilerMetrics,
}

/// The REST API, metrics, the kvstore probe, and the CNI configuration
/// that says the agent is ready.
fn serve_stage(
    tasks: &mut Tasks,
    settings: &Settings,
    cfg: &Arc<AgentConfig>,
    store: &Store,
    s: ServeInputs,
) {
    let status = Arc::new(Mutex::new(StatusInputs {
        cluster: settings.cluster.describe(),
        kubernetes: store.is_kubernetes(),
        store_ok: true,
        store_error: None,
        cni_conf: None,
        devices: vec![settings.native_device.clone()],
    }));
    let api = Arc::new(crate::api::ApiState {
        node_name: settings.node_name.clone(),
        config: cfg.clone(),
        router_ip: s.router_ip,
        endpoints: s.endpoints.clone(),
        ipcache: s.tables.ipcache.clone(),
        dataplane: s.kernel.clone(),
        status: status.clone(),
        health: tasks.health().clone(),
    });
    tasks.rest_api(settings.socket_path.clone(), api);
    if let Some(addr) = cfg.prometheus_serve_addr {
        let snapshots = s.endpoints.subscribe();
        let (kernel, metrics) = (s.kernel, s.metrics);
        tasks.metrics_server(
            addr,
            Arc::new(move || {
                use crate::dataplane::Dataplane as _;
                let mut snap = MetricsSnapshot::from_endpoints(&snapshots.borrow());
                snap.datapath = kernel.metrics().unwrap_or_default();
                snap.rss_bytes = crate::sys::rss_bytes();
                crate::metrics::render(&snap, &metrics)
            }),
        );
    }
    tasks.kvstore_probe(store.clone(), settings.node_name.clone(), status.clone());
    if let Some(path) = &cfg.write_cni_conf_when_ready {
        tasks.write_cni_file(path.clone(), settings.socket_path.clone(), status);
    }
}

/// Wait for SIGTERM or SIGINT (a clean exit: the datapath stays in place).
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: exiting, datapath left in place"),
        _ = int.recv() => tracing::info!("SIGINT: exiting, datapath left in place"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> AgentConfig {
        let m: std::collections::BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AgentConfig::from_map(&m).unwrap()
    }

    #[test]
    fn routing_per_mode_and_route_mtu() {
        let native = [
            ("routing-mode", "native"),
            ("ipv4-native-routing-cidr", "172.20.0.0/16"),
        ];
        assert_eq!(node_routing(&cfg(&native), 1500), NodeRouting::Network);
        let mut direct = native.to_vec();
        direct.push(("auto-direct-node-routes", "true"));
        assert_eq!(node_routing(&cfg(&direct), 1500), NodeRouting::Direct);
        let vxlan = cfg(&[("routing-mode", "tunnel")]);
        assert_eq!(
            node_routing(&vxlan, 1500),
            NodeRouting::Tunnel { mtu: 1450 }
        );
        let geneve = cfg(&[("routing-mode", "tunnel"), ("tunnel-protocol", "geneve")]);
        assert_eq!(
            node_routing(&geneve, 9000),
            NodeRouting::Tunnel { mtu: 8950 }
        );
    }
}
