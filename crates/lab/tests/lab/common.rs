//! Helpers of the lab integration tests: a lab torn down on drop, running
//! `cilium-lab` verbs, polling with deadlines, leftover checks.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_cilium-lab");
pub const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");

/// A lab that is torn down on drop.
pub struct Lab {
    pub name: String,
}

impl Lab {
    pub fn up(suffix: &str, args: &[&str]) -> Lab {
        let name = format!("t{}{suffix}", std::process::id() % 100_000);
        let lab = Lab { name };
        let out = lab.run(&[&["up"], args].concat());
        assert!(
            out.status.success(),
            "up failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--name")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("run cilium-lab")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cilium-lab {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run and require failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "cilium-lab {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `cilium-dbg ARGS` on a node (its agent); stdout.
    pub fn dbg(&self, node: &str, args: &[&str]) -> String {
        self.ok(&[&["exec", node, "--", "cilium-dbg"], args].concat())
    }

    /// One ping from a node or pod must be answered.
    pub fn ping(&self, from: &str, ip: &str) {
        let out = self.ok(&["exec", from, "--", "ping", "-c", "1", "-W", "2", ip]);
        assert!(out.contains("1 received"), "ping {from} -> {ip}: {out}");
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(&[args, &["-o", "json"]].concat());
        serde_json::from_str(&text).expect("valid JSON from get -o json")
    }

    pub fn items(&self, kind: &str) -> Vec<Value> {
        let v = self.json(&["get", kind]);
        match v.get("items") {
            Some(items) => items.as_array().expect("items").clone(),
            None => vec![v],
        }
    }

    /// The lab's kubeconfig.
    pub fn kubeconfig(&self) -> String {
        format!("/run/cilium-lab/{}/kubeconfig", self.name)
    }

    /// `PROGRAM ARGS` with the environment of kubectl against the lab's
    /// API server (its kubeconfig, a discovery cache of its own).
    pub fn kube_env(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env(
                "KUBECACHEDIR",
                format!("/run/cilium-lab/{}/kube-cache", self.name),
            )
            .stdin(Stdio::null());
        c
    }

    /// Real `kubectl ARGS` against the lab's API server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kube_env("kubectl", args)
            .output()
            .expect("run kubectl")
    }

    /// `kubectl ARGS` that must succeed; stdout.
    pub fn kube(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn apply(&self, text: &str) -> Output {
        let mut child = Command::new(BIN)
            .args(["--name", &self.name, "apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn apply");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.run(&["down"]);
        if !out.status.success() && !std::thread::panicking() {
            panic!("down failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

pub fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// Poll until `f` returns Some, panicking with `what` after `timeout`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Nothing of the lab remains: namespaces, cgroups, state, pins.
pub fn assert_gone(name: &str) {
    let prefix = format!("{name}-");
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    for dir in [
        format!("/run/cilium-lab/{name}"),
        format!("/run/cilium/cgroupv2/{name}"),
        format!("/sys/fs/bpf/{name}"),
    ] {
        assert!(!Path::new(&dir).exists(), "{dir} left behind");
    }
}

/// A process exists and is not a zombie (an orphaned daemon's zombie
/// lingers until whoever adopted it reaps it).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s[s.rfind(')').unwrap() + 2..].chars().next();
            state != Some('Z')
        })
        .unwrap_or(false)
}

/// The recorded PID of lab process `name` on `host`.
pub fn pid_of(lab: &Lab, host: &str, name: &str) -> i32 {
    let text =
        std::fs::read_to_string(format!("/run/cilium-lab/{}/lab.json", lab.name)).expect("state");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name && p["host"] == host)
        .and_then(|p| p["pid"].as_i64())
        .unwrap_or_else(|| panic!("no {host}/{name} recorded")) as i32
}

pub fn recorded_pids(name: &str) -> Vec<i32> {
    let text = std::fs::read_to_string(format!("/run/cilium-lab/{name}/lab.json")).expect("state");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_i64().unwrap() as i32)
        .collect()
}
