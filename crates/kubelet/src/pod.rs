//! One pod's lifecycle on this node: adopt or create the sandbox (netns,
//! CNI ADD + CHECK, resolv.conf/hosts, sandbox process), run and restart
//! its containers, write its status, periodic CNI CHECK, and teardown
//! (stop, CNI DEL, netns removal, directory removal, Pod deletion).
//!
//! A [`PodWorker`] owns everything of its pod; it receives the latest Pod
//! object on a watch channel (`None`: the pod left the store or this
//! node) and events from its container tasks. It touches only its own
//! pod: its directory, network namespace, processes and Pod object.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use api::Object;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until};

use cnispec::AddResult;
use serde::Deserialize;
use toolkit::{Backoff, OwnedTask};

use crate::Ctx;
use crate::cni::{CachedAttachment, ClientError, NetworkConfigList, PortMapping, RuntimeConf};
use crate::netns;
use crate::process::{Exit, PAUSE_COMMAND, Proc, probe_tcp, spawn_helper, stop, wait_exec};
use crate::sandbox::{
    ContainerRecord, ProcessId, RECORD_FILE, SandboxArgs, SandboxRecord, cmdline, pod_dir,
    render_hosts, render_resolv_conf,
};
use crate::status::{
    ContainerRun, ContainerView, ExitView, PodView, SandboxPhase, exit_reason, merge_pod_status,
    now, render_pod_status,
};

/// Cached CNI attachment inside a pod directory.
const CNI_FILE: &str = "cni.json";
/// Interval of CNI CHECK for running pods.
const CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// Cluster DNS.
const CLUSTER_DNS: &str = "10.96.0.10";
/// Cluster domain.
const CLUSTER_DOMAIN: &str = "cluster.local";
/// Upper bound of the termination grace period.
const MAX_GRACE: Duration = Duration::from_secs(10);

/// What a container runs, derived from the pod spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Name.
    pub name: String,
    /// Image.
    pub image: String,
    /// argv of the workload.
    pub argv: Vec<String>,
    /// Environment (literal values only).
    pub env: Vec<(String, String)>,
    /// TCP port whose connect means ready (`None`: ready when running).
    pub probe_port: Option<u16>,
}

/// Whether an image reference names `traefik/whoami` (any registry, tag
/// or digest).
pub fn is_whoami_image(image: &str) -> bool {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repo,
    };
    repo == "traefik/whoami" || repo.ends_with("/traefik/whoami")
}

/// The workload of a container: whoami for `traefik/whoami`, the
/// container's command if `exists` finds its binary on this host, else
/// an idle process.
pub fn container_spec(
    c: &Container,
    pod_name: &str,
    self_exe: &Path,
    exists: impl Fn(&str) -> bool,
) -> ContainerSpec {
    let image = c.image.clone().unwrap_or_default();
    let env = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value.as_ref().map(|v| (e.name.clone(), v.clone())))
        .collect();
    let declared_port = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .and_then(|p| u16::try_from(p.container_port).ok());
    let (argv, probe_port) = if is_whoami_image(&image) {
        let args = c.args.clone().unwrap_or_default();
        let flag_port = args.iter().enumerate().find_map(|(i, a)| {
            let a = a.trim_start_matches('-');
            match a.split_once('=') {
                Some(("port", v)) => v.parse().ok(),
                None if a == "port" => args.get(i + 1).and_then(|v| v.parse().ok()),
                _ => None,
            }
        });
        let port: u16 = flag_port.or(declared_port).unwrap_or(80);
        (
            vec![
                self_exe.display().to_string(),
                "internal".into(),
                "whoami".into(),
                "--port".into(),
                port.to_string(),
                "--pod".into(),
                pod_name.to_string(),
            ],
            Some(port),
        )
    } else {
        let command = c.command.clone().unwrap_or_default();
        let argv = match command.first() {
            Some(bin) if exists(bin) => command
                .iter()
                .chain(c.args.iter().flatten())
                .cloned()
                .collect(),
            _ => pause_command(),
        };
        (argv, None)
    };
    ContainerSpec {
        name: c.name.clone(),
        image,
        argv,
        env,
        probe_port,
    }
}

/// Whether a command names an executable on this host (absolute, relative
/// or found in `PATH`).
pub fn host_has_binary(bin: &str) -> bool {
    if bin.contains('/') {
        return Path::new(bin).is_file();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// Name of a pod's network namespace: `<lab>-pod-<12 hex of the uid>`.
pub fn netns_name(lab: &str, uid: &str) -> String {
    let hex: String = uid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    let id = if hex.len() == 12 {
        hex
    } else {
        uid.chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect()
    };
    format!("{lab}-pod-{}", id.to_ascii_lowercase())
}

/// The sandbox's argv ([`PAUSE_COMMAND`]).
fn pause_command() -> Vec<String> {
    PAUSE_COMMAND.iter().map(|s| s.to_string()).collect()
}

fn random_id() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_time(s: &Option<String>) -> Option<Time> {
    s.as_deref()?.parse::<Timestamp>().ok().map(Time)
}

/// Events from a container task to its worker.
#[derive(Debug)]
enum ContainerEvent {
    Started {
        process: ProcessId,
        container_id: String,
        command: Vec<String>,
        started_at: Time,
    },
    Ready,
    Exited {
        exit: Exit,
        at: Time,
    },
    SpawnFailed {
        message: String,
    },
    BackOff {
        delay: Duration,
    },
}

/// Where a container task runs its process.
#[derive(Debug, Clone)]
struct ContainerEnv {
    self_exe: PathBuf,
    cgroup: PathBuf,
    sandbox_pid: i32,
    pod_ip: Option<IpAddr>,
    log: PathBuf,
    pod: String,
}

/// A previously started process to adopt.
#[derive(Debug, Clone)]
struct Adopt {
    process: ProcessId,
    container_id: String,
    started_at: Option<Time>,
}

/// Run one container: spawn (or adopt), probe, wait, restart with backoff.
async fn container_task(
    index: usize,
    spec: ContainerSpec,
    env: ContainerEnv,
    mut adopt: Option<Adopt>,
    events: mpsc::UnboundedSender<(usize, ContainerEvent)>,
) {
    let send = |ev| {
        let _ = events.send((index, ev));
    };
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let begun = Instant::now();
        let mut proc = match adopt.take() {
            Some(a) => {
                send(ContainerEvent::Started {
                    process: a.process,
                    container_id: a.container_id,
                    command: spec.argv.clone(),
                    started_at: a.started_at.unwrap_or_else(now),
                });
                Proc::Adopted(a.process)
            }
            None => {
                let args = SandboxArgs::join(env.sandbox_pid, &env.cgroup, spec.argv.clone());
                match spawn_helper(&env.self_exe, &args, &env.log, &spec.env) {
                    Ok(p) => {
                        tracing::info!(pod = %env.pod, container = %spec.name, pid = p.id().pid, "container started");
                        send(ContainerEvent::Started {
                            process: p.id(),
                            container_id: random_id(),
                            command: spec.argv.clone(),
                            started_at: now(),
                        });
                        p
                    }
                    Err(e) => {
                        send(ContainerEvent::SpawnFailed {
                            message: format!("{e:#}"),
                        });
                        sleep(backoff.next_delay()).await;
                        continue;
                    }
                }
            }
        };
        let exit = match (spec.probe_port, env.pod_ip) {
            (Some(port), Some(ip)) => {
                tokio::select! {
                    exit = proc.wait() => exit,
                    () = probe_tcp(SocketAddr::new(ip, port)) => {
                        send(ContainerEvent::Ready);
                        proc.wait().await
                    }
                }
            }
            _ => {
                send(ContainerEvent::Ready);
                proc.wait().await
            }
        };
        tracing::warn!(pod = %env.pod, container = %spec.name, code = exit.exit_code(), "container exited");
        send(ContainerEvent::Exited { exit, at: now() });
        if begun.elapsed() > Duration::from_secs(60) {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        send(ContainerEvent::BackOff { delay });
        sleep(delay).await;
    }
}

/// Why sandbox creation did not succeed.
#[derive(Debug)]
enum SetupError {
    /// No usable CNI configuration yet: wait for the directory to change.
    NetworkNotReady(String),
    /// Anything else: retry with backoff.
    Failed(String),
}

/// When to try creating a sandbox again.
enum Retry {
    /// Not at all: it is there.
    Never,
    /// When the CNI configuration directory changes.
    WhenCniChanges,
    /// At this time (backoff).
    At(Instant),
}

impl From<crate::Error> for SetupError {
    fn from(e: crate::Error) -> Self {
        SetupError::Failed(e.to_string())
    }
}

/// The lifecycle of one pod.
pub(super) struct PodWorker {
    ctx: Arc<Ctx>,
    pod: Pod,
    namespace: String,
    name: String,
    uid: String,
    dir: PathBuf,
    specs: Vec<ContainerSpec>,
    record: Option<SandboxRecord>,
    attachment: Option<CachedAttachment>,
    sandbox_proc: Option<Proc>,
    phase: SandboxPhase,
    views: Vec<ContainerView>,
    tasks: Vec<OwnedTask>,
    events_tx: mpsc::UnboundedSender<(usize, ContainerEvent)>,
    events_rx: mpsc::UnboundedReceiver<(usize, ContainerEvent)>,
    network_check: Option<String>,
    logged_ready: bool,
}

impl PodWorker {
    /// A worker for `pod` (which has a uid).
    pub(super) fn new(ctx: Arc<Ctx>, pod: Pod) -> Self {
        let namespace = pod.namespace().unwrap_or("default").to_string();
        let name = pod.name().to_string();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let dir = pod_dir(&ctx.cfg.state_dir, &namespace, &name, &uid);
        let specs: Vec<ContainerSpec> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .map(|c| container_spec(c, &name, &ctx.cfg.self_exe, host_has_binary))
            .collect();
        let views = specs
            .iter()
            .map(|s| ContainerView {
                name: s.name.clone(),
                image: s.image.clone(),
                container_id: None,
                restart_count: 0,
                state: ContainerRun::creating(),
                last_exit: None,
            })
            .collect();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Self {
            ctx,
            pod,
            namespace,
            name,
            uid,
            dir,
            specs,
            record: None,
            attachment: None,
            sandbox_proc: None,
            phase: SandboxPhase::Creating,
            views,
            tasks: Vec::new(),
            events_tx,
            events_rx,
            network_check: None,
            logged_ready: false,
        }
    }

    fn host_network(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
    }

    fn grace(&self) -> Duration {
        let secs = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0);
        Duration::from_secs(secs as u64).min(MAX_GRACE)
    }

    fn netns_name(&self) -> String {
        netns_name(&self.ctx.cfg.lab, &self.uid)
    }

    /// [`destroy_sandbox`] of this pod's sandbox with its grace period.
    async fn destroy(&self, record: Option<&SandboxRecord>, attachment: Option<&CachedAttachment>) {
        destroy_sandbox(
            &self.ctx,
            record,
            attachment,
            &self.netns_name(),
            self.grace(),
        )
        .await;
    }

    /// Run until the pod is gone; tears down before returning.
    pub(super) async fn run(mut self, mut rx: watch::Receiver<Option<Pod>>) {
        self.adopt_or_clean().await;
        let mut retry = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut retry_at: Option<Instant> = Some(Instant::now());
        let mut waiting_for_cni = false;
        let mut cni_changed = false;
        let mut cni_rx = self.ctx.cni_rx.clone();
        let mut next_check = Instant::now() + CHECK_INTERVAL;
        let mut status_dirty = true;
        loop {
            let latest = rx.borrow_and_update().clone();
            match latest {
                None => return self.teardown(false).await,
                Some(p) if p.metadata.deletion_timestamp.is_some() => {
                    self.pod = p;
                    return self.teardown(true).await;
                }
                Some(p) => self.pod = p,
            }
            let due = retry_at.is_some_and(|t| t <= Instant::now());
            if self.sandbox_proc.is_none() && (due || (waiting_for_cni && cni_changed)) {
                cni_changed = false;
                waiting_for_cni = false;
                retry_at = None;
                match self.try_create_sandbox(&mut retry).await {
                    Retry::Never => next_check = Instant::now() + CHECK_INTERVAL,
                    Retry::WhenCniChanges => waiting_for_cni = true,
                    Retry::At(t) => retry_at = Some(t),
                }
                status_dirty = true;
            }
            if status_dirty {
                status_dirty = !self.write_status().await;
            }
            let status_retry = Instant::now() + Duration::from_secs(1);
            let sandbox_up = self.sandbox_proc.is_some();
            tokio::select! {
                r = rx.changed() => {
                    if r.is_err() {
                        // The kubelet is stopping: leave the pod running.
                        return;
                    }
                }
                Some((i, ev)) = self.events_rx.recv() => {
                    self.apply(i, ev);
                    while let Ok((i, ev)) = self.events_rx.try_recv() {
                        self.apply(i, ev);
                    }
                    status_dirty = true;
                }
                r = cni_rx.changed(), if waiting_for_cni => {
                    cni_changed = r.is_ok();
                }
                () = sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {}
                exit = wait_opt(&mut self.sandbox_proc), if sandbox_up => {
                    tracing::warn!(code = exit.exit_code(), "sandbox process died; recreating the sandbox");
                    self.destroy_current().await;
                    retry_at = Some(Instant::now());
                    status_dirty = true;
                }
                () = sleep_until(next_check), if sandbox_up => {
                    self.check_network().await;
                    next_check = Instant::now() + CHECK_INTERVAL;
                    status_dirty = true;
                }
                () = sleep_until(status_retry), if status_dirty => {}
            }
        }
    }

    /// Create the sandbox, or record in the phase why that failed; says
    /// when to try again.
    async fn try_create_sandbox(&mut self, retry: &mut Backoff) -> Retry {
        match self.create_sandbox().await {
            Ok(()) => {
                retry.reset();
                Retry::Never
            }
            Err(SetupError::NetworkNotReady(message)) => {
                tracing::info!(%message, "waiting for network configuration");
                self.phase = SandboxPhase::Failed {
                    reason: "NetworkNotReady".into(),
                    message,
                };
                Retry::WhenCniChanges
            }
            Err(SetupError::Failed(message)) => {
                let delay = retry.next_delay();
                tracing::warn!(%message, ?delay, "sandbox creation failed");
                self.phase = SandboxPhase::Failed {
                    reason: "FailedCreatePodSandBox".into(),
                    message,
                };
                Retry::At(Instant::now() + delay)
            }
        }
    }

    /// Apply one container event to the views and the record.
    fn apply(&mut self, i: usize, ev: ContainerEvent) {
        let Some(view) = self.views.get_mut(i) else {
            return;
        };
        let rec = self.record.as_mut().and_then(|r| r.containers.get_mut(i));
        match ev {
            ContainerEvent::Started {
                process,
                container_id,
                command,
                started_at,
            } => {
                view.container_id = Some(container_id.clone());
                view.state = ContainerRun::Running {
                    started_at: started_at.clone(),
                    ready: false,
                };
                if let Some(rec) = rec {
                    rec.process = Some(process);
                    rec.container_id = container_id;
                    rec.command = command;
                    rec.started_at = Some(started_at.0.to_string());
                }
            }
            ContainerEvent::Ready => {
                if let ContainerRun::Running { ready, .. } = &mut view.state {
                    *ready = true;
                }
            }
            ContainerEvent::Exited { exit, at } => {
                let started_at = match &view.state {
                    ContainerRun::Running { started_at, .. } => Some(started_at.clone()),
                    ContainerRun::Waiting { .. } => None,
                };
                view.last_exit = Some(ExitView {
                    exit_code: exit.exit_code(),
                    signal: exit.signal,
                    started_at,
                    finished_at: at,
                });
                view.restart_count += 1;
                view.state = ContainerRun::Waiting {
                    reason: exit_reason(exit.exit_code()).into(),
                    message: None,
                };
                if let Some(rec) = rec {
                    rec.process = None;
                    rec.restart_count = view.restart_count;
                }
            }
            ContainerEvent::SpawnFailed { message } => {
                view.state = ContainerRun::Waiting {
                    reason: "CreateContainerError".into(),
                    message: Some(message),
                };
            }
            ContainerEvent::BackOff { delay } => {
                view.state = ContainerRun::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {delay:?} restarting failed container={} pod={}",
                        view.name, self.name
                    )),
                };
            }
        }
        if let Some(rec) = &self.record
            && let Err(e) = rec.save(&self.ctx.cfg.state_dir)
        {
            tracing::warn!(error = %e, "cannot save sandbox record");
        }
    }

    /// Write the pod status if it differs from the stored one; returns
    /// false when the write failed (to be retried).
    async fn write_status(&mut self) -> bool {
        let pod_ips = self
            .record
            .as_ref()
            .map(|r| r.pod_ips.clone())
            .unwrap_or_default();
        let desired = render_pod_status(&PodView {
            host_ip: self.ctx.node_ip,
            sandbox: &self.phase,
            pod_ips: &pod_ips,
            containers: &self.views,
            network_check: self.network_check.as_deref(),
            now: now(),
        });
        let mut current = self.pod.status.clone();
        if !merge_pod_status(&mut current, desired.clone()) {
            return true;
        }
        let uid = self.uid.clone();
        let res = self
            .ctx
            .store
            .modify_status::<Pod>(Some(&self.namespace), &self.name, move |p| {
                p.metadata.uid.as_deref() == Some(uid.as_str())
                    && p.metadata.deletion_timestamp.is_none()
                    && merge_pod_status(&mut p.status, desired.clone())
            })
            .await;
        match res {
            Ok(p) => {
                if !self.logged_ready && api::conditions::pod_is_ready(&p) {
                    self.logged_ready = true;
                    tracing::info!(ip = ?pod_ips.first(), "pod ready");
                }
                true
            }
            Err(store::Error::NotFound { .. }) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot write pod status");
                false
            }
        }
    }

    /// At start: adopt a live sandbox of a previous kubelet, or clean up
    /// what a dead one left.
    async fn adopt_or_clean(&mut self) {
        if !self.dir.exists() {
            return;
        }
        let record = SandboxRecord::load_from(&self.dir).ok();
        let attachment = CachedAttachment::load(&self.dir.join(CNI_FILE))
            .ok()
            .flatten();
        let pause = pause_command();
        let live = record
            .as_ref()
            .map(|r| r.process)
            .filter(|p| p.alive() && cmdline(p.pid).as_deref() == Some(&pause[..]));
        let networked =
            self.host_network() || attachment.as_ref().is_some_and(|a| a.result.is_some());
        match (record, live) {
            (Some(rec), Some(process)) if networked => {
                tracing::info!(pid = process.pid, "adopting running sandbox");
                self.sandbox_proc = Some(Proc::Adopted(process));
                self.attachment = attachment;
                self.phase = SandboxPhase::Ready;
                let adopts: Vec<Option<Adopt>> = self
                    .specs
                    .iter()
                    .map(|s| {
                        let c = rec.containers.iter().find(|c| c.name == s.name)?;
                        let p = c.process?;
                        (p.alive() && cmdline(p.pid).as_deref() == Some(&c.command[..])).then(
                            || Adopt {
                                process: p,
                                container_id: c.container_id.clone(),
                                started_at: parse_time(&c.started_at),
                            },
                        )
                    })
                    .collect();
                for (view, spec) in self.views.iter_mut().zip(&self.specs) {
                    if let Some(c) = rec.containers.iter().find(|c| c.name == spec.name) {
                        view.restart_count = c.restart_count;
                    }
                }
                self.record = Some(rec);
                self.start_containers(adopts);
            }
            (record, _) => {
                tracing::info!("cleaning up a dead sandbox");
                self.destroy(record.as_ref(), attachment.as_ref()).await;
                let _ = std::fs::remove_file(self.dir.join(RECORD_FILE));
                let _ = std::fs::remove_file(self.dir.join(CNI_FILE));
            }
        }
    }

    fn start_containers(&mut self, adopts: Vec<Option<Adopt>>) {
        let Some(rec) = &self.record else { return };
        let sandbox_pid = rec.pid;
        self.tasks.clear();
        for (i, (spec, adopt)) in self.specs.iter().zip(adopts).enumerate() {
            let env = ContainerEnv {
                self_exe: self.ctx.cfg.self_exe.clone(),
                cgroup: self.ctx.cfg.cgroup.clone(),
                sandbox_pid,
                pod_ip: rec.pod_ip,
                log: self.dir.join(format!("{}.log", spec.name)),
                pod: format!("{}/{}", self.namespace, self.name),
            };
            self.tasks.push(OwnedTask::spawn(
                "container",
                container_task(i, spec.clone(), env, adopt, self.events_tx.clone()),
            ));
        }
    }

    /// Create the sandbox: netns, CNI ADD (+ CHECK), files, sandbox process,
    /// then start the containers.
    async fn create_sandbox(&mut self) -> Result<(), SetupError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| SetupError::Failed(e.to_string()))?;
        let container_id = random_id();
        let (netns, pod_ips, attachment) = if self.host_network() {
            (None, vec![self.ctx.node_ip], None)
        } else {
            let (netns, ips, att) = self.attach_network(&container_id).await?;
            (Some(netns), ips, Some(att))
        };
        if let Some(att) = &attachment {
            self.network_check = check_attachment(&self.ctx, att).await;
        }
        self.attachment = attachment;
        let args = self.sandbox_args(netns.clone(), &pod_ips)?;
        let proc = match self.start_sandbox_process(&args).await {
            Ok(p) => p,
            Err(e) => {
                let attachment = self.attachment.take();
                destroy_sandbox(
                    &self.ctx,
                    None,
                    attachment.as_ref(),
                    &self.netns_name(),
                    Duration::ZERO,
                )
                .await;
                let _ = std::fs::remove_file(self.dir.join(CNI_FILE));
                return Err(SetupError::Failed(format!("failed to start sandbox: {e}")));
            }
        };
        let record = self.sandbox_record(container_id, netns, pod_ips, proc.id());
        record.save(&self.ctx.cfg.state_dir)?;
        self.record = Some(record);
        self.sandbox_proc = Some(proc);
        self.phase = SandboxPhase::Ready;
        let n = self.specs.len();
        self.start_containers(vec![None; n]);
        Ok(())
    }

    /// A new network namespace and CNI ADD into it, the attachment cached
    /// in the pod directory (for CHECK, and DEL after a restart); returns
    /// the namespace, the pod's addresses and the attachment. An ADD that
    /// fails or gives no address is undone.
    async fn attach_network(
        &self,
        container_id: &str,
    ) -> Result<(PathBuf, Vec<IpAddr>, CachedAttachment), SetupError> {
        let (config_path, config) = NetworkConfigList::load_dir(&self.ctx.cfg.cni_conf_dir)
            .map_err(|e| match e {
                ClientError::NoConfig(_) => SetupError::NetworkNotReady(e.to_string()),
                other => SetupError::Failed(format!("network plugin not ready: {other}")),
            })?;
        let netns_name = self.netns_name();
        let netns = netns::add(&netns_name).await?;
        let mut runtime =
            RuntimeConf::for_pod(container_id, &netns, &self.namespace, &self.name, &self.uid);
        runtime.port_mappings = self.port_mappings();
        let mut att = CachedAttachment {
            config_path,
            config,
            runtime,
            result: None,
        };
        let cni_file = self.dir.join(CNI_FILE);
        att.save(&cni_file)?;
        let started = Instant::now();
        let result = match self.ctx.cni.add(&att.config, &att.runtime).await {
            Ok(r) => r,
            Err(e) => {
                // Undo a partial ADD as containerd does, then retry later.
                let _ = self.ctx.cni.del(&att.config, &att.runtime, None).await;
                netns::del(&netns_name).await;
                let _ = std::fs::remove_file(&cni_file);
                return Err(SetupError::Failed(format!(
                    "failed to setup network for sandbox \"{container_id}\": {e}"
                )));
            }
        };
        let ips = AddResult::deserialize(&result)
            .map(|r| r.addresses_on(&att.runtime.ifname))
            .unwrap_or_default();
        att.result = Some(result);
        att.save(&cni_file)?;
        tracing::info!(ips = ?ips, elapsed = ?started.elapsed(), network = %att.config.name, "CNI ADD done");
        if ips.is_empty() {
            destroy_sandbox(&self.ctx, None, Some(&att), &netns_name, Duration::ZERO).await;
            let _ = std::fs::remove_file(&cni_file);
            return Err(SetupError::Failed(format!(
                "failed to setup network for sandbox \"{container_id}\": CNI result has no address on {}",
                att.runtime.ifname
            )));
        }
        Ok((netns, ips, att))
    }

    /// The sandbox helper's arguments: the pause process in `netns` (the
    /// node's without one) and the node's cgroup; off the host network
    /// also the pod's hostname, `hosts` and, when its DNS policy asks for
    /// the cluster's DNS, `resolv.conf` (both written here).
    fn sandbox_args(
        &self,
        netns: Option<PathBuf>,
        pod_ips: &[IpAddr],
    ) -> Result<SandboxArgs, SetupError> {
        let mut args = SandboxArgs {
            netns,
            cgroup: Some(self.ctx.cfg.cgroup.clone()),
            command: pause_command(),
            ..Default::default()
        };
        if self.host_network() {
            return Ok(args);
        }
        let spec = self.pod.spec.clone().unwrap_or_default();
        let cluster_dns = matches!(
            spec.dns_policy.as_deref().unwrap_or("ClusterFirst"),
            "ClusterFirst" | "ClusterFirstWithHostNet"
        );
        let write = |p: &Path, s: String| {
            std::fs::write(p, s).map_err(|e| SetupError::Failed(e.to_string()))
        };
        if cluster_dns {
            let dns: IpAddr = CLUSTER_DNS.parse().expect("constant address");
            let resolv = self.dir.join("resolv.conf");
            write(
                &resolv,
                render_resolv_conf(&self.namespace, CLUSTER_DOMAIN, dns),
            )?;
            args.resolv_conf = Some(resolv);
        }
        let hostname = spec.hostname.unwrap_or_else(|| self.name.clone());
        let hostname: String = hostname.chars().take(63).collect();
        let hosts = self.dir.join("hosts");
        write(&hosts, render_hosts(&pod_ips[..1], &hostname))?;
        args.hosts = Some(hosts);
        args.hostname = Some(hostname);
        Ok(args)
    }

    /// Spawn the sandbox helper and wait until it runs the pause command
    /// (its namespaces are then in place); on failure it is stopped and
    /// the error carries the last line of its log.
    async fn start_sandbox_process(&self, args: &SandboxArgs) -> Result<Proc, crate::Error> {
        let log = self.dir.join("sandbox.log");
        let mut p = spawn_helper(&self.ctx.cfg.self_exe, args, &log, &[])?;
        if let Err(e) = wait_exec(&mut p, &args.command, Duration::from_secs(10)).await {
            stop(&[p.id()], Duration::ZERO).await;
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let tail = log.lines().last().unwrap_or("").to_string();
            return Err(crate::Error::Failed(format!("{e}: {tail}")));
        }
        Ok(p)
    }

    /// The record of a new sandbox: its network, its pause process and
    /// every container, none started yet (restart counts carried over).
    fn sandbox_record(
        &self,
        container_id: String,
        netns: Option<PathBuf>,
        pod_ips: Vec<IpAddr>,
        process: ProcessId,
    ) -> SandboxRecord {
        SandboxRecord {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            container_id,
            netns_name: netns.as_ref().map(|_| self.netns_name()),
            netns,
            pid: process.pid,
            process,
            pod_ip: pod_ips.first().copied(),
            pod_ips,
            containers: self
                .specs
                .iter()
                .zip(&self.views)
                .map(|(s, v)| ContainerRecord {
                    name: s.name.clone(),
                    container_id: String::new(),
                    process: None,
                    command: s.argv.clone(),
                    log: self.dir.join(format!("{}.log", s.name)),
                    restart_count: v.restart_count,
                    started_at: None,
                })
                .collect(),
        }
    }

    fn port_mappings(&self) -> Vec<PortMapping> {
        self.pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                Some(PortMapping {
                    host_port: u16::try_from(p.host_port?).ok()?,
                    container_port: u16::try_from(p.container_port).ok()?,
                    protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                    host_ip: p.host_ip.clone().unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Periodic CNI CHECK of a running sandbox.
    async fn check_network(&mut self) {
        if let Some(att) = &self.attachment {
            self.network_check = check_attachment(&self.ctx, att).await;
        }
    }

    /// Stop and remove the current sandbox (keeping the pod), e.g. after
    /// its sandbox process died.
    async fn destroy_current(&mut self) {
        self.tasks.clear();
        self.destroy(self.record.as_ref(), self.attachment.as_ref())
            .await;
        let _ = std::fs::remove_file(self.dir.join(CNI_FILE));
        self.record = None;
        self.attachment = None;
        self.sandbox_proc = None;
        self.phase = SandboxPhase::Creating;
        for v in &mut self.views {
            v.state = ContainerRun::creating();
        }
    }

    /// Stop everything, release the network, remove the directory and,
    /// for a pod marked for deletion, delete the Pod object.
    async fn teardown(mut self, delete_from_store: bool) {
        tracing::info!(delete_from_store, "tearing down pod");
        self.tasks.clear();
        let attachment = match self.attachment.take() {
            Some(a) => Some(a),
            None => CachedAttachment::load(&self.dir.join(CNI_FILE))
                .ok()
                .flatten(),
        };
        let record = self
            .record
            .take()
            .or_else(|| SandboxRecord::load_from(&self.dir).ok());
        self.destroy(record.as_ref(), attachment.as_ref()).await;
        self.sandbox_proc = None;
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, "cannot remove pod directory");
        }
        if delete_from_store {
            delete_pod_object(&self.ctx, &self.namespace, &self.name, &self.uid).await;
        }
        tracing::info!("pod torn down");
    }
}

/// Wait for a process if there is one (never returns otherwise).
async fn wait_opt(p: &mut Option<Proc>) -> Exit {
    match p {
        Some(p) => p.wait().await,
        None => std::future::pending().await,
    }
}

/// CNI CHECK of an attachment; the error text if it fails.
async fn check_attachment(ctx: &Ctx, att: &CachedAttachment) -> Option<String> {
    let result = att.result.as_ref()?;
    match ctx.cni.check(&att.config, &att.runtime, result).await {
        Ok(()) => None,
        Err(e) => {
            tracing::warn!(error = %e, "CNI CHECK failed");
            Some(e.to_string())
        }
    }
}

/// Delete the Pod object if it is still the one with `uid`.
async fn delete_pod_object(ctx: &Ctx, namespace: &str, name: &str, uid: &str) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    for _ in 0..20 {
        match ctx.store.get::<Pod>(Some(namespace), name).await {
            Ok(Some(p)) if p.metadata.uid.as_deref() == Some(uid) => {
                match ctx.store.delete::<Pod>(Some(namespace), name).await {
                    Ok(_) | Err(store::Error::NotFound { .. }) => return,
                    Err(e) => tracing::warn!(error = %e, "cannot delete pod"),
                }
            }
            Ok(_) => return,
            Err(e) => tracing::warn!(error = %e, "cannot read pod"),
        }
        sleep(backoff.next_delay()).await;
    }
}

/// Stop a sandbox's processes, CNI DEL its attachment, delete its netns.
/// Idempotent; every step tolerates what is already gone.
async fn destroy_sandbox(
    ctx: &Ctx,
    record: Option<&SandboxRecord>,
    attachment: Option<&CachedAttachment>,
    netns_name: &str,
    grace: Duration,
) {
    if let Some(rec) = record {
        let procs: Vec<ProcessId> = rec
            .containers
            .iter()
            .filter_map(|c| c.process)
            .chain([rec.process])
            .collect();
        stop(&procs, grace).await;
    }
    if let Some(att) = attachment {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        for attempt in 1..=5 {
            match ctx
                .cni
                .del(&att.config, &att.runtime, att.result.as_ref())
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "CNI DEL failed");
                    sleep(backoff.next_delay()).await;
                }
            }
        }
    }
    netns::del(netns_name).await;
}

/// Tear down a pod directory whose pod is not in the store any more.
pub(super) async fn destroy_orphan(ctx: Arc<Ctx>, dir: PathBuf) {
    let uid = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit('_').next())
        .unwrap_or("")
        .to_string();
    if uid.is_empty() {
        return;
    }
    tracing::info!(dir = %dir.display(), "removing the sandbox of a pod that is gone");
    let record = SandboxRecord::load_from(&dir).ok();
    let attachment = CachedAttachment::load(&dir.join(CNI_FILE)).ok().flatten();
    destroy_sandbox(
        &ctx,
        record.as_ref(),
        attachment.as_ref(),
        &netns_name(&ctx.cfg.lab, &uid),
        MAX_GRACE,
    )
    .await;
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!(error = %e, "cannot remove pod directory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    fn container(image: &str, command: &[&str], args: &[&str], port: Option<i32>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            command: (!command.is_empty()).then(|| command.iter().map(|s| s.to_string()).collect()),
            args: (!args.is_empty()).then(|| args.iter().map(|s| s.to_string()).collect()),
            ports: port.map(|p| {
                vec![ContainerPort {
                    container_port: p,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn workloads_from_images() {
        let exe = Path::new("/x/cilium-lab");
        let s = container_spec(
            &container("traefik/whoami", &[], &[], Some(8080)),
            "web-1",
            exe,
            |_| true,
        );
        assert_eq!(
            s.argv,
            [
                "/x/cilium-lab",
                "internal",
                "whoami",
                "--port",
                "8080",
                "--pod",
                "web-1"
            ]
        );
        assert_eq!(s.probe_port, Some(8080));
        let s = container_spec(
            &container("docker.io/traefik/whoami:v1.10", &[], &[], None),
            "w",
            exe,
            |_| true,
        );
        assert_eq!(s.probe_port, Some(80));
        let s = container_spec(
            &container("traefik/whoami", &[], &["--port", "9000"], Some(80)),
            "w",
            exe,
            |_| true,
        );
        assert_eq!(s.probe_port, Some(9000));
        let s = container_spec(
            &container("nicolaka/netshoot", &["tail"], &["-f", "/dev/null"], None),
            "curl-pod",
            exe,
            |b| b == "tail",
        );
        assert_eq!(s.argv, ["tail", "-f", "/dev/null"]);
        assert_eq!(s.probe_port, None);
        let s = container_spec(
            &container("nicolaka/netshoot", &["zsh"], &[], None),
            "p",
            exe,
            |_| false,
        );
        assert_eq!(s.argv, PAUSE_COMMAND);
        let s = container_spec(
            &container("busybox", &[], &["sleep", "1"], None),
            "p",
            exe,
            |_| true,
        );
        assert_eq!(s.argv, PAUSE_COMMAND);
        assert!(!is_whoami_image("traefik/whoami-fork"));
        assert!(is_whoami_image("registry:5000/traefik/whoami@sha256:abc"));
    }

    #[test]
    fn netns_names() {
        assert_eq!(
            netns_name("lab1", "5f1c2a3b-4d5e-6f70-8192-a3b4c5d6e7f8"),
            "lab1-pod-5f1c2a3b4d5e"
        );
        assert_eq!(netns_name("lab1", "short"), "lab1-pod-short");
        assert!(host_has_binary("sh"));
        assert!(!host_has_binary("no-such-binary-here"));
    }
}
