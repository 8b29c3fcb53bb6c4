//! The lab's pod runtime (a minimal kubelet): one process per node,
//! inside the node's network namespace. It registers the Node, writes the
//! bridge CNI configuration once the node has a podCIDR (bridge mode), and
//! runs every pod bound to the node: sandboxes with their own network, UTS
//! and mount namespaces, CNI calls as containerd makes them, workloads.
//!
//! ```text
//!  store.reflect::<Node>  ──> node task ── Ready, labels; podCIDR ──> 10-bridge.conflist ─┐
//!  conf dir (stat 500 ms) ──> config task ──────────────────────────────────── cni_tx ─────┤
//!  store.reflect::<Pod>   ──> pod loop ── per pod uid: watch::Sender<Option<Pod>>          │
//!                                 └──> PodWorker (pod.rs) <── cni_rx ──────────────────────┘
//!                                        ├─ container task per container (spawn/probe/restart)
//!                                        └─ status via store.modify, teardown, Pod delete
//! ```
//!
//! Every task is owned: dropping [`run`]'s future aborts them all, and the
//! pods keep running (they are in their own sessions) to be adopted by the
//! next kubelet. Work is driven by watch events; the only timers are
//! retries, probes, CNI CHECK and the configuration directory stat.
//!
//! The entry points are those of `cilium-lab`'s internal subcommands:
//! [`run`] (`internal kubelet`), [`sandbox::main`] (`internal sandbox`,
//! which the kubelet and the lab exec to enter namespaces; the lab's CLI
//! reads the [`sandbox::SandboxRecord`]s it leaves) and [`whoami`]
//! (`internal whoami`, `internal httpd`). Modules:
//!
//! - `pod`, `process`, `status`, `netns`: one pod's lifecycle, its
//!   processes, its status and its network namespace;
//! - `cni`: the CNI client (configuration, plugin execution, results in
//!   [`cnispec`]'s types);
//! - [`sandbox`]: the single-threaded namespace helper and the on-disk
//!   sandbox records;
//! - [`whoami`]: the built-in `traefik/whoami` server and a static web
//!   server;
//! - `server`, `remotecommand`, `exec`, `pty`, `logs`: the streaming
//!   server on [`SOCKET_FILE`] that the API server proxies `pods/log`,
//!   `pods/exec` and `pods/attach` to (the real kubelet's
//!   `/containerLogs`, `/exec`, `/attach`; WebSocket
//!   `v5.channel.k8s.io`).
//!
//! This crate owns only the node's pod sandboxes: namespaces named
//! `<lab>-pod-*`, files under `<node state dir>/pods/` and the CNI
//! configuration it writes; it never changes the host's namespaces, and it
//! makes no scheduling or controller decisions (the control plane's).

mod cni;
mod error;
mod exec;
mod logs;
mod netns;
mod pod;
mod process;
mod pty;
mod remotecommand;
pub mod sandbox;
mod server;
mod status;
pub mod whoami;

#[cfg(test)]
mod root_tests;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use api::Object;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use store::{Change, Store, WatchEvent};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use toolkit::{Backoff, OwnedTask};

use crate::cni::{CniClient, write_bridge_conflist};
use crate::error::Context as _;
pub use crate::error::Error;
use crate::pod::PodWorker;
use crate::status::{NodeFacts, apply_node_status, now};

/// The streaming server's unix socket in the node's state directory.
pub const SOCKET_FILE: &str = "kubelet.sock";

/// How the node's CNI configuration comes to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CniMode {
    /// The kubelet writes `10-bridge.conflist` (Debian's bridge +
    /// host-local) once the Node has a podCIDR.
    Bridge,
    /// Someone else (the Cilium agent) writes the configuration.
    External,
}

/// What a node's kubelet needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// Lab name (prefix of every namespace name).
    pub lab: String,
    /// Node name.
    pub node: String,
    /// The node's InternalIP (eth1).
    pub node_ip: Ipv4Addr,
    /// The node's state directory (`/run/cilium-lab/<lab>/nodes/<node>`).
    pub state_dir: PathBuf,
    /// The node's cgroup v2 directory; pod processes join it.
    pub cgroup: PathBuf,
    /// CNI configuration directory.
    pub cni_conf_dir: PathBuf,
    /// CNI plugin directories (`CNI_PATH`).
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Who writes the CNI configuration.
    pub cni_mode: CniMode,
    /// The `cilium-lab` binary (for `internal sandbox` and `internal whoami`).
    pub self_exe: PathBuf,
}

/// Shared by all tasks of one kubelet.
pub(crate) struct Ctx {
    store: Store,
    cfg: Config,
    cni: CniClient,
    /// Bumped whenever the CNI configuration directory may have changed.
    cni_rx: watch::Receiver<u64>,
    node_ip: IpAddr,
    facts: NodeFacts,
}

/// Run the kubelet until cancelled (drop the future) or the store fails
/// for good.
pub async fn run(store: Store, cfg: Config) -> Result<(), Error> {
    for dir in [cfg.state_dir.join("pods"), cfg.cni_conf_dir.clone()] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let facts = NodeFacts {
        name: cfg.node.clone(),
        ip: IpAddr::V4(cfg.node_ip),
        kernel: read("/proc/sys/kernel/osrelease"),
        machine_id: read("/etc/machine-id"),
        boot_id: read("/proc/sys/kernel/random/boot_id"),
    };
    let listener = server::bind(&cfg.state_dir.join(SOCKET_FILE))?;
    let (cni_tx, cni_rx) = watch::channel(0u64);
    let ctx = Arc::new(Ctx {
        store,
        cni: CniClient::new(cfg.cni_bin_dirs.clone()),
        node_ip: IpAddr::V4(cfg.node_ip),
        cfg,
        cni_rx,
        facts,
    });
    tracing::info!(
        lab = %ctx.cfg.lab,
        node = %ctx.cfg.node,
        ip = %ctx.cfg.node_ip,
        mode = ?ctx.cfg.cni_mode,
        "kubelet starting"
    );
    let cni_tx = Arc::new(cni_tx);
    let _server = OwnedTask::spawn("kubelet", server::serve(ctx.clone(), listener));
    let _node = OwnedTask::spawn("kubelet", node_task(ctx.clone(), cni_tx.clone()));
    let _conf = OwnedTask::spawn(
        "kubelet",
        config_dir_task(ctx.cfg.cni_conf_dir.clone(), cni_tx),
    );
    pod_loop(ctx).await
}

/// Keep the Node registered and Ready; in bridge mode write the CNI
/// configuration for its podCIDR.
async fn node_task(ctx: Arc<Ctx>, cni_tx: Arc<watch::Sender<u64>>) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut changes = ctx.store.reflect::<Node>(None);
    while let Some(change) = changes.next().await {
        let mine = |n: &Node| n.name() == ctx.cfg.node;
        let node = match change {
            Change::Synced(nodes) => nodes.into_iter().find(mine),
            Change::Event(WatchEvent::Added(n) | WatchEvent::Modified(n)) if mine(&n) => Some(n),
            Change::Event(WatchEvent::Deleted(n)) if mine(&n) => None,
            Change::Event(_) => continue,
        };
        loop {
            match sync_node(&ctx, node.as_ref()).await {
                Ok(()) => break,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, ?delay, "cannot register node");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        backoff.reset();
        if ctx.cfg.cni_mode == CniMode::Bridge
            && let Some(cidr) = node
                .as_ref()
                .and_then(|n| n.spec.as_ref())
                .and_then(|s| s.pod_cidr.as_deref())
        {
            match cidr.parse() {
                Ok(cidr) => {
                    let data_dir = ctx.cfg.state_dir.join("cni").join("networks");
                    match write_bridge_conflist(&ctx.cfg.cni_conf_dir, &cidr, &data_dir) {
                        Ok(true) => {
                            tracing::info!(pod_cidr = %cidr, "wrote bridge CNI configuration");
                            cni_tx.send_modify(|v| *v += 1);
                        }
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot write CNI configuration"),
                    }
                }
                Err(e) => tracing::warn!(pod_cidr = cidr, error = %e, "invalid podCIDR"),
            }
        }
    }
}

/// Create the Node if missing and make its status ours.
async fn sync_node(ctx: &Ctx, current: Option<&Node>) -> store::Result<()> {
    let facts = &ctx.facts;
    if current.is_none() {
        let mut node = Node::default();
        node.metadata.name = Some(facts.name.clone());
        apply_node_status(&mut node, facts, &now());
        match ctx.store.create(&node).await {
            Ok(_) => tracing::info!("node registered"),
            Err(store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    } else if let Some(n) = current
        && !apply_node_status(&mut n.clone(), facts, &now())
    {
        return Ok(());
    }
    let t = now();
    ctx.store
        .modify_status::<Node>(None, &facts.name, |n| apply_node_status(n, facts, &t))
        .await
        .map(|_| ())
}

/// A cheap fingerprint of the configuration directory.
fn dir_fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((e.path(), m.len(), m.modified().ok()))
        })
        .collect();
    v.sort();
    v
}

/// Signal `cni_tx` when the configuration directory changes (another
/// writer in external mode, or an edit by hand).
async fn config_dir_task(dir: PathBuf, cni_tx: Arc<watch::Sender<u64>>) {
    let mut last = dir_fingerprint(&dir);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let fp = dir_fingerprint(&dir);
        if fp != last {
            last = fp;
            cni_tx.send_modify(|v| *v += 1);
        }
    }
}

/// A running pod worker.
struct WorkerHandle {
    tx: watch::Sender<Option<Pod>>,
    _task: OwnedTask,
}

fn on_node(pod: &Pod, node: &str) -> bool {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
        && pod.metadata.uid.as_deref().is_some_and(|u| !u.is_empty())
}

/// Follow every pod of this node, one worker per pod uid.
async fn pod_loop(ctx: Arc<Ctx>) -> Result<(), Error> {
    let mut changes = ctx.store.reflect::<Pod>(None);
    let mut workers: HashMap<String, WorkerHandle> = HashMap::new();
    let mut orphans: HashMap<PathBuf, OwnedTask> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let (orphan_done_tx, mut orphan_done_rx) = mpsc::unbounded_channel::<PathBuf>();
    loop {
        tokio::select! {
            change = changes.next() => {
                let Some(change) = change else {
                    return Err(Error::WatchEnded("pod"));
                };
                match change {
                    Change::Synced(pods) => {
                        let mine: HashMap<String, Pod> = pods
                            .into_iter()
                            .filter(|p| on_node(p, &ctx.cfg.node))
                            .map(|p| (p.metadata.uid.clone().unwrap_or_default(), p))
                            .collect();
                        for (uid, w) in &workers {
                            if !mine.contains_key(uid) {
                                w.tx.send_replace(None);
                            }
                        }
                        for pod in mine.into_values() {
                            dispatch(&ctx, &mut workers, &done_tx, pod);
                        }
                        let known: HashSet<&str> = workers.keys().map(String::as_str).collect();
                        for dir in orphan_dirs(&ctx.cfg.state_dir, &known) {
                            if orphans.contains_key(&dir) {
                                continue;
                            }
                            let (c, d, tx) = (ctx.clone(), dir.clone(), orphan_done_tx.clone());
                            orphans.insert(dir, OwnedTask::spawn("kubelet", async move {
                                pod::destroy_orphan(c, d.clone()).await;
                                let _ = tx.send(d);
                            }));
                        }
                    }
                    Change::Event(WatchEvent::Added(p) | WatchEvent::Modified(p)) => {
                        if on_node(&p, &ctx.cfg.node) {
                            dispatch(&ctx, &mut workers, &done_tx, p);
                        } else if let Some(w) = p.metadata.uid.as_ref().and_then(|u| workers.get(u)) {
                            w.tx.send_replace(None);
                        }
                    }
                    Change::Event(WatchEvent::Deleted(p)) => {
                        if let Some(w) = p.metadata.uid.as_ref().and_then(|u| workers.get(u)) {
                            w.tx.send_replace(None);
                        }
                    }
                }
            }
            Some(uid) = done_rx.recv() => {
                workers.remove(&uid);
            }
            Some(dir) = orphan_done_rx.recv() => {
                orphans.remove(&dir);
            }
        }
    }
}

/// Hand `pod` to its worker, starting one for a new uid.
fn dispatch(
    ctx: &Arc<Ctx>,
    workers: &mut HashMap<String, WorkerHandle>,
    done_tx: &mpsc::UnboundedSender<String>,
    pod: Pod,
) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if let Some(w) = workers.get(&uid) {
        if w.tx.borrow().is_some() {
            w.tx.send_replace(Some(pod));
        }
        return;
    }
    let span = tracing::info_span!(
        "pod",
        pod = %format!("{}/{}", pod.namespace().unwrap_or("default"), pod.name())
    );
    let (tx, rx) = watch::channel(Some(pod.clone()));
    let worker = PodWorker::new(ctx.clone(), pod);
    let done = done_tx.clone();
    let u = uid.clone();
    let task = OwnedTask::spawn(
        "kubelet",
        async move {
            worker.run(rx).await;
            let _ = done.send(u);
        }
        .instrument(span),
    );
    workers.insert(uid, WorkerHandle { tx, _task: task });
}

/// Pod directories whose uid no worker owns.
fn orphan_dirs(state_dir: &Path, known: &HashSet<&str>) -> Vec<PathBuf> {
    std::fs::read_dir(state_dir.join("pods"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let uid = name.rsplit('_').next().unwrap_or("");
            !known.contains(uid)
        })
        .map(|e| e.path())
        .collect()
}
