//! Printers: the agent's API types rendered in upstream `cilium-dbg`'s
//! text formats (same headers, same tabwriter alignment, same value
//! strings). Pure functions from data to text; fetching and writing are
//! `main`'s job.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use agentclient::{
    ControllerStatus, EndpointModel, IpEntry, IpcacheMapEntry, LxcMapEntry, MetricsMapEntry,
    StatusResponse,
};

use crate::table::align;

/// `cilium_lxc` flag of the host's own addresses.
const ENDPOINT_FLAG_HOST: u32 = 1;

/// `a.b.c.d[/len]` as (address, prefix length) for numeric sorting.
fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.split_once('/').unwrap_or((s, ""));
    let ip = ip.parse::<IpAddr>().ok()?;
    let default = if ip.is_ipv4() { 32 } else { 128 };
    Some((ip, len.parse().unwrap_or(default)))
}

/// Sorts by numeric prefix; unparsable keys go last, by text.
fn sort_by_prefix<T>(items: &mut [T], key: impl Fn(&T) -> &str) {
    items.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        match (parse_prefix(ka), parse_prefix(kb)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => ka.cmp(kb),
        }
    });
}

/// `cilium-dbg status [--verbose]`.
pub fn status(s: &StatusResponse, verbose: bool, all_controllers: bool) -> String {
    let ipam = format!(
        "IPv4: {}/{} allocated from {},",
        s.ipam_allocated.len(),
        s.ipam_capacity,
        s.ipam_cidr
    );
    let identity_range = format!("min {}, max {}", s.identity_range.0, s.identity_range.1);
    let head = [
        ("KVStore:", s.kvstore.as_str()),
        ("Kubernetes:", &s.kubernetes),
        ("KubeProxyReplacement:", &s.kube_proxy_replacement),
        ("CNI Config file:", &s.cni_config),
        ("Cilium:", &s.cilium),
        ("IPAM:", &ipam),
    ];
    let tail = [
        ("Routing:", s.routing.as_str()),
        ("Attach Mode:", &s.attach_mode),
        ("Device Mode:", &s.device_mode),
        ("Masquerading:", &s.masquerading),
        ("Controller Status:", &s.controllers),
        ("Global Identity Range:", &identity_range),
    ];
    let width = head
        .iter()
        .chain(&tail)
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0)
        + 3;
    let mut out = String::new();
    let line = |out: &mut String, label: &str, value: &str| {
        let text = format!("{label:<width$}{value}");
        out.push_str(text.trim_end());
        out.push('\n');
    };
    for (label, value) in head {
        line(&mut out, label, value);
    }
    if verbose {
        out.push_str("Allocated addresses:\n");
        for (ip, owner) in &s.ipam_allocated {
            let _ = writeln!(out, "  {ip} ({owner})");
        }
    }
    for (label, value) in tail {
        line(&mut out, label, value);
        if all_controllers && label == "Controller Status:" {
            out.push_str(&controllers(&s.controller_statuses));
        }
    }
    out
}

/// A duration as Go prints a rounded `time.Duration`: `7s`, `2m26s`,
/// `2h12m24s`.
fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// The `Controller Status` table of `--all-controllers`.
fn controllers(rows: &[ControllerStatus]) -> String {
    let ago = |t: Option<u64>| {
        t.map_or_else(
            || "never".to_string(),
            |s| format!("{} ago", go_duration(s)),
        )
    };
    let mut text = String::from("  Name\tLast success\tLast error\tCount\tMessage\n");
    for c in rows {
        let _ = writeln!(
            text,
            "  {}\t{}\t{}\t{}\t{}",
            c.name,
            ago(c.last_success_ago_secs),
            ago(c.last_failure_ago_secs),
            c.consecutive_failures,
            c.last_error.as_deref().unwrap_or("no error")
        );
    }
    align(&text)
}

/// `cilium-dbg config`: `key value` sorted by key.
pub fn config(c: &BTreeMap<String, String>) -> String {
    let mut text = String::new();
    for (k, v) in c {
        let _ = writeln!(text, "{k}\t{v}");
    }
    align(&text)
}

/// `cilium-dbg endpoint list`: upstream's two-line header, one label per
/// line.
pub fn endpoint_list(eps: &[EndpointModel]) -> String {
    let mut eps: Vec<&EndpointModel> = eps.iter().collect();
    eps.sort_by_key(|e| e.id);
    let mut text = String::from(
        "ENDPOINT\tPOLICY (ingress)\tPOLICY (egress)\tIDENTITY\tLABELS (source:key[=value])\tIPv6\tIPv4\tSTATUS\t\n\
         \tENFORCEMENT\tENFORCEMENT\t\t\t\t\t\n",
    );
    for ep in eps {
        let mut labels: Vec<&str> = ep.labels.iter().map(String::as_str).collect();
        labels.sort_unstable();
        if labels.is_empty() {
            labels.push("no labels");
        }
        for (i, label) in labels.iter().enumerate() {
            if i == 0 {
                let _ = writeln!(
                    text,
                    "{}\t{}\t{}\t{}\t{label}\t\t{}\t{}\t",
                    ep.id, ep.policy_ingress, ep.policy_egress, ep.identity, ep.ipv4, ep.state
                );
            } else {
                let _ = writeln!(text, "\t\t\t\t{label}\t\t\t\t");
            }
        }
    }
    align(&text)
}

/// `cilium-dbg ip list [-n]`: identity labels one per line, or the number.
pub fn ip_list(entries: &[IpEntry], numeric: bool) -> String {
    let mut entries: Vec<&IpEntry> = entries.iter().collect();
    sort_by_prefix(&mut entries, |e| &e.prefix);
    let mut text = String::from("IP\tIDENTITY\tSOURCE\n");
    for e in entries {
        let mut identities: Vec<String> = if numeric || e.labels.is_empty() {
            vec![e.identity.to_string()]
        } else {
            e.labels.clone()
        };
        identities.sort_unstable();
        for (i, identity) in identities.iter().enumerate() {
            if i == 0 {
                let _ = writeln!(text, "{}\t{identity}\t{}", e.prefix, e.source);
            } else {
                let _ = writeln!(text, "\t{identity}\t");
            }
        }
    }
    align(&text)
}

/// Upstream's two-column dump of a BPF map (`TablePrinter`).
fn two_columns(first: &str, second: &str, rows: &[(String, String)]) -> String {
    let mut text = format!("{first}\t{second}\n");
    for (k, v) in rows {
        let _ = writeln!(text, "{k}\t{v}\t");
    }
    align(&text)
}

/// Upstream's `map get` table (`Key Value State Error`).
fn map_get(rows: &[(String, String)]) -> String {
    if rows.is_empty() {
        return "Cache is empty\n\n".to_string();
    }
    let mut text = String::from("Key\tValue\tState\tError\n");
    for (k, v) in rows {
        let _ = writeln!(text, "{k}\t{v}\tsync\t");
    }
    align(&text)
}

fn ipcache_rows(entries: &[IpcacheMapEntry]) -> Vec<(String, String)> {
    let mut entries: Vec<&IpcacheMapEntry> = entries.iter().collect();
    sort_by_prefix(&mut entries, |e| &e.prefix);
    entries
        .into_iter()
        .map(|e| {
            (
                e.prefix.clone(),
                format!(
                    "identity={} encryptkey={} tunnelendpoint={} flags={}",
                    e.identity, e.encrypt_key, e.tunnel_endpoint, e.flags
                ),
            )
        })
        .collect()
}

fn lxc_rows(entries: &[LxcMapEntry]) -> Vec<(String, String)> {
    let mut entries: Vec<&LxcMapEntry> = entries.iter().collect();
    sort_by_prefix(&mut entries, |e| &e.ip);
    entries
        .into_iter()
        .map(|e| {
            let value = if e.flags & ENDPOINT_FLAG_HOST != 0 {
                "(localhost)".to_string()
            } else {
                format!(
                    "id={:<5} sec_id={:<5} flags=0x{:04X} ifindex={:<3} mac={} nodemac={}",
                    e.id,
                    e.sec_id,
                    e.flags,
                    e.ifindex,
                    e.mac.to_uppercase(),
                    e.node_mac.to_uppercase()
                )
            };
            (format!("{}:0", e.ip), value)
        })
        .collect()
}

/// `cilium-dbg bpf ipcache list`.
pub fn bpf_ipcache_list(entries: &[IpcacheMapEntry]) -> String {
    two_columns("IP PREFIX/ADDRESS", "IDENTITY", &ipcache_rows(entries))
}

/// `cilium-dbg bpf endpoint list`.
pub fn bpf_endpoint_list(entries: &[LxcMapEntry]) -> String {
    two_columns("IP ADDRESS", "LOCAL ENDPOINT INFO", &lxc_rows(entries))
}

/// `cilium-dbg map get cilium_lxc`.
pub fn map_get_lxc(entries: &[LxcMapEntry]) -> String {
    map_get(&lxc_rows(entries))
}

/// `cilium-dbg map get cilium_ipcache_v2`.
pub fn map_get_ipcache(entries: &[IpcacheMapEntry]) -> String {
    map_get(&ipcache_rows(entries))
}

/// `cilium-dbg bpf metrics list` (rows sorted by their text, as upstream);
/// `None` when there is nothing to print.
pub fn bpf_metrics_list(entries: &[MetricsMapEntry]) -> Option<String> {
    if entries.is_empty() {
        return None;
    }
    let mut rows: Vec<[String; 4]> = entries
        .iter()
        .map(|e| {
            [
                e.reason.clone(),
                e.direction.clone(),
                e.packets.to_string(),
                e.bytes.to_string(),
            ]
        })
        .collect();
    rows.sort();
    let mut text = String::from("REASON\tDIRECTION\tPACKETS\tBYTES\n");
    for [reason, direction, packets, bytes] in rows {
        let _ = writeln!(text, "{reason}\t{direction}\t{packets}\t{bytes}");
    }
    Some(align(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_fixture() -> StatusResponse {
        StatusResponse {
            kvstore: "Disabled".into(),
            kubernetes: "Ok   1.33 (v1.33.2) [linux/amd64]".into(),
            kube_proxy_replacement: "False".into(),
            cni_config:
                "successfully wrote CNI configuration file to /etc/cni/net.d/05-cilium.conflist"
                    .into(),
            cilium: "Ok   1.0.0 (v0.1.0)".into(),
            ipam_cidr: "172.20.0.0/24".into(),
            ipam_capacity: 254,
            ipam_allocated: [
                ("172.20.0.172", "router"),
                ("172.20.0.135", "health"),
                ("172.20.0.62", "default/curl-pod"),
                ("172.20.0.121", "kube-system/coredns-674b8bbfcf-fsgk4"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
            routing: "Network: Native   Host: BPF".into(),
            attach_mode: "TCX".into(),
            device_mode: "veth".into(),
            masquerading: String::new(),
            controllers: "1/2 healthy".into(),
            controller_statuses: vec![
                ControllerStatus {
                    name: "bpf-map-sync-cilium_lxc".into(),
                    last_success_ago_secs: Some(7),
                    last_failure_ago_secs: None,
                    consecutive_failures: 0,
                    last_error: None,
                },
                ControllerStatus {
                    name: "cilium-endpoint-sync".into(),
                    last_success_ago_secs: Some(7944),
                    last_failure_ago_secs: Some(146),
                    consecutive_failures: 3,
                    last_error: Some("1 error(s): etcd unreachable".into()),
                },
            ],
            identity_range: (256, 65535),
        }
    }

    #[test]
    fn status_lines() {
        let expected = "\
KVStore:                 Disabled
Kubernetes:              Ok   1.33 (v1.33.2) [linux/amd64]
KubeProxyReplacement:    False
CNI Config file:         successfully wrote CNI configuration file to /etc/cni/net.d/05-cilium.conflist
Cilium:                  Ok   1.0.0 (v0.1.0)
IPAM:                    IPv4: 4/254 allocated from 172.20.0.0/24,
Routing:                 Network: Native   Host: BPF
Attach Mode:             TCX
Device Mode:             veth
Masquerading:
Controller Status:       1/2 healthy
Global Identity Range:   min 256, max 65535
";
        assert_eq!(status(&status_fixture(), false, false), expected);
    }

    #[test]
    fn all_controllers_table() {
        let out = status(&status_fixture(), false, true);
        let expected = "\
Controller Status:       1/2 healthy
  Name                      Last success   Last error   Count   Message
  bpf-map-sync-cilium_lxc   7s ago         never        0       no error
  cilium-endpoint-sync      2h12m24s ago   2m26s ago    3       1 error(s): etcd unreachable
Global Identity Range:   min 256, max 65535
";
        assert!(out.contains(expected), "{out}");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(60), "1m0s");
    }

    #[test]
    fn status_verbose_lists_allocations_in_text_order() {
        let out = status(&status_fixture(), true, false);
        let expected = "\
IPAM:                    IPv4: 4/254 allocated from 172.20.0.0/24,
Allocated addresses:
  172.20.0.121 (kube-system/coredns-674b8bbfcf-fsgk4)
  172.20.0.135 (health)
  172.20.0.172 (router)
  172.20.0.62 (default/curl-pod)
Routing:                 Network: Native   Host: BPF
";
        assert!(out.contains(expected), "{out}");
    }

    #[test]
    fn config_is_sorted_key_value() {
        let c: BTreeMap<String, String> = [
            ("routing-mode", "native"),
            ("ipam", "cluster-pool"),
            ("auto-direct-node-routes", "true"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(
            config(&c),
            "auto-direct-node-routes   true\nipam                      cluster-pool\nrouting-mode              native\n"
        );
    }

    fn endpoint(id: u16, identity: u32, labels: &[&str], ipv4: &str) -> EndpointModel {
        EndpointModel {
            id,
            container_id: "c".into(),
            pod: String::new(),
            identity,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            ipv4: ipv4.into(),
            host_ifname: "lxc".into(),
            ifindex: 12,
            state: "ready".into(),
            policy_ingress: "Disabled".into(),
            policy_egress: "Disabled".into(),
        }
    }

    #[test]
    fn endpoint_list_has_the_upstream_header_and_wraps_labels() {
        let eps = [
            endpoint(
                643,
                31371,
                &[
                    "k8s:io.kubernetes.pod.namespace=default",
                    "k8s:class=deathstar",
                ],
                "172.20.0.246",
            ),
            endpoint(12, 4, &[], "172.20.0.135"),
        ];
        // Labels column: the longest label (39) + 3. The second header line
        // has no STATUS cell (as upstream), so the STATUS column of the
        // first header line and of the rows are separate blocks.
        let expected = "\
ENDPOINT   POLICY (ingress)   POLICY (egress)   IDENTITY   LABELS (source:key[=value])               IPv6   IPv4           STATUS   
           ENFORCEMENT        ENFORCEMENT                                                                                  
12         Disabled           Disabled          4          no labels                                        172.20.0.135   ready   
643        Disabled           Disabled          31371      k8s:class=deathstar                              172.20.0.246   ready   
                                                           k8s:io.kubernetes.pod.namespace=default                                 
";
        assert_eq!(endpoint_list(&eps), expected);
    }

    fn ip(prefix: &str, identity: u32, labels: &[&str], source: &str) -> IpEntry {
        IpEntry {
            prefix: prefix.into(),
            identity,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            source: source.into(),
            host_ip: None,
        }
    }

    #[test]
    fn ip_list_labels_and_numeric() {
        let entries = [
            ip(
                "192.168.10.101/32",
                6,
                &["reserved:remote-node"],
                "custom-resource",
            ),
            ip(
                "172.20.1.7/32",
                12564,
                &["k8s:io.kubernetes.pod.namespace=default", "k8s:app=webpod"],
                "custom-resource",
            ),
            ip("0.0.0.0/0", 2, &["reserved:world"], ""),
        ];
        let expected = "\
IP                  IDENTITY                                  SOURCE
0.0.0.0/0           reserved:world                            
172.20.1.7/32       k8s:app=webpod                            custom-resource
                    k8s:io.kubernetes.pod.namespace=default   
192.168.10.101/32   reserved:remote-node                      custom-resource
";
        assert_eq!(ip_list(&entries, false), expected);
        let numeric = "\
IP                  IDENTITY   SOURCE
0.0.0.0/0           2          
172.20.1.7/32       12564      custom-resource
192.168.10.101/32   6          custom-resource
";
        assert_eq!(ip_list(&entries, true), numeric);
    }

    fn ipcache() -> Vec<IpcacheMapEntry> {
        vec![
            IpcacheMapEntry {
                prefix: "10.1.5.236/32".into(),
                identity: 16777221,
                encrypt_key: 0,
                tunnel_endpoint: "0.0.0.0".into(),
                flags: "<none>".into(),
            },
            IpcacheMapEntry {
                prefix: "10.0.1.0/24".into(),
                identity: 2,
                encrypt_key: 0,
                tunnel_endpoint: "192.168.1.11".into(),
                flags: "hastunnel".into(),
            },
        ]
    }

    #[test]
    fn bpf_ipcache_list_matches_upstream() {
        let expected = "\
IP PREFIX/ADDRESS   IDENTITY
10.0.1.0/24         identity=2 encryptkey=0 tunnelendpoint=192.168.1.11 flags=hastunnel   
10.1.5.236/32       identity=16777221 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>    
";
        assert_eq!(bpf_ipcache_list(&ipcache()), expected);
    }

    fn lxc() -> Vec<LxcMapEntry> {
        vec![
            LxcMapEntry {
                ip: "172.20.0.246".into(),
                id: 643,
                ifindex: 12,
                flags: 0,
                mac: "5a:4f:5a:d6:f1:93".into(),
                node_mac: "2e:fa:2d:bc:91:f2".into(),
                sec_id: 31371,
            },
            LxcMapEntry {
                ip: "192.168.10.100".into(),
                id: 0,
                ifindex: 0,
                flags: 1,
                mac: String::new(),
                node_mac: String::new(),
                sec_id: 1,
            },
        ]
    }

    #[test]
    fn bpf_endpoint_list_matches_upstream() {
        let expected = "\
IP ADDRESS         LOCAL ENDPOINT INFO
172.20.0.246:0     id=643   sec_id=31371 flags=0x0000 ifindex=12  mac=5A:4F:5A:D6:F1:93 nodemac=2E:FA:2D:BC:91:F2   
192.168.10.100:0   (localhost)                                                                                      
";
        assert_eq!(bpf_endpoint_list(&lxc()), expected);
    }

    #[test]
    fn map_get_tables() {
        let expected = "\
Key                Value                                                                                            State   Error
172.20.0.246:0     id=643   sec_id=31371 flags=0x0000 ifindex=12  mac=5A:4F:5A:D6:F1:93 nodemac=2E:FA:2D:BC:91:F2   sync    
192.168.10.100:0   (localhost)                                                                                      sync    
";
        assert_eq!(map_get_lxc(&lxc()), expected);
        assert!(map_get_ipcache(&ipcache()).starts_with("Key             Value"));
        assert_eq!(map_get_lxc(&[]), "Cache is empty\n\n");
    }

    #[test]
    fn bpf_metrics_list_sorted() {
        let m = |reason: &str, direction: &str, packets, bytes| MetricsMapEntry {
            reason: reason.into(),
            direction: direction.into(),
            packets,
            bytes,
        };
        let rows = [
            m("Policy denied", "INGRESS", 3, 180),
            m("FORWARDED", "EGRESS", 1285, 118220),
            m("FORWARDED", "INGRESS", 1190, 99784),
        ];
        let expected = "\
REASON          DIRECTION   PACKETS   BYTES
FORWARDED       EGRESS      1285      118220
FORWARDED       INGRESS     1190      99784
Policy denied   INGRESS     3         180
";
        assert_eq!(bpf_metrics_list(&rows).as_deref(), Some(expected));
        assert_eq!(bpf_metrics_list(&[]), None);
    }
}
