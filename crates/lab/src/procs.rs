//! Processes the lab starts (etcd, control plane, kubelets, web servers):
//! spawned inside a host's namespace and cgroup, detached from the caller,
//! logged to a file, recorded by PID and start time so that `down` ends
//! exactly the processes it started even if PIDs were reused. Also the
//! short commands the lab runs to completion ([`run`]: `ip`, `mount`).

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kubelet::sandbox::{ProcessId, SandboxArgs};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// What to start and where (kept in the record, so `restart` can start
/// the same process again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spawn {
    /// What it is (`etcd`, `control-plane`, `kubelet`, `cilium-agent`, `web`).
    pub name: String,
    /// Host (namespace) it runs in.
    pub host: String,
    /// Network namespace name; empty: the caller's (the host's).
    pub netns: String,
    /// cgroup v2 directory it joins.
    pub cgroup: PathBuf,
    /// Working directory.
    pub cwd: PathBuf,
    /// Its log file (stdout and stderr, appended).
    pub log: PathBuf,
    /// Program and arguments.
    pub argv: Vec<String>,
}

/// A process started by the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRecord {
    /// How it was started.
    #[serde(flatten)]
    pub spec: Spawn,
    /// Process ID.
    pub pid: i32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
}

/// Run a short command to completion (stdin closed); a failure carries
/// the command line and what it printed on stderr.
pub fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Start a detached process in a namespace and cgroup. It joins the cgroup
/// before it execs, so everything it forks later is in the cgroup too.
pub fn spawn(s: &Spawn) -> Result<ProcRecord> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&s.log)
        .with_context(|| format!("cannot open log {}", s.log.display()))?;
    // The sandbox helper joins the cgroup, then the namespace, then execs:
    // everything the process forks later is in the cgroup too, and it
    // shares the caller's mount namespace (so `ip netns add` inside it is
    // visible to everyone).
    let exe = std::env::current_exe().context("cannot find cilium-lab's own path")?;
    let helper = SandboxArgs {
        netns: (!s.netns.is_empty()).then(|| crate::fabric::netns_path(&s.netns)),
        cgroup: Some(s.cgroup.clone()),
        command: s.argv.clone(),
        ..Default::default()
    };
    let child = Command::new(exe)
        .args(helper.command_line())
        .current_dir(&s.cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", s.name))?;
    let pid = i32::try_from(child.id()).context("pid out of range")?;
    let id = ProcessId::of(pid).with_context(|| format!("{} exited at once", s.name))?;
    Ok(ProcRecord {
        spec: s.clone(),
        pid,
        start_time: id.start_ticks,
    })
}

impl ProcRecord {
    /// The last `n` lines of the process's log (for errors when it died),
    /// without the frames of a backtrace (they would hide its message).
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(&self.spec.log).unwrap_or_default();
        let frame = |l: &str| {
            let t = l.trim_start();
            t.starts_with("at ")
                || t.split_once(": ")
                    .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
        };
        let lines: Vec<&str> = log.lines().filter(|l| !frame(l)).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Whether the recorded process is still the one we started.
    pub fn alive(&self) -> bool {
        ProcessId {
            pid: self.pid,
            start_ticks: self.start_time,
        }
        .alive()
    }

    /// End the process: SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&self, grace: Duration) {
        if !self.alive() {
            return;
        }
        let pid = Pid::from_raw(self.pid);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.alive() {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}
