//! Runs the built `cilium-cni` binary as a container runtime would, against
//! a fake agent: a unix socket server thread answering canned JSON (with
//! chunked bodies, as the real axum/hyper agent sends them).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// One request the fake agent received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    body: Value,
}

/// A fake agent answering every request with `reply(method, path)`.
struct FakeAgent {
    dir: tempfile::TempDir,
    socket: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
}

type Reply = fn(&str, &str) -> (u16, Option<Value>);

impl FakeAgent {
    fn start(reply: Reply) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("cilium.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(&stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut parts = request_line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let path = parts.next().unwrap_or_default().to_string();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                log.lock().expect("lock").push(Seen {
                    method: method.clone(),
                    path: path.clone(),
                    body,
                });
                let (status, answer) = reply(&method, &path);
                let wire = match answer {
                    None => format!("HTTP/1.1 {status} No Content\r\nconnection: close\r\n\r\n"),
                    Some(v) => {
                        let text = v.to_string();
                        format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                             transfer-encoding: chunked\r\nconnection: close\r\n\r\n\
                             {:x}\r\n{text}\r\n0\r\n\r\n",
                            text.len()
                        )
                    }
                };
                let _ = (&stream).write_all(wire.as_bytes());
            }
        });
        Self { dir, socket, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    fn conf(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": "cilium",
            "type": "cilium-cni",
            "socket-path": self.socket,
            "mtu": 1450,
        })
    }
}

fn add_response() -> Value {
    json!({
        "endpoint_id": 643,
        "host_ifname": "lxc0123456789ab",
        "host_mac": "2e:fa:2d:bc:91:f2",
        "ifname": "eth0",
        "mac": "5a:4f:5a:d6:f1:93",
        "ipv4": "172.20.0.82",
        "prefix_len": 32,
        "gateway": "172.20.0.172",
        "routes": [{"dst": "0.0.0.0/0", "gw": "172.20.0.172"}],
        "mtu": 1450
    })
}

/// The agent as it should be: every call succeeds.
fn healthy(method: &str, path: &str) -> (u16, Option<Value>) {
    match (method, path) {
        ("POST", "/v1/cni/add") => (200, Some(add_response())),
        ("POST", "/v1/cni/del" | "/v1/cni/check") => (204, None),
        ("POST", "/v1/cni/gc") => (200, Some(json!({"removed": ["stale1"]}))),
        ("GET", "/v1/healthz") => (200, Some(json!({"status": "ok", "node": "k8s-ctr"}))),
        _ => (404, None),
    }
}

/// An agent that refuses everything with its own CNI codes.
fn failing(_: &str, path: &str) -> (u16, Option<Value>) {
    match path {
        "/v1/cni/add" => (
            500,
            Some(json!({"code": 104, "message": "cannot create veth: file exists"})),
        ),
        "/v1/cni/check" => (
            404,
            Some(json!({"code": 3, "message": "no endpoint for container c1"})),
        ),
        "/v1/healthz" => (200, Some(json!({"status": "starting", "node": "k8s-ctr"}))),
        _ => (500, None),
    }
}

struct Run {
    stdout: String,
    code: i32,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    fn error_code(&self) -> u64 {
        assert_ne!(self.code, 0, "expected a failure, got {:?}", self.stdout);
        let v = self.json();
        assert!(v["msg"].is_string(), "{v}");
        v["code"]
            .as_u64()
            .unwrap_or_else(|| panic!("no code in {v}"))
    }
}

fn attach_env(command: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", command.to_string()),
        ("CNI_CONTAINERID", "c1".to_string()),
        ("CNI_NETNS", "/var/run/netns/pod1".to_string()),
        ("CNI_IFNAME", "eth0".to_string()),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=webpod-1;K8S_POD_UID=uid-1"
                .to_string(),
        ),
        ("CNI_PATH", "/opt/cni/bin".to_string()),
    ]
}

fn cni(env: &[(&str, String)], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cilium-cni"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn cilium-cni");
    // A plugin that rejects its environment exits without reading stdin:
    // the write may then meet a closed pipe, which is not an error here.
    if let Err(e) = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
    {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    let out = child.wait_with_output().expect("wait");
    Run {
        stdout: String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string(),
        code: out.status.code().expect("exit code"),
    }
}

#[test]
fn add_forwards_to_the_agent_and_prints_the_result() {
    let agent = FakeAgent::start(healthy);
    let run = cni(&attach_env("ADD"), &agent.conf("1.1.0").to_string());
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        run.json(),
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [
                {"name": "lxc0123456789ab", "mac": "2e:fa:2d:bc:91:f2"},
                {"name": "eth0", "mac": "5a:4f:5a:d6:f1:93", "mtu": 1450,
                 "sandbox": "/var/run/netns/pod1"}
            ],
            "ips": [{"address": "172.20.0.82/32", "gateway": "172.20.0.172", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "172.20.0.172"}],
            "dns": {}
        })
    );
    let seen = agent.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/v1/cni/add")
    );
    assert_eq!(
        seen[0].body,
        json!({
            "container_id": "c1", "netns": "/var/run/netns/pod1", "ifname": "eth0",
            "pod_namespace": "default", "pod_name": "webpod-1", "pod_uid": "uid-1", "mtu": 1450
        })
    );
}

#[test]
fn add_result_follows_old_versions() {
    let agent = FakeAgent::start(healthy);
    let run = cni(&attach_env("ADD"), &agent.conf("0.3.1").to_string());
    assert_eq!(run.code, 0, "{}", run.stdout);
    let v = run.json();
    assert_eq!(v["cniVersion"], "0.3.1");
    assert_eq!(v["ips"][0]["version"], "4");
    assert!(v["interfaces"][1].get("mtu").is_none(), "{v}");
}

#[test]
fn del_is_forwarded_without_netns() {
    let agent = FakeAgent::start(healthy);
    let env: Vec<_> = attach_env("DEL")
        .into_iter()
        .filter(|(k, _)| *k != "CNI_NETNS")
        .collect();
    let run = cni(&env, &agent.conf("1.0.0").to_string());
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    let seen = agent.seen();
    assert_eq!(seen[0].path, "/v1/cni/del");
    assert_eq!(
        seen[0].body,
        json!({"container_id": "c1", "netns": "", "ifname": "eth0"})
    );
}

#[test]
fn check_with_prev_result() {
    let agent = FakeAgent::start(healthy);
    let mut conf = agent.conf("1.0.0");
    conf["prevResult"] = json!({"cniVersion": "1.0.0", "ips": [{"address": "172.20.0.82/32"}]});
    let run = cni(&attach_env("CHECK"), &conf.to_string());
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    assert_eq!(agent.seen()[0].path, "/v1/cni/check");
    let run = cni(&attach_env("CHECK"), &agent.conf("1.0.0").to_string());
    assert_eq!(run.error_code(), 7);
}

#[test]
fn status_reports_agent_health() {
    let agent = FakeAgent::start(healthy);
    let env = [("CNI_COMMAND", "STATUS".to_string())];
    let run = cni(&env, &agent.conf("1.1.0").to_string());
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    assert_eq!(agent.seen()[0].path, "/v1/healthz");

    let starting = FakeAgent::start(failing);
    let run = cni(&env, &starting.conf("1.1.0").to_string());
    assert_eq!(run.error_code(), 50);

    let down = unreachable_conf("1.1.0");
    assert_eq!(cni(&env, &down.1.to_string()).error_code(), 50);
}

#[test]
fn gc_sends_the_valid_attachments() {
    let agent = FakeAgent::start(healthy);
    let mut conf = agent.conf("1.1.0");
    conf["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
    let run = cni(&[("CNI_COMMAND", "GC".to_string())], &conf.to_string());
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    let seen = agent.seen();
    assert_eq!(seen[0].path, "/v1/cni/gc");
    assert_eq!(
        seen[0].body,
        json!({"valid": [{"container_id": "c1", "ifname": "eth0"}]})
    );
}

#[test]
fn version_lists_supported_versions() {
    let run = cni(
        &[("CNI_COMMAND", "VERSION".to_string())],
        r#"{"cniVersion":"1.0.0"}"#,
    );
    assert_eq!(run.code, 0);
    assert_eq!(
        run.json(),
        json!({"cniVersion": "1.0.0",
               "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
}

#[test]
fn malformed_json_is_code_6() {
    let run = cni(&attach_env("ADD"), "{\"cniVersion\": \"1.0.0\",");
    assert_eq!(run.error_code(), 6);
}

#[test]
fn missing_netns_is_code_4() {
    let agent = FakeAgent::start(healthy);
    let env: Vec<_> = attach_env("ADD")
        .into_iter()
        .filter(|(k, _)| *k != "CNI_NETNS")
        .collect();
    let run = cni(&env, &agent.conf("1.0.0").to_string());
    assert_eq!(run.error_code(), 4);
    assert_eq!(run.json()["cniVersion"], "1.0.0");
    assert!(agent.seen().is_empty(), "nothing must reach the agent");
}

#[test]
fn missing_or_bad_command_is_code_4() {
    assert_eq!(cni(&[], "{}").error_code(), 4);
    assert_eq!(
        cni(&[("CNI_COMMAND", "UP".to_string())], "{}").error_code(),
        4
    );
}

#[test]
fn unsupported_version_is_code_1() {
    let agent = FakeAgent::start(healthy);
    let run = cni(&attach_env("ADD"), &agent.conf("0.2.0").to_string());
    assert_eq!(run.error_code(), 1);
    assert!(agent.seen().is_empty());
}

/// A configuration pointing at a socket nobody listens on.
fn unreachable_conf(version: &str) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("absent.sock");
    let conf = json!({"cniVersion": version, "name": "cilium", "type": "cilium-cni",
                      "socket-path": socket});
    (dir, conf)
}

#[test]
fn unreachable_agent_is_try_again_later() {
    let (_dir, conf) = unreachable_conf("1.0.0");
    for command in ["ADD", "DEL", "CHECK"] {
        let mut conf = conf.clone();
        conf["prevResult"] = json!({});
        let run = cni(&attach_env(command), &conf.to_string());
        assert_eq!(run.error_code(), 11, "{command}");
        let v = run.json();
        assert!(
            v["msg"].as_str().is_some_and(|m| m.contains("absent.sock")),
            "{v}"
        );
    }
}

#[test]
fn agent_errors_pass_through() {
    let agent = FakeAgent::start(failing);
    let run = cni(&attach_env("ADD"), &agent.conf("1.0.0").to_string());
    assert_eq!(run.error_code(), 104);
    assert_eq!(run.json()["msg"], "cannot create veth: file exists");
    let mut conf = agent.conf("1.0.0");
    conf["prevResult"] = json!({});
    assert_eq!(cni(&attach_env("CHECK"), &conf.to_string()).error_code(), 3);
    // An error without a JSON body still fails with a code.
    assert_eq!(
        cni(&attach_env("DEL"), &agent.conf("1.0.0").to_string()).error_code(),
        100
    );
}

#[test]
fn debug_log_goes_to_the_log_file() {
    let agent = FakeAgent::start(healthy);
    let log = agent.dir.path().join("cni.log");
    let mut conf = agent.conf("1.0.0");
    conf["enable-debug"] = json!(true);
    conf["log-file"] = json!(log);
    let run = cni(&attach_env("ADD"), &conf.to_string());
    assert_eq!(run.code, 0, "{}", run.stdout);
    let text = std::fs::read_to_string(Path::new(&log)).expect("log file");
    assert!(text.contains("ADD network=cilium container=c1"), "{text}");
    assert!(text.contains("ADD finished in"), "{text}");
}
