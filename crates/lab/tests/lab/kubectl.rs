//! The Kubernetes API (issue 9): real `kubectl` runs the seeds' commands
//! verbatim against the lab's API server, which authenticates with the
//! lab CA's certificates and authorizes with RBAC; `exec` and `logs`
//! (kubectl and kube-rs) go through it to the pods' kubelets.

use std::io::{BufRead, BufReader, Write};
use std::process::{Output, Stdio};
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
    exec_and_logs(&lab);

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
    // The old pods may still be terminating (as on a real cluster, where
    // `wait -l` would then find them deleted under it): wait them out.
    eventually("old webpods gone", Duration::from_secs(60), || {
        let out = lab.kube(&["get", "pods", "-l", "app=webpod", "-o", "name"]);
        (out.lines().count() == 3).then_some(())
    });
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

/// `kubectl ARGS` with `input` on stdin.
fn kubectl_with_input(lab: &Lab, args: &[&str], input: &str) -> Output {
    let mut child = lab
        .kube_env("kubectl", args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("kubectl output")
}

/// `kubectl ARGS` that must fail; stderr.
fn kube_fails(lab: &Lab, args: &[&str]) -> String {
    let out = lab.kubectl(args);
    assert!(!out.status.success(), "kubectl {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `kubectl exec` (output, exit code, stdin, a tty, errors) and `kubectl
/// logs` (tail, follow, errors) on the seed workloads, then kube-rs.
fn exec_and_logs(lab: &Lab) {
    // The webpod on curl-pod's node (the bridge CNI routes no further).
    let pods = lab.items("pods");
    let webpod = pods
        .iter()
        .find(|p| s(p, "/metadata/labels/app") == "webpod" && s(p, "/spec/nodeName") == "k8s-ctr")
        .expect("a webpod on k8s-ctr");
    let (name, ip) = (s(webpod, "/metadata/name"), s(webpod, "/status/podIP"));

    let body = lab.kube(&["exec", "curl-pod", "--", "curl", "-s", "-m", "5", ip]);
    assert!(body.contains(&format!("Hostname: {name}")), "{body}");

    let out = lab.kubectl(&[
        "exec",
        "curl-pod",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(stderr.contains("err\n"), "{stderr}");
    assert!(
        stderr.contains("command terminated with exit code 3"),
        "{stderr}"
    );

    let out = kubectl_with_input(
        lab,
        &["exec", "-i", "curl-pod", "--", "cat"],
        "hello\nfrom stdin\n",
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\nfrom stdin\n");

    // A terminal: `script` gives kubectl one, of a known size.
    let out = lab
        .kube_env(
            "script",
            &[
                "-qec",
                "stty cols 123 rows 45; kubectl exec -it curl-pod -- sh -c 'stty size; tty'",
                "/dev/null",
            ],
        )
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("45 123\r\n"), "{text:?}");
    assert!(text.contains("/dev/pts/"), "{text:?}");

    let err = kube_fails(lab, &["exec", "curl-pod", "-c", "nope", "--", "true"]);
    assert!(
        err.contains("container nope is not valid for pod curl-pod"),
        "{err}"
    );
    let err = kube_fails(lab, &["exec", "nosuch", "--", "true"]);
    assert!(err.contains("pods \"nosuch\" not found"), "{err}");

    let log = lab.kube(&["logs", name]);
    assert!(log.ends_with("Starting up on port 80\n"), "{log:?}");
    assert_eq!(lab.kube(&["logs", name, "--tail", "1"]), log);
    let err = kube_fails(lab, &["logs", name, "--timestamps"]);
    assert!(err.contains("not supported"), "{err}");

    // Follow: the first line arrives, the stream stays open.
    let mut follow = lab
        .kube_env("kubectl", &["logs", "-f", name])
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    let mut first = String::new();
    BufReader::new(follow.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read");
    assert!(first.contains("Starting up on port 80"), "{first}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        follow.try_wait().expect("try_wait").is_none(),
        "still following"
    );
    follow.kill().expect("kill");
    let _ = follow.wait();

    kube_rs(&lab.kubeconfig(), name);
}

/// The same through kube-rs (`Api::exec` over v5, `Api::logs`).
fn kube_rs(kubeconfig: &str, webpod: &str) {
    use api::k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, AttachParams, LogParams};
    use kube::config::{KubeConfigOptions, Kubeconfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(kubeconfig).expect("kubeconfig"),
            &KubeConfigOptions::default(),
        )
        .await
        .expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let pods: Api<Pod> = Api::default_namespaced(client);

        let params = AttachParams::default().stdin(true).stderr(true);
        let mut p = pods
            .exec(
                "curl-pod",
                ["sh", "-c", "cat; echo err >&2; exit 4"],
                &params,
            )
            .await
            .expect("exec");
        let mut stdin = p.stdin().expect("stdin");
        stdin.write_all(b"from kube-rs\n").await.expect("write");
        // EOF (kube-rs sends v5's close signal).
        stdin.shutdown().await.expect("close stdin");
        let (mut out, mut err) = (String::new(), String::new());
        let mut stdout = p.stdout().expect("stdout");
        let mut stderr = p.stderr().expect("stderr");
        let status = p.take_status().expect("status");
        let (r1, r2) = tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err)
        );
        r1.expect("stdout");
        r2.expect("stderr");
        assert_eq!(out, "from kube-rs\n");
        assert_eq!(err, "err\n");
        let status = status.await.expect("a status");
        assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
        let cause = status
            .details
            .and_then(|d| d.causes)
            .and_then(|c| c.into_iter().next())
            .expect("a cause");
        assert_eq!(
            (cause.reason.as_deref(), cause.message.as_deref()),
            (Some("ExitCode"), Some("4"))
        );
        p.join().await.expect("join");

        let log = pods
            .logs(webpod, &LogParams::default())
            .await
            .expect("logs");
        assert!(log.contains("Starting up on port 80"), "{log}");
        let nope = LogParams {
            container: Some("nope".into()),
            ..Default::default()
        };
        let err = pods
            .logs(webpod, &nope)
            .await
            .expect_err("no such container");
        assert!(
            err.to_string().contains("container nope is not valid"),
            "{err}"
        );
    });
}
