//! `CiliumNode` (cilium.io/v2, cluster-scoped, short `cn`): one per node,
//! written by the agent (addresses, health IP, IPAM requests) and the
//! operator (pod CIDRs, pool allocations, `status.ipam.operator-status`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::{check, crd};
use crate::validation::{self as v, Check, NameRule, Path};

/// A node as Cilium sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumNode {
    /// Standard object metadata; the name is the node name.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: CiliumNodeSpec,
    /// Observed state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<CiliumNodeStatus>,
}

impl CiliumNode {
    /// The error the operator reported for this node's IPAM
    /// (`status.ipam.operator-status.error`), if any (empty counts as none).
    pub fn operator_error(&self) -> Option<&str> {
        self.status
            .as_ref()?
            .ipam
            .as_ref()?
            .operator_status
            .as_ref()?
            .error
            .as_deref()
            .filter(|e| !e.is_empty())
    }
}

cilium_object!(
    CiliumNode,
    crd(
        "CiliumNode",
        "ciliumnodes",
        "ciliumnode",
        &["cn", "ciliumn"],
        false,
        "v2",
        &["v2"]
    ),
    validate
);

/// `spec` of a [`CiliumNode`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CiliumNodeSpec {
    /// Cloud instance id.
    #[serde(rename = "instance-id", skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Addresses of the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<NodeAddress>>,
    /// Health-check endpoint addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<AddressPair>,
    /// Ingress listener addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<AddressPair>,
    /// Transparent-encryption settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,
    /// IPAM state requested by the agent and handed out by the operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipam: Option<IpamSpec>,
    /// Boot id of the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootid: Option<String>,
    /// Numeric identity of the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodeidentity: Option<u64>,
}

/// One address of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddress {
    /// `InternalIP`, `ExternalIP`, `CiliumInternalIP`, ... (kept as given).
    #[serde(rename = "type", default)]
    pub type_: String,
    /// The address.
    #[serde(default)]
    pub ip: String,
}

/// An optional IPv4 and IPv6 address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPair {
    /// IPv4 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    /// IPv6 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
}

/// Encryption settings of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionSpec {
    /// Index of the key in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<i64>,
}

/// `spec.ipam` of a [`CiliumNode`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpamSpec {
    /// Addresses available for allocation (ENI-style IPAM), by address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<BTreeMap<String, AllocationIp>>,
    /// IPv6 addresses available for allocation, by address.
    #[serde(rename = "ipv6-pool", skip_serializing_if = "Option::is_none")]
    pub ipv6_pool: Option<BTreeMap<String, AllocationIp>>,
    /// Multi-pool requests and allocations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pools: Option<IpamPoolSpec>,
    /// Pod CIDRs assigned to the node (cluster-pool, kubernetes IPAM).
    #[serde(rename = "podCIDRs", skip_serializing_if = "Option::is_none")]
    pub pod_cidrs: Option<Vec<String>>,
    /// Minimum addresses to allocate.
    #[serde(rename = "min-allocate", skip_serializing_if = "Option::is_none")]
    pub min_allocate: Option<i64>,
    /// Maximum addresses to allocate.
    #[serde(rename = "max-allocate", skip_serializing_if = "Option::is_none")]
    pub max_allocate: Option<i64>,
    /// Addresses to keep pre-allocated.
    #[serde(rename = "pre-allocate", skip_serializing_if = "Option::is_none")]
    pub pre_allocate: Option<i64>,
    /// Addresses allowed above the high watermark.
    #[serde(
        rename = "max-above-watermark",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_above_watermark: Option<i64>,
}

/// Who owns an allocated address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationIp {
    /// Owner (`router`, `health`, `<namespace>/<pod>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Resource the address comes from (interface, subnet, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// Multi-pool IPAM: what the agent asks for, what the operator gave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamPoolSpec {
    /// Requests per pool (written by the agent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<Vec<PoolRequest>>,
    /// Allocations per pool (written by the operator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocated: Option<Vec<PoolAllocation>>,
}

/// Addresses the agent needs from one pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRequest {
    /// Pool name.
    #[serde(default)]
    pub pool: String,
    /// How many addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needed: Option<PoolDemand>,
}

/// Number of addresses needed per family.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolDemand {
    /// IPv4 addresses.
    #[serde(rename = "ipv4-addrs", skip_serializing_if = "Option::is_none")]
    pub ipv4_addrs: Option<i64>,
    /// IPv6 addresses.
    #[serde(rename = "ipv6-addrs", skip_serializing_if = "Option::is_none")]
    pub ipv6_addrs: Option<i64>,
}

/// CIDRs allocated to the node from one pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolAllocation {
    /// Pool name.
    #[serde(default)]
    pub pool: String,
    /// Allocated CIDRs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidrs: Option<Vec<String>>,
}

/// `status` of a [`CiliumNode`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiliumNodeStatus {
    /// IPAM status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipam: Option<IpamStatus>,
}

/// `status.ipam` of a [`CiliumNode`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamStatus {
    /// Addresses in use, by address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<BTreeMap<String, AllocationIp>>,
    /// IPv6 addresses in use, by address.
    #[serde(rename = "ipv6-used", skip_serializing_if = "Option::is_none")]
    pub ipv6_used: Option<BTreeMap<String, AllocationIp>>,
    /// Errors the operator hit while serving this node.
    #[serde(rename = "operator-status", skip_serializing_if = "Option::is_none")]
    pub operator_status: Option<OperatorStatus>,
    /// Release handshake state per address.
    #[serde(rename = "release-ips", skip_serializing_if = "Option::is_none")]
    pub release_ips: Option<BTreeMap<String, String>>,
}

/// The operator's status for a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorStatus {
    /// Last error, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn validate(node: &CiliumNode) -> Check {
    v::object_meta(&node.metadata, NameRule::Subdomain)?;
    let spec = Path::root("spec");
    for (i, a) in node.spec.addresses.iter().flatten().enumerate() {
        v::ip(&spec.field("addresses").index(i).field("ip"), &a.ip)?;
    }
    for (name, pair) in [
        ("health", &node.spec.health),
        ("ingress", &node.spec.ingress),
    ] {
        let Some(pair) = pair else { continue };
        for (family, addr) in [("ipv4", &pair.ipv4), ("ipv6", &pair.ipv6)] {
            if let Some(addr) = addr.as_deref().filter(|a| !a.is_empty()) {
                v::ip(&spec.field(name).field(family), addr)?;
            }
        }
    }
    if let Some(ipam) = &node.spec.ipam {
        let p = spec.field("ipam");
        check::cidrs(&p.field("podCIDRs"), ipam.pod_cidrs.iter().flatten())?;
        let allocated = ipam.pools.iter().flat_map(|p| p.allocated.iter().flatten());
        for (i, a) in allocated.enumerate() {
            let ap = p.field("pools").field("allocated").index(i);
            check::cidrs(&ap.field("cidrs"), a.cidrs.iter().flatten())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Object;
    use crate::cilium::test_support::{invalid, round_trip};

    fn sample() -> serde_json::Value {
        json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumNode",
            "metadata": {"name": "k8s-w1"},
            "spec": {
                "addresses": [{"type": "InternalIP", "ip": "192.168.10.101"},
                              {"type": "CiliumInternalIP", "ip": "172.20.1.10"}],
                "health": {"ipv4": "172.20.1.20"},
                "encryption": {},
                "ipam": {"podCIDRs": ["172.20.1.0/24"], "pre-allocate": 8,
                         "pools": {"requested": [{"pool": "default", "needed": {"ipv4-addrs": 16}}],
                                   "allocated": [{"pool": "default", "cidrs": ["10.10.0.0/27"]}]}},
                "bootid": "abc"
            },
            "status": {"ipam": {"used": {"172.20.1.20": {"owner": "health"}},
                                "operator-status": {"error": "pool exhausted"}}}
        })
    }

    #[test]
    fn round_trips_with_kebab_case_fields() {
        let node: CiliumNode = round_trip(sample());
        let ipam = node.spec.ipam.as_ref().unwrap();
        assert_eq!(ipam.pre_allocate, Some(8));
        assert_eq!(
            ipam.pod_cidrs.as_deref(),
            Some(&["172.20.1.0/24".to_string()][..])
        );
        let status = node.status.as_ref().unwrap().ipam.as_ref().unwrap();
        assert_eq!(
            status.operator_status.as_ref().unwrap().error.as_deref(),
            Some("pool exhausted")
        );
        let out = serde_json::to_value(&node).unwrap();
        assert_eq!(
            out["status"]["ipam"]["operator-status"]["error"],
            "pool exhausted"
        );
        assert!(
            out["spec"].get("ingress").is_none(),
            "unset fields are omitted"
        );
        assert!(CiliumNode::TYPE.matches_name("cn"));
        assert_eq!(
            CiliumNode::TYPE.key(None, "k8s-w1"),
            "/registry/cilium.io/ciliumnodes/k8s-w1"
        );
    }

    #[test]
    fn rejects_bad_addresses_and_cidrs() {
        let mut n = sample();
        n["spec"]["ipam"]["podCIDRs"][0] = json!("172.20.1.0/40");
        assert!(invalid::<CiliumNode>(n).starts_with("spec.ipam.podCIDRs[0]: Invalid value"));
        let mut n = sample();
        n["spec"]["addresses"][1]["ip"] = json!("nope");
        assert!(invalid::<CiliumNode>(n).starts_with("spec.addresses[1].ip: Invalid value"));
        let mut n = sample();
        n["spec"]["health"]["ipv4"] = json!("1.2.3");
        assert!(invalid::<CiliumNode>(n).starts_with("spec.health.ipv4: Invalid value"));
        let mut n = sample();
        n["spec"]["ipam"]["pools"]["allocated"][0]["cidrs"][0] = json!("x");
        assert!(
            invalid::<CiliumNode>(n).starts_with("spec.ipam.pools.allocated[0].cidrs[0]: Invalid")
        );
    }
}
