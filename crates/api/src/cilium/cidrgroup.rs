//! `CiliumCIDRGroup` (cluster-scoped, short `ccg`): a named list of
//! external CIDRs that policies reference with `cidrGroupRef`. Stored in
//! v2; v2alpha1 (same shape) is served too.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::{V2_AND_V2ALPHA1, check, crd};
use crate::validation::{self as v, Check, NameRule, Path};

/// A named set of CIDRs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumCIDRGroup {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The CIDRs.
    #[serde(default)]
    pub spec: CiliumCIDRGroupSpec,
}

cilium_object!(
    CiliumCIDRGroup,
    crd(
        "CiliumCIDRGroup",
        "ciliumcidrgroups",
        "ciliumcidrgroup",
        &["ccg"],
        false,
        "v2",
        V2_AND_V2ALPHA1
    ),
    validate
);

/// `spec` of a [`CiliumCIDRGroup`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiliumCIDRGroupSpec {
    /// CIDRs outside the cluster.
    #[serde(rename = "externalCIDRs", default)]
    pub external_cidrs: Vec<String>,
}

fn validate(group: &CiliumCIDRGroup) -> Check {
    v::object_meta(&group.metadata, NameRule::Subdomain)?;
    check::cidrs(
        &Path::root("spec").field("externalCIDRs"),
        &group.spec.external_cidrs,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cilium::test_support::{invalid, round_trip};

    #[test]
    fn round_trip_and_cidr_check() {
        let g: CiliumCIDRGroup = round_trip(json!({
            "metadata": {"name": "outside"},
            "spec": {"externalCIDRs": ["10.10.1.0/24", "fd00:10::/64"]}
        }));
        assert_eq!(g.spec.external_cidrs.len(), 2);
        assert!(
            invalid::<CiliumCIDRGroup>(json!({
                "metadata": {"name": "outside"}, "spec": {"externalCIDRs": ["10.10.1.0"]}
            }))
            .starts_with(r#"spec.externalCIDRs[0]: Invalid value: "10.10.1.0""#)
        );
    }
}
