//! The lab itself (issue 2): topology, etcd, control plane, pod runtime
//! with Debian's reference CNI plugins, kubectl-like verbs, teardown.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn seed_lab_runs_the_sample_workloads() {
    let lab = Lab::up("a", &["--cni", "bridge", "--workloads"]);

    // Routing through the router; the router's web server from the far side.
    lab.ping("k8s-ctr", "192.168.20.100");
    let web = lab.ok(&[
        "exec",
        "k8s-w0",
        "--",
        "curl",
        "-s",
        "-m",
        "5",
        "http://10.10.1.200",
    ]);
    assert_eq!(web.trim(), "<h1>Web Server : router</h1>");

    // etcd healthy from every node (over the lab network, mutual TLS with
    // the API server's client certificate) and from the host (its unix
    // socket).
    let pki = format!("/run/cilium-lab/{}/clusters/default/pki", lab.name);
    let tls = [
        format!("--cacert={pki}/ca.crt"),
        format!("--cert={pki}/apiserver-etcd-client.crt"),
        format!("--key={pki}/apiserver-etcd-client.key"),
    ];
    for node in ["k8s-ctr", "k8s-w1", "k8s-w0"] {
        let mut args = vec![
            "exec",
            node,
            "--",
            "etcdctl",
            "--endpoints",
            "https://192.168.10.100:2379",
        ];
        args.extend(tls.iter().map(String::as_str));
        args.extend(["endpoint", "health"]);
        let out = lab.run(&args);
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("is healthy"),
            "{node}: {text}"
        );
    }
    let sock = format!(
        "unixs:///run/cilium-lab/{}/clusters/default/etcd/etcd.sock:0",
        lab.name
    );
    let out = Command::new("etcdctl")
        .args(["--endpoints", &sock])
        .args(&tls)
        .args(["endpoint", "health"])
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("is healthy"),
        "host: {text}"
    );

    // Pods: Running, webpods one per node, curl-pod on k8s-ctr.
    let pods = lab.items("pods");
    assert_eq!(pods.len(), 4, "{pods:?}");
    let mut web_nodes: Vec<&str> = pods
        .iter()
        .filter(|p| s(p, "/metadata/labels/app") == "webpod")
        .map(|p| s(p, "/spec/nodeName"))
        .collect();
    web_nodes.sort();
    assert_eq!(web_nodes, ["k8s-ctr", "k8s-w0", "k8s-w1"]);
    let curl = pods
        .iter()
        .find(|p| s(p, "/metadata/name") == "curl-pod")
        .unwrap();
    assert_eq!(s(curl, "/spec/nodeName"), "k8s-ctr");
    assert!(pods.iter().all(|p| s(p, "/status/phase") == "Running"));
    let curl_ip = s(curl, "/status/podIP").to_string();
    assert!(curl_ip.starts_with("10.244.0."), "curl-pod IP {curl_ip}");

    // curl-pod -> the webpod on its own node: whoami answers with its name.
    let local = pods
        .iter()
        .find(|p| s(p, "/metadata/labels/app") == "webpod" && s(p, "/spec/nodeName") == "k8s-ctr")
        .unwrap();
    let body = lab.ok(&[
        "exec",
        "curl-pod",
        "--",
        "curl",
        "-s",
        "-m",
        "5",
        s(local, "/status/podIP"),
    ]);
    assert!(
        body.contains(&format!("Hostname: {}", s(local, "/metadata/name"))),
        "{body}"
    );
    assert!(body.contains(&format!("RemoteAddr: {curl_ip}:")), "{body}");
    assert!(body.contains("GET / HTTP/1.1"), "{body}");
    // The pod sees Kubernetes' resolv.conf and its own hostname.
    let resolv = lab.ok(&["exec", "curl-pod", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");
    assert!(resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"));
    assert_eq!(
        lab.ok(&["exec", "curl-pod", "--", "hostname"]).trim(),
        "curl-pod"
    );

    // The Service has a ClusterIP and its EndpointSlice follows scaling.
    let svc = lab.json(&["get", "svc", "webpod"]);
    assert!(s(&svc, "/spec/clusterIP").starts_with("10.96."), "{svc}");
    let ready_endpoints = |lab: &Lab| -> usize {
        lab.items("endpointslices")
            .iter()
            .filter(|e| s(e, "/metadata/labels/kubernetes.io~1service-name") == "webpod")
            .flat_map(|e| e["endpoints"].as_array().cloned().unwrap_or_default())
            .filter(|e| e.pointer("/conditions/ready").and_then(Value::as_bool) == Some(true))
            .count()
    };
    assert_eq!(ready_endpoints(&lab), 3);
    assert!(
        lab.ok(&["scale", "deployment", "webpod", "--replicas", "0"])
            .contains("scaled")
    );
    eventually("webpods gone", Duration::from_secs(30), || {
        let n = lab
            .items("pods")
            .iter()
            .filter(|p| s(p, "/metadata/labels/app") == "webpod")
            .count();
        (n == 0 && ready_endpoints(&lab) == 0).then_some(())
    });
    lab.ok(&["scale", "deployment/webpod", "--replicas", "3"]);
    eventually("3 ready endpoints", Duration::from_secs(30), || {
        (ready_endpoints(&lab) == 3).then_some(())
    });
    let table = lab.ok(&["get", "deployments"]);
    assert!(table.contains("webpod   3/3"), "{table}");

    // Bad input changes nothing.
    let before = lab.json(&["get", "deployments"]);
    let broken = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: webpod\n spec: {}\n";
    let out = lab.apply(broken);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("line") && err.contains("column"), "{err}");
    let webpod =
        std::fs::read_to_string(format!("{MANIFESTS}/webpod.yaml")).expect("seed manifest");
    let invalid = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shouldnotexist\n---\n{}",
        webpod.replace("replicas: 3", "replicas: -2")
    );
    let out = lab.apply(&invalid);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("spec.replicas"), "{err}");
    assert_eq!(lab.json(&["get", "deployments"])["spec"], before["spec"]);
    let err = lab.fails(&["get", "namespace", "shouldnotexist"]);
    assert!(err.contains("not found"), "{err}");
    let err = lab.fails(&["get", "widgets"]);
    assert!(err.contains("doesn't have a resource type"), "{err}");

    // Re-applying the seed manifests unchanged is a no-op.
    let out = lab.ok(&["apply", "-f", &format!("{MANIFESTS}/webpod.yaml")]);
    assert!(
        out.contains("deployment.apps/webpod unchanged") || out.contains("configured"),
        "{out}"
    );

    let pids = recorded_pids(&lab.name);
    let name = lab.name.clone();
    drop(lab);
    assert_gone(&name);
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still alive");
    }
}

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn two_labs_side_by_side_and_crash_recovery() {
    let seed = Lab::up("b", &["--cni", "bridge"]);
    let mesh = Lab::up("m", &["--topology", "clustermesh"]);

    // Both work at once; each cluster of the mesh has its own nodes.
    seed.ping("k8s-w1", "192.168.10.100");
    mesh.ping("west-ctr", "192.168.50.22");
    for (cluster, nodes) in [
        ("west", ["west-ctr", "west-w1"]),
        ("east", ["east-ctr", "east-w1"]),
    ] {
        let out = mesh.ok(&["--cluster", cluster, "get", "nodes"]);
        for n in nodes {
            assert!(out.contains(n), "{cluster}: {out}");
        }
        assert_eq!(out.matches("Ready").count(), 2, "{cluster}: {out}");
    }

    // `up` again on a healthy lab is a no-op.
    let pids = recorded_pids(&seed.name);
    seed.ok(&["up", "--cni", "bridge"]);
    assert_eq!(recorded_pids(&seed.name), pids);

    // A crashed lab (every process killed) is cleaned and rebuilt by `up`.
    for pid in &pids {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    let out = seed.run(&["up", "--cni", "bridge"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cleaned leftovers"));
    seed.ping("k8s-ctr", "192.168.20.100");

    // Tearing one lab down leaves the other intact.
    let name = seed.name.clone();
    drop(seed);
    assert_gone(&name);
    mesh.ping("east-ctr", "192.168.50.11");
    let name = mesh.name.clone();
    drop(mesh);
    assert_gone(&name);
}

#[test]
fn commands_on_a_missing_lab_say_so() {
    let out = Command::new(BIN)
        .args(["--name", "nosuchlab", "get", "pods"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such lab \"nosuchlab\""));
    let out = Command::new(BIN)
        .args(["--name", "Bad-Name", "up"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lab name \"Bad-Name\" is invalid"));
}
