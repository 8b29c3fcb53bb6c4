//! The ipcache: which security identity every IP prefix has.
//!
//! [`compute`] is the controller, a pure function of its inputs (local
//! endpoints, this node's addresses, other nodes' `CiliumNode`s and
//! `CiliumEndpoint`s) producing the desired rows, which the ipcache
//! controller task ([`crate::tasks`]) syncs into the `ipcache` table, the
//! only writer of that table; its reconciler writes `cilium_ipcache_v2`.
//!
//! When several sources name one prefix, the most specific wins: a local
//! endpoint, then a remote endpoint (CEP), then a node address, then a pod
//! CIDR, then the `0.0.0.0/0` world entry.
//!
//! In tunnel mode, what lives behind another node's tunnel (its pod CIDRs,
//! its router IP and its endpoints) carries that node's InternalIP as the
//! tunnel endpoint; node InternalIPs themselves, local entries and the
//! world entry never do.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use api::cilium::endpoint::CiliumEndpoint;
use api::cilium::node::CiliumNode;
use ipnet::Ipv4Net;

/// Where an ipcache row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The `0.0.0.0/0` default.
    Reserved,
    /// A CiliumNode's address or pod CIDR (`custom-resource`).
    NodeResource,
    /// A node's InternalIP (`kube-apiserver`, as upstream learns it from
    /// the Node object).
    KubeApiserver,
    /// A CiliumEndpoint of another node.
    CustomResource,
    /// This node's own addresses and endpoints.
    Local,
}

impl Source {
    /// The name `cilium-dbg ip list` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Reserved => "reserved",
            Source::NodeResource | Source::CustomResource => "custom-resource",
            Source::KubeApiserver => "kube-apiserver",
            Source::Local => "local",
        }
    }

    /// Precedence when sources collide (higher wins).
    fn rank(self) -> u8 {
        match self {
            Source::Reserved => 0,
            Source::NodeResource => 1,
            Source::KubeApiserver => 2,
            Source::CustomResource => 3,
            Source::Local => 4,
        }
    }
}

/// One desired ipcache row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcacheRow {
    /// The prefix (the key).
    pub prefix: Ipv4Net,
    /// Security identity.
    pub identity: u32,
    /// Where it came from.
    pub source: Source,
    /// Node hosting the prefix, when known.
    pub host_ip: Option<Ipv4Addr>,
    /// Where to encapsulate traffic to the prefix (tunnel mode only).
    pub tunnel_endpoint: Option<Ipv4Addr>,
    /// Identity labels when the source carries them (endpoints); reserved
    /// identities are labelled at render time.
    pub labels: Vec<String>,
}

/// The desired ipcache.
pub type IpcacheTable = BTreeMap<Ipv4Net, IpcacheRow>;

/// A local endpoint, as the ipcache needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    /// Its IP.
    pub ip: Ipv4Addr,
    /// Its identity.
    pub identity: u32,
    /// Its identity labels.
    pub labels: Vec<String>,
}

/// This node's addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalNode {
    /// Node name (its CiliumNode is skipped).
    pub name: String,
    /// InternalIP.
    pub internal_ip: Option<Ipv4Addr>,
    /// Router IP (CiliumInternalIP).
    pub router_ip: Option<Ipv4Addr>,
    /// Health IP.
    pub health_ip: Option<Ipv4Addr>,
    /// Other addresses on local interfaces (all `reserved:host`).
    pub other_ips: Vec<Ipv4Addr>,
}

fn host32(ip: Ipv4Addr) -> Ipv4Net {
    Ipv4Net::new(ip, 32).expect("/32 is valid")
}

fn put(table: &mut IpcacheTable, prefix: Ipv4Net, row: IpcacheRow) {
    match table.get(&prefix) {
        Some(old) if old.source.rank() >= row.source.rank() => {}
        _ => {
            table.insert(prefix, IpcacheRow { prefix, ..row });
        }
    }
}

fn row(identity: u32, source: Source, host_ip: Option<Ipv4Addr>) -> IpcacheRow {
    IpcacheRow {
        prefix: Ipv4Net::default(),
        identity,
        source,
        host_ip,
        tunnel_endpoint: None,
        labels: Vec::new(),
    }
}

/// A row for something behind `node_ip`'s tunnel: the tunnel endpoint is
/// the hosting node when `tunnel` is on.
fn behind(identity: u32, source: Source, node_ip: Option<Ipv4Addr>, tunnel: bool) -> IpcacheRow {
    IpcacheRow {
        tunnel_endpoint: node_ip.filter(|_| tunnel),
        ..row(identity, source, node_ip)
    }
}

/// InternalIP and CiliumInternalIP of a CiliumNode.
pub fn node_addresses(node: &CiliumNode) -> (Option<Ipv4Addr>, Option<Ipv4Addr>) {
    let find = |ty: &str| {
        node.spec
            .addresses
            .iter()
            .flatten()
            .find(|a| a.type_ == ty)
            .and_then(|a| a.ip.parse::<Ipv4Addr>().ok())
    };
    (find("InternalIP"), find("CiliumInternalIP"))
}

/// Pod CIDRs of a CiliumNode (IPv4 only; unparsable ones skipped).
pub fn node_pod_cidrs(node: &CiliumNode) -> Vec<Ipv4Net> {
    node.spec
        .ipam
        .iter()
        .flat_map(|i| i.pod_cidrs.iter().flatten())
        .filter_map(|c| c.parse::<Ipv4Net>().ok())
        .map(|c| c.trunc())
        .collect()
}

/// The desired ipcache; `tunnel` is true in tunnel mode.
pub fn compute(
    local: &LocalNode,
    endpoints: &[LocalEndpoint],
    nodes: &[CiliumNode],
    ceps: &[CiliumEndpoint],
    tunnel: bool,
) -> IpcacheTable {
    let mut t = IpcacheTable::new();
    put(
        &mut t,
        Ipv4Net::default(),
        row(identity::WORLD, Source::Reserved, None),
    );
    for node in nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(local.name.as_str()))
    {
        put_remote_node(&mut t, local, node, tunnel);
    }
    for cep in ceps {
        put_remote_endpoint(&mut t, local, cep, tunnel);
    }
    put_local(&mut t, local, endpoints);
    t
}

/// Another node's pod CIDRs, InternalIP and router IP.
fn put_remote_node(t: &mut IpcacheTable, local: &LocalNode, node: &CiliumNode, tunnel: bool) {
    let (internal, cilium_internal) = node_addresses(node);
    if internal.is_some() && internal == local.internal_ip {
        return; // a stale copy of this node
    }
    for cidr in node_pod_cidrs(node) {
        let r = behind(identity::WORLD, Source::NodeResource, internal, tunnel);
        put(t, cidr, r);
    }
    if let Some(ip) = internal {
        let r = row(identity::REMOTE_NODE, Source::KubeApiserver, Some(ip));
        put(t, host32(ip), r);
    }
    if let Some(ip) = cilium_internal {
        // The router IP sits in the node's pod CIDR, behind its tunnel.
        let r = behind(
            identity::REMOTE_NODE,
            Source::NodeResource,
            internal,
            tunnel,
        );
        put(t, host32(ip), r);
    }
}

/// The addresses of another node's endpoint, with its identity.
fn put_remote_endpoint(
    t: &mut IpcacheTable,
    local: &LocalNode,
    cep: &CiliumEndpoint,
    tunnel: bool,
) {
    let Some(status) = &cep.status else { return };
    let Some(net) = &status.networking else {
        return;
    };
    let node_ip = net.node.as_deref().and_then(|n| n.parse::<Ipv4Addr>().ok());
    if node_ip.is_some() && node_ip == local.internal_ip {
        return; // ours: the local endpoint table is authoritative
    }
    let Some(ident) = &status.identity else {
        return;
    };
    let Ok(identity) = u32::try_from(ident.id) else {
        return;
    };
    for ip in net
        .addressing
        .iter()
        .filter_map(|a| a.ipv4.as_deref())
        .filter_map(|a| a.parse::<Ipv4Addr>().ok())
    {
        let mut r = behind(identity, Source::CustomResource, node_ip, tunnel);
        r.labels = ident.labels.clone().unwrap_or_default();
        put(t, host32(ip), r);
    }
}

/// This node's addresses (host, health) and its endpoints.
fn put_local(t: &mut IpcacheTable, local: &LocalNode, endpoints: &[LocalEndpoint]) {
    let host_ips = local
        .internal_ip
        .iter()
        .chain(local.router_ip.iter())
        .chain(local.other_ips.iter());
    for ip in host_ips {
        put(t, host32(*ip), row(identity::HOST, Source::Local, None));
    }
    if let Some(ip) = local.health_ip {
        let r = row(identity::HEALTH, Source::Local, local.internal_ip);
        put(t, host32(ip), r);
    }
    for ep in endpoints {
        let mut r = row(ep.identity, Source::Local, local.internal_ip);
        r.labels = ep.labels.clone();
        put(t, host32(ep.ip), r);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use api::cilium::endpoint::{EndpointIdentity, EndpointNetworking, EndpointStatus};
    use api::cilium::node::{AddressPair, CiliumNodeSpec, IpamSpec, NodeAddress};
    use api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    pub(crate) fn cnode(name: &str, internal: &str, router: &str, cidr: &str) -> CiliumNode {
        CiliumNode {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: CiliumNodeSpec {
                addresses: Some(vec![
                    NodeAddress {
                        type_: "InternalIP".into(),
                        ip: internal.into(),
                    },
                    NodeAddress {
                        type_: "CiliumInternalIP".into(),
                        ip: router.into(),
                    },
                ]),
                ipam: Some(IpamSpec {
                    pod_cidrs: Some(vec![cidr.into()]),
                    ..Default::default()
                }),
                ..Default::default()
            },
            status: None,
        }
    }

    fn cep(name: &str, ip: &str, node: &str, id: i64) -> CiliumEndpoint {
        CiliumEndpoint {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            status: Some(EndpointStatus {
                identity: Some(EndpointIdentity {
                    id,
                    labels: Some(vec!["k8s:app=webpod".into()]),
                }),
                networking: Some(EndpointNetworking {
                    addressing: vec![AddressPair {
                        ipv4: Some(ip.into()),
                        ipv6: None,
                    }],
                    node: Some(node.into()),
                }),
                ..Default::default()
            }),
        }
    }

    fn n(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn local() -> LocalNode {
        LocalNode {
            name: "k8s-ctr".into(),
            internal_ip: Some("192.168.10.100".parse().unwrap()),
            router_ip: Some("172.20.0.1".parse().unwrap()),
            health_ip: Some("172.20.0.2".parse().unwrap()),
            other_ips: vec!["10.0.2.15".parse().unwrap()],
        }
    }

    #[test]
    fn computes_every_source() {
        let nodes = vec![
            cnode("k8s-ctr", "192.168.10.100", "172.20.0.1", "172.20.0.0/24"),
            cnode("k8s-w1", "192.168.10.101", "172.20.1.1", "172.20.1.0/24"),
        ];
        let ceps = vec![
            cep("web-1", "172.20.1.7", "192.168.10.101", 12564),
            cep("mine-stale", "172.20.0.99", "192.168.10.100", 12564),
        ];
        let eps = vec![LocalEndpoint {
            ip: "172.20.0.5".parse().unwrap(),
            identity: 300,
            labels: vec!["k8s:app=curl".into()],
        }];
        let t = compute(&local(), &eps, &nodes, &ceps, false);
        assert!(t.values().all(|r| r.tunnel_endpoint.is_none()));
        let get = |p: &str| t.get(&n(p)).cloned().unwrap();
        assert_eq!(get("0.0.0.0/0").identity, identity::WORLD);
        assert_eq!(get("0.0.0.0/0").source.as_str(), "reserved");
        assert_eq!(get("172.20.1.0/24").identity, identity::WORLD);
        assert_eq!(get("192.168.10.101/32").identity, identity::REMOTE_NODE);
        assert_eq!(get("192.168.10.101/32").source.as_str(), "kube-apiserver");
        assert_eq!(get("172.20.1.1/32").identity, identity::REMOTE_NODE);
        assert_eq!(get("172.20.1.1/32").source.as_str(), "custom-resource");
        assert_eq!(get("172.20.1.7/32").identity, 12564);
        assert_eq!(get("172.20.1.7/32").labels, vec!["k8s:app=webpod"]);
        assert_eq!(
            get("172.20.1.7/32").host_ip,
            Some("192.168.10.101".parse().unwrap())
        );
        assert_eq!(get("192.168.10.100/32").identity, identity::HOST);
        assert_eq!(get("172.20.0.1/32").identity, identity::HOST);
        assert_eq!(get("10.0.2.15/32").identity, identity::HOST);
        assert_eq!(get("172.20.0.2/32").identity, identity::HEALTH);
        assert_eq!(get("172.20.0.5/32").identity, 300);
        assert_eq!(get("172.20.0.5/32").source.as_str(), "local");
        // Our own CiliumNode's pod CIDR and our own CEPs are not remote.
        assert!(!t.contains_key(&n("172.20.0.0/24")));
        assert!(!t.contains_key(&n("172.20.0.99/32")));
        assert_eq!(t.len(), 10);
    }

    #[test]
    fn local_endpoint_beats_a_stale_remote_cep() {
        let ceps = vec![cep("moved", "172.20.0.5", "192.168.10.101", 999)];
        let eps = vec![LocalEndpoint {
            ip: "172.20.0.5".parse().unwrap(),
            identity: 300,
            labels: vec![],
        }];
        let t = compute(&local(), &eps, &[], &ceps, false);
        assert_eq!(t[&n("172.20.0.5/32")].identity, 300);
    }

    #[test]
    fn tunnel_mode_puts_remote_pods_behind_their_node() {
        let nodes = vec![
            cnode("k8s-ctr", "192.168.10.100", "172.20.0.1", "172.20.0.0/24"),
            cnode("k8s-w1", "192.168.10.101", "172.20.1.1", "172.20.1.0/24"),
            cnode("k8s-w0", "192.168.20.100", "172.20.2.1", "172.20.2.0/24"),
        ];
        let ceps = vec![
            cep("web-1", "172.20.1.7", "192.168.10.101", 12564),
            cep("web-0", "172.20.2.9", "192.168.20.100", 12564),
        ];
        let eps = vec![LocalEndpoint {
            ip: "172.20.0.5".parse().unwrap(),
            identity: 300,
            labels: vec![],
        }];
        let t = compute(&local(), &eps, &nodes, &ceps, true);
        let tep = |p: &str| t[&n(p)].tunnel_endpoint.map(|i| i.to_string());
        let w1 = Some("192.168.10.101".to_string());
        let w0 = Some("192.168.20.100".to_string());
        // Behind a tunnel: pod CIDRs (world), router IPs, endpoints.
        assert_eq!(tep("172.20.1.0/24"), w1);
        assert_eq!(t[&n("172.20.1.0/24")].identity, identity::WORLD);
        assert_eq!(tep("172.20.2.0/24"), w0);
        assert_eq!(tep("172.20.1.1/32"), w1);
        assert_eq!(tep("172.20.1.7/32"), w1);
        assert_eq!(t[&n("172.20.1.7/32")].identity, 12564);
        assert_eq!(tep("172.20.2.9/32"), w0);
        // Not: node IPs, local entries, world.
        for p in [
            "192.168.10.101/32",
            "192.168.20.100/32",
            "192.168.10.100/32",
            "172.20.0.1/32",
            "172.20.0.2/32",
            "172.20.0.5/32",
            "10.0.2.15/32",
            "0.0.0.0/0",
        ] {
            assert_eq!(tep(p), None, "{p}");
        }
        // Switching modes changes exactly the tunnelled rows.
        let native = compute(&local(), &eps, &nodes, &ceps, false);
        let changed: Vec<String> = t
            .iter()
            .filter(|(p, r)| native.get(*p) != Some(*r))
            .map(|(p, _)| p.to_string())
            .collect();
        assert_eq!(
            changed,
            [
                "172.20.1.0/24",
                "172.20.1.1/32",
                "172.20.1.7/32",
                "172.20.2.0/24",
                "172.20.2.1/32",
                "172.20.2.9/32"
            ]
        );
        assert!(t.iter().all(|(p, r)| r.prefix == *p));
    }
}
