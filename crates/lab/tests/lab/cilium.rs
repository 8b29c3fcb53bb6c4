//! Our agent, CNI plugin, operator and eBPF datapath in the seed lab
//! (issue 3): cluster-pool IPAM, identities, native routing with
//! auto-direct-node-routes, inspection, the store closed to pods (etcd's
//! mutual TLS), an etcd outage, restart under load, churn, CNI errors,
//! and podman as a real CNI client.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const CNI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/debug/cilium-cni");

fn pods_by_node(lab: &Lab) -> Vec<(String, String, String)> {
    lab.items("pods")
        .iter()
        .map(|p| {
            (
                s(p, "/metadata/name").to_string(),
                s(p, "/spec/nodeName").to_string(),
                s(p, "/status/podIP").to_string(),
            )
        })
        .collect()
}

fn webpod_on(lab: &Lab, node: &str) -> (String, String) {
    pods_by_node(lab)
        .into_iter()
        .find(|(n, node2, _)| n.starts_with("webpod-") && node2 == node)
        .map(|(n, _, ip)| (n, ip))
        .unwrap_or_else(|| panic!("no webpod on {node}"))
}

/// Write a `cilium_lxc` and a `cilium_ipcache_v2` entry that no endpoint
/// or source owns into `node`'s pinned maps (bpftool, raw ABI bytes);
/// returns the orphans' IP and prefix as `cilium-dbg bpf` lists them.
fn inject_orphan_entries(lab: &Lab, node: &str) -> (&'static str, &'static str) {
    let pins = format!("/sys/fs/bpf/{}/{node}", lab.name);
    let hex = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let update = |map: &str, key: &str, value: &str| {
        let out = Command::new("bpftool")
            .args([
                "map",
                "update",
                "pinned",
                &format!("{pins}/{map}"),
                "key",
                "hex",
            ])
            .args(hex(key))
            .args(["value", "hex"])
            .args(hex(value))
            .output()
            .expect("run bpftool");
        assert!(
            out.status.success(),
            "bpftool {map}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // endpoint_key {ip4 172.20.99.250, pads, family 1, key 0, cluster 0};
    // endpoint_info {ifindex 999, lxc_id 4000, sec_id 2, rest 0}.
    update(
        "cilium_lxc",
        "ac 14 63 fa 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00",
        "e7 03 00 00 00 00 a0 0f 00 00 00 00 00 00 00 00 \
         00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00",
    );
    // ipcache_key {prefixlen 32+24, cluster 0, pad, family 1, 10.123.0.0};
    // remote_endpoint_info {identity 2, no tunnel}.
    update(
        "cilium_ipcache_v2",
        "38 00 00 00 00 00 00 01 0a 7b 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
        "02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
    );
    ("172.20.99.250", "10.123.0.0/24")
}

/// The store is closed to pods: etcd speaks mutual TLS only and a pod has
/// no certificate of the cluster's CA, so plaintext gets nothing and TLS
/// fails on the missing client certificate. The same request from a node
/// with the API server's etcd client certificate is answered (so the
/// refusals are the certificate's doing).
fn etcd_refuses_pods(lab: &Lab) {
    // Count /registry/pods/ .. /registry/pods0 (base64 in etcd's JSON API).
    let range =
        r#"{"key":"L3JlZ2lzdHJ5L3BvZHMv","range_end":"L3JlZ2lzdHJ5L3BvZHMw","count_only":true}"#;
    let curl = |from: &str, options: &[&str], url: &str| {
        let out = lab.run(
            &[
                &["exec", from, "--", "curl", "-sS", "-m", "3"],
                options,
                &[url, "-d", range],
            ]
            .concat(),
        );
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let (ok, body, err) = curl("curl-pod", &[], "http://192.168.10.100:2379/v3/kv/range");
    assert!(!ok && !body.contains("count"), "plaintext: {body} {err}");
    // TLS 1.2 fails in the handshake itself (curl's exit code 35); TLS
    // 1.3 reports the refusal after the client's side of it.
    let url = "https://192.168.10.100:2379/v3/kv/range";
    let (ok, body, err) = curl("curl-pod", &["-k", "--tls-max", "1.2"], url);
    assert!(
        !ok && !body.contains("count") && err.contains("curl: (35)") && err.contains("alert"),
        "TLS without a client certificate: {body} {err}"
    );
    let (ok, body, err) = curl("curl-pod", &["-k"], url);
    assert!(!ok && !body.contains("count"), "TLS 1.3: {body} {err}");
    let pki = format!("/run/cilium-lab/{}/clusters/default/pki", lab.name);
    let (ca, cert, key) = (
        format!("{pki}/ca.crt"),
        format!("{pki}/apiserver-etcd-client.crt"),
        format!("{pki}/apiserver-etcd-client.key"),
    );
    let (ok, body, err) = curl(
        "k8s-w1",
        &["--cacert", &ca, "--cert", &cert, "--key", &key],
        url,
    );
    assert!(ok && body.contains(r#""count":"4""#), "{body} {err}");
}

/// The line of a node agent's status that reports its cluster (the lab's
/// agents use the API server: `Kubernetes:`). The agent answers whether
/// or not the cluster does.
fn cluster_status(lab: &Lab, node: &str) -> String {
    lab.dbg(node, &["status"])
        .lines()
        .find(|l| l.starts_with("Kubernetes:"))
        .unwrap_or_default()
        .to_string()
}

/// etcd goes down: a node, its agent's status and the lab's process logs
/// still answer, the agent reports its cluster failing (the API server
/// answers 503), and curl-pod's requests to `ip` (begun before the
/// outage) keep being answered. Once etcd is back, the agent reports the
/// cluster healthy again and a new pod is scheduled, wired and Ready.
fn etcd_outage(lab: &Lab, ip: &str) {
    let script = format!(
        "for i in $(seq 40); do curl -s -m 2 -o /dev/null -w '%{{http_code}}\\n' {ip} || echo failed; sleep 0.5; done"
    );
    let mut requests = Command::new(BIN)
        .args([
            "--name", &lab.name, "exec", "curl-pod", "--", "sh", "-c", &script,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run curl-pod's requests");
    let mut answers = BufReader::new(requests.stdout.take().unwrap()).lines();
    let first = answers.next().expect("a first answer").unwrap();
    assert_eq!(first, "200", "before the outage");

    assert!(
        Command::new("kill")
            .args(["-9", &pid_of(lab, "k8s-ctr", "etcd").to_string()])
            .status()
            .unwrap()
            .success()
    );
    eventually(
        "the agent to report its cluster failing",
        Duration::from_secs(60),
        || {
            cluster_status(lab, "k8s-ctr")
                .contains("Failure")
                .then_some(())
        },
    );
    lab.ok(&["logs", "k8s-ctr/etcd"]);
    let during: Vec<String> = answers.map(Result::unwrap).collect();
    assert!(requests.wait().unwrap().success());
    assert!(
        during.len() > 10 && during.iter().all(|a| a == "200"),
        "curl-pod -> {ip} during the outage: {during:?}"
    );

    lab.ok(&["restart", "k8s-ctr/etcd"]);
    // The agent's clients back off while the API server answers 503.
    eventually(
        "the agent to report its cluster healthy",
        Duration::from_secs(120),
        || cluster_status(lab, "k8s-ctr").contains("Ok").then_some(()),
    );
    lab.ok(&["scale", "deployment", "webpod", "--replicas", "4"]);
    eventually("4 webpods", Duration::from_secs(60), || {
        let web = pods_by_node(lab)
            .into_iter()
            .filter(|p| p.0.starts_with("webpod-"))
            .count();
        (web == 4).then_some(())
    });
    lab.ok(&[
        "wait",
        "pods",
        "--all",
        "--for",
        "condition=Ready",
        "--timeout",
        "60s",
    ]);
}

fn curl_from_curl_pod(lab: &Lab, ip: &str) -> (bool, String) {
    let out = lab.run(&["exec", "curl-pod", "--", "curl", "-s", "-m", "3", ip]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn native_routing_reaches_same_l2_nodes_only() {
    let lab = Lab::up("n", &["--cni", "cilium", "--workloads"]);
    let pods = pods_by_node(&lab);
    let curl_ip = pods.iter().find(|p| p.0 == "curl-pod").unwrap().2.clone();
    assert!(
        curl_ip.starts_with("172.20."),
        "cluster-pool IP, got {curl_ip}"
    );

    // CiliumNodes: one /24 each from 172.20.0.0/16, router IP inside it.
    let nodes = lab.items("ciliumnodes");
    assert_eq!(nodes.len(), 3);
    let mut cidrs: Vec<String> = nodes
        .iter()
        .map(|n| s(n, "/spec/ipam/podCIDRs/0").to_string())
        .collect();
    cidrs.sort();
    cidrs.dedup();
    assert_eq!(cidrs.len(), 3, "{cidrs:?}");
    assert!(
        cidrs
            .iter()
            .all(|c| c.starts_with("172.20.") && c.ends_with("/24"))
    );
    let table = lab.ok(&["get", "ciliumnodes"]);
    assert!(
        table.starts_with("NAME") && table.contains("CILIUMINTERNALIP   INTERNALIP"),
        "{table}"
    );
    assert!(table.contains("192.168.20.100"), "{table}");

    // Same node and same L2 (k8s-w1) answer; k8s-w0 behind the router does not.
    let (local_name, local_ip) = webpod_on(&lab, "k8s-ctr");
    let (ok, body) = curl_from_curl_pod(&lab, &local_ip);
    assert!(
        ok && body.contains(&format!("Hostname: {local_name}")),
        "{body}"
    );
    assert!(body.contains(&format!("RemoteAddr: {curl_ip}:")), "{body}");
    let (w1_name, w1_ip) = webpod_on(&lab, "k8s-w1");
    let (ok, body) = curl_from_curl_pod(&lab, &w1_ip);
    assert!(
        ok && body.contains(&format!("Hostname: {w1_name}")),
        "{body}"
    );
    let (_, w0_ip) = webpod_on(&lab, "k8s-w0");
    let (ok, body) = curl_from_curl_pod(&lab, &w0_ip);
    assert!(
        !ok,
        "k8s-w0's webpod must be unreachable in native routing: {body}"
    );
    for ip in [&local_ip, &w1_ip] {
        lab.ping("curl-pod", ip);
    }

    // Routes: only the same-L2 peer gets a direct route; w0 is skipped with a warning.
    let w1_cidr = s(
        nodes
            .iter()
            .find(|n| s(n, "/metadata/name") == "k8s-w1")
            .unwrap(),
        "/spec/ipam/podCIDRs/0",
    )
    .to_string();
    let w0_cidr = s(
        nodes
            .iter()
            .find(|n| s(n, "/metadata/name") == "k8s-w0")
            .unwrap(),
        "/spec/ipam/podCIDRs/0",
    )
    .to_string();
    let routes = lab.ok(&["exec", "k8s-ctr", "--", "ip", "route"]);
    assert!(
        routes.contains(&format!(
            "{w1_cidr} via 192.168.10.101 dev eth1 proto kernel"
        )),
        "{routes}"
    );
    assert!(!routes.contains(&w0_cidr), "{routes}");
    let log = lab.ok(&["logs", "k8s-ctr/cilium-agent"]);
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("k8s-w0")),
        "no warning about the skipped peer k8s-w0"
    );

    // Identities: the three webpods share one, cluster-wide; curl-pod has another.
    let ceps = lab.items("ciliumendpoints");
    assert_eq!(ceps.len(), 4);
    let id_of = |name: &str| {
        ceps.iter()
            .find(|c| s(c, "/metadata/name") == name)
            .and_then(|c| c.pointer("/status/identity/id"))
            .and_then(Value::as_u64)
            .unwrap()
    };
    let web_ids: Vec<u64> = ceps
        .iter()
        .filter(|c| s(c, "/metadata/name").starts_with("webpod-"))
        .map(|c| {
            c.pointer("/status/identity/id")
                .and_then(Value::as_u64)
                .unwrap()
        })
        .collect();
    assert_eq!(web_ids.len(), 3);
    assert!(
        web_ids.iter().all(|i| *i == web_ids[0] && *i >= 256),
        "{web_ids:?}"
    );
    assert_ne!(id_of("curl-pod"), web_ids[0]);
    assert!(ceps.iter().all(|c| s(c, "/status/state") == "ready"));
    let ident = lab.json(&["get", "ciliumidentities", &web_ids[0].to_string()]);
    assert_eq!(s(&ident, "/security-labels/k8s:app"), "webpod", "{ident}");
    let table = lab.ok(&["get", "ciliumendpoints"]);
    assert!(
        table.contains("SECURITY IDENTITY   ENDPOINT STATE   IPV4"),
        "{table}"
    );

    // cilium-dbg on the node talks to that node's agent.
    let status = lab.dbg("k8s-ctr", &["status", "--verbose"]);
    let ctr_cidr = s(
        nodes
            .iter()
            .find(|n| s(n, "/metadata/name") == "k8s-ctr")
            .unwrap(),
        "/spec/ipam/podCIDRs/0",
    );
    assert!(
        status.contains(&format!("IPv4: 4/254 allocated from {ctr_cidr},")),
        "{status}"
    );
    assert!(
        status.contains("(router)") && status.contains("(health)"),
        "{status}"
    );
    assert!(status.contains("Network: Native"), "{status}");
    let eps = lab.dbg("k8s-ctr", &["endpoint", "list"]);
    assert!(eps.contains(&curl_ip) && eps.contains(&local_ip), "{eps}");
    assert!(
        eps.contains("k8s:app=webpod") && eps.contains("ready"),
        "{eps}"
    );
    let ips = lab.dbg("k8s-ctr", &["ip", "list"]);
    assert!(
        ips.lines()
            .any(|l| l.starts_with("192.168.10.101/32") && l.contains("reserved:remote-node")),
        "{ips}"
    );
    assert!(
        ips.lines()
            .any(|l| l.starts_with(&format!("{w1_ip}/32")) && l.contains("k8s:app=webpod")),
        "{ips}"
    );
    let ipcache = lab.dbg("k8s-ctr", &["bpf", "ipcache", "list"]);
    assert!(
        ipcache
            .lines()
            .any(|l| l.starts_with(&format!("{w1_ip}/32"))
                && l.contains(&format!("identity={}", web_ids[0]))),
        "{ipcache}"
    );
    let lxc = lab.dbg("k8s-ctr", &["bpf", "endpoint", "list"]);
    assert!(lxc.contains(&curl_ip) && lxc.contains(&local_ip), "{lxc}");
    let metrics = lab.ok(&[
        "exec",
        "k8s-ctr",
        "--",
        "curl",
        "-s",
        "-m",
        "3",
        "http://127.0.0.1:9962/metrics",
    ]);
    assert!(metrics.contains("cilium_endpoint_count"), "{metrics}");
    for line in [
        r#"cilium_reconciler_count_total{module_id="bpf-map-sync-cilium_lxc"}"#,
        r#"cilium_reconciler_errors_current{module_id="bpf-map-sync-cilium_ipcache_v2"} 0"#,
        r#"cilium_reconciler_duration_seconds_count{module_id="route-sync",op="update"}"#,
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
    // Every controller and reconciler is listed and healthy.
    let status = lab.dbg("k8s-ctr", &["status", "--all-controllers"]);
    let block: Vec<&str> = status
        .lines()
        .skip_while(|l| !l.starts_with("Controller Status:"))
        .collect();
    for name in [
        "bpf-map-sync-cilium_lxc",
        "route-sync",
        "cilium-endpoint-sync",
        "cluster-controller",
    ] {
        assert!(
            block
                .iter()
                .any(|l| l.trim_start().starts_with(name) && l.trim_end().ends_with("no error")),
            "{name} missing or failing:\n{status}"
        );
    }

    etcd_refuses_pods(&lab);
    etcd_outage(&lab, &w1_ip);
}

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn agent_restart_keeps_connections_and_endpoints() {
    let lab = Lab::up("r", &["--cni", "cilium", "--workloads"]);
    let (_, w1_ip) = webpod_on(&lab, "k8s-w1");
    let (_, local_ip) = webpod_on(&lab, "k8s-ctr");
    let before = lab.dbg("k8s-ctr", &["endpoint", "list"]);
    let live_lxc = lab.dbg("k8s-ctr", &["bpf", "endpoint", "list"]);

    // A TCP stream from curl-pod (k8s-ctr) to a webpod on k8s-w1.
    let w1_pod = webpod_on(&lab, "k8s-w1").0;
    lab.ok(&["exec", &w1_pod, "--", "iperf3", "-s", "-D", "-1"]);
    eventually("iperf3 server", Duration::from_secs(10), || {
        let out = lab.run(&["exec", &w1_pod, "--", "sh", "-c", "ss -ltn | grep -q :5201"]);
        out.status.success().then_some(())
    });
    let bin = BIN.to_string();
    let name = lab.name.clone();
    let ip = w1_ip.clone();
    let client = std::thread::spawn(move || {
        Command::new(bin)
            .args([
                "--name", &name, "exec", "curl-pod", "--", "iperf3", "-c", &ip, "-t", "6", "-J",
            ])
            .output()
            .expect("run iperf3")
    });

    // Kill the agent on the client's node hard, mid-stream, and restart it.
    std::thread::sleep(Duration::from_millis(1500));
    let agent_pid = pid_of(&lab, "k8s-ctr", "cilium-agent");
    assert!(
        Command::new("kill")
            .args(["-9", &agent_pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // With the agent dead, the datapath keeps forwarding.
    let (ok, body) = curl_from_curl_pod(&lab, &local_ip);
    assert!(ok, "same-node traffic while the agent is down: {body}");
    // Entries nobody owns, left in the pinned maps (as by a crashed run).
    let orphans = inject_orphan_entries(&lab, "k8s-ctr");
    lab.ok(&["restart", "k8s-ctr/cilium-agent"]);

    let out = client.join().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        out.status.success() && report.get("error").is_none(),
        "iperf3 stream broke across the agent restart: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let received = report
        .pointer("/end/sum_received/bytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    assert!(received > 0, "nothing received: {report}");

    // Endpoints and IPs restored, never renumbered; new pods still work.
    let after = eventually("the agent to answer again", Duration::from_secs(30), || {
        let out = lab.run(&["exec", "k8s-ctr", "--", "cilium-dbg", "endpoint", "list"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    let ids = |t: &str| -> Vec<String> {
        let mut v: Vec<String> = t
            .lines()
            .skip(2)
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        ids(&before),
        ids(&after),
        "before:\n{before}\nafter:\n{after}"
    );
    // The restarted agent pruned the orphans and left every live entry.
    eventually(
        "the orphan map entries to be pruned",
        Duration::from_secs(30),
        || {
            let lxc = lab.dbg("k8s-ctr", &["bpf", "endpoint", "list"]);
            let ipcache = lab.dbg("k8s-ctr", &["bpf", "ipcache", "list"]);
            (!lxc.contains(orphans.0) && !ipcache.contains(orphans.1)).then_some(())
        },
    );
    let lxc_after = lab.dbg("k8s-ctr", &["bpf", "endpoint", "list"]);
    for line in live_lxc.lines().skip(1) {
        assert!(
            lxc_after.contains(line),
            "live entry {line:?} lost:\n{lxc_after}"
        );
    }
    lab.ok(&["scale", "deployment", "webpod", "--replicas", "4"]);
    eventually("4 webpods with IPs", Duration::from_secs(60), || {
        let web = pods_by_node(&lab)
            .into_iter()
            .filter(|p| p.0.starts_with("webpod-") && !p.2.is_empty())
            .count();
        (web == 4).then_some(())
    });
    lab.ok(&[
        "wait",
        "pods",
        "--all",
        "--for",
        "condition=Ready",
        "--timeout",
        "60s",
    ]);
    for (name, _, ip) in pods_by_node(&lab)
        .iter()
        .filter(|p| p.0.starts_with("webpod-") && p.1 != "k8s-w0")
    {
        let (ok, body) = curl_from_curl_pod(&lab, ip);
        assert!(ok && body.contains(name), "{name} {ip}: {body}");
    }

    // A deleted CiliumNode and an agent restart give the node a new pod
    // CIDR; its pods keep their addresses, reached through routes of their own.
    let cidr_of = |lab: &Lab| {
        s(
            &lab.json(&["get", "ciliumnodes", "k8s-w1"]),
            "/spec/ipam/podCIDRs/0",
        )
        .to_string()
    };
    let old_cidr = cidr_of(&lab);
    let (w1_pod, w1_ip) = webpod_on(&lab, "k8s-w1");
    lab.ok(&["delete", "ciliumnode", "k8s-w1"]);
    lab.ok(&["restart", "k8s-w1/cilium-agent"]);
    let new_cidr = eventually("a new pod CIDR for k8s-w1", Duration::from_secs(30), || {
        let out = lab.run(&["get", "ciliumnodes", "k8s-w1", "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let c = s(&v, "/spec/ipam/podCIDRs/0").to_string();
        (!c.is_empty()).then_some(c)
    });
    assert_ne!(new_cidr, old_cidr);
    assert_eq!(webpod_on(&lab, "k8s-w1"), (w1_pod.clone(), w1_ip.clone()));
    eventually(
        "an endpoint route for the old address",
        Duration::from_secs(30),
        || {
            let routes = lab.ok(&["exec", "k8s-w1", "--", "ip", "route"]);
            routes
                .lines()
                .any(|l| l.starts_with(&format!("{w1_ip} dev lxc")))
                .then_some(())
        },
    );
    let body = lab.ok(&["exec", "k8s-w1", "--", "curl", "-s", "-m", "3", &w1_ip]);
    assert!(body.contains(&format!("Hostname: {w1_pod}")), "{body}");
}

fn node_ip_links(lab: &Lab, node: &str) -> usize {
    lab.ok(&["exec", node, "--", "ip", "-o", "link", "show"])
        .lines()
        .filter(|l| l.contains(": lxc"))
        .count()
}

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn pod_churn_leaks_nothing() {
    let lab = Lab::up(
        "c",
        &["--cni", "cilium", "--config", "identity-gc-interval=1s"],
    );
    let churn = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: churn\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app: churn}\n  template:\n    metadata:\n      labels: {app: churn}\n    spec:\n      containers:\n      - name: c\n        image: nicolaka/netshoot\n        command: [sleep, infinity]\n";
    let out = lab.apply(churn);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 10 rounds of 20 pods: 200 creations and deletions.
    for round in 0..10 {
        lab.ok(&["scale", "deployment", "churn", "--replicas", "20"]);
        eventually(
            &format!("round {round}: 20 pods Ready"),
            Duration::from_secs(90),
            || {
                let pods = lab.items("pods");
                let ready = pods
                    .iter()
                    .filter(|p| {
                        p.pointer("/status/conditions")
                            .and_then(Value::as_array)
                            .is_some_and(|cs| {
                                cs.iter()
                                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
                            })
                    })
                    .count();
                (ready == 20 && pods.len() == 20).then_some(())
            },
        );
        lab.ok(&["scale", "deployment", "churn", "--replicas", "0"]);
        eventually(
            &format!("round {round}: pods gone"),
            Duration::from_secs(90),
            || lab.items("pods").is_empty().then_some(()),
        );
    }
    // Nothing left: IPs (router + health only), lxc veths, map entries, CEPs, identities.
    for node in ["k8s-ctr", "k8s-w1", "k8s-w0"] {
        eventually(&format!("{node} clean"), Duration::from_secs(30), || {
            let status = lab.dbg(node, &["status"]);
            let ipam_ok = status.contains("IPv4: 2/254 allocated");
            let lxc = lab.dbg(node, &["bpf", "endpoint", "list"]);
            let map_ok = !lxc.lines().skip(1).any(|l| l.contains("id="));
            (ipam_ok && map_ok && node_ip_links(&lab, node) == 0).then_some(())
        });
    }
    assert!(lab.items("ciliumendpoints").is_empty());
    eventually(
        "identities garbage-collected",
        Duration::from_secs(60),
        || {
            let left: Vec<String> = lab
                .items("ciliumidentities")
                .iter()
                .filter(|i| s(i, "/security-labels/k8s:app") == "churn")
                .map(|i| s(i, "/metadata/name").to_string())
                .collect();
            left.is_empty().then_some(())
        },
    );
}

/// Run cilium-cni inside a node's namespace with env and stdin.
fn cni(lab: &Lab, env: &[(&str, &str)], stdin: &str) -> (i32, Value) {
    let mut cmd = Command::new(BIN);
    cmd.args(["--name", &lab.name, "exec", "k8s-ctr", "--", CNI]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run cilium-cni");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn cni_errors_config_errors_and_podman() {
    // A key whose feature does not exist yet stops the lab with a clear error.
    let name = format!("t{}k", std::process::id() % 100_000);
    let out = Command::new(BIN)
        .args([
            "--name",
            &name,
            "up",
            "--cni",
            "cilium",
            "--config",
            "kube-proxy-replacement=true",
            "--timeout",
            "30s",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not supported yet"), "{err}");
    assert_gone(&name);

    let lab = Lab::up("p", &["--cni", "cilium", "--workloads"]);
    let socket = format!(
        "/run/cilium-lab/{}/nodes/k8s-ctr/cilium/cilium.sock",
        lab.name
    );
    let conf = format!(
        r#"{{"cniVersion":"1.1.0","name":"cilium","type":"cilium-cni","socket-path":"{socket}"}}"#
    );
    let base = [
        ("CNI_CONTAINERID", "errtest"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        base.iter().chain(extra).copied().collect()
    };
    let (code, v) = cni(
        &lab,
        &with(&[("CNI_COMMAND", "ADD"), ("CNI_NETNS", "/run/netns/none")]),
        "{not json",
    );
    assert_ne!(code, 0);
    assert_eq!(v["code"], 6, "{v}");
    let (code, v) = cni(&lab, &with(&[("CNI_COMMAND", "ADD")]), &conf);
    assert_ne!(code, 0);
    assert_eq!(v["code"], 4, "missing CNI_NETNS: {v}");
    let old = conf.replace("1.1.0", "0.1.0");
    let (code, v) = cni(
        &lab,
        &with(&[("CNI_COMMAND", "ADD"), ("CNI_NETNS", "/run/netns/none")]),
        &old,
    );
    assert_ne!(code, 0);
    assert_eq!(v["code"], 1, "unsupported version: {v}");
    let unreachable = conf.replace(&socket, "/nonexistent/cilium.sock");
    let (code, v) = cni(
        &lab,
        &with(&[("CNI_COMMAND", "ADD"), ("CNI_NETNS", "/run/netns/none")]),
        &unreachable,
    );
    assert_ne!(code, 0);
    assert_eq!(v["code"], 11, "agent unreachable: {v}");
    let (code, _) = cni(&lab, &with(&[("CNI_COMMAND", "DEL")]), &conf);
    assert_eq!(code, 0, "DEL of nothing succeeds");
    let (code, v) = cni(&lab, &with(&[("CNI_COMMAND", "VERSION")]), &conf);
    assert_eq!(code, 0);
    assert!(
        v["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "1.1.0"),
        "{v}"
    );
    let (code, _) = cni(&lab, &with(&[("CNI_COMMAND", "STATUS")]), &conf);
    assert_eq!(code, 0, "STATUS with a healthy agent");

    // podman, a real CNI client, through our plugin and the node's agent.
    let (_, webpod_ip) = webpod_on(&lab, "k8s-ctr");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let rootfs = root.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static installed");
    for d in ["etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    let netdir = root.join("net.d");
    std::fs::create_dir_all(&netdir).unwrap();
    let net_name = format!("{}-podman", lab.name);
    std::fs::write(
        netdir.join(format!("{net_name}.conflist")),
        format!(
            r#"{{"cniVersion":"1.0.0","name":"{net_name}","plugins":[{{"type":"cilium-cni","socket-path":"{socket}"}}]}}"#
        ),
    )
    .unwrap();
    let cni_dir = std::path::Path::new(CNI)
        .parent()
        .unwrap()
        .display()
        .to_string();
    std::fs::write(
        root.join("containers.conf"),
        format!(
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{cni_dir}\", \"/usr/lib/cni\"]\nnetwork_config_dir = \"{}\"\n",
            netdir.display()
        ),
    )
    .unwrap();
    let out = Command::new("podman")
        .env("CONTAINERS_CONF", root.join("containers.conf"))
        .args([
            "--root",
            &root.join("storage").display().to_string(),
            "--runroot",
            &root.join("run").display().to_string(),
            "run",
            "--runtime",
            "/usr/sbin/runc",
            "--rm",
            "--ulimit",
            "nproc=1000:1000",
            "--ulimit",
            "nofile=1024:1024",
            "--network",
            &net_name,
            "--rootfs",
            &rootfs.display().to_string(),
            "/bin/busybox",
            "sh",
            "-c",
            &format!(
                "/bin/busybox ip -4 addr show eth0; \
                 printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 5 {webpod_ip} 80"
            ),
        ])
        .output()
        .expect("run podman");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "podman failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ctr_cidr = lab
        .items("ciliumnodes")
        .iter()
        .find(|n| s(n, "/metadata/name") == "k8s-ctr")
        .map(|n| s(n, "/spec/ipam/podCIDRs/0").to_string())
        .unwrap();
    let prefix = ctr_cidr.rsplit_once('.').unwrap().0.to_string() + ".";
    assert!(
        text.contains(&format!("inet {prefix}")),
        "container IP from {ctr_cidr}: {text}"
    );
    assert!(text.contains("Hostname: webpod-"), "{text}");
    // podman's DEL released the endpoint: only the lab's pods remain.
    let eps = lab.dbg("k8s-ctr", &["endpoint", "list"]);
    assert!(!eps.contains("container:"), "{eps}");
}

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn kubernetes_ipam_is_one_config_away() {
    let lab = Lab::up(
        "i",
        &[
            "--cni",
            "cilium",
            "--config",
            "ipam=kubernetes",
            "--config",
            "enable-endpoint-routes=true",
            "--workloads",
        ],
    );
    let pods = pods_by_node(&lab);
    assert!(pods.iter().all(|p| p.2.starts_with("10.244.")), "{pods:?}");
    let node = lab.json(&["get", "nodes", "k8s-w1"]);
    let cn = lab.json(&["get", "ciliumnodes", "k8s-w1"]);
    assert_eq!(s(&node, "/spec/podCIDR"), s(&cn, "/spec/ipam/podCIDRs/0"));
    let (_, w1_ip) = webpod_on(&lab, "k8s-w1");
    let (ok, body) = curl_from_curl_pod(&lab, &w1_ip);
    assert!(ok && body.contains("Hostname: webpod-"), "{body}");
    // enable-endpoint-routes: one `dev lxc...` route per local pod.
    let (_, local_ip) = webpod_on(&lab, "k8s-ctr");
    let routes = lab.ok(&["exec", "k8s-ctr", "--", "ip", "route"]);
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with(&format!("{local_ip} dev lxc")) && l.contains("scope link")),
        "{routes}"
    );
}
