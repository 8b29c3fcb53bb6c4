//! The key table: every `cilium-config` key this implementation knows,
//! with its upstream name, value type, default, class and readers. A key
//! missing from here is an error wherever it is given.

use crate::key::Class::{FeatureGated, Inert, Supported};
use crate::key::Type::{
    Address, Bool, Choice, Cidr, Cidrs, Duration, Float, Int, Name, Path, Text,
};
use crate::key::{Class, Key, Reader, Type};

const AGENT: &[Reader] = &[Reader::Agent];
const OPERATOR: &[Reader] = &[Reader::Operator];
const BOTH: &[Reader] = &[Reader::Agent, Reader::Operator];

const fn key(
    name: &'static str,
    ty: Type,
    default: &'static str,
    class: Class,
    readers: &'static [Reader],
) -> Key {
    Key {
        name,
        ty,
        default,
        class,
        readers,
    }
}

const fn supported(
    name: &'static str,
    ty: Type,
    default: &'static str,
    readers: &'static [Reader],
) -> Key {
    key(name, ty, default, Supported, readers)
}

const fn gated(
    name: &'static str,
    ty: Type,
    default: &'static str,
    off: &'static [&'static str],
    readers: &'static [Reader],
) -> Key {
    key(name, ty, default, FeatureGated { off }, readers)
}

const fn inert(
    name: &'static str,
    ty: Type,
    default: &'static str,
    readers: &'static [Reader],
) -> Key {
    key(name, ty, default, Inert, readers)
}

const NO: &[&str] = &["false"];
const EITHER: &[&str] = &["false", "true"];

/// Every key. `prometheus-serve-addr` defaults to upstream chart's `:9962`
/// (the agent flag's default is empty); `identity-gc-interval` to 30s
/// (upstream: 15m0s) so that the lab shows collection within a minute.
#[rustfmt::skip]
pub(crate) const KEYS: &[Key] = &[
    // Supported: parsed and acted upon by their readers.
    supported("ipam", Choice(&["kubernetes", "cluster-pool"]), "cluster-pool", BOTH),
    supported("cluster-pool-ipv4-cidr", Cidrs, "10.0.0.0/8", BOTH),
    supported("cluster-pool-ipv4-mask-size", Int, "24", BOTH),
    supported("cluster-name", Name, "default", BOTH),
    supported("routing-mode", Choice(&["native", "tunnel"]), "tunnel", AGENT),
    supported("tunnel-protocol", Choice(&["vxlan", "geneve"]), "vxlan", AGENT),
    supported("tunnel-port", Int, "0", AGENT),
    supported("ipv4-native-routing-cidr", Cidr, "", AGENT),
    supported("auto-direct-node-routes", Bool, "false", AGENT),
    supported("enable-endpoint-routes", Bool, "false", AGENT),
    supported("k8s-require-ipv4-pod-cidr", Bool, "false", AGENT),
    supported("write-cni-conf-when-ready", Path, "", AGENT),
    supported("prometheus-serve-addr", Address, ":9962", AGENT),
    supported("cluster-id", Int, "0", AGENT),
    supported("enable-ipv4", Bool, "true", AGENT),
    supported("enable-ipv4-masquerade", Bool, "true", AGENT),
    supported("mtu", Int, "0", AGENT),
    supported("debug", Bool, "false", AGENT),
    supported("identity-gc-interval", Duration, "30s", OPERATOR),
    supported("kvstore", Choice(&["etcd"]), "", BOTH),
    supported("kvstore-opt", Text, "", BOTH),

    // Feature-gated: only values meaning "off" are accepted.
    gated("kube-proxy-replacement", Text, "false", &["false", "disabled", ""], AGENT),
    gated("enable-bpf-masquerade", Bool, "false", NO, AGENT),
    gated("enable-ipv6", Bool, "false", NO, BOTH),
    gated("enable-ipv6-masquerade", Bool, "true", EITHER, AGENT),
    gated("enable-l2-announcements", Bool, "false", NO, AGENT),
    gated("enable-bgp-control-plane", Bool, "false", NO, BOTH),
    gated("enable-hubble", Bool, "false", NO, AGENT),
    gated("enable-local-redirect-policy", Bool, "false", NO, AGENT),
    gated("enable-ip-masq-agent", Bool, "false", NO, AGENT),
    gated("enable-host-firewall", Bool, "false", NO, AGENT),
    gated("enable-wireguard", Bool, "false", NO, AGENT),
    gated("enable-ipsec", Bool, "false", NO, AGENT),
    gated("enable-bandwidth-manager", Bool, "false", NO, AGENT),
    gated("enable-ipv4-big-tcp", Bool, "false", NO, AGENT),
    gated("enable-ipv6-big-tcp", Bool, "false", NO, AGENT),
    gated("enable-egress-gateway", Bool, "false", NO, AGENT),
    gated("enable-l7-proxy", Bool, "true", EITHER, AGENT),
    gated("enable-envoy-config", Bool, "false", NO, AGENT),
    gated("enable-ingress-controller", Bool, "false", NO, BOTH),
    gated("enable-gateway-api", Bool, "false", NO, BOTH),
    gated("enable-node-port", Bool, "false", NO, AGENT),
    gated("enable-host-port", Bool, "false", NO, AGENT),
    gated("enable-external-ips", Bool, "false", NO, AGENT),
    gated("enable-session-affinity", Bool, "false", NO, AGENT),
    gated("enable-health-checking", Bool, "true", EITHER, AGENT),
    gated("enable-endpoint-health-checking", Bool, "true", EITHER, AGENT),
    gated("enable-policy", Choice(&["default", "always", "never"]), "default", &["default", "never"], AGENT),
    gated("enable-xdp-prefilter", Bool, "false", NO, AGENT),
    gated("enable-host-legacy-routing", Bool, "false", EITHER, AGENT),
    gated("enable-lb-ipam", Bool, "false", NO, BOTH),
    gated("enable-vtep", Bool, "false", NO, AGENT),
    gated("enable-srv6", Bool, "false", NO, AGENT),
    gated("enable-cilium-endpoint-slice", Bool, "false", NO, BOTH),
    gated("enable-k8s-endpoint-slice", Bool, "true", EITHER, BOTH),
    gated("clustermesh-config", Path, "", &[""], AGENT),
    gated("install-no-conntrack-iptables-rules", Bool, "false", NO, AGENT),
    gated("bpf-lb-sock", Bool, "false", NO, AGENT),
    gated("bpf-lb-algorithm", Choice(&["random", "maglev"]), "random", &["random"], AGENT),
    gated("bpf-lb-mode", Choice(&["snat", "dsr", "hybrid"]), "snat", &["snat"], AGENT),
    gated("bpf-lb-acceleration", Choice(&["disabled", "native", "best-effort"]), "disabled", &["disabled"], AGENT),
    gated("identity-allocation-mode", Choice(&["crd", "kvstore", "doublewrite-readkvstore", "doublewrite-readcrd"]), "crd", &["crd", "kvstore"], BOTH),
    gated("cni-chaining-mode", Text, "none", &["none", ""], AGENT),
    gated("custom-cni-conf", Bool, "false", NO, AGENT),
    gated("datapath-mode", Choice(&["veth", "netkit", "netkit-l2"]), "veth", &["veth"], AGENT),
    gated("ipv4-range", Text, "auto", &["auto", ""], AGENT),
    gated("egress-masquerade-interfaces", Text, "", &[""], AGENT),

    // Inert: accepted, recorded, not used.
    inert("agent-not-ready-taint-key", Text, "node.cilium.io/agent-not-ready", BOTH),
    inert("arping-refresh-period", Duration, "30s", AGENT),
    inert("auto-create-cilium-node-resource", Bool, "true", AGENT),
    inert("bpf-ct-global-any-max", Int, "262144", AGENT),
    inert("bpf-ct-global-tcp-max", Int, "524288", AGENT),
    inert("bpf-lb-external-clusterip", Bool, "false", AGENT),
    inert("bpf-lb-map-max", Int, "65536", AGENT),
    inert("bpf-map-dynamic-size-ratio", Float, "0.0025", AGENT),
    inert("bpf-nat-global-max", Int, "524288", AGENT),
    inert("bpf-neigh-global-max", Int, "524288", AGENT),
    inert("bpf-policy-map-max", Int, "16384", AGENT),
    inert("bpf-root", Path, "/sys/fs/bpf", AGENT),
    inert("cgroup-root", Path, "/run/cilium/cgroupv2", AGENT),
    inert("cilium-endpoint-gc-interval", Duration, "5m0s", OPERATOR),
    inert("clean-cilium-bpf-state", Bool, "false", AGENT),
    inert("clean-cilium-state", Bool, "false", AGENT),
    inert("cni-exclusive", Bool, "true", AGENT),
    inert("cni-log-file", Path, "/var/run/cilium/cilium-cni.log", AGENT),
    inert("cni-uninstall", Bool, "true", AGENT),
    inert("controller-group-metrics", Text, "write-cni-file sync-host-ips sync-lb-maps-with-k8s-services", AGENT),
    inert("direct-routing-skip-unreachable", Bool, "false", AGENT),
    inert("dnsproxy-enable-transparent-mode", Bool, "true", AGENT),
    inert("dnsproxy-socket-linger-timeout", Int, "10", AGENT),
    inert("egress-gateway-reconciliation-trigger-interval", Duration, "1s", AGENT),
    inert("enable-auto-protect-node-port-range", Bool, "true", AGENT),
    inert("enable-health-check-loadbalancer-ip", Bool, "false", AGENT),
    inert("enable-health-check-nodeport", Bool, "true", AGENT),
    inert("enable-k8s-networkpolicy", Bool, "true", AGENT),
    inert("enable-k8s-terminating-endpoint", Bool, "true", AGENT),
    inert("enable-metrics", Bool, "true", BOTH),
    inert("enable-sctp", Bool, "false", AGENT),
    inert("enable-svc-source-range-check", Bool, "true", AGENT),
    inert("enable-tcx", Bool, "true", AGENT),
    inert("enable-well-known-identities", Bool, "false", AGENT),
    inert("enable-xt-socket-fallback", Bool, "true", AGENT),
    inert("external-envoy-proxy", Bool, "true", AGENT),
    inert("hubble-disable-tls", Bool, "false", AGENT),
    inert("hubble-export-file-max-backups", Int, "5", AGENT),
    inert("hubble-export-file-max-size-mb", Int, "10", AGENT),
    inert("hubble-listen-address", Address, ":4244", AGENT),
    inert("hubble-metrics", Text, "", AGENT),
    inert("hubble-metrics-server", Address, "", AGENT),
    inert("hubble-socket-path", Path, "/var/run/cilium/hubble.sock", AGENT),
    inert("hubble-tls-cert-file", Path, "/var/lib/cilium/tls/hubble/server.crt", AGENT),
    inert("hubble-tls-client-ca-files", Text, "/var/lib/cilium/tls/hubble/client-ca.crt", AGENT),
    inert("hubble-tls-key-file", Path, "/var/lib/cilium/tls/hubble/server.key", AGENT),
    inert("identity-heartbeat-timeout", Duration, "30m0s", OPERATOR),
    inert("ipam-cilium-node-update-rate", Duration, "15s", AGENT),
    inert("k8s-client-burst", Int, "20", BOTH),
    inert("k8s-client-qps", Float, "10", BOTH),
    inert("max-connected-clusters", Int, "255", BOTH),
    inert("mesh-auth-enabled", Bool, "true", AGENT),
    inert("mesh-auth-gc-interval", Duration, "5m0s", AGENT),
    inert("mesh-auth-queue-size", Int, "1024", AGENT),
    inert("mesh-auth-rotated-identities-queue-size", Int, "1024", AGENT),
    inert("monitor-aggregation", Text, "medium", AGENT),
    inert("monitor-aggregation-flags", Text, "all", AGENT),
    inert("monitor-aggregation-interval", Duration, "5s", AGENT),
    inert("nat-map-stats-entries", Int, "32", AGENT),
    inert("nat-map-stats-interval", Duration, "30s", AGENT),
    inert("node-port-bind-protection", Bool, "true", AGENT),
    inert("nodes-gc-interval", Duration, "5m0s", OPERATOR),
    inert("operator-api-serve-addr", Address, "127.0.0.1:9234", OPERATOR),
    inert("operator-prometheus-serve-addr", Address, ":9963", OPERATOR),
    inert("policy-cidr-match-mode", Text, "", AGENT),
    inert("policy-audit-mode", Bool, "false", AGENT),
    inert("preallocate-bpf-maps", Bool, "false", AGENT),
    inert("procfs", Path, "/host/proc", AGENT),
    inert("proxy-connect-timeout", Int, "2", AGENT),
    inert("proxy-idle-timeout-seconds", Int, "60", AGENT),
    inert("proxy-max-connection-duration-seconds", Int, "0", AGENT),
    inert("proxy-max-requests-per-connection", Int, "0", AGENT),
    inert("proxy-prometheus-port", Int, "", AGENT),
    inert("proxy-xff-num-trusted-hops-egress", Int, "0", AGENT),
    inert("proxy-xff-num-trusted-hops-ingress", Int, "0", AGENT),
    inert("remove-cilium-node-taints", Bool, "true", OPERATOR),
    inert("set-cilium-is-up-condition", Bool, "true", OPERATOR),
    inert("set-cilium-node-taints", Bool, "true", OPERATOR),
    inert("synchronize-k8s-nodes", Bool, "true", OPERATOR),
    inert("tofqdns-dns-reject-response-code", Choice(&["refused", "nameError"]), "refused", AGENT),
    inert("tofqdns-enable-dns-compression", Bool, "true", AGENT),
    inert("tofqdns-endpoint-max-ip-per-hostname", Int, "1000", AGENT),
    inert("tofqdns-idle-connection-grace-period", Duration, "0s", AGENT),
    inert("tofqdns-max-deferred-connection-deletes", Int, "10000", AGENT),
    inert("tofqdns-proxy-response-max-delay", Duration, "100ms", AGENT),
    inert("unmanaged-pod-watcher-interval", Int, "15", OPERATOR),
    inert("vtep-cidr", Text, "", AGENT),
    inert("vtep-endpoint", Text, "", AGENT),
    inert("vtep-mac", Text, "", AGENT),
    inert("vtep-mask", Text, "", AGENT),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_listed_once() {
        let mut names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn every_default_passes_its_own_checks() {
        for k in KEYS {
            k.ty.check(k.name, k.default)
                .unwrap_or_else(|e| panic!("{}: {e}", k.name));
            assert!(!k.readers.is_empty(), "{} has no reader", k.name);
            if let Class::FeatureGated { off } = k.class {
                assert!(off.contains(&k.default), "{}: default is not off", k.name);
                for v in off {
                    k.ty.check(k.name, v)
                        .unwrap_or_else(|e| panic!("{}: {e}", k.name));
                }
            }
        }
    }
}
