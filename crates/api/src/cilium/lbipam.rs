//! `CiliumLoadBalancerIPPool` (cluster-scoped; stored in v2, v2alpha1
//! served; short `ippools`, `ippool`, `lbippool`, `lbippools`): address
//! blocks LB IPAM hands to LoadBalancer services. v2alpha1 manifests may
//! still use the old `cidrs` field name, converted to `blocks`.

use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{ConditionsStatus, V2_AND_V2ALPHA1, crd};
use crate::FieldError;
use crate::validation::{self as v, Check, NameRule, Path};

/// A pool of load-balancer addresses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumLoadBalancerIPPool {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Blocks and service selection.
    #[serde(default)]
    pub spec: LoadBalancerIPPoolSpec,
    /// Conditions (`cilium.io/IPsTotal`, `cilium.io/PoolConflict`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ConditionsStatus>,
}

cilium_object!(
    CiliumLoadBalancerIPPool,
    crd(
        "CiliumLoadBalancerIPPool",
        "ciliumloadbalancerippools",
        "ciliumloadbalancerippool",
        &["ippools", "ippool", "lbippool", "lbippools"],
        false,
        "v2",
        V2_AND_V2ALPHA1
    ),
    validate
);

/// `spec` of a [`CiliumLoadBalancerIPPool`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerIPPoolSpec {
    /// Address blocks.
    #[serde(default)]
    pub blocks: Vec<IpBlock>,
    /// `"Yes"` or `"No"`: whether the first and last address of a CIDR
    /// block may be allocated (absent = Yes). YAML booleans are accepted.
    #[serde(
        rename = "allowFirstLastIPs",
        default,
        deserialize_with = "yes_no",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_first_last_ips: Option<String>,
    /// Services served by this pool (absent = all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_selector: Option<LabelSelector>,
    /// No new allocations when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

impl LoadBalancerIPPoolSpec {
    /// Whether the first and last address of CIDR blocks are reserved.
    pub fn reserves_first_last(&self) -> bool {
        self.allow_first_last_ips.as_deref() == Some("No")
    }
}

/// A CIDR, or a `start`-`stop` range (`start` alone = one address).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpBlock {
    /// A CIDR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// First address of a range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Last address of a range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
}

/// `Yes`/`No` as a string; YAML 1.1 turns unquoted `Yes`/`No` into
/// booleans, which are mapped back.
fn yes_no<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Text(String),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|raw| match raw {
        Raw::Bool(true) => "Yes".to_string(),
        Raw::Bool(false) => "No".to_string(),
        Raw::Text(s) => s,
    }))
}

/// v2alpha1 -> v2: the old `spec.cidrs` list becomes `spec.blocks`.
pub(crate) fn from_v2alpha1(object: &mut Value) -> Result<(), FieldError> {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if let Some(cidrs) = spec.remove("cidrs") {
        if spec.contains_key("blocks") {
            return Err(Path::root("spec")
                .field("cidrs")
                .forbidden("may not be set together with blocks"));
        }
        spec.insert("blocks".to_string(), cidrs);
    }
    Ok(())
}

fn validate(pool: &CiliumLoadBalancerIPPool) -> Check {
    v::object_meta(&pool.metadata, NameRule::Subdomain)?;
    let spec = Path::root("spec");
    if pool.spec.blocks.is_empty() {
        return Err(spec.field("blocks").required(""));
    }
    for (i, block) in pool.spec.blocks.iter().enumerate() {
        ip_block(&spec.field("blocks").index(i), block)?;
    }
    if let Some(allow) = &pool.spec.allow_first_last_ips {
        v::one_of(&spec.field("allowFirstLastIPs"), allow, &["Yes", "No"])?;
    }
    if let Some(sel) = &pool.spec.service_selector {
        v::label_selector(&spec.field("serviceSelector"), sel)?;
    }
    Ok(())
}

fn ip_block(path: &Path, block: &IpBlock) -> Check {
    match (&block.cidr, &block.start, &block.stop) {
        (Some(c), None, None) => v::cidr(&path.field("cidr"), c).map(drop),
        (Some(_), _, _) => Err(path
            .field("cidr")
            .forbidden("may not be set together with start/stop")),
        (None, Some(start), stop) => {
            let first = v::ip(&path.field("start"), start)?;
            let Some(stop) = stop else { return Ok(()) };
            let last = v::ip(&path.field("stop"), stop)?;
            match (first, last) {
                (IpAddr::V4(_), IpAddr::V6(_)) | (IpAddr::V6(_), IpAddr::V4(_)) => Err(path
                    .field("stop")
                    .invalid(stop, "must be of the same IP family as start")),
                _ if last < first => Err(path
                    .field("stop")
                    .invalid(stop, format!("must not be lower than start {start}"))),
                _ => Ok(()),
            }
        }
        (None, None, Some(_)) => Err(path.field("start").required("stop needs start")),
        (None, None, None) => Err(path.field("cidr").required("cidr or start is required")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cilium::test_support::{invalid, round_trip};

    fn sample() -> serde_json::Value {
        json!({"metadata": {"name": "cilium-pool"},
               "spec": {"allowFirstLastIPs": "No",
                        "blocks": [{"cidr": "172.16.1.0/24"},
                                   {"start": "10.10.1.10", "stop": "10.10.1.20"}]}})
    }

    #[test]
    fn round_trip_and_defaults() {
        let p: CiliumLoadBalancerIPPool = round_trip(sample());
        assert!(p.spec.reserves_first_last());
        assert!(!p.spec.disabled);
        let out = serde_json::to_value(&p).unwrap();
        assert!(out["spec"].get("disabled").is_none());
        let mut yaml_bool = sample();
        yaml_bool["spec"]["allowFirstLastIPs"] = json!(false);
        let p: CiliumLoadBalancerIPPool = round_trip(yaml_bool);
        assert_eq!(p.spec.allow_first_last_ips.as_deref(), Some("No"));
    }

    #[test]
    fn rejects_bad_blocks() {
        let mut p = sample();
        p["spec"]["blocks"][0]["cidr"] = json!("172.16.1.0/99");
        assert!(invalid::<CiliumLoadBalancerIPPool>(p).starts_with("spec.blocks[0].cidr: Invalid"));
        let mut p = sample();
        p["spec"]["blocks"][1]["stop"] = json!("10.10.1.1");
        assert!(
            invalid::<CiliumLoadBalancerIPPool>(p).starts_with(
                r#"spec.blocks[1].stop: Invalid value: "10.10.1.1": must not be lower"#
            )
        );
        let mut p = sample();
        p["spec"]["blocks"][1]["stop"] = json!("fd00::1");
        assert!(invalid::<CiliumLoadBalancerIPPool>(p).contains("same IP family"));
        let mut p = sample();
        p["spec"]["allowFirstLastIPs"] = json!("Maybe");
        assert_eq!(
            invalid::<CiliumLoadBalancerIPPool>(p),
            r#"spec.allowFirstLastIPs: Unsupported value: "Maybe": supported values: "Yes", "No""#
        );
        let mut p = sample();
        p["spec"]["blocks"] = json!([]);
        assert_eq!(
            invalid::<CiliumLoadBalancerIPPool>(p),
            "spec.blocks: Required value"
        );
    }

    #[test]
    fn v2alpha1_cidrs_become_blocks() {
        let mut old = json!({"spec": {"cidrs": [{"cidr": "10.0.10.0/24"}]}});
        from_v2alpha1(&mut old).unwrap();
        assert_eq!(old, json!({"spec": {"blocks": [{"cidr": "10.0.10.0/24"}]}}));
        let mut both = json!({"spec": {"cidrs": [], "blocks": []}});
        assert!(from_v2alpha1(&mut both).is_err());
    }
}
