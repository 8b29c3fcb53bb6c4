//! Wire types of the agent's REST API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Error body of every non-2xx response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// CNI error code to report (CNI spec: 7 invalid network config, 11 try
    /// again later, 100+ plugin specific; 0 when not CNI related).
    pub code: u32,
    /// Human readable message.
    pub message: String,
}

/// `GET /v1/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` when the agent can serve CNI requests.
    pub status: String,
    /// Node name.
    pub node: String,
}

/// CNI ADD, forwarded by the plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniAddRequest {
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS (path).
    pub netns: String,
    /// CNI_IFNAME (`eth0`).
    pub ifname: String,
    /// K8S_POD_NAMESPACE from CNI_ARGS (empty for non-Kubernetes runtimes).
    pub pod_namespace: String,
    /// K8S_POD_NAME.
    pub pod_name: String,
    /// K8S_POD_UID.
    pub pod_uid: String,
    /// MTU asked for by the network config's `mtu` key; `None` leaves the
    /// agent's choice (absent on the wire then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// Result of an ADD, turned into a CNI result by the plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniAddResponse {
    /// Endpoint ID.
    pub endpoint_id: u16,
    /// Host-side interface (`lxc<12 hex>`).
    pub host_ifname: String,
    /// Host-side MAC.
    pub host_mac: String,
    /// Container-side interface name.
    pub ifname: String,
    /// Container-side MAC.
    pub mac: String,
    /// Pod IPv4 address.
    pub ipv4: String,
    /// Prefix length of the address (32).
    pub prefix_len: u8,
    /// Gateway (the node's router IP on cilium_host).
    pub gateway: String,
    /// Routes installed in the pod (`dst` CIDR, `gw`).
    pub routes: Vec<RouteModel>,
    /// MTU of the pod's interface.
    pub mtu: u32,
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteModel {
    /// Destination CIDR.
    pub dst: String,
    /// Gateway, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

/// CNI DEL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniDelRequest {
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS (may be empty: DEL must still release resources).
    pub netns: String,
    /// CNI_IFNAME.
    pub ifname: String,
}

/// CNI CHECK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniCheckRequest {
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS.
    pub netns: String,
    /// CNI_IFNAME.
    pub ifname: String,
}

/// CNI GC: every attachment not listed is garbage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniGcRequest {
    /// Attachments the runtime still uses.
    pub valid: Vec<Attachment>,
}

/// One attachment (container ID + interface).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Container ID.
    pub container_id: String,
    /// Interface name.
    pub ifname: String,
}

/// What GC removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniGcResponse {
    /// Container IDs whose endpoints were removed.
    pub removed: Vec<String>,
}

/// One endpoint (`cilium-dbg endpoint list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointModel {
    /// Endpoint ID.
    pub id: u16,
    /// Container ID.
    pub container_id: String,
    /// `namespace/name` of the pod (empty if none).
    pub pod: String,
    /// Security identity.
    pub identity: u32,
    /// Labels `source:key=value`, sorted.
    pub labels: Vec<String>,
    /// IPv4.
    pub ipv4: String,
    /// Host interface.
    pub host_ifname: String,
    /// Host interface index.
    pub ifindex: u32,
    /// `ready`, `waiting-for-identity`, ...
    pub state: String,
    /// Ingress policy enforcement (`Disabled` for now).
    pub policy_ingress: String,
    /// Egress policy enforcement.
    pub policy_egress: String,
}

/// One ipcache entry as the agent knows it (`cilium-dbg ip list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpEntry {
    /// `172.20.1.7/32`.
    pub prefix: String,
    /// Numeric identity.
    pub identity: u32,
    /// Identity labels (`k8s:app=webpod`, `reserved:remote-node`, ...).
    pub labels: Vec<String>,
    /// Where it came from (`custom-resource`, `kube-apiserver`, `local`, `generated`).
    pub source: String,
    /// Host IP (tunnel endpoint / node), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// A row of `cilium_ipcache_v2` read back from the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpcacheMapEntry {
    /// Prefix.
    pub prefix: String,
    /// Identity.
    pub identity: u32,
    /// Encryption key index.
    pub encrypt_key: u8,
    /// Tunnel endpoint (`0.0.0.0` when none).
    pub tunnel_endpoint: String,
    /// Flags as upstream prints them (`<none>`, `hastunnel`).
    pub flags: String,
}

/// A row of `cilium_lxc` read back from the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LxcMapEntry {
    /// IP.
    pub ip: String,
    /// Endpoint ID.
    pub id: u16,
    /// Interface index.
    pub ifindex: u32,
    /// Flags.
    pub flags: u32,
    /// Endpoint MAC.
    pub mac: String,
    /// Host-side MAC.
    pub node_mac: String,
    /// Security identity.
    pub sec_id: u32,
}

/// A row of `cilium_metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsMapEntry {
    /// Reason (`FORWARDED` or a drop reason).
    pub reason: String,
    /// Direction (`INGRESS`, `EGRESS`, `SERVICE`).
    pub direction: String,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// `GET /v1/status`: what `cilium-dbg status` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StatusResponse {
    /// `KVStore:` line.
    pub kvstore: String,
    /// `Kubernetes:` line.
    pub kubernetes: String,
    /// `KubeProxyReplacement:` line.
    pub kube_proxy_replacement: String,
    /// `CNI Config file:` line.
    pub cni_config: String,
    /// `Cilium:` line (`Ok   1.0.0 (v0.1.0)`).
    pub cilium: String,
    /// IPAM: pool CIDR.
    pub ipam_cidr: String,
    /// IPAM: capacity (usable addresses).
    pub ipam_capacity: u32,
    /// IPAM: allocated address -> owner.
    pub ipam_allocated: BTreeMap<String, String>,
    /// `Routing:` line (`Network: Native   Host: BPF`).
    pub routing: String,
    /// `Attach Mode:` (`TCX`).
    pub attach_mode: String,
    /// `Device Mode:` (`veth`).
    pub device_mode: String,
    /// `Masquerading:` line.
    pub masquerading: String,
    /// Controller summary (`12/12 healthy`).
    pub controllers: String,
    /// Every controller and reconciler (`--all-controllers`).
    #[serde(default)]
    pub controller_statuses: Vec<ControllerStatus>,
    /// Global identity range.
    pub identity_range: (u32, u32),
}

/// One row of the `Controller Status` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ControllerStatus {
    /// Controller name.
    pub name: String,
    /// Seconds since the last success (None: never).
    pub last_success_ago_secs: Option<u64>,
    /// Seconds since the last failure (None: never).
    pub last_failure_ago_secs: Option<u64>,
    /// Failures since the last success.
    pub consecutive_failures: u64,
    /// The last error while failing.
    pub last_error: Option<String>,
}
