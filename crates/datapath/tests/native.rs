//! Native routing with real packets: two "nodes" (namespaces joined by a
//! veth underlay), each with `cilium_host` and one pod, the datapath loaded
//! in native mode with the underlay as native device, and the other
//! node's pod CIDR routed via the other node's underlay IP (as
//! `auto-direct-node-routes` installs it). Pod traffic between the nodes
//! is routed by the programs (FIB lookup and redirect on the sending node,
//! straight into the pod's namespace on the receiving one): the node
//! stacks forward none of it, TTLs drop by one per node as with kernel
//! routing, bulk TCP arrives intact. What the stack must answer still gets
//! its ICMP errors (TTL exceeded, fragmentation needed). Needs root,
//! iproute2 and ping; fails without them. Only `dpt<pid>-*` namespaces and
//! bpffs directories are touched, and removed on drop.

mod common;

mod two_nodes;

use common::{in_netns, run, tcp_bulk};
use datapath::net::{self, Route};
use two_nodes::{Node, Plan, prepare, start, two_nodes};

const PLAN: Plan = Plan {
    tag: "n",
    underlay: 78,
    pods: 202,
    identities: 2000,
    underlay_ifs: ["dptn1", "dptn2"],
};

/// Bring up `node` in native mode with a route to `peer`'s pod CIDR and
/// `peer`'s pod in the ipcache.
fn setup_node(node: &Node, peer: &Node) {
    in_netns(&node.ns, async || {
        prepare(node).await;
        // The agent's routes: the local pod CIDR via cilium_host, the
        // peer's via the peer.
        net::route_replace(&Route {
            dst: node.pod_cidr,
            via: Some(node.router),
            dev: "cilium_host".into(),
            src: Some(node.router),
            mtu: 0,
            proto: 2,
            scope_link: false,
        })
        .await
        .unwrap();
        net::route_replace(&Route {
            dst: peer.pod_cidr,
            via: Some(peer.underlay_ip),
            dev: node.underlay_if.into(),
            src: None,
            mtu: 0,
            proto: 2,
            scope_link: false,
        })
        .await
        .unwrap();
        start(node, peer, None, 0).await;
    });
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn pods_on_two_nodes_talk_without_the_node_stacks() {
    let (n1, n2) = two_nodes(&PLAN);
    setup_node(&n1, &n2);
    setup_node(&n2, &n1);
    let forwarded = || [n1.ns.forwarded(), n2.ns.forwarded()];
    let before = forwarded();

    // Pod to remote pod and back: one hop per node (TTL 64 -> 62), as
    // with kernel routing.
    let (ok, out) = n1.pod.ping_with(n2.pod_ip, &[]);
    assert!(ok && out.contains("ttl=62"), "pod1 -> pod2: {out}");
    // The receiving node puts the packets straight into the pod's
    // namespace: pod2's eth0 receives the two requests, its host-side
    // veth transmits neither (only, maybe, an ARP reply).
    let stats = || {
        (
            n2.pod.dev_stat("eth0", "rx_packets"),
            n2.ns.dev_stat("lxcdpt0", "tx_packets"),
        )
    };
    let (rx, tx) = stats();
    assert!(n1.pod.ping(n2.pod_ip), "pod1 -> pod2");
    let (rx2, tx2) = stats();
    assert!(
        rx2 - rx >= tx2 - tx + 2,
        "pod2 eth0 rx {rx}->{rx2}, lxcdpt0 tx {tx}->{tx2}"
    );
    // Bulk TCP (GSO packets) both ways: every byte arrives.
    assert_eq!(tcp_bulk(&n1.pod, &n2.pod, n2.pod_ip, 32 << 20), 32 << 20);
    assert_eq!(tcp_bulk(&n2.pod, &n1.pod, n1.pod_ip, 8 << 20), 8 << 20);
    assert_eq!(forwarded(), before, "the node stacks forwarded pod traffic");

    // Node to remote pod (the node's own stack sends it), pod to the
    // remote node's own address (a hostNetwork pod there).
    assert!(n1.ns.ping(n2.pod_ip), "node1 -> pod2");
    assert!(n1.pod.ping(n2.underlay_ip), "pod1 -> node2");

    // An expiring TTL is left to the stack, which answers it.
    let (ok, out) = n1.pod.ping_with(n2.pod_ip, &["-t", "1"]);
    assert!(
        !ok && out.contains("Time to live exceeded"),
        "ping -t 1: {out}"
    );

    // A locked route MTU on node1 (forwarding ignores an unlocked one):
    // a packet too big for it is left to the stack, which sends
    // "fragmentation needed"; one that fits is routed by the programs;
    // bulk TCP adapts (path MTU discovery; GSO segments checked against
    // the route).
    let (cidr, via) = (n2.pod_cidr.to_string(), n2.underlay_ip.to_string());
    assert!(run(&[
        "ip",
        "-n",
        &n1.ns.0,
        "route",
        "change",
        &cidr,
        "via",
        &via,
        "dev",
        n1.underlay_if,
        "proto",
        "kernel",
        "mtu",
        "lock",
        "1400",
    ]));
    let (ok, out) = n1.pod.ping_with(n2.pod_ip, &["-M", "do", "-s", "1373"]);
    assert!(
        !ok && out.contains("mtu = 1400"),
        "ping -M do -s 1373: {out}"
    );
    let before = forwarded();
    let (ok, out) = n1.pod.ping_with(n2.pod_ip, &["-M", "do", "-s", "1372"]);
    assert!(ok, "ping -M do -s 1372: {out}");
    assert_eq!(tcp_bulk(&n1.pod, &n2.pod, n2.pod_ip, 8 << 20), 8 << 20);
    assert_eq!(forwarded(), before, "the node stacks forwarded pod traffic");
}
