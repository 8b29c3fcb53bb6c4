//! `fanout`: write-to-event latency with many watchers.
//!
//! A private etcd ([`store::testing::EtcdServer`]) and the API server
//! over it in a child process (`serve-api`). Each round, in a namespace
//! of its own: `--watchers` stores (each its own connection: an agent
//! each) watch ConfigMaps from the namespace's current revision; a
//! marker object proves every watch is open; then one writer creates
//! `--rate` ConfigMaps a second for `--seconds`, each carrying the
//! wall-clock time just before its request was sent, and every watcher
//! takes the difference on receipt. Rounds alternate between the API
//! server (kube-rs watches and writes, through [`Store::kubeconfig`]) and
//! the baseline, etcd directly ([`Store::etcd`]: etcd watches and
//! transactions), and which goes first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use api::ResourceType;
use futures::StreamExt;
use serde_json::json;
use store::{Store, WatchEvent};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::server::Pki;

/// `fanout`'s flags.
#[derive(Debug, clap::Args)]
pub struct FanoutArgs {
    /// Concurrent watchers.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Writes per second.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Seconds of writing per round.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Rounds per backend (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Writes in flight at most.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Only this backend (`api` or `etcd`).
    #[arg(long)]
    only: Option<Backend>,
}

/// Where the watchers and the writer go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The API server (kube-rs).
    Api,
    /// etcd directly (the baseline).
    Etcd,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Api => "api ",
            Self::Etcd => "etcd",
        }
    }
}

/// How long watchers may lag behind the end of the writes.
const DRAIN: Duration = Duration::from_secs(20);

/// The API server child process; killed on drop.
struct ApiServer {
    child: Child,
    kubeconfig: PathBuf,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ApiServer {
    async fn start(etcd: &str, dir: &Path) -> anyhow::Result<Self> {
        let pki = Pki::create(dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::fs::File::create(dir.join("apiserver.log"))?;
        let child = Command::new(std::env::current_exe()?)
            .args(["serve-api", "--etcd", etcd, "--listen", &addr.to_string()])
            .arg("--dir")
            .arg(dir)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the API server")?;
        let server = Self {
            child,
            kubeconfig: pki.kubeconfig(addr, "admin")?,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Store::kubeconfig(Some(&server.kubeconfig), None).await {
                Ok(_) => return Ok(server),
                Err(e) if Instant::now() > deadline => {
                    return Err(e).context("the API server did not come up");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// User + system CPU seconds of the server so far.
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }
}

/// utime + stime of a `/proc/.../stat` file, in seconds (USER_HZ = 100).
fn cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the command: state is field 3, utime 14 and stime 15.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// What one round measured.
struct Round {
    backend: Backend,
    /// Write-to-event latencies of every delivery, microseconds, sorted.
    latencies: Vec<u64>,
    expected: usize,
    write_rate: f64,
    /// Write request latencies, microseconds, sorted.
    writes: Vec<u64>,
    write_errors: usize,
    watch_errors: usize,
    server_cpu: f64,
    client_cpu: f64,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

impl Round {
    fn p(&self, p: f64) -> f64 {
        percentile(&self.latencies, p)
    }

    fn print(&self, n: usize) {
        println!(
            "round {n} {}: {:.0} writes/s (write p50 {:.1} ms, p99 {:.1} ms, {} failed); \
             events {}/{}{}; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
             CPU s: api server {:.1}, clients {:.1}",
            self.backend.name(),
            self.write_rate,
            percentile(&self.writes, 0.5),
            percentile(&self.writes, 0.99),
            self.write_errors,
            self.latencies.len(),
            self.expected,
            if self.watch_errors > 0 {
                format!(" ({} watches failed)", self.watch_errors)
            } else {
                String::new()
            },
            self.p(0.5),
            self.p(0.99),
            self.p(1.0),
            self.server_cpu,
            self.client_cpu,
        );
    }
}

fn config_map() -> &'static ResourceType {
    &api::lookup("configmaps").expect("ConfigMap is served").ty
}

/// One watcher: every ADDED event's delay until `expected` of them came
/// (the marker, named `ready`, is announced through `ready` and not
/// counted) or the deadline.
async fn watch(
    store: Store,
    ns: String,
    revision: i64,
    expected: usize,
    ready: Arc<AtomicUsize>,
    ready_notify: Arc<Notify>,
    deadline: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
) -> (Vec<u64>, bool) {
    let ty = config_map();
    let mut events = store.watch_values(ty, Some(&ns), revision);
    let mut latencies = Vec::with_capacity(expected);
    loop {
        let until = deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(600));
        let next = match tokio::time::timeout_at(until, events.next()).await {
            Ok(next) => next,
            // The deadline may have been set (or moved) meanwhile.
            Err(_) if tokio::time::Instant::now() < until => continue,
            Err(_) => return (latencies, false),
        };
        let object = match next {
            Some(Ok(WatchEvent::Added(o))) => o,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                eprintln!("watch failed: {e}");
                return (latencies, true);
            }
            None => return (latencies, true),
        };
        let received = now_nanos();
        if object["metadata"]["name"] == "ready" {
            ready.fetch_add(1, Ordering::SeqCst);
            ready_notify.notify_one();
            continue;
        }
        if let Some(sent) = object["data"]["t"]
            .as_str()
            .and_then(|t| t.parse::<u128>().ok())
        {
            latencies.push((received.saturating_sub(sent) / 1000) as u64);
        }
        if latencies.len() == expected {
            return (latencies, false);
        }
    }
}

async fn connect(backend: Backend, etcd: &str, server: &ApiServer) -> anyhow::Result<Store> {
    Ok(match backend {
        Backend::Api => Store::kubeconfig(Some(&server.kubeconfig), None).await?,
        Backend::Etcd => Store::etcd(&[etcd.to_string()]).await?,
    })
}

async fn round(
    args: &FanoutArgs,
    backend: Backend,
    ns: String,
    etcd: &str,
    server: &ApiServer,
) -> anyhow::Result<Round> {
    let ty = config_map();
    let writer = connect(backend, etcd, server).await?;
    let revision = writer.list_values(ty, Some(&ns)).await?.revision;
    let expected = (args.rate * args.seconds) as usize;
    let ready = Arc::new(AtomicUsize::new(0));
    let ready_notify = Arc::new(Notify::new());
    let deadline = Arc::new(std::sync::Mutex::new(None));
    let mut watchers = JoinSet::new();
    for _ in 0..args.watchers {
        let store = connect(backend, etcd, server).await?;
        watchers.spawn(watch(
            store,
            ns.clone(),
            revision,
            expected,
            ready.clone(),
            ready_notify.clone(),
            deadline.clone(),
        ));
    }
    // Every watch is open once every watcher saw the marker.
    let marker = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ready", "namespace": ns}});
    writer.create_value(ty, &marker).await?;
    let open_by = Instant::now() + Duration::from_secs(60);
    while ready.load(Ordering::SeqCst) < args.watchers {
        anyhow::ensure!(Instant::now() < open_by, "watches did not open in 60 s");
        let _ = tokio::time::timeout(Duration::from_millis(100), ready_notify.notified()).await;
    }
    let (server_cpu, client_cpu) = (server.cpu_seconds(), cpu_seconds("/proc/self/stat"));
    let in_flight = Arc::new(Semaphore::new(args.in_flight));
    let mut tick = tokio::time::interval(Duration::from_secs(1) / args.rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut writes = JoinSet::new();
    let start = Instant::now();
    for i in 0..expected {
        tick.tick().await;
        let permit = in_flight.clone().acquire_owned().await?;
        let (writer, ns) = (writer.clone(), ns.clone());
        writes.spawn(async move {
            let sent = now_nanos();
            let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("w-{i:06}"), "namespace": ns},
                "data": {"t": sent.to_string()}});
            let r = writer.create_value(ty, &object).await;
            drop(permit);
            (r.is_ok(), ((now_nanos() - sent) / 1000) as u64)
        });
    }
    let mut write_latencies = Vec::with_capacity(expected);
    let mut write_errors = 0;
    while let Some(r) = writes.join_next().await {
        let (ok, micros) = r?;
        write_latencies.push(micros);
        write_errors += usize::from(!ok);
    }
    let write_rate = expected as f64 / start.elapsed().as_secs_f64();
    *deadline.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now() + DRAIN);
    let mut latencies = Vec::with_capacity(expected * args.watchers);
    let mut watch_errors = 0;
    while let Some(r) = watchers.join_next().await {
        let (l, failed) = r?;
        latencies.extend(l);
        watch_errors += usize::from(failed);
    }
    let server_cpu = server.cpu_seconds() - server_cpu;
    let client_cpu = cpu_seconds("/proc/self/stat") - client_cpu;
    latencies.sort_unstable();
    write_latencies.sort_unstable();
    Ok(Round {
        backend,
        latencies,
        expected: expected * args.watchers,
        write_rate,
        writes: write_latencies,
        write_errors,
        watch_errors,
        server_cpu,
        client_cpu,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(f64::NAN)
}

/// `fanout`: rounds of both backends, alternating, then medians and ratios.
pub async fn run(args: FanoutArgs) -> anyhow::Result<()> {
    let etcd = tokio::task::spawn_blocking(store::testing::EtcdServer::start).await?;
    let dir = tempfile::Builder::new().prefix("api-bench-").tempdir()?;
    let server = ApiServer::start(&etcd.endpoint, dir.path()).await?;
    println!(
        "watch fan-out: {} watchers, {} writes/s for {} s, {} rounds per backend",
        args.watchers, args.rate, args.seconds, args.rounds
    );
    let mut rounds = Vec::new();
    for r in 0..args.rounds {
        let mut order = [Backend::Etcd, Backend::Api];
        if r % 2 == 1 {
            order.reverse();
        }
        for backend in order {
            if args.only.is_some_and(|o| o != backend) {
                continue;
            }
            let ns = format!("fanout-{r}-{}", backend.name().trim());
            let result = round(&args, backend, ns, &etcd.endpoint, &server).await?;
            result.print(r + 1);
            rounds.push(result);
        }
    }
    let summary = |backend: Backend| {
        let of: Vec<&Round> = rounds.iter().filter(|r| r.backend == backend).collect();
        let m = |f: &dyn Fn(&Round) -> f64| median(of.iter().map(|r| f(r)).collect());
        (m(&|r| r.p(0.5)), m(&|r| r.p(0.99)), m(&|r| r.server_cpu))
    };
    let (e50, e99, _) = summary(Backend::Etcd);
    let (a50, a99, acpu) = summary(Backend::Api);
    println!("medians over the rounds (write-to-event latency):");
    println!("  etcd directly (baseline): p50 {e50:.1} ms, p99 {e99:.1} ms");
    println!(
        "  API server:               p50 {a50:.1} ms, p99 {a99:.1} ms (goal p99 < 50 ms), \
         server CPU {acpu:.1} s per round"
    );
    println!(
        "  ratio API/etcd: p50 {:.2}x, p99 {:.2}x",
        a50 / e50,
        a99 / e99
    );
    Ok(())
}
