//! `CiliumExternalWorkload` (cilium.io/v2, cluster-scoped, short `cew`):
//! a VM or host outside the cluster joining it; kebab-case fields as
//! upstream.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::crd;
use crate::validation::{self as v, Check, NameRule, Path};

/// An external workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumExternalWorkload {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Pod CIDRs of the workload.
    #[serde(default)]
    pub spec: ExternalWorkloadSpec,
    /// Identity and address once joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ExternalWorkloadStatus>,
}

cilium_object!(
    CiliumExternalWorkload,
    crd(
        "CiliumExternalWorkload",
        "ciliumexternalworkloads",
        "ciliumexternalworkload",
        &["cew"],
        false,
        "v2",
        &["v2"]
    ),
    validate
);

/// `spec` of a [`CiliumExternalWorkload`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalWorkloadSpec {
    /// IPv4 CIDR for the workload's local endpoints.
    #[serde(rename = "ipv4-alloc-cidr", skip_serializing_if = "Option::is_none")]
    pub ipv4_alloc_cidr: Option<String>,
    /// IPv6 CIDR for the workload's local endpoints.
    #[serde(rename = "ipv6-alloc-cidr", skip_serializing_if = "Option::is_none")]
    pub ipv6_alloc_cidr: Option<String>,
}

/// `status` of a [`CiliumExternalWorkload`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalWorkloadStatus {
    /// Numeric identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Address of the workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

fn validate(w: &CiliumExternalWorkload) -> Check {
    v::object_meta(&w.metadata, NameRule::Subdomain)?;
    let spec = Path::root("spec");
    for (field, value) in [
        ("ipv4-alloc-cidr", &w.spec.ipv4_alloc_cidr),
        ("ipv6-alloc-cidr", &w.spec.ipv6_alloc_cidr),
    ] {
        if let Some(c) = value.as_deref().filter(|c| !c.is_empty()) {
            v::cidr(&spec.field(field), c)?;
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
    fn round_trip_and_cidr_check() {
        let w: CiliumExternalWorkload = round_trip(json!({
            "metadata": {"name": "vm1"},
            "spec": {"ipv4-alloc-cidr": "10.192.1.0/30"},
            "status": {"id": 300, "ip": "192.168.10.50"}
        }));
        assert_eq!(w.spec.ipv4_alloc_cidr.as_deref(), Some("10.192.1.0/30"));
        assert!(
            invalid::<CiliumExternalWorkload>(json!({
                "metadata": {"name": "vm1"}, "spec": {"ipv4-alloc-cidr": "10.192.1.0"}
            }))
            .starts_with("spec.ipv4-alloc-cidr: Invalid value")
        );
    }
}
