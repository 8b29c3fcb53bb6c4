//! `get`: list or show objects with kubectl's columns (pods, nodes,
//! services, endpointslices, deployments, namespaces and the Cilium kinds
//! with their upstream printer columns), or as YAML / JSON / names.

use anyhow::{Result, bail};
use api::Kind;
use serde_json::Value;
use store::Store;

use super::table::{age, render};
use super::{Selector, namespace_for};

/// Output format of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Extra columns.
    Wide,
    /// YAML (a List when several objects).
    Yaml,
    /// JSON (a List when several objects).
    Json,
    /// `kind/name` lines.
    Name,
}

/// What to get.
pub struct GetRequest<'a> {
    /// The kind.
    pub kind: &'static Kind,
    /// Names (empty: all).
    pub names: &'a [String],
    /// `-n`.
    pub namespace: Option<&'a str>,
    /// `-A`.
    pub all_namespaces: bool,
    /// `-l`.
    pub selector: Option<&'a Selector>,
    /// `-o`.
    pub output: Option<Output>,
}

/// Fetch the objects of a request.
pub async fn fetch(store: &Store, req: &GetRequest<'_>) -> Result<Vec<Value>> {
    let ty = &req.kind.ty;
    let ns = if req.all_namespaces {
        None
    } else {
        namespace_for(req.kind, req.namespace)
    };
    let mut items = Vec::new();
    if req.names.is_empty() {
        items = store.list_values(ty, ns).await?.items;
    } else {
        for name in req.names {
            match store.get_value(ty, ns, name).await? {
                Some(v) => items.push(v),
                None => bail!(
                    "{} \"{name}\" not found{}",
                    ty.qualified_plural(),
                    ns.map(|n| format!(" in namespace \"{n}\""))
                        .unwrap_or_default()
                ),
            }
        }
    }
    if let Some(sel) = req.selector {
        items.retain(|o| sel.matches(o));
    }
    Ok(items)
}

/// Run `get` and return what to print.
pub async fn get(store: &Store, req: &GetRequest<'_>) -> Result<String> {
    let items = fetch(store, req).await?;
    let ty = &req.kind.ty;
    match req.output {
        Some(Output::Json) => Ok(serde_json::to_string_pretty(&single_or_list(items))? + "\n"),
        Some(Output::Yaml) => {
            serde_saphyr::to_string(&single_or_list(items)).map_err(|e| anyhow::anyhow!("{e}"))
        }
        Some(Output::Name) => Ok(items
            .iter()
            .map(|o| format!("{}/{}\n", ty.qualified_singular(), s(o, "/metadata/name")))
            .collect()),
        _ if items.is_empty() => {
            let ns = namespace_for(req.kind, req.namespace);
            Ok(match (ns, req.all_namespaces) {
                (Some(n), false) => format!("No resources found in {n} namespace.\n"),
                _ => "No resources found\n".into(),
            })
        }
        out => Ok(table(req, &items, out == Some(Output::Wide))),
    }
}

/// kubectl's table: NAMESPACE (with `-A`), NAME and the kind's columns
/// (the wide ones too with `-o wide`).
fn table(req: &GetRequest<'_>, items: &[Value], wide: bool) -> String {
    let ty = &req.kind.ty;
    let columns: Vec<&Column> = shown(columns(ty.kind), wide).collect();
    let show_ns = req.all_namespaces && ty.namespaced;
    let mut headers: Vec<&str> = Vec::new();
    if show_ns {
        headers.push("NAMESPACE");
    }
    headers.push("NAME");
    headers.extend(columns.iter().map(|c| c.header));
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|o| {
            let mut row = Vec::new();
            if show_ns {
                row.push(s(o, "/metadata/namespace").to_string());
            }
            row.push(s(o, "/metadata/name").to_string());
            row.extend(columns.iter().map(|c| (c.value)(o)));
            row
        })
        .collect();
    render(&headers, &rows)
}

/// The columns shown: all with `wide`, else the narrow ones.
fn shown(columns: &[Column], wide: bool) -> impl Iterator<Item = &Column> {
    columns.iter().filter(move |c| wide || !c.wide)
}

fn single_or_list(mut items: Vec<Value>) -> Value {
    if items.len() == 1 {
        return items.remove(0);
    }
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
}

/// A string at a JSON pointer, or "".
fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// A string at a pointer, or `<none>`.
fn or_none(v: &Value, ptr: &str) -> String {
    match v.pointer(ptr) {
        Some(Value::String(x)) if !x.is_empty() => x.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => "<none>".into(),
    }
}

fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn num(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// A kind-specific column.
struct Column {
    header: &'static str,
    wide: bool,
    value: fn(&Value) -> String,
}

const fn col(header: &'static str, value: fn(&Value) -> String) -> Column {
    Column {
        header,
        wide: false,
        value,
    }
}

const fn wide(header: &'static str, value: fn(&Value) -> String) -> Column {
    Column {
        header,
        wide: true,
        value,
    }
}

/// The columns of a kind after NAME (only `AGE` for kinds without their
/// own).
fn columns(kind: &str) -> &'static [Column] {
    match kind {
        "Pod" => POD_COLUMNS,
        "Node" => NODE_COLUMNS,
        "Service" => SERVICE_COLUMNS,
        "EndpointSlice" => ENDPOINT_SLICE_COLUMNS,
        "Deployment" => DEPLOYMENT_COLUMNS,
        "Namespace" => NAMESPACE_COLUMNS,
        "CiliumNode" => CILIUM_NODE_COLUMNS,
        "CiliumEndpoint" => CILIUM_ENDPOINT_COLUMNS,
        "CiliumIdentity" => CILIUM_IDENTITY_COLUMNS,
        "CiliumLoadBalancerIPPool" => CILIUM_LB_IP_POOL_COLUMNS,
        _ => AGE_ONLY,
    }
}

const AGE_ONLY: &[Column] = &[col("AGE", age)];

const POD_COLUMNS: &[Column] = &[
    col("READY", ready_column),
    col("STATUS", pod_status),
    col("RESTARTS", |o| {
        arr(o, "/status/containerStatuses")
            .iter()
            .map(|c| num(c, "/restartCount"))
            .sum::<i64>()
            .to_string()
    }),
    col("AGE", age),
    wide("IP", |o| or_none(o, "/status/podIP")),
    wide("NODE", |o| or_none(o, "/spec/nodeName")),
    wide("NOMINATED NODE", |_| "<none>".into()),
    wide("READINESS GATES", |_| "<none>".into()),
];

const NODE_COLUMNS: &[Column] = &[
    col("STATUS", node_status),
    col("ROLES", node_roles),
    col("AGE", age),
    col("VERSION", |o| {
        s(o, "/status/nodeInfo/kubeletVersion").into()
    }),
    wide("INTERNAL-IP", |o| node_address(o, "InternalIP")),
    wide("EXTERNAL-IP", |o| node_address(o, "ExternalIP")),
    wide("OS-IMAGE", |o| or_unknown(s(o, "/status/nodeInfo/osImage"))),
    wide("KERNEL-VERSION", |o| {
        or_unknown(s(o, "/status/nodeInfo/kernelVersion"))
    }),
    wide("CONTAINER-RUNTIME", |o| {
        or_unknown(s(o, "/status/nodeInfo/containerRuntimeVersion"))
    }),
];

const SERVICE_COLUMNS: &[Column] = &[
    col("TYPE", |o| s(o, "/spec/type").into()),
    col("CLUSTER-IP", |o| or_none(o, "/spec/clusterIP")),
    col("EXTERNAL-IP", service_external_ip),
    col("PORT(S)", service_ports),
    col("AGE", age),
    wide("SELECTOR", |o| label_map(o.pointer("/spec/selector"))),
];

const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    col("ADDRESSTYPE", |o| s(o, "/addressType").into()),
    col("PORTS", |o| {
        let ports: Vec<String> = arr(o, "/ports")
            .iter()
            .map(|p| num(p, "/port").to_string())
            .collect();
        join_or(&ports, "<unset>")
    }),
    col("ENDPOINTS", |o| {
        let addrs: Vec<&str> = arr(o, "/endpoints")
            .iter()
            .flat_map(|e| arr(e, "/addresses"))
            .filter_map(Value::as_str)
            .collect();
        match addrs.len() {
            0 => "<unset>".into(),
            n if n > 3 => format!("{} + {} more...", addrs[..3].join(","), n - 3),
            _ => addrs.join(","),
        }
    }),
    col("AGE", age),
];

const DEPLOYMENT_COLUMNS: &[Column] = &[
    col("READY", |o| {
        format!(
            "{}/{}",
            num(o, "/status/readyReplicas"),
            o.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        )
    }),
    col("UP-TO-DATE", |o| {
        num(o, "/status/updatedReplicas").to_string()
    }),
    col("AVAILABLE", |o| {
        num(o, "/status/availableReplicas").to_string()
    }),
    col("AGE", age),
    wide("CONTAINERS", |o| containers(o, "/name")),
    wide("IMAGES", |o| containers(o, "/image")),
    wide("SELECTOR", |o| {
        label_map(o.pointer("/spec/selector/matchLabels"))
    }),
];

const NAMESPACE_COLUMNS: &[Column] = &[
    col("STATUS", |o| {
        let p = s(o, "/status/phase");
        if p.is_empty() {
            "Active".into()
        } else {
            p.into()
        }
    }),
    col("AGE", age),
];

const CILIUM_NODE_COLUMNS: &[Column] = &[
    col("CILIUMINTERNALIP", |o| {
        cilium_node_address(o, "CiliumInternalIP")
    }),
    col("INTERNALIP", |o| cilium_node_address(o, "InternalIP")),
    col("AGE", age),
];

const CILIUM_ENDPOINT_COLUMNS: &[Column] = &[
    col("SECURITY IDENTITY", |o| or_none(o, "/status/identity/id")),
    col("ENDPOINT STATE", |o| or_none(o, "/status/state")),
    col("IPV4", |o| {
        or_none(o, "/status/networking/addressing/0/ipv4")
    }),
    col("IPV6", |o| {
        or_none(o, "/status/networking/addressing/0/ipv6")
    }),
];

const CILIUM_IDENTITY_COLUMNS: &[Column] = &[
    col("NAMESPACE", |o| {
        or_none(o, "/security-labels/k8s:io.kubernetes.pod.namespace")
    }),
    col("AGE", age),
];

const CILIUM_LB_IP_POOL_COLUMNS: &[Column] = &[
    col("DISABLED", |o| {
        o.pointer("/spec/disabled")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string()
    }),
    col("CONFLICTING", |o| {
        condition(o, "cilium.io/PoolConflict", "/status")
    }),
    col("IPS AVAILABLE", |o| {
        condition(o, "cilium.io/IPsAvailable", "/message")
    }),
    col("AGE", age),
];

/// `items` joined with commas, or `empty` when there are none.
fn join_or(items: &[impl AsRef<str>], empty: &str) -> String {
    if items.is_empty() {
        empty.into()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<&str>>()
            .join(",")
    }
}

fn or_unknown(s: &str) -> String {
    if s.is_empty() {
        "<unknown>".into()
    } else {
        s.into()
    }
}

fn condition(o: &Value, type_: &str, field: &str) -> String {
    arr(o, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == type_)
        .map(|c| s(c, field).to_string())
        .unwrap_or_default()
}

fn ready_column(o: &Value) -> String {
    let total = arr(o, "/spec/containers").len();
    let ready = arr(o, "/status/containerStatuses")
        .iter()
        .filter(|c| c.pointer("/ready").and_then(Value::as_bool) == Some(true))
        .count();
    format!("{ready}/{total}")
}

fn pod_status(o: &Value) -> String {
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    for c in arr(o, "/status/containerStatuses") {
        let reason = s(c, "/state/waiting/reason");
        if !reason.is_empty() {
            return reason.into();
        }
    }
    let phase = s(o, "/status/phase");
    if phase == "Pending" && o.pointer("/spec/nodeName").is_some() {
        return "ContainerCreating".into();
    }
    if phase.is_empty() {
        "Pending".into()
    } else {
        phase.into()
    }
}

fn node_status(o: &Value) -> String {
    let ready = arr(o, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == "Ready")
        .map(|c| s(c, "/status"));
    let mut st = match ready {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".into(),
        None => "Unknown".into(),
    };
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        st.push_str(",SchedulingDisabled");
    }
    st
}

fn node_roles(o: &Value) -> String {
    let roles: Vec<&str> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .collect()
        })
        .unwrap_or_default();
    join_or(&roles, "<none>")
}

fn node_address(o: &Value, type_: &str) -> String {
    arr(o, "/status/addresses")
        .iter()
        .find(|a| s(a, "/type") == type_)
        .map(|a| s(a, "/address").to_string())
        .unwrap_or_else(|| "<none>".into())
}

fn cilium_node_address(o: &Value, type_: &str) -> String {
    arr(o, "/spec/addresses")
        .iter()
        .find(|a| s(a, "/type") == type_)
        .map(|a| s(a, "/ip").to_string())
        .unwrap_or_default()
}

fn service_external_ip(o: &Value) -> String {
    let mut ips: Vec<String> = arr(o, "/spec/externalIPs")
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    ips.extend(
        arr(o, "/status/loadBalancer/ingress")
            .iter()
            .map(|i| s(i, "/ip").to_string())
            .filter(|ip| !ip.is_empty()),
    );
    if !ips.is_empty() {
        return ips.join(",");
    }
    if s(o, "/spec/type") == "LoadBalancer" {
        "<pending>".into()
    } else {
        "<none>".into()
    }
}

fn service_ports(o: &Value) -> String {
    let ports: Vec<String> = arr(o, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = match s(p, "/protocol") {
                "" => "TCP",
                x => x,
            };
            match p.pointer("/nodePort").and_then(Value::as_i64) {
                Some(np) => format!("{}:{np}/{proto}", num(p, "/port")),
                None => format!("{}/{proto}", num(p, "/port")),
            }
        })
        .collect();
    join_or(&ports, "<none>")
}

fn containers(o: &Value, field: &str) -> String {
    arr(o, "/spec/template/spec/containers")
        .iter()
        .map(|c| s(c, field))
        .collect::<Vec<_>>()
        .join(",")
}

fn label_map(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(kind: &str, o: &Value, wide: bool) -> Vec<String> {
        shown(columns(kind), wide).map(|c| (c.value)(o)).collect()
    }

    #[test]
    fn pod_columns() {
        let pod = json!({
            "metadata": {"name": "curl-pod"},
            "spec": {"nodeName": "k8s-ctr", "containers": [{"name": "curl"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.5",
                "containerStatuses": [{"ready": true, "restartCount": 2}]}
        });
        let r = row("Pod", &pod, true);
        assert_eq!(r[0], "1/1");
        assert_eq!(r[1], "Running");
        assert_eq!(r[2], "2");
        assert_eq!(r[4], "10.244.0.5");
        assert_eq!(r[5], "k8s-ctr");
        let mut deleting = pod.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(row("Pod", &deleting, false)[1], "Terminating");
        let pending =
            json!({"spec": {"nodeName": "n", "containers": [{}]}, "status": {"phase": "Pending"}});
        assert_eq!(row("Pod", &pending, false)[1], "ContainerCreating");
    }

    #[test]
    fn service_and_node_columns() {
        let svc = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.10.1",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
            "selector": {"app": "webpod"}}});
        let r = row("Service", &svc, true);
        assert_eq!(r[0], "NodePort");
        assert_eq!(r[1], "10.96.10.1");
        assert_eq!(r[2], "<none>");
        assert_eq!(r[3], "80:30080/TCP,53/UDP");
        assert_eq!(r[5], "app=webpod");
        let lb = json!({"spec": {"type": "LoadBalancer"}});
        assert_eq!(row("Service", &lb, false)[2], "<pending>");
        let node = json!({"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.10.100"}]}});
        let r = row("Node", &node, true);
        assert_eq!(r[0], "Ready,SchedulingDisabled");
        assert_eq!(r[1], "control-plane");
        assert_eq!(r[4], "192.168.10.100");
        assert_eq!(r[5], "<none>");
    }

    #[test]
    fn cilium_columns() {
        let cn = json!({"spec": {"addresses": [
            {"type": "InternalIP", "ip": "192.168.10.100"},
            {"type": "CiliumInternalIP", "ip": "172.20.0.172"}]}});
        let r = row("CiliumNode", &cn, false);
        assert_eq!(r[..2], ["172.20.0.172", "192.168.10.100"]);
        let cep = json!({"status": {"identity": {"id": 12564}, "state": "ready",
            "networking": {"addressing": [{"ipv4": "172.20.1.7"}]}}});
        assert_eq!(
            row("CiliumEndpoint", &cep, false),
            ["12564", "ready", "172.20.1.7", "<none>"]
        );
        let slice = json!({"addressType": "IPv4", "ports": [{"port": 80}],
            "endpoints": [{"addresses": ["a"]}, {"addresses": ["b"]}, {"addresses": ["c"]}, {"addresses": ["d"]}]});
        let r = row("EndpointSlice", &slice, false);
        assert_eq!(r[..3], ["IPv4", "80", "a,b,c + 1 more..."]);
    }
}
