//! Tunnel routing with real packets: two "nodes" (namespaces joined by a
//! veth underlay), each with `cilium_host`, `cilium_vxlan` and one pod, the
//! datapath loaded in tunnel mode and the other node's pod in the ipcache
//! with a tunnel endpoint. The only route towards the other pod CIDR is
//! `via <router> dev cilium_host mtu 1450` (as the agent installs it).
//! Checks pod-to-pod and node-to-pod pings, the VNI on captured VXLAN
//! packets, the MTU edge, a switch back to native mode, and the GENEVE
//! error on a kernel without GENEVE. Needs root, iproute2, ping and
//! tcpdump; fails without them. Only `dpt<pid>-*` namespaces and bpffs
//! directories are touched, and removed on drop.

mod common;
mod two_nodes;

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{Netns, in_netns, run, tcp_bulk};
use datapath::net::{self, Route};
use datapath::{Datapath, TunnelConfig, TunnelProtocol};
use two_nodes::{Node, Plan, prepare, start, two_nodes};

const VXLAN_PORT: u16 = 8472;

const PLAN: Plan = Plan {
    tag: "t",
    underlay: 77,
    pods: 201,
    identities: 1000,
    underlay_ifs: ["dptu1", "dptu2"],
};

const VXLAN: TunnelConfig = TunnelConfig {
    protocol: TunnelProtocol::Vxlan,
    port: VXLAN_PORT,
};

/// Bring up `node` in tunnel mode with `peer`'s pod CIDR and pod behind
/// the tunnel endpoint `peer.underlay_ip`.
fn setup_node(node: &Node, peer: &Node) {
    in_netns(&node.ns, async || {
        prepare(node).await;
        let idx = net::setup_tunnel_device(TunnelProtocol::Vxlan, VXLAN_PORT)
            .await
            .unwrap();
        assert_eq!(
            net::setup_tunnel_device(TunnelProtocol::Vxlan, VXLAN_PORT)
                .await
                .unwrap(),
            idx,
            "idempotent: the same device is kept"
        );
        // The agent's route for the other node's pod CIDR.
        net::route_replace(&Route {
            dst: peer.pod_cidr,
            via: Some(node.router),
            dev: "cilium_host".into(),
            src: Some(node.router),
            mtu: 1450,
            proto: 4,
            scope_link: false,
        })
        .await
        .unwrap();
        let dp = start(node, peer, Some(VXLAN), 1450).await;
        let tep = Some(peer.underlay_ip);
        assert!(
            dp.ipcache_dump()
                .unwrap()
                .iter()
                .all(|(_, e)| e.tunnel_endpoint == tep),
            "ipcache_dump returns the tunnel endpoint"
        );
        assert!(node.dir.0.join("links/cilium_vxlan_ingress").exists());
    });
}

/// A VXLAN packet seen on the underlay: outer source, destination, VNI.
#[derive(Debug, PartialEq, Eq)]
struct Vxlan {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    vni: u32,
}

/// Capture `count` VXLAN packets on `dev` in `ns` while `traffic` runs.
fn capture(ns: &Netns, dev: &str, count: usize, traffic: impl FnOnce()) -> Vec<Vxlan> {
    let file = PathBuf::from(format!("/tmp/{}-{dev}.pcap", ns.0));
    let filter = format!("udp port {VXLAN_PORT}");
    let mut child = Command::new("ip")
        .args([
            "netns", "exec", &ns.0, "timeout", "15", "tcpdump", "-ni", dev,
        ])
        .args(["-U", "-c", &count.to_string(), "-w"])
        .arg(&file)
        .arg(&filter)
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    // Wait until it listens.
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening"), "tcpdump: {line}");
    traffic();
    assert!(
        child.wait().unwrap().success(),
        "tcpdump saw {count} packets"
    );
    let pcap = std::fs::read(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    parse_vxlan_pcap(&pcap)
}

/// Outer addresses and VNI of each packet of an Ethernet pcap file.
fn parse_vxlan_pcap(pcap: &[u8]) -> Vec<Vxlan> {
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[off + 8..off + 12].try_into().unwrap()) as usize;
        let p = &pcap[off + 16..off + 16 + len];
        off += 16 + len;
        assert_eq!(&p[12..14], &[0x08, 0x00], "IPv4 underlay");
        let ip = &p[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        assert_eq!(ip[9], 17, "UDP");
        let udp = &ip[ihl..];
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), VXLAN_PORT);
        let vx = &udp[8..];
        assert_eq!(vx[0] & 0x08, 0x08, "VXLAN I flag");
        out.push(Vxlan {
            src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
            vni: u32::from_be_bytes([0, vx[4], vx[5], vx[6]]),
        });
    }
    out
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn two_nodes_talk_through_vxlan_with_the_identity_in_the_vni() {
    let (n1, n2) = two_nodes(&PLAN);
    setup_node(&n1, &n2);
    setup_node(&n2, &n1);

    // Pod to remote pod: VNI = the sender's identity, both ways.
    let seen = capture(&n1.ns, "dptu1", 2, || {
        assert!(n1.pod.ping(n2.pod_ip), "pod1 -> pod2 over VXLAN");
    });
    assert_eq!(
        seen,
        vec![
            Vxlan {
                src: n1.underlay_ip,
                dst: n2.underlay_ip,
                vni: n1.pod_identity
            },
            Vxlan {
                src: n2.underlay_ip,
                dst: n1.underlay_ip,
                vni: n2.pod_identity
            },
        ]
    );
    // The programs encapsulate and decapsulate pod traffic themselves:
    // cilium_vxlan never carried it.
    let vxlan_dev_packets = |n: &Node| {
        let stat = |what| n.ns.dev_stat("cilium_vxlan", what);
        (stat("rx_packets"), stat("tx_packets"))
    };
    for n in [&n1, &n2] {
        assert_eq!(
            vxlan_dev_packets(n),
            (0, 0),
            "cilium_vxlan rx/tx in {}",
            n.ns.0
        );
    }
    // Bulk TCP (GSO packets through encapsulation and decapsulation): every
    // byte arrives, and the node stacks forward none of it.
    let forwarded = [n1.ns.forwarded(), n2.ns.forwarded()];
    assert_eq!(tcp_bulk(&n1.pod, &n2.pod, n2.pod_ip, 32 << 20), 32 << 20);
    assert_eq!([n1.ns.forwarded(), n2.ns.forwarded()], forwarded);

    // Node to remote pod (cil_from_host): VNI = the host identity 1.
    let seen = capture(&n1.ns, "dptu1", 2, || {
        assert!(n1.ns.ping(n2.pod_ip), "node1 -> pod2 over VXLAN");
    });
    assert_eq!(seen[0].vni, 1, "{seen:?}");
    assert_eq!(seen[1].vni, n2.pod_identity, "{seen:?}");

    // The pod route MTU 1450: 1422 bytes of payload fit, 1423 do not.
    let (ok, out) = n1.pod.ping_with(n2.pod_ip, &["-M", "do", "-s", "1422"]);
    assert!(ok, "ping -M do -s 1422: {out}");
    let (ok, out) = n1.pod.ping_with(n2.pod_ip, &["-M", "do", "-s", "1423"]);
    assert!(!ok, "ping -M do -s 1423 must fail: {out}");
    assert!(
        out.contains("message too long, mtu=1450"),
        "EMSGSIZE (iputils: \"local error: message too long, mtu=1450\") expected: {out}"
    );

    // A port change replaces the device; back to native mode removes the
    // overlay link and the devices.
    in_netns(&n1.ns, async || {
        let old = net::setup_tunnel_device(TunnelProtocol::Vxlan, VXLAN_PORT)
            .await
            .unwrap();
        let new = net::setup_tunnel_device(TunnelProtocol::Vxlan, 4789)
            .await
            .unwrap();
        assert_ne!(old, new, "re-created with the new port");
        net::delete_tunnel_devices().await.unwrap();
        net::delete_tunnel_devices().await.unwrap();
        let mut dp = Datapath::load(&n1.config(None)).unwrap();
        dp.attach_endpoint("lxcdpt0").unwrap();
        assert!(!n1.dir.0.join("links/cilium_vxlan_ingress").exists());
        // Tunnel mode without its device is refused with a clear error.
        let err = Datapath::load(&n1.config(Some(VXLAN)))
            .err()
            .expect("no cilium_vxlan");
        assert!(err.to_string().contains("cilium_vxlan"), "{err}");
    });
    assert!(
        !run(&["ip", "-n", &n1.ns.0, "link", "show", "cilium_vxlan"]),
        "cilium_vxlan removed"
    );
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn geneve_needs_kernel_support() {
    let pid = std::process::id();
    let ns = Netns::new(format!("dpt{pid}-geneve"));
    in_netns(&ns, async || {
        match net::setup_tunnel_device(TunnelProtocol::Geneve, 6081).await {
            // A kernel with GENEVE: the device is external on 6081.
            Ok(_) => assert!(run(&[
                "ip",
                "-n",
                &ns.0,
                "-d",
                "link",
                "show",
                "cilium_geneve"
            ])),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with("tunnel-protocol geneve: this kernel cannot create a GENEVE device (CONFIG_GENEVE is not enabled)"),
                    "{msg}"
                );
            }
        }
    });
}
