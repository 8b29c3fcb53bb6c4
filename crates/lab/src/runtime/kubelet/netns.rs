//! Named network namespaces of pod sandboxes (`/run/netns/<name>`),
//! created and deleted with iproute2's `ip netns` so they look like any
//! other named namespace (`ip netns list`, `ip netns exec`, `down`).
//!
//! The kubelet may run in a private mount namespace (`ip netns exec`
//! makes one): a bind mount made there would be invisible to the host.
//! So `ip netns` runs in the mount namespace of PID 1 (`nsenter`) when
//! ours differs; the mount propagates into ours through the shared
//! `/run/netns` mount, which is checked.

use std::path::PathBuf;

use anyhow::Context;
use nix::sys::statfs::{NSFS_MAGIC, statfs};

/// Directory of named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Path of a named network namespace.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

/// Whether this process's mount namespace is PID 1's.
fn in_init_mount_ns() -> bool {
    let link = |p: &str| std::fs::read_link(p).ok();
    let (me, init) = (link("/proc/self/ns/mnt"), link("/proc/1/ns/mnt"));
    me.is_none() || init.is_none() || me == init
}

async fn ip_netns(args: &[&str]) -> anyhow::Result<()> {
    let mut cmd = if in_init_mount_ns() {
        tokio::process::Command::new("ip")
    } else {
        let mut c = tokio::process::Command::new("nsenter");
        c.arg("--mount=/proc/1/ns/mnt").arg("--").arg("ip");
        c
    };
    let out = cmd
        .arg("netns")
        .args(args)
        .output()
        .await
        .context("cannot execute ip")?;
    anyhow::ensure!(
        out.status.success(),
        "ip netns {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Whether `name` is a mounted network namespace in our mount namespace.
fn is_netns(name: &str) -> bool {
    statfs(&path(name)).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// Create a fresh namespace `name` (a leftover of the same name is deleted
/// first); returns its path.
pub async fn add(name: &str) -> anyhow::Result<PathBuf> {
    let p = path(name);
    if p.exists() {
        del(name).await;
    }
    ip_netns(&["add", name]).await?;
    anyhow::ensure!(
        is_netns(name),
        "network namespace {} is not visible to the kubelet (its mount namespace does not receive /run/netns mounts)",
        p.display()
    );
    Ok(p)
}

/// Delete namespace `name` if it exists (errors are logged).
pub async fn del(name: &str) {
    if !path(name).exists() {
        return;
    }
    if let Err(e) = ip_netns(&["del", name]).await {
        tracing::warn!(netns = name, error = %e, "cannot delete network namespace");
    }
}
