//! Root tests of the runtime against real namespaces and Debian's real
//! CNI plugins. Every namespace is created here with the `rtt<pid>-`
//! prefix and removed by a guard, even on failure; plugins run on a
//! dedicated thread switched into a test namespace, so nothing touches
//! the host's network namespace. Needs root and the plugins
//! (scripts/setup.sh installs them).

use std::fs::File;
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command as Proc;

use cnispec::AddResult;
use nix::sched::{CloneFlags, setns};
use serde::Deserialize;
use serde_json::json;

use crate::cni::{ClientError, CniClient, NetworkConfigList, RuntimeConf};
use crate::sandbox::{SandboxRecord, pod_dir};

const PLUGINS: &str = "/usr/lib/cni";

/// A named network namespace, deleted on drop.
struct NetnsGuard(String);

impl NetnsGuard {
    fn new(tag: &str) -> Self {
        let name = format!("rtt{}-{tag}", std::process::id());
        if Path::new("/run/netns").join(&name).exists() {
            let _ = Proc::new("ip").args(["netns", "del", &name]).status();
        }
        let st = Proc::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip netns add");
        assert!(st.success(), "ip netns add {name}");
        let g = Self(name);
        g.ip(&["link", "set", "lo", "up"]);
        g
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.0)
    }

    /// `ip -n NS ARGS`, asserting success; returns stdout.
    fn ip(&self, args: &[&str]) -> String {
        let out = Proc::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args)
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip -n {} {args:?}: {}",
            self.0,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether `ip -n NS ARGS` succeeds.
    fn ip_ok(&self, args: &[&str]) -> bool {
        Proc::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Proc::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Run `f` on a new thread whose network namespace is `netns` (setns is
/// per thread; the thread ends with `f`).
fn in_netns<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let netns = netns.to_path_buf();
    std::thread::spawn(move || {
        let fd = File::open(&netns).expect("open netns");
        setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread panicked")
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn cni_bridge_host_local_add_check_del() {
    if !Path::new(PLUGINS).join("bridge").exists() {
        panic!("no {PLUGINS}/bridge: run scripts/setup.sh");
    }
    let node = NetnsGuard::new("node");
    let pod = NetnsGuard::new("pod");
    let data = tempfile::tempdir().expect("tempdir");
    let conf = crate::cni::bridge_conflist(
        &"10.250.7.0/24".parse().expect("cidr"),
        &data.path().join("networks"),
    );
    let list = NetworkConfigList::parse(&serde_json::to_vec(&conf).expect("json"), true)
        .expect("conflist");
    let rt = RuntimeConf::for_pod("rtt-c1", &pod.path(), "default", "p1", "uid-1");
    let client = CniClient::new(vec![PathBuf::from(PLUGINS)]);

    let (l, r, c) = (list.clone(), rt.clone(), client.clone());
    let result = in_netns(&node.path(), move || block_on(c.add(&l, &r))).expect("ADD");
    let ips = AddResult::deserialize(&result)
        .expect("result")
        .addresses_on("eth0");
    let ip = *ips.first().expect("an address");
    let IpAddr::V4(v4) = ip else {
        panic!("IPv4 expected, got {ip}")
    };
    assert_eq!(v4.octets()[..3], [10, 250, 7], "address from the range");
    assert!(
        pod.ip(&["-o", "addr", "show", "dev", "eth0"])
            .contains(&format!("{ip}/24"))
    );
    assert!(node.ip(&["-o", "link", "show", "cni0"]).contains("cni0"));

    let (l, r, c, res) = (list.clone(), rt.clone(), client.clone(), result.clone());
    in_netns(&node.path(), move || block_on(c.check(&l, &r, &res))).expect("CHECK");

    // CHECK notices a removed interface.
    pod.ip(&["link", "set", "eth0", "name", "eth9"]);
    let (l, r, c, res) = (list.clone(), rt.clone(), client.clone(), result.clone());
    let err = in_netns(&node.path(), move || block_on(c.check(&l, &r, &res)));
    assert!(matches!(err, Err(ClientError::Plugin { .. })), "{err:?}");
    pod.ip(&["link", "set", "eth9", "name", "eth0"]);

    for round in 0..2 {
        let (l, r, c, res) = (list.clone(), rt.clone(), client.clone(), result.clone());
        in_netns(&node.path(), move || block_on(c.del(&l, &r, Some(&res))))
            .unwrap_or_else(|e| panic!("DEL round {round}: {e}"));
        assert!(!pod.ip_ok(&["link", "show", "eth0"]), "eth0 gone after DEL");
    }
    let leases = std::fs::read_dir(data.path().join("networks").join(&list.name))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("10."))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(leases, 0, "host-local released the address");

    // A plugin error object is decoded.
    let bad = json!({"cniVersion":"1.0.0","name":"bad","plugins":[
        {"type":"bridge","bridge":"cni0","ipam":{"type":"host-local","ranges":[[{"subnet":"nonsense"}]]}}]});
    let bad =
        NetworkConfigList::parse(&serde_json::to_vec(&bad).expect("json"), true).expect("conflist");
    let (r, c) = (rt.clone(), client.clone());
    let err = in_netns(&node.path(), move || block_on(c.add(&bad, &r))).expect_err("bad subnet");
    match &err {
        ClientError::Plugin { plugin, error, .. } => {
            assert_eq!(plugin, "bridge");
            assert!(error.code > 0 && !error.msg.is_empty(), "{error:?}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    let (l, r, c) = (list, rt, client);
    let _ = in_netns(&node.path(), move || block_on(c.del(&l, &r, None)));
}

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn whoami_answers_curl_across_namespaces() {
    let server = NetnsGuard::new("who-s");
    let client = NetnsGuard::new("who-c");
    let peer = format!("netns {}", client.0);
    let args: Vec<&str> = ["link", "add", "v0", "type", "veth", "peer", "name", "v1"]
        .into_iter()
        .chain(peer.split(' '))
        .collect();
    server.ip(&args);
    server.ip(&["addr", "add", "10.251.0.1/24", "dev", "v0"]);
    server.ip(&["link", "set", "v0", "up"]);
    client.ip(&["addr", "add", "10.251.0.2/24", "dev", "v1"]);
    client.ip(&["link", "set", "v1", "up"]);

    // Bind inside the server namespace, then serve on a detached thread
    // in that namespace (getifaddrs reads the thread's namespace).
    let listener = in_netns(&server.path(), || {
        TcpListener::bind("0.0.0.0:0").expect("bind")
    });
    let port = listener.local_addr().expect("addr").port();
    let netns = server.path();
    std::thread::spawn(move || {
        let fd = File::open(&netns).expect("open netns");
        setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns");
        let _ = crate::whoami::serve_listener(listener);
    });
    let out = Proc::new("ip")
        .args(["netns", "exec", &client.0, "curl", "-sS", "--max-time", "5"])
        .arg(format!("http://10.251.0.1:{port}/hello?x=1"))
        .output()
        .expect("run curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hostname = nix::unistd::gethostname().expect("hostname");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        format!("Hostname: {}", hostname.to_string_lossy())
    );
    assert_eq!(lines[1], "IP: 127.0.0.1");
    assert!(lines.contains(&"IP: 10.251.0.1"), "{body}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("RemoteAddr: 10.251.0.2:")),
        "{body}"
    );
    assert!(body.contains("GET /hello?x=1 HTTP/1.1\r\n"), "{body}");
    assert!(
        body.contains(&format!("Host: 10.251.0.1:{port}\r\n")),
        "{body}"
    );
    assert!(body.contains("User-Agent: curl/"), "{body}");
    assert!(body.ends_with("Accept: */*\r\n\r\n"), "{body:?}");
}

/// The `cilium-lab` binary next to this test binary: the kubelet execs
/// its `internal sandbox` and `internal whoami`. It belongs to the `lab`
/// package, which depends on this one, so it must be built first
/// (`make test` builds every binary before the tests; by hand, `cargo
/// build -p lab`).
fn cilium_lab_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("cilium-lab");
    p.is_file().then_some(p)
}

/// A cgroup made for the test; its processes are killed and it is removed
/// on drop.
struct CgroupGuard(PathBuf);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        let kill = self.0.join("cgroup.kill");
        let _ = std::fs::write(&kill, "1");
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Pod namespaces of a test lab, deleted on drop.
struct PodNetnsSweep(String);

impl Drop for PodNetnsSweep {
    fn drop(&mut self) {
        for e in std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&self.0) {
                let _ = Proc::new("ip").args(["netns", "del", &name]).status();
            }
        }
    }
}

/// `GET path` on the kubelet's socket; the body.
async fn http_get(socket: &Path, path: &str) -> String {
    use http_body_util::BodyExt;
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    let (mut tx, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", "kubelet")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let resp = tx.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// A WebSocket (v5) to `target` (`exec/...?...`, `attach/...?...`) on
/// the kubelet's socket.
async fn ws_connect(
    socket: &Path,
    target: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::UnixStream> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    let mut req = format!("ws://kubelet/{target}")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v5.channel.k8s.io".parse().expect("header"),
    );
    tokio_tungstenite::client_async(req, stream)
        .await
        .expect("upgrade")
        .0
}

/// Everything a session sends: its stdout and final status.
async fn ws_read(
    mut ws: tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>,
) -> (String, serde_json::Value) {
    use futures::StreamExt;
    let (mut out, mut status) = (Vec::new(), serde_json::Value::Null);
    while let Some(Ok(m)) = ws.next().await {
        let data = m.into_data();
        match data.first() {
            Some(1) => out.extend_from_slice(&data[1..]),
            Some(3) => status = serde_json::from_slice(&data[1..]).expect("status"),
            _ => {}
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), status)
}

/// Exec in pod default/web over the kubelet's socket.
async fn ws_exec(socket: &Path, query: &str) -> (String, serde_json::Value) {
    ws_read(ws_connect(socket, &format!("exec/default/web/whoami?{query}")).await).await
}

#[test]
#[ignore = "privileged: needs root (network namespaces); run by make test"]
fn kubelet_runs_a_whoami_pod_end_to_end() {
    use api::Object;
    use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
    use std::time::{Duration, Instant};

    let Some(exe) = cilium_lab_exe() else {
        panic!("cilium-lab binary not built: run `cargo build -p lab` first");
    };
    let cg_root = Path::new("/run/cilium/cgroupv2");
    if !Path::new(PLUGINS).join("bridge").exists() || !cg_root.join("cgroup.procs").exists() {
        panic!(
            "needs {PLUGINS}/bridge and cgroup2 at {}: run scripts/setup.sh",
            cg_root.display()
        );
    }
    let lab = format!("rtt{}", std::process::id());
    let _sweep = PodNetnsSweep(format!("{lab}-pod-"));
    let node_ns = NetnsGuard::new("kn");
    let cgroup = cg_root.join(format!("{lab}-kn"));
    std::fs::create_dir_all(&cgroup).expect("cgroup");
    let _cg = CgroupGuard(cgroup.clone());
    let state = tempfile::tempdir().expect("tempdir");
    let cfg = crate::Config {
        lab: lab.clone(),
        node: "kn".into(),
        node_ip: "192.168.77.10".parse().expect("ip"),
        state_dir: state.path().join("nodes/kn"),
        cgroup: cgroup.clone(),
        cni_conf_dir: state.path().join("nodes/kn/cni/net.d"),
        cni_bin_dirs: vec![PathBuf::from(PLUGINS)],
        cni_mode: crate::CniMode::Bridge,
        self_exe: exe.clone(),
    };
    let node_dir = cfg.state_dir.clone();

    in_netns(&node_ns.path(), move || {
        block_on(async move {
            let store = store::Store::memory();
            let wait = |what: &'static str, limit: Duration| {
                let store = store.clone();
                async move {
                    let start = Instant::now();
                    loop {
                        let pod = store.get::<Pod>(Some("default"), "web").await.expect("get");
                        let done = match what {
                            "ready" => pod.as_ref().is_some_and(api::conditions::pod_is_ready),
                            _ => pod.is_none(),
                        };
                        if done {
                            return pod;
                        }
                        assert!(
                            start.elapsed() < limit,
                            "pod not {what} in {limit:?}: {pod:?}"
                        );
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            };
            let kubelet = tokio::spawn(crate::run(store.clone(), cfg.clone()));
            let pod = Pod {
                metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    name: Some("web".into()),
                    namespace: Some("default".into()),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    node_name: Some("kn".into()),
                    containers: vec![Container {
                        name: "whoami".into(),
                        image: Some("traefik/whoami".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            };
            store.create(&pod).await.expect("create pod");
            // No podCIDR yet: pending with a clear message.
            let start = Instant::now();
            loop {
                let p = store
                    .get::<Pod>(Some("default"), "web")
                    .await
                    .expect("get")
                    .expect("pod");
                let msg = p
                    .status
                    .and_then(|s| s.conditions)
                    .into_iter()
                    .flatten()
                    .find(|c| c.type_ == "PodReadyToStartContainers")
                    .and_then(|c| c.message);
                if msg
                    .as_deref()
                    .is_some_and(|m| m.contains("no CNI configuration"))
                {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "no pending message: {msg:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The control plane's part: the node's podCIDR.
            let t0 = Instant::now();
            store
                .modify::<Node>(None, "kn", |n| {
                    n.spec.get_or_insert_default().pod_cidr = Some("10.252.3.0/24".into());
                    true
                })
                .await
                .expect("set podCIDR");
            let ready = wait("ready", Duration::from_secs(10)).await.expect("pod");
            eprintln!("pod ready {:?} after podCIDR", t0.elapsed());
            let status = ready.status.expect("status");
            let ip = status.pod_ip.expect("podIP");
            assert!(ip.starts_with("10.252.3."), "{ip}");
            assert_eq!(status.phase.as_deref(), Some("Running"));
            assert_eq!(status.host_ip.as_deref(), Some("192.168.77.10"));
            let node = store
                .get::<Node>(None, "kn")
                .await
                .expect("get")
                .expect("node");
            assert_eq!(
                node.status
                    .and_then(|s| s.node_info)
                    .map(|i| i.kubelet_version)
                    .as_deref(),
                Some("v1.33.0-lab")
            );

            let uid = ready.metadata.uid.clone().expect("uid");
            let rec = SandboxRecord::load(&node_dir, "default", "web", &uid).expect("record");
            let run = |args: &[&str]| {
                let out = Proc::new(&exe)
                    .args([
                        "internal",
                        "sandbox",
                        "--target-pid",
                        &rec.pid.to_string(),
                        "--",
                    ])
                    .args(args)
                    .output()
                    .expect("run sandbox join");
                assert!(
                    out.status.success(),
                    "{args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            assert_eq!(run(&["hostname"]).trim(), "web");
            assert_eq!(
                run(&["cat", "/etc/resolv.conf"]),
                "search default.svc.cluster.local svc.cluster.local cluster.local\n\
                 nameserver 10.96.0.10\noptions ndots:5\n"
            );
            assert!(run(&["cat", "/etc/hosts"]).contains(&format!("{ip}\tweb\n")));
            let cgroup_line =
                std::fs::read_to_string(format!("/proc/{}/cgroup", rec.pid)).expect("cgroup");
            assert!(
                cgroup_line.trim().ends_with(&format!("/{lab}-kn")),
                "{cgroup_line}"
            );
            // The node (this thread's namespace) reaches the pod.
            let out = Proc::new("curl")
                .args(["-sS", "--max-time", "5", &format!("http://{ip}/")])
                .output()
                .expect("curl");
            let body = String::from_utf8_lossy(&out.stdout);
            assert!(body.starts_with("Hostname: web\n"), "{body}");
            assert!(body.contains(&format!("IP: {ip}\n")), "{body}");

            // The streaming server: logs and exec over the node's socket.
            let socket = node_dir.join(crate::SOCKET_FILE);
            let log = http_get(&socket, "/containerLogs/default/web/whoami").await;
            assert!(log.contains("Starting up on port 80"), "{log}");
            let (out, status) = ws_exec(&socket, "command=hostname&stdout=1&stderr=1").await;
            assert_eq!(
                (out.as_str(), status["status"].as_str()),
                ("web\n", Some("Success"))
            );
            let (out, status) = ws_exec(
                &socket,
                "command=sh&command=-c&command=tty%3B+exit+2&stdout=1&tty=1",
            )
            .await;
            assert!(out.starts_with("/dev/pts/"), "{out}");
            assert_eq!(status["details"]["causes"][0]["message"], "2");

            // A restarted kubelet adopts the running pod.
            kubelet.abort();
            let _ = kubelet.await;
            let kubelet = tokio::spawn(crate::run(store.clone(), cfg.clone()));
            tokio::time::sleep(Duration::from_millis(300)).await;
            let again = SandboxRecord::load(&node_dir, "default", "web", &uid).expect("record");
            assert_eq!(again.process, rec.process, "sandbox adopted, not recreated");
            assert_eq!(again.containers[0].process, rec.containers[0].process);

            // Attached to the container until it stops.
            let attached = ws_connect(&socket, "attach/default/web/whoami?stdout=1").await;
            let attached = tokio::spawn(ws_read(attached));

            // Deletion: the kubelet tears down and deletes the object.
            store
                .modify::<Pod>(Some("default"), "web", |p| {
                    p.meta_mut().deletion_timestamp = Some(crate::status::now());
                    true
                })
                .await
                .expect("mark deleted");
            wait("gone", Duration::from_secs(15)).await;
            let (_, status) = attached.await.expect("attach session");
            assert_eq!(
                status["status"], "Success",
                "attach ends with the container"
            );
            assert!(!rec.process.alive(), "sandbox process stopped");
            assert!(
                !rec.netns.as_ref().expect("netns").exists(),
                "netns deleted"
            );
            assert!(
                !pod_dir(&node_dir, "default", "web", &uid).exists(),
                "dir removed"
            );
            kubelet.abort();
        })
    });
}
