//! `CiliumPodIPPool` (cilium.io/v2alpha1, cluster-scoped, short `cpip`):
//! a multi-pool IPAM pool of pod CIDRs, carved into per-node blocks of
//! `maskSize`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

use super::crd;
use crate::validation::{self as v, Check, NameRule, Path};

/// A pod IP pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumPodIPPool {
    /// Standard object metadata; pods pick a pool by name.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// CIDRs per family.
    #[serde(default)]
    pub spec: PodIPPoolSpec,
}

cilium_object!(
    CiliumPodIPPool,
    crd(
        "CiliumPodIPPool",
        "ciliumpodippools",
        "ciliumpodippool",
        &["cpip"],
        false,
        "v2alpha1",
        &["v2alpha1"]
    ),
    validate
);

/// `spec` of a [`CiliumPodIPPool`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodIPPoolSpec {
    /// IPv4 CIDRs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<PoolCidrs>,
    /// IPv6 CIDRs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<PoolCidrs>,
    /// Namespaces whose pods use this pool automatically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Pods that use this pool automatically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
}

/// CIDRs of one family and the per-node block size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolCidrs {
    /// CIDRs of the pool.
    #[serde(default)]
    pub cidrs: Vec<String>,
    /// Prefix length of the block given to each node.
    #[serde(default)]
    pub mask_size: i64,
}

fn validate(pool: &CiliumPodIPPool) -> Check {
    v::object_meta(&pool.metadata, NameRule::Subdomain)?;
    let spec = Path::root("spec");
    if pool.spec.ipv4.is_none() && pool.spec.ipv6.is_none() {
        return Err(spec
            .field("ipv4")
            .required("at least one of ipv4 or ipv6 is required"));
    }
    for (family, cidrs, bits) in [
        ("ipv4", &pool.spec.ipv4, 32u8),
        ("ipv6", &pool.spec.ipv6, 128),
    ] {
        let Some(cidrs) = cidrs else { continue };
        let path = spec.field(family);
        if cidrs.cidrs.is_empty() {
            return Err(path.field("cidrs").required(""));
        }
        let mut longest = 0;
        for (i, c) in cidrs.cidrs.iter().enumerate() {
            let p = path.field("cidrs").index(i);
            let net = v::cidr(&p, c)?;
            if net.max_prefix_len() != bits {
                return Err(p.invalid(c, format!("must be an {family} CIDR")));
            }
            longest = longest.max(net.prefix_len());
        }
        v::in_range(
            &path.field("maskSize"),
            cidrs.mask_size,
            longest.into(),
            bits.into(),
        )?;
    }
    for (field, sel) in [
        ("namespaceSelector", &pool.spec.namespace_selector),
        ("podSelector", &pool.spec.pod_selector),
    ] {
        if let Some(sel) = sel {
            v::label_selector(&spec.field(field), sel)?;
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
        json!({"metadata": {"name": "default"},
               "spec": {"ipv4": {"cidrs": ["10.10.0.0/16"], "maskSize": 27}}})
    }

    #[test]
    fn round_trip_and_mask_checks() {
        let p: CiliumPodIPPool = round_trip(sample());
        assert_eq!(p.spec.ipv4.as_ref().unwrap().mask_size, 27);
        let mut bad = sample();
        bad["spec"]["ipv4"]["maskSize"] = json!(8);
        assert_eq!(
            invalid::<CiliumPodIPPool>(bad),
            "spec.ipv4.maskSize: Invalid value: 8: must be between 16 and 32, inclusive"
        );
        let mut bad = sample();
        bad["spec"]["ipv4"]["cidrs"][0] = json!("fd00::/64");
        assert!(invalid::<CiliumPodIPPool>(bad).contains("must be an ipv4 CIDR"));
        assert!(
            invalid::<CiliumPodIPPool>(json!({"metadata": {"name": "x"}, "spec": {}}))
                .starts_with("spec.ipv4: Required value")
        );
    }
}
