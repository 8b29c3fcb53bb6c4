//! `cilium-dbg`: inspects one node's cilium agent through its REST API on
//! the agent's unix socket (`-H unix:///path`, env `CILIUM_SOCK`, default
//! `/var/run/cilium/cilium.sock`) and prints upstream's text formats, or
//! the raw data with `-o json`. Printing lives in [`print`], alignment in
//! [`table`]; this file only parses arguments, fetches and writes.

mod print;
mod table;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use agentclient::{
    Client, ClientError, EndpointModel, IpEntry, IpcacheMapEntry, LxcMapEntry, MetricsMapEntry,
    StatusResponse,
};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde::{Serialize, de::DeserializeOwned};

/// CLI for interacting with the local Cilium Agent.
#[derive(Debug, Parser)]
#[command(name = "cilium-dbg", version)]
struct Cli {
    /// URI to server-side API (`unix:///path/to/cilium.sock` or a path).
    #[arg(
        short = 'H',
        long,
        global = true,
        env = "CILIUM_SOCK",
        default_value = "unix:///var/run/cilium/cilium.sock"
    )]
    host: String,
    /// Print the agent's data in this format instead of tables.
    #[arg(short = 'o', long, global = true, value_enum)]
    output: Option<Output>,
    #[command(subcommand)]
    command: Cmd,
}

/// Machine-readable output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Pretty-printed JSON.
    Json,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Display status of the agent.
    Status {
        /// Also list allocated addresses and every controller.
        #[arg(long)]
        verbose: bool,
        /// List every controller and reconciler with its health.
        #[arg(long)]
        all_controllers: bool,
    },
    /// Display the agent's effective configuration (`key value`).
    Config,
    /// Manage endpoints.
    Endpoint {
        #[command(subcommand)]
        command: ListOnly,
    },
    /// Manage IP addresses and associated information.
    Ip {
        #[command(subcommand)]
        command: IpCmd,
    },
    /// Direct access to local BPF maps.
    Bpf {
        #[command(subcommand)]
        command: BpfCmd,
    },
    /// Access userspace cached content of BPF maps.
    Map {
        #[command(subcommand)]
        command: MapCmd,
    },
}

#[derive(Debug, Subcommand)]
enum ListOnly {
    /// List all entries.
    #[command(visible_alias = "ls")]
    List,
}

#[derive(Debug, Subcommand)]
enum IpCmd {
    /// List IP addresses in the userspace IPcache.
    #[command(visible_alias = "ls")]
    List {
        /// Print numeric identities.
        #[arg(short = 'n', long)]
        numeric: bool,
    },
}

#[derive(Debug, Subcommand)]
enum BpfCmd {
    /// Manage the IPCache mappings for IP/CIDR <-> Identity.
    Ipcache {
        #[command(subcommand)]
        command: ListOnly,
    },
    /// Local endpoint map.
    Endpoint {
        #[command(subcommand)]
        command: ListOnly,
    },
    /// BPF datapath traffic metrics.
    Metrics {
        #[command(subcommand)]
        command: ListOnly,
    },
}

#[derive(Debug, Subcommand)]
enum MapCmd {
    /// Display cached content of the given BPF map.
    Get {
        /// `cilium_lxc` or `cilium_ipcache_v2`.
        name: String,
    },
}

/// `unix:///path` or a bare path -> the socket path.
fn socket_path(host: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = host.strip_prefix("unix://") {
        if path.is_empty() {
            bail!("invalid host {host:?}: empty socket path");
        }
        return Ok(PathBuf::from(path));
    }
    if host.contains("://") {
        bail!("unsupported host {host:?}: only unix:// sockets are supported");
    }
    Ok(PathBuf::from(host))
}

/// GETs `path`, adding the agent-unreachable hint.
fn fetch<T: DeserializeOwned>(client: &Client, path: &str) -> anyhow::Result<T> {
    client.get(path).map_err(|e| match e {
        ClientError::Connect { .. } | ClientError::Timeout { .. } => {
            anyhow::anyhow!("{e}\nIs the agent running?")
        }
        other => anyhow::Error::new(other).context(format!("GET {path}")),
    })
}

/// Either the JSON of `data` or the text `render` makes of it.
fn render<T: Serialize>(
    output: Option<Output>,
    data: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<String> {
    match output {
        Some(Output::Json) => {
            Ok(serde_json::to_string_pretty(data).context("encoding JSON")? + "\n")
        }
        None => Ok(text(data)),
    }
}

fn run(cli: &Cli) -> anyhow::Result<String> {
    let client = Client::new(socket_path(&cli.host)?);
    let out = cli.output;
    match &cli.command {
        Cmd::Status {
            verbose,
            all_controllers,
        } => {
            let s: StatusResponse = fetch(&client, "/v1/status")?;
            render(out, &s, |s| {
                print::status(s, *verbose, *verbose || *all_controllers)
            })
        }
        Cmd::Config => {
            let c: BTreeMap<String, String> = fetch(&client, "/v1/config")?;
            render(out, &c, print::config)
        }
        Cmd::Endpoint {
            command: ListOnly::List,
        } => {
            let eps: Vec<EndpointModel> = fetch(&client, "/v1/endpoint")?;
            render(out, &eps, |e| print::endpoint_list(e))
        }
        Cmd::Ip {
            command: IpCmd::List { numeric },
        } => {
            let ips: Vec<IpEntry> = fetch(&client, "/v1/ip")?;
            render(out, &ips, |e| print::ip_list(e, *numeric))
        }
        Cmd::Bpf { command } => match command {
            BpfCmd::Ipcache { .. } => {
                let rows: Vec<IpcacheMapEntry> = fetch(&client, "/v1/map/ipcache")?;
                render(out, &rows, |r| print::bpf_ipcache_list(r))
            }
            BpfCmd::Endpoint { .. } => {
                let rows: Vec<LxcMapEntry> = fetch(&client, "/v1/map/endpoint")?;
                render(out, &rows, |r| print::bpf_endpoint_list(r))
            }
            BpfCmd::Metrics { .. } => {
                let rows: Vec<MetricsMapEntry> = fetch(&client, "/v1/map/metrics")?;
                render(out, &rows, |r| {
                    print::bpf_metrics_list(r).unwrap_or_else(|| {
                        eprintln!("No entries found.");
                        String::new()
                    })
                })
            }
        },
        Cmd::Map {
            command: MapCmd::Get { name },
        } => match name.as_str() {
            "cilium_lxc" => {
                let rows: Vec<LxcMapEntry> = fetch(&client, "/v1/map/endpoint")?;
                render(out, &rows, |r| print::map_get_lxc(r))
            }
            "cilium_ipcache_v2" | "cilium_ipcache" => {
                let rows: Vec<IpcacheMapEntry> = fetch(&client, "/v1/map/ipcache")?;
                render(out, &rows, |r| print::map_get_ipcache(r))
            }
            other => bail!("map {other} not found (known maps: cilium_lxc, cilium_ipcache_v2)"),
        },
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("Error: writing output: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_forms() {
        assert_eq!(
            socket_path("unix:///var/run/cilium/cilium.sock").expect("unix"),
            PathBuf::from("/var/run/cilium/cilium.sock")
        );
        assert_eq!(
            socket_path("/run/lab/n1.sock").expect("path"),
            PathBuf::from("/run/lab/n1.sock")
        );
        assert!(socket_path("tcp://127.0.0.1:1").is_err());
        assert!(socket_path("unix://").is_err());
    }

    #[test]
    fn arguments_parse() {
        let cli = Cli::try_parse_from(["cilium-dbg", "-H", "unix:///x.sock", "ip", "list", "-n"])
            .expect("parse");
        assert_eq!(cli.host, "unix:///x.sock");
        assert!(matches!(
            cli.command,
            Cmd::Ip {
                command: IpCmd::List { numeric: true }
            }
        ));
        let cli = Cli::try_parse_from(["cilium-dbg", "bpf", "endpoint", "ls", "-o", "json"])
            .expect("parse");
        assert_eq!(cli.output, Some(Output::Json));
        Cli::try_parse_from(["cilium-dbg", "status", "--verbose"]).expect("status");
        Cli::try_parse_from(["cilium-dbg", "map", "get", "cilium_lxc"]).expect("map get");
    }

    #[test]
    fn unreachable_agent_hint() {
        let dir = std::env::temp_dir().join(format!("cilium-dbg-test-{}", std::process::id()));
        let client = Client::new(dir.join("absent.sock"));
        let err = fetch::<StatusResponse>(&client, "/v1/status").expect_err("no agent");
        let text = format!("{err:#}");
        assert!(text.contains("absent.sock"), "{text}");
        assert!(text.ends_with("Is the agent running?"), "{text}");
    }
}
