//! `cilium-operator`: the cluster-wide controllers.
//!
//! - cluster-pool IPAM: every CiliumNode gets a pod CIDR block from
//!   `cluster-pool-ipv4-cidr` (`spec.ipam.podCIDRs`); errors go to
//!   `status.ipam.operator-status.error` ([`podcidr`]);
//! - identity garbage collection: CiliumIdentities no CiliumEndpoint uses
//!   are deleted after a grace period ([`identitygc`]).
//!
//! Replicas elect a leader on the Lease `kube-system/cilium-operator-resource-lock`
//! ([`leader`]); only the leader runs the controllers.
//!
//! Configuration is the `cilium-config` key set ([`config`]); all I/O
//! lives in the tasks started by [`run`]. The operator touches only
//! CiliumNode IPAM fields and CiliumIdentity objects.

pub mod config;
pub mod identitygc;
pub mod leader;
pub mod podcidr;
mod tasks;

pub use tasks::run;

#[cfg(test)]
mod e2e_tests;
