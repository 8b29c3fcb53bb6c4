//! `CiliumNetworkPolicy` (namespaced, short `cnp`) and
//! `CiliumClusterwideNetworkPolicy` (cluster-scoped, short `ccnp`), both
//! cilium.io/v2: one rule in `spec` and/or a list in `specs`. Peers
//! (endpoints, CIDRs, entities, FQDNs, services), ports and L7 rules keep
//! upstream's field names; entity names and L7 protocols stay strings.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

use super::{PortString, crd};
use crate::validation::{self as v, Check, NameRule, Path};

/// A namespaced network policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumNetworkPolicy {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// A single rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<Rule>,
    /// Several rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub specs: Option<Vec<Rule>>,
}

cilium_object!(
    CiliumNetworkPolicy,
    crd(
        "CiliumNetworkPolicy",
        "ciliumnetworkpolicies",
        "ciliumnetworkpolicy",
        &["cnp", "ciliumnp"],
        true,
        "v2",
        &["v2"]
    ),
    |p: &CiliumNetworkPolicy| validate(&p.metadata, &p.spec, &p.specs, false)
);

/// A cluster-wide network policy (may select nodes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumClusterwideNetworkPolicy {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// A single rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<Rule>,
    /// Several rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub specs: Option<Vec<Rule>>,
}

cilium_object!(
    CiliumClusterwideNetworkPolicy,
    crd(
        "CiliumClusterwideNetworkPolicy",
        "ciliumclusterwidenetworkpolicies",
        "ciliumclusterwidenetworkpolicy",
        &["ccnp"],
        false,
        "v2",
        &["v2"]
    ),
    |p: &CiliumClusterwideNetworkPolicy| validate(&p.metadata, &p.spec, &p.specs, true)
);

/// One policy rule: which endpoints (or nodes) it applies to and what
/// they may receive and send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Endpoints the rule applies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_selector: Option<LabelSelector>,
    /// Nodes the rule applies to (cluster-wide policies only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// Allowed ingress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<IngressRule>>,
    /// Denied ingress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_deny: Option<Vec<IngressRule>>,
    /// Allowed egress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<EgressRule>>,
    /// Denied egress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_deny: Option<Vec<EgressRule>>,
    /// Labels identifying the rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<PolicyLabel>>,
    /// Whether selecting an endpoint switches it to default deny.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_default_deny: Option<DefaultDeny>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A label attached to a rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyLabel {
    /// Key.
    #[serde(default)]
    pub key: String,
    /// Value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Source (`k8s`, `unspec`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Default-deny switches per direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultDeny {
    /// Ingress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<bool>,
    /// Egress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<bool>,
}

/// Sources allowed (or denied) to reach the selected endpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// Source endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_endpoints: Option<Vec<LabelSelector>>,
    /// Requirements every source must also meet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_requires: Option<Vec<LabelSelector>>,
    /// Source CIDRs.
    #[serde(rename = "fromCIDR", skip_serializing_if = "Option::is_none")]
    pub from_cidr: Option<Vec<String>>,
    /// Source CIDRs with exceptions.
    #[serde(rename = "fromCIDRSet", skip_serializing_if = "Option::is_none")]
    pub from_cidr_set: Option<Vec<CidrRule>>,
    /// Source entities (`world`, `cluster`, `host`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_entities: Option<Vec<String>>,
    /// Source nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_nodes: Option<Vec<LabelSelector>>,
    /// Destination ports on the selected endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
    /// ICMP types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
    /// Mutual authentication requirement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
}

/// Destinations the selected endpoints may (or may not) reach.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    /// Destination endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_endpoints: Option<Vec<LabelSelector>>,
    /// Requirements every destination must also meet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_requires: Option<Vec<LabelSelector>>,
    /// Destination CIDRs.
    #[serde(rename = "toCIDR", skip_serializing_if = "Option::is_none")]
    pub to_cidr: Option<Vec<String>>,
    /// Destination CIDRs with exceptions.
    #[serde(rename = "toCIDRSet", skip_serializing_if = "Option::is_none")]
    pub to_cidr_set: Option<Vec<CidrRule>>,
    /// Destination entities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_entities: Option<Vec<String>>,
    /// Destination nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_nodes: Option<Vec<LabelSelector>>,
    /// Destination services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_services: Option<Vec<ServiceRef>>,
    /// Destination DNS names.
    #[serde(rename = "toFQDNs", skip_serializing_if = "Option::is_none")]
    pub to_fqdns: Option<Vec<FqdnSelector>>,
    /// Destination ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
    /// ICMP types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
    /// Mutual authentication requirement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
}

/// A CIDR with exceptions, or a reference to CiliumCIDRGroups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CidrRule {
    /// The CIDR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// Name of a CiliumCIDRGroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidr_group_ref: Option<String>,
    /// Selector over CiliumCIDRGroups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidr_group_selector: Option<LabelSelector>,
    /// Sub-CIDRs excluded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub except: Option<Vec<String>>,
}

/// Ports and optional L7 rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortRule {
    /// Ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortProtocol>>,
    /// L7 rules applied on these ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<L7Rules>,
    /// TLS server names (SNI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_names: Option<Vec<String>>,
}

/// A port (number or name), optional range end and protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortProtocol {
    /// Port number or name; `"0"` means every port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<PortString>,
    /// End of a port range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i32>,
    /// `TCP`, `UDP`, `SCTP` or `ANY` (default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// L7 rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L7Rules {
    /// HTTP rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<HttpRule>>,
    /// DNS rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<FqdnSelector>>,
    /// Name of a generic L7 parser.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l7proto: Option<String>,
    /// Generic key/value L7 rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l7: Option<Vec<std::collections::BTreeMap<String, String>>>,
}

/// An HTTP rule (regexes over method, path, host; required headers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRule {
    /// Method regex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path regex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Host regex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Required headers (`Name: value`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<String>>,
}

/// A DNS name or pattern (`*.example.com`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FqdnSelector {
    /// Exact name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_name: Option<String>,
    /// Pattern with `*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_pattern: Option<String>,
}

/// A reference to services by name or selector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    /// One service by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s_service: Option<ServiceName>,
    /// Services by label selector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s_service_selector: Option<ServiceSelector>,
}

/// A service name and namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceName {
    /// Service name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Services chosen by labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceSelector {
    /// Label selector.
    #[serde(default)]
    pub selector: LabelSelector,
    /// Namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// ICMP match fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IcmpRule {
    /// Family and type pairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<IcmpField>>,
}

/// One ICMP type in one family.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IcmpField {
    /// `IPv4` (default) or `IPv6`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Type number or name (`8`, `EchoRequest`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<IntOrString>,
}

/// Authentication requirement of a peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authentication {
    /// `disabled`, `required`, `test-always-fail`, kept as given.
    #[serde(default)]
    pub mode: String,
}

const PROTOCOLS: &[&str] = &["ANY", "SCTP", "TCP", "UDP"];

fn validate(
    meta: &ObjectMeta,
    spec: &Option<Rule>,
    specs: &Option<Vec<Rule>>,
    clusterwide: bool,
) -> Check {
    v::object_meta(meta, NameRule::Subdomain)?;
    if spec.is_none() && specs.as_ref().is_none_or(Vec::is_empty) {
        return Err(Path::root("spec").required("a policy needs spec or specs"));
    }
    let rules = spec.iter().map(|r| (Path::root("spec"), r)).chain(
        specs
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, r)| (Path::root("specs").index(i), r)),
    );
    for (path, rule) in rules {
        validate_rule(&path, rule, clusterwide)?;
    }
    Ok(())
}

fn validate_rule(path: &Path, rule: &Rule, clusterwide: bool) -> Check {
    match (&rule.endpoint_selector, &rule.node_selector) {
        (Some(_), Some(_)) => {
            return Err(path
                .field("nodeSelector")
                .forbidden("endpointSelector and nodeSelector are mutually exclusive"));
        }
        (None, None) => {
            return Err(path
                .field("endpointSelector")
                .required("one of endpointSelector or nodeSelector is required"));
        }
        (Some(sel), None) => v::label_selector(&path.field("endpointSelector"), sel)?,
        (None, Some(_)) if !clusterwide => {
            return Err(path
                .field("nodeSelector")
                .forbidden("only CiliumClusterwideNetworkPolicy may select nodes"));
        }
        (None, Some(sel)) => v::label_selector(&path.field("nodeSelector"), sel)?,
    }
    for (field, list) in [
        ("ingress", &rule.ingress),
        ("ingressDeny", &rule.ingress_deny),
    ] {
        for (i, r) in list.iter().flatten().enumerate() {
            let p = path.field(field).index(i);
            let selectors = [
                ("fromEndpoints", &r.from_endpoints),
                ("fromRequires", &r.from_requires),
                ("fromNodes", &r.from_nodes),
            ];
            peers(
                &p,
                selectors,
                ("fromCIDR", &r.from_cidr),
                ("fromCIDRSet", &r.from_cidr_set),
            )?;
            ports(&p, &r.to_ports)?;
        }
    }
    for (field, list) in [("egress", &rule.egress), ("egressDeny", &rule.egress_deny)] {
        for (i, r) in list.iter().flatten().enumerate() {
            let p = path.field(field).index(i);
            let selectors = [
                ("toEndpoints", &r.to_endpoints),
                ("toRequires", &r.to_requires),
                ("toNodes", &r.to_nodes),
            ];
            peers(
                &p,
                selectors,
                ("toCIDR", &r.to_cidr),
                ("toCIDRSet", &r.to_cidr_set),
            )?;
            ports(&p, &r.to_ports)?;
            for (j, f) in r.to_fqdns.iter().flatten().enumerate() {
                if f.match_name.is_none() && f.match_pattern.is_none() {
                    return Err(p
                        .field("toFQDNs")
                        .index(j)
                        .required("matchName or matchPattern is required"));
                }
            }
        }
    }
    Ok(())
}

type Selectors<'a> = [(&'static str, &'a Option<Vec<LabelSelector>>); 3];

/// Selector, CIDR and CIDR-set peers of one ingress or egress rule.
fn peers(
    path: &Path,
    selectors: Selectors<'_>,
    cidrs: (&str, &Option<Vec<String>>),
    sets: (&str, &Option<Vec<CidrRule>>),
) -> Check {
    for (field, list) in selectors {
        for (i, sel) in list.iter().flatten().enumerate() {
            v::label_selector(&path.field(field).index(i), sel)?;
        }
    }
    super::check::cidrs(&path.field(cidrs.0), cidrs.1.iter().flatten())?;
    for (i, set) in sets.1.iter().flatten().enumerate() {
        let p = path.field(sets.0).index(i);
        let given = [
            set.cidr.is_some(),
            set.cidr_group_ref.is_some(),
            set.cidr_group_selector.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(p.required("exactly one of cidr, cidrGroupRef or cidrGroupSelector"));
        }
        if let Some(c) = &set.cidr {
            let net = v::cidr(&p.field("cidr"), c)?;
            for (j, e) in set.except.iter().flatten().enumerate() {
                let ep = p.field("except").index(j);
                if !net.contains(&v::cidr(&ep, e)?) {
                    return Err(ep.invalid(e, format!("must be contained in {c}")));
                }
            }
        }
    }
    Ok(())
}

fn ports(path: &Path, rules: &Option<Vec<PortRule>>) -> Check {
    for (i, rule) in rules.iter().flatten().enumerate() {
        for (j, pp) in rule.ports.iter().flatten().enumerate() {
            let p = path.field("toPorts").index(i).field("ports").index(j);
            let start = match &pp.port {
                Some(port) if port.number().is_none() => {
                    v::port_name(&p.field("port"), &port.0)?;
                    None
                }
                Some(port) => {
                    super::check::port_string(&p.field("port"), port, 0)?;
                    port.number()
                }
                None => None,
            };
            if let Some(end) = pp.end_port {
                v::in_range(&p.field("endPort"), end.into(), 0, 65535)?;
                if let Some(start) = start.filter(|s| *s > 0 && i64::from(end) < i64::from(*s)) {
                    return Err(p.field("endPort").invalid(
                        end,
                        format!("must be greater than or equal to port {start}"),
                    ));
                }
            }
            if let Some(proto) = &pp.protocol {
                v::one_of(&p.field("protocol"), proto, PROTOCOLS)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cilium::test_support::{invalid, round_trip};

    fn sample() -> serde_json::Value {
        json!({
            "metadata": {"name": "allow-web", "namespace": "default"},
            "spec": {
                "endpointSelector": {"matchLabels": {"app": "webpod"}},
                "ingress": [{
                    "fromEndpoints": [{"matchLabels": {"app": "curl"}}],
                    "fromEntities": ["host", "remote-node"],
                    "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}],
                                 "rules": {"http": [{"method": "GET", "path": "/"}]}}]
                }],
                "egress": [{
                    "toCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.96.0.0/12"]}],
                    "toFQDNs": [{"matchPattern": "*.example.com"}],
                    "toPorts": [{"ports": [{"port": 53, "protocol": "ANY"}],
                                 "rules": {"dns": [{"matchPattern": "*"}]}}]
                }],
                "egressDeny": [{"toCIDR": ["192.168.0.0/16"]}]
            }
        })
    }

    #[test]
    fn round_trips_rules() {
        let p: CiliumNetworkPolicy = round_trip(sample());
        let spec = p.spec.as_ref().unwrap();
        let egress = &spec.egress.as_ref().unwrap()[0];
        assert_eq!(
            egress.to_ports.as_ref().unwrap()[0].ports.as_ref().unwrap()[0].port,
            Some(PortString::from("53"))
        );
        let out = serde_json::to_value(&p).unwrap();
        assert_eq!(
            out["spec"]["egress"][0]["toCIDRSet"][0]["except"][0],
            "10.96.0.0/12"
        );
        assert_eq!(out["spec"]["egressDeny"][0]["toCIDR"][0], "192.168.0.0/16");
        assert_eq!(
            out["spec"]["egress"][0]["toFQDNs"][0]["matchPattern"],
            "*.example.com"
        );

        let ccnp: CiliumClusterwideNetworkPolicy = round_trip(json!({
            "metadata": {"name": "host-fw"},
            "specs": [{"nodeSelector": {}, "ingress": [{"fromEntities": ["cluster"]}]}]
        }));
        assert!(ccnp.specs.as_ref().unwrap()[0].node_selector.is_some());
    }

    #[test]
    fn rejects_invalid_rules() {
        assert_eq!(
            invalid::<CiliumNetworkPolicy>(json!({"metadata": {"name": "p"}})),
            "spec: Required value: a policy needs spec or specs"
        );
        let mut p = sample();
        p["spec"]["egress"][0]["toCIDRSet"][0]["except"][0] = json!("192.168.0.0/24");
        assert_eq!(
            invalid::<CiliumNetworkPolicy>(p),
            r#"spec.egress[0].toCIDRSet[0].except[0]: Invalid value: "192.168.0.0/24": must be contained in 10.0.0.0/8"#
        );
        let mut p = sample();
        p["spec"]["ingress"][0]["toPorts"][0]["ports"][0]["port"] = json!("70000");
        assert!(
            invalid::<CiliumNetworkPolicy>(p)
                .starts_with("spec.ingress[0].toPorts[0].ports[0].port: Invalid value")
        );
        let mut p = sample();
        p["spec"]["ingress"][0]["toPorts"][0]["ports"][0]["protocol"] = json!("HTTP");
        assert!(
            invalid::<CiliumNetworkPolicy>(p)
                .starts_with("spec.ingress[0].toPorts[0].ports[0].protocol: Unsupported value")
        );
        let mut p = sample();
        p["spec"]["ingress"][0]["toPorts"][0]["ports"][0]["endPort"] = json!(79);
        assert!(
            invalid::<CiliumNetworkPolicy>(p)
                .starts_with("spec.ingress[0].toPorts[0].ports[0].endPort: Invalid value: 79")
        );
        let mut p = sample();
        p["spec"]["egressDeny"][0]["toCIDR"][0] = json!("192.168.0.0");
        assert!(invalid::<CiliumNetworkPolicy>(p).starts_with("spec.egressDeny[0].toCIDR[0]"));
        let mut p = sample();
        p["spec"]["nodeSelector"] = json!({});
        assert!(invalid::<CiliumNetworkPolicy>(p).starts_with("spec.nodeSelector: Forbidden"));
        let mut p = sample();
        p["spec"]
            .as_object_mut()
            .unwrap()
            .remove("endpointSelector");
        p["spec"]["nodeSelector"] = json!({});
        assert!(
            invalid::<CiliumNetworkPolicy>(p)
                .contains("only CiliumClusterwideNetworkPolicy may select nodes")
        );
        let mut p = sample();
        p["spec"]["egress"][0]["toFQDNs"][0] = json!({});
        assert!(
            invalid::<CiliumNetworkPolicy>(p).starts_with("spec.egress[0].toFQDNs[0]: Required")
        );
    }
}
