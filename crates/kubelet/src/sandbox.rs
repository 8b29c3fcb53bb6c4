//! The sandbox helper (`cilium-lab internal sandbox ...`), a short-lived,
//! single-threaded process that enters or creates namespaces and then
//! execs the workload, plus the on-disk record of every pod sandbox.
//!
//! Two modes:
//! - create: join a network namespace (`--netns`), unshare UTS and mount
//!   namespaces, set the hostname, make `/` rprivate and bind-mount the
//!   pod's `resolv.conf` and `hosts`, join a cgroup, exec;
//! - join (`--target-pid`): enter the net, UTS and mount namespaces of a
//!   running process (a pod's sandbox), join a cgroup, exec.
//!
//! Namespace switches are per thread and mount-namespace changes require a
//! single-threaded process: this must run before any runtime or thread
//! is started. It never touches the caller's namespaces (it is its own
//! process).

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use serde::{Deserialize, Serialize};
use store::Store;

use crate::Error;
use crate::error::Context;

/// Arguments of `cilium-lab internal sandbox`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct SandboxArgs {
    /// Join mode: enter the network, UTS and mount namespaces of this
    /// process (e.g. a pod's sandbox process).
    #[arg(long, value_name = "PID", conflicts_with_all = ["netns", "hostname", "resolv_conf", "hosts"])]
    pub target_pid: Option<i32>,
    /// Join this network namespace (a bind-mounted file such as
    /// `/run/netns/NAME`).
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,
    /// Move into this cgroup v2 directory before exec.
    #[arg(long, value_name = "DIR")]
    pub cgroup: Option<PathBuf>,
    /// Create a new UTS namespace with this hostname.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Create a new mount namespace and bind-mount this file over
    /// `/etc/resolv.conf`.
    #[arg(long, value_name = "FILE")]
    pub resolv_conf: Option<PathBuf>,
    /// Create a new mount namespace and bind-mount this file over
    /// `/etc/hosts`.
    #[arg(long, value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    /// Start a new session whose controlling terminal is stdin (the
    /// slave of a pty: `exec -t`).
    #[arg(long)]
    pub tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, num_args = 1.., value_name = "CMD")]
    pub command: Vec<String>,
}

impl SandboxArgs {
    /// Join mode: run `command` in the namespaces of process `pid` (a
    /// pod's sandbox), in `cgroup`.
    pub fn join(pid: i32, cgroup: &Path, command: Vec<String>) -> Self {
        Self {
            target_pid: Some(pid),
            cgroup: Some(cgroup.to_path_buf()),
            command,
            ..Default::default()
        }
    }

    /// The arguments of `cilium-lab` that run the helper with these
    /// arguments: `internal sandbox [OPTIONS] -- CMD...`.
    pub fn command_line(&self) -> Vec<String> {
        ["internal", "sandbox"]
            .into_iter()
            .map(String::from)
            .chain(self.to_args())
            .collect()
    }

    /// The argument vector (after `internal sandbox`) that reproduces
    /// these arguments.
    fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(flag.to_string());
                a.push(v);
            }
        };
        opt("--target-pid", self.target_pid.map(|p| p.to_string()));
        opt(
            "--netns",
            self.netns.as_ref().map(|p| p.display().to_string()),
        );
        opt(
            "--cgroup",
            self.cgroup.as_ref().map(|p| p.display().to_string()),
        );
        opt("--hostname", self.hostname.clone());
        opt(
            "--resolv-conf",
            self.resolv_conf.as_ref().map(|p| p.display().to_string()),
        );
        opt(
            "--hosts",
            self.hosts.as_ref().map(|p| p.display().to_string()),
        );
        if self.tty {
            a.push("--tty".to_string());
        }
        a.push("--".to_string());
        a.extend(self.command.iter().cloned());
        a
    }
}

/// Enter or create the namespaces described by `args`, then exec the
/// command. Returns only on failure. Must be called while the process is
/// single-threaded (before any async runtime starts).
pub fn main(args: SandboxArgs) -> Result<Infallible, Error> {
    if args.command.is_empty() {
        return Err(Error::Failed("no command given".into()));
    }
    if args.tty {
        // A session leader without a terminal acquires the one it names.
        nix::unistd::setsid().context("setsid")?;
        rustix::process::ioctl_tiocsctty(std::io::stdin())
            .map_err(std::io::Error::from)
            .context("make stdin the controlling terminal")?;
    }
    if let Some(pid) = args.target_pid {
        // Open every namespace first: after entering the mount namespace
        // /proc may be another one.
        let open = |ns: &str| {
            let p = format!("/proc/{pid}/ns/{ns}");
            File::open(&p).with_context(|| format!("cannot open {p}"))
        };
        let (net, uts, mnt) = (open("net")?, open("uts")?, open("mnt")?);
        if let Some(cg) = &args.cgroup {
            join_cgroup(cg)?;
        }
        setns(&net, CloneFlags::CLONE_NEWNET).context("setns net")?;
        setns(&uts, CloneFlags::CLONE_NEWUTS).context("setns uts")?;
        setns(&mnt, CloneFlags::CLONE_NEWNS).context("setns mnt")?;
    } else {
        if let Some(cg) = &args.cgroup {
            join_cgroup(cg)?;
        }
        if let Some(netns) = &args.netns {
            let f =
                File::open(netns).with_context(|| format!("cannot open {}", netns.display()))?;
            setns(&f, CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("setns {}", netns.display()))?;
        }
        let new_mounts = args.resolv_conf.is_some() || args.hosts.is_some();
        let mut flags = CloneFlags::empty();
        if args.hostname.is_some() {
            flags |= CloneFlags::CLONE_NEWUTS;
        }
        if new_mounts {
            flags |= CloneFlags::CLONE_NEWNS;
        }
        if !flags.is_empty() {
            unshare(flags).context("unshare")?;
        }
        if let Some(h) = &args.hostname {
            nix::unistd::sethostname(h).context("sethostname")?;
        }
        if new_mounts {
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .context("make / rprivate")?;
            for (src, dst) in [
                (&args.resolv_conf, "/etc/resolv.conf"),
                (&args.hosts, "/etc/hosts"),
            ] {
                if let Some(src) = src {
                    bind_file(src, Path::new(dst))?;
                }
            }
            if args.netns.is_some() {
                remount_sysfs();
            }
        }
    }
    let argv: Vec<CString> = args
        .command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| Error::Failed("argument contains a NUL byte".into()))?;
    let err = nix::unistd::execvp(&argv[0], &argv).unwrap_err();
    Err(Error::Failed(format!(
        "cannot execute {}: {err}",
        args.command[0]
    )))
}

/// Move the calling process into a cgroup v2 directory.
fn join_cgroup(dir: &Path) -> Result<(), Error> {
    let procs = dir.join("cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string())
        .with_context(|| format!("cannot join cgroup {}", dir.display()))
}

/// Bind-mount `src` over `dst` (creating `dst` if it is missing).
fn bind_file(src: &Path, dst: &Path) -> Result<(), Error> {
    if !dst.exists() {
        File::create(dst).with_context(|| format!("cannot create {}", dst.display()))?;
    }
    mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .with_context(|| format!("bind {} on {}", src.display(), dst.display()))
}

/// Mount a sysfs of the joined network namespace on `/sys` so that
/// `/sys/class/net` shows the sandbox's interfaces (best effort).
fn remount_sysfs() {
    let _ = umount2("/sys", MntFlags::MNT_DETACH);
    if let Err(e) = mount(
        Some("sysfs"),
        "/sys",
        Some("sysfs"),
        MsFlags::empty(),
        None::<&str>,
    ) {
        eprintln!("sandbox: cannot mount sysfs on /sys: {e}");
    }
}

/// Search domains and nameserver of a pod's `/etc/resolv.conf`, as kubelet
/// writes it for `dnsPolicy: ClusterFirst`.
pub(crate) fn render_resolv_conf(
    namespace: &str,
    cluster_domain: &str,
    nameserver: IpAddr,
) -> String {
    format!(
        "search {namespace}.svc.{cluster_domain} svc.{cluster_domain} {cluster_domain}\n\
         nameserver {nameserver}\n\
         options ndots:5\n"
    )
}

/// A pod's `/etc/hosts`, as kubelet writes it.
pub(crate) fn render_hosts(pod_ips: &[IpAddr], hostname: &str) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    for ip in pod_ips {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    s
}

/// Directory of one pod's sandbox under a node's state directory:
/// `<node_state_dir>/pods/<namespace>_<name>_<uid>`.
pub(crate) fn pod_dir(node_state_dir: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    node_state_dir
        .join("pods")
        .join(format!("{namespace}_{name}_{uid}"))
}

/// A process identity robust to PID reuse: PID plus its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    /// Process ID.
    pub pid: i32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_ticks: u64,
}

impl ProcessId {
    /// Identify a live process.
    pub fn of(pid: i32) -> Option<Self> {
        let (state, start_ticks) = proc_stat(pid)?;
        (state != 'Z').then_some(Self { pid, start_ticks })
    }

    /// Whether this process still runs (not a zombie, not a reused PID).
    pub fn alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, t)) if state != 'Z' && t == self.start_ticks)
    }
}

/// State letter and start time of a process.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: split after
    // the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// The argument vector of a live process.
pub(crate) fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// One container process of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    /// Container name.
    pub name: String,
    /// Container ID (`lab://<id>` in the pod status).
    pub container_id: String,
    /// The running process, if any.
    pub process: Option<ProcessId>,
    /// What it runs (argv after the sandbox helper exec'd).
    pub command: Vec<String>,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
    /// Restarts so far.
    pub restart_count: i32,
    /// When the current process started (RFC 3339).
    pub started_at: Option<String>,
}

/// What a node's runtime records about one pod sandbox in
/// `<pod_dir>/sandbox.json`; the CLI reads it for `exec` and `logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxRecord {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod UID.
    pub uid: String,
    /// Sandbox ID (`CNI_CONTAINERID`).
    pub container_id: String,
    /// Network namespace name under `/run/netns` (`None` with hostNetwork).
    pub netns_name: Option<String>,
    /// Network namespace path (`None` with hostNetwork).
    pub netns: Option<PathBuf>,
    /// The sandbox process holding the UTS and mount namespaces: join it
    /// (`internal sandbox --target-pid`) to exec into the pod.
    pub pid: i32,
    /// Identity of that process (PID reuse safe).
    pub process: ProcessId,
    /// The pod's first address.
    pub pod_ip: Option<IpAddr>,
    /// Every pod address.
    #[serde(default)]
    pub pod_ips: Vec<IpAddr>,
    /// Containers, in pod spec order.
    #[serde(default)]
    pub containers: Vec<ContainerRecord>,
}

/// File name of the record inside a pod directory.
pub(crate) const RECORD_FILE: &str = "sandbox.json";

impl SandboxRecord {
    /// Load the record of one pod.
    pub fn load(
        node_state_dir: &Path,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Result<Self, Error> {
        Self::load_from(&pod_dir(node_state_dir, namespace, name, uid))
    }

    /// Load the record in a pod directory.
    pub(crate) fn load_from(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(RECORD_FILE);
        let bytes =
            std::fs::read(&path).with_context(|| format!("no sandbox at {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("cannot decode {}", path.display()))
    }

    /// This pod's directory.
    fn dir(&self, node_state_dir: &Path) -> PathBuf {
        pod_dir(node_state_dir, &self.namespace, &self.name, &self.uid)
    }

    /// Write the record atomically.
    pub(crate) fn save(&self, node_state_dir: &Path) -> Result<(), Error> {
        let dir = self.dir(node_state_dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(RECORD_FILE);
        let bytes = serde_json::to_vec_pretty(self)
            .with_context(|| format!("cannot encode {}", path.display()))?;
        toolkit::write_atomic(&path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The log file of a container (stdout and stderr).
    pub fn log_path(&self, container: &str) -> PathBuf {
        match self.containers.iter().find(|c| c.name == container) {
            Some(c) => c.log.clone(),
            None => self
                .containers
                .first()
                .and_then(|c| c.log.parent())
                .unwrap_or(Path::new("."))
                .join(format!("{container}.log")),
        }
    }
}

/// A pod bound to a node, and the record of its sandbox there.
#[derive(Debug, Clone)]
pub struct PodSandbox {
    /// The Pod object.
    pub pod: Pod,
    /// Its node.
    pub node: String,
    /// Its sandbox.
    pub record: SandboxRecord,
}

impl PodSandbox {
    /// Find pod `namespace/name` in the store and load its sandbox record
    /// from its node's state directory, `node_dir(node)`.
    pub async fn find(
        store: &Store,
        namespace: &str,
        name: &str,
        node_dir: impl FnOnce(&str) -> PathBuf,
    ) -> Result<Self, Error> {
        let pod = store
            .get::<Pod>(Some(namespace), name)
            .await
            .map_err(|e| Error::Failed(format!("cannot read pod {namespace}/{name}: {e}")))?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "pods \"{name}\" not found in namespace \"{namespace}\""
                ))
            })?;
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
            .with_context(|| format!("pod {namespace}/{name} is not scheduled to a node yet"))?;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let record = SandboxRecord::load(&node_dir(&node), namespace, name, &uid).map_err(|e| {
            Error::NotFound(format!(
                "pod {namespace}/{name} has no running sandbox on {node}: {e}"
            ))
        })?;
        Ok(Self { pod, node, record })
    }

    /// The sandbox helper's arguments that run `command` in this pod: the
    /// namespaces of its sandbox process, in `cgroup` (its node's).
    pub fn exec_args(&self, cgroup: &Path, command: Vec<String>) -> SandboxArgs {
        SandboxArgs::join(self.record.pid, cgroup, command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SandboxArgs,
    }

    #[test]
    fn resolv_conf_and_hosts() {
        assert_eq!(
            render_resolv_conf(
                "default",
                "cluster.local",
                "10.96.0.10".parse().expect("ip")
            ),
            "search default.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver 10.96.0.10\noptions ndots:5\n"
        );
        let hosts = render_hosts(&["10.244.1.5".parse().expect("ip")], "web-1");
        assert!(hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(hosts.contains("::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(hosts.ends_with("fe00::2\tip6-allrouters\n10.244.1.5\tweb-1\n"));
    }

    #[test]
    fn args_round_trip() {
        let a = SandboxArgs {
            netns: Some("/run/netns/x".into()),
            cgroup: Some("/run/cilium/cgroupv2/l/n".into()),
            hostname: Some("web".into()),
            resolv_conf: Some("/p/resolv.conf".into()),
            hosts: Some("/p/hosts".into()),
            command: vec!["sleep".into(), "--x".into(), "infinity".into()],
            ..Default::default()
        };
        let argv = std::iter::once("t".to_string()).chain(a.to_args());
        assert_eq!(Cli::parse_from(argv).args, a);
        let j = SandboxArgs {
            tty: true,
            ..SandboxArgs::join(42, Path::new("/cg"), vec!["ip".into(), "a".into()])
        };
        let argv = std::iter::once("t".to_string()).chain(j.to_args());
        assert_eq!(Cli::parse_from(argv).args, j);
        assert!(
            Cli::try_parse_from(["t", "--target-pid", "1", "--hostname", "h", "--", "x"]).is_err()
        );
    }

    #[test]
    fn record_round_trip_and_process_identity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let me = ProcessId::of(std::process::id() as i32).expect("self");
        assert!(me.alive());
        assert!(
            !ProcessId {
                start_ticks: me.start_ticks + 1,
                ..me
            }
            .alive()
        );
        let r = SandboxRecord {
            namespace: "default".into(),
            name: "web".into(),
            uid: "u1".into(),
            container_id: "c".into(),
            netns_name: Some("lab-pod-x".into()),
            netns: Some("/run/netns/lab-pod-x".into()),
            pid: me.pid,
            process: me,
            pod_ip: Some("10.0.0.1".parse().expect("ip")),
            pod_ips: vec![],
            containers: vec![ContainerRecord {
                name: "main".into(),
                container_id: "c1".into(),
                process: None,
                command: vec![],
                log: "/x/main.log".into(),
                restart_count: 0,
                started_at: None,
            }],
        };
        r.save(dir.path()).expect("save");
        assert_eq!(
            SandboxRecord::load(dir.path(), "default", "web", "u1").expect("load"),
            r
        );
        assert_eq!(r.log_path("main"), Path::new("/x/main.log"));
        assert_eq!(r.log_path("other"), Path::new("/x/other.log"));
        assert!(
            cmdline(me.pid)
                .expect("cmdline")
                .first()
                .is_some_and(|a| !a.is_empty())
        );
    }
}
