//! Cluster-pool IPAM decisions: which CiliumNode gets which pod CIDR and
//! which error each node's `status.ipam.operator-status.error` shows.
//!
//! Pure: [`plan`] rebuilds a [`PodCidrAllocator`] from the nodes on every
//! pass (existing `spec.ipam.podCIDRs` restored first), so an operator
//! restart never reassigns a block and a deleted node's block is free
//! again. [`assign`] and [`set_error`] are the compare-and-swap mutations
//! the controller applies with `Store::modify`.

use std::net::Ipv4Addr;

use api::cilium::node::{CiliumNode, IpamSpec, OperatorStatus};
use ipam::PodCidrAllocator;
use ipnet::Ipv4Net;

/// One thing to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Give the node this block (and clear its error).
    Assign {
        /// Node name.
        node: String,
        /// The block.
        cidr: Ipv4Net,
    },
    /// Set (or clear, `None`) the node's operator error.
    Status {
        /// Node name.
        node: String,
        /// The error text.
        error: Option<String>,
    },
}

fn name(node: &CiliumNode) -> &str {
    node.metadata.name.as_deref().unwrap_or_default()
}

/// The node's pod CIDRs, as written (any family).
fn pod_cidrs(node: &CiliumNode) -> &[String] {
    node.spec
        .ipam
        .as_ref()
        .and_then(|i| i.pod_cidrs.as_deref())
        .unwrap_or_default()
}

/// The node's first IPv4 pod CIDR.
pub fn ipv4_pod_cidr(node: &CiliumNode) -> Option<Ipv4Net> {
    pod_cidrs(node).iter().find_map(|c| c.parse().ok())
}

/// The node's current operator error.
pub fn current_error(node: &CiliumNode) -> Option<&str> {
    node.operator_error()
}

/// The node's first IPv4 InternalIP.
fn internal_ip(node: &CiliumNode) -> Option<Ipv4Addr> {
    node.spec
        .addresses
        .iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.ip.parse().ok())
}

/// Allocation order: creationTimestamp, then (timestamps have one-second
/// granularity and agents register within one second) InternalIP, nodes
/// with one first, then name. For the seed lab: k8s-ctr, k8s-w1, k8s-w0.
fn allocation_order(node: &CiliumNode) -> impl Ord + '_ {
    let ip = internal_ip(node);
    (
        node.metadata.creation_timestamp.as_ref().map(|t| t.0),
        ip.is_none(),
        ip,
        name(node),
    )
}

/// How many released blocks the operator remembers.
pub const MAX_RELEASED: usize = 256;

/// Decide blocks and errors for every node. `cidrs`/`mask` are the
/// configured pool; an unusable pool (mask longer than /30, shorter than
/// the pool) allocates nothing and puts the reason on every node.
/// `avoid` lists blocks of recently deleted nodes: new nodes get other
/// blocks while any is free (a re-created node gets a new pod CIDR, as
/// upstream), and those only when the pool is otherwise exhausted.
/// Status decisions are only emitted where the error changes.
pub fn plan(
    cidrs: &[Ipv4Net],
    mask: u8,
    nodes: &[&CiliumNode],
    avoid: &[Ipv4Net],
) -> Vec<Decision> {
    let mut ordered: Vec<&CiliumNode> = nodes.to_vec();
    ordered.sort_by(|a, b| allocation_order(a).cmp(&allocation_order(b)));
    // (node, desired error); Assign decisions imply "no error".
    let mut desired: Vec<(&CiliumNode, Option<String>)> = Vec::new();
    let mut decisions = Vec::new();
    match PodCidrAllocator::new(cidrs, mask) {
        Err(e) => desired.extend(ordered.iter().map(|n| (*n, Some(e.to_string())))),
        Ok(mut allocator) => {
            let (holding, pending): (Vec<&CiliumNode>, Vec<&CiliumNode>) =
                ordered.iter().partition(|n| !pod_cidrs(n).is_empty());
            for node in holding {
                let error = match ipv4_pod_cidr(node) {
                    Some(cidr) => allocator
                        .restore(name(node), cidr)
                        .err()
                        .map(|e| e.to_string()),
                    // IPv6-only or foreign values: not ours to judge.
                    None => None,
                };
                desired.push((node, error));
            }
            let held: Vec<String> = avoid
                .iter()
                .filter_map(|block| {
                    let owner = format!("released:{block}");
                    allocator.restore(&owner, *block).ok().map(|()| owner)
                })
                .collect();
            for node in pending {
                let mut result = allocator.allocate(name(node));
                if result.is_err() {
                    // Exhausted otherwise: reuse released blocks, oldest first.
                    for owner in &held {
                        allocator.release(owner);
                    }
                    result = allocator.allocate(name(node));
                }
                match result {
                    Ok(cidr) => decisions.push(Decision::Assign {
                        node: name(node).to_string(),
                        cidr,
                    }),
                    Err(e) => desired.push((node, Some(e.to_string()))),
                }
            }
        }
    }
    decisions.extend(
        desired
            .into_iter()
            .filter(|(node, error)| current_error(node) != error.as_deref())
            .map(|(node, error)| Decision::Status {
                node: name(node).to_string(),
                error,
            }),
    );
    decisions
}

/// Write `cidr` into a node without pod CIDRs and clear its operator
/// error; `false` (no write) if it has pod CIDRs already.
pub fn assign(node: &mut CiliumNode, cidr: Ipv4Net) -> bool {
    if !pod_cidrs(node).is_empty() {
        return false;
    }
    node.spec
        .ipam
        .get_or_insert_with(IpamSpec::default)
        .pod_cidrs = Some(vec![cidr.to_string()]);
    set_error(node, None);
    true
}

/// Set or clear the node's `status.ipam.operator-status.error`; `false`
/// if it already is as wanted.
pub fn set_error(node: &mut CiliumNode, error: Option<&str>) -> bool {
    if current_error(node) == error {
        return false;
    }
    let ipam = node
        .status
        .get_or_insert_default()
        .ipam
        .get_or_insert_default();
    ipam.operator_status = error.map(|e| OperatorStatus {
        error: Some(e.to_string()),
    });
    true
}

#[cfg(test)]
mod tests {
    use api::cilium::node::NodeAddress;

    use super::*;

    fn node(name: &str, ip: &str, cidr: Option<&str>) -> CiliumNode {
        let mut n = CiliumNode::default();
        n.metadata.name = Some(name.into());
        n.spec.addresses = Some(vec![NodeAddress {
            type_: "InternalIP".into(),
            ip: ip.into(),
        }]);
        if let Some(c) = cidr {
            n.spec.ipam = Some(IpamSpec {
                pod_cidrs: Some(vec![c.into()]),
                ..IpamSpec::default()
            });
        }
        n
    }

    fn pool() -> Vec<Ipv4Net> {
        vec!["172.20.0.0/16".parse().unwrap()]
    }

    fn assign_of(node: &str, cidr: &str) -> Decision {
        Decision::Assign {
            node: node.into(),
            cidr: cidr.parse().unwrap(),
        }
    }

    #[test]
    fn seed_lab_order_and_restart_keeps_blocks() {
        let (w0, ctr, w1) = (
            node("k8s-w0", "192.168.20.100", None),
            node("k8s-ctr", "192.168.10.100", None),
            node("k8s-w1", "192.168.10.101", None),
        );
        let mut nodes = [w0, ctr, w1];
        let view: Vec<&CiliumNode> = nodes.iter().collect();
        let d = plan(&pool(), 24, &view, &[]);
        assert_eq!(
            d,
            [
                assign_of("k8s-ctr", "172.20.0.0/24"),
                assign_of("k8s-w1", "172.20.1.0/24"),
                assign_of("k8s-w0", "172.20.2.0/24"),
            ]
        );
        for n in &mut nodes {
            let Some(Decision::Assign { cidr, .. }) = d
                .iter()
                .find(|x| matches!(x, Decision::Assign { node, .. } if Some(node) == n.metadata.name.as_ref()))
            else {
                panic!("no decision for {:?}", n.metadata.name)
            };
            assert!(assign(n, *cidr));
            assert!(!assign(n, *cidr));
        }
        let view: Vec<&CiliumNode> = nodes.iter().collect();
        assert!(
            plan(&pool(), 24, &view, &[]).is_empty(),
            "nothing to do after restart"
        );
    }

    #[test]
    fn free_blocks_go_lowest_first_and_released_ones_last() {
        let a = node("a", "10.0.0.1", Some("172.20.0.0/24"));
        let c = node("c", "10.0.0.3", Some("172.20.2.0/24"));
        let new = node("new", "10.0.0.9", None);
        assert_eq!(
            plan(&pool(), 24, &[&a, &c, &new], &[]),
            [assign_of("new", "172.20.1.0/24")]
        );
        let released: Vec<Ipv4Net> = vec!["172.20.1.0/24".parse().unwrap()];
        assert_eq!(
            plan(&pool(), 24, &[&a, &c, &new], &released),
            [assign_of("new", "172.20.3.0/24")]
        );
        // A pool with no other free block hands the released one out again.
        let small: Vec<Ipv4Net> = vec!["172.20.0.0/23".parse().unwrap()];
        let released: Vec<Ipv4Net> = vec!["172.20.1.0/24".parse().unwrap()];
        assert_eq!(
            plan(&small, 24, &[&a, &new], &released),
            [assign_of("new", "172.20.1.0/24")]
        );
    }

    #[test]
    fn bad_mask_puts_the_error_on_every_node_and_allocates_nothing() {
        let a = node("a", "10.0.0.1", Some("172.20.0.0/24"));
        let b = node("b", "10.0.0.2", None);
        let d = plan(&pool(), 31, &[&a, &b], &[]);
        let msg = "cluster-pool-ipv4-mask-size /31 is too long: the minimum block is /30";
        assert_eq!(
            d,
            [
                Decision::Status {
                    node: "a".into(),
                    error: Some(msg.into())
                },
                Decision::Status {
                    node: "b".into(),
                    error: Some(msg.into())
                },
            ]
        );
        // Once written, nothing more to do; a fixed config clears it.
        let (mut a, mut b) = (a, b);
        assert!(set_error(&mut a, Some(msg)));
        assert!(set_error(&mut b, Some(msg)));
        assert!(!set_error(&mut b, Some(msg)));
        assert!(plan(&pool(), 31, &[&a, &b], &[]).is_empty());
        assert_eq!(
            plan(&pool(), 24, &[&a, &b], &[]),
            [
                assign_of("b", "172.20.1.0/24"),
                Decision::Status {
                    node: "a".into(),
                    error: None
                },
            ]
        );
        assert!(assign(&mut b, "172.20.1.0/24".parse().unwrap()));
        assert_eq!(current_error(&b), None);
        let too_short = plan(&pool(), 8, &[&a], &[]);
        assert!(
            matches!(&too_short[..], [Decision::Status { error: Some(e), .. }] if e.contains("shorter than the pool"))
        );
    }

    #[test]
    fn exhaustion_and_conflicts_are_reported_on_the_node_concerned() {
        let small: Vec<Ipv4Net> = vec!["172.20.0.0/23".parse().unwrap()];
        let a = node("a", "10.0.0.1", None);
        let b = node("b", "10.0.0.2", None);
        let c = node("c", "10.0.0.3", None);
        let d = plan(&small, 24, &[&a, &b, &c], &[]);
        assert_eq!(
            d[..2],
            [
                assign_of("a", "172.20.0.0/24"),
                assign_of("b", "172.20.1.0/24")
            ]
        );
        assert!(
            matches!(&d[2], Decision::Status { node, error: Some(e) } if node == "c" && e.contains("exhausted"))
        );

        // Two nodes claiming one block: the later one is told.
        let x = node("x", "10.0.0.1", Some("172.20.0.0/24"));
        let y = node("y", "10.0.0.2", Some("172.20.0.0/24"));
        let d = plan(&pool(), 24, &[&y, &x], &[]);
        assert!(
            matches!(&d[..], [Decision::Status { node, error: Some(e) }] if node == "y" && e.contains("overlaps"))
        );
    }
}
