//! Lab control plane: node podCIDRs, scheduler, Deployment, Service and EndpointSlice controllers.
//!
//! Runs as one process in the control-plane node's namespace next to etcd
//! ([`run`]). Each controller is a pure decision function over a snapshot
//! (unit tested in its module) plus a thin loop driven by
//! [`store::Store::reflect`] that writes the decisions with
//! compare-and-swap. Controllers are supervised: an error or panic is
//! logged and the controller restarts from a fresh list.
//!
//! ```text
//!  run ─┬─ namespaces      Namespace            → create default, kube-system
//!       ├─ podcidr         Node                 → Node.spec.podCIDR(s)
//!       ├─ scheduler       Pod, Node            → Pod.spec.nodeName, PodScheduled
//!       ├─ deployments     Deployment, Pod      → Pods, Deployment.status
//!       ├─ services        Service              → clusterIP(s), nodePorts, defaults
//!       └─ endpointslices  Service, Pod, Slice  → EndpointSlices
//! ```
//!
//! Shared helpers live in `meta` (selectors, owner references, pod state)
//! and `cache` (watch caches, pacing, write outcomes). This module tree
//! must not touch the pod runtime's concerns (pod status, sandboxes).

mod cache;
mod deployments;
mod endpointslices;
mod meta;
mod namespaces;
mod podcidr;
mod scheduler;
mod services;

#[cfg(test)]
mod e2e_tests;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use api::k8s_openapi::{
    api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::Time, jiff::SignedDuration,
};
use ipnet::Ipv4Net;
use store::Store;
use tokio::task::JoinSet;

/// Settings of the lab control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneConfig {
    /// Cluster pod CIDR split into per-node podCIDRs (`10.244.0.0/16`).
    pub pod_cidr: Ipv4Net,
    /// Prefix length of each node's podCIDR (`24`).
    pub node_cidr_mask: u8,
    /// Service ClusterIP range (`10.96.0.0/16`).
    pub service_cidr: Ipv4Net,
    /// The cluster DNS Service IP, reserved for a Service asking for it
    /// (`10.96.0.10`).
    pub dns_service_ip: Ipv4Addr,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        Self {
            pod_cidr: Ipv4Net::new(Ipv4Addr::new(10, 244, 0, 0), 16).expect("valid prefix"),
            node_cidr_mask: 24,
            service_cidr: Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 16).expect("valid prefix"),
            dns_service_ip: Ipv4Addr::new(10, 96, 0, 10),
        }
    }
}

impl ControlPlaneConfig {
    /// Reject contradictory settings.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            self.node_cidr_mask >= self.pod_cidr.prefix_len() && self.node_cidr_mask <= 32,
            "node CIDR mask /{} must be between the pod CIDR's /{} and /32",
            self.node_cidr_mask,
            self.pod_cidr.prefix_len()
        );
        ensure!(
            self.service_cidr.contains(&self.dns_service_ip),
            "DNS service IP {} is outside the service CIDR {}",
            self.dns_service_ip,
            self.service_cidr
        );
        Ok(())
    }
}

/// The controllers [`run`] supervises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Controller {
    Namespaces,
    PodCidr,
    Scheduler,
    Deployments,
    Services,
    EndpointSlices,
}

impl Controller {
    const ALL: [Self; 6] = [
        Self::Namespaces,
        Self::PodCidr,
        Self::Scheduler,
        Self::Deployments,
        Self::Services,
        Self::EndpointSlices,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Namespaces => "namespaces",
            Self::PodCidr => "podcidr",
            Self::Scheduler => "scheduler",
            Self::Deployments => "deployments",
            Self::Services => "services",
            Self::EndpointSlices => "endpointslices",
        }
    }

    async fn run(self, store: Store, cfg: ControlPlaneConfig) -> anyhow::Result<()> {
        match self {
            Self::Namespaces => namespaces::run(store).await,
            Self::PodCidr => podcidr::run(store, cfg.pod_cidr, cfg.node_cidr_mask).await,
            Self::Scheduler => scheduler::run(store).await,
            Self::Deployments => deployments::run(store).await,
            Self::Services => {
                let ranges = services::ServiceRanges {
                    cidr: cfg.service_cidr,
                    dns: cfg.dns_service_ip,
                };
                services::run(store, ranges).await
            }
            Self::EndpointSlices => endpointslices::run(store).await,
        }
    }
}

/// Delay before a failed controller starts again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Run every controller until this future is dropped (which aborts them).
/// A controller that fails or panics is logged and restarted; only an
/// invalid configuration makes this return.
pub async fn run(store: Store, cfg: ControlPlaneConfig) -> anyhow::Result<()> {
    cfg.validate()
        .context("invalid control plane configuration")?;
    tracing::info!(
        pod_cidr = %cfg.pod_cidr,
        node_cidr_mask = cfg.node_cidr_mask,
        service_cidr = %cfg.service_cidr,
        dns_service_ip = %cfg.dns_service_ip,
        "starting lab control plane"
    );
    let mut tasks = JoinSet::new();
    let mut running = HashMap::new();
    for c in Controller::ALL {
        let handle = tasks.spawn(c.run(store.clone(), cfg.clone()));
        running.insert(handle.id(), c);
    }
    while let Some(joined) = tasks.join_next_with_id().await {
        let (id, outcome) = match joined {
            Ok((id, result)) => (id, Ok(result)),
            Err(e) => (e.id(), Err(e)),
        };
        let Some(c) = running.remove(&id) else {
            continue;
        };
        match outcome {
            Ok(Ok(())) => tracing::warn!(controller = c.name(), "controller stopped; restarting"),
            Ok(Err(e)) => tracing::error!(
                controller = c.name(),
                error = format!("{e:#}"),
                "controller failed; restarting"
            ),
            Err(e) => {
                tracing::error!(controller = c.name(), error = %e, "controller panicked; restarting")
            }
        }
        let (store, cfg) = (store.clone(), cfg.clone());
        let handle = tasks.spawn(async move {
            tokio::time::sleep(RESTART_DELAY).await;
            c.run(store, cfg).await
        });
        running.insert(handle.id(), c);
    }
    Ok(())
}

/// What [`delete_pod`] did.
#[derive(Debug, Clone)]
pub(crate) enum PodDeletion {
    /// The pod now has a deletionTimestamp; its kubelet finishes the job.
    Terminating(Pod),
    /// The object was removed at once (its last state).
    Deleted(Pod),
    /// There was no such pod.
    Absent,
}

/// Grace period of a pod's deletion (`terminationGracePeriodSeconds`,
/// default 30).
fn grace_period(pod: &Pod) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30)
        .max(0)
}

/// Start a graceful deletion; `false` if one is already under way.
fn mark_for_deletion(pod: &mut Pod, now: &Time) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let grace = grace_period(pod);
    let deadline = now
        .0
        .checked_add(SignedDuration::from_secs(grace))
        .unwrap_or(now.0);
    pod.metadata.deletion_timestamp = Some(Time(deadline));
    pod.metadata.deletion_grace_period_seconds = Some(grace);
    true
}

/// Delete a pod as the API server does; see [`request_pod_deletion`].
pub(crate) async fn delete_pod(
    store: &Store,
    namespace: &str,
    name: &str,
    force: bool,
) -> store::Result<PodDeletion> {
    let Some(pod) = store.get::<Pod>(Some(namespace), name).await? else {
        return Ok(PodDeletion::Absent);
    };
    if force || meta::pod_node(&pod).is_none() || meta::pod_is_finished(&pod) {
        return Ok(match store.delete::<Pod>(Some(namespace), name).await? {
            Some(last) => PodDeletion::Deleted(last),
            None => PodDeletion::Absent,
        });
    }
    let stamp = meta::now();
    match store
        .modify::<Pod>(Some(namespace), name, |p| mark_for_deletion(p, &stamp))
        .await
    {
        Ok(p) => Ok(PodDeletion::Terminating(p)),
        Err(store::Error::NotFound { .. }) => Ok(PodDeletion::Absent),
        Err(e) => Err(e),
    }
}

/// Delete a pod the way the API server does: a pod bound to a node that
/// has not finished gets `metadata.deletionTimestamp` (now + grace) and
/// `deletionGracePeriodSeconds` (from `spec.terminationGracePeriodSeconds`,
/// default 30), and its kubelet tears it down and deletes the object;
/// unbound or finished pods, or any pod with `force`, are deleted at once.
/// Repeating a graceful request is a no-op. A missing pod is
/// [`store::Error::NotFound`].
pub async fn request_pod_deletion(
    store: &Store,
    namespace: &str,
    name: &str,
    force: bool,
) -> store::Result<()> {
    match delete_pod(store, namespace, name, force).await? {
        PodDeletion::Terminating(_) | PodDeletion::Deleted(_) => Ok(()),
        PodDeletion::Absent => Err(store::Error::NotFound {
            kind: "Pod".into(),
            name: format!("{namespace}/{name}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_the_seed_lab() {
        let cfg = ControlPlaneConfig::default();
        assert_eq!(cfg.pod_cidr.to_string(), "10.244.0.0/16");
        assert_eq!(cfg.node_cidr_mask, 24);
        assert_eq!(cfg.service_cidr.to_string(), "10.96.0.0/16");
        assert_eq!(cfg.dns_service_ip, Ipv4Addr::new(10, 96, 0, 10));
        cfg.validate().unwrap();
        let bad = ControlPlaneConfig {
            node_cidr_mask: 8,
            ..cfg.clone()
        };
        assert!(bad.validate().is_err());
        let bad = ControlPlaneConfig {
            dns_service_ip: Ipv4Addr::new(10, 0, 0, 10),
            ..cfg
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn graceful_deletion_marks_once_with_the_pod_grace_period() {
        let mut pod = Pod::default();
        let t0 = meta::now();
        assert!(mark_for_deletion(&mut pod, &t0));
        assert_eq!(pod.metadata.deletion_grace_period_seconds, Some(30));
        let ts = pod.metadata.deletion_timestamp.clone().unwrap();
        assert_eq!(ts.0.duration_since(t0.0).as_secs(), 30);
        assert!(
            !mark_for_deletion(&mut pod, &meta::now()),
            "second request changes nothing"
        );

        let mut quick = Pod::default();
        quick
            .spec
            .get_or_insert_default()
            .termination_grace_period_seconds = Some(0);
        assert!(mark_for_deletion(&mut quick, &t0));
        assert_eq!(quick.metadata.deletion_grace_period_seconds, Some(0));
    }
}
