//! Pod columns: READY, STATUS and RESTARTS derived from the container
//! states the way the API server's pod printer does (init progress,
//! sidecars, waiting and terminated reasons, deletion), and the wide IP,
//! NODE, NOMINATED NODE and READINESS GATES.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{
    AGE, Column, NAME, array_at, bool_at, int_at, or_none, present, since, str_at, timestamp_at,
};

/// The pod columns.
pub(super) const COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Ready",
        "Ready containers out of all (sidecars included).",
        |o, _| {
            let pod = Summary::of(o);
            format!("{}/{}", pod.ready, pod.total).into()
        },
    ),
    Column::string(
        "Status",
        "The aggregate status of the containers in this pod.",
        |o, _| Summary::of(o).reason.into(),
    ),
    Column::string(
        "Restarts",
        "Container restarts, and how long ago the last one was.",
        |o, now| Summary::of(o).restarts_cell(now).into(),
    ),
    AGE,
    Column::string("IP", "The pod's first IP address.", |o, _| {
        or_none(pod_ip(o)).into()
    })
    .wide(),
    Column::string("Node", "The node the pod is bound to.", |o, _| {
        or_none(str_at(o, "/spec/nodeName")).into()
    })
    .wide(),
    Column::string(
        "Nominated Node",
        "The node a preempting pod is nominated to.",
        |o, _| or_none(str_at(o, "/status/nominatedNodeName")).into(),
    )
    .wide(),
    Column::string(
        "Readiness Gates",
        "Readiness gates whose condition is true, out of all.",
        |o, _| readiness_gates(o).into(),
    )
    .wide(),
];

/// The row `conditions` of a pod: `Completed` once it succeeded or failed
/// (kubectl hides such rows on request).
pub(super) fn row_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match str_at(pod, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed", "status": "True", "reason": reason, "message": message,
    }]))
}

/// Restarts counted over some containers, and when the last one ended.
#[derive(Default)]
struct Restarts {
    count: i64,
    last: Option<Timestamp>,
}

impl Restarts {
    fn add(&mut self, status: &Value) {
        self.count += int_at(status, "/restartCount");
        let finished = timestamp_at(status, "/lastState/terminated/finishedAt");
        self.last = self.last.max(finished);
    }
}

/// What the pod printer derives from a pod's container states.
struct Summary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: Restarts,
}

impl Summary {
    fn of(pod: &Value) -> Self {
        let init_specs = array_at(pod, "/spec/initContainers");
        let sidecar_count = init_specs.iter().filter(|c| is_sidecar(c)).count();
        let mut summary = Self {
            ready: 0,
            total: array_at(pod, "/spec/containers").len() + sidecar_count,
            reason: initial_reason(pod),
            restarts: Restarts::default(),
        };
        let mut sidecars = Restarts::default();
        let initializing = summary.init_containers(pod, init_specs, &mut sidecars);
        if !initializing || condition_is_true(pod, "Initialized") {
            summary.restarts = sidecars;
            summary.containers(pod);
        }
        summary.deletion(pod);
        summary
    }

    /// Walks the init containers up to the first one not done; returns
    /// whether the pod is still initializing (then `reason` says where).
    fn init_containers(&mut self, pod: &Value, specs: &[Value], sidecars: &mut Restarts) -> bool {
        let statuses = array_at(pod, "/status/initContainerStatuses");
        for (index, status) in statuses.iter().enumerate() {
            self.restarts.add(status);
            let name = str_at(status, "/name");
            let sidecar = specs
                .iter()
                .any(|c| str_at(c, "/name") == name && is_sidecar(c));
            if sidecar {
                sidecars.add(status);
            }
            let terminated = status.pointer("/state/terminated").filter(|t| !t.is_null());
            if terminated.is_some_and(|t| int_at(t, "/exitCode") == 0) {
                continue;
            }
            if sidecar && bool_at(status, "/started") {
                self.ready += usize::from(bool_at(status, "/ready"));
                continue;
            }
            self.reason = match terminated {
                Some(t) => format!("Init:{}", termination_reason(t)),
                None => match str_at(status, "/state/waiting/reason") {
                    "" | "PodInitializing" => format!("Init:{index}/{}", specs.len()),
                    waiting => format!("Init:{waiting}"),
                },
            };
            return true;
        }
        false
    }

    /// The regular containers, last to first (so the first one's reason
    /// wins): readiness, restarts and waiting or terminated reasons.
    fn containers(&mut self, pod: &Value) {
        let mut running = false;
        for status in array_at(pod, "/status/containerStatuses").iter().rev() {
            self.restarts.add(status);
            let waiting = str_at(status, "/state/waiting/reason");
            if !waiting.is_empty() {
                self.reason = waiting.to_string();
            } else if let Some(t) = status.pointer("/state/terminated").filter(|t| !t.is_null()) {
                self.reason = termination_reason(t);
            } else if bool_at(status, "/ready") && present(status, "/state/running") {
                running = true;
                self.ready += 1;
            }
        }
        if self.reason == "Completed" && running {
            let ready = condition_is_true(pod, "Ready");
            self.reason = if ready { "Running" } else { "NotReady" }.into();
        }
    }

    /// A deleted pod is `Terminating` until it has finished, `Unknown` when
    /// its node was lost.
    fn deletion(&mut self, pod: &Value) {
        if !present(pod, "/metadata/deletionTimestamp") {
            return;
        }
        if str_at(pod, "/status/reason") == "NodeLost" {
            self.reason = "Unknown".into();
        } else if !matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed") {
            self.reason = "Terminating".into();
        }
    }

    /// `3`, or `3 (2m ago)` when the time of the last restart is known.
    fn restarts_cell(&self, now: Timestamp) -> String {
        match self.restarts.last {
            Some(last) if self.restarts.count != 0 => {
                format!("{} ({} ago)", self.restarts.count, since(Some(last), now))
            }
            _ => self.restarts.count.to_string(),
        }
    }
}

/// `status.reason`, else the phase (`Pending` until the server set one);
/// `SchedulingGated` while scheduling gates hold the pod.
fn initial_reason(pod: &Value) -> String {
    let gated = array_at(pod, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated");
    if gated {
        return "SchedulingGated".into();
    }
    [str_at(pod, "/status/reason"), str_at(pod, "/status/phase")]
        .into_iter()
        .find(|r| !r.is_empty())
        .unwrap_or("Pending")
        .into()
}

/// The reason of a terminated state, else `Signal:N` or `ExitCode:N`.
fn termination_reason(terminated: &Value) -> String {
    match str_at(terminated, "/reason") {
        "" => match int_at(terminated, "/signal") {
            0 => format!("ExitCode:{}", int_at(terminated, "/exitCode")),
            signal => format!("Signal:{signal}"),
        },
        reason => reason.into(),
    }
}

/// An init container that keeps running beside the others.
fn is_sidecar(spec: &Value) -> bool {
    str_at(spec, "/restartPolicy") == "Always"
}

fn condition_is_true(pod: &Value, type_: &str) -> bool {
    array_at(pod, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == type_ && str_at(c, "/status") == "True")
}

/// `status.podIPs[0]` (or the older `status.podIP`).
fn pod_ip(pod: &Value) -> &str {
    match str_at(pod, "/status/podIPs/0/ip") {
        "" => str_at(pod, "/status/podIP"),
        ip => ip,
    }
}

/// `true/all` over the readiness gates, `<none>` without gates.
fn readiness_gates(pod: &Value) -> String {
    let gates = array_at(pod, "/spec/readinessGates");
    if gates.is_empty() {
        return "<none>".into();
    }
    let conditions = array_at(pod, "/status/conditions");
    let true_count = gates
        .iter()
        .filter(|gate| {
            let type_ = str_at(gate, "/conditionType");
            conditions
                .iter()
                .find(|c| str_at(c, "/type") == type_)
                .is_some_and(|c| str_at(c, "/status") == "True")
        })
        .count();
    format!("{true_count}/{}", gates.len())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{cells, headers, row_text, table_of};
    use super::*;

    fn pod(spec: Value, status: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "webpod-697b545f57-2zpdp", "namespace": "default",
                "creationTimestamp": "2025-03-01T11:58:43Z"},
            "spec": spec, "status": status,
        })
    }

    fn running(name: &str, restarts: i64) -> Value {
        json!({"name": name, "ready": true, "restartCount": restarts, "started": true,
            "state": {"running": {"startedAt": "2025-03-01T11:58:50Z"}}})
    }

    #[test]
    fn columns_match_kubectl() {
        assert_eq!(
            headers("Pod"),
            "Name|Ready|Status|Restarts|Age|IP*|Node*|Nominated Node*|Readiness Gates*"
        );
    }

    #[test]
    fn running_pod() {
        let p = pod(
            json!({"nodeName": "k8s-w1", "containers": [{"name": "webpod"}]}),
            json!({"phase": "Running", "podIP": "10.244.1.188",
                "podIPs": [{"ip": "10.244.1.188"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [running("webpod", 0)]}),
        );
        assert_eq!(
            row_text("Pod", p),
            r#"["webpod-697b545f57-2zpdp","1/1","Running","0","77s","10.244.1.188","k8s-w1","<none>","<none>"]"#
        );
    }

    #[test]
    fn waiting_reasons_and_restarts() {
        let creating = pod(
            json!({"nodeName": "k8s-w1", "containers": [{"name": "c"}]}),
            json!({"phase": "Pending", "containerStatuses": [{"name": "c", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        let r = cells("Pod", creating);
        assert_eq!(
            r[1..4],
            [json!("0/1"), json!("ContainerCreating"), json!("0")]
        );
        assert_eq!(r[5..7], [json!("<none>"), json!("k8s-w1")]);

        let crashing = pod(
            json!({"containers": [{"name": "a"}, {"name": "b"}]}),
            json!({"phase": "Running", "containerStatuses": [
                running("a", 0),
                {"name": "b", "ready": false, "restartCount": 5,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "finishedAt": "2025-03-01T11:57:30Z"}}}]}),
        );
        let r = cells("Pod", crashing);
        assert_eq!(
            r[1..4],
            [
                json!("1/2"),
                json!("CrashLoopBackOff"),
                json!("5 (2m30s ago)")
            ]
        );

        let unscheduled = pod(json!({"containers": [{"name": "c"}]}), json!({}));
        assert_eq!(cells("Pod", unscheduled)[2], "Pending");
        let gated = pod(
            json!({"containers": [{"name": "c"}]}),
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
                "status": "False", "reason": "SchedulingGated"}]}),
        );
        assert_eq!(cells("Pod", gated)[2], "SchedulingGated");
    }

    #[test]
    fn terminated_pods() {
        let completed = pod(
            json!({"containers": [{"name": "job"}]}),
            json!({"phase": "Succeeded", "containerStatuses": [{"name": "job",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
        );
        let t = table_of("Pod", &[completed]);
        assert_eq!(
            t["rows"][0]["cells"].to_string(),
            r#"["webpod-697b545f57-2zpdp","0/1","Completed","0","77s","<none>","<none>","<none>","<none>"]"#
        );
        assert_eq!(
            t["rows"][0]["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully."}])
        );
        let killed = pod(
            json!({"containers": [{"name": "c"}]}),
            json!({"phase": "Failed", "containerStatuses": [{"name": "c",
                "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
        );
        let t = table_of("Pod", &[killed]);
        assert_eq!(t["rows"][0]["cells"][2], "Signal:9");
        assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Failed");
        let exited = pod(
            json!({"containers": [{"name": "c"}]}),
            json!({"phase": "Failed", "containerStatuses": [{"name": "c",
                "state": {"terminated": {"exitCode": 2}}}]}),
        );
        assert_eq!(cells("Pod", exited)[2], "ExitCode:2");
    }

    #[test]
    fn completed_container_beside_a_running_one() {
        let spec = json!({"containers": [{"name": "done"}, {"name": "app"}]});
        let statuses = json!([
            {"name": "done", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            running("app", 0)
        ]);
        let ready = pod(
            spec.clone(),
            json!({"phase": "Running", "containerStatuses": statuses,
                "conditions": [{"type": "Ready", "status": "True"}]}),
        );
        assert_eq!(cells("Pod", ready)[1..3], [json!("1/2"), json!("Running")]);
        let not_ready = pod(
            spec,
            json!({"phase": "Running", "containerStatuses": statuses}),
        );
        assert_eq!(cells("Pod", not_ready)[2], "NotReady");
    }

    #[test]
    fn deletion() {
        let mut p = pod(
            json!({"containers": [{"name": "webpod"}]}),
            json!({"phase": "Running", "containerStatuses": [running("webpod", 0)]}),
        );
        p["metadata"]["deletionTimestamp"] = json!("2025-03-01T11:59:59Z");
        assert_eq!(cells("Pod", p.clone())[2], "Terminating");
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(cells("Pod", p.clone())[2], "Unknown");
        p["status"] = json!({"phase": "Succeeded"});
        assert_eq!(cells("Pod", p)[2], "Succeeded");
    }

    #[test]
    fn init_containers() {
        let spec = json!({"initContainers": [{"name": "init-a"}, {"name": "init-b"}],
            "containers": [{"name": "app"}]});
        let in_progress = pod(
            spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "init-a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "init-b", "state": {"running": {}}}],
                "containerStatuses": [{"name": "app",
                    "state": {"waiting": {"reason": "PodInitializing"}}}]}),
        );
        assert_eq!(
            cells("Pod", in_progress)[1..3],
            [json!("0/1"), json!("Init:1/2")]
        );
        let crashing = pod(
            spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "init-a", "restartCount": 3,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
        );
        assert_eq!(
            cells("Pod", crashing)[2..4],
            [json!("Init:CrashLoopBackOff"), json!("3")]
        );
        let failed = pod(
            spec,
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "init-a", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
        );
        assert_eq!(cells("Pod", failed)[2], "Init:Error");
    }

    #[test]
    fn sidecars_count_as_containers() {
        let p = pod(
            json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                "containers": [{"name": "app"}]}),
            json!({"phase": "Running", "initContainerStatuses": [
                {"name": "proxy", "started": true, "ready": true, "restartCount": 1,
                 "state": {"running": {}}}],
                "containerStatuses": [running("app", 0)]}),
        );
        assert_eq!(
            cells("Pod", p)[1..4],
            [json!("2/2"), json!("Running"), json!("1")]
        );
    }

    #[test]
    fn readiness_gates_and_nomination() {
        let p = pod(
            json!({"containers": [{"name": "c"}],
                "readinessGates": [{"conditionType": "example.com/lb"},
                    {"conditionType": "example.com/dns"}]}),
            json!({"phase": "Pending", "nominatedNodeName": "k8s-w0",
                "conditions": [{"type": "example.com/lb", "status": "True"}]}),
        );
        let r = cells("Pod", p);
        assert_eq!(r[7..9], [json!("k8s-w0"), json!("1/2")]);
    }
}
