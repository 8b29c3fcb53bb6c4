//! Columns of the built-in kinds other than pods, as kube-apiserver's
//! printers fill them (all columns, wide ones included); RBAC roles and
//! CRDs use the server's default convertor (Name, Created At).

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use super::format::{label_map, rfc3339, selector, selector_or_none};
use super::{
    AGE, CREATION_DESCRIPTION, Column, NAME, array_at, bool_at, int_at, len_at, or_none, pod,
    present, since, str_at, timestamp_at,
};

/// The columns of a built-in kind, if it has its own printer.
pub(super) fn columns(kind: &str) -> Option<&'static [Column]> {
    Some(match kind {
        "Pod" => pod::COLUMNS,
        "Node" => NODE,
        "Service" => SERVICE,
        "Endpoints" => ENDPOINTS,
        "EndpointSlice" => ENDPOINT_SLICE,
        "Deployment" => DEPLOYMENT,
        "DaemonSet" => DAEMON_SET,
        "Namespace" => NAMESPACE,
        "ConfigMap" => CONFIG_MAP,
        "Secret" => SECRET,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "Event" => EVENT,
        "Lease" => LEASE,
        "NetworkPolicy" => NETWORK_POLICY,
        "RoleBinding" | "ClusterRoleBinding" => ROLE_BINDING,
        "Role" | "ClusterRole" | "CustomResourceDefinition" => DEFAULT_CONVERTOR,
        _ => return None,
    })
}

/// A column whose cell is the integer at `pointer` (the printers declare
/// some such columns `string`, others `integer`).
macro_rules! count {
    ($name:literal, $type:literal, $description:literal, $pointer:literal) => {
        Column::typed($name, $type, $description, |o, _| {
            int_at(o, $pointer).into()
        })
    };
}

/// The wide `Containers` and `Images` columns of workload controllers.
const CONTAINERS: Column = Column::string(
    "Containers",
    "Names of each container in the template.",
    |o, _| template_containers(o, "/name").into(),
)
.wide();
const IMAGES: Column = Column::string(
    "Images",
    "Images referenced by each container in the template.",
    |o, _| template_containers(o, "/image").into(),
)
.wide();

const NODE: &[Column] = &[
    NAME,
    Column::string("Status", "The status of the node", |o, _| {
        node_status(o).into()
    }),
    Column::string("Roles", "The roles of the node", |o, _| {
        node_roles(o).into()
    }),
    AGE,
    Column::string("Version", "Kubelet version of the node.", |o, _| {
        str_at(o, "/status/nodeInfo/kubeletVersion").into()
    }),
    Column::string("Internal-IP", "First InternalIP address.", |o, _| {
        node_address(o, "InternalIP").into()
    })
    .wide(),
    Column::string("External-IP", "First ExternalIP address.", |o, _| {
        node_address(o, "ExternalIP").into()
    })
    .wide(),
    Column::string("OS-Image", "Operating system image.", |o, _| {
        node_info(o, "osImage").into()
    })
    .wide(),
    Column::string("Kernel-Version", "Kernel version.", |o, _| {
        node_info(o, "kernelVersion").into()
    })
    .wide(),
    Column::string(
        "Container-Runtime",
        "Container runtime and version.",
        |o, _| node_info(o, "containerRuntimeVersion").into(),
    )
    .wide(),
];

const SERVICE: &[Column] = &[
    NAME,
    Column::string("Type", "How the service is exposed.", |o, _| {
        service_type(o).into()
    }),
    Column::string("Cluster-IP", "The service's first cluster IP.", |o, _| {
        cluster_ip(o).into()
    }),
    Column::string(
        "External-IP",
        "External IPs and load-balancer ingress.",
        |o, _| external_ip(o).into(),
    ),
    Column::string("Port(s)", "Ports, with node ports.", |o, _| {
        service_ports(o).into()
    }),
    AGE,
    Column::string(
        "Selector",
        "Labels of the pods behind the service.",
        |o, _| label_map(o.pointer("/spec/selector")).into(),
    )
    .wide(),
];

const ENDPOINTS: &[Column] = &[
    NAME,
    Column::string("Endpoints", "Ready addresses with their ports.", |o, _| {
        endpoints(o).into()
    }),
    AGE,
];

const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    Column::string("AddressType", "Address family of the endpoints.", |o, _| {
        str_at(o, "/addressType").into()
    }),
    Column::string("Ports", "Port numbers (or names).", |o, _| {
        let ports = array_at(o, "/ports").iter().map(|p| match p.get("port") {
            Some(Value::Number(n)) => n.to_string(),
            _ => p.get("name").and_then(Value::as_str).unwrap_or("*").into(),
        });
        first_three(ports, "<unset>").into()
    }),
    Column::string("Endpoints", "Endpoint addresses.", |o, _| {
        let addresses = array_at(o, "/endpoints")
            .iter()
            .flat_map(|e| array_at(e, "/addresses"))
            .map(|a| a.as_str().unwrap_or("").to_string());
        first_three(addresses, "<unset>").into()
    }),
    AGE,
];

const DEPLOYMENT: &[Column] = &[
    NAME,
    Column::string("Ready", "Ready pods out of the desired ones.", |o, _| {
        let desired = o.pointer("/spec/replicas").and_then(Value::as_i64);
        let ready = int_at(o, "/status/readyReplicas");
        format!("{ready}/{}", desired.unwrap_or(1)).into()
    }),
    count!(
        "Up-to-date",
        "string",
        "Pods of the current template.",
        "/status/updatedReplicas"
    ),
    count!(
        "Available",
        "string",
        "Pods available to serve.",
        "/status/availableReplicas"
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    Column::string("Selector", "Label selector of the pods.", |o, _| {
        let text = selector(o.pointer("/spec/selector"));
        text.unwrap_or_else(|| "<invalid>".into()).into()
    })
    .wide(),
];

const DAEMON_SET: &[Column] = &[
    NAME,
    count!(
        "Desired",
        "integer",
        "Nodes that should run the pod.",
        "/status/desiredNumberScheduled"
    ),
    count!(
        "Current",
        "integer",
        "Nodes running the pod.",
        "/status/currentNumberScheduled"
    ),
    count!(
        "Ready",
        "integer",
        "Nodes whose pod is ready.",
        "/status/numberReady"
    ),
    count!(
        "Up-to-date",
        "integer",
        "Nodes running the current template.",
        "/status/updatedNumberScheduled"
    ),
    count!(
        "Available",
        "integer",
        "Nodes whose pod is available.",
        "/status/numberAvailable"
    ),
    Column::string("Node Selector", "Node labels the pods require.", |o, _| {
        label_map(o.pointer("/spec/template/spec/nodeSelector")).into()
    }),
    AGE,
    CONTAINERS,
    IMAGES,
    Column::string("Selector", "Label selector of the pods.", |o, _| {
        selector_or_none(o.pointer("/spec/selector")).into()
    })
    .wide(),
];

const NAMESPACE: &[Column] = &[
    NAME,
    Column::string("Status", "The status of the namespace", |o, _| {
        match str_at(o, "/status/phase") {
            "" if present(o, "/metadata/deletionTimestamp") => "Terminating",
            "" => "Active",
            phase => phase,
        }
        .into()
    }),
    AGE,
];

const CONFIG_MAP: &[Column] = &[
    NAME,
    Column::string("Data", "Number of data and binaryData keys.", |o, _| {
        (len_at(o, "/data") + len_at(o, "/binaryData")).into()
    }),
    AGE,
];

const SECRET: &[Column] = &[
    NAME,
    Column::string("Type", "Type of the secret.", |o, _| {
        match str_at(o, "/type") {
            "" => "Opaque",
            type_ => type_,
        }
        .into()
    }),
    Column::string("Data", "Number of data keys.", |o, _| {
        len_at(o, "/data").into()
    }),
    AGE,
];

const SERVICE_ACCOUNT: &[Column] = &[
    NAME,
    Column::string("Secrets", "Number of referenced secrets.", |o, _| {
        len_at(o, "/secrets").into()
    }),
    AGE,
];

/// `kubectl get events`: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE; the
/// name comes last and only with `-o wide`.
const EVENT: &[Column] = &[
    Column::string(
        "Last Seen",
        "Time since the event was last seen.",
        |o, now| event_last_seen(o, now).into(),
    ),
    Column::string("Type", "Normal or Warning.", |o, _| {
        str_at(o, "/type").into()
    }),
    Column::string("Reason", "Short machine reason.", |o, _| {
        str_at(o, "/reason").into()
    }),
    Column::string("Object", "The object the event is about.", |o, _| {
        event_object(o).into()
    }),
    Column::string("Subobject", "Field path within the object.", |o, _| {
        str_at(o, "/involvedObject/fieldPath").into()
    })
    .wide(),
    Column::string("Source", "Component (and host) reporting it.", |o, _| {
        event_source(o).into()
    })
    .wide(),
    Column::string("Message", "Human-readable description.", |o, _| {
        str_at(o, "/message").trim().into()
    }),
    Column::string(
        "First Seen",
        "Time since the event was first seen.",
        |o, now| event_first_seen(o, now).into(),
    )
    .wide(),
    Column::string("Count", "How many times it occurred.", |o, _| {
        event_count(o).into()
    })
    .wide(),
    NAME.wide(),
];

const LEASE: &[Column] = &[
    NAME,
    Column::string("Holder", "Identity of the current holder.", |o, _| {
        str_at(o, "/spec/holderIdentity").into()
    }),
    AGE,
];

const NETWORK_POLICY: &[Column] = &[
    NAME,
    Column::string("Pod-Selector", "Pods the policy applies to.", |o, _| {
        selector_or_none(o.pointer("/spec/podSelector")).into()
    }),
    AGE,
];

/// RoleBindings and ClusterRoleBindings.
const ROLE_BINDING: &[Column] = &[
    NAME,
    Column::string("Role", "The role bound (kind/name).", |o, _| {
        let kind = str_at(o, "/roleRef/kind");
        format!("{kind}/{}", str_at(o, "/roleRef/name")).into()
    }),
    AGE,
    Column::string("Users", "Users in the binding.", |o, _| {
        subjects(o, "User").into()
    })
    .wide(),
    Column::string("Groups", "Groups in the binding.", |o, _| {
        subjects(o, "Group").into()
    })
    .wide(),
    Column::string(
        "ServiceAccounts",
        "Service accounts in the binding.",
        |o, _| subjects(o, "ServiceAccount").into(),
    )
    .wide(),
];

/// The API server's default convertor (Roles, ClusterRoles, CRDs).
const DEFAULT_CONVERTOR: &[Column] = &[
    NAME,
    Column::typed("Created At", "date", CREATION_DESCRIPTION, |o, _| {
        rfc3339(timestamp_at(o, "/metadata/creationTimestamp")).into()
    }),
];

/// `Ready` / `NotReady` by the Ready condition, `Unknown` without one;
/// `,SchedulingDisabled` when cordoned.
fn node_status(node: &Value) -> String {
    let ready = array_at(node, "/status/conditions")
        .iter()
        .rfind(|c| str_at(c, "/type") == "Ready");
    let mut status = match ready.map(|c| str_at(c, "/status")) {
        Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }
    .to_string();
    if bool_at(node, "/spec/unschedulable") {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// Sorted roles from `node-role.kubernetes.io/<role>` labels and the
/// `kubernetes.io/role` label; `<none>` without any.
fn node_roles(node: &Value) -> String {
    let labels = node.pointer("/metadata/labels").and_then(Value::as_object);
    let roles: BTreeSet<&str> = labels
        .into_iter()
        .flatten()
        .filter_map(
            |(key, value)| match key.strip_prefix("node-role.kubernetes.io/") {
                Some(role) => Some(role),
                None if key == "kubernetes.io/role" => value.as_str(),
                None => None,
            },
        )
        .filter(|role| !role.is_empty())
        .collect();
    or_none(&roles.into_iter().collect::<Vec<_>>().join(","))
}

fn node_address(node: &Value, type_: &str) -> String {
    let address = array_at(node, "/status/addresses")
        .iter()
        .find(|a| str_at(a, "/type") == type_)
        .map(|a| str_at(a, "/address"));
    address.unwrap_or("<none>").into()
}

/// A `status.nodeInfo` field, `<unknown>` when empty.
fn node_info(node: &Value, field: &str) -> String {
    match str_at(node, &format!("/status/nodeInfo/{field}")) {
        "" => "<unknown>".into(),
        value => value.into(),
    }
}

/// `spec.type`, which the API server defaults to `ClusterIP`.
fn service_type(service: &Value) -> &str {
    match str_at(service, "/spec/type") {
        "" => "ClusterIP",
        type_ => type_,
    }
}

/// `spec.clusterIPs[0]` (or `spec.clusterIP`); `None` for headless.
fn cluster_ip(service: &Value) -> String {
    match str_at(service, "/spec/clusterIPs/0") {
        "" => or_none(str_at(service, "/spec/clusterIP")),
        ip => ip.into(),
    }
}

/// External IPs; for load balancers the ingress IPs (or hostnames) first,
/// `<pending>` while there are none; the external name of ExternalName
/// services.
fn external_ip(service: &Value) -> String {
    let external: Vec<&str> = array_at(service, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match service_type(service) {
        "ClusterIP" | "NodePort" => or_none(&external.join(",")),
        "LoadBalancer" => {
            let ingress: BTreeSet<&str> = array_at(service, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| match str_at(i, "/ip") {
                    "" => str_at(i, "/hostname"),
                    ip => ip,
                })
                .filter(|a| !a.is_empty())
                .collect();
            let all: Vec<&str> = ingress.into_iter().chain(external).collect();
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(service, "/spec/externalName").into(),
        _ => "<unknown>".into(),
    }
}

/// `80/TCP` or `80:30080/TCP` per port, comma-joined; `<none>`.
fn service_ports(service: &Value) -> String {
    let ports: Vec<String> = array_at(service, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = match str_at(p, "/protocol") {
                "" => "TCP",
                protocol => protocol,
            };
            match int_at(p, "/nodePort") {
                0 => format!("{}/{protocol}", int_at(p, "/port")),
                node_port => format!("{}:{node_port}/{protocol}", int_at(p, "/port")),
            }
        })
        .collect();
    or_none(&ports.join(","))
}

/// `ip:port` for every ready address and port (IPs alone for subsets
/// without ports), the first three then ` + N more...`; `<none>` without
/// subsets.
fn endpoints(object: &Value) -> String {
    let subsets = array_at(object, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    let items = subsets.iter().flat_map(|subset| {
        let ips: Vec<&str> = array_at(subset, "/addresses")
            .iter()
            .map(|a| str_at(a, "/ip"))
            .collect();
        let ports = array_at(subset, "/ports");
        if ports.is_empty() {
            return ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>();
        }
        ports
            .iter()
            .flat_map(|p| ips.iter().map(|ip| host_port(ip, int_at(p, "/port"))))
            .collect()
    });
    first_three(items, "")
}

/// `ip:port`, with the IPv6 address in brackets.
fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// The first three items comma-joined, then ` + N more...`; `empty`
/// when there are none.
fn first_three(items: impl Iterator<Item = String>, empty: &str) -> String {
    let items: Vec<String> = items.collect();
    match items.len() {
        0 => empty.into(),
        n if n > 3 => format!("{} + {} more...", items[..3].join(","), n - 3),
        _ => items.join(","),
    }
}

/// A field of every container of the pod template, comma-joined.
fn template_containers(object: &Value, field: &str) -> String {
    array_at(object, "/spec/template/spec/containers")
        .iter()
        .map(|c| str_at(c, field))
        .collect::<Vec<_>>()
        .join(",")
}

/// When the event was first seen: `firstTimestamp`, else `eventTime`.
fn event_first_seen(event: &Value, now: Timestamp) -> String {
    let first = timestamp_at(event, "/firstTimestamp").or(timestamp_at(event, "/eventTime"));
    since(first, now)
}

/// When the event was last seen: the series' last observation, else
/// `lastTimestamp`, else when first seen.
fn event_last_seen(event: &Value, now: Timestamp) -> String {
    if present(event, "/series") {
        return since(timestamp_at(event, "/series/lastObservedTime"), now);
    }
    match timestamp_at(event, "/lastTimestamp") {
        Some(last) => since(Some(last), now),
        None => event_first_seen(event, now),
    }
}

/// The series count, else `count`, at least 1.
fn event_count(event: &Value) -> i64 {
    if present(event, "/series") {
        return int_at(event, "/series/count");
    }
    match int_at(event, "/count") {
        0 => 1,
        count => count,
    }
}

/// `kind/name` of the involved object, the kind lower-cased.
fn event_object(event: &Value) -> String {
    let kind = str_at(event, "/involvedObject/kind").to_lowercase();
    match str_at(event, "/involvedObject/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    }
}

/// `component, host` of the source (or the reporting controller and
/// instance).
fn event_source(event: &Value) -> String {
    let first = |a: &str, b: &str| match str_at(event, a) {
        "" => str_at(event, b).to_string(),
        value => value.to_string(),
    };
    let component = first("/source/component", "/reportingComponent");
    match first("/source/host", "/reportingInstance") {
        instance if instance.is_empty() => component,
        instance => format!("{component}, {instance}"),
    }
}

/// The binding's subjects of one kind, `, `-joined (service accounts as
/// `namespace/name`).
fn subjects(binding: &Value, kind: &str) -> String {
    array_at(binding, "/subjects")
        .iter()
        .filter(|s| str_at(s, "/kind") == kind)
        .map(|s| match kind {
            "ServiceAccount" => format!("{}/{}", str_at(s, "/namespace"), str_at(s, "/name")),
            _ => str_at(s, "/name").to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{cells, headers, row_text, table_of};

    /// The declared types of a kind's columns, `|`-separated.
    fn types(kind: &str) -> String {
        let table = table_of(kind, &[]);
        let definitions = table["columnDefinitions"].as_array().unwrap();
        let types: Vec<&str> = definitions
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        types.join("|")
    }

    /// Metadata of an object created 77 seconds before the tests' now.
    fn meta(name: &str) -> serde_json::Value {
        json!({"name": name, "namespace": "default", "creationTimestamp": "2025-03-01T11:58:43Z"})
    }

    #[test]
    fn node() {
        assert_eq!(
            headers("Node"),
            "Name|Status|Roles|Age|Version|Internal-IP*|External-IP*|OS-Image*|Kernel-Version*|Container-Runtime*"
        );
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "k8s-ctr", "creationTimestamp": "2025-02-28T20:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "",
                    "kubernetes.io/role": "master", "kubernetes.io/os": "linux"}},
            "spec": {"unschedulable": true, "podCIDR": "172.20.0.0/24"},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.10.100"},
                    {"type": "Hostname", "address": "k8s-ctr"}],
                "nodeInfo": {"kubeletVersion": "v1.33.2", "osImage": "Ubuntu 24.04.2 LTS",
                    "kernelVersion": "6.8.0-53-generic",
                    "containerRuntimeVersion": "containerd://1.7.27"}}});
        assert_eq!(
            row_text("Node", node),
            r#"["k8s-ctr","Ready,SchedulingDisabled","control-plane,master","16h","v1.33.2","192.168.10.100","<none>","Ubuntu 24.04.2 LTS","6.8.0-53-generic","containerd://1.7.27"]"#
        );
        let fresh = json!({"metadata": {"name": "k8s-w1"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(
            row_text("Node", fresh),
            r#"["k8s-w1","NotReady","<none>","<unknown>","","<none>","<none>","<unknown>","<unknown>","<unknown>"]"#
        );
        let no_conditions = json!({"metadata": {"name": "n"}});
        assert_eq!(cells("Node", no_conditions)[1], "Unknown");
    }

    #[test]
    fn service() {
        assert_eq!(
            headers("Service"),
            "Name|Type|Cluster-IP|External-IP|Port(s)|Age|Selector*"
        );
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("webpod"),
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.194.47",
                "clusterIPs": ["10.96.194.47"], "selector": {"app": "webpod"},
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}});
        assert_eq!(
            row_text("Service", svc),
            r#"["webpod","ClusterIP","10.96.194.47","<none>","80/TCP","77s","app=webpod"]"#
        );
        let node_port = json!({"metadata": meta("hubble-ui"),
            "spec": {"type": "NodePort", "clusterIPs": ["10.3.93.132"],
                "externalIPs": ["192.168.10.10"],
                "ports": [{"port": 80, "nodePort": 31001, "protocol": "TCP"},
                    {"port": 53, "nodePort": 30053, "protocol": "UDP"}]}});
        assert_eq!(
            cells("Service", node_port)[1..5],
            [
                "NodePort",
                "10.3.93.132",
                "192.168.10.10",
                "80:31001/TCP,53:30053/UDP"
            ]
        );
        let headless = json!({"metadata": meta("db"),
            "spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        assert_eq!(
            cells("Service", headless)[1..7],
            ["ClusterIP", "None", "<none>", "<none>", "77s", "<none>"]
        );
    }

    #[test]
    fn load_balancer_and_external_name_services() {
        let pending = json!({"metadata": meta("web"),
            "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "nodePort": 31234, "protocol": "TCP"}]}});
        assert_eq!(
            cells("Service", pending.clone())[3..5],
            ["<pending>", "80:31234/TCP"]
        );
        let mut assigned = pending;
        assigned["status"] = json!({"loadBalancer": {"ingress": [
            {"ip": "192.168.10.211"}, {"hostname": "lb.example.com"}, {"ip": "192.168.10.201"}]}});
        assigned["spec"]["externalIPs"] = json!(["10.0.0.1"]);
        assert_eq!(
            cells("Service", assigned)[3],
            "192.168.10.201,192.168.10.211,lb.example.com,10.0.0.1"
        );
        let external = json!({"metadata": meta("ext"),
            "spec": {"type": "ExternalName", "externalName": "example.com"}});
        assert_eq!(
            cells("Service", external)[2..5],
            ["<none>", "example.com", "<none>"]
        );
    }

    #[test]
    fn endpoints() {
        assert_eq!(headers("Endpoints"), "Name|Endpoints|Age");
        let webpod = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("webpod"),
            "subsets": [{"addresses": [{"ip": "10.244.0.2"}, {"ip": "10.244.1.188"}],
                "ports": [{"port": 80, "protocol": "TCP"}]}]});
        assert_eq!(
            row_text("Endpoints", webpod),
            r#"["webpod","10.244.0.2:80,10.244.1.188:80","77s"]"#
        );
        let dns = json!({"metadata": meta("kube-dns"),
            "subsets": [{"addresses": [{"ip": "172.20.0.56"}, {"ip": "172.20.1.113"}],
                "ports": [{"name": "dns", "port": 53}, {"name": "dns-tcp", "port": 53},
                    {"name": "metrics", "port": 9153}]}]});
        assert_eq!(
            cells("Endpoints", dns)[1],
            "172.20.0.56:53,172.20.1.113:53,172.20.0.56:53 + 3 more..."
        );
        let none = json!({"metadata": meta("hubble-ui")});
        assert_eq!(cells("Endpoints", none)[1], "<none>");
        let not_ready = json!({"metadata": meta("a"),
            "subsets": [{"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]});
        assert_eq!(cells("Endpoints", not_ready)[1], "");
        let headless = json!({"metadata": meta("b"),
            "subsets": [{"addresses": [{"ip": "fd00::1"}]},
                {"addresses": [{"ip": "fd00::2"}], "ports": [{"port": 443}]}]});
        assert_eq!(cells("Endpoints", headless)[1], "fd00::1,[fd00::2]:443");
    }

    #[test]
    fn endpoint_slice() {
        assert_eq!(
            headers("EndpointSlice"),
            "Name|AddressType|Ports|Endpoints|Age"
        );
        let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": meta("webpod-j45jt"), "addressType": "IPv4",
            "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.0.2"]}, {"addresses": ["10.244.1.188"]}]});
        assert_eq!(
            row_text("EndpointSlice", slice),
            r#"["webpod-j45jt","IPv4","80","10.244.0.2,10.244.1.188","77s"]"#
        );
        let many = json!({"metadata": meta("s"), "addressType": "IPv6",
            "ports": [{"port": 1}, {"name": "http"}, {}, {"port": 4}],
            "endpoints": [{"addresses": ["a", "b"]}, {"addresses": ["c"]}, {"addresses": ["d"]},
                {"addresses": ["e"]}]});
        assert_eq!(
            cells("EndpointSlice", many)[2..4],
            ["1,http,* + 1 more...", "a,b,c + 2 more..."]
        );
        let empty = json!({"metadata": meta("e"), "addressType": "IPv4", "endpoints": []});
        assert_eq!(cells("EndpointSlice", empty)[2..4], ["<unset>", "<unset>"]);
    }

    #[test]
    fn deployment() {
        assert_eq!(
            types("Deployment"),
            "string|string|string|string|string|string|string|string"
        );
        assert_eq!(
            headers("Deployment"),
            "Name|Ready|Up-to-date|Available|Age|Containers*|Images*|Selector*"
        );
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("webpod"),
            "spec": {"replicas": 3,
                "selector": {"matchLabels": {"app": "webpod"}},
                "template": {"metadata": {"labels": {"app": "webpod"}},
                    "spec": {"containers": [{"name": "webpod", "image": "traefik/whoami"},
                        {"name": "sidecar", "image": "busybox"}]}}},
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3,
                "availableReplicas": 2}});
        assert_eq!(
            row_text("Deployment", deploy),
            r#"["webpod","2/3",3,2,"77s","webpod,sidecar","traefik/whoami,busybox","app=webpod"]"#
        );
        let new = json!({"metadata": meta("new"), "spec": {"template": {"spec": {}}}});
        assert_eq!(
            row_text("Deployment", new),
            r#"["new","0/1",0,0,"77s","","",""]"#
        );
    }

    #[test]
    fn daemon_set() {
        assert_eq!(
            types("DaemonSet"),
            "string|integer|integer|integer|integer|integer|string|string|string|string|string"
        );
        assert_eq!(
            headers("DaemonSet"),
            "Name|Desired|Current|Ready|Up-to-date|Available|Node Selector|Age|Containers*|Images*|Selector*"
        );
        let cilium = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "cilium", "namespace": "kube-system",
                "creationTimestamp": "2025-03-01T07:40:00Z"},
            "spec": {"selector": {"matchLabels": {"k8s-app": "cilium"}},
                "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{"name": "cilium-agent", "image": "quay.io/cilium/cilium:v1.18.0"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}});
        assert_eq!(
            row_text("DaemonSet", cilium),
            r#"["cilium",3,3,2,3,2,"kubernetes.io/os=linux","4h20m","cilium-agent","quay.io/cilium/cilium:v1.18.0","k8s-app=cilium"]"#
        );
    }

    #[test]
    fn namespace_config_map_secret_service_account() {
        assert_eq!(headers("Namespace"), "Name|Status|Age");
        let ns = json!({"metadata": {"name": "kube-system",
            "creationTimestamp": "2025-01-15T00:00:00Z"}, "status": {"phase": "Active"}});
        assert_eq!(
            row_text("Namespace", ns),
            r#"["kube-system","Active","45d"]"#
        );
        let mut deleting = json!({"metadata": {"name": "old",
            "deletionTimestamp": "2025-03-01T11:59:00Z"}});
        assert_eq!(cells("Namespace", deleting.clone())[1], "Terminating");
        deleting["status"] = json!({"phase": "Active"});
        assert_eq!(cells("Namespace", deleting)[1], "Active");

        assert_eq!(headers("ConfigMap"), "Name|Data|Age");
        let cm = json!({"metadata": meta("kube-root-ca.crt"), "data": {"ca.crt": "..."},
            "binaryData": {"blob": "AAEC"}});
        assert_eq!(row_text("ConfigMap", cm), r#"["kube-root-ca.crt",2,"77s"]"#);

        assert_eq!(headers("Secret"), "Name|Type|Data|Age");
        let secret = json!({"metadata": meta("cilium-ca"),
            "data": {"ca.crt": "Y2E=", "ca.key": "a2V5"}});
        assert_eq!(
            row_text("Secret", secret),
            r#"["cilium-ca","Opaque",2,"77s"]"#
        );
        let tls = json!({"metadata": meta("tls"), "type": "kubernetes.io/tls"});
        assert_eq!(
            cells("Secret", tls)[1..3],
            [json!("kubernetes.io/tls"), json!(0)]
        );

        assert_eq!(headers("ServiceAccount"), "Name|Secrets|Age");
        let sa = json!({"metadata": meta("default")});
        assert_eq!(row_text("ServiceAccount", sa), r#"["default",0,"77s"]"#);
        let with_secret =
            json!({"metadata": meta("legacy"), "secrets": [{"name": "legacy-token"}]});
        assert_eq!(cells("ServiceAccount", with_secret)[1], 1);
    }

    #[test]
    fn event() {
        assert_eq!(
            headers("Event"),
            "Last Seen|Type|Reason|Object|Subobject*|Source*|Message|First Seen*|Count*|Name*"
        );
        let pulled = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "curl-pod.1829f0c3a1b2c3d4", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "curl-pod", "namespace": "default",
                "fieldPath": "spec.containers{curl}"},
            "reason": "Pulled", "type": "Normal",
            "message": "Container image \"nicolaka/netshoot\" already present on machine\n",
            "source": {"component": "kubelet", "host": "k8s-ctr"},
            "firstTimestamp": "2025-03-01T11:50:00Z", "lastTimestamp": "2025-03-01T11:59:30Z",
            "count": 3});
        assert_eq!(
            row_text("Event", pulled),
            r#"["30s","Normal","Pulled","pod/curl-pod","spec.containers{curl}","kubelet, k8s-ctr","Container image \"nicolaka/netshoot\" already present on machine","10m",3,"curl-pod.1829f0c3a1b2c3d4"]"#
        );
        let new_api = json!({"metadata": {"name": "e2"},
            "involvedObject": {"kind": "Node"},
            "eventTime": "2025-03-01T11:59:00.123456Z", "reportingComponent": "cilium-operator",
            "type": "Warning", "reason": "Conflict", "message": "m"});
        assert_eq!(
            row_text("Event", new_api),
            r#"["59s","Warning","Conflict","node","","cilium-operator","m","59s",1,"e2"]"#
        );
        let series = json!({"metadata": {"name": "e3"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "eventTime": "2025-03-01T11:00:00.000000Z",
            "series": {"count": 12, "lastObservedTime": "2025-03-01T11:58:00.000000Z"},
            "reportingComponent": "kubelet", "reportingInstance": "k8s-w1"});
        let r = cells("Event", series);
        assert_eq!(r[0], "2m");
        assert_eq!(r[5], "kubelet, k8s-w1");
        assert_eq!(r[7..9], [json!("60m"), json!(12)]);
    }

    #[test]
    fn lease_and_network_policy() {
        assert_eq!(headers("Lease"), "Name|Holder|Age");
        let lease = json!({"metadata": meta("cilium-operator-resource-lock"),
            "spec": {"holderIdentity": "k8s-ctr-abcde", "leaseDurationSeconds": 15}});
        assert_eq!(
            row_text("Lease", lease),
            r#"["cilium-operator-resource-lock","k8s-ctr-abcde","77s"]"#
        );
        assert_eq!(cells("Lease", json!({"metadata": meta("free")}))[1], "");

        assert_eq!(headers("NetworkPolicy"), "Name|Pod-Selector|Age");
        let all = json!({"metadata": meta("deny-all"), "spec": {"podSelector": {}}});
        assert_eq!(
            row_text("NetworkPolicy", all),
            r#"["deny-all","<none>","77s"]"#
        );
        let web = json!({"metadata": meta("web"), "spec": {"podSelector": {
            "matchLabels": {"app": "webpod"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "api"]}]}}});
        assert_eq!(
            cells("NetworkPolicy", web)[1],
            "app=webpod,tier in (api,front)"
        );
    }

    #[test]
    fn rbac() {
        let wide = "Name|Role|Age|Users*|Groups*|ServiceAccounts*";
        assert_eq!(headers("RoleBinding"), wide);
        assert_eq!(headers("ClusterRoleBinding"), wide);
        let binding = json!({"metadata": {"name": "cilium",
                "creationTimestamp": "2025-03-01T11:00:00Z"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": "cilium"},
            "subjects": [
                {"kind": "ServiceAccount", "name": "cilium", "namespace": "kube-system"},
                {"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                {"kind": "Group", "name": "system:nodes"},
                {"kind": "ServiceAccount", "name": "hubble", "namespace": "kube-system"}]});
        assert_eq!(
            row_text("ClusterRoleBinding", binding.clone()),
            r#"["cilium","ClusterRole/cilium","60m","alice, bob","system:nodes","kube-system/cilium, kube-system/hubble"]"#
        );
        assert_eq!(cells("RoleBinding", binding)[1], "ClusterRole/cilium");

        for kind in ["Role", "ClusterRole", "CustomResourceDefinition"] {
            assert_eq!(headers(kind), "Name|Created At", "{kind}");
        }
        let crd = json!({"metadata": {"name": "ciliumnodes.cilium.io",
            "creationTimestamp": "2024-10-26T13:12:33Z"}});
        assert_eq!(
            row_text("CustomResourceDefinition", crd),
            r#"["ciliumnodes.cilium.io","2024-10-26T13:12:33Z"]"#
        );
        let role = json!({"metadata": {"name": "admin"}});
        assert_eq!(
            row_text("ClusterRole", role),
            r#"["admin","0001-01-01T00:00:00Z"]"#
        );
    }
}
