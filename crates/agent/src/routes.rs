//! Routes to other nodes' pod CIDRs, per routing mode.
//!
//! [`node_routes`] decides, as a pure function of the CiliumNodes and the
//! local interfaces' addresses, which routes this node needs:
//! - tunnel mode: `<peer pod CIDR> via <router ip> dev cilium_host src
//!   <router ip> mtu <device MTU - overhead> proto kernel`, for every
//!   peer with an InternalIP (the tunnel endpoint); the datapath
//!   encapsulates what `cilium_host` receives;
//! - native mode with `auto-direct-node-routes`: `<peer pod CIDR> via
//!   <peer IP> dev <device> proto kernel`, only for peers whose InternalIP
//!   is on a directly connected subnet (the others are skipped, upstream's
//!   `direct-routing-skip-unreachable`);
//! - native mode without it: none (the network routes pod CIDRs).
//!
//! [`route_ops`] compares them with the routes we own in the kernel, so a
//! restart in the other mode replaces or removes the old mode's routes.
//! The reconciler in [`crate::daemon`] applies the result.
//!
//! Ownership ([`is_owned`]): a route of protocol `kernel` (2) with a
//! gateway, whose destination is not one of this node's pod CIDRs (that
//! route is installed at startup), and which is one of
//! - a route for a current peer's pod CIDR (whatever it looks like: any
//!   such route that differs from the desired one is ours to replace or
//!   delete);
//! - `via <router ip> dev cilium_host` (a tunnel-mode route, maybe of a
//!   peer that is gone);
//! - not on `cilium_host`, inside `ipv4-native-routing-cidr` (a direct
//!   route, maybe of a peer that is gone).
//!
//! Kernel-made connected routes and endpoint routes have no gateway, so
//! they are never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use api::cilium::node::CiliumNode;
use datapath::net::Route;
use ipnet::Ipv4Net;

use crate::ipcache::{node_addresses, node_pod_cidrs};

/// `RTPROT_KERNEL`, as upstream uses for node routes.
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

/// How other nodes' pod CIDRs are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRouting {
    /// Native mode without `auto-direct-node-routes`: no routes.
    Network,
    /// Native mode with `auto-direct-node-routes`.
    Direct,
    /// Tunnel mode; `mtu` is the route MTU (device MTU minus overhead).
    Tunnel {
        /// Route MTU.
        mtu: u32,
    },
}

/// This node, as the route decisions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnNode {
    /// Node name (its CiliumNode is skipped).
    pub name: String,
    /// InternalIP (a CiliumNode with it is a stale copy of this node).
    pub internal_ip: Option<Ipv4Addr>,
    /// Router IP (on `cilium_host`).
    pub router_ip: Ipv4Addr,
    /// This node's pod CIDRs: their routes are never touched here.
    pub pod_cidrs: Vec<Ipv4Net>,
    /// `ipv4-native-routing-cidr`.
    pub native_cidr: Option<Ipv4Net>,
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
pub struct NodeRoutes {
    /// Routes to install, by destination.
    pub routes: BTreeMap<Ipv4Net, Route>,
    /// Peers skipped.
    pub skipped: Vec<SkippedPeer>,
    /// Every peer's pod CIDRs, routed or not (see [`is_owned`]).
    pub remote_cidrs: BTreeSet<Ipv4Net>,
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

/// The routes to every other node's pod CIDRs in `mode`.
pub fn node_routes(
    mode: NodeRouting,
    own: &OwnNode,
    nodes: &[CiliumNode],
    local: &[LocalAddr],
) -> NodeRoutes {
    let mut out = NodeRoutes::default();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let (internal, _) = node_addresses(node);
        if name == own.name || (internal.is_some() && internal == own.internal_ip) {
            continue;
        }
        let cidrs: Vec<Ipv4Net> = node_pod_cidrs(node)
            .into_iter()
            .filter(|c| !own.pod_cidrs.contains(c))
            .collect();
        if cidrs.is_empty() {
            continue;
        }
        out.remote_cidrs.extend(cidrs.iter().copied());
        let Some(ip) = internal else {
            if mode == NodeRouting::Network {
                continue;
            }
            out.skipped.push(SkippedPeer {
                node: name,
                ip: None,
                reason: "no InternalIP",
            });
            continue;
        };
        let (via, dev, src, mtu) = match mode {
            NodeRouting::Network => continue,
            NodeRouting::Tunnel { mtu } => (own.router_ip, CILIUM_HOST, Some(own.router_ip), mtu),
            NodeRouting::Direct => match connected_device(ip, local) {
                Some(d) => (ip, d.ifname.as_str(), None, 0),
                None => {
                    out.skipped.push(SkippedPeer {
                        node: name,
                        ip: Some(ip),
                        reason: "not on a directly connected subnet (needs a gateway)",
                    });
                    continue;
                }
            },
        };
        for dst in cidrs {
            let route = Route {
                dst,
                via: Some(via),
                dev: dev.to_string(),
                src,
                mtu,
                proto: PROTO_KERNEL,
                scope_link: false,
            };
            out.routes.insert(dst, route);
        }
    }
    out
}

/// Whether a kernel route is one of our node routes (see the module
/// docs); `remote_cidrs` are the peers' pod CIDRs.
pub fn is_owned(route: &Route, own: &OwnNode, remote_cidrs: &BTreeSet<Ipv4Net>) -> bool {
    route.proto == PROTO_KERNEL
        && route.via.is_some()
        && !own.pod_cidrs.contains(&route.dst)
        && (remote_cidrs.contains(&route.dst)
            || (route.dev == CILIUM_HOST && route.via == Some(own.router_ip))
            || (route.dev != CILIUM_HOST
                && own.native_cidr.is_some_and(|c| c.contains(&route.dst))))
}

/// What to change in the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteOps {
    /// Add or replace.
    pub replace: Vec<Route>,
    /// Delete.
    pub delete: Vec<Route>,
}

/// Compare the desired node routes with the kernel's routes of protocol
/// `kernel` (only the ones we own are considered).
pub fn route_ops(plan: &NodeRoutes, actual: &[Route], own: &OwnNode) -> RouteOps {
    let owned: Vec<&Route> = actual
        .iter()
        .filter(|r| is_owned(r, own, &plan.remote_cidrs))
        .collect();
    let same = |a: &Route, b: &Route| {
        a.dst == b.dst && a.via == b.via && a.dev == b.dev && a.src == b.src && a.mtu == b.mtu
    };
    let mut ops = RouteOps::default();
    for want in plan.routes.values() {
        if !owned.iter().any(|r| same(r, want)) {
            ops.replace.push(want.clone());
        }
    }
    // A route with a desired destination is overwritten by `replace`
    // (same destination, TOS and metric); deleting it too would remove
    // the new one.
    ops.delete = owned
        .into_iter()
        .filter(|r| !plan.routes.contains_key(&r.dst))
        .cloned()
        .collect();
    ops
}

/// A route handing pod traffic to `cilium_host`: `<cidr> via <router>
/// dev cilium_host src <router> [mtu <mtu>]`. This node's pod CIDRs (no
/// MTU) and, in tunnel mode, other nodes' (the route MTU).
pub fn cilium_host_route(cidr: Ipv4Net, router: Ipv4Addr, mtu: u32) -> Route {
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

    fn n(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn local() -> Vec<LocalAddr> {
        vec![
            LocalAddr {
                ifname: "lo".into(),
                addr: n("127.0.0.1/8"),
            },
            LocalAddr {
                ifname: "eth1".into(),
                addr: n("192.168.10.100/24"),
            },
            LocalAddr {
                ifname: "cilium_host".into(),
                addr: n("172.20.0.1/32"),
            },
        ]
    }

    fn own(native: Option<&str>) -> OwnNode {
        OwnNode {
            name: "k8s-ctr".into(),
            internal_ip: Some(ip("192.168.10.100")),
            router_ip: ip("172.20.0.1"),
            pod_cidrs: vec![n("172.20.0.0/24")],
            native_cidr: native.map(n),
        }
    }

    fn nodes() -> Vec<CiliumNode> {
        vec![
            cnode("k8s-ctr", "192.168.10.100", "172.20.0.1", "172.20.0.0/24"),
            cnode("k8s-w1", "192.168.10.101", "172.20.1.1", "172.20.1.0/24"),
            cnode("k8s-w0", "192.168.20.100", "172.20.2.1", "172.20.2.0/24"),
        ]
    }

    const NATIVE: Option<&str> = Some("172.20.0.0/16");
    const TUNNEL: NodeRouting = NodeRouting::Tunnel { mtu: 1450 };

    fn direct(dst: &str, via: &str) -> Route {
        Route {
            dst: n(dst),
            via: Some(ip(via)),
            dev: "eth1".into(),
            src: None,
            mtu: 0,
            proto: PROTO_KERNEL,
            scope_link: false,
        }
    }

    fn tunnel(dst: &str) -> Route {
        cilium_host_route(n(dst), ip("172.20.0.1"), 1450)
    }

    /// Routes of protocol kernel we must never touch.
    fn foreign() -> Vec<Route> {
        vec![
            // Connected route of eth1.
            Route {
                dst: n("192.168.10.0/24"),
                via: None,
                dev: "eth1".into(),
                src: Some(ip("192.168.10.100")),
                mtu: 0,
                proto: PROTO_KERNEL,
                scope_link: true,
            },
            // This node's pod CIDR.
            cilium_host_route(n("172.20.0.0/24"), ip("172.20.0.1"), 0),
            // An endpoint route.
            endpoint_route(ip("172.20.0.7"), "lxc1234"),
            // Someone else's gatewayed route outside every pod CIDR.
            direct("10.99.0.0/16", "192.168.10.1"),
        ]
    }

    /// Apply `ops` as the kernel would (replace overwrites the route with
    /// the same destination).
    fn apply(actual: &[Route], ops: &RouteOps) -> Vec<Route> {
        let mut out: Vec<Route> = actual
            .iter()
            .filter(|r| !ops.delete.contains(r))
            .filter(|r| !ops.replace.iter().any(|w| w.dst == r.dst))
            .cloned()
            .collect();
        out.extend(ops.replace.iter().cloned());
        out
    }

    #[test]
    fn same_l2_peer_gets_a_direct_route_and_other_subnet_is_skipped() {
        let d = node_routes(NodeRouting::Direct, &own(NATIVE), &nodes(), &local());
        assert_eq!(d.routes.len(), 1);
        assert_eq!(
            d.routes[&n("172.20.1.0/24")],
            direct("172.20.1.0/24", "192.168.10.101")
        );
        assert_eq!(
            d.skipped,
            vec![SkippedPeer {
                node: "k8s-w0".into(),
                ip: Some(ip("192.168.20.100")),
                reason: "not on a directly connected subnet (needs a gateway)",
            }]
        );
        assert_eq!(
            d.remote_cidrs,
            [n("172.20.1.0/24"), n("172.20.2.0/24")].into()
        );
    }

    #[test]
    fn tunnel_mode_routes_every_peer_through_cilium_host() {
        let d = node_routes(TUNNEL, &own(None), &nodes(), &local());
        assert!(d.skipped.is_empty());
        assert_eq!(
            d.routes.values().cloned().collect::<Vec<_>>(),
            vec![tunnel("172.20.1.0/24"), tunnel("172.20.2.0/24")]
        );
        let r = &d.routes[&n("172.20.2.0/24")];
        assert_eq!(r.via, Some(ip("172.20.0.1")));
        assert_eq!(r.src, Some(ip("172.20.0.1")));
        assert_eq!((r.dev.as_str(), r.mtu, r.proto), ("cilium_host", 1450, 2));
    }

    #[test]
    fn peers_without_address_or_cidr_and_copies_of_ourselves() {
        let mut ns = nodes();
        ns[1].spec.ipam = None;
        ns[2].spec.addresses = None;
        // A stale CiliumNode of this node under another name.
        ns.push(cnode(
            "old-ctr",
            "192.168.10.100",
            "172.20.9.1",
            "172.20.9.0/24",
        ));
        for mode in [TUNNEL, NodeRouting::Direct] {
            let d = node_routes(mode, &own(NATIVE), &ns, &local());
            assert!(d.routes.is_empty());
            assert_eq!(
                d.skipped,
                vec![SkippedPeer {
                    node: "k8s-w0".into(),
                    ip: None,
                    reason: "no InternalIP",
                }]
            );
            assert_eq!(d.remote_cidrs, [n("172.20.2.0/24")].into());
        }
        let d = node_routes(NodeRouting::Network, &own(NATIVE), &ns, &local());
        assert_eq!(d.routes.len() + d.skipped.len(), 0);
    }

    #[test]
    fn native_ops_add_replace_and_delete_only_owned_routes() {
        let own = own(NATIVE);
        let d = node_routes(NodeRouting::Direct, &own, &nodes(), &local());
        let stale = direct("172.20.5.0/24", "192.168.10.105");
        let moved = direct("172.20.1.0/24", "192.168.10.99");
        let mut actual = foreign();
        actual.extend([stale.clone(), moved]);
        let ops = route_ops(&d, &actual, &own);
        assert_eq!(ops.replace, vec![direct("172.20.1.0/24", "192.168.10.101")]);
        assert_eq!(ops.delete, vec![stale]);
        let after = apply(&actual, &ops);
        assert_eq!(route_ops(&d, &after, &own), RouteOps::default());
        // Everything removed when the peers leave; foreign routes stay.
        let gone = node_routes(NodeRouting::Direct, &own, &[], &local());
        let ops = route_ops(&gone, &after, &own);
        assert_eq!(ops.delete, vec![direct("172.20.1.0/24", "192.168.10.101")]);
        assert_eq!(apply(&after, &ops), foreign());
    }

    #[test]
    fn tunnel_ops_converge_fix_the_mtu_and_drop_gone_peers() {
        let own = own(None);
        let d = node_routes(TUNNEL, &own, &nodes(), &local());
        let mut actual = foreign();
        let ops = route_ops(&d, &actual, &own);
        assert_eq!(ops.replace.len(), 2);
        assert!(ops.delete.is_empty());
        actual = apply(&actual, &ops);
        assert_eq!(route_ops(&d, &actual, &own), RouteOps::default());
        // A route with another MTU is rewritten.
        let mut wrong_mtu = tunnel("172.20.1.0/24");
        wrong_mtu.mtu = 1500;
        let mut skewed = foreign();
        skewed.extend([wrong_mtu, tunnel("172.20.2.0/24")]);
        let ops = route_ops(&d, &skewed, &own);
        assert_eq!(ops.replace, vec![tunnel("172.20.1.0/24")]);
        assert!(ops.delete.is_empty());
        // A gone peer's tunnel route is ours even outside every known
        // CIDR (no native CIDR in tunnel mode); this node's stays.
        let gone = node_routes(TUNNEL, &own, &nodes()[..2], &local());
        let ops = route_ops(&gone, &actual, &own);
        assert_eq!(ops.delete, vec![tunnel("172.20.2.0/24")]);
        assert!(ops.replace.is_empty());
    }

    #[test]
    fn switch_native_to_tunnel_replaces_direct_routes() {
        // Restarted in tunnel mode; ipv4-native-routing-cidr may be gone.
        for native in [NATIVE, None] {
            let own = own(native);
            let mut actual = foreign();
            actual.push(direct("172.20.1.0/24", "192.168.10.101"));
            let d = node_routes(TUNNEL, &own, &nodes(), &local());
            let ops = route_ops(&d, &actual, &own);
            assert_eq!(
                ops.replace,
                vec![tunnel("172.20.1.0/24"), tunnel("172.20.2.0/24")]
            );
            assert!(ops.delete.is_empty(), "overwritten by replace");
            let after = apply(&actual, &ops);
            assert!(!after.contains(&direct("172.20.1.0/24", "192.168.10.101")));
            assert_eq!(route_ops(&d, &after, &own), RouteOps::default());
        }
    }

    #[test]
    fn switch_tunnel_to_native_removes_tunnel_routes() {
        let mut actual = foreign();
        actual.extend([tunnel("172.20.1.0/24"), tunnel("172.20.2.0/24")]);
        // With auto-direct-node-routes: w1 gets its direct route, w0
        // (behind a router) nothing.
        let own = own(NATIVE);
        let d = node_routes(NodeRouting::Direct, &own, &nodes(), &local());
        let ops = route_ops(&d, &actual, &own);
        assert_eq!(ops.replace, vec![direct("172.20.1.0/24", "192.168.10.101")]);
        assert_eq!(ops.delete, vec![tunnel("172.20.2.0/24")]);
        let after = apply(&actual, &ops);
        assert!(!after.iter().any(|r| r.dev == CILIUM_HOST && r.mtu == 1450));
        assert_eq!(route_ops(&d, &after, &own), RouteOps::default());
        // Without it: both go.
        let d = node_routes(NodeRouting::Network, &own, &nodes(), &local());
        let ops = route_ops(&d, &actual, &own);
        assert!(ops.replace.is_empty());
        assert_eq!(
            ops.delete,
            vec![tunnel("172.20.1.0/24"), tunnel("172.20.2.0/24")]
        );
        assert_eq!(apply(&actual, &ops), foreign());
    }

    #[test]
    fn ownership_is_precise() {
        let own = own(None);
        let remote: BTreeSet<Ipv4Net> = [n("172.20.1.0/24")].into();
        for r in foreign() {
            assert!(!is_owned(&r, &own, &remote), "{r:?}");
        }
        // Any gatewayed kernel route for a peer's pod CIDR.
        assert!(is_owned(
            &direct("172.20.1.0/24", "10.1.1.1"),
            &own,
            &remote
        ));
        // Not with another protocol.
        let mut boot = direct("172.20.1.0/24", "10.1.1.1");
        boot.proto = 3;
        assert!(!is_owned(&boot, &own, &remote));
        // A cilium_host route via another router is not ours.
        let other = cilium_host_route(n("172.20.7.0/24"), ip("172.20.7.1"), 1450);
        assert!(!is_owned(&other, &own, &remote));
        // A direct route outside any peer CIDR needs the native CIDR.
        assert!(!is_owned(
            &direct("172.20.5.0/24", "192.168.10.105"),
            &own,
            &remote
        ));
    }

    #[test]
    fn longest_prefix_device() {
        let mut l = local();
        l.push(LocalAddr {
            ifname: "eth2".into(),
            addr: n("192.168.10.100/25"),
        });
        let dev = connected_device(ip("192.168.10.101"), &l).unwrap();
        assert_eq!(dev.ifname, "eth2");
        assert!(connected_device(ip("127.0.0.2"), &l).is_none());
    }
}
