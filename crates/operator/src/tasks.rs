//! Every task and all store I/O of the operator.
//!
//! ```text
//!  store (etcd | memory)
//!    CiliumNode watch ─────────────> pod_cidr_controller ──modify──> CiliumNode
//!                                      (podcidr::plan)               spec.ipam.podCIDRs,
//!                                                                    status.ipam.operator-status
//!    CiliumIdentity watch ──┐
//!    CiliumEndpoint watch ──┴──────> identity_gc ─────────delete───> CiliumIdentity
//!                                      (identitygc::IdentityGc, every interval)
//! ```
//!
//! [`run`] owns the tasks in a `JoinSet` (aborted when it is dropped) and
//! returns when one of them fails. Decisions live in `podcidr` and
//! `identitygc`; this module only feeds them and writes their results.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, anyhow};
use api::cilium::endpoint::CiliumEndpoint;
use api::cilium::identity::CiliumIdentity;
use api::cilium::node::CiliumNode;
use ciliumconfig::{IpamMode, OperatorConfig};
use futures::StreamExt;
use ipnet::Ipv4Net;
use store::Store;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use toolkit::{Cache, Pacer};

use crate::identitygc::IdentityGc;
use crate::podcidr::{self, Decision};

/// Run the operator's controllers until one fails.
pub async fn run(store: Store, config: OperatorConfig) -> anyhow::Result<()> {
    let mut tasks = JoinSet::new();
    match config.ipam {
        IpamMode::ClusterPool => {
            tasks.spawn(pod_cidr_controller(
                store.clone(),
                config.pool_cidrs.clone(),
                config.pool_mask,
            ));
        }
        IpamMode::Kubernetes => {
            tracing::info!("ipam: kubernetes; pod CIDRs come from Nodes, no allocation here");
        }
    }
    tasks.spawn(identity_gc(store, config.identity_gc_interval));
    match tasks.join_next().await {
        Some(Ok(Err(e))) => Err(e),
        Some(Err(e)) => Err(e).context("controller task failed"),
        Some(Ok(Ok(()))) | None => Err(anyhow!("controller task ended")),
    }
}

/// Whether a failed write needs a retry: conflicts and vanished nodes
/// mean a newer watch event is on its way, which triggers the next pass.
fn needs_retry(node: &str, action: &str, error: &store::Error) -> bool {
    match error {
        store::Error::NotFound { .. } | store::Error::Conflict { .. } => {
            tracing::debug!(node, action, %error, "stale view; waiting for the watch");
            false
        }
        _ => {
            tracing::warn!(node, action, %error, "write failed; will retry");
            true
        }
    }
}

/// Cluster-pool IPAM: hands every CiliumNode without pod CIDRs a block,
/// keeps existing ones, reports errors on the nodes.
async fn pod_cidr_controller(store: Store, cidrs: Vec<Ipv4Net>, mask: u8) -> anyhow::Result<()> {
    if let Err(error) = ipam::PodCidrAllocator::new(&cidrs, mask) {
        tracing::error!(%error, "cluster-pool IPAM configuration is unusable; reporting it on every CiliumNode");
    }
    let mut nodes = Cache::<CiliumNode>::default();
    let mut node_rx = store.reflect::<CiliumNode>(None);
    let mut pacer = Pacer::default();
    // Blocks of deleted nodes, newest last: handed out again only when
    // nothing else is free, so a re-created node gets a new pod CIDR.
    let mut released: std::collections::VecDeque<Ipv4Net> = Default::default();
    loop {
        tokio::select! {
            change = node_rx.next() => {
                let change = change.ok_or_else(|| anyhow!("CiliumNode watch ended"))?;
                if let store::Change::Event(store::WatchEvent::Deleted(node)) = &change
                    && let Some(cidr) = podcidr::ipv4_pod_cidr(node)
                {
                    released.retain(|c| *c != cidr);
                    released.push_back(cidr);
                    if released.len() > podcidr::MAX_RELEASED {
                        released.pop_front();
                    }
                }
                nodes.apply(change);
                pacer.changed();
            }
            () = pacer.due(), if nodes.synced() => {
                let view: Vec<&CiliumNode> = nodes.values().collect();
                let avoid: Vec<Ipv4Net> = released.iter().copied().collect();
                let decisions = podcidr::plan(&cidrs, mask, &view, &avoid);
                let mut ok = true;
                for decision in decisions {
                    let (node, result) = match &decision {
                        Decision::Assign { node, cidr } => (node, store
                            .modify::<CiliumNode>(None, node, |n| podcidr::assign(n, *cidr))
                            .await),
                        Decision::Status { node, error } => (node, store
                            .modify::<CiliumNode>(None, node, |n| podcidr::set_error(n, error.as_deref()))
                            .await),
                    };
                    match (result, &decision) {
                        (Ok(written), Decision::Assign { cidr, .. }) => {
                            tracing::info!(node, %cidr, "allocated pod CIDR");
                            nodes.written(written);
                        }
                        (Ok(written), Decision::Status { error, .. }) => {
                            match &error {
                                Some(error) => tracing::warn!(node, %error, "reported IPAM error on CiliumNode"),
                                None => tracing::info!(node, "cleared IPAM error on CiliumNode"),
                            }
                            nodes.written(written);
                        }
                        (Err(e), _) => ok &= !needs_retry(node, "update CiliumNode", &e),
                    }
                }
                pacer.finished(ok);
            }
        }
    }
}

/// Identity GC: deletes global identities no CiliumEndpoint has
/// referenced for `interval` (checked every `interval`).
async fn identity_gc(store: Store, interval: Duration) -> anyhow::Result<()> {
    let mut identities = Cache::<CiliumIdentity>::default();
    let mut endpoints = Cache::<CiliumEndpoint>::default();
    let mut identity_rx = store.reflect::<CiliumIdentity>(None);
    let mut endpoint_rx = store.reflect::<CiliumEndpoint>(None);
    let mut gc = IdentityGc::default();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            change = identity_rx.next() => {
                identities.apply(change.ok_or_else(|| anyhow!("CiliumIdentity watch ended"))?);
            }
            change = endpoint_rx.next() => {
                endpoints.apply(change.ok_or_else(|| anyhow!("CiliumEndpoint watch ended"))?);
            }
            _ = ticker.tick(), if identities.synced() && endpoints.synced() => {
                let in_use: HashSet<u32> = endpoints
                    .values()
                    .filter_map(|ep| ep.status.as_ref()?.identity.as_ref())
                    .filter_map(|identity| u32::try_from(identity.id).ok())
                    .collect();
                let ids = identities.values().filter_map(CiliumIdentity::id);
                let expired = gc.sweep(ids, &in_use, Instant::now().into_std(), interval);
                for id in expired {
                    match store.delete::<CiliumIdentity>(None, &id.to_string()).await {
                        Ok(Some(_)) => tracing::info!(identity = id, "deleted unused identity"),
                        Ok(None) => {}
                        Err(error) => tracing::warn!(identity = id, %error, "cannot delete unused identity; next pass retries"),
                    }
                }
            }
        }
    }
}
