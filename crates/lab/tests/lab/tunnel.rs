//! Tunnel routing (issue 4): VXLAN between nodes with the source security
//! identity in the VNI, the 50-byte MTU overhead on routes, switching an
//! existing lab between native and tunnel mode with a rolling restart
//! (after a refused `config set` that leaves everything as it was), and
//! the startup errors for GENEVE (absent from this kernel) and
//! auto-direct-node-routes with a tunnel.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

fn webpod_ip_on(lab: &Lab, node: &str) -> String {
    lab.items("pods")
        .iter()
        .find(|p| s(p, "/metadata/labels/app") == "webpod" && s(p, "/spec/nodeName") == node)
        .map(|p| s(p, "/status/podIP").to_string())
        .unwrap_or_else(|| panic!("no webpod on {node}"))
}

fn reaches(lab: &Lab, ip: &str) -> bool {
    lab.run(&["exec", "curl-pod", "--", "curl", "-s", "-m", "2", ip])
        .status
        .success()
}

fn identity_of(lab: &Lab, pod: &str) -> u64 {
    let cep = lab.json(&["get", "ciliumendpoints", pod]);
    cep.pointer("/status/identity/id")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no identity for {pod}: {cep}"))
}

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn vxlan_reaches_every_node_with_the_identity_in_the_vni() {
    let lab = Lab::up("v", &["--config", "routing-mode=tunnel", "--workloads"]);

    // Every webpod answers, including k8s-w0's across the router.
    for node in ["k8s-ctr", "k8s-w1", "k8s-w0"] {
        let ip = webpod_ip_on(&lab, node);
        let out = lab.ok(&["exec", "curl-pod", "--", "curl", "-s", "-m", "3", &ip]);
        assert!(out.contains("Hostname: webpod-"), "{node}: {out}");
        lab.ping("curl-pod", &ip);
    }

    // MTU: 1422 bytes of payload fit in 1450, 1423 do not.
    let w1 = webpod_ip_on(&lab, "k8s-w1");
    lab.ok(&[
        "exec", "curl-pod", "--", "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1422", &w1,
    ]);
    let out = lab.run(&[
        "exec", "curl-pod", "--", "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1423", &w1,
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // A local error (EMSGSIZE from the route MTU), not a lost packet:
    // iputils counts it as "+1 errors" and reports "message too long,
    // mtu=1450" from its error queue; older pings say "Message too large".
    let lower = text.to_lowercase();
    assert!(
        !out.status.success()
            && (text.contains("+1 errors")
                || lower.contains("message too long")
                || lower.contains("message too large")),
        "{text}"
    );

    // Routes to the other nodes' pod CIDRs go via cilium_host with mtu 1450.
    let routes = lab.ok(&["exec", "k8s-ctr", "--", "ip", "route"]);
    for node in ["k8s-w1", "k8s-w0"] {
        let cidr = s(
            &lab.json(&["get", "ciliumnodes", node]),
            "/spec/ipam/podCIDRs/0",
        )
        .to_string();
        assert!(
            routes.lines().any(|l| l.starts_with(&cidr)
                && l.contains("dev cilium_host")
                && l.contains("mtu 1450")),
            "{cidr}: {routes}"
        );
    }
    let dev = lab.ok(&[
        "exec",
        "k8s-ctr",
        "--",
        "ip",
        "-d",
        "link",
        "show",
        "cilium_vxlan",
    ]);
    assert!(
        dev.contains("vxlan external") && dev.contains("dstport 8472"),
        "{dev}"
    );

    // On the router, the VXLAN packets carry the sender's identity.
    let curl_id = identity_of(&lab, "curl-pod");
    let w0_pod = lab
        .items("pods")
        .iter()
        .find(|p| s(p, "/metadata/labels/app") == "webpod" && s(p, "/spec/nodeName") == "k8s-w0")
        .map(|p| s(p, "/metadata/name").to_string())
        .unwrap();
    let web_id = identity_of(&lab, &w0_pod);
    let w0 = webpod_ip_on(&lab, "k8s-w0");
    let bin = BIN.to_string();
    let name = lab.name.clone();
    let capture = std::thread::spawn(move || {
        Command::new(bin)
            .args([
                "--name", &name, "exec", "router", "--", "timeout", "15", "tcpdump", "-ni", "any",
                "-l", "-c", "6", "udp", "port", "8472",
            ])
            .output()
            .expect("run tcpdump")
    });
    // Send until tcpdump has seen enough (it starts asynchronously).
    eventually("tcpdump to capture VXLAN", Duration::from_secs(20), || {
        let _ = reaches(&lab, &w0);
        capture.is_finished().then_some(())
    });
    let out = capture.join().unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        dump.contains(&format!("instance {curl_id}")),
        "no VNI {curl_id}:\n{dump}"
    );
    assert!(
        dump.contains(&format!("instance {web_id}")),
        "no VNI {web_id}:\n{dump}"
    );

    // Bulk TCP across the router: large (GSO) packets survive the BPF
    // encapsulation, the routed underlay and the BPF decapsulation.
    lab.ok(&["exec", &w0_pod, "--", "iperf3", "-s", "-D", "-1"]);
    eventually("iperf3 server", Duration::from_secs(10), || {
        let out = lab.run(&["exec", &w0_pod, "--", "sh", "-c", "ss -ltn | grep -q :5201"]);
        out.status.success().then_some(())
    });
    let res: Value = serde_json::from_str(&lab.ok(&[
        "exec", "curl-pod", "--", "iperf3", "-c", &w0, "-t", "1", "-J",
    ]))
    .unwrap();
    let received = res
        .pointer("/end/sum_received/bytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    assert!(received > 10 << 20, "iperf3 to k8s-w0: {received} bytes");

    // Inspection.
    let status = lab.dbg("k8s-ctr", &["status"]);
    assert!(status.contains("Network: Tunnel [vxlan]"), "{status}");
    let ipcache = lab.dbg("k8s-ctr", &["bpf", "ipcache", "list"]);
    assert!(
        ipcache.lines().any(|l| l.starts_with(&format!("{w0}/32"))
            && l.contains("tunnelendpoint=192.168.20.100")
            && l.contains("flags=hastunnel")),
        "{ipcache}"
    );
}

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn switching_between_native_and_tunnel_leaves_nothing_behind() {
    let lab = Lab::up("s", &["--workloads"]);
    let (w1, w0) = (webpod_ip_on(&lab, "k8s-w1"), webpod_ip_on(&lab, "k8s-w0"));
    assert!(reaches(&lab, &w1) && !reaches(&lab, &w0));

    // A key whose feature does not exist yet is refused with the agent's
    // message before anything is written: the stored config and the
    // agents' config directories stay as they were, the agents keep
    // running, and the rolling restart below starts them again.
    let view = lab.ok(&["config", "view"]);
    let err = lab.fails(&["config", "set", "enable-bpf-masquerade=true"]);
    assert!(
        err.contains("invalid configuration: `enable-bpf-masquerade: true` is not supported yet"),
        "{err}"
    );
    assert_eq!(lab.ok(&["config", "view"]), view);
    for node in ["k8s-ctr", "k8s-w1", "k8s-w0"] {
        let dir = format!("/run/cilium-lab/{}/nodes/{node}/cilium/config", lab.name);
        assert!(
            !Path::new(&dir).join("enable-bpf-masquerade").exists(),
            "{node}: written"
        );
        let status = lab.dbg(node, &["status"]);
        assert!(status.contains("Network: Native"), "{node}: {status}");
    }

    lab.ok(&["config", "set", "routing-mode=tunnel"]);
    lab.ok(&["rollout", "restart", "ds/cilium"]);
    eventually(
        "k8s-w0's webpod through the tunnel",
        Duration::from_secs(20),
        || (reaches(&lab, &w0) && reaches(&lab, &w1)).then_some(()),
    );
    let routes = lab.ok(&["exec", "k8s-ctr", "--", "ip", "route"]);
    assert!(
        !routes.contains("via 192.168.10.101 dev eth1 proto kernel"),
        "stale direct route:\n{routes}"
    );

    lab.ok(&["config", "unset", "routing-mode"]);
    lab.ok(&["rollout", "restart", "ds/cilium"]);
    eventually("native routing again", Duration::from_secs(20), || {
        (reaches(&lab, &w1) && !reaches(&lab, &w0)).then_some(())
    });
    for node in ["k8s-ctr", "k8s-w1", "k8s-w0"] {
        let links = lab.ok(&["exec", node, "--", "ip", "-o", "link", "show"]);
        assert!(!links.contains("cilium_vxlan"), "{node} kept cilium_vxlan");
        let routes = lab.ok(&["exec", node, "--", "ip", "route"]);
        assert!(
            !routes.contains("mtu 1450"),
            "{node} kept tunnel routes:\n{routes}"
        );
        let ipcache = lab.dbg(node, &["bpf", "ipcache", "list"]);
        assert!(!ipcache.contains("hastunnel"), "{node}:\n{ipcache}");
    }
}

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn geneve_and_tunnel_with_direct_routes_are_rejected() {
    for (suffix, config, expect) in [
        (
            "g",
            vec!["routing-mode=tunnel", "tunnel-protocol=geneve"],
            "GENEVE",
        ),
        (
            "d",
            vec!["routing-mode=tunnel", "auto-direct-node-routes=true"],
            "auto-direct-node-routes",
        ),
    ] {
        let name = format!("t{}{suffix}", std::process::id() % 100_000);
        let mut args = vec![
            "--name".to_string(),
            name.clone(),
            "up".into(),
            "--timeout".into(),
            "30s".into(),
        ];
        for c in config {
            args.extend(["--config".to_string(), c.to_string()]);
        }
        let out = Command::new(BIN).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} should fail");
        assert!(err.contains(expect), "{name}: {err}");
        assert_gone(&name);
    }
}
