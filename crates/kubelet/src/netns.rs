//! Named network namespaces of pod sandboxes (`/run/netns/<name>`),
//! created and deleted with iproute2's `ip netns` so they look like any
//! other named namespace (`ip netns list`, `ip netns exec`, `down`).
//! The kubelet shares the host's mount namespace (the lab starts it with
//! the sandbox helper, which only joins the node's network namespace), so
//! the bind mounts `ip netns add` makes are visible to everyone. Only the
//! pods' own names (`<lab>-pod-*`) pass through here; no other namespace
//! is ever created or deleted.

use std::path::PathBuf;

use nix::sys::statfs::{NSFS_MAGIC, statfs};

use crate::Error;
use crate::error::Context;

/// Directory of named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Path of a named network namespace.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

async fn ip_netns(args: &[&str]) -> Result<(), Error> {
    let mut cmd = tokio::process::Command::new("ip");
    let out = cmd
        .arg("netns")
        .args(args)
        .output()
        .await
        .context("cannot execute ip")?;
    if !out.status.success() {
        return Err(Error::Failed(format!(
            "ip netns {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Whether `name` is a mounted network namespace in our mount namespace.
fn is_netns(name: &str) -> bool {
    statfs(&path(name)).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// Create a fresh namespace `name` (a leftover of the same name is deleted
/// first); returns its path.
pub async fn add(name: &str) -> Result<PathBuf, Error> {
    let p = path(name);
    if p.exists() {
        del(name).await;
    }
    ip_netns(&["add", name]).await?;
    if !is_netns(name) {
        return Err(Error::Failed(format!(
            "network namespace {} is not visible to the kubelet (its mount namespace does not receive /run/netns mounts)",
            p.display()
        )));
    }
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
