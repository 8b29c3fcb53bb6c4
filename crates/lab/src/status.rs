//! `status` and the summary `up` prints: the lab's processes, its nodes
//! and pods per cluster, and what to try next.

use std::fmt::Write;

use anyhow::Result;

use crate::cli::get::{GetRequest, Output, get};
use crate::cli::{resolve_kind, table::render};
use crate::lab::{LabPaths, LabState};

/// The lab's processes and, per cluster, its nodes and pods.
pub async fn report(state: &LabState, cluster: Option<&str>) -> Result<String> {
    let mut out = String::new();
    writeln!(
        out,
        "Lab {:?}: topology {}, {} hosts, state in {}",
        state.lab,
        state.topology.name,
        state.topology.hosts.len(),
        LabPaths::new(&state.lab).root().display()
    )?;
    if !state.config.is_empty() {
        let cfg: Vec<String> = state
            .config
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(out, "Config: {}", cfg.join(" "))?;
    }
    let rows: Vec<Vec<String>> = state
        .processes
        .iter()
        .map(|p| {
            vec![
                p.spec.host.clone(),
                p.spec.name.clone(),
                p.pid.to_string(),
                if p.alive() { "running" } else { "DEAD" }.to_string(),
            ]
        })
        .collect();
    writeln!(out)?;
    out.push_str(&render(&["HOST", "PROCESS", "PID", "STATE"], &rows));
    for c in &state.topology.clusters {
        if cluster.is_some_and(|x| x != c.name) {
            continue;
        }
        writeln!(out, "\nCluster {:?}:", c.name)?;
        match state.connect(Some(&c.name)).await {
            Err(e) => writeln!(out, "  store unreachable: {e:#}")?,
            Ok(store) => {
                for kind in ["nodes", "pods"] {
                    let req = GetRequest {
                        kind: resolve_kind(kind)?,
                        names: &[],
                        namespace: None,
                        all_namespaces: true,
                        selector: None,
                        output: Some(Output::Wide),
                    };
                    match get(&store, &req).await {
                        Ok(t) => out.push_str(&t),
                        Err(e) => writeln!(out, "  cannot list {kind}: {e:#}")?,
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Suggestions printed after `up`.
pub fn next_steps(state: &LabState) -> String {
    // The command as the user invoked it (`target/release/cilium-lab`).
    let exe = std::env::args()
        .next()
        .unwrap_or_else(|| "cilium-lab".into());
    let lab = if state.lab == "lab" {
        exe
    } else {
        format!("{exe} --name {}", state.lab)
    };
    format!(
        "\nTry:\n  \
         {lab} get pods -o wide\n  \
         {lab} exec curl-pod -- curl -s webpod-IP      (a webpod's IP from the line above)\n  \
         {lab} exec k8s-w0 -- curl -s 10.10.1.200        (the router's web server)\n  \
         {lab} exec k8s-ctr -- cilium-dbg status          (that node's agent)\n  \
         {lab} scale deployment webpod --replicas 0\n  \
         {lab} down\n"
    )
}
