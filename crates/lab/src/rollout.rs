//! Changing a running lab's Cilium: `config view|set|unset` edits the
//! cluster's `cilium-config` (checked first, then rewriting every agent's
//! and operator's config directory, like editing the ConfigMap), and `rollout restart
//! ds/cilium` (or `deployment/cilium-operator`) restarts the agents one
//! node at a time, waiting for each to serve again, like a DaemonSet
//! rolling update.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::cilium::{self, AgentPaths};
use crate::lab::{LabPaths, LabState};
use crate::procs::ProcRecord;

/// `config view`: the effective config of a cluster, `key value` lines
/// sorted by key like `cilium config view`.
pub fn view(state: &LabState, cluster: Option<&str>) -> Result<String> {
    let cfg = cilium::cluster_config(state.cluster(cluster)?, &state.config);
    let width = cfg.keys().map(String::len).max().unwrap_or(0);
    Ok(cfg
        .iter()
        .map(|(k, v)| format!("{k:<width$}   {v}\n"))
        .collect())
}

/// `config set KEY=VALUE...` / `config unset KEY...`: check the resulting
/// key set as the agents and the operator will, then record the change
/// and rewrite the config directories; a refused change writes nothing.
/// Running agents pick it up when they restart (`rollout restart
/// ds/cilium`).
pub fn edit(lab: &str, set: &BTreeMap<String, String>, unset: &[String]) -> Result<String> {
    let mut state = LabState::load(lab)?;
    for k in unset {
        if state.config.remove(k).is_none() {
            bail!("{k} is not set (lab defaults cannot be unset, only overridden)");
        }
    }
    state
        .config
        .extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
    cilium::check_config(&state.topology, &state.config)?;
    let paths = LabPaths::new(lab);
    for c in &state.topology.clusters {
        let cfg = cilium::cluster_config(c, &state.config);
        for h in state.topology.cluster_nodes(&c.name) {
            cilium::write_agent_config(&paths, &h.name, &cfg)?;
        }
        cilium::write_config_dir(&cilium::operator_config_dir(&paths, &c.name), &cfg)?;
    }
    state.save()?;
    Ok(
        "configmap/cilium-config edited; apply it with `cilium-lab rollout restart ds/cilium`"
            .into(),
    )
}

/// `rollout restart ds/cilium|deployment/cilium-operator`.
pub async fn restart(lab: &str, target: &str, timeout: Duration) -> Result<Vec<String>> {
    let name = match target {
        "ds/cilium" | "daemonset/cilium" | "daemonset.apps/cilium" => "cilium-agent",
        "deployment/cilium-operator" | "deploy/cilium-operator" => "cilium-operator",
        _ => {
            bail!("unknown rollout target {target:?} (use ds/cilium or deployment/cilium-operator)")
        }
    };
    let state = LabState::load(lab)?;
    let paths = LabPaths::new(lab);
    let mut lines = Vec::new();
    for host in state
        .processes
        .iter()
        .filter(|p| p.spec.name == name)
        .map(|p| p.spec.host.clone())
    {
        let (line, new) = crate::lab::restart(lab, &format!("{host}/{name}"))?;
        if name == "cilium-agent" {
            wait_serving(&new, AgentPaths::new(&paths, &host).socket, timeout).await?;
        }
        lines.push(line);
    }
    if lines.is_empty() {
        bail!("lab {lab:?} runs no {name}");
    }
    lines.push(format!("{target} restarted"));
    Ok(lines)
}

/// Wait until a restarted agent answers `/v1/healthz`; fail at once, with
/// the end of its log, if it exits (e.g. a rejected config).
async fn wait_serving(p: &ProcRecord, socket: std::path::PathBuf, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let client = agentclient::Client::new(&socket).with_timeout(Duration::from_secs(2));
    loop {
        if !p.alive() {
            let tail = p.log_tail(10);
            bail!(
                "cilium-agent on {} exited after the restart:\n{tail}",
                p.spec.host
            );
        }
        let c = client.clone();
        let healthy =
            tokio::task::spawn_blocking(move || c.get::<agentclient::Health>("/v1/healthz"))
                .await?
                .is_ok_and(|h| h.status == "ok");
        if healthy {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {timeout:?} waiting for cilium-agent on {} to serve",
                p.spec.host
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
