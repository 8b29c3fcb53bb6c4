//! Wiring and lifecycle of the agent.
//!
//! ```text
//! start: config ok -> store -> state dir -> Node (InternalIP) -> CiliumNode
//!        -> pod CIDR (Node or operator) -> IPAM (restore, router, health)
//!        -> CiliumNode addresses -> sysctls -> cilium_host/cilium_net
//!        -> tunnel device (tunnel mode: created; native: removed)
//!        -> Datapath::load -> local pod CIDR route -> restore endpoints
//!        -> tasks -> CNI config written (ready)
//!
//! tasks (owned, aborted on drop; the agent exits if one dies, a restart
//! is lossless):
//!   cluster controller  CiliumNode + CiliumEndpoint reflectors, endpoint
//!                       snapshots, 30 s tick -> ipcache::compute ->
//!                       ipcache map; routes::node_routes -> kernel
//!   rest api            axum on the unix socket
//!   metrics             axum on prometheus-serve-addr
//!   store probe         status of the KVStore line
//! ```
//!
//! Switching routing modes is a restart with the other config: the tunnel
//! device is created or removed before the datapath loads (which attaches
//! or detaches the overlay program), and the cluster controller rewrites
//! the ipcache entries (tunnel endpoints) and replaces or removes the old
//! mode's node routes. Existing pods keep the route MTU they were created
//! with.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use api::cilium::endpoint::CiliumEndpoint;
use api::cilium::node::CiliumNode;
use futures::StreamExt;
use store::Store;
use tokio::sync::watch;

use crate::api::{ApiState, MapReader};
use crate::cni::{EndpointSnapshot, Endpoints, EndpointsCfg, IpPool};
use crate::config::{AgentConfig, IpamMode, Tunnel, TunnelProtocol};
use crate::ipcache::{self, IpcacheTable, LocalEndpoint, LocalNode};
use crate::metrics::MetricsSnapshot;
use crate::node::{self, CiliumNodeIntent};
use crate::plumbing::{RealPlumbing, sys};
use crate::routes::{self, LocalAddr, NodeRouting, OwnNode};
use crate::state::StateDir;
use crate::status::StatusInputs;
use toolkit::{Cache, OwnedTask, retry};

/// Process-level settings (command-line flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Node name.
    pub node_name: String,
    /// etcd endpoints.
    pub etcd: Vec<String>,
    /// REST socket.
    pub socket_path: PathBuf,
    /// State directory.
    pub state_dir: PathBuf,
    /// Per-node bpffs directory.
    pub bpf_root: PathBuf,
    /// Native device.
    pub native_device: String,
}

/// The CNI network configuration list the agent writes when ready.
pub fn cni_conflist(socket: &std::path::Path) -> String {
    let v = serde_json::json!({
        "cniVersion": "1.1.0",
        "name": "cilium",
        "plugins": [{"type": "cilium-cni", "socket-path": socket.to_string_lossy()}],
    });
    serde_json::to_string_pretty(&v).expect("JSON") + "\n"
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

/// The datapath's view of the configured tunnel.
fn datapath_tunnel(t: Tunnel) -> datapath::TunnelConfig {
    datapath::TunnelConfig {
        protocol: match t.protocol {
            TunnelProtocol::Vxlan => datapath::TunnelProtocol::Vxlan,
            TunnelProtocol::Geneve => datapath::TunnelProtocol::Geneve,
        },
        port: t.port,
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

/// The tunnel device for `cfg` (created, or every one removed in native
/// mode), before the datapath loads.
async fn setup_tunnel(cfg: &AgentConfig) -> anyhow::Result<Option<datapath::TunnelConfig>> {
    let Some(t) = cfg.tunnel() else {
        datapath::net::delete_tunnel_devices()
            .await
            .context("removing tunnel devices (native routing)")?;
        return Ok(None);
    };
    let dp = datapath_tunnel(t);
    let ifindex = datapath::net::setup_tunnel_device(dp.protocol, dp.port)
        .await
        .with_context(|| {
            format!(
                "setting up the tunnel device (tunnel-protocol: {}, tunnel-port: {})",
                t.protocol.as_str(),
                t.port
            )
        })?;
    tracing::info!(
        protocol = t.protocol.as_str(),
        port = t.port,
        ifindex,
        "tunnel device ready"
    );
    Ok(Some(dp))
}

fn set_sysctl(key: &str, value: &str) {
    match datapath::net::sysctl_set(key, value) {
        Ok(()) => tracing::debug!(key, value, "sysctl set"),
        Err(e) => tracing::warn!(key, value, error = %e, "sysctl failed"),
    }
}

/// Run the agent until SIGTERM/SIGINT or until an owned task dies.
pub async fn run(settings: Settings, cfg: AgentConfig) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let name = settings.node_name.clone();
    if cfg.enable_ipv4_masquerade {
        tracing::warn!(
            "enable-ipv4-masquerade: true has no effect yet (masquerading is not implemented); pod traffic leaves unmasqueraded"
        );
    }

    let store = retry("connecting to etcd", || Store::etcd(&settings.etcd)).await;
    tracing::info!(endpoints = ?settings.etcd, "connected to the store");

    let state = StateDir::new(&settings.state_dir);
    let saved_ipam = state.load_ipam().context("reading IPAM state")?;
    let (saved_eps, bad) = state.load_endpoints().context("reading endpoint state")?;
    for e in bad {
        tracing::error!(error = %e, "skipping unreadable endpoint state");
    }
    tracing::info!(
        endpoints = saved_eps.len(),
        allocations = saved_ipam.allocations.len(),
        "local state loaded"
    );

    // Node and pod CIDR.
    let (_node, node_ip) = node::wait_for_node(&store, &name).await;
    tracing::info!(node = %name, internal_ip = %node_ip, "node found");
    let mut intent = CiliumNodeIntent {
        internal_ip: node_ip,
        router_ip: None,
        health_ip: None,
        pod_cidrs: None,
    };
    let cidrs = match cfg.ipam {
        IpamMode::Kubernetes => {
            let c =
                node::wait_for_pod_cidrs(&store, &name, cfg.ipam, cfg.k8s_require_ipv4_pod_cidr)
                    .await;
            intent.pod_cidrs = Some(c.clone());
            retry("writing CiliumNode", || {
                node::ensure_cilium_node(&store, &name, &intent)
            })
            .await;
            c
        }
        IpamMode::ClusterPool => {
            retry("writing CiliumNode", || {
                node::ensure_cilium_node(&store, &name, &intent)
            })
            .await;
            node::wait_for_pod_cidrs(&store, &name, cfg.ipam, false).await
        }
    };
    tracing::info!(pod_cidrs = ?cidrs, ipam = cfg.ipam.as_str(), "pod CIDR known");

    // IPAM.
    let mut pool: Box<dyn IpPool> = Box::new(ipam::NodeIpAllocator::new(&cidrs));
    for (ip, owner) in &saved_ipam.allocations {
        if let Err(e) = pool.allocate(*ip, owner) {
            tracing::warn!(%ip, owner, error = %e, "dropping persisted allocation");
        }
    }
    let router_ip = reserved_ip(pool.as_mut(), "router")?;
    let health_ip = reserved_ip(pool.as_mut(), "health")?;
    state
        .save_ipam(&crate::state::IpamState {
            cidrs: pool.cidrs(),
            allocations: pool.allocated(),
        })
        .context("saving IPAM state")?;
    intent.router_ip = Some(router_ip);
    intent.health_ip = Some(health_ip);
    retry("writing CiliumNode addresses", || {
        node::ensure_cilium_node(&store, &name, &intent)
    })
    .await;
    tracing::info!(%router_ip, %health_ip, "router and health IPs");

    // Host networking and datapath.
    set_sysctl("net.ipv4.ip_forward", "1");
    set_sysctl("net.ipv4.conf.all.rp_filter", "0");
    set_sysctl(
        &format!("net.ipv4.conf.{}.rp_filter", settings.native_device),
        "0",
    );
    let mtu = if cfg.mtu != 0 {
        cfg.mtu
    } else {
        sys::device_mtu(&settings.native_device).unwrap_or_else(|| {
            tracing::warn!(device = %settings.native_device, "cannot read the device MTU; using 1500");
            1500
        })
    };
    datapath::net::setup_host_devices(router_ip, mtu)
        .await
        .context("setting up cilium_host/cilium_net")?;
    set_sysctl("net.ipv4.conf.cilium_host.rp_filter", "0");
    set_sysctl("net.ipv4.conf.cilium_net.rp_filter", "0");
    let tunnel = setup_tunnel(&cfg).await?;
    let dp = datapath::Datapath::load(&datapath::DatapathConfig {
        bpf_dir: settings.bpf_root.clone(),
        router_ip,
        node_ip,
        native_devices: vec![settings.native_device.clone()],
        cluster_id: cfg.cluster_id,
        tunnel,
    })
    .context("loading the datapath")?;
    let routing = node_routing(&cfg, mtu);
    for c in &cidrs {
        let r = routes::cilium_host_route(*c, router_ip, 0);
        datapath::net::route_replace(&r)
            .await
            .with_context(|| format!("installing the local pod CIDR route {c}"))?;
    }

    // Endpoints.
    let identities =
        identity::Allocator::new(store.clone(), identity::MIN_GLOBAL, identity::MAX_GLOBAL);
    let plumbing = Arc::new(RealPlumbing::new(
        dp,
        store.clone(),
        identities,
        cfg.cluster_name.clone(),
        node_ip,
    ));
    let endpoints = Arc::new(Endpoints::new(
        plumbing.clone(),
        EndpointsCfg {
            router_ip,
            mtu,
            route_mtu: match routing {
                NodeRouting::Tunnel { mtu } => mtu,
                NodeRouting::Direct | NodeRouting::Network => 0,
            },
            endpoint_routes: cfg.enable_endpoint_routes,
        },
        state.clone(),
        pool,
    ));
    endpoints.restore(saved_eps).await;

    // Tasks.
    let status = Arc::new(Mutex::new(StatusInputs {
        kvstore_endpoints: settings.etcd.join(","),
        store_ok: true,
        store_error: None,
        cni_conf: None,
        controllers: (0, 0),
        devices: vec![settings.native_device.clone()],
    }));
    let (ipcache_tx, ipcache_rx) = watch::channel(IpcacheTable::new());
    let local = LocalNode {
        name: name.clone(),
        internal_ip: Some(node_ip),
        router_ip: Some(router_ip),
        health_ip: Some(health_ip),
        other_ips: Vec::new(),
    };
    let own = OwnNode {
        name: name.clone(),
        internal_ip: Some(node_ip),
        router_ip,
        pod_cidrs: cidrs.clone(),
        native_cidr: cfg.ipv4_native_routing_cidr,
    };
    let mut tasks = vec![OwnedTask::spawn(
        "cluster-controller",
        cluster_controller(ClusterController {
            store: store.clone(),
            local,
            own,
            routing,
            endpoints: endpoints.subscribe(),
            maps: plumbing.clone(),
            ipcache_tx,
        }),
    )];
    let api_state = Arc::new(ApiState {
        node_name: name.clone(),
        config: cfg.clone(),
        endpoints: endpoints.clone(),
        ipcache: ipcache_rx,
        maps: plumbing.clone() as Arc<dyn MapReader>,
        status: status.clone(),
    });
    let listener = crate::api::bind_unix(&settings.socket_path)
        .with_context(|| format!("binding {}", settings.socket_path.display()))?;
    let router = crate::api::router(api_state);
    tasks.push(OwnedTask::spawn("rest-api", async move {
        if let Err(e) = crate::api::serve_unix(listener, router).await {
            tracing::error!(error = %e, "REST API stopped");
        }
    }));
    tracing::info!(socket = %settings.socket_path.display(), "REST API listening");
    if let Some(addr) = cfg.prometheus_serve_addr {
        let eps = endpoints.subscribe();
        let maps = plumbing.clone();
        let snapshot = Arc::new(move || {
            let mut s = MetricsSnapshot::from_endpoints(&eps.borrow());
            s.datapath = maps.metrics_dump().unwrap_or_default();
            s.rss_bytes = sys::rss_bytes();
            s
        });
        tasks.push(OwnedTask::spawn("metrics", async move {
            if let Err(e) = crate::api::serve_metrics(addr, snapshot).await {
                tracing::error!(error = %e, %addr, "metrics server stopped");
            }
        }));
        tracing::info!(%addr, "Prometheus metrics listening");
    }
    tasks.push(OwnedTask::spawn(
        "store-probe",
        store_probe(store.clone(), name.clone(), status.clone()),
    ));
    status.lock().unwrap_or_else(|p| p.into_inner()).controllers = (tasks.len(), tasks.len());

    // Ready.
    if let Some(path) = &cfg.write_cni_conf_when_ready {
        toolkit::write_atomic(path, cni_conflist(&settings.socket_path).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        status.lock().unwrap_or_else(|p| p.into_inner()).cni_conf =
            Some(path.display().to_string());
        tracing::info!(path = %path.display(), "CNI configuration written");
    }
    tracing::info!(node = %name, "agent ready");

    supervise(&tasks).await
}

/// Wait for a signal (clean exit) or for a task to end (error exit).
async fn supervise(tasks: &[OwnedTask]) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: exiting, datapath left in place"); return Ok(()); }
            _ = int.recv() => { tracing::info!("SIGINT: exiting, datapath left in place"); return Ok(()); }
            _ = check.tick() => {
                if let Some(t) = tasks.iter().find(|t| t.is_finished()) {
                    anyhow::bail!("task {} ended unexpectedly", t.name());
                }
            }
        }
    }
}

async fn store_probe(store: Store, name: String, status: Arc<Mutex<StatusInputs>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        let r = store.get::<CiliumNode>(None, &name).await;
        let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
        match r {
            Ok(_) => {
                s.store_ok = true;
                s.store_error = None;
            }
            Err(e) => {
                s.store_ok = false;
                s.store_error = Some(e.to_string());
            }
        }
    }
}

struct ClusterController {
    store: Store,
    local: LocalNode,
    own: OwnNode,
    routing: NodeRouting,
    endpoints: watch::Receiver<EndpointSnapshot>,
    maps: Arc<RealPlumbing>,
    ipcache_tx: watch::Sender<IpcacheTable>,
}

/// Local addresses that are `reserved:host` beside InternalIP and router IP.
fn other_host_ips(addrs: &[LocalAddr]) -> Vec<Ipv4Addr> {
    addrs
        .iter()
        .map(|a| a.addr.addr())
        .filter(|ip| !ip.is_loopback())
        .collect()
}

/// The ipcache and node-route controller. Nothing is written before
/// both reflectors delivered their first snapshot, so a restarted agent
/// never removes a remote entry or route it has not yet seen again.
async fn cluster_controller(mut c: ClusterController) {
    let mut nodes_stream = c.store.reflect::<CiliumNode>(None);
    let mut ceps_stream = c.store.reflect::<CiliumEndpoint>(None);
    let mut nodes: Cache<CiliumNode> = Cache::default();
    let mut ceps: Cache<CiliumEndpoint> = Cache::default();
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    let mut warned: BTreeSet<(String, Option<Ipv4Addr>)> = BTreeSet::new();
    loop {
        tokio::select! {
            Some(ch) = nodes_stream.next() => { nodes.apply(ch); }
            Some(ch) = ceps_stream.next() => { ceps.apply(ch); }
            r = c.endpoints.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        if !(nodes.synced() && ceps.synced()) {
            continue;
        }
        let addrs = sys::local_addrs();
        c.local.other_ips = other_host_ips(&addrs);
        let eps: Vec<LocalEndpoint> = c
            .endpoints
            .borrow()
            .endpoints
            .iter()
            .map(|e| LocalEndpoint {
                ip: e.ipv4,
                identity: e.identity,
                labels: e.labels.clone(),
            })
            .collect();
        let node_list: Vec<CiliumNode> = nodes.values().cloned().collect();
        let cep_list: Vec<CiliumEndpoint> = ceps.values().cloned().collect();
        let tunnel = matches!(c.routing, NodeRouting::Tunnel { .. });
        let desired = ipcache::compute(&c.local, &eps, &node_list, &cep_list, tunnel);
        reconcile_ipcache(&c.maps, &desired);
        c.ipcache_tx.send_replace(desired);

        let plan = routes::node_routes(c.routing, &c.own, &node_list, &addrs);
        let skipping = match c.routing {
            NodeRouting::Tunnel { .. } => {
                "tunnel: skipping peer, its pod CIDR is not routed through the tunnel"
            }
            NodeRouting::Direct | NodeRouting::Network => {
                "auto-direct-node-routes: skipping peer, its pod CIDR is not routed directly"
            }
        };
        for s in &plan.skipped {
            if warned.insert((s.node.clone(), s.ip)) {
                tracing::warn!(
                    peer = %s.node,
                    peer_ip = %s.ip.map(|i| i.to_string()).unwrap_or_default(),
                    reason = s.reason,
                    "{skipping}"
                );
            }
        }
        warned.retain(|w| plan.skipped.iter().any(|s| (s.node.clone(), s.ip) == *w));
        reconcile_routes(&plan, &c.own).await;
    }
}

fn reconcile_ipcache(maps: &RealPlumbing, desired: &IpcacheTable) {
    let actual = match maps.ipcache_dump() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "ipcache: dump failed");
            return;
        }
    };
    let ops = ipcache::diff(desired, &actual);
    for (prefix, entry) in &ops.upsert {
        if let Err(e) = maps.with_datapath(|dp| dp.ipcache_upsert(*prefix, entry)) {
            tracing::error!(%prefix, error = %e, "ipcache: upsert failed");
        }
    }
    for prefix in &ops.delete {
        if let Err(e) = maps.with_datapath(|dp| dp.ipcache_delete(*prefix)) {
            tracing::error!(%prefix, error = %e, "ipcache: delete failed");
        }
    }
    if !ops.upsert.is_empty() || !ops.delete.is_empty() {
        tracing::debug!(
            upserts = ops.upsert.len(),
            deletes = ops.delete.len(),
            "ipcache reconciled"
        );
    }
}

async fn reconcile_routes(plan: &routes::NodeRoutes, own: &OwnNode) {
    let actual = match datapath::net::routes_with_proto(routes::PROTO_KERNEL).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "routes: listing failed");
            return;
        }
    };
    let ops = routes::route_ops(plan, &actual, own);
    for r in &ops.replace {
        match datapath::net::route_replace(r).await {
            Ok(()) => {
                tracing::info!(dst = %r.dst, via = ?r.via, dev = %r.dev, mtu = r.mtu, "node route installed")
            }
            Err(e) => tracing::error!(dst = %r.dst, error = %e, "node route failed"),
        }
    }
    for r in &ops.delete {
        match datapath::net::route_delete(r).await {
            Ok(()) => {
                tracing::info!(dst = %r.dst, via = ?r.via, dev = %r.dev, "stale node route removed")
            }
            Err(e) => tracing::error!(dst = %r.dst, error = %e, "removing route failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist() {
        let s = cni_conflist(std::path::Path::new("/var/run/cilium/cilium.sock"));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["name"], "cilium");
        assert_eq!(v["plugins"][0]["type"], "cilium-cni");
        assert_eq!(
            v["plugins"][0]["socket-path"],
            "/var/run/cilium/cilium.sock"
        );
    }

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

    #[test]
    fn datapath_gets_the_resolved_tunnel() {
        let t = |pairs: &[(&str, &str)]| datapath_tunnel(cfg(pairs).tunnel().unwrap());
        assert_eq!(
            t(&[("routing-mode", "tunnel")]),
            datapath::TunnelConfig {
                protocol: datapath::TunnelProtocol::Vxlan,
                port: 8472
            }
        );
        assert_eq!(
            t(&[("routing-mode", "tunnel"), ("tunnel-protocol", "geneve")]),
            datapath::TunnelConfig {
                protocol: datapath::TunnelProtocol::Geneve,
                port: 6081
            }
        );
    }

    #[test]
    fn other_host_ips_skip_loopback() {
        let addrs = vec![
            LocalAddr {
                ifname: "lo".into(),
                addr: "127.0.0.1/8".parse().unwrap(),
            },
            LocalAddr {
                ifname: "eth1".into(),
                addr: "192.168.10.100/24".parse().unwrap(),
            },
        ];
        assert_eq!(
            other_host_ips(&addrs),
            vec!["192.168.10.100".parse::<Ipv4Addr>().unwrap()]
        );
    }
}
