//! This node as the cluster sees it: reading the `Node` (InternalIP, pod
//! CIDRs), what our `CiliumNode` must say (addresses, health IP, pod CIDRs
//! in `ipam: kubernetes` mode; written by the `cilium-node` reconciler),
//! and waiting for a pod CIDR (`k8s-require-ipv4-pod-cidr`, or the
//! operator in `cluster-pool` mode).
//!
//! The functions deciding what the CiliumNode must contain are pure; the
//! async ones only read/write the store.

use std::net::Ipv4Addr;

use api::cilium::node::{AddressPair, CiliumNode, IpamSpec, NodeAddress};
use api::k8s_openapi::api::core::v1::Node;
use api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use futures::StreamExt;
use ipnet::Ipv4Net;
use store::Store;

use crate::config::IpamMode;

/// The Node's InternalIP (IPv4).
pub fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse().ok())
}

/// The Node's IPv4 pod CIDRs (`spec.podCIDRs`, else `spec.podCIDR`).
pub fn node_pod_cidrs(node: &Node) -> Vec<Ipv4Net> {
    let Some(spec) = &node.spec else {
        return Vec::new();
    };
    let list: Vec<&String> = match &spec.pod_cidrs {
        Some(v) if !v.is_empty() => v.iter().collect(),
        _ => spec.pod_cidr.iter().collect(),
    };
    list.into_iter()
        .filter_map(|c| c.parse::<Ipv4Net>().ok())
        .map(|c| c.trunc())
        .collect()
}

/// What this agent writes into its CiliumNode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiliumNodeIntent {
    /// InternalIP.
    pub internal_ip: Ipv4Addr,
    /// Router IP (CiliumInternalIP), once known.
    pub router_ip: Option<Ipv4Addr>,
    /// Health IP, once known.
    pub health_ip: Option<Ipv4Addr>,
    /// Pod CIDRs to publish (`ipam: kubernetes` only; the operator owns
    /// them in `cluster-pool` mode).
    pub pod_cidrs: Option<Vec<Ipv4Net>>,
}

/// Apply the intent to a CiliumNode; returns whether anything changed.
pub fn apply_intent(cn: &mut CiliumNode, intent: &CiliumNodeIntent) -> bool {
    let before = cn.spec.clone();
    let mut addresses = vec![NodeAddress {
        type_: "InternalIP".into(),
        ip: intent.internal_ip.to_string(),
    }];
    match intent.router_ip {
        Some(r) => addresses.push(NodeAddress {
            type_: "CiliumInternalIP".into(),
            ip: r.to_string(),
        }),
        // Not known yet (restart, before the pod CIDR is read): keep the
        // published one so peers do not drop it from their ipcache.
        None => addresses.extend(
            cn.spec
                .addresses
                .iter()
                .flatten()
                .filter(|a| a.type_ == "CiliumInternalIP")
                .cloned(),
        ),
    }
    cn.spec.addresses = Some(addresses);
    if let Some(h) = intent.health_ip {
        cn.spec.health = Some(AddressPair {
            ipv4: Some(h.to_string()),
            ipv6: None,
        });
    }
    if let Some(cidrs) = &intent.pod_cidrs {
        let ipam = cn.spec.ipam.get_or_insert_with(IpamSpec::default);
        ipam.pod_cidrs = Some(cidrs.iter().map(ToString::to_string).collect());
    }
    cn.spec != before
}

/// A fresh CiliumNode for `name`.
pub fn new_cilium_node(name: &str, intent: &CiliumNodeIntent) -> CiliumNode {
    let mut cn = CiliumNode {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    apply_intent(&mut cn, intent);
    cn
}

/// Wait until the Node object exists and has an InternalIP.
pub async fn wait_for_node(store: &Store, name: &str) -> (Node, Ipv4Addr) {
    let mut states = store.reflect_named::<Node>(None, name);
    let mut warned = false;
    while let Some(node) = states.next().await {
        match internal_ip(&node) {
            Some(ip) => return (node, ip),
            None if !warned => {
                tracing::info!(
                    node = name,
                    "waiting for the Node object and its InternalIP"
                );
                warned = true;
            }
            None => {}
        }
    }
    unreachable!("store reflect streams never end")
}

/// Wait until the pod CIDR is known: from the Node (`kubernetes`) or from
/// the CiliumNode filled by the operator (`cluster-pool`). Operator errors
/// are logged as they appear.
pub async fn wait_for_pod_cidrs(
    store: &Store,
    name: &str,
    mode: IpamMode,
    require: bool,
) -> Vec<Ipv4Net> {
    match mode {
        IpamMode::Kubernetes => {
            let mut states = store.reflect_named::<Node>(None, name);
            let mut warned = false;
            while let Some(node) = states.next().await {
                let cidrs = node_pod_cidrs(&node);
                if !cidrs.is_empty() {
                    return cidrs;
                }
                if !warned {
                    if require {
                        tracing::info!(
                            node = name,
                            "waiting for Node.spec.podCIDR (k8s-require-ipv4-pod-cidr)"
                        );
                    } else {
                        tracing::warn!(
                            node = name,
                            "Node has no spec.podCIDR; waiting for one (no pod IPs without it)"
                        );
                    }
                    warned = true;
                }
            }
        }
        IpamMode::ClusterPool => {
            let mut states = store.reflect_named::<CiliumNode>(None, name);
            let mut last_error = None::<String>;
            let mut warned = false;
            while let Some(cn) = states.next().await {
                let cidrs = crate::ipcache::node_pod_cidrs(&cn);
                if !cidrs.is_empty() {
                    return cidrs;
                }
                let err = cn.operator_error().map(str::to_string);
                if err.is_some() && err != last_error {
                    tracing::error!(
                        node = name,
                        operator_error = err.as_deref().unwrap_or(""),
                        "the operator could not allocate a pod CIDR for this node"
                    );
                    last_error = err;
                } else if !warned {
                    tracing::info!(
                        node = name,
                        "waiting for the operator to fill spec.ipam.podCIDRs (cluster-pool)"
                    );
                    warned = true;
                }
            }
        }
    }
    unreachable!("store reflect streams never end")
}

#[cfg(test)]
mod tests {
    use api::cilium::node::{CiliumNodeStatus, IpamStatus, OperatorStatus};
    use api::k8s_openapi::api::core::v1::{NodeAddress as K8sAddr, NodeSpec, NodeStatus};

    use super::*;

    fn node(cidr: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("k8s-w1".into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: cidr.map(str::to_string),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                addresses: Some(vec![
                    K8sAddr {
                        type_: "Hostname".into(),
                        address: "k8s-w1".into(),
                    },
                    K8sAddr {
                        type_: "InternalIP".into(),
                        address: "192.168.10.101".into(),
                    },
                ]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn reads_the_node() {
        let n = node(Some("10.244.1.0/24"));
        assert_eq!(internal_ip(&n), Some("192.168.10.101".parse().unwrap()));
        assert_eq!(
            node_pod_cidrs(&n),
            vec!["10.244.1.0/24".parse::<Ipv4Net>().unwrap()]
        );
        assert!(node_pod_cidrs(&node(None)).is_empty());
    }

    #[test]
    fn cilium_node_intent() {
        let mut intent = CiliumNodeIntent {
            internal_ip: "192.168.10.101".parse().unwrap(),
            router_ip: None,
            health_ip: None,
            pod_cidrs: None,
        };
        let mut cn = new_cilium_node("k8s-w1", &intent);
        assert_eq!(cn.spec.addresses.as_ref().unwrap().len(), 1);
        assert!(cn.spec.ipam.is_none());
        assert!(!apply_intent(&mut cn, &intent), "no change");
        intent.router_ip = Some("10.244.1.1".parse().unwrap());
        intent.health_ip = Some("10.244.1.2".parse().unwrap());
        intent.pod_cidrs = Some(vec!["10.244.1.0/24".parse().unwrap()]);
        assert!(apply_intent(&mut cn, &intent));
        let v = serde_json::to_value(&cn).unwrap();
        assert_eq!(v["spec"]["addresses"][1]["type"], "CiliumInternalIP");
        assert_eq!(v["spec"]["addresses"][1]["ip"], "10.244.1.1");
        assert_eq!(v["spec"]["health"]["ipv4"], "10.244.1.2");
        assert_eq!(v["spec"]["ipam"]["podCIDRs"][0], "10.244.1.0/24");
        // cluster-pool: the operator's podCIDRs are kept.
        intent.pod_cidrs = None;
        assert!(!apply_intent(&mut cn, &intent));
        // A restarted agent does not withdraw its router IP while it
        // does not know it yet.
        intent.router_ip = None;
        assert!(!apply_intent(&mut cn, &intent));
        assert_eq!(cn.spec.addresses.as_ref().unwrap().len(), 2);
        assert_eq!(crate::ipcache::node_pod_cidrs(&cn).len(), 1);
    }

    #[test]
    fn operator_errors() {
        let mut cn = CiliumNode::default();
        assert_eq!(cn.operator_error(), None);
        cn.status = Some(CiliumNodeStatus {
            ipam: Some(IpamStatus {
                operator_status: Some(OperatorStatus {
                    error: Some("mask /31 is longer than /30".into()),
                }),
                ..Default::default()
            }),
        });
        assert_eq!(cn.operator_error(), Some("mask /31 is longer than /30"));
    }
}
