//! `api-bench`: the Kubernetes API benchmarks' Rust half (the scripts
//! `bench/api-scale.sh` and `bench/api-fanout.sh` drive it; see
//! `bench/README.md`).
//!
//! - `load`: create simulated cluster objects (CiliumNodes, Services,
//!   EndpointSlices, CiliumIdentities; no pods) through a store, the
//!   lab's API server with kube-rs or etcd, concurrently
//!   ([`objects`]).
//! - `fanout`: watch fan-out latency: a writer creates objects at a fixed
//!   rate with the send time stamped in them, many watchers measure the
//!   delay to each event; through the API server, and directly on etcd
//!   as the baseline, in the same run ([`fanout`]).
//! - `serve-api`: the API server over an etcd (the `fanout` benchmark
//!   starts it as a child process, so that its CPU time is its own;
//!   [`server`]).

mod fanout;
mod objects;
mod server;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Warnings and errors, except kube-rs's connect errors while the
/// fan-out benchmark waits for its API server.
const LOG_FILTER: &str = "warn,kube_client::client::builder=off";

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(name = "api-bench", about = "Kubernetes API benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create simulated objects (idempotent: existing ones are kept).
    Load(objects::LoadArgs),
    /// Watch fan-out latency, API server vs etcd.
    Fanout(fanout::FanoutArgs),
    /// Serve the API over etcd (used by `fanout`).
    #[command(hide = true)]
    ServeApi {
        /// etcd endpoint.
        #[arg(long)]
        etcd: String,
        /// Directory with `ca.crt`/`ca.key` and `sa.key`.
        #[arg(long)]
        dir: PathBuf,
        /// Listen address.
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    toolkit::logging::init(toolkit::logging::LogFormat::Text, LOG_FILTER);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Load(args) => runtime.block_on(objects::load(args)),
        Command::Fanout(args) => runtime.block_on(fanout::run(args)),
        Command::ServeApi { etcd, dir, listen } => {
            runtime.block_on(server::serve(&etcd, &dir, listen))
        }
    }
}
