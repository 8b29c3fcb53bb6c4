//! The two-node fixture of the native and tunnel tests: two "nodes"
//! (namespaces joined by a veth underlay), each with one pod, and the
//! steps every node takes whatever the routing mode: sysctls and
//! `cilium_host`, the pod's veth, the datapath loaded with the pod's
//! `cilium_lxc` entry and programs, the peer's pod CIDR and pod in the
//! ipcache.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use datapath::net;
use datapath::{Datapath, DatapathConfig, EndpointInfo, IpcacheEntry, TunnelConfig};
use ipnet::Ipv4Net;

use crate::common::{BpfDir, Netns, run};

/// One node of the test.
pub struct Node {
    pub ns: Netns,
    pub pod: Netns,
    pub underlay_if: &'static str,
    pub underlay_ip: Ipv4Addr,
    pub router: Ipv4Addr,
    pub pod_cidr: Ipv4Net,
    pub pod_ip: Ipv4Addr,
    pub pod_identity: u32,
    pub dir: BpfDir,
}

/// How a test numbers its two nodes.
pub struct Plan {
    /// Namespace and bpffs tag (`tn`, `nn`): `dpt<pid>-<tag>n<i>`.
    pub tag: &'static str,
    /// Underlay 192.168.<underlay>.<i>/24.
    pub underlay: u8,
    /// Pod CIDRs 10.<pods>.<i>.0/24.
    pub pods: u8,
    /// Pod identities <identities> + i.
    pub identities: u32,
    /// The underlay veth's two ends.
    pub underlay_ifs: [&'static str; 2],
}

impl Node {
    fn new(plan: &Plan, pid: u32, i: u8) -> Self {
        let tag = plan.tag;
        Self {
            ns: Netns::new(format!("dpt{pid}-{tag}n{i}")),
            pod: Netns::new(format!("dpt{pid}-{tag}p{i}")),
            underlay_if: plan.underlay_ifs[usize::from(i - 1)],
            underlay_ip: Ipv4Addr::new(192, 168, plan.underlay, i),
            router: Ipv4Addr::new(10, plan.pods, i, 1),
            pod_cidr: Ipv4Net::new(Ipv4Addr::new(10, plan.pods, i, 0), 24).unwrap(),
            pod_ip: Ipv4Addr::new(10, plan.pods, i, 10),
            pod_identity: plan.identities + u32::from(i),
            dir: BpfDir(PathBuf::from(format!("/sys/fs/bpf/dpt{pid}-{tag}{i}"))),
        }
    }

    /// The datapath configuration of this node.
    pub fn config(&self, tunnel: Option<TunnelConfig>) -> DatapathConfig {
        DatapathConfig {
            bpf_dir: self.dir.0.clone(),
            router_ip: self.router,
            node_ip: self.underlay_ip,
            native_devices: vec![self.underlay_if.to_string()],
            cluster_id: 0,
            tunnel,
        }
    }
}

/// Two nodes joined by a veth underlay, addressed and up.
pub fn two_nodes(plan: &Plan) -> (Node, Node) {
    let pid = std::process::id();
    let (n1, n2) = (Node::new(plan, pid, 1), Node::new(plan, pid, 2));
    assert!(run(&[
        "ip",
        "-n",
        &n1.ns.0,
        "link",
        "add",
        n1.underlay_if,
        "type",
        "veth",
        "peer",
        "name",
        n2.underlay_if,
        "netns",
        &n2.ns.0,
    ]));
    for n in [&n1, &n2] {
        let (ns, dev) = (n.ns.0.as_str(), n.underlay_if);
        let addr = format!("{}/24", n.underlay_ip);
        assert!(run(&["ip", "-n", ns, "addr", "add", &addr, "dev", dev]));
        assert!(run(&["ip", "-n", ns, "link", "set", dev, "up"]));
    }
    (n1, n2)
}

/// Forwarding on, reverse-path filters off, `cilium_host` with the router
/// IP (run inside the node's namespace).
pub async fn prepare(node: &Node) {
    for (k, v) in [
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        ("net.ipv4.ip_forward", "1"),
    ] {
        net::sysctl_set(k, v).unwrap();
    }
    net::setup_host_devices(node.router, 1500).await.unwrap();
}

/// The pod's veth (`lxcdpt0`, routes with `route_mtu`), the datapath
/// loaded with `tunnel`, the pod in `cilium_lxc` with its programs, and
/// `peer`'s pod CIDR and pod in the ipcache behind `tunnel_endpoint` (run
/// inside the node's namespace, after [`prepare`] and the mode's routes).
pub async fn start(
    node: &Node,
    peer: &Node,
    tunnel: Option<TunnelConfig>,
    route_mtu: u32,
) -> Datapath {
    let l = net::create_endpoint_link(
        &node.pod.path(),
        "lxcdpt0",
        "eth0",
        node.pod_ip,
        node.router,
        1500,
        route_mtu,
    )
    .await
    .unwrap();
    let mut dp = Datapath::load(&node.config(tunnel)).unwrap();
    let info = EndpointInfo {
        ifindex: l.host_ifindex,
        lxc_id: 11,
        flags: 0,
        mac: l.container_mac,
        node_mac: l.host_mac,
        sec_id: node.pod_identity,
    };
    dp.lxc_upsert(node.pod_ip, &info).unwrap();
    dp.attach_endpoint("lxcdpt0").unwrap();
    let cidr = IpcacheEntry {
        sec_identity: 2,
        tunnel_endpoint: tunnel.map(|_| peer.underlay_ip),
        encrypt_key: 0,
    };
    dp.ipcache_upsert(peer.pod_cidr, &cidr).unwrap();
    let pod = IpcacheEntry {
        sec_identity: peer.pod_identity,
        ..cidr
    };
    dp.ipcache_upsert(Ipv4Net::from(peer.pod_ip), &pod).unwrap();
    dp
}
