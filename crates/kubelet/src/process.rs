//! Processes of pod sandboxes: spawning through the sandbox helper,
//! waiting for exec and exit, stopping with a grace period, readiness
//! probes. Every process is identified by [`ProcessId`] (PID + start
//! time) so a reused PID is never signalled. No decisions: when to start
//! or stop is the pod worker's.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::time::{Instant, sleep, timeout};

use crate::Error;
use crate::error::Context;
use crate::sandbox::{ProcessId, SandboxArgs, cmdline};

/// What the sandbox process runs: it only holds the namespaces.
pub const PAUSE_COMMAND: [&str; 2] = ["sleep", "infinity"];

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Exit code (unknown for adopted processes).
    pub code: Option<i32>,
    /// Killing signal.
    pub signal: Option<i32>,
}

impl Exit {
    /// The code Kubernetes shows (128 + signal when killed).
    pub fn exit_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 0,
        }
    }
}

/// A process we wait for: our child, or one adopted after a restart.
#[derive(Debug)]
pub enum Proc {
    /// Spawned by this kubelet.
    Child(tokio::process::Child, ProcessId),
    /// Found running at start (child of a previous kubelet).
    Adopted(ProcessId),
}

impl Proc {
    /// Identity.
    pub fn id(&self) -> ProcessId {
        match self {
            Proc::Child(_, p) | Proc::Adopted(p) => *p,
        }
    }

    /// Wait until the process ends.
    pub async fn wait(&mut self) -> Exit {
        match self {
            Proc::Child(child, _) => match child.wait().await {
                Ok(st) => Exit {
                    code: st.code(),
                    signal: st.signal(),
                },
                Err(_) => Exit {
                    code: None,
                    signal: None,
                },
            },
            Proc::Adopted(p) => {
                // Not our child: no exit notification, poll its identity.
                while p.alive() {
                    sleep(Duration::from_millis(250)).await;
                }
                Exit {
                    code: None,
                    signal: None,
                }
            }
        }
    }
}

/// Spawn the sandbox helper (`self_exe internal sandbox ARGS`) in its own
/// process group, output appended to `log`.
pub fn spawn_helper(
    self_exe: &Path,
    args: &SandboxArgs,
    log: &Path,
    env: &[(String, String)],
) -> Result<Proc, Error> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let child = tokio::process::Command::new(self_exe)
        .args(args.command_line())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(
            out.try_clone()
                .with_context(|| format!("cannot open {}", log.display()))?,
        )
        .stderr(out)
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .with_context(|| format!("cannot execute {}", self_exe.display()))?;
    let pid = child.id().context("child exited before its PID was read")? as i32;
    let id = ProcessId::of(pid).context("child vanished right after spawn")?;
    Ok(Proc::Child(child, id))
}

/// Wait until `proc` has exec'd `expected` (the helper's last step, so its
/// namespaces are in place), or fail if it exits or `limit` passes.
pub async fn wait_exec(proc: &mut Proc, expected: &[String], limit: Duration) -> Result<(), Error> {
    let id = proc.id();
    let deadline = Instant::now() + limit;
    loop {
        if cmdline(id.pid).as_deref() == Some(expected) {
            return Ok(());
        }
        if !id.alive() {
            let exit = proc.wait().await;
            return Err(Error::Failed(format!(
                "sandbox helper exited with code {}",
                exit.exit_code()
            )));
        }
        if Instant::now() >= deadline {
            return Err(Error::Failed(format!(
                "sandbox helper did not start {expected:?} within {limit:?}"
            )));
        }
        sleep(Duration::from_millis(2)).await;
    }
}

/// SIGTERM the process groups of `procs`, wait up to `grace` for them to
/// end, then SIGKILL what is left.
pub async fn stop(procs: &[ProcessId], grace: Duration) {
    let signal_all = |sig: Signal| {
        for p in procs.iter().filter(|p| p.alive()) {
            if let Err(e) = killpg(Pid::from_raw(p.pid), sig) {
                tracing::debug!(pid = p.pid, signal = %sig, error = %e, "kill failed");
            }
        }
    };
    signal_all(Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while procs.iter().any(ProcessId::alive) && Instant::now() < deadline {
        sleep(Duration::from_millis(50)).await;
    }
    if procs.iter().any(ProcessId::alive) {
        signal_all(Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while procs.iter().any(ProcessId::alive) && Instant::now() < deadline {
            sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Poll a TCP connect to `addr` until it succeeds: every 20 ms for the
/// first 10 s, then every second.
pub async fn probe_tcp(addr: SocketAddr) {
    let start = Instant::now();
    loop {
        if let Ok(Ok(_)) = timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            return;
        }
        let interval = if start.elapsed() < Duration::from_secs(10) {
            Duration::from_millis(20)
        } else {
            Duration::from_secs(1)
        };
        sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_like_a_shell() {
        assert_eq!(
            Exit {
                code: None,
                signal: Some(9)
            }
            .exit_code(),
            137
        );
    }
}
