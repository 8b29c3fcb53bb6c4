//! Security identities.
//!
//! - [`Labels`]: an identity's label set (`k8s:app=webpod`,
//!   `k8s:io.kubernetes.pod.namespace=default`, `reserved:host`), built
//!   from a pod's labels and namespace the way upstream does.
//! - Reserved identities (`HOST` 1, `WORLD` 2, `UNMANAGED` 3, `HEALTH` 4,
//!   `INIT` 5, `REMOTE_NODE` 6, `KUBE_APISERVER` 7, `INGRESS` 8) and their
//!   labels.
//! - [`Allocator`]: cluster-wide allocation of global identities
//!   (256..=65535 for cluster-id 0; `[id<<16, ((id+1)<<16)-1]` ranges with
//!   ClusterMesh) through `CiliumIdentity` objects in the store: the same
//!   labels give the same identity on every node, concurrent allocators
//!   never hand one ID to two label sets (create is compare-and-swap).
//!
//! Labels are pure; only [`Allocator`] talks to the store (module
//! `allocator`, with its watch-fed cache in `cache`).

mod allocator;
mod cache;

use std::collections::BTreeMap;

pub use allocator::Allocator;

/// Reserved identity: the local host.
pub const HOST: u32 = 1;
/// Reserved identity: outside the cluster.
pub const WORLD: u32 = 2;
/// Reserved identity: unmanaged endpoints.
pub const UNMANAGED: u32 = 3;
/// Reserved identity: health endpoints.
pub const HEALTH: u32 = 4;
/// Reserved identity: endpoints whose identity is not resolved yet.
pub const INIT: u32 = 5;
/// Reserved identity: other nodes.
pub const REMOTE_NODE: u32 = 6;
/// Reserved identity: the Kubernetes API server.
pub const KUBE_APISERVER: u32 = 7;
/// Reserved identity: ingress.
pub const INGRESS: u32 = 8;
/// Reserved identity: IPv4 addresses outside the cluster (dual-stack world).
pub const WORLD_IPV4: u32 = 9;
/// Reserved identity: IPv6 addresses outside the cluster (dual-stack world).
pub const WORLD_IPV6: u32 = 10;
/// First global identity (cluster-id 0).
pub const MIN_GLOBAL: u32 = 256;
/// Last global identity (cluster-id 0).
pub const MAX_GLOBAL: u32 = 65535;

/// Reserved identities and their label (`reserved:<name>`), as upstream.
const RESERVED: &[(u32, &str)] = &[
    (HOST, "host"),
    (WORLD, "world"),
    (UNMANAGED, "unmanaged"),
    (HEALTH, "health"),
    (INIT, "init"),
    (REMOTE_NODE, "remote-node"),
    (KUBE_APISERVER, "kube-apiserver"),
    (INGRESS, "ingress"),
    (WORLD_IPV4, "world-ipv4"),
    (WORLD_IPV6, "world-ipv6"),
];

/// Label key (without source) of the pod's namespace.
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Label key (without source) of the pod's cluster name.
pub const POLICY_CLUSTER_LABEL: &str = "io.cilium.k8s.policy.cluster";
/// Label key (without source) of the pod's service account.
pub const POLICY_SERVICE_ACCOUNT_LABEL: &str = "io.cilium.k8s.policy.serviceaccount";

/// Pod label keys (or key fragments) that never make an identity, as in
/// upstream's default label filter (`pkg/labelsfilter`): they are unique
/// per pod or rollout and would explode the number of identities.
const EXCLUDED_FRAGMENTS: &[&str] = &[
    "io.kubernetes",
    "kubernetes.io",
    "k8s.io",
    "pod-template-generation",
    "pod-template-hash",
    "controller-revision-hash",
    "controller-uid",
    "annotation",
    "etcd_node",
];

/// Pod label key fragment kept even though it matches an exclusion
/// (upstream's default include prefix, which wins by being longer).
const INCLUDED_FRAGMENT: &str = "app.kubernetes.io";

/// Whether a pod label (key without source) belongs in the pod's identity
/// under upstream's default label filter: `app=webpod` yes,
/// `pod-template-hash`, `controller-revision-hash`,
/// `statefulset.kubernetes.io/pod-name` and `io.kubernetes.*` no,
/// `app.kubernetes.io/name` yes.
pub fn is_identity_label(key: &str) -> bool {
    key.contains(INCLUDED_FRAGMENT) || !EXCLUDED_FRAGMENTS.iter().any(|f| key.contains(f))
}

/// An identity's labels, `source:key` -> value, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(pub BTreeMap<String, String>);

impl Labels {
    /// Labels of a pod: each pod label as `k8s:<key>=<value>`, plus
    /// `k8s:io.kubernetes.pod.namespace=<ns>`,
    /// `k8s:io.cilium.k8s.policy.cluster=<cluster>` and
    /// `k8s:io.cilium.k8s.policy.serviceaccount=<sa>`; labels upstream
    /// excludes from identities (e.g. `pod-template-hash`,
    /// `controller-revision-hash`, `io.kubernetes.pod.*` set by kubelet) are
    /// dropped.
    ///
    /// An empty `service_account` or `cluster` adds no label.
    pub fn for_pod(
        namespace: &str,
        pod_labels: &BTreeMap<String, String>,
        service_account: &str,
        cluster: &str,
    ) -> Self {
        let mut labels: BTreeMap<String, String> = pod_labels
            .iter()
            .filter(|(key, _)| is_identity_label(key))
            .map(|(key, value)| (format!("k8s:{key}"), value.clone()))
            .collect();
        let mut set = |key: &str, value: &str| {
            if !value.is_empty() {
                labels.insert(format!("k8s:{key}"), value.to_string());
            }
        };
        set(POD_NAMESPACE_LABEL, namespace);
        set(POLICY_CLUSTER_LABEL, cluster);
        set(POLICY_SERVICE_ACCOUNT_LABEL, service_account);
        Self(labels)
    }

    /// Labels of a reserved identity (`reserved:host`, ...); None if `id` is not reserved.
    pub fn reserved(id: u32) -> Option<Self> {
        let (_, name) = RESERVED.iter().find(|(rid, _)| *rid == id)?;
        Some(Self(BTreeMap::from([(
            format!("reserved:{name}"),
            String::new(),
        )])))
    }

    /// The reserved identity these labels denote (exactly one
    /// `reserved:<name>` label), if any.
    pub fn reserved_id(&self) -> Option<u32> {
        let mut keys = self.0.keys();
        let (Some(key), None) = (keys.next(), keys.next()) else {
            return None;
        };
        let name = key.strip_prefix("reserved:")?;
        RESERVED.iter().find(|(_, n)| *n == name).map(|(id, _)| *id)
    }

    /// `source:key=value` strings, sorted (`cilium-dbg` output).
    ///
    /// A label with an empty value prints without `=` (`reserved:host`).
    pub fn to_strings(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(key, value)| {
                if value.is_empty() {
                    key.clone()
                } else {
                    format!("{key}={value}")
                }
            })
            .collect()
    }
}

/// Identity allocation errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// No free identity in the range.
    #[error("no free identity in {0}..={1}")]
    Exhausted(u32, u32),
}

#[cfg(test)]
mod tests;
