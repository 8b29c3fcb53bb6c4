//! Kubernetes built-in kinds the cluster serves (types from `k8s-openapi`):
//! their [`ResourceType`] facts and API-server-like semantic validation.
//! Only the rules users hit in practice are checked; the API server's full
//! rule set is out of scope.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, Node, Pod, PodSpec, Secret, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::ResourceType;
use crate::validation::{self as v, Check, NameRule, Path};

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

pub(crate) const fn builtin(
    kind: &'static str,
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    namespaced: bool,
) -> ResourceType {
    ResourceType {
        kind,
        group,
        version: "v1",
        served: &["v1"],
        plural,
        singular,
        short_names,
        namespaced,
    }
}

impl_object!(
    Namespace,
    builtin("Namespace", "", "namespaces", "namespace", &["ns"], false),
    |o: &Namespace| v::object_meta(&o.metadata, NameRule::Label)
);

impl_object!(
    Node,
    builtin("Node", "", "nodes", "node", &["no"], false),
    validate_node
);

impl_object!(
    Pod,
    builtin("Pod", "", "pods", "pod", &["po"], true),
    validate_pod
);

impl_object!(
    Service,
    builtin("Service", "", "services", "service", &["svc"], true),
    validate_service
);

impl_object!(
    Deployment,
    builtin(
        "Deployment",
        "apps",
        "deployments",
        "deployment",
        &["deploy"],
        true
    ),
    validate_deployment
);

impl_object!(
    EndpointSlice,
    builtin(
        "EndpointSlice",
        "discovery.k8s.io",
        "endpointslices",
        "endpointslice",
        &[],
        true
    ),
    validate_endpoint_slice
);

impl_object!(
    ConfigMap,
    builtin("ConfigMap", "", "configmaps", "configmap", &["cm"], true),
    |o: &ConfigMap| {
        v::object_meta(&o.metadata, NameRule::Subdomain)?;
        let data = o.data.iter().flat_map(|d| d.keys());
        let binary = o.binary_data.iter().flat_map(|d| d.keys());
        data_keys(data, binary)
    }
);

impl_object!(
    Secret,
    builtin("Secret", "", "secrets", "secret", &[], true),
    |o: &Secret| {
        v::object_meta(&o.metadata, NameRule::Subdomain)?;
        let data = o.data.iter().flat_map(|d| d.keys());
        let strings = o.string_data.iter().flat_map(|d| d.keys());
        data_keys(data, strings)
    }
);

impl_object!(
    Lease,
    builtin("Lease", "coordination.k8s.io", "leases", "lease", &[], true),
    |o: &Lease| {
        v::object_meta(&o.metadata, NameRule::Subdomain)?;
        match o.spec.as_ref().and_then(|s| s.lease_duration_seconds) {
            Some(d) => v::in_range(
                &Path::root("spec").field("leaseDurationSeconds"),
                d.into(),
                1,
                i64::MAX,
            ),
            None => Ok(()),
        }
    }
);

/// Keys of ConfigMap/Secret data: `[-._a-zA-Z0-9]+`, unique across both maps.
fn data_keys<'a>(
    first: impl Iterator<Item = &'a String>,
    second: impl Iterator<Item = &'a String>,
) -> Check {
    let mut seen = BTreeSet::new();
    for key in first.chain(second) {
        let path = Path::root("data").key(key);
        let ok = !key.is_empty()
            && key.len() <= 253
            && key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
        if !ok {
            return Err(path.invalid(
                key,
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name')",
            ));
        }
        if !seen.insert(key) {
            return Err(path.duplicate(key));
        }
    }
    Ok(())
}

fn validate_node(node: &Node) -> Check {
    v::object_meta(&node.metadata, NameRule::Subdomain)?;
    let Some(spec) = &node.spec else {
        return Ok(());
    };
    let spec_path = Path::root("spec");
    if let Some(c) = &spec.pod_cidr {
        v::cidr(&spec_path.field("podCIDR"), c)?;
    }
    for (i, c) in spec.pod_cidrs.iter().flatten().enumerate() {
        v::cidr(&spec_path.field("podCIDRs").index(i), c)?;
    }
    Ok(())
}

fn validate_pod(pod: &Pod) -> Check {
    v::object_meta(&pod.metadata, NameRule::Subdomain)?;
    match &pod.spec {
        Some(spec) => pod_spec(&Path::root("spec"), spec),
        None => Err(Path::root("spec").required("")),
    }
}

fn pod_spec(path: &Path, spec: &PodSpec) -> Check {
    if spec.containers.is_empty() {
        return Err(path.field("containers").required(""));
    }
    let init = spec.init_containers.iter().flatten();
    let mut names = BTreeSet::new();
    let all = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (path.field("containers").index(i), c))
        .chain(
            init.enumerate()
                .map(|(i, c)| (path.field("initContainers").index(i), c)),
        );
    for (p, c) in all {
        container(&p, c)?;
        if !names.insert(c.name.as_str()) {
            return Err(p.field("name").duplicate(&c.name));
        }
    }
    if let Some(policy) = &spec.restart_policy {
        v::one_of(
            &path.field("restartPolicy"),
            policy,
            &["Always", "OnFailure", "Never"],
        )?;
    }
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        v::subdomain_name(&path.field("nodeName"), node)?;
    }
    if let Some(g) = spec.termination_grace_period_seconds {
        v::in_range(&path.field("terminationGracePeriodSeconds"), g, 0, i64::MAX)?;
    }
    Ok(())
}

fn container(path: &Path, c: &Container) -> Check {
    if c.name.is_empty() {
        return Err(path.field("name").required(""));
    }
    v::label_name(&path.field("name"), &c.name)?;
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        return Err(path.field("image").required(""));
    }
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let p = path.field("ports").index(i);
        v::port(&p.field("containerPort"), port.container_port.into())?;
        if let Some(host) = port.host_port.filter(|h| *h != 0) {
            v::port(&p.field("hostPort"), host.into())?;
        }
        if let Some(proto) = &port.protocol {
            v::one_of(&p.field("protocol"), proto, PROTOCOLS)?;
        }
        if let Some(name) = &port.name {
            v::port_name(&p.field("name"), name)?;
        }
    }
    Ok(())
}

fn validate_deployment(d: &Deployment) -> Check {
    v::object_meta(&d.metadata, NameRule::Subdomain)?;
    let path = Path::root("spec");
    let Some(spec) = &d.spec else {
        return Err(path.required(""));
    };
    if let Some(r) = spec.replicas {
        v::in_range(&path.field("replicas"), r.into(), 0, i64::MAX)?;
    }
    let selector = &spec.selector;
    let sel_path = path.field("selector");
    if selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|m| m.is_empty())
    {
        return Err(sel_path.invalid(
            selector.match_labels.clone().unwrap_or_default(),
            "empty selector is invalid for deployment",
        ));
    }
    v::label_selector(&sel_path, selector)?;
    let template = path.field("template");
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    v::labels(&template.field("metadata").field("labels"), &labels)?;
    if !toolkit::selector::label_selector_matches(selector, &labels) {
        return Err(template
            .field("metadata")
            .field("labels")
            .invalid(&labels, "`selector` does not match template `labels`"));
    }
    let Some(pod) = &spec.template.spec else {
        return Err(template.field("spec").required(""));
    };
    pod_spec(&template.field("spec"), pod)?;
    if let Some(policy) = pod.restart_policy.as_deref().filter(|p| *p != "Always") {
        return Err(template
            .field("spec")
            .field("restartPolicy")
            .unsupported(policy, &["Always"]));
    }
    if let Some(t) = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) {
        v::one_of(
            &path.field("strategy").field("type"),
            t,
            &["Recreate", "RollingUpdate"],
        )?;
    }
    Ok(())
}

fn validate_service(svc: &Service) -> Check {
    v::object_meta(&svc.metadata, NameRule::Rfc1035)?;
    let path = Path::root("spec");
    let Some(spec) = &svc.spec else {
        return Err(path.required(""));
    };
    let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
    v::one_of(
        &path.field("type"),
        ty,
        &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
    )?;
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if let Some(ip) = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty()) {
        cluster_ip(&path.field("clusterIP"), ip)?;
    }
    for (i, ip) in spec.cluster_ips.iter().flatten().enumerate() {
        cluster_ip(&path.field("clusterIPs").index(i), ip)?;
    }
    if ty == "ExternalName" {
        if spec.external_name.as_deref().is_none_or(str::is_empty) {
            return Err(path.field("externalName").required(""));
        }
    } else if !headless && spec.ports.as_ref().is_none_or(Vec::is_empty) {
        return Err(path.field("ports").required(""));
    }
    if headless && matches!(ty, "NodePort" | "LoadBalancer") {
        return Err(path.field("clusterIP").invalid(
            "None",
            format!("may not be set to 'None' for {ty} services"),
        ));
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.field("ports").index(i);
        let name = port.name.as_deref().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            return Err(p.field("name").required(""));
        }
        if !name.is_empty() {
            v::label_name(&p.field("name"), name)?;
            if !names.insert(name) {
                return Err(p.field("name").duplicate(name));
            }
        }
        v::port(&p.field("port"), port.port.into())?;
        match &port.target_port {
            Some(IntOrString::Int(t)) if *t != 0 => v::port(&p.field("targetPort"), (*t).into())?,
            Some(IntOrString::String(s)) => v::port_name(&p.field("targetPort"), s)?,
            _ => {}
        }
        if let Some(n) = port.node_port.filter(|n| *n != 0) {
            v::port(&p.field("nodePort"), n.into())?;
        }
        if let Some(proto) = &port.protocol {
            v::one_of(&p.field("protocol"), proto, PROTOCOLS)?;
        }
    }
    if let Some(a) = &spec.session_affinity {
        v::one_of(&path.field("sessionAffinity"), a, &["ClientIP", "None"])?;
    }
    if let Some(p) = &spec.external_traffic_policy {
        v::one_of(
            &path.field("externalTrafficPolicy"),
            p,
            &["Cluster", "Local"],
        )?;
    }
    if let Some(p) = &spec.internal_traffic_policy {
        v::one_of(
            &path.field("internalTrafficPolicy"),
            p,
            &["Cluster", "Local"],
        )?;
    }
    if let Some(sel) = &spec.selector {
        v::labels(&path.field("selector"), sel)?;
    }
    Ok(())
}

fn cluster_ip(path: &Path, ip: &str) -> Check {
    if ip == "None" {
        return Ok(());
    }
    v::ip(path, ip).map(drop).map_err(|_| {
        path.invalid(
            ip,
            "must be empty, 'None', or a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        )
    })
}

fn validate_endpoint_slice(slice: &EndpointSlice) -> Check {
    v::object_meta(&slice.metadata, NameRule::Subdomain)?;
    let ty = slice.address_type.as_str();
    v::one_of(&Path::root("addressType"), ty, &["FQDN", "IPv4", "IPv6"])?;
    for (i, ep) in slice.endpoints.iter().enumerate() {
        let p = Path::root("endpoints").index(i).field("addresses");
        if ep.addresses.is_empty() {
            return Err(p.required("must contain at least 1 address"));
        }
        for (j, addr) in ep.addresses.iter().enumerate() {
            let p = p.index(j);
            match (ty, addr.parse::<std::net::IpAddr>()) {
                ("IPv4", Ok(std::net::IpAddr::V4(_))) | ("IPv6", Ok(std::net::IpAddr::V6(_))) => {}
                ("FQDN", _) => v::subdomain_name(&p, addr)?,
                _ => return Err(p.invalid(addr, format!("must be a valid {ty} address"))),
            }
        }
    }
    for (i, port) in slice.ports.iter().flatten().enumerate() {
        let p = Path::root("ports").index(i);
        if let Some(n) = port.port {
            v::in_range(&p.field("port"), n.into(), 0, 65535)?;
        }
        if let Some(proto) = &port.protocol {
            v::one_of(&p.field("protocol"), proto, PROTOCOLS)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Object;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("pod fixture deserializes")
    }

    fn err<T: Object>(obj: &T) -> String {
        obj.validate()
            .expect_err("validation must fail")
            .to_string()
    }

    fn base_pod() -> serde_json::Value {
        json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web", "image": "nginx",
                "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}
        })
    }

    #[test]
    fn resource_type_facts() {
        assert_eq!(Pod::TYPE.api_version(), "v1");
        assert_eq!(Deployment::TYPE.api_version(), "apps/v1");
        assert_eq!(Deployment::TYPE.qualified_singular(), "deployment.apps");
        assert_eq!(EndpointSlice::TYPE.api_version(), "discovery.k8s.io/v1");
        assert_eq!(Lease::TYPE.api_version(), "coordination.k8s.io/v1");
        assert!(Service::TYPE.matches_name("svc"));
        assert!(Node::TYPE.matches_name("no"));
        assert_eq!(
            Node::TYPE.key(Some("ignored"), "k8s-w1"),
            "/registry/nodes/k8s-w1"
        );
        assert!(ConfigMap::TYPE.matches_name("cm"));
        assert_eq!(
            Pod::TYPE.key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
    }

    #[test]
    fn pod_rules() {
        assert_eq!(pod(base_pod()).validate(), Ok(()));
        let mut p = base_pod();
        p["metadata"]["name"] = json!("Web_Pod");
        assert!(err(&pod(p)).starts_with(
            "metadata.name: Invalid value: \"Web_Pod\": a lowercase RFC 1123 subdomain must consist of"
        ));
        let mut p = base_pod();
        p["metadata"] = json!({});
        assert_eq!(
            err(&pod(p)),
            "metadata.name: Required value: name or generateName is required"
        );
        let mut p = base_pod();
        p["spec"]["containers"] = json!([]);
        assert_eq!(err(&pod(p)), "spec.containers: Required value");
        let mut p = base_pod();
        p["spec"]["containers"][0]["image"] = json!("");
        assert_eq!(err(&pod(p)), "spec.containers[0].image: Required value");
        let mut p = base_pod();
        p["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(0);
        assert_eq!(
            err(&pod(p)),
            "spec.containers[0].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive"
        );
        let mut p = base_pod();
        p["spec"]["containers"][0]["ports"][0]["protocol"] = json!("HTTP");
        assert_eq!(
            err(&pod(p)),
            r#"spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP""#
        );
        let mut p = base_pod();
        let c = p["spec"]["containers"][0].clone();
        p["spec"]["containers"] = json!([c.clone(), c]);
        assert_eq!(
            err(&pod(p)),
            r#"spec.containers[1].name: Duplicate value: "web""#
        );
        let mut p = base_pod();
        p["spec"]["restartPolicy"] = json!("Sometimes");
        assert!(err(&pod(p)).starts_with("spec.restartPolicy: Unsupported value"));
    }

    fn deployment(value: serde_json::Value) -> Deployment {
        serde_json::from_value(value).expect("deployment fixture deserializes")
    }

    fn base_deployment() -> serde_json::Value {
        json!({
            "metadata": {"name": "webpod"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "webpod"}},
                "template": {"metadata": {"labels": {"app": "webpod"}},
                    "spec": {"containers": [{"name": "w", "image": "traefik/whoami"}]}}}
        })
    }

    #[test]
    fn deployment_rules() {
        assert_eq!(deployment(base_deployment()).validate(), Ok(()));
        let mut d = base_deployment();
        d["spec"]["replicas"] = json!(-1);
        assert_eq!(
            err(&deployment(d)),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let mut d = base_deployment();
        d["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
        assert_eq!(
            err(&deployment(d)),
            r#"spec.template.metadata.labels: Invalid value: {"app": "other"}: `selector` does not match template `labels`"#
        );
        let mut d = base_deployment();
        d["spec"]["selector"] = json!({});
        assert!(err(&deployment(d)).starts_with("spec.selector: Invalid value"));
        let mut d = base_deployment();
        d["spec"]["template"]["spec"]["containers"][0]["name"] = json!("");
        assert_eq!(
            err(&deployment(d)),
            "spec.template.spec.containers[0].name: Required value"
        );
        let mut d = base_deployment();
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert!(err(&deployment(d)).starts_with("spec.template.spec.restartPolicy: Unsupported"));
    }

    fn service(value: serde_json::Value) -> Service {
        serde_json::from_value(value).expect("service fixture deserializes")
    }

    fn base_service() -> serde_json::Value {
        json!({
            "metadata": {"name": "webpod"},
            "spec": {"selector": {"app": "webpod"},
                "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}
        })
    }

    #[test]
    fn service_rules() {
        assert_eq!(service(base_service()).validate(), Ok(()));
        let mut s = base_service();
        s["spec"]["type"] = json!("Magic");
        assert!(err(&service(s)).starts_with(r#"spec.type: Unsupported value: "Magic""#));
        let mut s = base_service();
        s["spec"]["clusterIP"] = json!("10.96.0.300");
        assert!(err(&service(s)).starts_with(r#"spec.clusterIP: Invalid value: "10.96.0.300""#));
        for ok in ["None", "10.96.0.10", "fd00::10", ""] {
            let mut s = base_service();
            s["spec"]["clusterIP"] = json!(ok);
            assert_eq!(service(s).validate(), Ok(()), "clusterIP {ok:?}");
        }
        let mut s = base_service();
        s["spec"]["ports"][0]["port"] = json!(65536);
        assert!(err(&service(s)).starts_with("spec.ports[0].port: Invalid value: 65536"));
        let mut s = base_service();
        s["spec"]["ports"][0]["targetPort"] = json!("Not A Name");
        assert!(err(&service(s)).starts_with("spec.ports[0].targetPort: Invalid value"));
        let mut s = base_service();
        s["spec"]["ports"] = json!([{"port": 80}, {"port": 81}]);
        assert_eq!(err(&service(s)), "spec.ports[0].name: Required value");
        let mut s = base_service();
        s["metadata"]["name"] = json!("1web");
        assert!(err(&service(s)).contains("DNS-1035 label"));
        let mut s = base_service();
        s["spec"] = json!({"type": "ExternalName"});
        assert_eq!(err(&service(s)), "spec.externalName: Required value");
    }

    #[test]
    fn other_builtin_rules() {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "a.b"}})).unwrap();
        assert!(
            err(&ns)
                .starts_with("metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label")
        );
        let node: Node = serde_json::from_value(
            json!({"metadata": {"name": "k8s-w1"}, "spec": {"podCIDR": "10.244.1.0/33"}}),
        )
        .unwrap();
        assert!(err(&node).starts_with("spec.podCIDR: Invalid value"));
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"bad key": "x"}}))
                .unwrap();
        assert!(err(&cm).starts_with("data[bad key]: Invalid value"));
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["fd00::1"]}]
        }))
        .unwrap();
        assert_eq!(
            err(&slice),
            r#"endpoints[0].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address"#
        );
        let lease: Lease = serde_json::from_value(
            json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}}),
        )
        .unwrap();
        assert!(err(&lease).starts_with("spec.leaseDurationSeconds: Invalid value: 0"));
    }
}
