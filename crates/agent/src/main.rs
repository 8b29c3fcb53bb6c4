//! `cilium-agent`: one per node, inside the node's network namespace.
//! Parses flags and the `cilium-config` key set, validates them (exiting
//! with a clear message on any bad, unknown, contradictory or not yet
//! supported key), sets up logging and runs [`daemon::run`].

mod api;
mod cluster;
mod config;
mod daemon;
mod dataplane;
mod endpoint;
mod endpoints;
mod ipcache;
mod kernel;
mod metrics;
mod node;
mod routes;
mod state;
mod status;
mod sys;
mod tables;
mod tasks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    name = "cilium-agent",
    version,
    about = "Cilium agent (Rust implementation)"
)]
struct Flags {
    /// This node's name.
    #[arg(long, env = "K8S_NODE_NAME")]
    node_name: String,
    /// kubeconfig of the Kubernetes API server (default: in-cluster
    /// credentials when KUBERNETES_SERVICE_HOST is set).
    #[arg(long, value_name = "PATH", env = "CILIUM_K8S_KUBECONFIG_PATH")]
    k8s_kubeconfig_path: Option<PathBuf>,
    /// etcd endpoints to use as the cluster store instead of the API
    /// (repeatable, or comma-separated); replaces the endpoints of
    /// `kvstore-opt`'s `etcd.config` file, which also names the TLS files
    /// for `https://` endpoints.
    #[arg(long, value_name = "ENDPOINT", value_delimiter = ',')]
    etcd: Vec<String>,
    #[command(flatten)]
    config: ciliumconfig::ConfigFlags,
    /// REST API socket.
    #[arg(long, default_value = "/var/run/cilium/cilium.sock")]
    socket_path: PathBuf,
    /// Where endpoints and IP allocations are persisted.
    #[arg(long, default_value = "/var/run/cilium/state")]
    state_dir: PathBuf,
    /// This node's bpffs directory (e.g. /sys/fs/bpf/<lab>/<node>).
    #[arg(long)]
    bpf_root: PathBuf,
    /// Native (node-to-node) device.
    #[arg(long, default_value = "eth1")]
    native_device: String,
    /// Log format: text, text-ts, json, json-ts.
    #[arg(long, default_value = "text")]
    log_format: toolkit::logging::LogFormat,
}

fn load_config(flags: &Flags) -> Result<config::AgentConfig, ciliumconfig::ConfigError> {
    config::AgentConfig::from_map(&flags.config.load()?)
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let cfg = match load_config(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cilium-agent: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    toolkit::logging::init(flags.log_format, if cfg.debug { "debug" } else { "info" });
    tracing::info!(node = %flags.node_name, config = ?cfg.effective, "starting cilium-agent");
    let cluster = store::ClusterSource::from_flags(
        flags.k8s_kubeconfig_path,
        cfg.kvstore.explicit_endpoints(&flags.etcd),
        cfg.kvstore.etcd_config.as_deref(),
    );
    let cluster = match cluster {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cilium-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = daemon::Settings {
        node_name: flags.node_name,
        cluster,
        socket_path: flags.socket_path,
        state_dir: flags.state_dir,
        bpf_root: flags.bpf_root,
        native_device: flags.native_device,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cilium-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::run(settings, cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cilium-agent failed");
            ExitCode::FAILURE
        }
    }
}
