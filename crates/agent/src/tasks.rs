//! Every task of the agent, and the channels and tables between them.
//!
//! ```text
//!  store (etcd)                                        kernel / store
//!  │ CiliumNode, CiliumEndpoint                              ▲
//!  ▼ reflectors                                              │
//!  cluster-controller ──sync──▶ [ipcache] ──▶ bpf-map-sync-cilium_ipcache_v2
//!   ▲   │                 └──▶ [routes]  ──▶ route-sync (main table, proto kernel)
//!   │   └ ipcache::compute, routes::node_routes (pure)
//!   │ endpoint snapshots (watch channel)
//!  EndpointManager ◀── rest-api (CNI ADD/DEL/CHECK/GC) ◀── cilium-cni
//!   ├──▶ [lxc]              ──▶ bpf-map-sync-cilium_lxc
//!   ├──▶ [endpoint-programs] ──▶ endpoint-programs (tc filters on lxc*)
//!   ├──▶ [routes]           (endpoint routes)
//!   └──▶ [cilium-endpoints] ──▶ cilium-endpoint-sync (store)
//!  start-up ──▶ [cilium-node]    ──▶ cilium-node-sync (store)
//!           ──▶ [tunnel-devices] ──▶ tunnel-device-sync (netlink)
//!           ──▶ [routes]         (this node's pod CIDR)
//!  kvstore-probe (every 10 s) ──▶ StatusInputs ◀── rest-api /v1/status
//!  write-cni-file (once, when ready); metrics-server (/metrics)
//! ```
//!
//! `[table]`s are [`crate::tables`]; each has exactly one reconciler.
//! Every task is owned by [`Tasks`] (aborted when it is dropped) and
//! supervised: a task that fails or panics is restarted with backoff, and
//! every task and reconciler has a row in the controller status
//! (`cilium-dbg status --all-controllers`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::cilium::endpoint::CiliumEndpoint;
use api::cilium::node::CiliumNode;
use futures::StreamExt;
use reconciler::{Initializer, Operations, Reconciler, ReconcilerMetrics, Row, Table};
use store::Store;
use tokio::sync::watch;
use toolkit::{Cache, Health, OwnedTask, Supervisor};

use crate::cluster::{CiliumEndpoints, CiliumNodes, StoreIdentities};
use crate::endpoints::{EndpointManager, EndpointSnapshot};
use crate::ipcache::{self, IpcacheRow, LocalNode};
use crate::kernel::{Kernel, Routes, TunnelDevices};
use crate::routes::{self, LocalAddr, NodeRouting, OwnNode, RouteOwnership};
use crate::status::StatusInputs;
use crate::tables::{ClusterWriters, RouteOwner, RouteRow, Tables};

/// The endpoint manager of a running agent.
pub type Manager = EndpointManager<Kernel, StoreIdentities>;

/// How often the cluster controller re-reads the local addresses.
const LOCAL_ADDR_INTERVAL: Duration = Duration::from_secs(30);

/// How long the store probe waits. Kubernetes clients retry an API server
/// that answers 503 (as ours does while etcd is down) for minutes; the
/// status reports the failure meanwhile.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The agent's tasks and reconcilers.
pub struct Tasks {
    supervisor: Supervisor,
    reconcilers: Vec<Reconciler>,
    metrics: ReconcilerMetrics,
}

impl Tasks {
    /// No tasks yet; they will report to `health` and `metrics`.
    pub fn new(health: Health, metrics: ReconcilerMetrics) -> Self {
        Self {
            supervisor: Supervisor::new(health),
            reconcilers: Vec::new(),
            metrics,
        }
    }

    /// The controller status registry.
    pub fn health(&self) -> &Health {
        self.supervisor.health()
    }

    fn reconcile<R: Row, O: Operations<R>>(&mut self, name: &str, table: &Table<R>, ops: O) {
        let cfg = reconciler::Config::new(name);
        let r = reconciler::spawn(table.clone(), ops, cfg, self.health(), &self.metrics);
        self.reconcilers.push(r);
    }

    /// This node's CiliumNode, written from the `cilium-node` table.
    pub fn cilium_node_sync(&mut self, tables: &Tables, store: &Store) {
        self.reconcile(
            "cilium-node-sync",
            &tables.node,
            CiliumNodes::new(store.clone()),
        );
    }

    /// The tunnel devices, from the `tunnel-devices` table.
    pub fn tunnel_device_sync(&mut self, tables: &Tables) {
        self.reconcile("tunnel-device-sync", &tables.tunnels, TunnelDevices);
    }

    /// The BPF maps, endpoint programs and routes of the loaded datapath.
    pub fn kernel_sync(&mut self, tables: &Tables, kernel: &Kernel, ownership: RouteOwnership) {
        self.reconcile("bpf-map-sync-cilium_lxc", &tables.lxc, kernel.lxc_map());
        self.reconcile(
            "bpf-map-sync-cilium_ipcache_v2",
            &tables.ipcache,
            kernel.ipcache_map(),
        );
        self.reconcile(
            "endpoint-programs",
            &tables.programs,
            kernel.endpoint_programs(),
        );
        self.reconcile("route-sync", &tables.routes, Routes::new(ownership));
    }

    /// This node's CiliumEndpoints, from the `cilium-endpoints` table.
    pub fn cilium_endpoint_sync(&mut self, tables: &Tables, store: &Store, node_ip: Ipv4Addr) {
        self.reconcile(
            "cilium-endpoint-sync",
            &tables.ceps,
            CiliumEndpoints::new(store.clone(), node_ip),
        );
    }

    /// The ipcache and node-route controller (see [`cluster_controller`]).
    pub fn cluster_controller(&mut self, inputs: ClusterInputs, writers: ClusterWriters) {
        let ipcache_init = Arc::new(Mutex::new(Some(writers.ipcache)));
        let routes_init = Arc::new(Mutex::new(Some(writers.routes)));
        self.supervisor.spawn("cluster-controller", move || {
            cluster_controller(inputs.clone(), ipcache_init.clone(), routes_init.clone())
        });
    }

    /// The REST API on `socket` (re-bound on every restart).
    pub fn rest_api(&mut self, socket: PathBuf, state: Arc<crate::api::ApiState>) {
        self.supervisor.spawn("rest-api", move || {
            let socket = socket.clone();
            let router = crate::api::router(state.clone());
            async move {
                let listener = crate::api::bind_unix(&socket)
                    .map_err(|e| format!("binding {}: {e}", socket.display()))?;
                tracing::info!(socket = %socket.display(), "REST API listening");
                crate::api::serve_unix(listener, router)
                    .await
                    .map_err(|e| format!("REST API: {e}"))
            }
        });
    }

    /// `/metrics` on `addr`; `scrape` renders the text.
    pub fn metrics_server(
        &mut self,
        addr: SocketAddr,
        scrape: Arc<dyn Fn() -> String + Send + Sync>,
    ) {
        self.supervisor.spawn("metrics-server", move || {
            let scrape = scrape.clone();
            async move {
                tracing::info!(%addr, "Prometheus metrics listening");
                crate::api::serve_metrics(addr, scrape)
                    .await
                    .map_err(|e| format!("metrics server on {addr}: {e}"))
            }
        });
    }

    /// Check the store every 10 s for the `KVStore:` / `Kubernetes:`
    /// status lines; a probe without an answer within [`PROBE_TIMEOUT`]
    /// fails.
    pub fn kvstore_probe(&mut self, store: Store, node: String, status: Arc<Mutex<StatusInputs>>) {
        self.supervisor
            .spawn_periodic("kvstore-probe", Duration::from_secs(10), move || {
                let (store, node, status) = (store.clone(), node.clone(), status.clone());
                async move {
                    let probe = store.get::<CiliumNode>(None, &node);
                    let r = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                        Ok(r) => r.map(drop).map_err(|e| e.to_string()),
                        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
                    };
                    let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
                    s.store_ok = r.is_ok();
                    s.store_error = r.as_ref().err().cloned();
                    r
                }
            });
    }

    /// Write the CNI configuration (the agent is ready).
    pub fn write_cni_file(
        &mut self,
        path: PathBuf,
        socket: PathBuf,
        status: Arc<Mutex<StatusInputs>>,
    ) {
        self.supervisor.spawn("write-cni-file", move || {
            let (path, socket, status) = (path.clone(), socket.clone(), status.clone());
            async move {
                toolkit::write_atomic(&path, cni_conflist(&socket).as_bytes())
                    .map_err(|e| e.to_string())?;
                status.lock().unwrap_or_else(|p| p.into_inner()).cni_conf =
                    Some(path.display().to_string());
                tracing::info!(path = %path.display(), "CNI configuration written");
                Ok::<(), String>(())
            }
        });
    }
}

/// The CNI network configuration list the agent writes when ready.
pub fn cni_conflist(socket: &Path) -> String {
    let v = serde_json::json!({
        "cniVersion": "1.1.0",
        "name": "cilium",
        "plugins": [{"type": "cilium-cni", "socket-path": socket.to_string_lossy()}],
    });
    serde_json::to_string_pretty(&v).expect("JSON") + "\n"
}

/// What the cluster controller reads and writes.
#[derive(Clone)]
pub struct ClusterInputs {
    /// The store.
    pub store: Store,
    /// This node's addresses.
    pub local: LocalNode,
    /// This node, for route decisions.
    pub own: OwnNode,
    /// How other nodes' pod CIDRs are reached.
    pub routing: NodeRouting,
    /// Local endpoints.
    pub endpoints: watch::Receiver<EndpointSnapshot>,
    /// The tables it writes (`ipcache`, `routes`).
    pub tables: Tables,
    /// When the agent started (for the "cluster state synced" line).
    pub started: std::time::Instant,
}

/// Local addresses that are `reserved:host` beside InternalIP and router IP.
pub fn other_host_ips(addrs: &[LocalAddr]) -> Vec<Ipv4Addr> {
    addrs
        .iter()
        .map(|a| a.addr.addr())
        .filter(|ip| !ip.is_loopback())
        .collect()
}

type SharedInit<R> = Arc<Mutex<Option<Initializer<R>>>>;

fn done<R: Row>(init: &SharedInit<R>) {
    if let Some(i) = init.lock().unwrap_or_else(|p| p.into_inner()).take() {
        i.done();
    }
}

/// The ipcache and node-route controller: on every change of CiliumNodes,
/// CiliumEndpoints, local endpoints or local addresses, it recomputes the
/// desired ipcache ([`ipcache::compute`]) and node routes
/// ([`routes::node_routes`]) and syncs them into their tables, the only
/// writer of those rows. Local rows are written at once (an ADD waits for
/// its endpoint's entry); the tables count as initialized (their
/// reconcilers may prune) once both reflectors delivered a snapshot, and
/// node routes are written from then on, so a restarted agent never
/// removes a remote entry or route it has not yet seen again.
///
/// The first time both snapshots are in, it logs `cluster state synced`
/// (with the counts and the time since the agent started) once the
/// reconcilers have applied the ipcache and node routes computed from
/// them: the agent's observable "synced" signal.
async fn cluster_controller(
    mut c: ClusterInputs,
    ipcache_init: SharedInit<IpcacheRow>,
    routes_init: SharedInit<RouteRow>,
) -> Result<(), String> {
    let mut nodes_stream = c.store.reflect::<CiliumNode>(None);
    let mut ceps_stream = c.store.reflect::<CiliumEndpoint>(None);
    let mut nodes: Cache<CiliumNode> = Cache::default();
    let mut ceps: Cache<CiliumEndpoint> = Cache::default();
    let mut tick = tokio::time::interval(LOCAL_ADDR_INTERVAL);
    let mut warnings = routes::SkipWarnings::default();
    let mut announce: Option<OwnedTask> = None;
    loop {
        tokio::select! {
            Some(ch) = nodes_stream.next() => { nodes.apply(ch); }
            Some(ch) = ceps_stream.next() => { ceps.apply(ch); }
            r = c.endpoints.changed() => if r.is_err() { return Ok(()) },
            _ = tick.tick() => {}
        }
        let addrs = crate::sys::local_addrs();
        c.local.other_ips = other_host_ips(&addrs);
        let eps = c.endpoints.borrow().ipcache_endpoints();
        let node_list: Vec<CiliumNode> = nodes.values().cloned().collect();
        let cep_list: Vec<CiliumEndpoint> = ceps.values().cloned().collect();
        let tunnel = matches!(c.routing, NodeRouting::Tunnel { .. });
        let desired = ipcache::compute(&c.local, &eps, &node_list, &cep_list, tunnel);
        let ipcache_rev = c.tables.ipcache.sync(|_| true, desired.into_values());
        if !(nodes.synced() && ceps.synced()) {
            continue;
        }
        done(&ipcache_init);
        let plan = routes::node_routes(c.routing, &c.own, &node_list, &addrs);
        warnings.report(c.routing, &plan.skipped);
        let routes_rev = c
            .tables
            .routes
            .sync(|r| r.owner == RouteOwner::NodeRoutes, plan.routes);
        done(&routes_init);
        if announce.is_none() {
            let counts = (node_list.len(), cep_list.len());
            let (tables, started) = (c.tables.clone(), c.started);
            announce = Some(OwnedTask::spawn(
                "cluster-synced",
                announce_synced(tables, (ipcache_rev, routes_rev), counts, started),
            ));
        }
    }
}

/// Rows of `table` whose last reconciliation failed.
fn failed<R: Row>(table: &Table<R>) -> usize {
    table
        .rows()
        .iter()
        .filter(|(_, _, status)| status.error().is_some())
        .count()
}

/// How long the "cluster state synced" line waits for the reconcilers.
const SYNCED_WAIT: Duration = Duration::from_secs(600);

/// Log `cluster state synced` once the ipcache and route reconcilers have
/// attempted the first complete picture (table revisions `revs`).
async fn announce_synced(
    tables: Tables,
    revs: (reconciler::Revision, reconciler::Revision),
    (cilium_nodes, cilium_endpoints): (usize, usize),
    started: std::time::Instant,
) {
    let waited = tokio::try_join!(
        tables.ipcache.wait_reconciled(revs.0, SYNCED_WAIT),
        tables.routes.wait_reconciled(revs.1, SYNCED_WAIT),
    );
    if let Err(error) = waited {
        tracing::warn!(%error, "cluster state not applied in time");
        return;
    }
    tracing::info!(
        cilium_nodes,
        cilium_endpoints,
        ipcache_entries = tables.ipcache.len(),
        ipcache_errors = failed(&tables.ipcache),
        routes = tables.routes.len(),
        route_errors = failed(&tables.routes),
        since_start_ms = started.elapsed().as_millis() as u64,
        "cluster state synced"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist() {
        let s = cni_conflist(Path::new("/var/run/cilium/cilium.sock"));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["name"], "cilium");
        assert_eq!(v["plugins"][0]["type"], "cilium-cni");
        assert_eq!(
            v["plugins"][0]["socket-path"],
            "/var/run/cilium/cilium.sock"
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
