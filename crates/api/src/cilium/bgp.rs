//! BGP Control Plane v2 resources, all cluster-scoped, stored in v2 and
//! also served in v2alpha1: `CiliumBGPClusterConfig` (instances and peers
//! for the nodes matching a selector), `CiliumBGPPeerConfig` (transport,
//! timers, families), `CiliumBGPAdvertisement` (what to announce),
//! `CiliumBGPNodeConfig` (the operator's per-node fan-out, with the agent's
//! status) and `CiliumBGPNodeConfigOverride` (per-node tweaks).
//!
//! Zero or absent timers and ports mean "use the default"; `peerASN` 0
//! means "learn from the peer's OPEN". v2alpha1's `peerConfigRef.group` and
//! `kind` are accepted and dropped on conversion to v2.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ConditionsStatus, GROUP, V2_AND_V2ALPHA1, check, crd};
use crate::validation::{self as v, Check, NameRule, Path};
use crate::{FieldError, ResourceType};

/// Most BGP instances one cluster or node config may hold.
pub const MAX_INSTANCES: usize = 16;
/// Default hold time (seconds) when unset or 0.
pub const DEFAULT_HOLD_TIME: i64 = 90;
/// Default keepalive interval (seconds) when unset or 0.
pub const DEFAULT_KEEPALIVE_TIME: i64 = 30;
/// Default connect-retry interval (seconds) when unset or 0.
pub const DEFAULT_CONNECT_RETRY_TIME: i64 = 120;
/// Default graceful-restart time (seconds) when unset or 0.
pub const DEFAULT_RESTART_TIME: i64 = 120;
/// Default TCP port of a peer when unset or 0.
pub const DEFAULT_PEER_PORT: i64 = 179;

const fn bgp(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short: &'static [&'static str],
) -> ResourceType {
    crd(kind, plural, singular, short, false, "v2", V2_AND_V2ALPHA1)
}

/// BGP instances and peers for the nodes matching `nodeSelector`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumBGPClusterConfig {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Node selection and instances.
    #[serde(default)]
    pub spec: ClusterConfigSpec,
    /// Conditions (`cilium.io/NoMatchingNode`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ConditionsStatus>,
}

cilium_object!(
    CiliumBGPClusterConfig,
    bgp(
        "CiliumBGPClusterConfig",
        "ciliumbgpclusterconfigs",
        "ciliumbgpclusterconfig",
        &["cbgpcluster"]
    ),
    |c: &CiliumBGPClusterConfig| {
        v::object_meta(&c.metadata, NameRule::Subdomain)?;
        let spec = Path::root("spec");
        if let Some(sel) = &c.spec.node_selector {
            v::label_selector(&spec.field("nodeSelector"), sel)?;
        }
        instances(&spec.field("bgpInstances"), &c.spec.bgp_instances)
    }
);

/// `spec` of a [`CiliumBGPClusterConfig`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfigSpec {
    /// Nodes this config applies to (absent = all nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// BGP instances (1-16, unique names).
    #[serde(default)]
    pub bgp_instances: Vec<BgpInstance>,
}

/// A BGP instance (virtual router). `routerID` is only set in node configs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpInstance {
    /// Instance name.
    #[serde(default)]
    pub name: String,
    /// Local AS number, 1-4294967295.
    #[serde(rename = "localASN", skip_serializing_if = "Option::is_none")]
    pub local_asn: Option<i64>,
    /// Listening port (absent = no listener, outgoing connections only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_port: Option<i64>,
    /// Router id (IPv4), node configs only.
    #[serde(rename = "routerID", skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// Peers (unique names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<BgpPeer>>,
}

/// A BGP peer of an instance. `localAddress` is only set in node configs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeer {
    /// Peer name.
    #[serde(default)]
    pub name: String,
    /// Peer address, optionally with `%zone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,
    /// Peer AS number (0 = learn from the peer).
    #[serde(rename = "peerASN", skip_serializing_if = "Option::is_none")]
    pub peer_asn: Option<i64>,
    /// Automatic discovery of the peer address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_discovery: Option<AutoDiscovery>,
    /// Local address to connect from (node configs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_address: Option<String>,
    /// The CiliumBGPPeerConfig to apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_config_ref: Option<PeerConfigReference>,
}

/// Peer auto-discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoDiscovery {
    /// Mode (`DefaultGateway`, ...), kept as given.
    #[serde(default)]
    pub mode: String,
    /// Options of the `DefaultGateway` mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_gateway: Option<DefaultGateway>,
}

/// Discover the peer as the node's default gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultGateway {
    /// `ipv4` or `ipv6`.
    #[serde(default)]
    pub address_family: String,
}

/// Reference to a [`CiliumBGPPeerConfig`] by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfigReference {
    /// Name of the peer config.
    #[serde(default)]
    pub name: String,
}

/// Session parameters shared by the peers that reference it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumBGPPeerConfig {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Transport, timers, auth, graceful restart, families.
    #[serde(default)]
    pub spec: PeerConfigSpec,
    /// Conditions (`cilium.io/MissingAuthSecret`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ConditionsStatus>,
}

cilium_object!(
    CiliumBGPPeerConfig,
    bgp(
        "CiliumBGPPeerConfig",
        "ciliumbgppeerconfigs",
        "ciliumbgppeerconfig",
        &["cbgppeer"]
    ),
    |c: &CiliumBGPPeerConfig| {
        v::object_meta(&c.metadata, NameRule::Subdomain)?;
        c.spec.validate(&Path::root("spec"))
    }
);

/// `spec` of a [`CiliumBGPPeerConfig`]; everything optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerConfigSpec {
    /// Transport options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// Session timers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timers: Option<Timers>,
    /// Secret holding the TCP MD5 `password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<String>,
    /// Graceful restart (absent = off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<GracefulRestart>,
    /// TTL for eBGP sessions, 1-255 (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebgp_multihop: Option<i64>,
    /// Address families and their advertisements (empty = IPv4 and IPv6
    /// unicast, nothing advertised).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub families: Option<Vec<Family>>,
}

/// Transport options of a peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transport {
    /// Peer TCP port (0 or absent = 179).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<i64>,
}

/// Session timers in seconds (0 or absent = default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timers {
    /// Connect retry interval (default 120).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_retry_time_seconds: Option<i64>,
    /// Hold time, 3-65535 (default 90).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_time_seconds: Option<i64>,
    /// Keepalive interval, at most the hold time (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive_time_seconds: Option<i64>,
}

/// `value` unless it is absent or 0, then `default`.
fn or_default(value: Option<i64>, default: i64) -> i64 {
    value.filter(|v| *v != 0).unwrap_or(default)
}

impl Timers {
    /// Effective hold time.
    pub fn hold_time(&self) -> i64 {
        or_default(self.hold_time_seconds, DEFAULT_HOLD_TIME)
    }

    /// Effective keepalive interval.
    pub fn keep_alive_time(&self) -> i64 {
        or_default(self.keep_alive_time_seconds, DEFAULT_KEEPALIVE_TIME)
    }

    /// Effective connect-retry interval.
    pub fn connect_retry_time(&self) -> i64 {
        or_default(self.connect_retry_time_seconds, DEFAULT_CONNECT_RETRY_TIME)
    }
}

/// Graceful restart settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GracefulRestart {
    /// Whether graceful restart is negotiated.
    #[serde(default)]
    pub enabled: bool,
    /// Restart time, 1-4095 (default 120).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_time_seconds: Option<i64>,
}

/// An address family and the advertisements sent in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Family {
    /// `ipv4`, `ipv6`, ... (kept as given; only IPv4/IPv6 unicast work).
    #[serde(default)]
    pub afi: String,
    /// `unicast`, ... (kept as given).
    #[serde(default)]
    pub safi: String,
    /// Selector over CiliumBGPAdvertisement labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertisements: Option<LabelSelector>,
}

impl PeerConfigSpec {
    fn validate(&self, path: &Path) -> Check {
        if let Some(port) = self.transport.as_ref().and_then(|t| t.peer_port) {
            v::in_range(&path.field("transport").field("peerPort"), port, 0, 65535)?;
        }
        if let Some(t) = &self.timers {
            let p = path.field("timers");
            if let Some(r) = t.connect_retry_time_seconds {
                v::in_range(
                    &p.field("connectRetryTimeSeconds"),
                    r,
                    0,
                    i64::from(i32::MAX),
                )?;
            }
            if let Some(h) = t.hold_time_seconds.filter(|h| *h != 0) {
                v::in_range(&p.field("holdTimeSeconds"), h, 3, 65535)?;
            }
            if let Some(k) = t.keep_alive_time_seconds {
                v::in_range(&p.field("keepAliveTimeSeconds"), k, 0, 65535)?;
            }
            if t.keep_alive_time() > t.hold_time() {
                return Err(p.field("keepAliveTimeSeconds").invalid(
                    t.keep_alive_time(),
                    format!(
                        "must be less than or equal to holdTimeSeconds ({})",
                        t.hold_time()
                    ),
                ));
            }
        }
        if let Some(r) = self
            .graceful_restart
            .as_ref()
            .and_then(|g| g.restart_time_seconds)
        {
            v::in_range(
                &path.field("gracefulRestart").field("restartTimeSeconds"),
                r,
                0,
                4095,
            )?;
        }
        if let Some(ttl) = self.ebgp_multihop {
            v::in_range(&path.field("ebgpMultihop"), ttl, 1, 255)?;
        }
        for (i, f) in self.families.iter().flatten().enumerate() {
            let p = path.field("families").index(i);
            if f.afi.is_empty() {
                return Err(p.field("afi").required(""));
            }
            if f.safi.is_empty() {
                return Err(p.field("safi").required(""));
            }
            if let Some(sel) = &f.advertisements {
                v::label_selector(&p.field("advertisements"), sel)?;
            }
        }
        Ok(())
    }
}

/// What to announce, selected by peer configs through its labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumBGPAdvertisement {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The advertisements.
    #[serde(default)]
    pub spec: AdvertisementSpec,
}

cilium_object!(
    CiliumBGPAdvertisement,
    bgp(
        "CiliumBGPAdvertisement",
        "ciliumbgpadvertisements",
        "ciliumbgpadvertisement",
        &["cbgpadvert"]
    ),
    validate_advertisement
);

/// `spec` of a [`CiliumBGPAdvertisement`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdvertisementSpec {
    /// The advertisements.
    #[serde(default)]
    pub advertisements: Vec<Advertisement>,
}

/// One kind of prefix to announce, with its path attributes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Advertisement {
    /// `PodCIDR`, `CiliumPodIPPool`, `Service`, `Interface`, ... (kept as given).
    #[serde(default)]
    pub advertisement_type: String,
    /// Service address kinds (type `Service`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceAdvertisement>,
    /// Which services/pools (absent = none; n/a for `PodCIDR`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Interface to announce (type `Interface`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<InterfaceAdvertisement>,
    /// Path attributes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Attributes>,
}

/// Service addresses to announce.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAdvertisement {
    /// `LoadBalancerIP`, `ClusterIP`, `ExternalIP` (kept as given).
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// An interface whose addresses are announced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceAdvertisement {
    /// Interface name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// BGP path attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attributes {
    /// Communities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub communities: Option<Communities>,
    /// LOCAL_PREF (iBGP only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_preference: Option<i64>,
}

/// Communities attached to announced paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Communities {
    /// `65000:100` or a 32-bit decimal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standard: Option<Vec<String>>,
    /// Well-known names (`no-export`, ...), kept as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub well_known: Option<Vec<String>>,
    /// `a:b:c` large communities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub large: Option<Vec<String>>,
}

fn validate_advertisement(a: &CiliumBGPAdvertisement) -> Check {
    v::object_meta(&a.metadata, NameRule::Subdomain)?;
    for (i, adv) in a.spec.advertisements.iter().enumerate() {
        let p = Path::root("spec").field("advertisements").index(i);
        if adv.advertisement_type.is_empty() {
            return Err(p.field("advertisementType").required(""));
        }
        if adv.advertisement_type == "Service"
            && adv.service.as_ref().is_none_or(|s| s.addresses.is_empty())
        {
            return Err(p
                .field("service")
                .field("addresses")
                .required("advertisementType Service needs at least one address kind"));
        }
        if let Some(sel) = &adv.selector {
            v::label_selector(&p.field("selector"), sel)?;
        }
        let Some(attrs) = &adv.attributes else {
            continue;
        };
        let ap = p.field("attributes");
        if let Some(pref) = attrs.local_preference {
            v::in_range(&ap.field("localPreference"), pref, 0, i64::from(u32::MAX))?;
        }
        let Some(c) = &attrs.communities else {
            continue;
        };
        let cp = ap.field("communities");
        for (j, s) in c.standard.iter().flatten().enumerate() {
            if !standard_community(s) {
                return Err(cp.field("standard").index(j).invalid(
                    s,
                    "must be <0-65535>:<0-65535> or a decimal number up to 4294967295",
                ));
            }
        }
        for (j, l) in c.large.iter().flatten().enumerate() {
            let parts: Vec<_> = l.split(':').collect();
            if parts.len() != 3 || !parts.iter().all(|x| x.parse::<u32>().is_ok()) {
                return Err(cp
                    .field("large")
                    .index(j)
                    .invalid(l, "must be <0-4294967295>:<0-4294967295>:<0-4294967295>"));
            }
        }
    }
    Ok(())
}

fn standard_community(s: &str) -> bool {
    match s.split_once(':') {
        Some((a, b)) => a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok(),
        None => s.parse::<u32>().is_ok(),
    }
}

/// The operator's per-node fan-out of a cluster config (name = node).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumBGPNodeConfig {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Instances for this node.
    #[serde(default)]
    pub spec: NodeConfigSpec,
    /// Sessions as seen by the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<NodeConfigStatus>,
}

cilium_object!(
    CiliumBGPNodeConfig,
    bgp(
        "CiliumBGPNodeConfig",
        "ciliumbgpnodeconfigs",
        "ciliumbgpnodeconfig",
        &["cbgpnode"]
    ),
    |c: &CiliumBGPNodeConfig| {
        v::object_meta(&c.metadata, NameRule::Subdomain)?;
        instances(
            &Path::root("spec").field("bgpInstances"),
            &c.spec.bgp_instances,
        )
    }
);

/// `spec` of a [`CiliumBGPNodeConfig`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfigSpec {
    /// BGP instances (with `routerID` and peers' `localAddress`).
    #[serde(default)]
    pub bgp_instances: Vec<BgpInstance>,
}

/// `status` of a [`CiliumBGPNodeConfig`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfigStatus {
    /// Per-instance state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bgp_instances: Option<Vec<InstanceStatus>>,
    /// Conditions (`cilium.io/BGPReconcileError`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// State of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// Instance name.
    #[serde(default)]
    pub name: String,
    /// Local AS number in use.
    #[serde(rename = "localASN", skip_serializing_if = "Option::is_none")]
    pub local_asn: Option<i64>,
    /// Per-peer state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<PeerStatus>>,
}

/// State of one peering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatus {
    /// Peer name.
    #[serde(default)]
    pub name: String,
    /// Peer address.
    #[serde(default)]
    pub peer_address: String,
    /// Peer AS number.
    #[serde(rename = "peerASN", skip_serializing_if = "Option::is_none")]
    pub peer_asn: Option<i64>,
    /// FSM state (`established`, `active`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peering_state: Option<String>,
    /// Negotiated timers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timers: Option<PeerTimersState>,
    /// When the session was established (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub established_time: Option<String>,
    /// Route counts per family.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_count: Option<Vec<RouteCount>>,
}

/// Timers negotiated with a peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerTimersState {
    /// Hold time in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_hold_time_seconds: Option<i64>,
    /// Keepalive interval in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_keepalive_seconds: Option<i64>,
}

/// Received and advertised route counts in one family.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteCount {
    /// AFI.
    #[serde(default)]
    pub afi: String,
    /// SAFI.
    #[serde(default)]
    pub safi: String,
    /// Routes received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<i64>,
    /// Routes advertised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertised: Option<i64>,
}

/// Per-node overrides applied to the node config (name = node).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumBGPNodeConfigOverride {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Overrides per instance.
    #[serde(default)]
    pub spec: NodeConfigOverrideSpec,
}

cilium_object!(
    CiliumBGPNodeConfigOverride,
    bgp(
        "CiliumBGPNodeConfigOverride",
        "ciliumbgpnodeconfigoverrides",
        "ciliumbgpnodeconfigoverride",
        &["cbgpnodeoverride"]
    ),
    |c: &CiliumBGPNodeConfigOverride| {
        v::object_meta(&c.metadata, NameRule::Subdomain)?;
        instances(
            &Path::root("spec").field("bgpInstances"),
            &c.spec.bgp_instances,
        )
    }
);

/// `spec` of a [`CiliumBGPNodeConfigOverride`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfigOverrideSpec {
    /// Overrides, matched to instances by name (`routerID`, `localPort`,
    /// `localASN`, peers' `localAddress`).
    #[serde(default)]
    pub bgp_instances: Vec<BgpInstance>,
}

/// Instances: 1-16, unique names, ASN/port/router-id ranges, valid peers.
fn instances(path: &Path, list: &[BgpInstance]) -> Check {
    if list.is_empty() {
        return Err(path.required(""));
    }
    if list.len() > MAX_INSTANCES {
        return Err(path.too_many(list.len(), MAX_INSTANCES));
    }
    v::unique_names(path, list.iter().map(|i| i.name.as_str()))?;
    for (i, inst) in list.iter().enumerate() {
        let p = path.index(i);
        if let Some(asn) = inst.local_asn {
            check::asn(&p.field("localASN"), asn, 1)?;
        }
        if let Some(port) = inst.local_port {
            v::port(&p.field("localPort"), port)?;
        }
        if let Some(id) = &inst.router_id {
            v::ipv4(&p.field("routerID"), id)?;
        }
        let peers = inst.peers.as_deref().unwrap_or_default();
        v::unique_names(&p.field("peers"), peers.iter().map(|x| x.name.as_str()))?;
        for (j, peer) in peers.iter().enumerate() {
            let pp = p.field("peers").index(j);
            if let Some(addr) = &peer.peer_address {
                let bare = addr.split_once('%').map_or(addr.as_str(), |(a, _)| a);
                v::ip(&pp.field("peerAddress"), bare).map_err(|_| {
                    pp.field("peerAddress")
                        .invalid(addr, "must be an IP address, optionally with %zone")
                })?;
            }
            if let Some(asn) = peer.peer_asn {
                check::asn(&pp.field("peerASN"), asn, 0)?;
            }
            if let Some(addr) = &peer.local_address {
                v::ip(&pp.field("localAddress"), addr)?;
            }
            if peer
                .peer_config_ref
                .as_ref()
                .is_some_and(|r| r.name.is_empty())
            {
                return Err(pp.field("peerConfigRef").field("name").required(""));
            }
        }
    }
    Ok(())
}

/// v2alpha1 -> v2 for cluster and node configs: `peerConfigRef.group` and
/// `kind` must name a cilium.io CiliumBGPPeerConfig and are dropped.
pub(crate) fn from_v2alpha1(object: &mut Value) -> Result<(), FieldError> {
    let instances = object
        .pointer_mut("/spec/bgpInstances")
        .and_then(Value::as_array_mut);
    for (i, inst) in instances.into_iter().flatten().enumerate() {
        let peers = inst.get_mut("peers").and_then(Value::as_array_mut);
        for (j, peer) in peers.into_iter().flatten().enumerate() {
            let Some(r) = peer.get_mut("peerConfigRef").and_then(Value::as_object_mut) else {
                continue;
            };
            let path = Path::root("spec")
                .field("bgpInstances")
                .index(i)
                .field("peers")
                .index(j)
                .field("peerConfigRef");
            for (field, expected) in [("group", GROUP), ("kind", "CiliumBGPPeerConfig")] {
                match r.remove(field) {
                    Some(Value::String(s)) if s == expected => {}
                    Some(Value::Null) | None => {}
                    Some(other) => {
                        let shown = other
                            .as_str()
                            .map_or_else(|| other.to_string(), str::to_string);
                        return Err(path.field(field).unsupported(&shown, &[expected]));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cilium::test_support::{invalid, round_trip};

    fn cluster() -> serde_json::Value {
        json!({
            "metadata": {"name": "cilium-bgp"},
            "spec": {"nodeSelector": {"matchLabels": {"enable-bgp": "true"}},
                     "bgpInstances": [{"name": "instance-65001", "localASN": 65001,
                        "peers": [{"name": "tor-switch", "peerASN": 65000,
                                   "peerAddress": "192.168.10.200",
                                   "peerConfigRef": {"name": "cilium-peer"}}]}]}
        })
    }

    fn peer() -> serde_json::Value {
        json!({
            "metadata": {"name": "cilium-peer"},
            "spec": {"timers": {"holdTimeSeconds": 9, "keepAliveTimeSeconds": 3},
                     "ebgpMultihop": 2, "gracefulRestart": {"enabled": true, "restartTimeSeconds": 15},
                     "families": [{"afi": "ipv4", "safi": "unicast",
                                   "advertisements": {"matchLabels": {"advertise": "bgp"}}}]}
        })
    }

    #[test]
    fn round_trips() {
        let c: CiliumBGPClusterConfig = round_trip(cluster());
        let peer0 = &c.spec.bgp_instances[0].peers.as_ref().unwrap()[0];
        assert_eq!(peer0.peer_asn, Some(65000));
        let out = serde_json::to_value(&c).unwrap();
        assert_eq!(out["spec"]["bgpInstances"][0]["localASN"], 65001);
        assert_eq!(
            out["spec"]["bgpInstances"][0]["peers"][0]["peerConfigRef"]["name"],
            "cilium-peer"
        );

        let p: CiliumBGPPeerConfig = round_trip(peer());
        let timers = p.spec.timers.as_ref().unwrap();
        assert_eq!((timers.hold_time(), timers.keep_alive_time()), (9, 3));
        assert_eq!(timers.connect_retry_time(), DEFAULT_CONNECT_RETRY_TIME);

        let a: CiliumBGPAdvertisement = round_trip(json!({
            "metadata": {"name": "adv", "labels": {"advertise": "bgp"}},
            "spec": {"advertisements": [
                {"advertisementType": "PodCIDR"},
                {"advertisementType": "Service", "service": {"addresses": ["LoadBalancerIP"]},
                 "selector": {"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["y"]}]},
                 "attributes": {"communities": {"standard": ["65000:99"], "large": ["1:2:3"],
                                                "wellKnown": ["no-export"]},
                                "localPreference": 200}},
                {"advertisementType": "Interface", "interface": {"name": "lo"}}]}
        }));
        assert_eq!(a.spec.advertisements[2].advertisement_type, "Interface");

        let n: CiliumBGPNodeConfig = round_trip(json!({
            "metadata": {"name": "k8s-ctr"},
            "spec": {"bgpInstances": [{"name": "i", "localASN": 65001, "routerID": "192.168.10.100",
                     "peers": [{"name": "tor", "peerAddress": "192.168.10.200", "peerASN": 65000,
                                "localAddress": "192.168.10.100"}]}]},
            "status": {"bgpInstances": [{"name": "i", "localASN": 65001, "peers": [{
                "name": "tor", "peerAddress": "192.168.10.200", "peerASN": 65000,
                "peeringState": "established", "establishedTime": "2025-01-01T00:00:00Z",
                "timers": {"appliedHoldTimeSeconds": 9, "appliedKeepaliveSeconds": 3},
                "routeCount": [{"afi": "ipv4", "safi": "unicast", "received": 4, "advertised": 2}]}]}],
                "conditions": [{"type": "cilium.io/BGPReconcileError", "status": "False",
                                "reason": "ok", "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
        }));
        let status = n.status.as_ref().unwrap();
        let peer_status = &status.bgp_instances.as_ref().unwrap()[0]
            .peers
            .as_ref()
            .unwrap()[0];
        assert_eq!(peer_status.peering_state.as_deref(), Some("established"));

        let o: CiliumBGPNodeConfigOverride = round_trip(json!({
            "metadata": {"name": "k8s-ctr"},
            "spec": {"bgpInstances": [{"name": "i", "routerID": "10.0.0.1", "localPort": 1790,
                     "peers": [{"name": "tor", "localAddress": "192.168.10.100"}]}]}
        }));
        assert_eq!(o.spec.bgp_instances[0].local_port, Some(1790));
    }

    #[test]
    fn rejects_invalid_cluster_configs() {
        let mut c = cluster();
        c["spec"]["bgpInstances"][0]["localASN"] = json!(0);
        assert_eq!(
            invalid::<CiliumBGPClusterConfig>(c),
            "spec.bgpInstances[0].localASN: Invalid value: 0: must be between 1 and 4294967295, inclusive"
        );
        let mut c = cluster();
        c["spec"]["bgpInstances"][0]["peers"][0]["peerASN"] = json!(4294967296_i64);
        assert!(
            invalid::<CiliumBGPClusterConfig>(c)
                .starts_with("spec.bgpInstances[0].peers[0].peerASN: Invalid value: 4294967296")
        );
        let mut c = cluster();
        c["spec"]["bgpInstances"][0]["peers"][0]["peerAddress"] = json!("192.168.10");
        assert!(
            invalid::<CiliumBGPClusterConfig>(c)
                .starts_with("spec.bgpInstances[0].peers[0].peerAddress: Invalid value")
        );
        let mut c = cluster();
        c["spec"]["bgpInstances"][0]["peers"][0]["peerAddress"] = json!("fe80::1%eth1");
        let _: CiliumBGPClusterConfig = round_trip(c);
        let mut c = cluster();
        c["spec"]["bgpInstances"] = json!([]);
        assert_eq!(
            invalid::<CiliumBGPClusterConfig>(c),
            "spec.bgpInstances: Required value"
        );
        let mut c = cluster();
        let inst = c["spec"]["bgpInstances"][0].clone();
        c["spec"]["bgpInstances"] = json!([inst.clone(), inst]);
        assert!(
            invalid::<CiliumBGPClusterConfig>(c)
                .starts_with("spec.bgpInstances[1].name: Duplicate value")
        );
        let mut c = cluster();
        let many: Vec<_> = (0..17).map(|i| json!({"name": format!("i{i}")})).collect();
        c["spec"]["bgpInstances"] = json!(many);
        assert_eq!(
            invalid::<CiliumBGPClusterConfig>(c),
            "spec.bgpInstances: Too many: 17: must have at most 16 items"
        );
        let mut c = cluster();
        c["spec"]["bgpInstances"][0]["localPort"] = json!(70000);
        assert!(invalid::<CiliumBGPClusterConfig>(c).starts_with("spec.bgpInstances[0].localPort"));
    }

    #[test]
    fn rejects_invalid_peer_configs_and_advertisements() {
        let mut p = peer();
        p["spec"]["timers"]["holdTimeSeconds"] = json!(2);
        assert_eq!(
            invalid::<CiliumBGPPeerConfig>(p),
            "spec.timers.holdTimeSeconds: Invalid value: 2: must be between 3 and 65535, inclusive"
        );
        let mut p = peer();
        p["spec"]["timers"]["keepAliveTimeSeconds"] = json!(10);
        assert_eq!(
            invalid::<CiliumBGPPeerConfig>(p),
            "spec.timers.keepAliveTimeSeconds: Invalid value: 10: must be less than or equal to holdTimeSeconds (9)"
        );
        let mut p = peer();
        p["spec"]["timers"] = json!({"holdTimeSeconds": 0, "keepAliveTimeSeconds": 0});
        let _: CiliumBGPPeerConfig = round_trip(p);
        let mut p = peer();
        p["spec"]["ebgpMultihop"] = json!(256);
        assert!(
            invalid::<CiliumBGPPeerConfig>(p).starts_with("spec.ebgpMultihop: Invalid value: 256")
        );
        let mut p = peer();
        p["spec"]["gracefulRestart"]["restartTimeSeconds"] = json!(5000);
        assert!(
            invalid::<CiliumBGPPeerConfig>(p)
                .starts_with("spec.gracefulRestart.restartTimeSeconds")
        );
        let mut p = peer();
        p["spec"]["transport"] = json!({"peerPort": -1});
        assert!(invalid::<CiliumBGPPeerConfig>(p).starts_with("spec.transport.peerPort"));

        let adv = |a: serde_json::Value| {
            invalid::<CiliumBGPAdvertisement>(json!({"metadata": {"name": "a"},
                                                     "spec": {"advertisements": [a]}}))
        };
        assert!(
            adv(json!({"advertisementType": "Service"}))
                .starts_with("spec.advertisements[0].service.addresses: Required value")
        );
        assert!(
            adv(json!({"advertisementType": "PodCIDR",
                           "attributes": {"communities": {"standard": ["70000:1"]}}}))
            .starts_with("spec.advertisements[0].attributes.communities.standard[0]: Invalid")
        );
        assert!(
            adv(json!({"advertisementType": "PodCIDR",
                           "attributes": {"communities": {"large": ["1:2"]}}}))
            .starts_with("spec.advertisements[0].attributes.communities.large[0]: Invalid")
        );
        assert!(
            adv(json!({"advertisementType": ""}))
                .starts_with("spec.advertisements[0].advertisementType: Required")
        );
        let node = invalid::<CiliumBGPNodeConfig>(json!({"metadata": {"name": "n"},
            "spec": {"bgpInstances": [{"name": "i", "routerID": "fd00::1"}]}}));
        assert!(node.starts_with("spec.bgpInstances[0].routerID: Invalid value"));
    }

    #[test]
    fn v2alpha1_peer_config_ref_group_and_kind() {
        let mut c = cluster();
        c["spec"]["bgpInstances"][0]["peers"][0]["peerConfigRef"] =
            json!({"name": "p", "group": "cilium.io", "kind": "CiliumBGPPeerConfig"});
        from_v2alpha1(&mut c).unwrap();
        assert_eq!(
            c["spec"]["bgpInstances"][0]["peers"][0]["peerConfigRef"],
            json!({"name": "p"})
        );
        c["spec"]["bgpInstances"][0]["peers"][0]["peerConfigRef"]["kind"] = json!("Secret");
        assert_eq!(
            from_v2alpha1(&mut c).unwrap_err().to_string(),
            r#"spec.bgpInstances[0].peers[0].peerConfigRef.kind: Unsupported value: "Secret": supported values: "CiliumBGPPeerConfig""#
        );
    }
}
