//! Columns of the `cilium.io` kinds: the `additionalPrinterColumns` of
//! upstream Cilium's CRDs, evaluated as the API server's custom-resource
//! convertor does: a simple JSONPath, its first result, a cell typed by
//! the column (`date` rendered as an age, missing values as null, which
//! kubectl prints `<none>`). A CRD without printer columns gets Name, Age.

use jiff::Timestamp;
use serde_json::Value;

use super::{CREATION_DESCRIPTION, Column, NAME, since};

/// The API group of the kinds served here.
pub(super) const GROUP: &str = "cilium.io";

/// The `Age` printer column of a CRD.
const AGE: Column = Column::json_path("Age", "date", ".metadata.creationTimestamp", "");

/// The columns of a CRD without printer columns (and of unknown kinds).
pub(super) const DEFAULT: &[Column] = &[
    NAME,
    Column::json_path(
        "Age",
        "date",
        ".metadata.creationTimestamp",
        CREATION_DESCRIPTION,
    ),
];

/// The columns of a `cilium.io` kind.
pub(super) fn columns(kind: &str) -> &'static [Column] {
    match kind {
        "CiliumNode" => CILIUM_NODE,
        "CiliumEndpoint" => CILIUM_ENDPOINT,
        "CiliumIdentity" => CILIUM_IDENTITY,
        "CiliumNetworkPolicy" => CILIUM_NETWORK_POLICY,
        "CiliumClusterwideNetworkPolicy" => CILIUM_CLUSTERWIDE_NETWORK_POLICY,
        "CiliumExternalWorkload" => CILIUM_EXTERNAL_WORKLOAD,
        "CiliumLoadBalancerIPPool" => CILIUM_LB_IP_POOL,
        "CiliumL2AnnouncementPolicy"
        | "CiliumLocalRedirectPolicy"
        | "CiliumBGPClusterConfig"
        | "CiliumBGPPeerConfig"
        | "CiliumBGPAdvertisement"
        | "CiliumBGPNodeConfig"
        | "CiliumBGPNodeConfigOverride" => AGE_ONLY,
        _ => DEFAULT,
    }
}

/// Kinds whose CRD declares an `Age` column only.
const AGE_ONLY: &[Column] = &[NAME, AGE];

const CILIUM_NETWORK_POLICY: &[Column] = &[NAME, AGE, VALID];

const CILIUM_CLUSTERWIDE_NETWORK_POLICY: &[Column] = &[NAME, VALID];

/// The `Valid` column of the policy kinds.
const VALID: Column = Column::json_path(
    "Valid",
    "string",
    ".status.conditions[?(@.type=='Valid')].status",
    "",
);

const CILIUM_NODE: &[Column] = &[
    NAME,
    Column::json_path(
        "CiliumInternalIP",
        "string",
        r#".spec.addresses[?(@.type=="CiliumInternalIP")].ip"#,
        "Cilium internal IP for this node",
    ),
    Column::json_path(
        "InternalIP",
        "string",
        r#".spec.addresses[?(@.type=="InternalIP")].ip"#,
        "IP of the node",
    ),
    Column::json_path(
        "Age",
        "date",
        ".metadata.creationTimestamp",
        "Time duration since creation of Ciliumnode",
    ),
];

const CILIUM_ENDPOINT: &[Column] = &[
    NAME,
    Column::json_path(
        "Security Identity",
        "integer",
        ".status.identity.id",
        "Security Identity",
    ),
    Column::json_path(
        "Ingress Enforcement",
        "string",
        ".status.policy.ingress.state",
        "Ingress enforcement in the endpoint",
    )
    .wide(),
    Column::json_path(
        "Egress Enforcement",
        "string",
        ".status.policy.egress.state",
        "Egress enforcement in the endpoint",
    )
    .wide(),
    Column::json_path(
        "Visibility Policy",
        "string",
        ".status.visibility-policy-status",
        "Status of visibility policy in the endpoint",
    )
    .wide(),
    Column::json_path(
        "Endpoint State",
        "string",
        ".status.state",
        "Endpoint current state",
    ),
    Column::json_path(
        "IPv4",
        "string",
        ".status.networking.addressing[0].ipv4",
        "Endpoint IPv4 address",
    ),
    Column::json_path(
        "IPv6",
        "string",
        ".status.networking.addressing[0].ipv6",
        "Endpoint IPv6 address",
    ),
];

const CILIUM_IDENTITY: &[Column] = &[
    NAME,
    Column::json_path(
        "Namespace",
        "string",
        r".metadata.labels.io\.kubernetes\.pod\.namespace",
        "The namespace of the entity",
    ),
    Column::json_path(
        "Age",
        "date",
        ".metadata.creationTimestamp",
        "The age of the identity",
    ),
];

const CILIUM_EXTERNAL_WORKLOAD: &[Column] = &[
    NAME,
    Column::json_path("Cilium ID", "integer", ".status.id", ""),
    Column::json_path("IP", "string", ".status.ip", ""),
];

const CILIUM_LB_IP_POOL: &[Column] = &[
    NAME,
    Column::json_path("Disabled", "boolean", ".spec.disabled", ""),
    Column::json_path(
        "Conflicting",
        "string",
        r#".status.conditions[?(@.type=="cilium.io/PoolConflict")].status"#,
        "",
    ),
    Column::json_path(
        "IPs Available",
        "string",
        r#".status.conditions[?(@.type=="cilium.io/IPsAvailable")].message"#,
        "",
    ),
    AGE,
];

/// The cell of a printer column: the first result of `path` on the
/// object, as the column's type; null when there is none or it has
/// another type.
pub(super) fn cell(type_: &str, path: &str, object: &Value, now: Timestamp) -> Value {
    let Some(value) = first(object, path) else {
        return Value::Null;
    };
    match type_ {
        "string" => printed(value).map_or(Value::Null, Value::from),
        "integer" => value
            .as_i64()
            .or_else(|| value.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        "number" => value.as_f64().map_or(Value::Null, Value::from),
        "boolean" => value.as_bool().map_or(Value::Null, Value::from),
        "date" => value
            .as_str()
            .map_or(Value::Null, |text| date(text, now).into()),
        _ => Value::Null,
    }
}

/// A `date` cell: the age of an RFC 3339 time, `<invalid>` when it does
/// not parse, `<unknown>` when empty.
fn date(text: &str, now: Timestamp) -> String {
    if text.is_empty() {
        return since(None, now);
    }
    text.parse()
        .map_or_else(|_| "<invalid>".into(), |t| since(Some(t), now))
}

/// A value as JSONPath prints it: strings as they are, numbers and
/// booleans in JSON, lists and maps as compact JSON.
fn printed(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// One step of a JSONPath.
#[derive(Debug, PartialEq)]
enum Step {
    /// `.name` (dots in the name escaped as `\.`).
    Field(String),
    /// `[3]`.
    Index(usize),
    /// `[?(@.a.b=="value")]`: the list items whose field equals value.
    Filter(Vec<Step>, String),
}

/// The first value `path` finds in `object` (`None` when it finds none
/// or does not parse).
fn first<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    evaluate(object, &parse(path)?).into_iter().next()
}

/// Every value a parsed path finds, in document order; nulls are absent.
fn evaluate<'a>(object: &'a Value, steps: &[Step]) -> Vec<&'a Value> {
    let mut current = vec![object];
    for step in steps {
        current = current
            .into_iter()
            .flat_map(|value| apply(step, value))
            .filter(|value| !value.is_null())
            .collect();
    }
    current
}

fn apply<'a>(step: &Step, value: &'a Value) -> Vec<&'a Value> {
    match step {
        Step::Field(name) => value.get(name).into_iter().collect(),
        Step::Index(index) => value.get(index).into_iter().collect(),
        Step::Filter(field, expected) => value
            .as_array()
            .into_iter()
            .flatten()
            .filter(|item| {
                let found = evaluate(item, field).into_iter().next();
                found.and_then(printed).as_deref() == Some(expected.as_str())
            })
            .collect(),
    }
}

/// Parses `.a.b[0].c[?(@.type=="X")].d`.
fn parse(path: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(tail) = rest.strip_prefix('.') {
            let (name, tail) = field_name(tail);
            steps.push(Step::Field(name));
            rest = tail;
        } else if let Some(tail) = rest.strip_prefix('[') {
            let end = tail.find(']')?;
            steps.push(bracket(&tail[..end])?);
            rest = &tail[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// A field name up to the next unescaped `.` or `[`, and the rest.
fn field_name(path: &str) -> (String, &str) {
    let mut name = String::new();
    let mut chars = path.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => name.extend(chars.next().map(|(_, escaped)| escaped)),
            '.' | '[' => return (name, &path[at..]),
            _ => name.push(c),
        }
    }
    (name, "")
}

/// The inside of `[...]`: an index or a `?(@.field=="value")` filter.
fn bracket(inside: &str) -> Option<Step> {
    let Some(filter) = inside.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) else {
        return inside.trim().parse().ok().map(Step::Index);
    };
    let (field, value) = filter.split_once("==")?;
    let field = parse(field.trim().strip_prefix('@')?)?;
    let value = value.trim();
    let unquoted = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    Some(Step::Filter(field, unquoted.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{cells, headers, row_text};
    use super::*;

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse(r#".spec.addresses[?(@.type=="InternalIP")].ip"#),
            Some(vec![
                Step::Field("spec".into()),
                Step::Field("addresses".into()),
                Step::Filter(vec![Step::Field("type".into())], "InternalIP".into()),
                Step::Field("ip".into()),
            ])
        );
        assert_eq!(
            parse(r".metadata.labels.io\.kubernetes\.pod\.namespace"),
            Some(vec![
                Step::Field("metadata".into()),
                Step::Field("labels".into()),
                Step::Field("io.kubernetes.pod.namespace".into()),
            ])
        );
        assert_eq!(
            parse(".a[0].b"),
            Some(vec![
                Step::Field("a".into()),
                Step::Index(0),
                Step::Field("b".into())
            ])
        );
        assert_eq!(parse("a.b"), None);
        assert_eq!(parse(".a[x]"), None);
        assert_eq!(parse(".a[0"), None);
    }

    #[test]
    fn cells_are_typed_by_column() {
        let now = "2025-03-01T12:00:00Z".parse().unwrap();
        let o = json!({"n": 5, "f": 2.0, "b": true, "s": "x", "t": "2025-03-01T11:00:00Z",
            "bad": "yesterday", "list": [1, 2], "null": null});
        assert_eq!(cell("integer", ".n", &o, now), json!(5));
        assert_eq!(cell("integer", ".f", &o, now), json!(2));
        assert_eq!(cell("integer", ".s", &o, now), Value::Null);
        assert_eq!(cell("number", ".n", &o, now), json!(5.0));
        assert_eq!(cell("boolean", ".b", &o, now), json!(true));
        assert_eq!(cell("boolean", ".s", &o, now), Value::Null);
        assert_eq!(cell("string", ".n", &o, now), json!("5"));
        assert_eq!(cell("string", ".b", &o, now), json!("true"));
        assert_eq!(cell("string", ".list", &o, now), json!("[1,2]"));
        assert_eq!(cell("string", ".null", &o, now), Value::Null);
        assert_eq!(cell("string", ".missing.deeper", &o, now), Value::Null);
        assert_eq!(cell("date", ".t", &o, now), json!("60m"));
        assert_eq!(cell("date", ".bad", &o, now), json!("<invalid>"));
    }

    #[test]
    fn filters_take_the_first_match() {
        let o = json!({"items": [{"type": "A", "v": 1}, {"type": "B", "v": 2},
            {"type": "B", "v": 3}, {"kind": "B"}]});
        assert_eq!(first(&o, r#".items[?(@.type=="B")].v"#), Some(&json!(2)));
        assert_eq!(first(&o, ".items[?(@.type=='A')].v"), Some(&json!(1)));
        assert_eq!(first(&o, ".items[?(@.type=='C')].v"), None);
        assert_eq!(first(&o, ".items[3].kind"), Some(&json!("B")));
        assert_eq!(first(&o, ".items[9]"), None);
    }

    #[test]
    fn cilium_node() {
        assert_eq!(
            headers("CiliumNode"),
            "Name|CiliumInternalIP|InternalIP|Age"
        );
        let node = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNode",
            "metadata": {"name": "k8s-ctr", "creationTimestamp": "2025-03-01T09:59:00Z"},
            "spec": {"addresses": [
                {"type": "InternalIP", "ip": "192.168.10.100"},
                {"type": "CiliumInternalIP", "ip": "172.20.0.172"}]}});
        assert_eq!(
            row_text("CiliumNode", node),
            r#"["k8s-ctr","172.20.0.172","192.168.10.100","121m"]"#
        );
        let bare = json!({"metadata": {"name": "k8s-w1"}, "spec": {}});
        assert_eq!(row_text("CiliumNode", bare), r#"["k8s-w1",null,null,null]"#);
    }

    #[test]
    fn cilium_endpoint() {
        assert_eq!(
            headers("CiliumEndpoint"),
            "Name|Security Identity|Ingress Enforcement*|Egress Enforcement*|Visibility Policy*|Endpoint State|IPv4|IPv6"
        );
        let cep = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumEndpoint",
            "metadata": {"name": "curl-pod", "namespace": "default"},
            "status": {"id": 1234, "identity": {"id": 58696, "labels": ["k8s:app=curl"]},
                "policy": {"ingress": {"enforcing": false, "state": "<status disabled>"},
                    "egress": {"enforcing": false, "state": "<status disabled>"}},
                "state": "ready",
                "networking": {"addressing": [{"ipv4": "172.20.0.217"}], "node": "192.168.10.100"}}});
        assert_eq!(
            row_text("CiliumEndpoint", cep),
            r#"["curl-pod",58696,"<status disabled>","<status disabled>",null,"ready","172.20.0.217",null]"#
        );
    }

    #[test]
    fn cilium_identity_and_external_workload() {
        let identity = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumIdentity",
            "metadata": {"name": "12564", "creationTimestamp": "2025-02-27T09:00:00Z",
                "labels": {"app": "webpod", "io.kubernetes.pod.namespace": "default"}},
            "security-labels": {"k8s:app": "webpod"}});
        assert_eq!(
            row_text("CiliumIdentity", identity),
            r#"["12564","default","2d3h"]"#
        );
        assert_eq!(headers("CiliumExternalWorkload"), "Name|Cilium ID|IP");
        let workload = json!({"metadata": {"name": "vm1"},
            "status": {"id": 71234, "ip": "192.168.10.50"}});
        assert_eq!(
            row_text("CiliumExternalWorkload", workload),
            r#"["vm1",71234,"192.168.10.50"]"#
        );
    }

    #[test]
    fn load_balancer_ip_pool() {
        assert_eq!(
            headers("CiliumLoadBalancerIPPool"),
            "Name|Disabled|Conflicting|IPs Available|Age"
        );
        let pool = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumLoadBalancerIPPool",
            "metadata": {"name": "cilium-pool", "creationTimestamp": "2025-03-01T11:51:35Z"},
            "spec": {"blocks": [{"cidr": "192.168.10.208/28"}], "disabled": false},
            "status": {"conditions": [
                {"type": "cilium.io/IPsTotal", "status": "Unknown", "message": "254"},
                {"type": "cilium.io/IPsAvailable", "status": "Unknown", "message": "253"},
                {"type": "cilium.io/PoolConflict", "status": "False", "reason": "resolved"}]}});
        assert_eq!(
            row_text("CiliumLoadBalancerIPPool", pool),
            r#"["cilium-pool",false,"False","253","8m25s"]"#
        );
    }

    #[test]
    fn policies_show_validity() {
        assert_eq!(headers("CiliumNetworkPolicy"), "Name|Age|Valid");
        assert_eq!(headers("CiliumClusterwideNetworkPolicy"), "Name|Valid");
        let cnp = json!({"metadata": {"name": "allow-dns", "namespace": "default",
                "creationTimestamp": "2025-03-01T11:00:00Z"},
            "status": {"conditions": [{"type": "Valid", "status": "True",
                "reason": "Valid", "message": "Policy validation succeeded"}]}});
        assert_eq!(
            row_text("CiliumNetworkPolicy", cnp.clone()),
            r#"["allow-dns","60m","True"]"#
        );
        assert_eq!(
            row_text("CiliumClusterwideNetworkPolicy", cnp),
            r#"["allow-dns","True"]"#
        );
    }

    #[test]
    fn age_only_kinds() {
        for kind in [
            "CiliumL2AnnouncementPolicy",
            "CiliumLocalRedirectPolicy",
            "CiliumBGPClusterConfig",
            "CiliumBGPPeerConfig",
            "CiliumBGPAdvertisement",
            "CiliumBGPNodeConfig",
            "CiliumBGPNodeConfigOverride",
            "CiliumCIDRGroup",
            "CiliumNodeConfig",
            "CiliumPodIPPool",
        ] {
            assert_eq!(headers(kind), "Name|Age", "{kind}");
            let object = json!({"metadata": {"name": "bgp",
                "creationTimestamp": "2025-02-28T12:00:00Z"}});
            assert_eq!(cells(kind, object), [json!("bgp"), json!("24h")], "{kind}");
        }
    }
}
