//! Pure rendering of Pod and Node status from the runtime's view, and the
//! merge into a stored status that keeps transition times (so an
//! unchanged view writes nothing). No I/O: the pod worker and the node
//! task write what this renders.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Node, NodeAddress, NodeCondition, NodeSystemInfo, PodCondition, PodIP,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Kubelet version reported on the Node.
pub const KUBELET_VERSION: &str = "v1.33.0-lab";

/// Custom pod condition carrying the last CNI CHECK failure.
pub const NETWORK_CHECK_CONDITION: &str = "NetworkCheck";

/// Now, at the second precision the API uses.
pub fn now() -> Time {
    Time(unix_now())
}

/// The current time as a jiff timestamp (whole seconds), without needing
/// jiff's `std` feature.
pub fn unix_now() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The sandbox as the pod status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxPhase {
    /// Not created yet (or being created).
    Creating,
    /// Creation failed (will be retried), or the network is not ready.
    Failed {
        /// `FailedCreatePodSandBox`, `NetworkNotReady`.
        reason: String,
        /// What went wrong.
        message: String,
    },
    /// Running, with network.
    Ready,
}

/// One container as the runtime sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    /// Name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Container ID (without the `lab://` scheme).
    pub container_id: Option<String>,
    /// Restarts so far.
    pub restart_count: i32,
    /// Current state.
    pub state: ContainerRun,
    /// The last termination, if any.
    pub last_exit: Option<ExitView>,
}

/// A container's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerRun {
    /// Not running (`ContainerCreating`, `CrashLoopBackOff`, ...).
    Waiting {
        /// Reason.
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// Running.
    Running {
        /// Since when.
        started_at: Time,
        /// Whether it passed readiness.
        ready: bool,
    },
}

/// A finished container process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitView {
    /// Exit code (128 + signal when killed).
    pub exit_code: i32,
    /// Signal that killed it.
    pub signal: Option<i32>,
    /// When it had started.
    pub started_at: Option<Time>,
    /// When it ended.
    pub finished_at: Time,
}

/// Everything the pod status is rendered from.
#[derive(Debug, Clone)]
pub struct PodView<'a> {
    /// The node's address.
    pub host_ip: IpAddr,
    /// Sandbox state.
    pub sandbox: &'a SandboxPhase,
    /// Pod addresses.
    pub pod_ips: &'a [IpAddr],
    /// Containers in spec order.
    pub containers: &'a [ContainerView],
    /// Last CNI CHECK error.
    pub network_check: Option<&'a str>,
    /// The time to use for new timestamps.
    pub now: Time,
}

/// The condition types the pod status renders (and so owns).
const POD_CONDITIONS: [&str; 6] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
    NETWORK_CHECK_CONDITION,
];

impl ContainerRun {
    /// Waiting for its sandbox (`ContainerCreating`).
    pub fn creating() -> Self {
        ContainerRun::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        }
    }
}

/// The reason Kubernetes gives a container that exited with `exit_code`.
pub fn exit_reason(exit_code: i32) -> &'static str {
    if exit_code == 0 { "Completed" } else { "Error" }
}

fn cond(
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: &Time,
) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(now.clone()),
        ..Default::default()
    }
}

/// The status a pod should have (timestamps of the view; merge with
/// [`merge_pod_status`] to keep earlier ones).
pub fn render_pod_status(v: &PodView<'_>) -> PodStatus {
    let sandbox_ready = *v.sandbox == SandboxPhase::Ready;
    let any_running = v
        .containers
        .iter()
        .any(|c| matches!(c.state, ContainerRun::Running { .. }) || c.last_exit.is_some());
    let pod_ips: Vec<String> = if sandbox_ready {
        v.pod_ips.iter().map(|ip| ip.to_string()).collect()
    } else {
        Vec::new()
    };
    PodStatus {
        phase: Some(
            if sandbox_ready && any_running {
                "Running"
            } else {
                "Pending"
            }
            .into(),
        ),
        conditions: Some(pod_conditions(v)),
        host_ip: Some(v.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: v.host_ip.to_string(),
        }]),
        pod_ip: pod_ips.first().cloned(),
        pod_ips: (!pod_ips.is_empty())
            .then(|| pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        start_time: Some(v.now.clone()),
        container_statuses: Some(
            v.containers
                .iter()
                .map(|c| container_status(c, sandbox_ready))
                .collect(),
        ),
        qos_class: Some("BestEffort".into()),
        ..Default::default()
    }
}

/// The pod's conditions, in [`POD_CONDITIONS`] order: the sandbox's,
/// readiness of every container, and a failed CNI CHECK if there is one.
fn pod_conditions(v: &PodView<'_>) -> Vec<PodCondition> {
    let now = &v.now;
    let not_ready: Vec<&str> = v
        .containers
        .iter()
        .filter(|c| !matches!(c.state, ContainerRun::Running { ready: true, .. }))
        .map(|c| c.name.as_str())
        .collect();
    let all_ready =
        *v.sandbox == SandboxPhase::Ready && not_ready.is_empty() && !v.containers.is_empty();
    let (ready_reason, ready_msg) = if all_ready {
        (None, None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                not_ready.join(" ")
            )),
        )
    };
    let sandbox_cond = match v.sandbox {
        SandboxPhase::Ready => cond("PodReadyToStartContainers", true, None, None, now),
        SandboxPhase::Creating => cond("PodReadyToStartContainers", false, None, None, now),
        SandboxPhase::Failed { reason, message } => cond(
            "PodReadyToStartContainers",
            false,
            Some(reason),
            Some(message.clone()),
            now,
        ),
    };
    let mut conditions = vec![
        sandbox_cond,
        cond("Initialized", true, None, None, now),
        cond("Ready", all_ready, ready_reason, ready_msg.clone(), now),
        cond("ContainersReady", all_ready, ready_reason, ready_msg, now),
        cond("PodScheduled", true, None, None, now),
    ];
    if let Some(err) = v.network_check {
        conditions.push(cond(
            NETWORK_CHECK_CONDITION,
            false,
            Some("CNICheckFailed"),
            Some(err.to_string()),
            now,
        ));
    }
    conditions
}

/// One container's status: its current state, its last termination, and
/// whether it is ready (never before its sandbox is).
fn container_status(c: &ContainerView, sandbox_ready: bool) -> ContainerStatus {
    let id = c.container_id.as_ref().map(|id| format!("lab://{id}"));
    let (state, ready, started) = match &c.state {
        ContainerRun::Waiting { reason, message } => (
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..Default::default()
            },
            false,
            false,
        ),
        ContainerRun::Running { started_at, ready } => (
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(started_at.clone()),
                }),
                ..Default::default()
            },
            *ready && sandbox_ready,
            true,
        ),
    };
    let last_state = c.last_exit.as_ref().map(|e| ContainerState {
        terminated: Some(ContainerStateTerminated {
            container_id: id.clone(),
            exit_code: e.exit_code,
            signal: e.signal,
            reason: Some(exit_reason(e.exit_code).into()),
            started_at: e.started_at.clone(),
            finished_at: Some(e.finished_at.clone()),
            message: None,
        }),
        ..Default::default()
    });
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: String::new(),
        container_id: id.filter(|_| started),
        ready,
        started: Some(started),
        restart_count: c.restart_count,
        state: Some(state),
        last_state,
        ..Default::default()
    }
}

/// Copy `desired` into `current`, keeping `startTime` and the transition
/// time of every condition whose status did not change, and the
/// conditions other writers own. Returns whether anything changed.
pub fn merge_pod_status(current: &mut Option<PodStatus>, mut desired: PodStatus) -> bool {
    let old = current.clone().unwrap_or_default();
    if old.start_time.is_some() {
        desired.start_time = old.start_time.clone();
    }
    let old_conds = old.conditions.clone().unwrap_or_default();
    let mut conds = desired.conditions.take().unwrap_or_default();
    for c in &mut conds {
        if let Some(o) = old_conds.iter().find(|o| o.type_ == c.type_)
            && o.status == c.status
        {
            c.last_transition_time = o.last_transition_time.clone();
        }
    }
    conds.extend(
        old_conds
            .iter()
            .filter(|o| !POD_CONDITIONS.contains(&o.type_.as_str()))
            .cloned(),
    );
    desired.conditions = Some(conds);
    desired.nominated_node_name = old.nominated_node_name.clone();
    if old == desired {
        return false;
    }
    *current = Some(desired);
    true
}

/// Facts the Node status is rendered from.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    /// Node name (also the Hostname address).
    pub name: String,
    /// InternalIP.
    pub ip: IpAddr,
    /// `uname -r`.
    pub kernel: String,
    /// Machine ID.
    pub machine_id: String,
    /// Boot ID.
    pub boot_id: String,
}

/// Ensure labels, addresses, Ready and nodeInfo on `node`; returns whether
/// anything changed. Other fields (spec, other conditions) are kept.
pub fn apply_node_status(node: &mut Node, f: &NodeFacts, now: &Time) -> bool {
    let before = node.clone();
    let labels = node.metadata.labels.get_or_insert_default();
    for (k, v) in [
        ("kubernetes.io/hostname", f.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
    ] {
        labels.entry(k.into()).or_insert_with(|| v.into());
    }
    let status = node.status.get_or_insert_default();
    status.addresses = Some(vec![
        NodeAddress {
            type_: "InternalIP".into(),
            address: f.ip.to_string(),
        },
        NodeAddress {
            type_: "Hostname".into(),
            address: f.name.clone(),
        },
    ]);
    let conds = status.conditions.get_or_insert_default();
    match conds.iter_mut().find(|c| c.type_ == "Ready") {
        Some(c) if c.status == "True" && c.reason.as_deref() == Some("KubeletReady") => {}
        other => {
            let new = NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("KubeletReady".into()),
                message: Some("kubelet is posting ready status".into()),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(now.clone()),
            };
            match other {
                Some(c) => *c = new,
                None => conds.push(new),
            }
        }
    }
    let info = NodeSystemInfo {
        architecture: "amd64".into(),
        boot_id: f.boot_id.clone(),
        container_runtime_version: "lab://0.1.0".into(),
        kernel_version: f.kernel.clone(),
        kube_proxy_version: String::new(),
        kubelet_version: KUBELET_VERSION.into(),
        machine_id: f.machine_id.clone(),
        operating_system: "linux".into(),
        os_image: "cilium-lab (network namespace)".into(),
        swap: None,
        system_uuid: f.machine_id.clone(),
    };
    status.node_info = Some(info);
    *node != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(s).expect("ts"))
    }

    fn view<'a>(
        sandbox: &'a SandboxPhase,
        ips: &'a [IpAddr],
        cs: &'a [ContainerView],
        now: i64,
    ) -> PodView<'a> {
        PodView {
            host_ip: "192.168.10.101".parse().expect("ip"),
            sandbox,
            pod_ips: ips,
            containers: cs,
            network_check: None,
            now: t(now),
        }
    }

    fn container(state: ContainerRun) -> ContainerView {
        ContainerView {
            name: "web".into(),
            image: "traefik/whoami".into(),
            container_id: Some("abc".into()),
            restart_count: 0,
            state,
            last_exit: None,
        }
    }

    fn get<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == t))
            .expect("condition")
    }

    #[test]
    fn pending_with_sandbox_error_then_running_ready() {
        let failed = SandboxPhase::Failed {
            reason: "FailedCreatePodSandBox".into(),
            message: "plugin type=\"bridge\" failed (add): boom".into(),
        };
        let waiting = [container(ContainerRun::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        })];
        let s = render_pod_status(&view(&failed, &[], &waiting, 100));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(s.pod_ip, None);
        let c = get(&s, "PodReadyToStartContainers");
        assert_eq!(c.reason.as_deref(), Some("FailedCreatePodSandBox"));
        assert!(c.message.as_deref().is_some_and(|m| m.contains("boom")));
        assert_eq!(get(&s, "Ready").status, "False");

        let mut stored = None;
        assert!(merge_pod_status(&mut stored, s));
        let ips: [IpAddr; 1] = ["10.244.1.5".parse().expect("ip")];
        let running = [container(ContainerRun::Running {
            started_at: t(105),
            ready: true,
        })];
        let s = render_pod_status(&view(&SandboxPhase::Ready, &ips, &running, 106));
        assert!(merge_pod_status(&mut stored, s.clone()));
        let st = stored.clone().expect("status");
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert_eq!(st.pod_ip.as_deref(), Some("10.244.1.5"));
        assert_eq!(st.host_ip.as_deref(), Some("192.168.10.101"));
        assert_eq!(st.start_time, Some(t(100)), "startTime is kept");
        assert_eq!(get(&st, "Ready").status, "True");
        assert_eq!(get(&st, "PodScheduled").last_transition_time, Some(t(100)));
        assert_eq!(get(&st, "Ready").last_transition_time, Some(t(106)));
        let cs = &st.container_statuses.as_ref().expect("cs")[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("lab://abc"));
        assert_eq!(cs.started, Some(true));
        // Same view later: nothing to write.
        let again = render_pod_status(&view(&SandboxPhase::Ready, &ips, &running, 200));
        assert!(!merge_pod_status(&mut stored, again));
    }

    #[test]
    fn restart_shows_last_state_and_network_check() {
        let mut c = container(ContainerRun::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: Some("back-off 2s restarting failed container".into()),
        });
        c.restart_count = 2;
        c.last_exit = Some(ExitView {
            exit_code: 137,
            signal: Some(9),
            started_at: Some(t(1)),
            finished_at: t(2),
        });
        let cs = [c];
        let ips: [IpAddr; 1] = ["10.244.1.5".parse().expect("ip")];
        let mut v = view(&SandboxPhase::Ready, &ips, &cs, 3);
        v.network_check = Some("interface eth0 missing");
        let s = render_pod_status(&v);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let st = &s.container_statuses.as_ref().expect("cs")[0];
        assert_eq!(st.restart_count, 2);
        assert!(!st.ready);
        let term = st
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .expect("terminated");
        assert_eq!(term.exit_code, 137);
        assert_eq!(term.reason.as_deref(), Some("Error"));
        assert_eq!(get(&s, NETWORK_CHECK_CONDITION).status, "False");
    }

    #[test]
    fn node_status_is_idempotent() {
        let facts = NodeFacts {
            name: "k8s-w1".into(),
            ip: "192.168.10.101".parse().expect("ip"),
            kernel: "6.18".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
        };
        let mut node = Node::default();
        node.metadata.name = Some("k8s-w1".into());
        node.metadata
            .labels
            .get_or_insert_default()
            .insert("kubernetes.io/arch".into(), "arm64".into());
        assert!(apply_node_status(&mut node, &facts, &t(1)));
        assert!(!apply_node_status(&mut node, &facts, &t(2)));
        let labels = node.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["kubernetes.io/hostname"], "k8s-w1");
        assert_eq!(
            labels["kubernetes.io/arch"], "arm64",
            "existing labels kept"
        );
        let st = node.status.as_ref().expect("status");
        assert_eq!(
            st.addresses.as_ref().expect("addrs")[0].address,
            "192.168.10.101"
        );
        assert_eq!(
            st.node_info.as_ref().expect("info").kubelet_version,
            KUBELET_VERSION
        );
        let ready = &st.conditions.as_ref().expect("conds")[0];
        assert_eq!(
            (ready.type_.as_str(), ready.status.as_str()),
            ("Ready", "True")
        );
    }
}
