//! A lab's lifecycle: `up` builds the fabric, makes every cluster's
//! certificates, starts etcd (mutual TLS only), the control plane, the
//! kubelets and the router's web server, waits for the nodes (and
//! optionally the sample workloads) to be ready; `down` ends every
//! process it started, kills what is left in the lab's cgroups, deletes its
//! namespaces, pins and state. The lab's on-disk state lives under
//! `/run/cilium-lab/<lab>/`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use api::cilium::node::CiliumNode;
use api::k8s_openapi::api::core::v1::{Node, Pod};
use serde::{Deserialize, Serialize};
use store::Store;

use crate::cilium::{self, AgentPaths, Cni};
use crate::procs::{self, ProcRecord, Spawn};
use crate::topology::{ClusterSpec, Host, Role, Topology, Web, check_lab_name};
use crate::{certs, fabric};

/// Root of every lab's state directory.
pub const STATE_ROOT: &str = "/run/cilium-lab";
/// The cgroup v2 mount the lab's cgroups live under.
pub const CGROUP_ROOT: &str = "/run/cilium/cgroupv2";
/// bpffs mount point.
pub const BPFFS: &str = "/sys/fs/bpf";

/// Port etcd listens on inside the control-plane node.
const ETCD_PORT: u16 = 2379;
/// The file of etcd's unix socket in its directory: etcd 3.4 names it
/// after the URL `unixs://etcd.sock:0`, port included.
const ETCD_SOCKET_FILE: &str = "etcd.sock:0";

/// What `up` recorded about a running lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    /// Lab name.
    pub lab: String,
    /// The topology it was built from.
    pub topology: Topology,
    /// `cilium-config` keys given with `--config`.
    pub config: BTreeMap<String, String>,
    /// The CNI the nodes use.
    #[serde(default)]
    pub cni: Cni,
    /// Processes started by the lab.
    pub processes: Vec<ProcRecord>,
}

/// Paths of one lab.
#[derive(Debug, Clone)]
pub struct LabPaths {
    /// Lab name.
    pub lab: String,
}

impl LabPaths {
    /// Paths for lab `lab`.
    pub fn new(lab: &str) -> Self {
        Self { lab: lab.into() }
    }
    /// `/run/cilium-lab/<lab>`.
    pub fn root(&self) -> PathBuf {
        Path::new(STATE_ROOT).join(&self.lab)
    }
    /// The state file.
    pub fn state_file(&self) -> PathBuf {
        self.root().join("lab.json")
    }
    /// Log directory of lab processes.
    pub fn logs(&self) -> PathBuf {
        self.root().join("logs")
    }
    /// A node's state directory (kubelet state, CNI config and pods).
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.root().join("nodes").join(node)
    }
    /// A node's CNI configuration directory.
    pub fn cni_conf_dir(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("cni").join("net.d")
    }
    /// A cluster's etcd directory (data and unix socket).
    pub fn etcd_dir(&self, cluster: &str) -> PathBuf {
        self.root().join("clusters").join(cluster).join("etcd")
    }
    /// The file of etcd's unix socket (`unixs://<file>`, for the host:
    /// mutual TLS like every other etcd listener).
    pub fn etcd_socket_file(&self, cluster: &str) -> PathBuf {
        self.etcd_dir(cluster).join(ETCD_SOCKET_FILE)
    }
    /// The lab's cgroup directory.
    pub fn cgroup_root(&self) -> PathBuf {
        Path::new(CGROUP_ROOT).join(&self.lab)
    }
    /// A host's cgroup.
    pub fn cgroup(&self, host: &str) -> PathBuf {
        self.cgroup_root().join(host)
    }
    /// The lab's bpffs directory.
    pub fn bpffs(&self) -> PathBuf {
        Path::new(BPFFS).join(&self.lab)
    }
}

impl LabState {
    /// Load a lab's state; a clear error when there is no such lab.
    pub fn load(lab: &str) -> Result<Self> {
        check_lab_name(lab)?;
        let path = LabPaths::new(lab).state_file();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!("no such lab {lab:?} (start it with `cilium-lab up --name {lab}`)")
            } else {
                anyhow::anyhow!("cannot read {}: {e}", path.display())
            }
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("corrupt state file {}", path.display()))
    }

    /// The cluster named `name`, by default the first.
    pub fn cluster(&self, name: Option<&str>) -> Result<&ClusterSpec> {
        match name {
            Some(name) => self
                .topology
                .clusters
                .iter()
                .find(|c| c.name == name)
                .with_context(|| format!("lab {:?} has no cluster {name:?}", self.lab)),
            None => Ok(&self.topology.clusters[0]),
        }
    }

    pub(crate) fn save(&self) -> Result<()> {
        let paths = LabPaths::new(&self.lab);
        let tmp = paths.root().join("lab.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, paths.state_file())?;
        Ok(())
    }

    /// Connect to a cluster's API server from the host (the lab's
    /// kubeconfig, the cluster's context). `cluster` defaults to the first
    /// cluster.
    pub async fn connect(&self, cluster: Option<&str>) -> Result<Store> {
        let name = &self.cluster(cluster)?.name;
        let kubeconfig = certs::kubeconfig_path(&LabPaths::new(&self.lab));
        Store::kubeconfig(Some(&kubeconfig), Some(name))
            .await
            .with_context(|| format!("cannot reach the API server of lab {:?}", self.lab))
    }
}

/// Options of `up`.
pub struct UpOptions {
    /// Lab name.
    pub lab: String,
    /// Topology (`seed`, `clustermesh` or a file).
    pub topology: String,
    /// `--config KEY=VALUE` pairs.
    pub config: BTreeMap<String, String>,
    /// The CNI.
    pub cni: Cni,
    /// Deploy the seeds' sample workloads.
    pub workloads: bool,
    /// How long to wait for readiness.
    pub timeout: Duration,
}

/// Progress output for long steps: one line per step with its duration.
struct Progress {
    start: Instant,
}

impl Progress {
    fn step<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Self::begin(what);
        Self::end(started, f())
    }

    async fn step_async<T>(&self, what: &str, f: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Self::begin(what);
        Self::end(started, f.await)
    }

    fn begin(what: &str) -> Instant {
        eprint!("  {what} ...");
        Instant::now()
    }

    fn end<T>(started: Instant, r: Result<T>) -> Result<T> {
        match &r {
            Ok(_) => eprintln!(" done ({} ms)", started.elapsed().as_millis()),
            Err(_) => eprintln!(" FAILED"),
        }
        r
    }
}

/// Make sure bpffs and the cgroup2 hierarchy are mounted.
fn ensure_mounts() -> Result<()> {
    let mounted = |path: &str, fstype: &str| {
        std::process::Command::new("findmnt")
            .args(["-n", "-t", fstype, path])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !mounted(BPFFS, "bpf") {
        procs::run("mount", &["-t", "bpf", "bpf", BPFFS])?;
    }
    if !mounted(CGROUP_ROOT, "cgroup2") {
        std::fs::create_dir_all(CGROUP_ROOT)?;
        procs::run("mount", &["-t", "cgroup2", "none", CGROUP_ROOT])?;
    }
    Ok(())
}

fn require_tools() -> Result<()> {
    for tool in ["ip", "etcd", "sysctl", "findmnt"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            bail!("{tool} not found: run scripts/setup.sh (or `make lab`) first");
        }
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("cilium-lab must run as root (it creates network namespaces)");
    }
    Ok(())
}

/// Whether a lab with this name is up and healthy with this topology.
fn already_up(opts: &UpOptions, topo: &Topology) -> bool {
    let Ok(state) = LabState::load(&opts.lab) else {
        return false;
    };
    state.topology == *topo
        && state.config == opts.config
        && state.cni == opts.cni
        && !state.processes.is_empty()
        && state.processes.iter().all(ProcRecord::alive)
}

/// Bring a lab up. Idempotent: a healthy lab with the same topology and
/// config is left as it is; anything else with that name (including a
/// crashed lab's leftovers) is torn down first.
pub async fn up(opts: UpOptions) -> Result<LabState> {
    check_lab_name(&opts.lab)?;
    require_tools()?;
    let topo = Topology::load(&opts.topology)?;
    let progress = Progress {
        start: Instant::now(),
    };
    if already_up(&opts, &topo) {
        eprintln!("lab {:?} is already up", opts.lab);
        let state = LabState::load(&opts.lab)?;
        if opts.workloads {
            deploy_workloads(&state, &progress, opts.timeout).await?;
        }
        return Ok(state);
    }
    eprintln!(
        "Bringing up lab {:?} (topology {}, {} hosts)",
        opts.lab,
        topo.name,
        topo.hosts.len()
    );
    let leftovers = down_quiet(&opts.lab);
    if leftovers {
        eprintln!("  cleaned leftovers of an earlier lab {:?}", opts.lab);
    }
    ensure_mounts()?;
    let paths = LabPaths::new(&opts.lab);
    std::fs::create_dir_all(paths.logs())?;
    let mut state = LabState {
        lab: opts.lab.clone(),
        topology: topo.clone(),
        config: opts.config.clone(),
        cni: opts.cni,
        processes: Vec::new(),
    };
    state.save()?;

    let result = bring_up(&mut state, &paths, &progress, &opts).await;
    if let Err(e) = result {
        eprintln!("lab {:?} failed to come up; tearing it down", opts.lab);
        down_quiet(&opts.lab);
        return Err(e);
    }
    eprintln!(
        "Lab {:?} is up in {:.1} s",
        opts.lab,
        progress.start.elapsed().as_secs_f64()
    );
    Ok(state)
}

/// The stages of `up` once the state file exists: the fabric, etcd, the
/// control plane and the kubelets, Cilium when it is the CNI, then the
/// nodes Ready and, if asked for, the sample workloads.
async fn bring_up(
    state: &mut LabState,
    paths: &LabPaths,
    progress: &Progress,
    opts: &UpOptions,
) -> Result<()> {
    let topo = state.topology.clone();
    progress.step("network namespaces, segments, addresses and routes", || {
        fabric::build(&state.lab, &topo)
    })?;
    progress.step("cgroups", || {
        for h in &topo.hosts {
            std::fs::create_dir_all(paths.cgroup(&h.name))?;
        }
        Ok(())
    })?;
    let exe = std::env::current_exe().context("cannot find cilium-lab's own path")?;
    let exe = exe.to_string_lossy().to_string();
    let launch = Launch {
        paths,
        topo: &topo,
        exe: &exe,
    };
    progress.step("certificates", || launch.certificates())?;
    progress.step("etcd and web servers", || {
        launch.etcd_and_web_servers(state)
    })?;
    progress.step("control planes (API servers)", || {
        launch.control_planes(state)
    })?;
    let stores = wait_stores(state, progress, opts.timeout).await?;
    progress
        .step_async(
            "registering nodes",
            register_nodes::<Node>(&topo, &stores, node_object),
        )
        .await?;
    progress.step("kubelets", || launch.kubelets(state))?;
    if state.cni == Cni::Cilium {
        start_cilium(state, &launch, progress, &stores, opts.timeout).await?;
    }
    wait_clusters_ready(&topo, &stores, progress, opts.timeout).await?;
    if opts.workloads {
        deploy_workloads(state, progress, opts.timeout).await?;
    }
    Ok(())
}

/// Cilium on every cluster: the operator, the CiliumNodes, an agent on
/// every node; then wait until the agents are ready.
async fn start_cilium(
    state: &mut LabState,
    launch: &Launch<'_>,
    progress: &Progress,
    stores: &[Store],
    timeout: Duration,
) -> Result<()> {
    progress.step("cilium-operator", || launch.operators(state))?;
    // CiliumNodes in topology order, so the operator hands out pod
    // CIDRs in that order (k8s-ctr 172.20.0.0/24, k8s-w1 .1, k8s-w0 .2)
    // however the agents race; each agent then completes its own.
    progress
        .step_async(
            "registering CiliumNodes",
            register_nodes::<CiliumNode>(launch.topo, stores, cilium_node_object),
        )
        .await?;
    progress.step("cilium-agents", || launch.agents(state))?;
    progress
        .step_async(
            "waiting for the agents to be ready",
            wait_agents_ready(state, timeout),
        )
        .await
}

/// What the stages that start the lab's processes share: its paths, its
/// topology and `cilium-lab`'s own path (most processes are its internal
/// subcommands). Each stage records what it starts in the state, then
/// saves it.
struct Launch<'a> {
    paths: &'a LabPaths,
    topo: &'a Topology,
    exe: &'a str,
}

impl Launch<'_> {
    /// Every cluster's CA and certificates (see [`certs::ensure`]).
    fn certificates(&self) -> Result<()> {
        for c in &self.topo.clusters {
            let cp_ip = self
                .topo
                .control_plane(&c.name)
                .primary_ip()
                .expect("validated");
            let api_ip = c
                .service_cidr
                .hosts()
                .next()
                .context("service CIDR has no host address")?;
            certs::ensure(self.paths, &c.name, cp_ip, api_ip)?;
        }
        Ok(())
    }

    /// etcd on every cluster's control-plane node, and the hosts' web
    /// servers.
    fn etcd_and_web_servers(&self, state: &mut LabState) -> Result<()> {
        for c in &self.topo.clusters {
            let cp = self.topo.control_plane(&c.name);
            let dir = self.paths.etcd_dir(&c.name);
            std::fs::create_dir_all(&dir)?;
            let pki = certs::cluster_pki(self.paths, &c.name);
            self.start(state, cp, "etcd", &dir, &etcd_argv(cp, &dir, &pki))?;
        }
        for h in &self.topo.hosts {
            if let Some(web) = &h.web {
                let argv = web_argv(self.exe, web);
                self.start(state, h, "web", &self.paths.root(), &argv)?;
            }
        }
        state.save()
    }

    /// The control plane (with its API server) of every cluster, the
    /// host's forwarder to each API server and the lab's kubeconfig.
    fn control_planes(&self, state: &mut LabState) -> Result<()> {
        let mut kubeconfig = Vec::new();
        for c in &self.topo.clusters {
            let cp = self.topo.control_plane(&c.name);
            let cp_ip = cp.primary_ip().expect("validated");
            let pki = certs::cluster_pki(self.paths, &c.name);
            let socket = pki.dir.join("apiserver.sock");
            let kubelets = self.paths.node_dir("{node}").join(kubelet::SOCKET_FILE);
            let argv = control_plane_argv(self.exe, c, cp_ip, &socket, &pki, &kubelets);
            self.start(state, cp, "control-plane", &self.paths.root(), &argv)?;
            let port = free_loopback_port()?;
            let forward = vec![
                self.exe.to_string(),
                "internal".into(),
                "forward".into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--to".into(),
                socket.display().to_string(),
            ];
            self.start_on_host(state, cp, "apiserver-forward", &forward)?;
            kubeconfig.push((c.name.clone(), format!("https://127.0.0.1:{port}"), pki));
        }
        let entries: Vec<certs::KubeconfigCluster<'_>> = kubeconfig
            .iter()
            .map(|(name, server, pki)| certs::KubeconfigCluster {
                name,
                server: server.clone(),
                pki,
                cert: "admin",
            })
            .collect();
        certs::write_kubeconfig(&certs::kubeconfig_path(self.paths), &entries)?;
        state.save()
    }

    /// A kubelet on every node.
    fn kubelets(&self, state: &mut LabState) -> Result<()> {
        for h in self.topo.nodes() {
            std::fs::create_dir_all(self.paths.cni_conf_dir(&h.name))?;
            let argv = self.kubelet_argv(state, h)?;
            self.start(state, h, "kubelet", &self.paths.node_dir(&h.name), &argv)?;
        }
        state.save()
    }

    /// A kubeconfig on the lab network for a component of `cluster`
    /// authenticating as `user` in `groups`.
    fn kubeconfig(&self, cluster: &str, name: &str, user: &str, groups: &[&str]) -> Result<String> {
        let cp_ip = self
            .topo
            .control_plane(cluster)
            .primary_ip()
            .expect("validated");
        let server = format!("https://{cp_ip}:{}", certs::API_PORT);
        let pki = certs::cluster_pki(self.paths, cluster);
        Ok(
            certs::component_kubeconfig(&pki, cluster, name, user, groups, &server)?
                .display()
                .to_string(),
        )
    }

    /// `cilium-operator` on every cluster's control-plane node.
    fn operators(&self, state: &mut LabState) -> Result<()> {
        for c in &self.topo.clusters {
            let cfg = cilium::cluster_config(c, &state.config);
            let kubeconfig = self.kubeconfig(
                &c.name,
                "cilium-operator",
                "system:serviceaccount:kube-system:cilium-operator",
                &SERVICE_ACCOUNT_GROUPS,
            )?;
            let argv = cilium::operator_argv(self.paths, &c.name, &kubeconfig, &cfg)?;
            let cp = self.topo.control_plane(&c.name);
            self.start(state, cp, "cilium-operator", &self.paths.root(), &argv)?;
        }
        state.save()
    }

    /// `cilium-agent` on every node.
    fn agents(&self, state: &mut LabState) -> Result<()> {
        for c in &self.topo.clusters {
            let cfg = cilium::cluster_config(c, &state.config);
            let kubeconfig = self.kubeconfig(
                &c.name,
                "cilium-agent",
                "system:serviceaccount:kube-system:cilium",
                &SERVICE_ACCOUNT_GROUPS,
            )?;
            for h in self.topo.cluster_nodes(&c.name) {
                let argv = cilium::agent_argv(self.paths, h, &kubeconfig, &cfg)?;
                self.start(
                    state,
                    h,
                    "cilium-agent",
                    &self.paths.node_dir(&h.name),
                    &argv,
                )?;
            }
        }
        state.save()
    }

    /// A node's kubelet (`cilium-lab internal kubelet`).
    fn kubelet_argv(&self, state: &LabState, h: &Host) -> Result<Vec<String>> {
        let paths = self.paths;
        let kubeconfig = self.kubeconfig(
            &self.topo.cluster_of(h).name,
            &format!("kubelet-{}", h.name),
            &format!("system:node:{}", h.name),
            &["system:nodes"],
        )?;
        let mut argv = vec![
            self.exe.into(),
            "internal".into(),
            "kubelet".into(),
            "--lab".into(),
            state.lab.clone(),
            "--node".into(),
            h.name.clone(),
            "--node-ip".into(),
            h.primary_ip().expect("validated").to_string(),
            "--kubeconfig".into(),
            kubeconfig,
            "--state-dir".into(),
            paths.node_dir(&h.name).display().to_string(),
            "--cgroup".into(),
            paths.cgroup(&h.name).display().to_string(),
            "--cni-conf-dir".into(),
            paths.cni_conf_dir(&h.name).display().to_string(),
        ];
        argv.extend(kubelet_cni_args(state.cni)?);
        argv.extend(["--cni-bin-dir".into(), "/usr/lib/cni".into()]);
        Ok(argv)
    }

    /// Start `name` in the caller's (the host's) network namespace, in
    /// `host`'s cgroup, and record it.
    fn start_on_host(
        &self,
        state: &mut LabState,
        host: &Host,
        name: &str,
        argv: &[String],
    ) -> Result<()> {
        let rec = procs::spawn(&Spawn {
            name: name.to_string(),
            host: host.name.clone(),
            netns: String::new(),
            cgroup: self.paths.cgroup(&host.name),
            cwd: self.paths.root(),
            log: self.paths.logs().join(format!("{}-{name}.log", host.name)),
            argv: argv.to_vec(),
        })?;
        state.processes.push(rec);
        Ok(())
    }

    /// Start `name` on `host` (its namespace and cgroup, logging to the
    /// lab's log directory) and record it.
    fn start(
        &self,
        state: &mut LabState,
        host: &Host,
        name: &str,
        cwd: &Path,
        argv: &[String],
    ) -> Result<()> {
        let rec = procs::spawn(&Spawn {
            name: name.to_string(),
            host: host.name.clone(),
            netns: fabric::netns_name(&state.lab, &host.name),
            cgroup: self.paths.cgroup(&host.name),
            cwd: cwd.to_path_buf(),
            log: self.paths.logs().join(format!("{}-{name}.log", host.name)),
            argv: argv.to_vec(),
        })?;
        state.processes.push(rec);
        Ok(())
    }
}

/// The groups of a ServiceAccount's certificate.
const SERVICE_ACCOUNT_GROUPS: [&str; 2] = [
    "system:serviceaccounts",
    "system:serviceaccounts:kube-system",
];

/// etcd of a cluster, on its control-plane node: mutual TLS on every
/// client listener (the node's address, loopback, the unix socket for the
/// host), so clients need a certificate of the cluster's CA. The peer
/// listener of this single member stays plaintext on loopback.
fn etcd_argv(cp: &Host, dir: &Path, pki: &certs::ClusterPki) -> Vec<String> {
    let ip = cp.primary_ip().expect("validated");
    let (cert, key) = pki.pair(certs::ETCD_SERVER);
    vec![
        "etcd".into(),
        "--name".into(),
        cp.name.clone(),
        "--data-dir".into(),
        dir.join("data").display().to_string(),
        "--listen-client-urls".into(),
        format!(
            "https://{ip}:{ETCD_PORT},https://127.0.0.1:{ETCD_PORT},unixs://{ETCD_SOCKET_FILE}"
        ),
        "--advertise-client-urls".into(),
        format!("https://{ip}:{ETCD_PORT}"),
        "--client-cert-auth".into(),
        "--trusted-ca-file".into(),
        pki.ca_cert().display().to_string(),
        "--cert-file".into(),
        cert.display().to_string(),
        "--key-file".into(),
        key.display().to_string(),
        "--listen-peer-urls".into(),
        "http://127.0.0.1:2380".into(),
        "--initial-advertise-peer-urls".into(),
        "http://127.0.0.1:2380".into(),
        "--initial-cluster".into(),
        format!("{}=http://127.0.0.1:2380", cp.name),
        "--log-level".into(),
        "warn".into(),
    ]
}

/// A host's fixed-body web server (`cilium-lab internal httpd`).
fn web_argv(exe: &str, web: &Web) -> Vec<String> {
    vec![
        exe.into(),
        "internal".into(),
        "httpd".into(),
        "--port".into(),
        web.port.to_string(),
        "--body".into(),
        web.body.clone(),
    ]
}

/// A cluster's control plane (`cilium-lab internal control-plane`), next
/// to its etcd, which it reaches with its client certificate (flags named
/// as kube-apiserver's); `kubelets` is the nodes' kubelet socket with
/// `{node}` for the node name.
fn control_plane_argv(
    exe: &str,
    c: &ClusterSpec,
    cp_ip: Ipv4Addr,
    socket: &Path,
    pki: &certs::ClusterPki,
    kubelets: &Path,
) -> Vec<String> {
    let etcd = pki.etcd_client(certs::APISERVER_ETCD_CLIENT);
    vec![
        exe.into(),
        "internal".into(),
        "control-plane".into(),
        "--etcd".into(),
        format!("https://127.0.0.1:{ETCD_PORT}"),
        "--etcd-cafile".into(),
        etcd.trusted_ca_file.display().to_string(),
        "--etcd-certfile".into(),
        etcd.cert_file.display().to_string(),
        "--etcd-keyfile".into(),
        etcd.key_file.display().to_string(),
        "--pod-cidr".into(),
        c.pod_cidr.to_string(),
        "--service-cidr".into(),
        c.service_cidr.to_string(),
        "--dns-ip".into(),
        c.dns_ip.to_string(),
        "--apiserver-listen".into(),
        format!("{cp_ip}:{}", certs::API_PORT),
        "--apiserver-socket".into(),
        socket.display().to_string(),
        "--pki-dir".into(),
        pki.dir.display().to_string(),
        "--kubelet-socket".into(),
        kubelets.display().to_string(),
    ]
}

/// A loopback port nobody listens on now.
fn free_loopback_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// How the kubelet gets its CNI: it writes the bridge configuration
/// itself, or our agent writes it and `cilium-cni` is found beside
/// `cilium-lab` (before Debian's plugins).
fn kubelet_cni_args(cni: Cni) -> Result<Vec<String>> {
    Ok(match cni {
        Cni::Bridge => vec!["--cni-mode".into(), "bridge".into()],
        Cni::Cilium => {
            let bin_dir = cilium::sibling_binary("cilium-cni")?
                .parent()
                .expect("a file has a parent")
                .display()
                .to_string();
            vec![
                "--cni-mode".into(),
                "external".into(),
                "--cni-bin-dir".into(),
                bin_dir,
            ]
        }
    })
}

/// `restart HOST/PROCESS`: stop the process if it still runs, start it
/// again with the same command line, record the new PID. Returns what to
/// print and the new process.
pub fn restart(lab: &str, target: &str) -> Result<(String, ProcRecord)> {
    let mut state = LabState::load(lab)?;
    let Some((host, name)) = target.split_once('/') else {
        bail!("expected HOST/PROCESS (e.g. k8s-ctr/cilium-agent), got {target:?}");
    };
    let Some(i) = state
        .processes
        .iter()
        .position(|p| p.spec.host == host && p.spec.name == name)
    else {
        bail!("lab {lab:?} has no process {name:?} on {host:?}");
    };
    let old = state.processes[i].clone();
    old.stop(Duration::from_secs(5));
    if name == "etcd"
        && let Some(h) = state.topology.host(host)
    {
        remove_stale_etcd_socket(&LabPaths::new(lab), &state.topology.cluster_of(h).name)?;
    }
    let new = procs::spawn(&old.spec)?;
    let line = format!("{host}/{name} restarted (pid {} -> {})", old.pid, new.pid);
    state.processes[i] = new.clone();
    state.save()?;
    Ok((line, new))
}

/// Remove the socket file a killed etcd of `cluster` left behind: it would
/// make the next etcd's listen fail.
fn remove_stale_etcd_socket(paths: &LabPaths, cluster: &str) -> Result<()> {
    let socket = paths.etcd_socket_file(cluster);
    match std::fs::remove_file(&socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            bail!("cannot remove {}: {e}", socket.display())
        }
        _ => Ok(()),
    }
}

/// Poll `f` until it yields `Some`, or fail with `what` at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() >= deadline {
            return Err(match last_err {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting for {what}")),
                None => anyhow::anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until every agent wrote its CNI configuration (its readiness
/// signal); fail at once, with the end of its log, if one exits.
async fn wait_agents_ready(state: &LabState, timeout: Duration) -> Result<()> {
    let paths = LabPaths::new(&state.lab);
    let deadline = Instant::now() + timeout;
    loop {
        for p in state
            .processes
            .iter()
            .filter(|p| p.spec.name == "cilium-agent" || p.spec.name == "cilium-operator")
        {
            if !p.alive() {
                bail!(
                    "{} on {} exited:\n{}",
                    p.spec.name,
                    p.spec.host,
                    p.log_tail(15)
                );
            }
        }
        let ready = state
            .topology
            .nodes()
            .all(|h| AgentPaths::new(&paths, &h.name).conflist.exists());
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {timeout:?} waiting for the agents to be ready (see `cilium-lab logs HOST/cilium-agent`)"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The store of every cluster, once its etcd answers.
async fn wait_stores(
    state: &LabState,
    progress: &Progress,
    timeout: Duration,
) -> Result<Vec<Store>> {
    let mut stores = Vec::new();
    for c in &state.topology.clusters {
        let store = progress
            .step_async(
                &format!("waiting for the API server of cluster {}", c.name),
                wait_store(state, &c.name, timeout),
            )
            .await?;
        stores.push(store);
    }
    Ok(stores)
}

async fn wait_store(state: &LabState, cluster: &str, timeout: Duration) -> Result<Store> {
    wait_for("the API server", timeout, || async {
        let store = state.connect(Some(cluster)).await?;
        store.list::<Node>(None).await?;
        Ok(Some(store))
    })
    .await
}

/// Create `object(node)` of type `T`, unless it exists, for every node
/// in its cluster's store, cluster by cluster in topology order.
async fn register_nodes<T: api::Object>(
    topo: &Topology,
    stores: &[Store],
    object: fn(&Host) -> serde_json::Value,
) -> Result<()> {
    for (c, store) in topo.clusters.iter().zip(stores) {
        for h in topo.cluster_nodes(&c.name) {
            create_if_absent::<T>(store, object(h)).await?;
        }
    }
    Ok(())
}

/// A node's Node: well-known labels, its InternalIP and hostname.
fn node_object(h: &Host) -> serde_json::Value {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), h.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
    ]);
    if h.role == Role::ControlPlane {
        labels.insert(
            "node-role.kubernetes.io/control-plane".into(),
            String::new(),
        );
    }
    let ip: Ipv4Addr = h.primary_ip().expect("validated");
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": h.name, "labels": labels},
        "status": {"addresses": [
            {"type": "InternalIP", "address": ip.to_string()},
            {"type": "Hostname", "address": h.name},
        ]},
    })
}

/// A node's CiliumNode, with its InternalIP.
fn cilium_node_object(h: &Host) -> serde_json::Value {
    let ip: Ipv4Addr = h.primary_ip().expect("validated");
    serde_json::json!({
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNode",
        "metadata": {"name": h.name},
        "spec": {"addresses": [{"type": "InternalIP", "ip": ip.to_string()}]},
    })
}

/// Create an object unless one with its name exists.
async fn create_if_absent<T: api::Object>(store: &Store, value: serde_json::Value) -> Result<()> {
    let obj: T = serde_json::from_value(value)?;
    match store.create(&obj).await {
        Ok(_) | Err(store::Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn node_ready(n: &Node) -> bool {
    let has_cidr = n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some();
    has_cidr && api::conditions::node_is_ready(n)
}

/// Wait, cluster by cluster, until every node is Ready.
async fn wait_clusters_ready(
    topo: &Topology,
    stores: &[Store],
    progress: &Progress,
    timeout: Duration,
) -> Result<()> {
    for (c, store) in topo.clusters.iter().zip(stores) {
        let names: Vec<String> = topo
            .cluster_nodes(&c.name)
            .map(|h| h.name.clone())
            .collect();
        progress
            .step_async(
                &format!(
                    "waiting for {} nodes of cluster {} to be Ready",
                    names.len(),
                    c.name
                ),
                wait_nodes_ready(store, &names, timeout),
            )
            .await?;
    }
    Ok(())
}

async fn wait_nodes_ready(store: &Store, names: &[String], timeout: Duration) -> Result<()> {
    wait_for("nodes to be Ready", timeout, || async {
        let nodes = store.list::<Node>(None).await?.items;
        let all = names.iter().all(|name| {
            nodes
                .iter()
                .any(|n| n.metadata.name.as_deref() == Some(name) && node_ready(n))
        });
        Ok(all.then_some(()))
    })
    .await
}

/// The seeds' sample workloads (FEATURES.md §0): webpod ×3 + Service, curl-pod.
pub const SAMPLE_WORKLOADS: &str = concat!(
    include_str!("../../../examples/webpod.yaml"),
    "\n---\n",
    include_str!("../../../examples/curl-pod.yaml")
);

async fn deploy_workloads(state: &LabState, progress: &Progress, timeout: Duration) -> Result<()> {
    let store = state.connect(None).await?;
    progress
        .step_async("deploying the sample workloads", async {
            crate::cli::apply::apply_text(&store, SAMPLE_WORKLOADS, "sample workloads", true)
                .await
                .map(|_| ())
        })
        .await?;
    progress
        .step_async(
            "waiting for the sample pods to be Ready",
            wait_pods_ready(&store, "default", 4, timeout),
        )
        .await
}

/// Whether a pod is Running with condition Ready=True.
pub fn pod_ready_and_not_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && api::conditions::pod_is_ready(p)
}

/// Wait until at least `count` pods of a namespace exist and all are Ready.
pub async fn wait_pods_ready(
    store: &Store,
    namespace: &str,
    count: usize,
    timeout: Duration,
) -> Result<()> {
    wait_for("pods to be Ready", timeout, || async {
        let pods = store.list::<Pod>(Some(namespace)).await?.items;
        Ok((pods.len() >= count && pods.iter().all(pod_ready_and_not_terminating)).then_some(()))
    })
    .await
}

/// Tear a lab down; prints what it removed. Works without a state file
/// (a crashed lab) from the lab's name prefixes alone.
pub fn down(lab: &str) -> Result<()> {
    check_lab_name(lab)?;
    let report = teardown(lab);
    if report.found_nothing() {
        eprintln!("lab {lab:?}: nothing to remove");
    } else {
        eprintln!(
            "lab {lab:?} removed: {} processes, {} namespaces, {} cgroups",
            report.processes, report.namespaces, report.cgroups
        );
    }
    if !report.errors.is_empty() {
        bail!(
            "lab {lab:?} teardown had errors:\n  {}",
            report.errors.join("\n  ")
        );
    }
    Ok(())
}

/// Teardown without output; true when something was found.
fn down_quiet(lab: &str) -> bool {
    !teardown(lab).found_nothing()
}

#[derive(Default)]
struct Teardown {
    processes: usize,
    namespaces: usize,
    cgroups: usize,
    other: usize,
    errors: Vec<String>,
}

impl Teardown {
    fn found_nothing(&self) -> bool {
        self.processes + self.namespaces + self.cgroups + self.other == 0
    }
}

fn teardown(lab: &str) -> Teardown {
    let paths = LabPaths::new(lab);
    let mut report = Teardown::default();
    if let Ok(state) = LabState::load(lab) {
        // Kubelets first so they do not react to the others going away.
        let mut procs = state.processes.clone();
        procs.sort_by_key(|p| p.spec.name != "kubelet");
        for p in procs.iter().filter(|p| p.alive()) {
            p.stop(Duration::from_secs(3));
            report.processes += 1;
        }
    }
    // Whatever is left in the lab's cgroups (pod workloads, children).
    let cg = paths.cgroup_root();
    if cg.exists() {
        report.cgroups += remove_cgroup_tree(&cg, &mut report.errors);
    }
    let namespaces = fabric::lab_namespaces(lab);
    report.namespaces = namespaces.len();
    report.errors.extend(fabric::teardown(lab));
    let bpf = paths.bpffs();
    if bpf.exists() {
        report.other += 1;
        if let Err(e) = std::fs::remove_dir_all(&bpf) {
            report.errors.push(format!("{}: {e}", bpf.display()));
        }
    }
    let root = paths.root();
    if root.exists() {
        report.other += 1;
        if let Err(e) = std::fs::remove_dir_all(&root) {
            report.errors.push(format!("{}: {e}", root.display()));
        }
    }
    report
}

/// Kill every process in a cgroup subtree (`cgroup.kill`), wait until it
/// is empty and remove the directories bottom-up. Returns how many
/// cgroups were removed.
fn remove_cgroup_tree(dir: &Path, errors: &mut Vec<String>) -> usize {
    let mut removed = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                removed += remove_cgroup_tree(&e.path(), errors);
            }
        }
    }
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let populated = std::fs::read_to_string(dir.join("cgroup.events"))
            .map(|s| s.contains("populated 1"))
            .unwrap_or(false);
        if !populated || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => removed + 1,
        Err(e) => {
            errors.push(format!("cgroup {}: {e}", dir.display()));
            removed
        }
    }
}
