//! Lab topology: the YAML format describing hosts, L2 segments, addresses,
//! static routes and router extras, the built-in `seed` and `clustermesh`
//! topologies, and their validation. Pure data: nothing here touches the
//! system.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// A whole lab: clusters, segments and hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Topology {
    /// Short description name (`seed`, `clustermesh`, or a file's own).
    pub name: String,
    /// Kubernetes clusters in the lab. Absent: one cluster named `default`.
    #[serde(default = "default_clusters")]
    pub clusters: Vec<ClusterSpec>,
    /// L2 segments (bridges in the lab's fabric namespace).
    pub segments: Vec<String>,
    /// Hosts: cluster nodes, routers and plain external hosts.
    pub hosts: Vec<Host>,
}

/// One cluster: its address plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// Cluster name (`default`, `west`, `east`).
    pub name: String,
    /// `cluster-id` (0 for a lone cluster).
    #[serde(default)]
    pub id: u32,
    /// Pod CIDR for `ipam: kubernetes` (Node.spec.podCIDR allocations).
    #[serde(default = "default_pod_cidr")]
    pub pod_cidr: Ipv4Net,
    /// Service ClusterIP range.
    #[serde(default = "default_service_cidr")]
    pub service_cidr: Ipv4Net,
    /// The cluster DNS service IP (reserved in the service range).
    #[serde(default = "default_dns_ip")]
    pub dns_ip: Ipv4Addr,
    /// Pod CIDR for `ipam: cluster-pool` (the agents' default IPAM).
    #[serde(default = "default_cluster_pool_cidr")]
    pub cluster_pool_cidr: Ipv4Net,
}

/// The role of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A cluster node that also runs etcd and the control plane.
    ControlPlane,
    /// A cluster node.
    Worker,
    /// Not a node: forwards between segments, may serve web and BGP.
    Router,
    /// Not a node: a plain host.
    External,
}

/// One host (a network namespace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Host {
    /// Host name (also the Kubernetes node name for nodes).
    pub name: String,
    /// What the host is.
    pub role: Role,
    /// Cluster of a node (defaults to the first cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// NICs attached to segments.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Static routes (`proto static`).
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Extra local networks (veth pairs standing in for dummy devices).
    #[serde(default)]
    pub loops: Vec<Loop>,
    /// IPv4 forwarding (routers; always on for nodes).
    #[serde(default)]
    pub forwarding: bool,
    /// A web server answering every GET with a fixed body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<Web>,
}

/// A NIC on a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interface {
    /// Device name inside the host (`eth1`).
    pub name: String,
    /// Segment it is plugged into.
    pub segment: String,
    /// Address with prefix length.
    pub address: Ipv4Net,
}

/// A static route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    /// Destination prefix.
    pub dst: Ipv4Net,
    /// Gateway (must be on a directly connected subnet).
    pub via: Ipv4Addr,
}

/// A local network on a veth pair inside the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Loop {
    /// Device name (`loop1`).
    pub name: String,
    /// Address with prefix length.
    pub address: Ipv4Net,
}

/// A fixed-body web server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Web {
    /// TCP port.
    #[serde(default = "default_web_port")]
    pub port: u16,
    /// Response body.
    pub body: String,
}

fn default_clusters() -> Vec<ClusterSpec> {
    vec![ClusterSpec {
        name: "default".into(),
        id: 0,
        pod_cidr: default_pod_cidr(),
        service_cidr: default_service_cidr(),
        dns_ip: default_dns_ip(),
        cluster_pool_cidr: default_cluster_pool_cidr(),
    }]
}
fn default_cluster_pool_cidr() -> Ipv4Net {
    "172.20.0.0/16".parse().expect("valid literal")
}
fn default_pod_cidr() -> Ipv4Net {
    "10.244.0.0/16".parse().expect("valid literal")
}
fn default_service_cidr() -> Ipv4Net {
    "10.96.0.0/16".parse().expect("valid literal")
}
fn default_dns_ip() -> Ipv4Addr {
    Ipv4Addr::new(10, 96, 0, 10)
}
fn default_web_port() -> u16 {
    80
}

const SEED: &str = include_str!("../topologies/seed.yaml");
const CLUSTERMESH: &str = include_str!("../topologies/clustermesh.yaml");

impl Topology {
    /// Resolve `seed`, `clustermesh` or a file path.
    pub fn load(spec: &str) -> Result<Self> {
        let (text, origin) = match spec {
            "seed" => (SEED.to_string(), "built-in topology seed".to_string()),
            "clustermesh" => (
                CLUSTERMESH.to_string(),
                "built-in topology clustermesh".to_string(),
            ),
            path => (
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read topology file {path}"))?,
                format!("topology file {path}"),
            ),
        };
        Self::parse(&text).with_context(|| format!("invalid {origin}"))
    }

    /// Parse and validate a topology document.
    pub fn parse(text: &str) -> Result<Self> {
        let topo: Topology = serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        topo.validate()?;
        Ok(topo)
    }

    /// Hosts that are Kubernetes nodes, in file order.
    pub fn nodes(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.is_node())
    }

    /// The cluster a node belongs to.
    pub fn cluster_of(&self, host: &Host) -> &ClusterSpec {
        let name = host.cluster.as_deref().unwrap_or(&self.clusters[0].name);
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .expect("validated: every node's cluster exists")
    }

    /// The control-plane host of a cluster.
    pub fn control_plane(&self, cluster: &str) -> &Host {
        self.cluster_nodes(cluster)
            .find(|h| h.role == Role::ControlPlane)
            .expect("validated: every cluster has one control plane")
    }

    /// Look up a host by name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The nodes of one cluster, in file order.
    pub fn cluster_nodes<'a>(&'a self, cluster: &str) -> impl Iterator<Item = &'a Host> {
        self.nodes()
            .filter(move |h| self.cluster_of(h).name == cluster)
    }

    fn validate(&self) -> Result<()> {
        check_name("topology name", &self.name)?;
        self.validate_clusters()?;
        let segments = self.validate_segments()?;
        let mut names = BTreeSet::new();
        let mut addresses: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
        for h in &self.hosts {
            check_name("host name", &h.name)?;
            if !names.insert(h.name.as_str()) {
                bail!("hosts: duplicate host {:?}", h.name);
            }
            self.validate_host(h, &segments)?;
            for a in h.addresses() {
                if let Some(other) = addresses.insert(a.addr(), &h.name) {
                    bail!(
                        "hosts[{}]: address {} already used by {other}",
                        h.name,
                        a.addr()
                    );
                }
            }
            validate_routes(h)?;
        }
        self.validate_control_planes()
    }

    /// At least one cluster, unique names, the DNS IP in the service range.
    fn validate_clusters(&self) -> Result<()> {
        if self.clusters.is_empty() {
            bail!("clusters: at least one cluster is required");
        }
        let mut seen = BTreeSet::new();
        for c in &self.clusters {
            check_name("cluster name", &c.name)?;
            if !seen.insert(c.name.as_str()) {
                bail!("clusters: duplicate cluster {:?}", c.name);
            }
            if !c.service_cidr.contains(&c.dns_ip) {
                bail!(
                    "clusters[{}].dnsIp: {} is outside serviceCidr {}",
                    c.name,
                    c.dns_ip,
                    c.service_cidr
                );
            }
        }
        Ok(())
    }

    /// Unique, valid segment names; returns them.
    fn validate_segments(&self) -> Result<BTreeSet<&str>> {
        let segments: BTreeSet<&str> = self.segments.iter().map(String::as_str).collect();
        if segments.len() != self.segments.len() {
            bail!("segments: duplicate segment name");
        }
        for s in &self.segments {
            check_name("segment name", s)?;
        }
        Ok(segments)
    }

    /// One host's cluster exists, its interfaces are on known segments,
    /// and its device names are valid and unique.
    fn validate_host(&self, h: &Host, segments: &BTreeSet<&str>) -> Result<()> {
        if let Some(c) = &h.cluster
            && !self.clusters.iter().any(|x| &x.name == c)
        {
            bail!("hosts[{}].cluster: no cluster named {c:?}", h.name);
        }
        if h.is_node() && h.interfaces.is_empty() {
            bail!("hosts[{}]: a node needs at least one interface", h.name);
        }
        let mut ifnames = BTreeSet::new();
        for i in &h.interfaces {
            if !segments.contains(i.segment.as_str()) {
                bail!(
                    "hosts[{}].interfaces[{}].segment: no segment named {:?}",
                    h.name,
                    i.name,
                    i.segment
                );
            }
            check_ifname(&h.name, &i.name)?;
            if !ifnames.insert(i.name.as_str()) {
                bail!("hosts[{}]: duplicate interface {}", h.name, i.name);
            }
        }
        for l in &h.loops {
            check_ifname(&h.name, &l.name)?;
            if l.name.len() > 13 {
                bail!(
                    "hosts[{}].loops[{}]: name too long (13 max)",
                    h.name,
                    l.name
                );
            }
            if !ifnames.insert(l.name.as_str()) {
                bail!("hosts[{}]: duplicate interface {}", h.name, l.name);
            }
        }
        Ok(())
    }

    /// Every cluster has exactly one control-plane node.
    fn validate_control_planes(&self) -> Result<()> {
        for c in &self.clusters {
            let cps = self
                .cluster_nodes(&c.name)
                .filter(|h| h.role == Role::ControlPlane)
                .count();
            if cps != 1 {
                bail!(
                    "cluster {:?} needs exactly one control-plane host, found {cps}",
                    c.name
                );
            }
        }
        Ok(())
    }
}

impl Host {
    /// Whether this host is a Kubernetes node.
    pub fn is_node(&self) -> bool {
        matches!(self.role, Role::ControlPlane | Role::Worker)
    }

    /// The node's primary address (its first interface): the InternalIP.
    pub fn primary_ip(&self) -> Option<Ipv4Addr> {
        self.interfaces.first().map(|i| i.address.addr())
    }

    /// The addresses of its interfaces, then of its loops.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Net> + '_ {
        self.interfaces
            .iter()
            .map(|i| i.address)
            .chain(self.loops.iter().map(|l| l.address))
    }
}

/// Host, cluster, segment and lab names: lower-case letters, digits and
/// dashes, starting with a letter, 1-24 characters.
fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 24
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "{what} {name:?} is invalid: use 1-24 lower-case letters, digits and '-', starting with a letter"
        );
    }
    Ok(())
}

/// Every route's gateway is on one of the host's subnets.
fn validate_routes(h: &Host) -> Result<()> {
    for r in &h.routes {
        if !h.addresses().any(|a| a.trunc().contains(&r.via)) {
            bail!(
                "hosts[{}].routes[{}]: gateway {} is not on a connected subnet",
                h.name,
                r.dst,
                r.via
            );
        }
    }
    Ok(())
}

fn check_ifname(host: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) {
        bail!(
            "hosts[{host}]: invalid interface name {name:?} (1-15 characters, no '/', ':' or spaces)"
        );
    }
    Ok(())
}

/// Validate a lab name: it prefixes every namespace, cgroup and pin path,
/// so it may not contain '-' (keeping `<lab>-` prefixes unambiguous).
pub fn check_lab_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 12
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        bail!(
            "lab name {name:?} is invalid: use 1-12 lower-case letters and digits, starting with a letter"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_matches_the_documents() {
        let t = Topology::load("seed").expect("seed parses");
        let nodes: Vec<_> = t.nodes().map(|h| h.name.as_str()).collect();
        assert_eq!(nodes, ["k8s-ctr", "k8s-w1", "k8s-w0"]);
        let ip = |n: &str| t.host(n).unwrap().primary_ip().unwrap().to_string();
        assert_eq!(ip("k8s-ctr"), "192.168.10.100");
        assert_eq!(ip("k8s-w1"), "192.168.10.101");
        assert_eq!(ip("k8s-w0"), "192.168.20.100");
        let router = t.host("router").unwrap();
        assert!(router.forwarding);
        assert_eq!(router.interfaces.len(), 2);
        assert_eq!(router.loops.len(), 2);
        assert_eq!(
            router.web.as_ref().unwrap().body,
            "<h1>Web Server : router</h1>"
        );
        let w0 = t.host("k8s-w0").unwrap();
        let dsts: Vec<String> = w0.routes.iter().map(|r| r.dst.to_string()).collect();
        assert_eq!(dsts, ["10.10.0.0/16", "172.20.0.0/16", "192.168.10.0/24"]);
        assert_eq!(t.control_plane("default").name, "k8s-ctr");
        assert!(t.nodes().all(|h| h.interfaces[0].name == "eth1"));
    }

    #[test]
    fn clustermesh_has_two_clusters_of_two_nodes_on_one_segment() {
        let t = Topology::load("clustermesh").expect("clustermesh parses");
        assert_eq!(t.segments.len(), 1);
        for c in ["west", "east"] {
            let n = t.cluster_nodes(c).count();
            assert_eq!(n, 2, "cluster {c}");
        }
        assert_eq!(t.clusters[0].id, 1);
        assert_eq!(t.clusters[1].id, 2);
    }

    #[test]
    fn errors_name_the_problem() {
        let base = |extra: &str| {
            format!(
                "name: t\nsegments: [a]\nhosts:\n- name: n1\n  role: control-plane\n  interfaces: [{{name: eth1, segment: a, address: 10.0.0.1/24}}]\n{extra}"
            )
        };
        let e = Topology::parse(&base(
            "- name: n2\n  role: worker\n  interfaces: [{name: eth1, segment: b, address: 10.0.0.2/24}]\n",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("no segment named \"b\""), "{e}");
        let e = Topology::parse(&base(
            "- name: n2\n  role: worker\n  interfaces: [{name: eth1, segment: a, address: 10.0.0.1/24}]\n",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("already used by n1"), "{e}");
        let e = Topology::parse(&base(
            "- name: n2\n  role: worker\n  interfaces: [{name: eth1, segment: a, address: 10.0.0.2/24}]\n  routes: [{dst: 10.9.0.0/16, via: 10.1.0.1}]\n",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("not on a connected subnet"), "{e}");
        let e = Topology::parse(&base("- name: N2\n  role: worker\n")).unwrap_err();
        assert!(e.to_string().contains("host name \"N2\" is invalid"), "{e}");
        let e = Topology::parse(&base("- name: n2\n  role: control-plane\n  interfaces: [{name: eth1, segment: a, address: 10.0.0.2/24}]\n")).unwrap_err();
        assert!(e.to_string().contains("exactly one control-plane"), "{e}");
        let e = Topology::parse(&base("- name: n2\n  role: worker\n  colour: red\n")).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn lab_names_are_prefix_safe() {
        assert!(check_lab_name("lab").is_ok());
        assert!(check_lab_name("t42").is_ok());
        assert!(check_lab_name("lab-2").is_err());
        assert!(check_lab_name("").is_err());
        assert!(check_lab_name("Lab").is_err());
    }
}
