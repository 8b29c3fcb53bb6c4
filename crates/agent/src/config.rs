//! The `cilium-config` key set: reading it (a directory with one file per
//! key, like a mounted ConfigMap, plus `--config KEY=VALUE` overrides) and
//! validating it into a typed [`AgentConfig`].
//!
//! Every key falls in one of four classes:
//! - **supported**: parsed into [`AgentConfig`] and acted upon;
//! - **feature-gated**: the feature does not exist yet; the key is accepted
//!   only with a value that means "off" (its upstream default, or an
//!   equivalent), anything else is "`<key>: <value>` is not supported yet";
//! - **inert**: upstream keys that change nothing observable in this
//!   implementation (sizes fixed by the datapath build, intervals of
//!   controllers we run differently, settings of other processes such as
//!   the operator); accepted, recorded in the effective map, not used;
//! - anything else is an unknown key, an error naming it.
//!
//! Pure code: no I/O except [`read_config_dir`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

/// A configuration error, with the message shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key nobody knows.
    #[error("unknown configuration key `{0}`")]
    UnknownKey(String),
    /// A value that does not parse or is out of range.
    #[error("`{key}: {value}` is invalid: {reason}")]
    InvalidValue {
        /// Key.
        key: String,
        /// Value as given.
        value: String,
        /// Why.
        reason: String,
    },
    /// A feature this implementation does not have yet.
    #[error("`{key}: {value}` is not supported yet")]
    NotSupported {
        /// Key.
        key: String,
        /// Value as given.
        value: String,
    },
    /// Keys that contradict each other.
    #[error("{0}")]
    Contradiction(String),
    /// A `--config` argument without `=`.
    #[error("`--config {0}`: expected KEY=VALUE")]
    BadOverride(String),
    /// The config directory could not be read.
    #[error("reading config directory {path}: {message}")]
    Io {
        /// Directory or file.
        path: PathBuf,
        /// Cause.
        message: String,
    },
}

/// IPAM mode (`ipam`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpamMode {
    /// `kubernetes`: the Node's `spec.podCIDR(s)`.
    Kubernetes,
    /// `cluster-pool`: the operator fills `CiliumNode.spec.ipam.podCIDRs`.
    ClusterPool,
}

impl IpamMode {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            IpamMode::Kubernetes => "kubernetes",
            IpamMode::ClusterPool => "cluster-pool",
        }
    }
}

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
    /// The effective key/value map (`GET /v1/config`): every supported key
    /// with its default, overlaid with everything given.
    pub effective: BTreeMap<String, String>,
}

/// Supported keys and their upstream defaults (`tunnel-port: 0` means the
/// protocol's default port).
const SUPPORTED: &[(&str, &str)] = &[
    ("ipam", "cluster-pool"),
    ("cluster-pool-ipv4-cidr", "10.0.0.0/8"),
    ("cluster-pool-ipv4-mask-size", "24"),
    ("routing-mode", "tunnel"),
    ("tunnel-protocol", "vxlan"),
    ("tunnel-port", "0"),
    ("ipv4-native-routing-cidr", ""),
    ("auto-direct-node-routes", "false"),
    ("enable-endpoint-routes", "false"),
    ("k8s-require-ipv4-pod-cidr", "false"),
    ("write-cni-conf-when-ready", ""),
    ("prometheus-serve-addr", ":9962"),
    ("cluster-name", "default"),
    ("cluster-id", "0"),
    ("enable-ipv4", "true"),
    ("enable-ipv4-masquerade", "true"),
    ("mtu", "0"),
    ("debug", "false"),
];

/// Keys of features that do not exist yet, with the values accepted
/// because they mean "off" (the first one is the upstream default).
const FEATURE_GATED: &[(&str, &[&str])] = &[
    ("kube-proxy-replacement", &["false", "disabled", ""]),
    ("enable-bpf-masquerade", &["false"]),
    ("enable-ipv6", &["false"]),
    ("enable-ipv6-masquerade", &["false", "true"]),
    ("enable-l2-announcements", &["false"]),
    ("enable-bgp-control-plane", &["false"]),
    ("enable-hubble", &["false"]),
    ("enable-local-redirect-policy", &["false"]),
    ("enable-ip-masq-agent", &["false"]),
    ("enable-host-firewall", &["false"]),
    ("enable-wireguard", &["false"]),
    ("enable-ipsec", &["false"]),
    ("enable-bandwidth-manager", &["false"]),
    ("enable-ipv4-big-tcp", &["false"]),
    ("enable-ipv6-big-tcp", &["false"]),
    ("enable-egress-gateway", &["false"]),
    ("enable-l7-proxy", &["false", "true"]),
    ("enable-envoy-config", &["false"]),
    ("enable-ingress-controller", &["false"]),
    ("enable-gateway-api", &["false"]),
    ("enable-node-port", &["false"]),
    ("enable-host-port", &["false"]),
    ("enable-external-ips", &["false"]),
    ("enable-session-affinity", &["false"]),
    ("enable-health-checking", &["true", "false"]),
    ("enable-endpoint-health-checking", &["true", "false"]),
    ("enable-policy", &["default", "never"]),
    ("enable-xdp-prefilter", &["false"]),
    ("enable-host-legacy-routing", &["false", "true"]),
    ("enable-lb-ipam", &["false"]),
    ("enable-vtep", &["false"]),
    ("enable-srv6", &["false"]),
    ("enable-cilium-endpoint-slice", &["false"]),
    ("enable-k8s-endpoint-slice", &["true", "false"]),
    ("clustermesh-config", &[""]),
    ("install-no-conntrack-iptables-rules", &["false"]),
    ("bpf-lb-sock", &["false"]),
    ("bpf-lb-algorithm", &["random"]),
    ("bpf-lb-mode", &["snat"]),
    ("bpf-lb-acceleration", &["disabled"]),
    ("identity-allocation-mode", &["crd", "kvstore"]),
    ("cni-chaining-mode", &["none", ""]),
    ("custom-cni-conf", &["false"]),
    ("datapath-mode", &["veth"]),
    ("ipv4-range", &["auto", ""]),
    ("egress-masquerade-interfaces", &[""]),
];

/// Upstream keys accepted and ignored: nothing observable depends on them
/// in this implementation. Map sizes are fixed by the datapath build;
/// intervals and rates belong to controllers we run event-driven; the rest
/// configure other processes (operator, Hubble relay, Envoy) or Kubernetes
/// client tuning that the store does not have.
const INERT: &[&str] = &[
    "agent-not-ready-taint-key",
    "arping-refresh-period",
    "auto-create-cilium-node-resource",
    "bpf-ct-global-any-max",
    "bpf-ct-global-tcp-max",
    "bpf-lb-external-clusterip",
    "bpf-lb-map-max",
    "bpf-map-dynamic-size-ratio",
    "bpf-nat-global-max",
    "bpf-neigh-global-max",
    "bpf-policy-map-max",
    "bpf-root",
    "cgroup-root",
    "cilium-endpoint-gc-interval",
    "clean-cilium-bpf-state",
    "clean-cilium-state",
    "cni-exclusive",
    "cni-log-file",
    "cni-uninstall",
    "controller-group-metrics",
    "direct-routing-skip-unreachable",
    "dnsproxy-enable-transparent-mode",
    "dnsproxy-socket-linger-timeout",
    "egress-gateway-reconciliation-trigger-interval",
    "enable-auto-protect-node-port-range",
    "enable-health-check-loadbalancer-ip",
    "enable-health-check-nodeport",
    "enable-k8s-networkpolicy",
    "enable-k8s-terminating-endpoint",
    "enable-metrics",
    "enable-sctp",
    "enable-svc-source-range-check",
    "enable-tcx",
    "enable-well-known-identities",
    "enable-xt-socket-fallback",
    "external-envoy-proxy",
    "hubble-disable-tls",
    "hubble-export-file-max-backups",
    "hubble-export-file-max-size-mb",
    "hubble-listen-address",
    "hubble-metrics",
    "hubble-metrics-server",
    "hubble-socket-path",
    "hubble-tls-cert-file",
    "hubble-tls-client-ca-files",
    "hubble-tls-key-file",
    "identity-gc-interval",
    "identity-heartbeat-timeout",
    "ipam-cilium-node-update-rate",
    "k8s-client-burst",
    "k8s-client-qps",
    "max-connected-clusters",
    "mesh-auth-enabled",
    "mesh-auth-gc-interval",
    "mesh-auth-queue-size",
    "mesh-auth-rotated-identities-queue-size",
    "monitor-aggregation",
    "monitor-aggregation-flags",
    "monitor-aggregation-interval",
    "nat-map-stats-entries",
    "nat-map-stats-interval",
    "node-port-bind-protection",
    "nodes-gc-interval",
    "operator-api-serve-addr",
    "operator-prometheus-serve-addr",
    "policy-cidr-match-mode",
    "policy-audit-mode",
    "preallocate-bpf-maps",
    "procfs",
    "proxy-connect-timeout",
    "proxy-idle-timeout-seconds",
    "proxy-max-connection-duration-seconds",
    "proxy-max-requests-per-connection",
    "proxy-prometheus-port",
    "proxy-xff-num-trusted-hops-egress",
    "proxy-xff-num-trusted-hops-ingress",
    "remove-cilium-node-taints",
    "set-cilium-is-up-condition",
    "set-cilium-node-taints",
    "synchronize-k8s-nodes",
    "tofqdns-dns-reject-response-code",
    "tofqdns-enable-dns-compression",
    "tofqdns-endpoint-max-ip-per-hostname",
    "tofqdns-idle-connection-grace-period",
    "tofqdns-max-deferred-connection-deletes",
    "tofqdns-proxy-response-max-delay",
    "unmanaged-pod-watcher-interval",
    "vtep-cidr",
    "vtep-endpoint",
    "vtep-mac",
    "vtep-mask",
];

/// Whether `key` is known at all.
pub fn is_known_key(key: &str) -> bool {
    SUPPORTED.iter().any(|(k, _)| *k == key)
        || FEATURE_GATED.iter().any(|(k, _)| *k == key)
        || INERT.contains(&key)
}

/// Read a ConfigMap-style directory: one file per key, the file's content
/// (trimmed) is the value. Hidden entries (`..data`, `..2024_...` of
/// Kubernetes' atomic writer) and subdirectories are skipped.
pub fn read_config_dir(dir: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let io = |path: &Path, e: std::io::Error| ConfigError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follow symlinks (ConfigMap keys are symlinks into `..data`).
        if !path.is_file() {
            continue;
        }
        let value = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        out.insert(name, value.trim().to_string());
    }
    Ok(out)
}

/// Apply `--config KEY=VALUE` overrides on top of `base`.
pub fn apply_overrides(
    mut base: BTreeMap<String, String>,
    overrides: &[String],
) -> Result<BTreeMap<String, String>, ConfigError> {
    for o in overrides {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| ConfigError::BadOverride(o.clone()))?;
        base.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(base)
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Go's `strconv.ParseBool`, which upstream uses for boolean keys.
fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

/// Normalise a boolean-looking value so `True`/`1` match `true` in the
/// feature-gate table.
fn normalise(value: &str) -> String {
    match value {
        "1" | "t" | "T" | "TRUE" | "True" => "true".to_string(),
        "0" | "f" | "F" | "FALSE" | "False" => "false".to_string(),
        v => v.to_string(),
    }
}

/// `:9962`, `0.0.0.0:9962`, `127.0.0.1:9962`; empty disables.
fn parse_listen_addr(key: &str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if value.is_empty() {
        return Ok(None);
    }
    let full = if value.starts_with(':') {
        format!("0.0.0.0{value}")
    } else {
        value.to_string()
    };
    full.parse::<SocketAddr>()
        .map(Some)
        .map_err(|_| invalid(key, value, "expected [ADDRESS]:PORT, e.g. :9962"))
}

impl AgentConfig {
    /// The tunnel, in tunnel mode.
    pub fn tunnel(&self) -> Option<Tunnel> {
        (self.routing_mode == RoutingMode::Tunnel).then_some(self.tunnel_settings)
    }

    /// Validate a key/value map (config dir + overrides). Checks, in
    /// order: unknown keys, value syntax, contradictions between keys,
    /// features not supported yet. The first problem is returned.
    pub fn from_map(given: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        if let Some(key) = given.keys().find(|k| !is_known_key(k)) {
            return Err(ConfigError::UnknownKey(key.clone()));
        }
        let mut effective: BTreeMap<String, String> = SUPPORTED
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        effective.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
        let get = |k: &str| effective.get(k).map(String::as_str).unwrap_or("");

        // Syntax.
        let ipam = match get("ipam") {
            "kubernetes" => IpamMode::Kubernetes,
            "cluster-pool" => IpamMode::ClusterPool,
            v @ ("multi-pool" | "eni" | "azure" | "alibabacloud" | "crd" | "delegated-plugin") => {
                return Err(ConfigError::NotSupported {
                    key: "ipam".into(),
                    value: v.into(),
                });
            }
            v => return Err(invalid("ipam", v, "expected kubernetes or cluster-pool")),
        };
        let pool = get("cluster-pool-ipv4-cidr");
        for cidr in pool.split([' ', ',']).filter(|s| !s.is_empty()) {
            cidr.parse::<Ipv4Net>()
                .map_err(|_| invalid("cluster-pool-ipv4-cidr", pool, "expected IPv4 CIDRs"))?;
        }
        // The mask is validated against the pool by the operator (which
        // reports it in the CiliumNode's status); here only its syntax.
        let mask = get("cluster-pool-ipv4-mask-size");
        mask.parse::<u8>()
            .ok()
            .filter(|m| *m <= 32)
            .ok_or_else(|| {
                invalid(
                    "cluster-pool-ipv4-mask-size",
                    mask,
                    "expected a prefix length 0-32",
                )
            })?;
        let routing_mode = match get("routing-mode") {
            "native" => RoutingMode::Native,
            "tunnel" => RoutingMode::Tunnel,
            v => return Err(invalid("routing-mode", v, "expected native or tunnel")),
        };
        let protocol = match get("tunnel-protocol") {
            "vxlan" | "" => TunnelProtocol::Vxlan,
            "geneve" => TunnelProtocol::Geneve,
            v => return Err(invalid("tunnel-protocol", v, "expected vxlan or geneve")),
        };
        let port_s = get("tunnel-port");
        let port = match port_s {
            "" => 0,
            p => p.parse::<u16>().map_err(|_| {
                invalid(
                    "tunnel-port",
                    p,
                    "expected a UDP port 1-65535, or 0 for the protocol's default",
                )
            })?,
        };
        let tunnel_settings = Tunnel {
            protocol,
            port: if port == 0 {
                protocol.default_port()
            } else {
                port
            },
        };
        let nrc = get("ipv4-native-routing-cidr");
        let ipv4_native_routing_cidr = if nrc.is_empty() {
            None
        } else {
            Some(
                nrc.parse::<Ipv4Net>()
                    .map_err(|_| invalid("ipv4-native-routing-cidr", nrc, "expected an IPv4 CIDR"))?
                    .trunc(),
            )
        };
        let auto_direct_node_routes =
            parse_bool("auto-direct-node-routes", get("auto-direct-node-routes"))?;
        let enable_endpoint_routes =
            parse_bool("enable-endpoint-routes", get("enable-endpoint-routes"))?;
        let k8s_require_ipv4_pod_cidr = parse_bool(
            "k8s-require-ipv4-pod-cidr",
            get("k8s-require-ipv4-pod-cidr"),
        )?;
        let enable_ipv4 = parse_bool("enable-ipv4", get("enable-ipv4"))?;
        let enable_ipv4_masquerade =
            parse_bool("enable-ipv4-masquerade", get("enable-ipv4-masquerade"))?;
        let debug = parse_bool("debug", get("debug"))?;
        let cni = get("write-cni-conf-when-ready");
        let write_cni_conf_when_ready = if cni.is_empty() {
            None
        } else if !cni.starts_with('/') {
            return Err(invalid(
                "write-cni-conf-when-ready",
                cni,
                "expected an absolute path",
            ));
        } else {
            Some(PathBuf::from(cni))
        };
        let prometheus_serve_addr =
            parse_listen_addr("prometheus-serve-addr", get("prometheus-serve-addr"))?;
        let cluster_name = get("cluster-name").to_string();
        if cluster_name.is_empty()
            || cluster_name.len() > 32
            || !cluster_name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(
                "cluster-name",
                &cluster_name,
                "expected 1-32 characters of a-z, 0-9 and -",
            ));
        }
        let cid = get("cluster-id");
        let cluster_id = cid
            .parse::<u16>()
            .ok()
            .filter(|id| *id <= 255)
            .ok_or_else(|| invalid("cluster-id", cid, "expected 0-255"))?;
        let mtu_s = get("mtu");
        let mtu = mtu_s
            .parse::<u32>()
            .ok()
            .filter(|m| *m == 0 || (576..=65535).contains(m))
            .ok_or_else(|| invalid("mtu", mtu_s, "expected 0 (device MTU) or 576-65535"))?;

        // Contradictions.
        if auto_direct_node_routes && routing_mode == RoutingMode::Tunnel {
            return Err(ConfigError::Contradiction(
                "auto-direct-node-routes: true cannot be used with routing-mode: tunnel \
                 (traffic to other nodes' pods goes through the tunnel device); set \
                 auto-direct-node-routes: false or use routing-mode: native"
                    .into(),
            ));
        }
        if routing_mode == RoutingMode::Native && ipv4_native_routing_cidr.is_none() {
            return Err(ConfigError::Contradiction(
                "routing-mode: native requires ipv4-native-routing-cidr (the CIDR routed \
                 natively between nodes, e.g. the pod CIDR 172.20.0.0/16)"
                    .into(),
            ));
        }
        if !enable_ipv4 {
            return Err(ConfigError::Contradiction(
                "enable-ipv4: false leaves no address family (IPv6 is not supported yet)".into(),
            ));
        }
        if cluster_id != 0 && cluster_name == "default" {
            return Err(ConfigError::Contradiction(format!(
                "cluster-id: {cluster_id} requires a cluster-name other than `default`"
            )));
        }
        if k8s_require_ipv4_pod_cidr && ipam != IpamMode::Kubernetes {
            return Err(ConfigError::Contradiction(
                "k8s-require-ipv4-pod-cidr: true requires ipam: kubernetes".into(),
            ));
        }

        // Features not there yet.
        for (key, accepted) in FEATURE_GATED {
            if let Some(v) = given.get(*key)
                && !accepted.contains(&normalise(v).as_str())
            {
                return Err(ConfigError::NotSupported {
                    key: key.to_string(),
                    value: v.clone(),
                });
            }
        }

        Ok(Self {
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
            effective,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn lab(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m = map(&[
            ("ipam", "cluster-pool"),
            ("cluster-pool-ipv4-cidr", "172.20.0.0/16"),
            ("cluster-pool-ipv4-mask-size", "24"),
            ("routing-mode", "native"),
            ("ipv4-native-routing-cidr", "172.20.0.0/16"),
            ("auto-direct-node-routes", "true"),
        ]);
        m.extend(map(extra));
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
        m.extend(map(extra));
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
    fn overrides_and_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ipam"), "kubernetes\n").unwrap();
        std::fs::write(dir.path().join("..data"), "x").unwrap();
        std::fs::create_dir(dir.path().join("..2024_01")).unwrap();
        let base = read_config_dir(dir.path()).unwrap();
        assert_eq!(base, map(&[("ipam", "kubernetes")]));
        let m =
            apply_overrides(base, &["ipam=cluster-pool".into(), "debug = true".into()]).unwrap();
        assert_eq!(m, map(&[("debug", "true"), ("ipam", "cluster-pool")]));
        assert_eq!(
            apply_overrides(BTreeMap::new(), &["oops".into()])
                .unwrap_err()
                .to_string(),
            "`--config oops`: expected KEY=VALUE"
        );
    }

    #[test]
    fn every_table_key_is_unique() {
        let mut all: Vec<&str> = SUPPORTED.iter().map(|(k, _)| *k).collect();
        all.extend(FEATURE_GATED.iter().map(|(k, _)| *k));
        all.extend(INERT);
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
