//! The lab's control plane: node podCIDRs, scheduler, Deployment, Service
//! and EndpointSlice controllers, and pod deletion as the API server does
//! it. It is to grow into the lab's Kubernetes API server.
//!
//! Runs as one process in the control-plane node's namespace next to etcd
//! ([`run`] with a [`Config`]); the lab's CLI deletes pods through
//! [`request_pod_deletion`]. Each controller is a pure decision function
//! over a snapshot (unit tested in its module) plus a thin loop driven by
//! [`store::Store::reflect`] that writes the decisions with
//! compare-and-swap. Controllers are supervised: an error or panic is
//! logged and the controller restarts (with backoff) from a fresh list.
//!
//! ```text
//!  run ─┬─ namespaces      Namespace            → create default, kube-system
//!       ├─ podcidr         Node                 → Node.spec.podCIDR(s)
//!       ├─ scheduler       Pod, Node            → Pod.spec.nodeName, PodScheduled
//!       ├─ deployments     Deployment, Pod      → Pods, Deployment.status
//!       ├─ services        Service              → clusterIP(s), nodePorts, defaults
//!       ├─ endpointslices  Service, Pod, Slice  → EndpointSlices
//!       └─ endpoints       Slice, Endpoints     → Endpoints (legacy)
//! ```
//!
//! Shared helpers live in `meta` (selectors, owner references, pod state)
//! and `cache` (watch caches, pacing, write outcomes). It owns the cluster
//! objects' spec-side decisions only: it must not touch the pod runtime's
//! concerns (pod status, sandboxes, CNI) nor anything on a node.

pub mod apiserver;
mod cache;
mod deployments;
mod endpoints;
mod endpointslices;
mod meta;
mod namespaces;
mod podcidr;
mod scheduler;
mod services;

#[cfg(test)]
mod e2e_tests;

use std::net::Ipv4Addr;

use api::k8s_openapi::{
    api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::Time, jiff::SignedDuration,
};
use ipnet::Ipv4Net;
use store::Store;
use toolkit::Supervisor;

/// Why the control plane cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings contradict each other.
    #[error("invalid control plane configuration: {0}")]
    InvalidConfig(String),
    /// A watch of the store ended (a controller restarts from a fresh list).
    #[error("{kind} watch ended")]
    WatchEnded {
        /// The watched kind, lower case (`pod`).
        kind: String,
    },
}

/// Settings of the lab control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
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

impl Default for Config {
    fn default() -> Self {
        Self {
            pod_cidr: Ipv4Net::new(Ipv4Addr::new(10, 244, 0, 0), 16).expect("valid prefix"),
            node_cidr_mask: 24,
            service_cidr: Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 16).expect("valid prefix"),
            dns_service_ip: Ipv4Addr::new(10, 96, 0, 10),
        }
    }
}

impl Config {
    /// Reject contradictory settings.
    pub fn validate(&self) -> Result<(), Error> {
        if self.node_cidr_mask < self.pod_cidr.prefix_len() || self.node_cidr_mask > 32 {
            return Err(Error::InvalidConfig(format!(
                "node CIDR mask /{} must be between the pod CIDR's /{} and /32",
                self.node_cidr_mask,
                self.pod_cidr.prefix_len()
            )));
        }
        if !self.service_cidr.contains(&self.dns_service_ip) {
            return Err(Error::InvalidConfig(format!(
                "DNS service IP {} is outside the service CIDR {}",
                self.dns_service_ip, self.service_cidr
            )));
        }
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
    Endpoints,
}

impl Controller {
    const ALL: [Self; 7] = [
        Self::Namespaces,
        Self::PodCidr,
        Self::Scheduler,
        Self::Deployments,
        Self::Services,
        Self::EndpointSlices,
        Self::Endpoints,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Namespaces => "namespaces",
            Self::PodCidr => "podcidr",
            Self::Scheduler => "scheduler",
            Self::Deployments => "deployments",
            Self::Services => "services",
            Self::EndpointSlices => "endpointslices",
            Self::Endpoints => "endpoints",
        }
    }

    async fn run(self, store: Store, cfg: Config) -> Result<(), Error> {
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
            Self::Endpoints => endpoints::run(store).await,
        }
    }
}

/// Run every controller until this future is dropped (which aborts them).
/// A controller that fails or panics is logged and restarted with
/// backoff ([`toolkit::Supervisor`]); only an invalid configuration makes
/// this return.
pub async fn run(store: Store, cfg: Config) -> Result<(), Error> {
    cfg.validate()?;
    tracing::info!(
        pod_cidr = %cfg.pod_cidr,
        node_cidr_mask = cfg.node_cidr_mask,
        service_cidr = %cfg.service_cidr,
        dns_service_ip = %cfg.dns_service_ip,
        "starting lab control plane"
    );
    let mut supervisor = Supervisor::default();
    for c in Controller::ALL {
        let (store, cfg) = (store.clone(), cfg.clone());
        supervisor.spawn(c.name(), move || c.run(store.clone(), cfg.clone()));
    }
    std::future::pending().await
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
        let cfg = Config::default();
        assert_eq!(cfg.pod_cidr.to_string(), "10.244.0.0/16");
        assert_eq!(cfg.node_cidr_mask, 24);
        assert_eq!(cfg.service_cidr.to_string(), "10.96.0.0/16");
        assert_eq!(cfg.dns_service_ip, Ipv4Addr::new(10, 96, 0, 10));
        cfg.validate().unwrap();
        let bad = Config {
            node_cidr_mask: 8,
            ..cfg.clone()
        };
        assert!(bad.validate().is_err());
        let bad = Config {
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
