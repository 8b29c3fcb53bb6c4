//! The Kubernetes API (issue 9): real `kubectl` runs the seeds' commands
//! verbatim against the lab's API server, which authenticates with the
//! lab CA's certificates and authorizes with RBAC.

use std::time::Duration;

use crate::common::*;

/// The rows of a kubectl table whose first column is `name`.
fn row<'a>(table: &'a str, name: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
}

/// The header line's column names.
fn header(table: &str) -> Vec<String> {
    let first = table.lines().next().unwrap_or_default();
    first
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn kubectl_runs_the_seed_commands() {
    let lab = Lab::up("k", &["--cni", "bridge", "--workloads"]);

    let version = lab.kube(&["version"]);
    assert!(version.contains("Server Version: v1.33"), "{version}");

    let nodes = lab.kube(&["get", "nodes", "-o", "wide"]);
    assert_eq!(
        header(&nodes),
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ]
    );
    assert!(
        row(&nodes, "k8s-ctr").contains("Ready    control-plane"),
        "{nodes}"
    );
    assert!(row(&nodes, "k8s-w0").contains("192.168.20.100"), "{nodes}");

    let pods = lab.kube(&["get", "pods", "-A", "-o", "wide"]);
    assert_eq!(
        &header(&pods)[..6],
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_eq!(
        pods.lines().filter(|l| l.contains("Running")).count(),
        4,
        "{pods}"
    );

    let svc = eventually("endpoints of webpod", Duration::from_secs(10), || {
        let out = lab.kube(&["get", "svc,ep,endpointslices"]);
        (out.contains("endpoints/webpod") && out.matches(":80").count() >= 3).then_some(out)
    });
    assert!(
        svc.contains("service/webpod") && svc.contains("endpointslice.discovery.k8s.io/webpod-"),
        "{svc}"
    );

    assert!(lab.kube(&["get", "crd"]).contains("ciliumnodes.cilium.io"));
    let resources = lab.kube(&["api-resources"]);
    assert!(
        row(&resources, "ciliumnodes").contains("cilium.io/v2"),
        "{resources}"
    );
    assert!(row(&resources, "pods").contains("po"), "{resources}");

    // apply, re-apply with a change, output formats, delete.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cm.yaml");
    let manifest = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\ndata:\n  key: \"{value}\"\n"
        )
    };
    std::fs::write(&file, manifest("one")).unwrap();
    let f = file.to_str().unwrap();
    assert!(
        lab.kube(&["apply", "-f", f])
            .contains("configmap/demo created")
    );
    std::fs::write(&file, manifest("two")).unwrap();
    assert!(
        lab.kube(&["apply", "-f", f])
            .contains("configmap/demo configured")
    );
    assert_eq!(
        lab.kube(&["get", "cm", "demo", "-o", "jsonpath={.data.key}"]),
        "two"
    );
    assert!(
        lab.kube(&["get", "cm", "demo", "-o", "yaml"])
            .contains("apiVersion: v1")
    );
    let json: serde_json::Value =
        serde_json::from_str(&lab.kube(&["get", "cm", "demo", "-o", "json"])).unwrap();
    assert_eq!(json["data"]["key"], "two");

    // A stale resourceVersion is a conflict.
    let stale = json.to_string().replace("\"two\"", "\"three\"");
    std::fs::write(&file, &stale).unwrap();
    lab.kube(&["apply", "-f", f]);
    let conflict = lab.kubectl(&["replace", "-f", f]);
    let stderr = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        stderr.contains("Operation cannot be fulfilled on configmaps \"demo\""),
        "{stderr}"
    );
    assert!(
        lab.kube(&["delete", "-f", f])
            .contains("configmap \"demo\" deleted")
    );
    let gone = lab.kubectl(&["get", "cm", "demo"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("(NotFound)"));

    // Metadata verbs and patches.
    lab.kube(&["label", "node", "k8s-w1", "enable-bgp=true"]);
    assert_eq!(
        lab.kube(&[
            "get",
            "node",
            "k8s-w1",
            "-o",
            "jsonpath={.metadata.labels.enable-bgp}"
        ]),
        "true"
    );
    lab.kube(&["annotate", "pod", "curl-pod", "team=net"]);
    lab.kube(&[
        "patch",
        "svc",
        "webpod",
        "-p",
        r#"{"spec":{"type":"LoadBalancer"}}"#,
    ]);
    let svc = lab.kube(&["get", "svc", "webpod"]);
    assert!(row(&svc, "webpod").contains("LoadBalancer"), "{svc}");

    // Deployment verbs.
    lab.kube(&["scale", "deployment", "webpod", "--replicas", "0"]);
    eventually("webpods gone", Duration::from_secs(30), || {
        let out = lab.kube(&["get", "pods", "-l", "app=webpod", "-o", "name"]);
        out.trim().is_empty().then_some(())
    });
    lab.kube(&["scale", "deployment", "webpod", "--replicas", "3"]);
    lab.kube(&["rollout", "restart", "deployment", "webpod"]);
    let status = lab.kube(&[
        "rollout",
        "status",
        "deployment",
        "webpod",
        "--timeout",
        "60s",
    ]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let waited = lab.kube(&[
        "wait",
        "--for=condition=Ready",
        "pod",
        "-l",
        "app=webpod",
        "--timeout",
        "60s",
    ]);
    assert_eq!(waited.matches("condition met").count(), 3, "{waited}");

    // Node maintenance.
    lab.kube(&["cordon", "k8s-w1"]);
    assert!(row(&lab.kube(&["get", "nodes"]), "k8s-w1").contains("Ready,SchedulingDisabled"));
    lab.kube(&["drain", "k8s-w1", "--ignore-daemonsets", "--timeout", "60s"]);
    let on_w1 = lab.kube(&[
        "get",
        "pods",
        "--field-selector",
        "spec.nodeName=k8s-w1",
        "-o",
        "name",
    ]);
    assert!(on_w1.trim().is_empty(), "{on_w1}");
    lab.kube(&["uncordon", "k8s-w1"]);

    let described = lab.kube(&["describe", "pod", "curl-pod"]);
    assert!(
        described.contains("Node:         k8s-ctr/192.168.10.100"),
        "{described}"
    );
    lab.kube(&["get", "events"]);
}

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn the_api_authenticates_and_authorizes() {
    let lab = Lab::up("r", &["--cni", "bridge"]);
    let pki_dir =
        std::path::PathBuf::from(format!("/run/cilium-lab/{}/clusters/default/pki", lab.name));
    let kubeconfig: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("/run/cilium-lab/{}/kubeconfig", lab.name)).unwrap(),
    )
    .unwrap();
    let server = kubeconfig["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap()
        .to_string();

    // No credentials: 401.
    let out = std::process::Command::new("curl")
        .args(["-sk", &format!("{server}/api/v1/pods")])
        .output()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (body["code"].as_i64(), body["reason"].as_str()),
        (Some(401), Some("Unauthorized"))
    );

    // A user of the lab CA without roles: 403 with upstream's message.
    let ca = pki::Ca::from_pair(pki::CertPair::read(&pki_dir, "ca").unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let as_user = |user: &str, groups: &[&str], args: &[&str]| {
        let (cert, key) = ca
            .issue(&pki::Leaf::client(user, groups))
            .unwrap()
            .write(dir.path(), "user")
            .unwrap();
        let mut cmd = std::process::Command::new("kubectl");
        cmd.args(["--server", &server, "--certificate-authority"])
            .arg(pki_dir.join("ca.crt"))
            .arg("--client-certificate")
            .arg(cert)
            .arg("--client-key")
            .arg(key)
            .args(args)
            .env("KUBECONFIG", "/dev/null")
            .env("KUBECACHEDIR", dir.path().join("cache"));
        cmd.output().unwrap()
    };
    let denied = as_user("nobody", &[], &["get", "pods"]);
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains(r#"pods is forbidden: User "nobody" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{stderr}"
    );

    // The agent's ServiceAccount: CiliumNodes yes, deleting pods no.
    let agent = "system:serviceaccount:kube-system:cilium";
    let ok = as_user(agent, &["system:serviceaccounts"], &["get", "ciliumnodes"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let no = as_user(
        agent,
        &["system:serviceaccounts"],
        &["delete", "pod", "curl-pod"],
    );
    assert!(String::from_utf8_lossy(&no.stderr).contains("(Forbidden)"));
}
