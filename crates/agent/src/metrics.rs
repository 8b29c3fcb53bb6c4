//! Prometheus metrics (OpenMetrics text on `prometheus-serve-addr`).
//!
//! Each scrape builds a fresh registry from a [`MetricsSnapshot`] (agent
//! state plus a `cilium_metrics` dump), so counters read from the BPF map
//! are exported with their absolute values, plus the reconcilers'
//! `cilium_reconciler_*` families, which keep their own values.

use std::collections::BTreeSet;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::dataplane::DatapathMetric;
use crate::endpoints::EndpointSnapshot;

/// What one scrape exports.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    /// Local endpoints.
    pub endpoints: usize,
    /// Allocated IPv4 addresses.
    pub ipv4_allocated: usize,
    /// Distinct identities in use by local endpoints.
    pub identities: usize,
    /// `cilium_metrics` rows.
    pub datapath: Vec<DatapathMetric>,
    /// Process RSS in bytes.
    pub rss_bytes: u64,
}

impl MetricsSnapshot {
    /// From the endpoint table (datapath and RSS filled by the caller).
    pub fn from_endpoints(snap: &EndpointSnapshot) -> Self {
        Self {
            endpoints: snap.endpoints.len(),
            ipv4_allocated: snap.allocated.len(),
            identities: snap
                .endpoints
                .iter()
                .map(|e| e.identity)
                .collect::<BTreeSet<_>>()
                .len(),
            ..Default::default()
        }
    }
}

/// Upstream's direction label.
pub fn direction_name(dir: u8) -> &'static str {
    match dir {
        1 => "INGRESS",
        2 => "EGRESS",
        3 => "SERVICE",
        _ => "UNKNOWN",
    }
}

/// Upstream's drop reason text for a (positive) drop code.
pub fn reason_name(reason: u8) -> String {
    let known = match reason {
        0 => "Success",
        130 => "Invalid source mac",
        131 => "Invalid destination mac",
        132 => "Invalid source ip",
        133 => "Policy denied",
        134 => "Invalid packet",
        135 => "CT: Truncated or invalid header",
        136 => "Fragmentation needed",
        137 => "CT: Unknown L4 protocol",
        139 => "Unsupported L3 protocol",
        140 => "Missed tail call",
        141 => "Error writing to packet",
        142 => "Unknown L4 protocol",
        143 => "Unknown ICMPv4 code",
        144 => "Unknown ICMPv4 type",
        150 => "Error retrieving tunnel key",
        153 => "Invalid IPv4 packet",
        155 => "Unknown connection tracking state",
        157 => "FIB lookup failed",
        158 => "Service backend not found",
        160 => "No mapping for NAT masquerade",
        166 => "No tunnel/encapsulation endpoint (datapath BUG!)",
        170 => "Unknown sender",
        181 => "Policy denied by denylist",
        _ => "",
    };
    if known.is_empty() {
        format!("Unknown reason {reason}")
    } else {
        known.to_string()
    }
}

type Labels = Vec<(String, String)>;

/// Encode a snapshot and the reconcilers' metrics as OpenMetrics text.
pub fn render(snap: &MetricsSnapshot, reconcilers: &reconciler::ReconcilerMetrics) -> String {
    let mut reg = Registry::default();
    reconcilers.register(&mut reg);
    let gauge = |reg: &mut Registry, name: &str, help: &str, v: i64| {
        let g = Gauge::<i64>::default();
        g.set(v);
        reg.register(name, help, g);
    };
    gauge(
        &mut reg,
        "cilium_endpoint_count",
        "Number of endpoints managed by this agent",
        snap.endpoints as i64,
    );
    gauge(
        &mut reg,
        "cilium_identity_count",
        "Number of identities in use by local endpoints",
        snap.identities as i64,
    );
    gauge(
        &mut reg,
        "cilium_process_resident_memory_bytes",
        "Resident memory of the agent process",
        snap.rss_bytes as i64,
    );
    let ips = Family::<Labels, Gauge>::default();
    ips.get_or_create(&vec![("family".into(), "ipv4".into())])
        .set(snap.ipv4_allocated as i64);
    reg.register(
        "cilium_ip_addresses",
        "Number of allocated IP addresses",
        ips.clone(),
    );
    let fwd_count = Family::<Labels, Counter>::default();
    let fwd_bytes = Family::<Labels, Counter>::default();
    let drop_count = Family::<Labels, Counter>::default();
    let drop_bytes = Family::<Labels, Counter>::default();
    for m in &snap.datapath {
        let dir = direction_name(m.direction).to_string();
        if m.reason == 0 {
            let l = vec![("direction".to_string(), dir)];
            fwd_count.get_or_create(&l).inc_by(m.packets);
            fwd_bytes.get_or_create(&l).inc_by(m.bytes);
        } else {
            let l = vec![
                ("reason".to_string(), reason_name(m.reason)),
                ("direction".to_string(), dir),
            ];
            drop_count.get_or_create(&l).inc_by(m.packets);
            drop_bytes.get_or_create(&l).inc_by(m.bytes);
        }
    }
    reg.register("cilium_forward_count", "Total forwarded packets", fwd_count);
    reg.register("cilium_forward_bytes", "Total forwarded bytes", fwd_bytes);
    reg.register(
        "cilium_drop_count",
        "Total dropped packets by reason and direction",
        drop_count,
    );
    reg.register(
        "cilium_drop_bytes",
        "Total dropped bytes by reason and direction",
        drop_bytes,
    );
    let mut out = String::new();
    encode(&mut out, &reg).expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric() {
        let snap = MetricsSnapshot {
            endpoints: 3,
            ipv4_allocated: 5,
            identities: 2,
            datapath: vec![
                DatapathMetric {
                    reason: 0,
                    direction: 2,
                    packets: 10,
                    bytes: 1000,
                },
                DatapathMetric {
                    reason: 133,
                    direction: 1,
                    packets: 4,
                    bytes: 240,
                },
            ],
            rss_bytes: 1 << 20,
        };
        let text = render(&snap, &reconciler::ReconcilerMetrics::new());
        for line in [
            "cilium_endpoint_count 3",
            "cilium_identity_count 2",
            "cilium_ip_addresses{family=\"ipv4\"} 5",
            "cilium_forward_count_total{direction=\"EGRESS\"} 10",
            "cilium_forward_bytes_total{direction=\"EGRESS\"} 1000",
            "cilium_drop_count_total{reason=\"Policy denied\",direction=\"INGRESS\"} 4",
            "cilium_process_resident_memory_bytes 1048576",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(reason_name(200), "Unknown reason 200");
    }
}
