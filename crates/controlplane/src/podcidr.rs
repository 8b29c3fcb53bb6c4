//! Node podCIDR allocation (what kube-controller-manager's node IPAM does
//! for `ipam: kubernetes`): every Node without `spec.podCIDR` gets the
//! lowest free `/node_cidr_mask` subnet of the cluster pod CIDR, in node
//! creation order; existing allocations are kept and never handed out
//! twice. Owns only `spec.podCIDR`/`spec.podCIDRs` of Nodes.

use std::net::Ipv4Addr;

use api::k8s_openapi::api::core::v1::Node;
use futures::StreamExt;
use ipnet::Ipv4Net;
use store::Store;

use crate::Error;
use crate::cache::{Cache, Pacer, Pass, feed};

/// The outcome for one node that has no podCIDR yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrDecision {
    /// Give this subnet to the node.
    Assign {
        /// Node name.
        node: String,
        /// The allocated subnet.
        cidr: Ipv4Net,
    },
    /// Every subnet is taken.
    Exhausted {
        /// Node name.
        node: String,
    },
}

/// The CIDRs a node already holds (`spec.podCIDRs`, else `spec.podCIDR`),
/// IPv4 only.
fn node_cidrs(node: &Node) -> Vec<Ipv4Net> {
    let spec = node.spec.as_ref();
    let listed = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    let all = if listed.is_empty() {
        spec.and_then(|s| s.pod_cidr.clone()).into_iter().collect()
    } else {
        listed
    };
    all.iter().filter_map(|c| c.parse().ok()).collect()
}

fn needs_cidr(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .is_none_or(str::is_empty)
}

/// The node's first IPv4 InternalIP.
fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse().ok())
}

/// Allocation order: creationTimestamp, then — because timestamps have
/// one-second granularity and a lab registers its nodes within one second —
/// InternalIP (nodes with one first), then name. For the seed lab this is
/// k8s-ctr (.10.100), k8s-w1 (.10.101), k8s-w0 (.20.100).
fn allocation_order(node: &Node) -> impl Ord + '_ {
    let ip = internal_ip(node);
    (
        node.metadata.creation_timestamp.as_ref().map(|t| t.0),
        ip.is_none(),
        ip,
        node.metadata.name.as_deref(),
    )
}

/// Decide subnets for every node lacking one, in [`allocation_order`].
/// Pure: the allocated set is rebuilt from the nodes each time, so
/// restarts never double-allocate.
pub fn plan_pod_cidrs(nodes: &[&Node], pool: Ipv4Net, mask: u8) -> Vec<CidrDecision> {
    let mut used: Vec<Ipv4Net> = nodes.iter().flat_map(|n| node_cidrs(n)).collect();
    let mut pending: Vec<&Node> = nodes.iter().copied().filter(|n| needs_cidr(n)).collect();
    pending.sort_by(|a, b| allocation_order(a).cmp(&allocation_order(b)));

    let overlaps = |a: &Ipv4Net, b: &Ipv4Net| a.contains(&b.network()) || b.contains(&a.network());
    let mut candidates = pool.subnets(mask).into_iter().flatten();
    pending
        .into_iter()
        .map(|node| {
            let name = node.metadata.name.clone().unwrap_or_default();
            match candidates.find(|c| !used.iter().any(|u| overlaps(u, c))) {
                Some(cidr) => {
                    used.push(cidr);
                    CidrDecision::Assign { node: name, cidr }
                }
                None => CidrDecision::Exhausted { node: name },
            }
        })
        .collect()
}

/// Set the node's podCIDR fields; `false` if it already has one.
fn assign(node: &mut Node, cidr: Ipv4Net) -> bool {
    if !needs_cidr(node) {
        return false;
    }
    let spec = node.spec.get_or_insert_default();
    spec.pod_cidr = Some(cidr.to_string());
    spec.pod_cidrs = Some(vec![cidr.to_string()]);
    true
}

/// Controller loop: watches Nodes, assigns podCIDRs.
pub async fn run(store: Store, pool: Ipv4Net, mask: u8) -> Result<(), Error> {
    let mut nodes = Cache::<Node>::default();
    let mut node_rx = store.reflect::<Node>(None);
    let mut pacer = Pacer::default();
    loop {
        tokio::select! {
            change = node_rx.next() => feed(&mut nodes, change, &mut pacer)?,
            () = pacer.due(), if nodes.synced() => {
                let mut pass = Pass::new("podcidr");
                let view: Vec<&Node> = nodes.values().collect();
                let decisions = plan_pod_cidrs(&view, pool, mask);
                for decision in decisions {
                    match decision {
                        CidrDecision::Assign { node, cidr } => {
                            let result = store
                                .modify::<Node>(None, &node, |n| assign(n, cidr))
                                .await;
                            if let Some(n) = pass.check("assign podCIDR", &node, result) {
                                tracing::info!(node, %cidr, "allocated podCIDR");
                                nodes.written(n);
                            }
                        }
                        CidrDecision::Exhausted { node } => {
                            tracing::error!(node, %pool, mask, "pod CIDR pool exhausted: no free /{mask} left for this node");
                        }
                    }
                }
                pacer.finished(pass.ok());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use api::k8s_openapi::{
        api::core::v1::{NodeAddress, NodeSpec, NodeStatus},
        apimachinery::pkg::apis::meta::v1::Time,
        jiff::Timestamp,
    };

    use super::*;

    fn node(name: &str, created_s: i64, cidr: Option<&str>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created_s).unwrap()));
        n.spec = Some(NodeSpec {
            pod_cidr: cidr.map(Into::into),
            pod_cidrs: cidr.map(|c| vec![c.into()]),
            ..Default::default()
        });
        n
    }

    fn pool() -> Ipv4Net {
        "10.244.0.0/16".parse().unwrap()
    }

    fn assigned(d: &[CidrDecision]) -> Vec<(String, String)> {
        d.iter()
            .map(|d| match d {
                CidrDecision::Assign { node, cidr } => (node.clone(), cidr.to_string()),
                CidrDecision::Exhausted { node } => (node.clone(), "exhausted".into()),
            })
            .collect()
    }

    #[test]
    fn creation_order_gives_seed_layout() {
        let (w0, ctr, w1) = (
            node("k8s-w0", 30, None),
            node("k8s-ctr", 10, None),
            node("k8s-w1", 20, None),
        );
        let d = plan_pod_cidrs(&[&w0, &ctr, &w1], pool(), 24);
        assert_eq!(
            assigned(&d),
            [
                ("k8s-ctr".into(), "10.244.0.0/24".into()),
                ("k8s-w1".into(), "10.244.1.0/24".into()),
                ("k8s-w0".into(), "10.244.2.0/24".into()),
            ]
        );
    }

    #[test]
    fn same_second_nodes_are_ordered_by_internal_ip_then_name() {
        let with_ip = |name: &str, ip: &str| {
            let mut n = node(name, 10, None);
            n.status = Some(NodeStatus {
                addresses: Some(vec![
                    NodeAddress {
                        type_: "Hostname".into(),
                        address: name.into(),
                    },
                    NodeAddress {
                        type_: "InternalIP".into(),
                        address: ip.into(),
                    },
                ]),
                ..Default::default()
            });
            n
        };
        let (w0, ctr, w1) = (
            with_ip("k8s-w0", "192.168.20.100"),
            with_ip("k8s-ctr", "192.168.10.100"),
            with_ip("k8s-w1", "192.168.10.101"),
        );
        let late = node("a-late", 11, None);
        let no_ip = node("a-no-ip", 10, None);
        let d = plan_pod_cidrs(&[&late, &no_ip, &w0, &ctr, &w1], pool(), 24);
        let order: Vec<String> = assigned(&d).into_iter().map(|(n, _)| n).collect();
        assert_eq!(order, ["k8s-ctr", "k8s-w1", "k8s-w0", "a-no-ip", "a-late"]);
        assert_eq!(assigned(&d)[2], ("k8s-w0".into(), "10.244.2.0/24".into()));
    }

    #[test]
    fn existing_allocations_are_kept_and_survive_rebuild() {
        let a = node("a", 1, Some("10.244.0.0/24"));
        let b = node("b", 2, Some("10.244.2.0/24"));
        let c = node("c", 3, None);
        let d = node("d", 4, None);
        let plan = plan_pod_cidrs(&[&a, &b, &c, &d], pool(), 24);
        assert_eq!(
            assigned(&plan),
            [
                ("c".into(), "10.244.1.0/24".into()),
                ("d".into(), "10.244.3.0/24".into())
            ]
        );
        // Apply, then plan again from the written state ("restart"): nothing to do.
        let mut nodes = [a, b, c, d];
        for (n, dec) in nodes[2..].iter_mut().zip(&plan) {
            let CidrDecision::Assign { cidr, .. } = dec else {
                panic!("{dec:?}")
            };
            assert!(assign(n, *cidr));
            assert!(!assign(n, *cidr));
        }
        let view: Vec<&Node> = nodes.iter().collect();
        assert!(plan_pod_cidrs(&view, pool(), 24).is_empty());
    }

    #[test]
    fn foreign_sized_cidrs_block_overlaps_and_exhaustion_is_reported() {
        let small: Ipv4Net = "10.244.0.0/23".parse().unwrap();
        let a = node("a", 1, Some("10.244.0.0/24"));
        let b = node("b", 2, None);
        let c = node("c", 3, None);
        let plan = plan_pod_cidrs(&[&a, &b, &c], small, 24);
        assert_eq!(
            assigned(&plan),
            [
                ("b".into(), "10.244.1.0/24".into()),
                ("c".into(), "exhausted".into())
            ]
        );
        let big = node("big", 1, Some("10.244.0.0/23"));
        let e = node("e", 2, None);
        let plan = plan_pod_cidrs(&[&big, &e], pool(), 24);
        assert_eq!(assigned(&plan), [("e".into(), "10.244.2.0/24".into())]);
    }
}
