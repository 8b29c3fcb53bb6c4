//! Native routing: `auto-direct-node-routes`.
//!
//! [`direct_routes`] decides, as a pure function of the CiliumNodes and
//! the local interfaces' addresses, which `<peer pod CIDR> via <peer IP>
//! dev <device> proto kernel` routes this node needs, and which peers are
//! skipped because their InternalIP is not on a directly connected subnet
//! (upstream's `direct-routing-skip-unreachable`). [`route_ops`] compares
//! them with the routes we own in the kernel. The reconciler in
//! [`crate::daemon`] applies the result.
//!
//! Ownership: a route is ours when it has protocol `kernel` (2), a gateway,
//! a destination inside `ipv4-native-routing-cidr`, and is not on
//! `cilium_host` (the local pod CIDR route). Kernel-made connected routes
//! have no gateway, so they are never touched.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use api::cilium::node::CiliumNode;
use datapath::net::Route;
use ipnet::Ipv4Net;

use crate::ipcache::{node_addresses, node_pod_cidrs};

/// `RTPROT_KERNEL`, as upstream uses for direct node routes.
pub const PROTO_KERNEL: u8 = 2;

/// The device holding the router IP.
pub const CILIUM_HOST: &str = "cilium_host";

/// An address on a local interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddr {
    /// Interface name.
    pub ifname: String,
    /// Address and prefix length.
    pub addr: Ipv4Net,
}

/// A peer whose routes were not installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedPeer {
    /// Node name.
    pub node: String,
    /// Its InternalIP (None when it has none).
    pub ip: Option<Ipv4Addr>,
    /// Why.
    pub reason: &'static str,
}

/// Decision for every other node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectRoutes {
    /// Routes to install, by destination.
    pub routes: BTreeMap<Ipv4Net, Route>,
    /// Peers skipped.
    pub skipped: Vec<SkippedPeer>,
}

/// The local interface whose subnet contains `ip` (longest prefix wins;
/// loopback and host routes excluded).
pub fn connected_device(ip: Ipv4Addr, local: &[LocalAddr]) -> Option<&LocalAddr> {
    local
        .iter()
        .filter(|a| a.ifname != "lo" && a.addr.prefix_len() < 32 && a.addr.addr() != ip)
        .filter(|a| a.addr.trunc().contains(&ip))
        .max_by_key(|a| a.addr.prefix_len())
}

/// Direct routes to every other node's pod CIDRs.
pub fn direct_routes(own_name: &str, nodes: &[CiliumNode], local: &[LocalAddr]) -> DirectRoutes {
    let mut out = DirectRoutes::default();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        if name == own_name {
            continue;
        }
        let cidrs = node_pod_cidrs(node);
        if cidrs.is_empty() {
            continue;
        }
        let (internal, _) = node_addresses(node);
        let Some(ip) = internal else {
            out.skipped.push(SkippedPeer {
                node: name,
                ip: None,
                reason: "no InternalIP",
            });
            continue;
        };
        let Some(dev) = connected_device(ip, local) else {
            out.skipped.push(SkippedPeer {
                node: name,
                ip: Some(ip),
                reason: "not on a directly connected subnet (needs a gateway)",
            });
            continue;
        };
        for dst in cidrs {
            out.routes.insert(
                dst,
                Route {
                    dst,
                    via: Some(ip),
                    dev: dev.ifname.clone(),
                    src: None,
                    mtu: 0,
                    proto: PROTO_KERNEL,
                    scope_link: false,
                },
            );
        }
    }
    out
}

/// Whether a kernel route is one of our direct node routes.
pub fn is_owned(route: &Route, native_cidr: Option<Ipv4Net>) -> bool {
    route.proto == PROTO_KERNEL
        && route.via.is_some()
        && route.dev != CILIUM_HOST
        && native_cidr.is_some_and(|c| c.contains(&route.dst))
}

/// What to change in the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteOps {
    /// Add or replace.
    pub replace: Vec<Route>,
    /// Delete.
    pub delete: Vec<Route>,
}

/// Compare desired direct routes with the kernel's routes of protocol
/// `kernel` (only the ones we own are considered).
pub fn route_ops(
    desired: &BTreeMap<Ipv4Net, Route>,
    actual: &[Route],
    native_cidr: Option<Ipv4Net>,
) -> RouteOps {
    let owned: Vec<&Route> = actual.iter().filter(|r| is_owned(r, native_cidr)).collect();
    let same = |a: &Route, b: &Route| a.dst == b.dst && a.via == b.via && a.dev == b.dev;
    let mut ops = RouteOps::default();
    for want in desired.values() {
        if !owned.iter().any(|r| same(r, want)) {
            ops.replace.push(want.clone());
        }
    }
    for r in owned {
        if !desired.get(&r.dst).is_some_and(|w| same(r, w)) {
            // A replaced route with the same dst is overwritten by
            // `replace`; deleting it too would remove the new one.
            if !desired.contains_key(&r.dst) {
                ops.delete.push(r.clone());
            }
        }
    }
    ops
}

/// The route handing local pod traffic to `cilium_host`:
/// `<podCIDR> via <router> dev cilium_host src <router>`.
pub fn local_pod_cidr_route(cidr: Ipv4Net, router: Ipv4Addr, mtu: u32) -> Route {
    Route {
        dst: cidr.trunc(),
        via: Some(router),
        dev: CILIUM_HOST.to_string(),
        src: Some(router),
        mtu,
        proto: PROTO_KERNEL,
        scope_link: false,
    }
}

/// `<ip>/32 dev <lxc> scope link` (`enable-endpoint-routes`).
pub fn endpoint_route(ip: Ipv4Addr, host_ifname: &str) -> Route {
    Route {
        dst: Ipv4Net::new(ip, 32).expect("/32 is valid"),
        via: None,
        dev: host_ifname.to_string(),
        src: None,
        mtu: 0,
        proto: PROTO_KERNEL,
        scope_link: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipcache::tests::cnode;

    fn local() -> Vec<LocalAddr> {
        vec![
            LocalAddr {
                ifname: "lo".into(),
                addr: "127.0.0.1/8".parse().unwrap(),
            },
            LocalAddr {
                ifname: "eth1".into(),
                addr: "192.168.10.100/24".parse().unwrap(),
            },
            LocalAddr {
                ifname: "cilium_host".into(),
                addr: "172.20.0.1/32".parse().unwrap(),
            },
        ]
    }

    fn nodes() -> Vec<CiliumNode> {
        vec![
            cnode("k8s-ctr", "192.168.10.100", "172.20.0.1", "172.20.0.0/24"),
            cnode("k8s-w1", "192.168.10.101", "172.20.1.1", "172.20.1.0/24"),
            cnode("k8s-w0", "192.168.20.100", "172.20.2.1", "172.20.2.0/24"),
        ]
    }

    #[test]
    fn same_l2_peer_gets_a_route_and_other_subnet_is_skipped() {
        let d = direct_routes("k8s-ctr", &nodes(), &local());
        assert_eq!(d.routes.len(), 1);
        let r = &d.routes[&"172.20.1.0/24".parse().unwrap()];
        assert_eq!(r.via, Some("192.168.10.101".parse().unwrap()));
        assert_eq!(r.dev, "eth1");
        assert_eq!(r.proto, 2);
        assert_eq!(
            d.skipped,
            vec![SkippedPeer {
                node: "k8s-w0".into(),
                ip: Some("192.168.20.100".parse().unwrap()),
                reason: "not on a directly connected subnet (needs a gateway)",
            }]
        );
    }

    #[test]
    fn peer_without_pod_cidr_is_ignored() {
        let mut ns = nodes();
        ns[1].spec.ipam = None;
        let d = direct_routes("k8s-ctr", &ns, &local());
        assert!(d.routes.is_empty());
        assert_eq!(d.skipped.len(), 1);
    }

    #[test]
    fn ops_add_replace_and_delete_only_owned_routes() {
        let native = Some("172.20.0.0/16".parse().unwrap());
        let d = direct_routes("k8s-ctr", &nodes(), &local());
        let connected = Route {
            dst: "192.168.10.0/24".parse().unwrap(),
            via: None,
            dev: "eth1".into(),
            src: Some("192.168.10.100".parse().unwrap()),
            mtu: 0,
            proto: 2,
            scope_link: true,
        };
        let local_cidr = local_pod_cidr_route(
            "172.20.0.0/24".parse().unwrap(),
            "172.20.0.1".parse().unwrap(),
            0,
        );
        let stale = Route {
            dst: "172.20.5.0/24".parse().unwrap(),
            via: Some("192.168.10.105".parse().unwrap()),
            dev: "eth1".into(),
            src: None,
            mtu: 0,
            proto: 2,
            scope_link: false,
        };
        let moved = Route {
            dst: "172.20.1.0/24".parse().unwrap(),
            via: Some("192.168.10.99".parse().unwrap()),
            ..stale.clone()
        };
        let actual = vec![connected, local_cidr, stale.clone(), moved];
        let ops = route_ops(&d.routes, &actual, native);
        assert_eq!(ops.replace, d.routes.values().cloned().collect::<Vec<_>>());
        assert_eq!(ops.delete, vec![stale]);
        // Converged.
        let applied: Vec<Route> = d.routes.values().cloned().collect();
        assert_eq!(route_ops(&d.routes, &applied, native), RouteOps::default());
        // Everything removed when the peer leaves.
        let ops = route_ops(&BTreeMap::new(), &applied, native);
        assert_eq!(ops.delete, applied);
    }

    #[test]
    fn longest_prefix_device() {
        let mut l = local();
        l.push(LocalAddr {
            ifname: "eth2".into(),
            addr: "192.168.10.100/25".parse().unwrap(),
        });
        let dev = connected_device("192.168.10.101".parse().unwrap(), &l).unwrap();
        assert_eq!(dev.ifname, "eth2");
        assert!(connected_device("127.0.0.2".parse().unwrap(), &l).is_none());
    }
}
