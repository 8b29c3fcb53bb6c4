//! The `cilium-operator` binary: flags, logging, signals; the controllers
//! are in the library.

use std::time::Duration;

use anyhow::Context;
use ciliumconfig::{ConfigFlags, OperatorConfig};
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

/// Cluster-wide Cilium controllers: cluster-pool IPAM and identity GC.
#[derive(Debug, Parser)]
#[command(name = "cilium-operator", version)]
struct Args {
    /// kubeconfig of the Kubernetes API server (default: in-cluster
    /// credentials when KUBERNETES_SERVICE_HOST is set).
    #[arg(long, value_name = "PATH", env = "CILIUM_K8S_KUBECONFIG_PATH")]
    k8s_kubeconfig_path: Option<std::path::PathBuf>,
    /// etcd endpoints to use as the cluster store instead of the API
    /// (`http(s)://IP:PORT`, `unix(s):///path`); repeatable. Replaces the
    /// endpoints of `kvstore-opt`'s `etcd.config` file, which also names
    /// the TLS files.
    #[arg(long = "etcd", value_name = "ENDPOINT")]
    etcd: Vec<String>,
    #[command(flatten)]
    config: ConfigFlags,
    /// Identity GC interval and grace period (`30s`, `500ms`, `15m`).
    #[arg(long, value_name = "DURATION", value_parser = ciliumconfig::positive_duration)]
    identity_gc_interval: Option<Duration>,
    /// Log format: text, text-ts, json, json-ts.
    #[arg(long, default_value = "text")]
    log_format: toolkit::logging::LogFormat,
}

fn load_config(args: &Args) -> anyhow::Result<OperatorConfig> {
    let mut config = OperatorConfig::from_keys(&args.config.load()?)?;
    if let Some(interval) = args.identity_gc_interval {
        config.identity_gc_interval = interval;
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    toolkit::logging::init(args.log_format, "info");
    let config = load_config(&args).context("invalid configuration")?;
    tracing::info!(?config, "starting cilium-operator");
    let cluster = store::ClusterSource::from_flags(
        args.k8s_kubeconfig_path.clone(),
        config.kvstore.explicit_endpoints(&args.etcd),
        config.kvstore.etcd_config.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let store = store::Store::connect(&cluster)
        .await
        .with_context(|| format!("cannot reach the cluster ({})", cluster.describe()))?;
    let mut terminate = signal(SignalKind::terminate())?;
    let identity = format!(
        "{}-{:08x}",
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "cilium-operator".into()),
        rand::random::<u32>()
    );
    let mut elector = operator::leader::Elector::new(
        store.clone(),
        "kube-system",
        &identity,
        operator::leader::Timings::default(),
    );
    tokio::select! {
        result = async {
            elector.acquire().await;
            tokio::select! {
                result = operator::run(store, config) => result,
                () = elector.hold() => anyhow::bail!("leader election lost"),
            }
        } => result,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted; exiting");
            Ok(())
        }
        _ = terminate.recv() => {
            tracing::info!("terminated; exiting");
            Ok(())
        }
    }
}
