//! The lab's network: one namespace per host plus a fabric namespace whose
//! bridges are the L2 segments. Everything is created inside namespaces
//! named `<lab>-...`; the host's own namespace, links, routes and firewall
//! are never touched (links are created inside the fabric namespace and
//! their peers are moved straight into the host namespaces).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::procs;
use crate::topology::{Host, Topology};

/// Namespace of a lab host.
pub fn netns_name(lab: &str, host: &str) -> String {
    format!("{lab}-{host}")
}

/// The fabric namespace holding the segment bridges.
pub fn fabric_netns(lab: &str) -> String {
    format!("{lab}-fabric")
}

/// Path of a named namespace (as `ip netns` keeps them).
pub fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

/// Every namespace currently present whose name carries the lab's prefix
/// (hosts, fabric and pod sandboxes). Lab names contain no `-`, so the
/// prefix `<lab>-` never matches another lab.
pub fn lab_namespaces(lab: &str) -> Vec<String> {
    let prefix = format!("{lab}-");
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    names
}

/// Run `ip` with arguments; the error carries ip's own message.
fn ip(args: &[&str]) -> Result<()> {
    procs::run("ip", args)
}

/// Run a batch of `ip` commands inside one namespace.
fn ip_batch(netns: &str, lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut child = Command::new("ip")
        .args(["-n", netns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run ip (iproute2)")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(lines.join("\n").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "ip -n {netns} -batch: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Set sysctls inside a namespace (`/proc/sys/net` is per namespace).
fn sysctls(netns: &str, settings: &[(&str, &str)]) -> Result<()> {
    let mut args = vec!["netns", "exec", netns, "sysctl", "-q", "-w"];
    let kv: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    args.extend(kv.iter().map(String::as_str));
    ip(&args)
}

/// Create every namespace, segment, link, address and route of the
/// topology. Fails on the first error; the caller tears down.
pub fn build(lab: &str, topo: &Topology) -> Result<()> {
    let fabric = fabric_netns(lab);
    ip(&["netns", "add", &fabric])?;
    for h in &topo.hosts {
        ip(&["netns", "add", &netns_name(lab, &h.name)])?;
    }

    // Segments and the host-side veths, created inside the fabric namespace.
    let mut lines = vec!["link set lo up".to_string()];
    for (i, seg) in topo.segments.iter().enumerate() {
        let br = format!("br{i}");
        lines.push(format!("link add {br} type bridge"));
        lines.push(format!("link set {br} up"));
        let _ = seg;
    }
    for (hi, h) in topo.hosts.iter().enumerate() {
        for (ii, nic) in h.interfaces.iter().enumerate() {
            let seg = topo
                .segments
                .iter()
                .position(|s| *s == nic.segment)
                .expect("validated segment");
            let port = format!("h{hi}i{ii}");
            lines.push(format!(
                "link add {port} type veth peer name {} netns {}",
                nic.name,
                netns_name(lab, &h.name)
            ));
            lines.push(format!("link set {port} master br{seg} up"));
        }
    }
    ip_batch(&fabric, &lines)?;
    sysctls(&fabric, &[("net.ipv6.conf.all.disable_ipv6", "1")])?;

    for h in &topo.hosts {
        configure_host(lab, h)?;
    }
    Ok(())
}

fn configure_host(lab: &str, h: &Host) -> Result<()> {
    let ns = netns_name(lab, &h.name);
    let mut lines = vec!["link set lo up".to_string()];
    for nic in &h.interfaces {
        lines.push(format!("addr add {} dev {}", nic.address, nic.name));
        lines.push(format!("link set {} up", nic.name));
    }
    for l in &h.loops {
        // No dummy driver here: a veth pair whose far end stays down-stream
        // inside the same namespace stands in for a dummy interface.
        let peer = format!("{}p", l.name);
        lines.push(format!("link add {} type veth peer name {peer}", l.name));
        lines.push(format!("addr add {} dev {}", l.address, l.name));
        lines.push(format!("link set {peer} up"));
        lines.push(format!("link set {} up", l.name));
    }
    for r in &h.routes {
        lines.push(format!("route add {} via {} proto static", r.dst, r.via));
    }
    ip_batch(&ns, &lines)?;
    let forwarding = if h.forwarding || h.is_node() {
        "1"
    } else {
        "0"
    };
    sysctls(
        &ns,
        &[
            ("net.ipv4.ip_forward", forwarding),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
            ("net.ipv4.ping_group_range", "0 2147483647"),
        ],
    )
}

/// Delete every namespace carrying the lab's prefix (hosts, fabric, pod
/// sandboxes). Deleting a namespace destroys the links inside it.
pub fn teardown(lab: &str) -> Vec<String> {
    let mut errors = Vec::new();
    for ns in lab_namespaces(lab) {
        if let Err(e) = ip(&["netns", "del", &ns]) {
            errors.push(e.to_string());
        }
    }
    errors
}
