//! Endpoints: the persisted record of one pod attachment, and the pure
//! functions around it (host interface naming, endpoint ID choice, the
//! `CiliumEndpoint` object it publishes, its `cilium_lxc` row, the REST
//! model). No I/O here; the endpoint manager ([`crate::endpoints`])
//! drives the side effects.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use api::cilium::endpoint::{
    CiliumEndpoint, EndpointIdentity, EndpointNetworking, EndpointStatus, ExternalIdentifiers,
};
use api::cilium::node::AddressPair;
use api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::tables::LxcRow;

/// Lowest endpoint ID.
pub const MIN_ENDPOINT_ID: u16 = 1;
/// Highest endpoint ID (upstream's 12-bit range).
pub const MAX_ENDPOINT_ID: u16 = 4095;

/// A local endpoint as persisted in the state dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    /// Endpoint ID (1..=4095), never renumbered.
    pub id: u16,
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_IFNAME.
    pub ifname: String,
    /// CNI_NETNS at ADD time.
    pub netns: String,
    /// Pod namespace (empty for non-Kubernetes containers).
    #[serde(default)]
    pub pod_namespace: String,
    /// Pod name.
    #[serde(default)]
    pub pod_name: String,
    /// Pod UID.
    #[serde(default)]
    pub pod_uid: String,
    /// The pod's IPv4.
    pub ipv4: Ipv4Addr,
    /// Host-side interface (`lxc<12 hex>`).
    pub host_ifname: String,
    /// Host-side ifindex.
    pub host_ifindex: u32,
    /// Host-side MAC.
    pub host_mac: [u8; 6],
    /// Container-side MAC.
    pub container_mac: [u8; 6],
    /// Security identity.
    pub identity: u32,
    /// The identity's labels, `source:key=value`.
    pub labels: Vec<String>,
    /// The pod interface's MTU.
    pub mtu: u32,
}

impl EndpointState {
    /// `namespace/name`, or empty for non-Kubernetes containers.
    pub fn pod(&self) -> String {
        if self.pod_namespace.is_empty() || self.pod_name.is_empty() {
            String::new()
        } else {
            format!("{}/{}", self.pod_namespace, self.pod_name)
        }
    }

    /// IPAM owner of the endpoint's address.
    pub fn ipam_owner(&self) -> String {
        ipam_owner(&self.pod_namespace, &self.pod_name, &self.container_id)
    }

    /// Whether this endpoint is the attachment `(container_id, ifname)`.
    pub fn is(&self, container_id: &str, ifname: &str) -> bool {
        self.container_id == container_id && self.ifname == ifname
    }

    /// The `cilium_lxc` row of this endpoint.
    pub fn lxc_row(&self) -> LxcRow {
        LxcRow {
            ip: self.ipv4,
            ifindex: self.host_ifindex,
            endpoint_id: self.id,
            mac: self.container_mac,
            node_mac: self.host_mac,
            identity: self.identity,
        }
    }

    /// The REST model (`cilium-dbg endpoint list`).
    pub fn model(&self) -> agentclient::EndpointModel {
        agentclient::EndpointModel {
            id: self.id,
            container_id: self.container_id.clone(),
            pod: self.pod(),
            identity: self.identity,
            labels: self.labels.clone(),
            ipv4: self.ipv4.to_string(),
            host_ifname: self.host_ifname.clone(),
            ifindex: self.host_ifindex,
            state: "ready".to_string(),
            policy_ingress: "Disabled".to_string(),
            policy_egress: "Disabled".to_string(),
        }
    }

    /// The `CiliumEndpoint` published for a pod endpoint (None for
    /// containers without a pod).
    pub fn cilium_endpoint(&self, node_ip: Ipv4Addr) -> Option<CiliumEndpoint> {
        if self.pod().is_empty() {
            return None;
        }
        Some(CiliumEndpoint {
            metadata: ObjectMeta {
                name: Some(self.pod_name.clone()),
                namespace: Some(self.pod_namespace.clone()),
                ..Default::default()
            },
            status: Some(EndpointStatus {
                id: Some(i64::from(self.id)),
                identity: Some(EndpointIdentity {
                    id: i64::from(self.identity),
                    labels: Some(self.labels.clone()),
                }),
                networking: Some(EndpointNetworking {
                    addressing: vec![AddressPair {
                        ipv4: Some(self.ipv4.to_string()),
                        ipv6: None,
                    }],
                    node: Some(node_ip.to_string()),
                }),
                state: Some("ready".to_string()),
                external_identifiers: Some(ExternalIdentifiers {
                    container_id: Some(self.container_id.clone()),
                    pod_name: Some(self.pod()),
                    k8s_namespace: Some(self.pod_namespace.clone()),
                    k8s_pod_name: Some(self.pod_name.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
    }
}

/// IPAM owner for an attachment: `namespace/pod`, or the container ID.
pub fn ipam_owner(pod_namespace: &str, pod_name: &str, container_id: &str) -> String {
    if pod_namespace.is_empty() || pod_name.is_empty() {
        container_id.to_string()
    } else {
        format!("{pod_namespace}/{pod_name}")
    }
}

/// FNV-1a, 64 bits: stable across builds and releases (unlike std's
/// `DefaultHasher`), which host interface names must be.
fn fnv1a64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Host-side interface of an attachment: `lxc` + 12 hex digits of a hash
/// of container ID and interface name (15 characters, the kernel's limit).
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    let h = fnv1a64(&[container_id, ifname]);
    format!("lxc{:012x}", h & 0xffff_ffff_ffff)
}

/// The lowest endpoint ID not in `used`.
pub fn next_endpoint_id(used: &BTreeSet<u16>) -> Option<u16> {
    (MIN_ENDPOINT_ID..=MAX_ENDPOINT_ID).find(|id| !used.contains(id))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_endpoint(id: u16, container: &str, ip: &str) -> EndpointState {
        EndpointState {
            id,
            container_id: container.to_string(),
            ifname: "eth0".to_string(),
            netns: format!("/var/run/netns/{container}"),
            pod_namespace: "default".to_string(),
            pod_name: format!("pod-{container}"),
            pod_uid: "uid".to_string(),
            ipv4: ip.parse().unwrap(),
            host_ifname: host_ifname(container, "eth0"),
            host_ifindex: 10 + u32::from(id),
            host_mac: [2, 0, 0, 0, 0, 1],
            container_mac: [2, 0, 0, 0, 0, 2],
            identity: 12564,
            labels: vec!["k8s:app=webpod".to_string()],
            mtu: 1500,
        }
    }

    #[test]
    fn host_ifname_is_stable_and_short() {
        let a = host_ifname("c0ffee", "eth0");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("lxc"));
        assert!(a[3..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, host_ifname("c0ffee", "eth0"));
        assert_ne!(a, host_ifname("c0ffee", "eth1"));
        assert_ne!(a, host_ifname("c0ffef", "eth0"));
        // The boundary between the parts matters.
        assert_ne!(host_ifname("ab", "c"), host_ifname("a", "bc"));
        // Pinned value: a change would rename every veth after an upgrade.
        assert_eq!(host_ifname("abc", "eth0"), "lxc293a6975b88d");
    }

    #[test]
    fn endpoint_ids() {
        assert_eq!(next_endpoint_id(&BTreeSet::new()), Some(1));
        assert_eq!(next_endpoint_id(&[1, 2, 4].into()), Some(3));
        let full: BTreeSet<u16> = (1..=4095).collect();
        assert_eq!(next_endpoint_id(&full), None);
    }

    #[test]
    fn owners_and_models() {
        let ep = sample_endpoint(5, "c1", "172.20.1.5");
        assert_eq!(ep.ipam_owner(), "default/pod-c1");
        assert_eq!(ipam_owner("", "", "c1"), "c1");
        let m = ep.model();
        assert_eq!(m.pod, "default/pod-c1");
        assert_eq!(m.state, "ready");
    }

    #[test]
    fn cilium_endpoint_object() {
        let ep = sample_endpoint(5, "c1", "172.20.1.5");
        let cep = ep
            .cilium_endpoint("192.168.10.100".parse().unwrap())
            .unwrap();
        let v = serde_json::to_value(&cep).unwrap();
        assert_eq!(v["metadata"]["name"], "pod-c1");
        assert_eq!(v["metadata"]["namespace"], "default");
        assert_eq!(v["status"]["id"], 5);
        assert_eq!(v["status"]["identity"]["id"], 12564);
        assert_eq!(
            v["status"]["networking"]["addressing"][0]["ipv4"],
            "172.20.1.5"
        );
        assert_eq!(v["status"]["networking"]["node"], "192.168.10.100");
        assert_eq!(v["status"]["state"], "ready");
        assert_eq!(v["status"]["external-identifiers"]["container-id"], "c1");
        assert_eq!(
            v["status"]["external-identifiers"]["pod-name"],
            "default/pod-c1"
        );
        let mut bare = ep.clone();
        bare.pod_namespace.clear();
        assert!(bare.cilium_endpoint("1.1.1.1".parse().unwrap()).is_none());
    }
}
