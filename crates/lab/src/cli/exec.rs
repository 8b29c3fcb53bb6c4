//! `exec`, `logs` and `wait`: run a command inside a pod's or a node's
//! namespaces and cgroup, read a pod's (or a lab process's) log, and wait
//! for objects to reach a condition.
//!
//! Only pods are looked up in the store: a node and its processes' logs
//! are found from the lab's state alone, so `exec k8s-ctr -- cilium-dbg
//! status` and `logs k8s-ctr/etcd` work while etcd is down.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use api::Kind;
use kubelet::sandbox::{PodSandbox, SandboxArgs};
use serde_json::Value;
use store::Store;

use super::{Selector, namespace_for};
use crate::cilium::AgentPaths;
use crate::fabric;
use crate::lab::{LabPaths, LabState, wait_for};

/// Where `exec` runs a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A lab host: its network namespace and cgroup.
    Host(String),
    /// A pod: its sandbox's namespaces, in its node's cgroup.
    Pod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

/// Resolve `node/NAME`, `pod/NAME`, a host name or a pod name.
pub fn resolve_target(state: &LabState, target: &str, ns: Option<&str>) -> Target {
    let pod = |name: &str| Target::Pod {
        namespace: ns.unwrap_or("default").to_string(),
        name: name.to_string(),
    };
    match target.split_once('/') {
        Some(("node" | "nodes" | "no" | "host", name)) => Target::Host(name.to_string()),
        Some(("pod" | "pods" | "po", name)) => pod(name),
        _ if ns.is_none() && state.topology.host(target).is_some() => {
            Target::Host(target.to_string())
        }
        _ => pod(target),
    }
}

/// The sandbox helper's arguments that run `command` in a target; a pod
/// is looked up in the store of `cluster`.
async fn enter_args(
    state: &LabState,
    cluster: Option<&str>,
    target: &Target,
    command: Vec<String>,
) -> Result<SandboxArgs> {
    let paths = LabPaths::new(&state.lab);
    match target {
        Target::Host(host) => {
            if state.topology.host(host).is_none() {
                bail!("lab {:?} has no host {host:?}", state.lab);
            }
            Ok(SandboxArgs {
                netns: Some(fabric::netns_path(&fabric::netns_name(&state.lab, host))),
                cgroup: Some(paths.cgroup(host)),
                command,
                ..Default::default()
            })
        }
        Target::Pod { namespace, name } => {
            let store = state.connect(cluster).await?;
            let found = sandbox_of(state, &store, namespace, name).await?;
            Ok(found.exec_args(&paths.cgroup(&found.node), command))
        }
    }
}

async fn sandbox_of(
    state: &LabState,
    store: &Store,
    namespace: &str,
    name: &str,
) -> Result<PodSandbox> {
    let paths = LabPaths::new(&state.lab);
    Ok(PodSandbox::find(store, namespace, name, |node| paths.node_dir(node)).await?)
}

/// Run `cmd` in the target with the caller's stdio; returns its exit code.
pub async fn exec(
    state: &LabState,
    cluster: Option<&str>,
    target: &Target,
    cmd: &[String],
) -> Result<i32> {
    if cmd.is_empty() {
        bail!("you must specify at least one command for the container");
    }
    let helper = enter_args(state, cluster, target, cmd.to_vec()).await?;
    let exe = std::env::current_exe()?;
    let mut command = Command::new(&exe);
    command.args(helper.command_line());
    if let Target::Host(host) = target {
        // On a node, `cilium-dbg` finds that node's agent, and the
        // project's binaries are on PATH like on a real node.
        let socket = AgentPaths::new(&LabPaths::new(&state.lab), host).socket;
        command.env("CILIUM_SOCK", socket);
        if let Some(dir) = exe.parent() {
            let path = std::env::var("PATH").unwrap_or_default();
            command.env("PATH", format!("{}:{path}", dir.display()));
        }
    }
    let status = tokio::task::spawn_blocking(move || command.status())
        .await?
        .context("cannot run the sandbox helper")?;
    Ok(status.code().unwrap_or(128 + status_signal(&status)))
}

fn status_signal(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.signal().unwrap_or(1)
}

/// What `logs` reads.
pub struct LogsRequest<'a> {
    /// `HOST/PROCESS` (a lab process such as `k8s-ctr/kubelet`) or a pod.
    pub target: &'a str,
    /// The pod's namespace.
    pub namespace: Option<&'a str>,
    /// The pod's container (default: its first).
    pub container: Option<&'a str>,
}

/// The log file for `logs TARGET`: a lab process's, or a pod container's
/// (the pod looked up in the store of `cluster`).
pub async fn log_path(
    state: &LabState,
    cluster: Option<&str>,
    req: &LogsRequest<'_>,
) -> Result<PathBuf> {
    let (target, ns, container) = (req.target, req.namespace, req.container);
    if let Some((host, process)) = target.split_once('/')
        && state.topology.host(host).is_some()
    {
        let p = LabPaths::new(&state.lab)
            .logs()
            .join(format!("{host}-{process}.log"));
        if !p.exists() {
            let known: Vec<String> = state
                .processes
                .iter()
                .filter(|p| p.spec.host == host)
                .map(|p| p.spec.name.clone())
                .collect();
            bail!(
                "host {host} has no process {process:?} (it runs: {})",
                known.join(", ")
            );
        }
        return Ok(p);
    }
    let ns = ns.unwrap_or("default");
    let store = state.connect(cluster).await?;
    let PodSandbox { pod, record, .. } = sandbox_of(state, &store, ns, target).await?;
    let containers: Vec<String> = pod
        .spec
        .map(|s| s.containers.into_iter().map(|c| c.name).collect())
        .unwrap_or_default();
    let c = match container {
        Some(c) if containers.iter().any(|x| x == c) => c.to_string(),
        Some(c) => bail!("container {c} is not valid for pod {target}"),
        None => containers.first().cloned().unwrap_or_default(),
    };
    Ok(record.log_path(&c))
}

/// What `wait --for` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    /// `condition=NAME` (status "True").
    Condition(String),
    /// `delete`.
    Delete,
}

impl WaitFor {
    /// Parse kubectl's `--for` value.
    pub fn parse(s: &str) -> Result<Self> {
        if s == "delete" {
            return Ok(Self::Delete);
        }
        match s.split_once('=') {
            Some(("condition", c)) if !c.is_empty() => Ok(Self::Condition(c.to_string())),
            _ => bail!("unrecognized condition: {s:?} (use condition=NAME or delete)"),
        }
    }
}

/// Objects a `wait` watches.
pub struct WaitRequest<'a> {
    /// Kind.
    pub kind: &'static Kind,
    /// Names (empty with a selector or `--all`: every matching object).
    pub names: &'a [String],
    /// Namespace.
    pub namespace: Option<&'a str>,
    /// Label selector.
    pub selector: Option<&'a Selector>,
    /// Condition.
    pub condition: WaitFor,
    /// Timeout.
    pub timeout: Duration,
}

fn has_condition(o: &Value, cond: &str) -> bool {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(cond)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// Wait until every named (or selected) object meets the condition.
pub async fn wait(store: &Store, req: &WaitRequest<'_>) -> Result<Vec<String>> {
    let ns = namespace_for(req.kind, req.namespace);
    let ty = &req.kind.ty;
    let what = format!("{} to meet {:?}", ty.plural, req.condition);
    let names = wait_for(&what, req.timeout, || async {
        let mut items = store.list_values(ty, ns).await?.items;
        if let Some(sel) = req.selector {
            items.retain(|o| sel.matches(o));
        }
        let name_of = |o: &Value| {
            o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let done = match &req.condition {
            WaitFor::Delete => req
                .names
                .iter()
                .all(|n| !items.iter().any(|o| &name_of(o) == n)),
            WaitFor::Condition(c) => {
                if req.names.is_empty() {
                    !items.is_empty() && items.iter().all(|o| has_condition(o, c))
                } else {
                    req.names.iter().all(|n| {
                        items
                            .iter()
                            .any(|o| &name_of(o) == n && has_condition(o, c))
                    })
                }
            }
        };
        let names: Vec<String> = if req.names.is_empty() {
            items.iter().map(name_of).collect()
        } else {
            req.names.to_vec()
        };
        Ok(done.then_some(names))
    })
    .await?;
    let verb = match &req.condition {
        WaitFor::Delete => "deleted".to_string(),
        WaitFor::Condition(c) => format!("condition met ({c})"),
    };
    Ok(names
        .iter()
        .map(|n| format!("{}/{n} {verb}", ty.qualified_singular()))
        .collect())
}
