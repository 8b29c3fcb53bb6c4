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
//! The rows go to the `routes` table ([`crate::tables::RouteRow`]), whose
//! reconciler replaces them in the kernel. Its prune removes the routes
//! [`stale_routes`] picks: routes of protocol `kernel` that are ours
//! ([`RouteOwnership::owns`]) and that no row wants any more, so a restart
//! in the other mode replaces or removes the old mode's routes:
//! - `via <router ip> dev cilium_host` (this node's pod CIDRs, tunnel-mode
//!   routes, maybe of a peer that is gone);
//! - a gatewayed route not on `cilium_host` inside
//!   `ipv4-native-routing-cidr` (a direct route, maybe of a peer that is
//!   gone);
//! - `<ip>/32 dev lxc… scope link` (an endpoint route);
//! - any route this agent installed since it started.
//!
//! Kernel-made connected routes and everybody else's routes are never
//! touched.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use api::cilium::node::CiliumNode;
use ipnet::Ipv4Net;

use crate::ipcache::{node_addresses, node_pod_cidrs};
use crate::tables::{RouteOwner, RouteRow};

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
    /// This node's pod CIDRs (routed locally, not to a peer).
    pub pod_cidrs: Vec<Ipv4Net>,
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
    pub routes: Vec<RouteRow>,
    /// Peers skipped.
    pub skipped: Vec<SkippedPeer>,
}

/// Logs each skipped peer once, until it is no longer skipped.
#[derive(Debug, Default)]
pub struct SkipWarnings(BTreeSet<(String, Option<Ipv4Addr>)>);

impl SkipWarnings {
    /// Warn about newly skipped peers in `mode`.
    pub fn report(&mut self, mode: NodeRouting, skipped: &[SkippedPeer]) {
        let what = match mode {
            NodeRouting::Tunnel { .. } => {
                "tunnel: skipping peer, its pod CIDR is not routed through the tunnel"
            }
            NodeRouting::Direct | NodeRouting::Network => {
                "auto-direct-node-routes: skipping peer, its pod CIDR is not routed directly"
            }
        };
        for s in skipped {
            if self.0.insert((s.node.clone(), s.ip)) {
                tracing::warn!(
                    peer = %s.node,
                    peer_ip = %s.ip.map(|i| i.to_string()).unwrap_or_default(),
                    reason = s.reason,
                    "{what}"
                );
            }
        }
        self.0
            .retain(|w| skipped.iter().any(|s| (s.node.clone(), s.ip) == *w));
    }
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
            out.routes.push(RouteRow {
                dst,
                via: Some(via),
                dev: dev.to_string(),
                src,
                mtu,
                scope_link: false,
                owner: RouteOwner::NodeRoutes,
            });
        }
    }
    out
}

/// A route as the kernel lists it (protocol `kernel` or other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledRoute {
    /// The route.
    pub route: RouteRow,
    /// Its protocol number.
    pub proto: u8,
}

/// What makes a kernel route ours (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOwnership {
    /// Router IP (on `cilium_host`).
    pub router_ip: Ipv4Addr,
    /// `ipv4-native-routing-cidr`.
    pub native_cidr: Option<Ipv4Net>,
}

impl RouteOwnership {
    /// Whether a kernel route is one this agent owns by its shape.
    pub fn owns(&self, r: &InstalledRoute) -> bool {
        let rt = &r.route;
        r.proto == PROTO_KERNEL
            && match rt.via {
                Some(via) => {
                    (rt.dev == CILIUM_HOST && via == self.router_ip)
                        || (rt.dev != CILIUM_HOST
                            && self.native_cidr.is_some_and(|c| c.contains(&rt.dst)))
                }
                None => rt.scope_link && rt.dst.prefix_len() == 32 && rt.dev.starts_with("lxc"),
            }
    }
}

/// The installed routes prune must delete: ours (by shape, or installed
/// by this agent: `installed_by_us`) and not wanted by any row. A wanted
/// destination is never deleted: the row's replace overwrites whatever
/// route is there (deleting it too would remove the new one).
pub fn stale_routes<'a>(
    installed: &'a [InstalledRoute],
    wanted: &BTreeSet<Ipv4Net>,
    own: &RouteOwnership,
    installed_by_us: &BTreeSet<Ipv4Net>,
) -> Vec<&'a RouteRow> {
    installed
        .iter()
        .filter(|r| r.proto == PROTO_KERNEL && !wanted.contains(&r.route.dst))
        .filter(|r| own.owns(r) || installed_by_us.contains(&r.route.dst))
        .map(|r| &r.route)
        .collect()
}

/// A route handing pod traffic to `cilium_host`: `<cidr> via <router>
/// dev cilium_host src <router> [mtu <mtu>]`. This node's pod CIDRs (no
/// MTU) and, in tunnel mode, other nodes' (the route MTU).
pub fn cilium_host_route(cidr: Ipv4Net, router: Ipv4Addr, mtu: u32, owner: RouteOwner) -> RouteRow {
    RouteRow {
        dst: cidr.trunc(),
        via: Some(router),
        dev: CILIUM_HOST.to_string(),
        src: Some(router),
        mtu,
        scope_link: false,
        owner,
    }
}

/// `<ip>/32 dev <lxc> scope link` (`enable-endpoint-routes`).
pub fn endpoint_route(ip: Ipv4Addr, host_ifname: &str) -> RouteRow {
    RouteRow {
        dst: Ipv4Net::new(ip, 32).expect("/32 is valid"),
        via: None,
        dev: host_ifname.to_string(),
        src: None,
        mtu: 0,
        scope_link: true,
        owner: RouteOwner::Endpoint,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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

    fn own() -> OwnNode {
        OwnNode {
            name: "k8s-ctr".into(),
            internal_ip: Some(ip("192.168.10.100")),
            router_ip: ip("172.20.0.1"),
            pod_cidrs: vec![n("172.20.0.0/24")],
        }
    }

    fn ownership(native: Option<&str>) -> RouteOwnership {
        RouteOwnership {
            router_ip: ip("172.20.0.1"),
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

    fn direct(dst: &str, via: &str) -> RouteRow {
        RouteRow {
            dst: n(dst),
            via: Some(ip(via)),
            dev: "eth1".into(),
            src: None,
            mtu: 0,
            scope_link: false,
            owner: RouteOwner::NodeRoutes,
        }
    }

    fn tunnel(dst: &str) -> RouteRow {
        cilium_host_route(n(dst), ip("172.20.0.1"), 1450, RouteOwner::NodeRoutes)
    }

    fn kernel(route: RouteRow) -> InstalledRoute {
        InstalledRoute {
            route,
            proto: PROTO_KERNEL,
        }
    }

    /// Routes in the kernel that no node-route row may remove: foreign ones
    /// and other writers' rows (this node's pod CIDR, an endpoint route).
    fn foreign() -> Vec<InstalledRoute> {
        vec![
            // Connected route of eth1.
            kernel(RouteRow {
                dst: n("192.168.10.0/24"),
                via: None,
                dev: "eth1".into(),
                src: Some(ip("192.168.10.100")),
                mtu: 0,
                scope_link: true,
                owner: RouteOwner::NodeRoutes,
            }),
            // Someone else's gatewayed route outside every pod CIDR.
            kernel(direct("10.99.0.0/16", "192.168.10.1")),
        ]
    }

    fn other_writers() -> Vec<RouteRow> {
        vec![
            cilium_host_route(n("172.20.0.0/24"), ip("172.20.0.1"), 0, RouteOwner::PodCidr),
            endpoint_route(ip("172.20.0.7"), "lxc1234"),
        ]
    }

    /// What the routes reconciler does with `rows` over `installed`: every
    /// row is replaced (by destination), then prune deletes stale routes.
    fn reconcile(
        rows: &[RouteRow],
        installed: &[InstalledRoute],
        own: &RouteOwnership,
        installed_by_us: &BTreeSet<Ipv4Net>,
    ) -> (Vec<InstalledRoute>, Vec<RouteRow>) {
        let mut kernel: BTreeMap<Ipv4Net, InstalledRoute> =
            installed.iter().map(|r| (r.route.dst, r.clone())).collect();
        for r in rows {
            kernel.insert(r.dst, self::kernel(r.clone()));
        }
        let after: Vec<InstalledRoute> = kernel.into_values().collect();
        let wanted: BTreeSet<Ipv4Net> = rows.iter().map(|r| r.dst).collect();
        let stale: Vec<RouteRow> = stale_routes(&after, &wanted, own, installed_by_us)
            .into_iter()
            .cloned()
            .collect();
        let after = after
            .into_iter()
            .filter(|r| !stale.contains(&r.route))
            .collect();
        (after, stale)
    }

    fn with_other_writers(mut rows: Vec<RouteRow>) -> Vec<RouteRow> {
        rows.extend(other_writers());
        rows
    }

    #[test]
    fn same_l2_peer_gets_a_direct_route_and_other_subnet_is_skipped() {
        let d = node_routes(NodeRouting::Direct, &own(), &nodes(), &local());
        assert_eq!(d.routes, vec![direct("172.20.1.0/24", "192.168.10.101")]);
        assert_eq!(
            d.skipped,
            vec![SkippedPeer {
                node: "k8s-w0".into(),
                ip: Some(ip("192.168.20.100")),
                reason: "not on a directly connected subnet (needs a gateway)",
            }]
        );
    }

    #[test]
    fn tunnel_mode_routes_every_peer_through_cilium_host() {
        let d = node_routes(TUNNEL, &own(), &nodes(), &local());
        assert!(d.skipped.is_empty());
        assert_eq!(
            d.routes,
            vec![tunnel("172.20.1.0/24"), tunnel("172.20.2.0/24")]
        );
        let r = &d.routes[1];
        assert_eq!(r.via, Some(ip("172.20.0.1")));
        assert_eq!(r.src, Some(ip("172.20.0.1")));
        assert_eq!((r.dev.as_str(), r.mtu), ("cilium_host", 1450));
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
            let d = node_routes(mode, &own(), &ns, &local());
            assert!(d.routes.is_empty());
            assert_eq!(
                d.skipped,
                vec![SkippedPeer {
                    node: "k8s-w0".into(),
                    ip: None,
                    reason: "no InternalIP",
                }]
            );
        }
        let d = node_routes(NodeRouting::Network, &own(), &ns, &local());
        assert_eq!(d.routes.len() + d.skipped.len(), 0);
    }

    #[test]
    fn native_peers_come_and_go_and_foreign_routes_stay() {
        let own_routes = ownership(NATIVE);
        let d = node_routes(NodeRouting::Direct, &own(), &nodes(), &local());
        let stale = direct("172.20.5.0/24", "192.168.10.105");
        let moved = direct("172.20.1.0/24", "192.168.10.99");
        let mut installed = foreign();
        installed.extend([kernel(stale.clone()), kernel(moved)]);
        let rows = with_other_writers(d.routes);
        let (after, deleted) = reconcile(&rows, &installed, &own_routes, &BTreeSet::new());
        assert_eq!(deleted, vec![stale]);
        assert!(after.contains(&kernel(direct("172.20.1.0/24", "192.168.10.101"))));
        // Everything removed when the peers leave; foreign routes stay.
        let gone = node_routes(NodeRouting::Direct, &own(), &[], &local());
        let (after, deleted) = reconcile(
            &with_other_writers(gone.routes),
            &after,
            &own_routes,
            &BTreeSet::new(),
        );
        assert_eq!(deleted, vec![direct("172.20.1.0/24", "192.168.10.101")]);
        let mut expected = foreign();
        expected.extend(other_writers().into_iter().map(kernel));
        expected.sort_by_key(|r| r.route.dst);
        assert_eq!(after, expected);
    }

    #[test]
    fn tunnel_mode_drops_gone_peers_and_keeps_this_node() {
        let own_routes = ownership(None);
        let d = node_routes(TUNNEL, &own(), &nodes(), &local());
        let (after, deleted) = reconcile(
            &with_other_writers(d.routes),
            &foreign(),
            &own_routes,
            &BTreeSet::new(),
        );
        assert!(deleted.is_empty());
        // A gone peer's tunnel route is ours even outside every known
        // CIDR (no native CIDR in tunnel mode); this node's stays.
        let gone = node_routes(TUNNEL, &own(), &nodes()[..2], &local());
        let (_, deleted) = reconcile(
            &with_other_writers(gone.routes),
            &after,
            &own_routes,
            &BTreeSet::new(),
        );
        assert_eq!(deleted, vec![tunnel("172.20.2.0/24")]);
    }

    #[test]
    fn switch_native_to_tunnel_replaces_direct_routes() {
        // Restarted in tunnel mode; ipv4-native-routing-cidr may be gone.
        for native in [NATIVE, None] {
            let mut installed = foreign();
            installed.push(kernel(direct("172.20.1.0/24", "192.168.10.101")));
            let d = node_routes(TUNNEL, &own(), &nodes(), &local());
            let (after, deleted) =
                reconcile(&d.routes, &installed, &ownership(native), &BTreeSet::new());
            assert!(deleted.is_empty(), "overwritten by replace");
            assert!(!after.contains(&kernel(direct("172.20.1.0/24", "192.168.10.101"))));
            assert!(after.contains(&kernel(tunnel("172.20.1.0/24"))));
        }
    }

    #[test]
    fn switch_tunnel_to_native_removes_tunnel_routes() {
        let mut installed = foreign();
        installed.extend([
            kernel(tunnel("172.20.1.0/24")),
            kernel(tunnel("172.20.2.0/24")),
        ]);
        // With auto-direct-node-routes: w1 gets its direct route, w0
        // (behind a router) nothing.
        let own_routes = ownership(NATIVE);
        let d = node_routes(NodeRouting::Direct, &own(), &nodes(), &local());
        let (after, deleted) = reconcile(&d.routes, &installed, &own_routes, &BTreeSet::new());
        assert_eq!(deleted, vec![tunnel("172.20.2.0/24")]);
        assert!(
            !after
                .iter()
                .any(|r| r.route.dev == CILIUM_HOST && r.route.mtu == 1450)
        );
        // Without it: both go.
        let d = node_routes(NodeRouting::Network, &own(), &nodes(), &local());
        let (after, deleted) = reconcile(&d.routes, &installed, &own_routes, &BTreeSet::new());
        assert_eq!(
            deleted,
            vec![tunnel("172.20.1.0/24"), tunnel("172.20.2.0/24")]
        );
        let mut expected = foreign();
        expected.sort_by_key(|r| r.route.dst);
        assert_eq!(after, expected);
    }

    #[test]
    fn ownership_is_precise() {
        let own_routes = ownership(None);
        for r in foreign() {
            assert!(!own_routes.owns(&r), "{r:?}");
        }
        for r in other_writers() {
            assert!(own_routes.owns(&kernel(r.clone())), "{r:?}");
        }
        // Not with another protocol.
        let boot = InstalledRoute {
            route: tunnel("172.20.1.0/24"),
            proto: 3,
        };
        assert!(!own_routes.owns(&boot));
        assert!(
            stale_routes(
                &[boot],
                &BTreeSet::new(),
                &own_routes,
                &[n("172.20.1.0/24")].into()
            )
            .is_empty()
        );
        // A cilium_host route via another router is not ours.
        let other = cilium_host_route(
            n("172.20.7.0/24"),
            ip("172.20.7.1"),
            1450,
            RouteOwner::NodeRoutes,
        );
        assert!(!own_routes.owns(&kernel(other)));
        // A direct route needs the native CIDR, or to be one we installed.
        let peer = kernel(direct("172.20.5.0/24", "192.168.10.105"));
        assert!(!own_routes.owns(&peer));
        assert!(ownership(NATIVE).owns(&peer));
        let ours: BTreeSet<Ipv4Net> = [n("172.20.5.0/24")].into();
        assert_eq!(
            stale_routes(
                std::slice::from_ref(&peer),
                &BTreeSet::new(),
                &own_routes,
                &ours
            ),
            vec![&peer.route]
        );
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
