//! `load`: simulated cluster objects, created concurrently through a store
//! (the lab's API server with kube-rs, or etcd).
//!
//! What is made, so that the lab's controllers leave it alone (the
//! benchmark measures readers, not a settling control plane):
//!
//! - CiliumNodes `sim-node-N`: InternalIP `198.18.0.0/15 + N` (the
//!   benchmarking range), pod CIDR the N-th /24 of `--pod-cidr-base`
//!   (inside the lab's cluster pool, so that the operator finds them
//!   valid), CiliumInternalIP `.1` and health IP `.2` of it.
//! - Services `sim-svc-N` in namespace `scale`: ClusterIP from
//!   `10.96.128.0` on, every field the lab's Service controller
//!   defaults already set, no selector (so no controller manages their
//!   slices).
//! - EndpointSlices `sim-svc-N-0`, one per Service, the endpoints spread
//!   evenly (`--endpoints` in all) over the simulated nodes' pod CIDRs;
//!   managed by `api-bench` (the lab's Endpoints controller mirrors only
//!   its own controller's slices).
//! - CiliumIdentities `N` from `--identity-base`, with pod-like labels.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use api::ResourceType;
use futures::{StreamExt, stream};
use serde_json::{Value, json};
use store::Store;

/// `load`'s flags.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// kubeconfig of the API server to load through.
    #[arg(long, conflicts_with = "etcd")]
    kubeconfig: Option<PathBuf>,
    /// etcd endpoint to load into directly instead.
    #[arg(long)]
    etcd: Option<String>,
    /// CiliumNodes.
    #[arg(long, default_value_t = 1000)]
    nodes: u32,
    /// Services (one EndpointSlice each).
    #[arg(long, default_value_t = 10000)]
    services: u32,
    /// Endpoints over all EndpointSlices.
    #[arg(long, default_value_t = 30000)]
    endpoints: u32,
    /// CiliumIdentities.
    #[arg(long, default_value_t = 5000)]
    identities: u32,
    /// Requests in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// First pod CIDR of the simulated nodes (a /24 each from there).
    #[arg(long, default_value = "172.24.0.0")]
    pod_cidr_base: Ipv4Addr,
    /// First CiliumIdentity number.
    #[arg(long, default_value_t = 20000)]
    identity_base: u32,
}

/// Namespace of the simulated Services and EndpointSlices.
const NAMESPACE: &str = "scale";
/// `endpointslice.kubernetes.io/managed-by` of the simulated slices.
const MANAGED_BY: &str = "api-bench";

fn offset(base: Ipv4Addr, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + n)
}

/// The `i`-th simulated node's pod CIDR base.
fn pod_cidr(args: &LoadArgs, i: u32) -> Ipv4Addr {
    offset(args.pod_cidr_base, i * 256)
}

fn cilium_node(args: &LoadArgs, i: u32) -> Value {
    let cidr = pod_cidr(args, i);
    json!({
        "apiVersion": "cilium.io/v2", "kind": "CiliumNode",
        "metadata": {"name": format!("sim-node-{i:04}"), "labels": {"bench.cilium.io/simulated": "true"}},
        "spec": {
            "addresses": [
                {"type": "InternalIP", "ip": offset(Ipv4Addr::new(198, 18, 0, 0), i + 1).to_string()},
                {"type": "CiliumInternalIP", "ip": offset(cidr, 1).to_string()},
            ],
            "health": {"ipv4": offset(cidr, 2).to_string()},
            "ipam": {"podCIDRs": [format!("{cidr}/24")]},
        },
    })
}

fn service(i: u32) -> Value {
    let ip = offset(Ipv4Addr::new(10, 96, 128, 0), i).to_string();
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("sim-svc-{i:05}"), "namespace": NAMESPACE},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip, "clusterIPs": [ip],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
        },
    })
}

/// Endpoints of service `i`: an even share of the total, the remainder
/// to the first services.
fn slice(args: &LoadArgs, i: u32) -> Value {
    let (per, rest) = (
        args.endpoints / args.services,
        args.endpoints % args.services,
    );
    let count = per + u32::from(i < rest);
    let first = i * per + i.min(rest);
    let endpoints: Vec<Value> = (first..first + count)
        .map(|e| {
            let node = e % args.nodes.max(1);
            let host = 3 + (e / args.nodes.max(1)) % 250;
            json!({
                "addresses": [offset(pod_cidr(args, node), host).to_string()],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": format!("sim-node-{node:04}"),
            })
        })
        .collect();
    let svc = format!("sim-svc-{i:05}");
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{svc}-0"), "namespace": NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": svc,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

fn identity(args: &LoadArgs, i: u32) -> Value {
    json!({
        "apiVersion": "cilium.io/v2", "kind": "CiliumIdentity",
        "metadata": {"name": (args.identity_base + i).to_string()},
        "security-labels": {
            "k8s:app": format!("sim-{i:04}"),
            "k8s:io.kubernetes.pod.namespace": NAMESPACE,
            "k8s:io.cilium.k8s.policy.cluster": "default",
        },
    })
}

fn ty(kind: &str) -> anyhow::Result<&'static ResourceType> {
    api::lookup(kind)
        .map(|k| &k.ty)
        .with_context(|| format!("unknown kind {kind}"))
}

/// Create `objects` of `kind` with `concurrency` requests in flight;
/// existing ones count as done. Prints the rate.
async fn create_all(
    store: &Store,
    kind: &str,
    objects: Vec<Value>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let ty = ty(kind)?;
    let total = objects.len();
    let start = Instant::now();
    let mut existed = 0;
    let mut results = stream::iter(objects)
        .map(|o| async move { store.create_value(ty, &o).await })
        .buffer_unordered(concurrency);
    while let Some(r) = results.next().await {
        match r {
            Ok(_) => {}
            Err(store::Error::AlreadyExists { .. }) => existed += 1,
            Err(e) => return Err(e).with_context(|| format!("creating a {kind}")),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "  {kind}: {total} in {secs:.1} s ({:.0}/s){}",
        total as f64 / secs,
        if existed > 0 {
            format!(", {existed} existed already")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// `load`: every simulated object.
pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let store = match (&args.kubeconfig, &args.etcd) {
        (Some(path), _) => Store::kubeconfig(Some(path), None).await?,
        (None, Some(etcd)) => Store::etcd(std::slice::from_ref(etcd)).await?,
        (None, None) => anyhow::bail!("give --kubeconfig or --etcd"),
    };
    let start = Instant::now();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    create_all(&store, "Namespace", vec![ns], 1).await?;
    let c = args.concurrency;
    let identities = (0..args.identities).map(|i| identity(&args, i)).collect();
    create_all(&store, "CiliumIdentity", identities, c).await?;
    let nodes = (0..args.nodes).map(|i| cilium_node(&args, i)).collect();
    create_all(&store, "CiliumNode", nodes, c).await?;
    let services = (0..args.services).map(service).collect();
    create_all(&store, "Service", services, c).await?;
    let slices = (0..args.services).map(|i| slice(&args, i)).collect();
    create_all(&store, "EndpointSlice", slices, c).await?;
    let n = 1 + args.identities + args.nodes + 2 * args.services;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "loaded {n} objects ({} endpoints) in {secs:.1} s ({:.0}/s) through {store:?}",
        args.endpoints,
        f64::from(n) / secs
    );
    Ok(())
}
