//! Cilium in the lab: the `cilium-config` every agent and operator of a
//! cluster gets (the seeds' later labs by default, `--config KEY=VALUE`
//! on top), checked by `ciliumconfig` as the agents and the operator will
//! check it and only then written as a mounted-ConfigMap-like directory
//! (one file per key), and the command lines of `cilium-operator` and
//! `cilium-agent`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::lab::LabPaths;
use crate::topology::{ClusterSpec, Host, Topology};

/// Which CNI the lab's nodes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Cni {
    /// Our agent and `cilium-cni` (the default).
    #[default]
    Cilium,
    /// Debian's reference `bridge` + `host-local` plugins, no agents.
    Bridge,
}

/// The effective `cilium-config` of a cluster: the lab defaults (the
/// seeds' later labs), then the user's keys. With `ipam: kubernetes` the
/// native routing CIDR defaults to the cluster's Node podCIDR range; with
/// another routing mode the native-routing defaults are left out.
pub fn cluster_config(
    cluster: &ClusterSpec,
    user: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let kubernetes_ipam = user.get("ipam").map(String::as_str) == Some("kubernetes");
    let native_cidr = if kubernetes_ipam {
        cluster.pod_cidr
    } else {
        cluster.cluster_pool_cidr
    };
    let mut cfg: BTreeMap<String, String> = [
        ("ipam", "cluster-pool".to_string()),
        (
            "cluster-pool-ipv4-cidr",
            cluster.cluster_pool_cidr.to_string(),
        ),
        ("cluster-pool-ipv4-mask-size", "24".into()),
        ("routing-mode", "native".into()),
        ("ipv4-native-routing-cidr", native_cidr.to_string()),
        ("auto-direct-node-routes", "true".into()),
        ("prometheus-serve-addr", ":9962".into()),
        ("cluster-name", cluster.name.clone()),
        ("cluster-id", cluster.id.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if user.get("routing-mode").is_some_and(|m| m != "native") {
        cfg.remove("ipv4-native-routing-cidr");
        cfg.remove("auto-direct-node-routes");
    }
    cfg.extend(user.iter().map(|(k, v)| (k.clone(), v.clone())));
    cfg
}

/// Check the `cilium-config` every cluster of `topology` gets with the
/// user's keys, as its agents and operator will when they start; done
/// before anything is written, so a refused key changes nothing.
pub fn check_config(topology: &Topology, user: &BTreeMap<String, String>) -> Result<()> {
    for c in &topology.clusters {
        ciliumconfig::validate(&cluster_config(c, user)).context("invalid configuration")?;
    }
    Ok(())
}

/// Write a config directory (one file per key), replacing an old one.
pub fn write_config_dir(dir: &Path, cfg: &BTreeMap<String, String>) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    for (k, v) in cfg {
        if k.contains('/') || k.starts_with('.') {
            bail!("invalid config key {k:?}");
        }
        std::fs::write(dir.join(k), v)?;
    }
    Ok(())
}

/// A binary built beside `cilium-lab` (`cilium-agent`, `cilium-cni`, ...).
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find cilium-lab's own path")?;
    let dir = exe.parent().context("cilium-lab has no parent directory")?;
    let p = dir.join(name);
    if !p.is_file() {
        bail!(
            "{name} not found in {} (build every binary: cargo build --workspace --bins)",
            dir.display()
        );
    }
    Ok(p)
}

/// Paths of one node's agent.
pub struct AgentPaths {
    /// Config directory.
    pub config: PathBuf,
    /// REST API socket.
    pub socket: PathBuf,
    /// State directory.
    pub state: PathBuf,
    /// bpffs directory.
    pub bpf: PathBuf,
    /// The conflist the agent writes when ready.
    pub conflist: PathBuf,
}

impl AgentPaths {
    /// Paths of `node` in a lab.
    pub fn new(paths: &LabPaths, node: &str) -> Self {
        let dir = paths.node_dir(node).join("cilium");
        Self {
            config: dir.join("config"),
            socket: dir.join("cilium.sock"),
            state: dir.join("state"),
            bpf: paths.bpffs().join(node),
            conflist: paths.cni_conf_dir(node).join("05-cilium.conflist"),
        }
    }
}

/// Write a node agent's config directory: the cluster's config plus where
/// to write its CNI configuration.
pub fn write_agent_config(
    paths: &LabPaths,
    node: &str,
    cfg: &BTreeMap<String, String>,
) -> Result<()> {
    let ap = AgentPaths::new(paths, node);
    let mut cfg = cfg.clone();
    cfg.insert(
        "write-cni-conf-when-ready".into(),
        ap.conflist.display().to_string(),
    );
    write_config_dir(&ap.config, &cfg)
}

/// The operator's config directory of a cluster.
pub fn operator_config_dir(paths: &LabPaths, cluster: &str) -> PathBuf {
    paths.root().join("clusters").join(cluster).join("config")
}

/// The agent's command line for a node; writes its config directory.
pub fn agent_argv(
    paths: &LabPaths,
    node: &Host,
    kubeconfig: &str,
    cfg: &BTreeMap<String, String>,
) -> Result<Vec<String>> {
    let ap = AgentPaths::new(paths, &node.name);
    write_agent_config(paths, &node.name, cfg)?;
    std::fs::create_dir_all(&ap.state)?;
    let device = node
        .interfaces
        .first()
        .map(|i| i.name.clone())
        .unwrap_or_else(|| "eth1".into());
    Ok(vec![
        sibling_binary("cilium-agent")?.display().to_string(),
        "--node-name".into(),
        node.name.clone(),
        "--k8s-kubeconfig-path".into(),
        kubeconfig.into(),
        "--config-dir".into(),
        ap.config.display().to_string(),
        "--socket-path".into(),
        ap.socket.display().to_string(),
        "--state-dir".into(),
        ap.state.display().to_string(),
        "--bpf-root".into(),
        ap.bpf.display().to_string(),
        "--native-device".into(),
        device,
    ])
}

/// The operator's command line for a cluster; writes its config directory.
pub fn operator_argv(
    paths: &LabPaths,
    cluster: &str,
    kubeconfig: &str,
    cfg: &BTreeMap<String, String>,
) -> Result<Vec<String>> {
    let dir = operator_config_dir(paths, cluster);
    write_config_dir(&dir, cfg)?;
    Ok(vec![
        sibling_binary("cilium-operator")?.display().to_string(),
        "--k8s-kubeconfig-path".into(),
        kubeconfig.into(),
        "--config-dir".into(),
        dir.display().to_string(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_seeds_and_user_keys_win() {
        let t = Topology::load("seed").unwrap();
        let c = &t.clusters[0];
        let cfg = cluster_config(c, &BTreeMap::new());
        assert_eq!(cfg["ipam"], "cluster-pool");
        assert_eq!(cfg["cluster-pool-ipv4-cidr"], "172.20.0.0/16");
        assert_eq!(cfg["ipv4-native-routing-cidr"], "172.20.0.0/16");
        assert_eq!(cfg["routing-mode"], "native");
        assert_eq!(cfg["auto-direct-node-routes"], "true");
        let user = BTreeMap::from([("ipam".to_string(), "kubernetes".to_string())]);
        let cfg = cluster_config(c, &user);
        assert_eq!(cfg["ipam"], "kubernetes");
        assert_eq!(cfg["ipv4-native-routing-cidr"], "10.244.0.0/16");
        let user = BTreeMap::from([("routing-mode".to_string(), "tunnel".to_string())]);
        let cfg = cluster_config(c, &user);
        assert_eq!(cfg["routing-mode"], "tunnel");
        assert!(!cfg.contains_key("auto-direct-node-routes"));
    }

    #[test]
    fn user_keys_are_checked_on_top_of_the_defaults() {
        let t = Topology::load("seed").unwrap();
        check_config(&t, &BTreeMap::new()).unwrap();
        let user = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        check_config(&t, &user("routing-mode", "tunnel")).unwrap();
        check_config(&t, &user("ipam", "kubernetes")).unwrap();
        let e = check_config(&t, &user("enable-bpf-masquerade", "true")).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "invalid configuration: `enable-bpf-masquerade: true` is not supported yet"
        );
        let e = check_config(&t, &user("enable-foo", "true")).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "invalid configuration: unknown configuration key `enable-foo`"
        );
    }

    #[test]
    fn config_dirs_hold_one_file_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("cfg");
        let cfg = BTreeMap::from([("ipam".to_string(), "cluster-pool".to_string())]);
        write_config_dir(&d, &cfg).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("ipam")).unwrap(),
            "cluster-pool"
        );
        let bad = BTreeMap::from([("../x".to_string(), "y".to_string())]);
        assert!(write_config_dir(&d, &bad).is_err());
    }
}
