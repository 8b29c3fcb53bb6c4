//! The agent's typed configuration: [`AgentConfig`], validated from a key
//! set in this order: unknown keys, the syntax of the keys the agent
//! supports, contradictions between them, then the syntax of every other
//! key and the feature gates (keys of features that do not exist yet).
//! The first problem is returned.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

use crate::error::{ConfigError, invalid};
use crate::key::{KeySet, Reader};
use crate::kvstore::Kvstore;
use crate::value::{self, IpamMode};

/// Routing mode (`routing-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingMode {
    /// `native`: the kernel FIB routes pod traffic between nodes.
    Native,
    /// `tunnel`: pod traffic to other nodes is encapsulated
    /// (`tunnel-protocol`) towards the remote node's InternalIP.
    Tunnel,
}

/// Encapsulation (`tunnel-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelProtocol {
    /// `vxlan`, UDP 8472 by default.
    Vxlan,
    /// `geneve`, UDP 6081 by default.
    Geneve,
}

impl TunnelProtocol {
    /// The config value (also the word in `Network: Tunnel [..]`).
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelProtocol::Vxlan => "vxlan",
            TunnelProtocol::Geneve => "geneve",
        }
    }

    /// The UDP port used when `tunnel-port` is 0 (upstream's defaults).
    pub fn default_port(self) -> u16 {
        match self {
            TunnelProtocol::Vxlan => 8472,
            TunnelProtocol::Geneve => 6081,
        }
    }

    /// Bytes the encapsulation adds to an IPv4 packet (outer IPv4 + UDP +
    /// tunnel header + inner Ethernet); upstream subtracts 50 from the
    /// route MTU for both protocols (GENEVE without options).
    pub fn overhead(self) -> u32 {
        match self {
            TunnelProtocol::Vxlan | TunnelProtocol::Geneve => 50,
        }
    }
}

/// The tunnel of `routing-mode: tunnel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    /// `tunnel-protocol`.
    pub protocol: TunnelProtocol,
    /// `tunnel-port`, with 0 resolved to the protocol's default.
    pub port: u16,
}

/// Validated agent configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// `ipam`.
    pub ipam: IpamMode,
    /// `routing-mode`.
    pub routing_mode: RoutingMode,
    /// `tunnel-protocol` and `tunnel-port` (parsed in every mode, used in
    /// tunnel mode; see [`AgentConfig::tunnel`]).
    pub tunnel_settings: Tunnel,
    /// `ipv4-native-routing-cidr`.
    pub ipv4_native_routing_cidr: Option<Ipv4Net>,
    /// `auto-direct-node-routes`.
    pub auto_direct_node_routes: bool,
    /// `enable-endpoint-routes`.
    pub enable_endpoint_routes: bool,
    /// `k8s-require-ipv4-pod-cidr`.
    pub k8s_require_ipv4_pod_cidr: bool,
    /// `write-cni-conf-when-ready` (None when empty).
    pub write_cni_conf_when_ready: Option<PathBuf>,
    /// `prometheus-serve-addr` (None when empty).
    pub prometheus_serve_addr: Option<SocketAddr>,
    /// `cluster-name`.
    pub cluster_name: String,
    /// `cluster-id`.
    pub cluster_id: u16,
    /// `mtu` (0 = the native device's MTU).
    pub mtu: u32,
    /// `debug`.
    pub debug: bool,
    /// `enable-ipv4-masquerade` (accepted; masquerading is not implemented
    /// yet, a warning is logged when on).
    pub enable_ipv4_masquerade: bool,
    /// `kvstore` and `kvstore-opt`.
    pub kvstore: Kvstore,
    /// The effective key/value map (`GET /v1/config`): every supported key
    /// with its default, overlaid with everything given.
    pub effective: BTreeMap<String, String>,
}

impl AgentConfig {
    /// The tunnel, in tunnel mode.
    pub fn tunnel(&self) -> Option<Tunnel> {
        (self.routing_mode == RoutingMode::Tunnel).then_some(self.tunnel_settings)
    }

    /// Validate a key set (see the module docs for the order of checks).
    pub fn from_map(given: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let keys = KeySet::new(given, Reader::Agent)?;
        let (config, enable_ipv4) = Self::parse(&keys)?;
        if let Some(contradiction) = config.contradiction(enable_ipv4) {
            return Err(ConfigError::Contradiction(contradiction));
        }
        // Everything else: the syntax of the keys the agent does not use,
        // and the features not there yet.
        keys.check_rest()?;
        Ok(config)
    }

    /// The syntax of every key the agent supports, in the table's order;
    /// also `enable-ipv4`, which is only checked against the others.
    fn parse(keys: &KeySet<'_>) -> Result<(Self, bool), ConfigError> {
        let get = |k: &str| keys.get(k);
        let ipam = IpamMode::parse(get("ipam"))?;
        value::parse_cidrs("cluster-pool-ipv4-cidr", get("cluster-pool-ipv4-cidr"))?;
        value::parse_prefix_len(
            "cluster-pool-ipv4-mask-size",
            get("cluster-pool-ipv4-mask-size"),
        )?;
        let routing_mode = parse_routing_mode(get("routing-mode"))?;
        let tunnel_settings = parse_tunnel(get("tunnel-protocol"), get("tunnel-port"))?;
        let ipv4_native_routing_cidr =
            value::parse_cidr("ipv4-native-routing-cidr", get("ipv4-native-routing-cidr"))?;
        let auto_direct_node_routes = keys.bool("auto-direct-node-routes")?;
        let enable_endpoint_routes = keys.bool("enable-endpoint-routes")?;
        let k8s_require_ipv4_pod_cidr = keys.bool("k8s-require-ipv4-pod-cidr")?;
        let enable_ipv4 = keys.bool("enable-ipv4")?;
        let enable_ipv4_masquerade = keys.bool("enable-ipv4-masquerade")?;
        let debug = keys.bool("debug")?;
        let write_cni_conf_when_ready = value::parse_abs_path(
            "write-cni-conf-when-ready",
            get("write-cni-conf-when-ready"),
        )?;
        let prometheus_serve_addr =
            value::parse_listen_addr("prometheus-serve-addr", get("prometheus-serve-addr"))?;
        let cluster_name = value::parse_cluster_name("cluster-name", get("cluster-name"))?;
        let cluster_id = parse_cluster_id(get("cluster-id"))?;
        let mtu = parse_mtu(get("mtu"))?;
        let kvstore = Kvstore::parse(keys)?;
        let config = Self {
            ipam,
            routing_mode,
            tunnel_settings,
            ipv4_native_routing_cidr,
            auto_direct_node_routes,
            enable_endpoint_routes,
            k8s_require_ipv4_pod_cidr,
            write_cni_conf_when_ready,
            prometheus_serve_addr,
            cluster_name,
            cluster_id,
            mtu,
            debug,
            enable_ipv4_masquerade,
            kvstore,
            effective: keys.effective(),
        };
        Ok((config, enable_ipv4))
    }

    /// The first pair of keys that contradict each other, explained.
    fn contradiction(&self, enable_ipv4: bool) -> Option<String> {
        if self.auto_direct_node_routes && self.routing_mode == RoutingMode::Tunnel {
            return Some(
                "auto-direct-node-routes: true cannot be used with routing-mode: tunnel \
                 (traffic to other nodes' pods goes through the tunnel device); set \
                 auto-direct-node-routes: false or use routing-mode: native"
                    .into(),
            );
        }
        if self.routing_mode == RoutingMode::Native && self.ipv4_native_routing_cidr.is_none() {
            return Some(
                "routing-mode: native requires ipv4-native-routing-cidr (the CIDR routed \
                 natively between nodes, e.g. the pod CIDR 172.20.0.0/16)"
                    .into(),
            );
        }
        if !enable_ipv4 {
            return Some(
                "enable-ipv4: false leaves no address family (IPv6 is not supported yet)".into(),
            );
        }
        if self.cluster_id != 0 && self.cluster_name == "default" {
            return Some(format!(
                "cluster-id: {} requires a cluster-name other than `default`",
                self.cluster_id
            ));
        }
        if self.k8s_require_ipv4_pod_cidr && self.ipam != IpamMode::Kubernetes {
            return Some("k8s-require-ipv4-pod-cidr: true requires ipam: kubernetes".into());
        }
        None
    }
}

/// `routing-mode`.
fn parse_routing_mode(value: &str) -> Result<RoutingMode, ConfigError> {
    match value {
        "native" => Ok(RoutingMode::Native),
        "tunnel" => Ok(RoutingMode::Tunnel),
        v => Err(invalid("routing-mode", v, "expected native or tunnel")),
    }
}

/// `tunnel-protocol` (empty: VXLAN) and `tunnel-port` (empty or 0: the
/// protocol's default port).
fn parse_tunnel(protocol: &str, port: &str) -> Result<Tunnel, ConfigError> {
    let protocol = match protocol {
        "vxlan" | "" => TunnelProtocol::Vxlan,
        "geneve" => TunnelProtocol::Geneve,
        v => return Err(invalid("tunnel-protocol", v, "expected vxlan or geneve")),
    };
    let port = match port {
        "" => 0,
        p => p.parse::<u16>().map_err(|_| {
            invalid(
                "tunnel-port",
                p,
                "expected a UDP port 1-65535, or 0 for the protocol's default",
            )
        })?,
    };
    Ok(Tunnel {
        protocol,
        port: if port == 0 {
            protocol.default_port()
        } else {
            port
        },
    })
}

/// `cluster-id`: 0-255.
fn parse_cluster_id(value: &str) -> Result<u16, ConfigError> {
    value
        .parse::<u16>()
        .ok()
        .filter(|id| *id <= 255)
        .ok_or_else(|| invalid("cluster-id", value, "expected 0-255"))
}

/// `mtu`: 0 (the device's MTU) or 576-65535.
fn parse_mtu(value: &str) -> Result<u32, ConfigError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|m| *m == 0 || (576..=65535).contains(m))
        .ok_or_else(|| invalid("mtu", value, "expected 0 (device MTU) or 576-65535"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::key_set;

    fn lab(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m = key_set(&[
            ("ipam", "cluster-pool"),
            ("cluster-pool-ipv4-cidr", "172.20.0.0/16"),
            ("cluster-pool-ipv4-mask-size", "24"),
            ("routing-mode", "native"),
            ("ipv4-native-routing-cidr", "172.20.0.0/16"),
            ("auto-direct-node-routes", "true"),
        ]);
        m.extend(key_set(extra));
        m
    }

    fn err(extra: &[(&str, &str)]) -> String {
        AgentConfig::from_map(&lab(extra)).unwrap_err().to_string()
    }

    #[test]
    fn accepts_the_lab_config() {
        let c = AgentConfig::from_map(&lab(&[
            (
                "write-cni-conf-when-ready",
                "/etc/cni/net.d/05-cilium.conflist",
            ),
            ("kube-proxy-replacement", "false"),
            ("enable-bpf-masquerade", "false"),
            ("tunnel-protocol", "vxlan"),
            ("bpf-lb-map-max", "65536"),
            ("enable-hubble", "False"),
        ]))
        .unwrap();
        assert_eq!(c.ipam, IpamMode::ClusterPool);
        assert_eq!(c.routing_mode, RoutingMode::Native);
        assert!(c.auto_direct_node_routes);
        assert_eq!(
            c.ipv4_native_routing_cidr,
            Some("172.20.0.0/16".parse().unwrap())
        );
        assert_eq!(
            c.prometheus_serve_addr,
            Some("0.0.0.0:9962".parse().unwrap())
        );
        assert_eq!(c.effective["cluster-name"], "default");
        assert_eq!(c.effective["bpf-lb-map-max"], "65536");
        assert_eq!(c.mtu, 0);
    }

    #[test]
    fn kubernetes_ipam_of_the_first_lab() {
        let c = AgentConfig::from_map(&lab(&[
            ("ipam", "kubernetes"),
            ("ipv4-native-routing-cidr", "10.244.0.0/16"),
            ("k8s-require-ipv4-pod-cidr", "true"),
        ]))
        .unwrap();
        assert_eq!(c.ipam, IpamMode::Kubernetes);
        assert!(c.k8s_require_ipv4_pod_cidr);
    }

    #[test]
    fn unknown_key_is_named() {
        assert_eq!(
            err(&[("enable-foo", "true")]),
            "unknown configuration key `enable-foo`"
        );
    }

    #[test]
    fn unsupported_features_are_named() {
        for (k, v) in [
            ("kube-proxy-replacement", "true"),
            ("enable-bpf-masquerade", "true"),
            ("enable-ipv6", "true"),
            ("enable-l2-announcements", "true"),
            ("enable-bgp-control-plane", "true"),
            ("enable-hubble", "true"),
            ("enable-local-redirect-policy", "true"),
            ("enable-ip-masq-agent", "true"),
            ("ipam", "multi-pool"),
            ("enable-policy", "always"),
        ] {
            assert_eq!(
                err(&[(k, v)]),
                format!("`{k}: {v}` is not supported yet"),
                "{k}"
            );
        }
    }

    #[test]
    fn contradictions() {
        assert_eq!(
            err(&[("routing-mode", "tunnel")]),
            "auto-direct-node-routes: true cannot be used with routing-mode: tunnel \
             (traffic to other nodes' pods goes through the tunnel device); set \
             auto-direct-node-routes: false or use routing-mode: native"
        );
        let mut m = lab(&[]);
        m.remove("ipv4-native-routing-cidr");
        assert!(
            AgentConfig::from_map(&m)
                .unwrap_err()
                .to_string()
                .starts_with("routing-mode: native requires ipv4-native-routing-cidr")
        );
        assert_eq!(
            err(&[("enable-ipv4", "false")]),
            "enable-ipv4: false leaves no address family (IPv6 is not supported yet)"
        );
        assert_eq!(
            err(&[("cluster-id", "3")]),
            "cluster-id: 3 requires a cluster-name other than `default`"
        );
        assert_eq!(
            err(&[("k8s-require-ipv4-pod-cidr", "true")]),
            "k8s-require-ipv4-pod-cidr: true requires ipam: kubernetes"
        );
    }

    #[test]
    fn invalid_values() {
        let cases = [
            ("ipam", "foo", "expected kubernetes or cluster-pool"),
            ("cluster-pool-ipv4-cidr", "nope", "expected IPv4 CIDRs"),
            (
                "cluster-pool-ipv4-mask-size",
                "33",
                "expected a prefix length 0-32",
            ),
            ("routing-mode", "fast", "expected native or tunnel"),
            ("tunnel-protocol", "gre", "expected vxlan or geneve"),
            (
                "tunnel-port",
                "65536",
                "expected a UDP port 1-65535, or 0 for the protocol's default",
            ),
            (
                "ipv4-native-routing-cidr",
                "1.2.3.4/40",
                "expected an IPv4 CIDR",
            ),
            ("auto-direct-node-routes", "yes", "expected true or false"),
            ("enable-endpoint-routes", "maybe", "expected true or false"),
            ("debug", "2", "expected true or false"),
            (
                "write-cni-conf-when-ready",
                "rel/path",
                "expected an absolute path",
            ),
            (
                "prometheus-serve-addr",
                "9962",
                "expected [ADDRESS]:PORT, e.g. :9962",
            ),
            (
                "cluster-name",
                "West",
                "expected 1-32 characters of a-z, 0-9 and -",
            ),
            ("cluster-id", "256", "expected 0-255"),
            ("mtu", "100", "expected 0 (device MTU) or 576-65535"),
        ];
        for (k, v, reason) in cases {
            assert_eq!(err(&[(k, v)]), format!("`{k}: {v}` is invalid: {reason}"));
        }
    }

    fn tunnel(extra: &[(&str, &str)]) -> AgentConfig {
        let mut m = lab(&[
            ("routing-mode", "tunnel"),
            ("auto-direct-node-routes", "false"),
        ]);
        m.remove("ipv4-native-routing-cidr");
        m.extend(key_set(extra));
        AgentConfig::from_map(&m).unwrap()
    }

    #[test]
    fn tunnel_mode_defaults_to_vxlan_8472_without_a_native_cidr() {
        let c = tunnel(&[]);
        assert_eq!(c.routing_mode, RoutingMode::Tunnel);
        assert_eq!(c.ipv4_native_routing_cidr, None);
        let t = c.tunnel().unwrap();
        assert_eq!((t.protocol, t.port), (TunnelProtocol::Vxlan, 8472));
        assert_eq!(t.protocol.overhead(), 50);
        assert_eq!(c.effective["tunnel-protocol"], "vxlan");
        assert_eq!(c.effective["tunnel-port"], "0");
        let c = tunnel(&[("tunnel-port", "0"), ("tunnel-protocol", "")]);
        assert_eq!(c.tunnel().unwrap().port, 8472);
    }

    #[test]
    fn geneve_defaults_to_6081_and_an_explicit_port_wins() {
        let t = tunnel(&[("tunnel-protocol", "geneve")]).tunnel().unwrap();
        assert_eq!((t.protocol, t.port), (TunnelProtocol::Geneve, 6081));
        assert_eq!(t.protocol.as_str(), "geneve");
        assert_eq!(t.protocol.overhead(), 50);
        let t = tunnel(&[("tunnel-protocol", "geneve"), ("tunnel-port", "7000")])
            .tunnel()
            .unwrap();
        assert_eq!(t.port, 7000);
        let t = tunnel(&[("tunnel-port", "4789")]).tunnel().unwrap();
        assert_eq!((t.protocol, t.port), (TunnelProtocol::Vxlan, 4789));
    }

    #[test]
    fn routing_mode_defaults_to_tunnel_like_upstream() {
        let c = AgentConfig::from_map(&BTreeMap::new()).unwrap();
        assert_eq!(c.routing_mode, RoutingMode::Tunnel);
        assert_eq!(c.effective["routing-mode"], "tunnel");
        assert!(c.tunnel().is_some());
    }

    #[test]
    fn native_mode_has_no_tunnel_but_checks_the_tunnel_keys() {
        let c = AgentConfig::from_map(&lab(&[("tunnel-protocol", "geneve")])).unwrap();
        assert_eq!(c.tunnel(), None);
        assert_eq!(c.tunnel_settings.protocol, TunnelProtocol::Geneve);
        assert_eq!(
            err(&[("tunnel-protocol", "ipip")]),
            "`tunnel-protocol: ipip` is invalid: expected vxlan or geneve"
        );
    }

    #[test]
    fn mask_longer_than_30_is_left_to_the_operator() {
        AgentConfig::from_map(&lab(&[("cluster-pool-ipv4-mask-size", "31")])).unwrap();
    }

    #[test]
    fn empty_prometheus_addr_disables() {
        let c = AgentConfig::from_map(&lab(&[("prometheus-serve-addr", "")])).unwrap();
        assert_eq!(c.prometheus_serve_addr, None);
    }

    #[test]
    fn defaults_and_the_effective_map() {
        let c = AgentConfig::from_map(&BTreeMap::new()).unwrap();
        assert_eq!(c.ipam, IpamMode::ClusterPool);
        assert_eq!(
            c.tunnel(),
            Some(Tunnel {
                protocol: TunnelProtocol::Vxlan,
                port: 8472
            })
        );
        assert_eq!(c.ipv4_native_routing_cidr, None);
        assert!(!c.auto_direct_node_routes && !c.enable_endpoint_routes && !c.debug);
        assert!(c.enable_ipv4_masquerade);
        assert_eq!(c.write_cni_conf_when_ready, None);
        assert_eq!(
            (c.cluster_name.as_str(), c.cluster_id, c.mtu),
            ("default", 0, 0)
        );
        // `cilium-dbg config` prints exactly the keys the agent supports.
        let expected = key_set(&[
            ("auto-direct-node-routes", "false"),
            ("cluster-id", "0"),
            ("cluster-name", "default"),
            ("cluster-pool-ipv4-cidr", "10.0.0.0/8"),
            ("cluster-pool-ipv4-mask-size", "24"),
            ("debug", "false"),
            ("enable-endpoint-routes", "false"),
            ("enable-ipv4", "true"),
            ("enable-ipv4-masquerade", "true"),
            ("ipam", "cluster-pool"),
            ("ipv4-native-routing-cidr", ""),
            ("k8s-require-ipv4-pod-cidr", "false"),
            ("kvstore", ""),
            ("kvstore-opt", ""),
            ("mtu", "0"),
            ("prometheus-serve-addr", ":9962"),
            ("routing-mode", "tunnel"),
            ("tunnel-port", "0"),
            ("tunnel-protocol", "vxlan"),
            ("write-cni-conf-when-ready", ""),
        ]);
        assert_eq!(c.effective, expected);
    }

    #[test]
    fn inert_and_operator_keys_are_recorded_and_syntax_checked() {
        let c = AgentConfig::from_map(&lab(&[
            ("monitor-aggregation", "medium"),
            ("identity-gc-interval", "1s"),
            ("enable-ipv6-masquerade", "True"),
        ]))
        .unwrap();
        assert_eq!(c.effective["monitor-aggregation"], "medium");
        assert_eq!(c.effective["identity-gc-interval"], "1s");
        assert_eq!(
            err(&[("bpf-ct-global-tcp-max", "lots")]),
            "`bpf-ct-global-tcp-max: lots` is invalid: expected an integer"
        );
        assert!(
            err(&[("identity-gc-interval", "soon")])
                .starts_with("`identity-gc-interval: soon` is invalid: ")
        );
        assert_eq!(
            err(&[("bpf-lb-algorithm", "round-robin")]),
            "`bpf-lb-algorithm: round-robin` is invalid: expected random or maglev"
        );
    }

    #[test]
    fn feature_gates_accept_their_off_values() {
        for (k, v) in [
            ("kube-proxy-replacement", "disabled"),
            ("kube-proxy-replacement", ""),
            ("enable-bpf-masquerade", "0"),
            ("enable-l7-proxy", "true"),
            ("enable-policy", "never"),
            ("identity-allocation-mode", "kvstore"),
        ] {
            AgentConfig::from_map(&lab(&[(k, v)])).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
        }
    }

    #[test]
    fn contradictions_come_before_feature_gates() {
        assert!(
            err(&[
                ("routing-mode", "tunnel"),
                ("enable-bpf-masquerade", "true")
            ])
            .starts_with("auto-direct-node-routes: true cannot be used")
        );
    }
}
