//! `GET /v1/status`: a pure rendering of the agent's state into the
//! lines `cilium-dbg status` prints.

use std::time::SystemTime;

use agentclient::StatusResponse;

use crate::config::AgentConfig;
use crate::endpoints::EndpointSnapshot;

/// Facts the status needs beyond config and endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusInputs {
    /// Where the cluster state is (etcd endpoints, or the kubeconfig).
    pub cluster: String,
    /// Whether it is a Kubernetes API server (else etcd).
    pub kubernetes: bool,
    /// Whether the last store operation succeeded.
    pub store_ok: bool,
    /// The last store error, if any.
    pub store_error: Option<String>,
    /// The CNI config file written, if any.
    pub cni_conf: Option<String>,
    /// Native devices.
    pub devices: Vec<String>,
}

/// The agent's version line.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Seconds from `t` to now (0 for a time in the future).
fn ago(t: Option<SystemTime>) -> Option<u64> {
    t.map(|t| {
        SystemTime::now()
            .duration_since(t)
            .map_or(0, |d| d.as_secs())
    })
}

/// The `Controller Status` rows.
pub fn controller_rows(rows: &[toolkit::ControllerStatus]) -> Vec<agentclient::ControllerStatus> {
    rows.iter()
        .map(|c| agentclient::ControllerStatus {
            name: c.name.clone(),
            last_success_ago_secs: ago(c.last_success),
            last_failure_ago_secs: ago(c.last_failure),
            consecutive_failures: c.consecutive_failures,
            last_error: c.last_error.clone(),
        })
        .collect()
}

/// Render the status.
pub fn render(
    cfg: &AgentConfig,
    snap: &EndpointSnapshot,
    inputs: &StatusInputs,
    controllers: &[toolkit::ControllerStatus],
) -> StatusResponse {
    let failure = || {
        format!(
            "Failure   {}: {}",
            inputs.cluster,
            inputs.store_error.as_deref().unwrap_or("unreachable")
        )
    };
    let (kvstore, kubernetes) = match (inputs.kubernetes, inputs.store_ok) {
        (true, true) => (
            "Disabled".to_string(),
            "Ok   1.33 (v1.33.0) [linux/amd64]".to_string(),
        ),
        (true, false) => ("Disabled".to_string(), failure()),
        (false, true) => (
            format!("Ok   etcd: 1/1 connected: {} - 3.4", inputs.cluster),
            "Disabled".to_string(),
        ),
        (false, false) => (
            failure().replacen("Failure   ", "Failure   etcd: ", 1),
            "Disabled".to_string(),
        ),
    };
    let routing = match cfg.tunnel() {
        None => "Network: Native   Host: BPF".to_string(),
        Some(t) => format!("Network: Tunnel [{}]   Host: BPF", t.protocol.as_str()),
    };
    let masquerading = if cfg.enable_ipv4_masquerade {
        "Disabled (not implemented yet)".to_string()
    } else {
        "Disabled".to_string()
    };
    let cni_config = match &inputs.cni_conf {
        Some(p) => p.clone(),
        None => "none".to_string(),
    };
    StatusResponse {
        kvstore,
        kubernetes,
        kube_proxy_replacement: "False".to_string(),
        cni_config,
        cilium: format!("Ok   {VERSION} (v{VERSION})"),
        ipam_cidr: snap
            .cidrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        ipam_capacity: snap.capacity,
        ipam_allocated: snap
            .allocated
            .iter()
            .map(|(ip, owner)| (ip.to_string(), owner.clone()))
            .collect(),
        routing,
        attach_mode: "TCX (host devices), Legacy TC (endpoints)".to_string(),
        device_mode: "veth".to_string(),
        masquerading,
        controllers: format!(
            "{}/{} healthy",
            controllers.iter().filter(|c| c.healthy()).count(),
            controllers.len()
        ),
        controller_statuses: controller_rows(controllers),
        identity_range: (identity::MIN_GLOBAL, identity::MAX_GLOBAL),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn cfg_with(pairs: &[(&str, &str)]) -> AgentConfig {
        let m: BTreeMap<String, String> = [("enable-ipv4-masquerade", "false")]
            .iter()
            .chain(pairs)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AgentConfig::from_map(&m).unwrap()
    }

    fn cfg() -> AgentConfig {
        cfg_with(&[
            ("routing-mode", "native"),
            ("ipv4-native-routing-cidr", "172.20.0.0/16"),
        ])
    }

    #[test]
    fn routing_line_names_the_tunnel_protocol() {
        let snap = EndpointSnapshot::default();
        let inputs = StatusInputs::default();
        let line = |pairs: &[(&str, &str)]| render(&cfg_with(pairs), &snap, &inputs, &[]).routing;
        assert_eq!(
            line(&[("routing-mode", "tunnel")]),
            "Network: Tunnel [vxlan]   Host: BPF"
        );
        assert_eq!(
            line(&[("routing-mode", "tunnel"), ("tunnel-protocol", "geneve")]),
            "Network: Tunnel [geneve]   Host: BPF"
        );
        assert_eq!(line(&[]), "Network: Tunnel [vxlan]   Host: BPF");
        assert_eq!(
            render(&cfg(), &snap, &inputs, &[]).routing,
            "Network: Native   Host: BPF"
        );
    }

    #[test]
    fn renders_ipam_and_routing_lines() {
        let snap = EndpointSnapshot {
            endpoints: vec![],
            cidrs: vec!["172.20.0.0/24".parse().unwrap()],
            capacity: 254,
            allocated: [
                ("172.20.0.1".parse().unwrap(), "router".to_string()),
                ("172.20.0.2".parse().unwrap(), "health".to_string()),
            ]
            .into(),
        };
        let inputs = StatusInputs {
            cluster: "http://192.168.10.100:2379".into(),
            kubernetes: false,
            store_ok: true,
            store_error: None,
            cni_conf: Some("/etc/cni/net.d/05-cilium.conflist".into()),
            devices: vec!["eth1".into()],
        };
        let health = toolkit::Health::new();
        let a = health.register("bpf-map-sync-cilium_lxc");
        let b = health.register("write-cni-file");
        a.ok();
        b.failed("disk full");
        let s = render(&cfg(), &snap, &inputs, &health.snapshot());
        assert_eq!(s.routing, "Network: Native   Host: BPF");
        assert_eq!(s.attach_mode, "TCX (host devices), Legacy TC (endpoints)");
        assert_eq!(s.device_mode, "veth");
        assert_eq!(s.ipam_cidr, "172.20.0.0/24");
        assert_eq!(s.ipam_capacity, 254);
        assert_eq!(s.ipam_allocated["172.20.0.1"], "router");
        assert_eq!(s.ipam_allocated.len(), 2);
        assert_eq!(
            s.kvstore,
            "Ok   etcd: 1/1 connected: http://192.168.10.100:2379 - 3.4"
        );
        assert_eq!(s.kubernetes, "Disabled");
        assert_eq!(s.controllers, "1/2 healthy");
        let rows = &s.controller_statuses;
        assert_eq!(rows[0].name, "bpf-map-sync-cilium_lxc");
        assert_eq!(rows[0].last_success_ago_secs, Some(0));
        assert_eq!(rows[0].last_failure_ago_secs, None);
        assert_eq!(rows[1].consecutive_failures, 1);
        assert_eq!(rows[1].last_error.as_deref(), Some("disk full"));
        assert_eq!(s.identity_range, (256, 65535));
        assert_eq!(s.masquerading, "Disabled");
        assert_eq!(s.kube_proxy_replacement, "False");

        let down = StatusInputs {
            store_ok: false,
            store_error: Some("connection refused".into()),
            ..inputs
        };
        let s = render(&cfg(), &snap, &down, &[]);
        assert_eq!(
            s.kvstore,
            "Failure   etcd: http://192.168.10.100:2379: connection refused"
        );

        let api = StatusInputs {
            cluster: "kubeconfig /etc/kubeconfig".into(),
            kubernetes: true,
            ..down
        };
        let s = render(&cfg(), &snap, &api, &[]);
        assert_eq!(s.kvstore, "Disabled");
        assert_eq!(
            s.kubernetes,
            "Failure   kubeconfig /etc/kubeconfig: connection refused"
        );
        let up = StatusInputs {
            store_ok: true,
            ..api
        };
        assert!(
            render(&cfg(), &snap, &up, &[])
                .kubernetes
                .starts_with("Ok   1.33")
        );
    }

    /// A target that fails until told otherwise.
    struct Flaky(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl reconciler::Operations<crate::tables::LxcRow> for Flaky {
        async fn update(&self, _row: &crate::tables::LxcRow) -> Result<(), reconciler::OpError> {
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                Err(reconciler::OpError("map is full".into()))
            } else {
                Ok(())
            }
        }
        async fn delete(&self, _row: &crate::tables::LxcRow) -> Result<(), reconciler::OpError> {
            Ok(())
        }
        async fn prune(
            &self,
            _desired: &[std::sync::Arc<crate::tables::LxcRow>],
        ) -> Result<(), reconciler::OpError> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_row_is_retried_and_shown_until_it_succeeds() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Duration;

        let failing = std::sync::Arc::new(AtomicBool::new(true));
        let health = toolkit::Health::new();
        let table = reconciler::Table::new("lxc");
        let _r = reconciler::spawn(
            table.clone(),
            Flaky(failing.clone()),
            reconciler::Config::new("bpf-map-sync-cilium_lxc"),
            &health,
            &reconciler::ReconcilerMetrics::new(),
        );
        let row = crate::tables::LxcRow {
            ip: "172.20.0.9".parse().unwrap(),
            ifindex: 9,
            endpoint_id: 9,
            mac: [0; 6],
            node_mac: [0; 6],
            identity: 300,
        };
        table.insert(row);
        let status = || {
            render(
                &cfg(),
                &EndpointSnapshot::default(),
                &StatusInputs::default(),
                &health.snapshot(),
            )
        };
        // Three attempts: at once, after 100 ms, after 200 ms more.
        tokio::time::sleep(Duration::from_millis(350)).await;
        let s = status();
        assert_eq!(s.controllers, "0/1 healthy");
        let c = &s.controller_statuses[0];
        assert_eq!(c.consecutive_failures, 3);
        assert_eq!(
            c.last_error.as_deref(),
            Some("1 error(s): 172.20.0.9: map is full")
        );
        failing.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let s = status();
        assert_eq!(s.controllers, "1/1 healthy");
        assert!(s.controller_statuses[0].last_error.is_none());
        assert_eq!(
            table.get(&row.ip).unwrap().2.kind,
            reconciler::StatusKind::Done
        );
    }
}
