//! `CiliumL2AnnouncementPolicy` (cilium.io/v2alpha1 only, cluster-scoped,
//! short `l2announcement`): which nodes answer ARP for which services' IPs
//! on which interfaces (regular expressions).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

use super::{ConditionsStatus, crd};
use crate::validation::{self as v, Check, NameRule, Path};

/// An L2 announcement policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumL2AnnouncementPolicy {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Selection of nodes, services, address kinds and interfaces.
    #[serde(default)]
    pub spec: L2AnnouncementPolicySpec,
    /// Conditions (`io.cilium/bad-interface-regex`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ConditionsStatus>,
}

cilium_object!(
    CiliumL2AnnouncementPolicy,
    crd(
        "CiliumL2AnnouncementPolicy",
        "ciliuml2announcementpolicies",
        "ciliuml2announcementpolicy",
        &["l2announcement"],
        false,
        "v2alpha1",
        &["v2alpha1"]
    ),
    validate
);

/// `spec` of a [`CiliumL2AnnouncementPolicy`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L2AnnouncementPolicySpec {
    /// Nodes that may announce (absent = all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// Services to announce (absent = all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_selector: Option<LabelSelector>,
    /// Announce LoadBalancer ingress IPs.
    #[serde(rename = "loadBalancerIPs", skip_serializing_if = "Option::is_none")]
    pub load_balancer_ips: Option<bool>,
    /// Announce external IPs.
    #[serde(rename = "externalIPs", skip_serializing_if = "Option::is_none")]
    pub external_ips: Option<bool>,
    /// Interface name regexes, OR-ed (empty = every device).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<String>>,
}

fn validate(policy: &CiliumL2AnnouncementPolicy) -> Check {
    v::object_meta(&policy.metadata, NameRule::Subdomain)?;
    let spec = Path::root("spec");
    for (field, sel) in [
        ("nodeSelector", &policy.spec.node_selector),
        ("serviceSelector", &policy.spec.service_selector),
    ] {
        if let Some(sel) = sel {
            v::label_selector(&spec.field(field), sel)?;
        }
    }
    for (i, re) in policy.spec.interfaces.iter().flatten().enumerate() {
        if let Err(e) = regex::Regex::new(re) {
            let detail = e.to_string().lines().last().unwrap_or_default().to_string();
            return Err(spec
                .field("interfaces")
                .index(i)
                .invalid(re, format!("invalid regular expression: {detail}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cilium::test_support::{invalid, round_trip};

    #[test]
    fn round_trip_and_regex_check() {
        let p: CiliumL2AnnouncementPolicy = round_trip(json!({
            "metadata": {"name": "policy1"},
            "spec": {"interfaces": ["^eth[0-9]+"], "externalIPs": true, "loadBalancerIPs": true,
                     "serviceSelector": {"matchLabels": {"color": "blue"}}}
        }));
        assert_eq!(p.spec.load_balancer_ips, Some(true));
        let out = serde_json::to_value(&p).unwrap();
        assert_eq!(out["apiVersion"], "cilium.io/v2alpha1");
        assert_eq!(out["spec"]["loadBalancerIPs"], true);
        let err = invalid::<CiliumL2AnnouncementPolicy>(json!({
            "metadata": {"name": "policy1"}, "spec": {"interfaces": ["eth[0-"]}
        }));
        assert!(
            err.starts_with(
                r#"spec.interfaces[0]: Invalid value: "eth[0-": invalid regular expression"#
            ),
            "{err}"
        );
    }
}
