//! `cilium-lab`: builds and drives a local multi-node lab of network
//! namespaces (the seeds' four-VM topology by default) with a real etcd,
//! its own minimal cluster control plane and pod runtime, and kubectl-like
//! verbs to use it.

mod certs;
mod cilium;
mod cli;
mod fabric;
mod lab;
mod procs;
mod rollout;
mod status;
mod topology;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use cli::Selector;
use cli::get::Output;
use lab::LabState;
use store::Store;

/// A local lab of network namespaces reproducing the seeds' cluster.
#[derive(Parser)]
#[command(name = "cilium-lab", version, about)]
struct Cli {
    /// Lab name: prefixes every namespace, cgroup and pin path.
    #[arg(
        long = "name",
        global = true,
        env = "CILIUM_LAB",
        default_value = "lab"
    )]
    lab: String,
    /// Cluster to talk to (labs with several clusters; default: the first).
    #[arg(long, global = true, env = "CILIUM_LAB_CLUSTER")]
    cluster: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the lab and start its processes (idempotent).
    Up(UpArgs),
    /// Remove everything the lab created.
    Down,
    /// Restart a lab process (`HOST/PROCESS`, e.g. `k8s-ctr/cilium-agent`).
    Restart {
        /// HOST/PROCESS.
        target: String,
    },
    /// View or change the cluster's `cilium-config`.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Rolling restarts (`rollout restart ds/cilium`).
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// What is running and how it is doing.
    Status,
    /// Print the path of the lab's kubeconfig (`export KUBECONFIG=$(cilium-lab kubeconfig)`).
    Kubeconfig,
    /// Create or update objects from manifests (multi-document YAML).
    Apply {
        /// File, or `-` for stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
    },
    /// Show objects.
    Get(GetArgs),
    /// Delete objects (pods gracefully, through their kubelet).
    Delete(DeleteArgs),
    /// Set a Deployment's replicas.
    Scale(ScaleArgs),
    /// Add, change (`--overwrite`) or remove (`key-`) labels.
    Label(MetaArgs),
    /// Add, change (`--overwrite`) or remove (`key-`) annotations.
    Annotate(MetaArgs),
    /// Mark a node unschedulable.
    Cordon {
        /// Node name.
        node: String,
    },
    /// Mark a node schedulable.
    Uncordon {
        /// Node name.
        node: String,
    },
    /// Cordon a node and evict its pods.
    Drain {
        /// Node name.
        node: String,
        /// How long to wait for the evictions.
        #[arg(long, default_value = "60s", value_parser = toolkit::parse_duration)]
        timeout: Duration,
    },
    /// Run a command in a pod (its namespaces) or a node (`node/NAME` or a
    /// host name: its network namespace and cgroup).
    Exec(ExecArgs),
    /// Print a pod's log, or a lab process's (`HOST/PROCESS`, e.g. `k8s-ctr/kubelet`).
    Logs(LogsArgs),
    /// Wait for objects to meet a condition (`--for condition=Ready`, `--for delete`).
    Wait(WaitArgs),
    /// Internal entry points of the lab's own processes.
    #[command(hide = true, subcommand)]
    Internal(Internal),
}

/// Arguments of `up`.
#[derive(Args)]
struct UpArgs {
    /// `seed` (default), `clustermesh` or a topology YAML file.
    #[arg(long, default_value = "seed")]
    topology: String,
    /// A `cilium-config` key for the lab's agents, KEY=VALUE (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Also deploy the seeds' sample workloads (webpod ×3 + Service, curl-pod).
    #[arg(long)]
    workloads: bool,
    /// The nodes' CNI: our agents (`cilium`) or Debian's reference plugins (`bridge`).
    #[arg(long, value_enum, default_value = "cilium")]
    cni: cilium::Cni,
    /// How long to wait for each readiness step.
    #[arg(long, default_value = "120s", value_parser = toolkit::parse_duration)]
    timeout: Duration,
}

/// Arguments of `get`.
#[derive(Args)]
struct GetArgs {
    /// KIND [NAME...] or KIND/NAME.
    #[arg(required = true)]
    args: Vec<String>,
    #[command(flatten)]
    scope: Scope,
    /// Output format.
    #[arg(short, long)]
    output: Option<Output>,
}

/// Arguments of `delete`.
#[derive(Args)]
struct DeleteArgs {
    /// KIND NAME... or KIND/NAME.
    args: Vec<String>,
    /// Delete the objects of a manifest file.
    #[arg(short = 'f', long = "filename")]
    file: Option<String>,
    #[command(flatten)]
    scope: Scope,
    /// Delete pods at once, without waiting for their kubelet.
    #[arg(long)]
    force: bool,
    /// Wait until the objects are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    wait: bool,
}

/// Arguments of `scale`.
#[derive(Args)]
struct ScaleArgs {
    /// deployment NAME or deployment/NAME.
    args: Vec<String>,
    /// Desired replicas.
    #[arg(long)]
    replicas: i32,
    #[command(flatten)]
    scope: Scope,
}

/// Arguments of `exec`.
#[derive(Args)]
struct ExecArgs {
    /// POD, node/NODE or a host name.
    target: String,
    /// Namespace of the pod.
    #[arg(short, long)]
    namespace: Option<String>,
    /// Accepted for kubectl compatibility (stdin is always attached).
    #[arg(short = 'i', long = "stdin")]
    _stdin: bool,
    /// Accepted for kubectl compatibility.
    #[arg(short = 't', long = "tty")]
    _tty: bool,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Arguments of `logs`.
#[derive(Args)]
struct LogsArgs {
    /// POD or HOST/PROCESS.
    target: String,
    /// Namespace of the pod.
    #[arg(short, long)]
    namespace: Option<String>,
    /// Container.
    #[arg(short, long)]
    container: Option<String>,
}

/// Arguments of `wait`.
#[derive(Args)]
struct WaitArgs {
    /// KIND [NAME...] or KIND/NAME.
    #[arg(required = true)]
    args: Vec<String>,
    /// condition=NAME or delete.
    #[arg(long = "for")]
    condition: String,
    #[command(flatten)]
    scope: Scope,
    /// Wait for every object of the kind (or of the selector).
    #[arg(long)]
    all: bool,
    /// Give up after this long.
    #[arg(long, default_value = "60s", value_parser = toolkit::parse_duration)]
    timeout: Duration,
}

/// `config` subcommands.
#[derive(Subcommand)]
enum ConfigCommand {
    /// The effective config, `key value` lines.
    View,
    /// Set keys (KEY=VALUE ...); apply with `rollout restart ds/cilium`.
    Set {
        /// KEY=VALUE pairs.
        #[arg(required = true)]
        pairs: Vec<String>,
    },
    /// Remove keys set earlier (back to the lab defaults).
    Unset {
        /// Keys.
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

/// `rollout` subcommands.
#[derive(Subcommand)]
enum RolloutCommand {
    /// Restart the agents one node at a time (`ds/cilium`), or the operator
    /// (`deployment/cilium-operator`).
    Restart {
        /// `ds/cilium` or `deployment/cilium-operator`.
        target: String,
        /// How long to wait for each agent to serve again.
        #[arg(long, default_value = "60s", value_parser = toolkit::parse_duration)]
        timeout: Duration,
    },
}

/// `-n`, `-A`, `-l`.
#[derive(Args)]
struct Scope {
    /// Namespace.
    #[arg(short, long)]
    namespace: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Label selector.
    #[arg(short = 'l', long)]
    selector: Option<String>,
}

/// Arguments of `label` and `annotate`.
#[derive(Args)]
struct MetaArgs {
    /// KIND NAME key=value... key-...
    #[arg(required = true)]
    args: Vec<String>,
    /// Replace existing values.
    #[arg(long)]
    overwrite: bool,
    /// Namespace.
    #[arg(short, long)]
    namespace: Option<String>,
}

/// How the control plane reaches its cluster's etcd: endpoints and, for
/// `https://` ones, the TLS files under kube-apiserver's flag names.
#[derive(Args)]
struct EtcdFlags {
    /// etcd endpoints (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    etcd: Vec<String>,
    /// The CA etcd's serving certificate chains to.
    #[arg(long, requires_all = ["etcd_certfile", "etcd_keyfile"])]
    etcd_cafile: Option<PathBuf>,
    /// The client certificate presented to etcd.
    #[arg(long, requires = "etcd_cafile")]
    etcd_certfile: Option<PathBuf>,
    /// Its private key.
    #[arg(long, requires = "etcd_cafile")]
    etcd_keyfile: Option<PathBuf>,
}

impl EtcdFlags {
    /// The etcd client configuration the flags give.
    fn config(self) -> store::EtcdConfig {
        let tls = match (self.etcd_cafile, self.etcd_certfile, self.etcd_keyfile) {
            (Some(trusted_ca_file), Some(cert_file), Some(key_file)) => Some(store::EtcdTls {
                trusted_ca_file,
                cert_file,
                key_file,
            }),
            _ => None,
        };
        store::EtcdConfig {
            endpoints: self.etcd,
            tls,
        }
    }
}

#[derive(Subcommand)]
enum Internal {
    /// The control plane of one cluster.
    ControlPlane {
        #[command(flatten)]
        etcd: EtcdFlags,
        /// Pod CIDR for Node podCIDR allocation.
        #[arg(long)]
        pod_cidr: ipnet::Ipv4Net,
        /// Service ClusterIP range.
        #[arg(long)]
        service_cidr: ipnet::Ipv4Net,
        /// Cluster DNS service IP.
        #[arg(long)]
        dns_ip: Ipv4Addr,
        /// Where the API server listens (`192.168.10.100:6443`).
        #[arg(long)]
        apiserver_listen: std::net::SocketAddr,
        /// The API server's unix socket (forwarded to the host).
        #[arg(long)]
        apiserver_socket: PathBuf,
        /// The cluster's certificates (`ca.crt`, `apiserver.crt`, ...).
        #[arg(long)]
        pki_dir: PathBuf,
        /// A node's kubelet socket, `{node}` standing for the node name
        /// (`pods/log`, `pods/exec` and `pods/attach` go there).
        #[arg(long)]
        kubelet_socket: String,
    },
    /// Forward a loopback TCP port of the host to a unix socket (the API
    /// server's, so that kubectl on the host reaches it).
    Forward {
        /// `127.0.0.1:PORT`.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The unix socket.
        #[arg(long)]
        to: PathBuf,
    },
    /// The pod runtime of one node.
    Kubelet {
        /// Lab name.
        #[arg(long)]
        lab: String,
        /// Node name.
        #[arg(long)]
        node: String,
        /// The node's InternalIP.
        #[arg(long)]
        node_ip: Ipv4Addr,
        /// kubeconfig of the API server (the node's credentials).
        #[arg(long)]
        kubeconfig: PathBuf,
        /// Node state directory.
        #[arg(long)]
        state_dir: PathBuf,
        /// Node cgroup.
        #[arg(long)]
        cgroup: PathBuf,
        /// CNI configuration directory.
        #[arg(long)]
        cni_conf_dir: PathBuf,
        /// Who writes the CNI configuration.
        #[arg(long, value_enum, default_value = "bridge")]
        cni_mode: kubelet::CniMode,
        /// CNI plugin directories (repeatable).
        #[arg(long = "cni-bin-dir", default_value = "/usr/lib/cni")]
        cni_bin_dirs: Vec<PathBuf>,
    },
    /// Enter namespaces and a cgroup, then exec a command.
    Sandbox(kubelet::sandbox::SandboxArgs),
    /// The traefik/whoami workload.
    Whoami {
        /// Port.
        #[arg(long, default_value_t = 80)]
        port: u16,
        /// Pod name.
        #[arg(long = "pod")]
        name: String,
    },
    /// A fixed-body web server.
    Httpd {
        /// Port.
        #[arg(long, default_value_t = 80)]
        port: u16,
        /// Body.
        #[arg(long)]
        body: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn init_logs() {
    toolkit::logging::init(toolkit::logging::LogFormat::Text, "info");
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        // Entered before any thread exists: setns into a mount namespace
        // needs a single-threaded process.
        Command::Internal(Internal::Sandbox(args)) => match kubelet::sandbox::main(args)? {},
        Command::Internal(Internal::Whoami { port, name }) => {
            kubelet::whoami::serve(port, &name)?;
            Ok(0)
        }
        Command::Internal(Internal::Httpd { port, body }) => {
            kubelet::whoami::serve_static(port, &body)?;
            Ok(0)
        }
        Command::Internal(internal) => {
            init_logs();
            runtime()?.block_on(run_internal(internal))?;
            Ok(0)
        }
        Command::Up(args) => up(&cli.lab, cli.cluster.as_deref(), args),
        Command::Down => {
            lab::down(&cli.lab)?;
            Ok(0)
        }
        Command::Restart { target } => {
            println!("{}", lab::restart(&cli.lab, &target)?.0);
            Ok(0)
        }
        Command::Config(command) => {
            config(&cli.lab, cli.cluster.as_deref(), command)?;
            Ok(0)
        }
        Command::Kubeconfig => {
            let path = certs::kubeconfig_path(&lab::LabPaths::new(&cli.lab));
            anyhow::ensure!(
                path.exists(),
                "lab {:?} has no kubeconfig: is it up? (cilium-lab up)",
                cli.lab
            );
            println!("{}", path.display());
            Ok(0)
        }
        Command::Rollout(RolloutCommand::Restart { target, timeout }) => {
            let lines = runtime()?.block_on(rollout::restart(&cli.lab, &target, timeout))?;
            print_lines(&lines);
            Ok(0)
        }
        command => {
            let state = LabState::load(&cli.lab)?;
            runtime()?.block_on(run_cluster_command(&state, cli.cluster.as_deref(), command))
        }
    }
}

/// `up`: check the config first (a refused key changes nothing), bring
/// the lab up, print its status and what to try.
fn up(lab: &str, cluster: Option<&str>, args: UpArgs) -> Result<i32> {
    let config = ciliumconfig::parse_overrides(&args.config)?;
    cilium::check_config(&topology::Topology::load(&args.topology)?, &config)?;
    runtime()?.block_on(async {
        let state = lab::up(lab::UpOptions {
            lab: lab.to_string(),
            topology: args.topology,
            config,
            cni: args.cni,
            workloads: args.workloads,
            timeout: args.timeout,
        })
        .await?;
        print!("{}", status::report(&state, cluster).await?);
        print!("{}", status::next_steps(&state));
        Ok(0)
    })
}

/// Accept TCP connections on `listen` and pipe each to a new connection
/// to the unix socket `to`.
async fn forward(listen: std::net::SocketAddr, to: &std::path::Path) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    loop {
        let (mut client, _) = listener.accept().await?;
        let to = to.to_path_buf();
        tokio::spawn(async move {
            match tokio::net::UnixStream::connect(&to).await {
                Ok(mut upstream) => {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                Err(e) => {
                    eprintln!("cannot reach the API server at {}: {e}", to.display())
                }
            }
        });
    }
}

/// `config view|set|unset`.
fn config(lab: &str, cluster: Option<&str>, command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::View => print!("{}", rollout::view(&LabState::load(lab)?, cluster)?),
        ConfigCommand::Set { pairs } => {
            let set = ciliumconfig::parse_overrides(&pairs)?;
            println!("{}", rollout::edit(lab, &set, &[])?);
        }
        ConfigCommand::Unset { keys } => {
            println!("{}", rollout::edit(lab, &BTreeMap::new(), &keys)?);
        }
    }
    Ok(())
}

async fn run_internal(internal: Internal) -> Result<()> {
    match internal {
        Internal::ControlPlane {
            etcd,
            pod_cidr,
            service_cidr,
            dns_ip,
            apiserver_listen,
            apiserver_socket,
            pki_dir,
            kubelet_socket,
        } => {
            // etcd may still be starting: the controllers and the API
            // server retry until it answers.
            let store = store::Store::etcd_lazy_with(&etcd.config()).await?;
            let ca = std::fs::read_to_string(pki_dir.join("ca.crt"))
                .with_context(|| format!("cannot read {}/ca.crt", pki_dir.display()))?;
            let pair = ::pki::CertPair::read(&pki_dir, "apiserver")?;
            let tls = ::pki::server_config(&ca, &pair, ::pki::ClientAuth::Optional)?;
            let sa_key = std::fs::read_to_string(pki_dir.join("sa.key"))
                .with_context(|| format!("cannot read {}/sa.key", pki_dir.display()))?;
            use controlplane::apiserver::authn;
            let tokens =
                authn::ServiceAccountTokens::from_pem(&sa_key, authn::DEFAULT_ISSUER, &[])?;
            let api = controlplane::apiserver::ServerConfig {
                listen: apiserver_listen,
                unix: Some(apiserver_socket),
                advertise: apiserver_listen.to_string(),
                tls: std::sync::Arc::new(tls),
                tokens,
                kubernetes_service: service_cidr.hosts().next().map(|cluster_ip| {
                    controlplane::apiserver::kubernetes_service::KubernetesService {
                        cluster_ip,
                        endpoint: apiserver_listen,
                    }
                }),
                kubelet_socket: Some(kubelet_socket),
            };
            let controllers = controlplane::run(
                store.clone(),
                controlplane::Config {
                    pod_cidr,
                    service_cidr,
                    dns_service_ip: dns_ip,
                    ..Default::default()
                },
            );
            tokio::select! {
                r = controllers => Ok(r?),
                r = controlplane::apiserver::serve(store, api) => {
                    Err(anyhow::anyhow!("API server stopped: {r:?}"))
                }
            }
        }
        Internal::Forward { listen, to } => forward(listen, &to).await,
        Internal::Kubelet {
            lab,
            node,
            node_ip,
            kubeconfig,
            state_dir,
            cgroup,
            cni_conf_dir,
            cni_mode,
            cni_bin_dirs,
        } => {
            let store = store::Store::kubeconfig(Some(&kubeconfig), None).await?;
            Ok(kubelet::run(
                store,
                kubelet::Config {
                    lab,
                    node,
                    node_ip,
                    state_dir,
                    cgroup,
                    cni_conf_dir,
                    cni_bin_dirs,
                    cni_mode,
                    self_exe: std::env::current_exe()?,
                },
            )
            .await?)
        }
        Internal::Sandbox(_) | Internal::Whoami { .. } | Internal::Httpd { .. } => {
            unreachable!("handled before the runtime starts")
        }
    }
}

fn selector(scope: &Scope) -> Result<Option<Selector>> {
    scope.selector.as_deref().map(Selector::parse).transpose()
}

fn print_lines(lines: &[String]) {
    for l in lines {
        println!("{l}");
    }
}

/// The verbs that act on a running cluster, one function each; returns
/// the exit code (`exec`'s command's). `status`, `exec` and `logs` reach
/// the store only for what needs it (pods), so they work on nodes while
/// etcd is down.
async fn run_cluster_command(
    state: &LabState,
    cluster: Option<&str>,
    command: Command,
) -> Result<i32> {
    match command {
        Command::Status => {
            print!("{}", status::report(state, cluster).await?);
            return Ok(0);
        }
        Command::Exec(args) => {
            let target = cli::exec::resolve_target(state, &args.target, args.namespace.as_deref());
            return cli::exec::exec(state, cluster, &target, &args.command).await;
        }
        Command::Logs(args) => {
            logs(state, cluster, args).await?;
            return Ok(0);
        }
        _ => {}
    }
    let store = state.connect(cluster).await?;
    match command {
        Command::Apply { files } => {
            for f in &files {
                cli::apply::apply_file(&store, f).await?;
            }
        }
        Command::Get(args) => get(&store, args).await?,
        Command::Delete(args) => delete(&store, args).await?,
        Command::Scale(args) => scale(&store, args).await?,
        Command::Label(args) => set_meta(&store, cli::edit::MetaMap::Labels, args).await?,
        Command::Annotate(args) => set_meta(&store, cli::edit::MetaMap::Annotations, args).await?,
        Command::Cordon { node } => println!("{}", cli::edit::cordon(&store, &node, true).await?),
        Command::Uncordon { node } => {
            println!("{}", cli::edit::cordon(&store, &node, false).await?)
        }
        Command::Drain { node, timeout } => {
            print_lines(&cli::edit::drain(&store, &node, timeout).await?)
        }
        Command::Wait(args) => wait(&store, args).await?,
        Command::Status | Command::Exec(_) | Command::Logs(_) => {
            unreachable!("handled without the store above")
        }
        Command::Up(_)
        | Command::Down
        | Command::Restart { .. }
        | Command::Config(_)
        | Command::Rollout(_)
        | Command::Kubeconfig
        | Command::Internal(_) => {
            unreachable!("handled by run")
        }
    }
    Ok(0)
}

/// `get`.
async fn get(store: &Store, args: GetArgs) -> Result<()> {
    let (kind, names) = cli::kind_and_names(&args.args)?;
    let sel = selector(&args.scope)?;
    let out = cli::get::get(
        store,
        &cli::get::GetRequest {
            kind,
            names: &names,
            namespace: args.scope.namespace.as_deref(),
            all_namespaces: args.scope.all_namespaces,
            selector: sel.as_ref(),
            output: args.output,
        },
    )
    .await?;
    print!("{out}");
    Ok(())
}

/// `delete KIND NAME...`, or `delete -f FILE` (every object of the
/// manifest, in its own namespace if it names one).
async fn delete(store: &Store, args: DeleteArgs) -> Result<()> {
    let ns = args.scope.namespace.as_deref();
    let Some(file) = args.file else {
        let (kind, names) = cli::kind_and_names(&args.args)?;
        print_lines(&cli::edit::delete(store, kind, &names, ns, args.force, args.wait).await?);
        return Ok(());
    };
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {file}"))?;
    for m in api::parse_manifests(&text)? {
        let name = m.object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mns = m.object["metadata"]["namespace"].as_str().map(String::from);
        let lines = cli::edit::delete(
            store,
            m.kind,
            &[name],
            mns.as_deref().or(ns),
            args.force,
            args.wait,
        )
        .await?;
        print_lines(&lines);
    }
    Ok(())
}

/// `scale deployment NAME --replicas K`.
async fn scale(store: &Store, args: ScaleArgs) -> Result<()> {
    let (kind, names) = cli::kind_and_names(&args.args)?;
    let [name] = names.as_slice() else {
        bail!("scale needs exactly one name");
    };
    let ns = args.scope.namespace.as_deref();
    println!(
        "{}",
        cli::edit::scale(store, kind, name, ns, args.replicas).await?
    );
    Ok(())
}

/// `label` and `annotate`: `KIND NAME key=value... key-...`.
async fn set_meta(store: &Store, which: cli::edit::MetaMap, m: MetaArgs) -> Result<()> {
    if m.args.len() < 2 {
        bail!("usage: KIND NAME key=value... (got {:?})", m.args)
    }
    let (kind, rest) = cli::kind_and_names(&m.args)?;
    let (name, changes) = rest.split_first().context("missing object name")?;
    let ns = m.namespace.as_deref();
    println!(
        "{}",
        cli::edit::set_meta(store, kind, name, ns, which, changes, m.overwrite).await?
    );
    Ok(())
}

/// `logs POD|HOST/PROCESS`.
async fn logs(state: &LabState, cluster: Option<&str>, args: LogsArgs) -> Result<()> {
    let req = cli::exec::LogsRequest {
        target: &args.target,
        namespace: args.namespace.as_deref(),
        container: args.container.as_deref(),
    };
    let path = cli::exec::log_path(state, cluster, &req).await?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    print!("{text}");
    Ok(())
}

/// `wait KIND [NAME...] --for condition=NAME|delete`.
async fn wait(store: &Store, args: WaitArgs) -> Result<()> {
    let (kind, names) = cli::kind_and_names(&args.args)?;
    if names.is_empty() && !args.all && args.scope.selector.is_none() {
        bail!("resource(s) were provided, but no name was specified: give names, -l or --all");
    }
    let sel = selector(&args.scope)?;
    let lines = cli::exec::wait(
        store,
        &cli::exec::WaitRequest {
            kind,
            names: &names,
            namespace: args.scope.namespace.as_deref(),
            selector: sel.as_ref(),
            condition: cli::exec::WaitFor::parse(&args.condition)?,
            timeout: args.timeout,
        },
    )
    .await?;
    print_lines(&lines);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
