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

use std::collections::BTreeMap;

use store::Store;

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
/// First global identity (cluster-id 0).
pub const MIN_GLOBAL: u32 = 256;
/// Last global identity (cluster-id 0).
pub const MAX_GLOBAL: u32 = 65535;

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
    pub fn for_pod(
        namespace: &str,
        pod_labels: &BTreeMap<String, String>,
        service_account: &str,
        cluster: &str,
    ) -> Self {
        let _ = (namespace, pod_labels, service_account, cluster);
        todo!()
    }

    /// Labels of a reserved identity (`reserved:host`, ...); None if `id` is not reserved.
    pub fn reserved(id: u32) -> Option<Self> {
        let _ = id;
        todo!()
    }

    /// `source:key=value` strings, sorted (`cilium-dbg` output).
    pub fn to_strings(&self) -> Vec<String> {
        todo!()
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

/// Cluster-wide identity allocator over `CiliumIdentity` objects.
#[derive(Clone)]
pub struct Allocator {
    _todo: (),
}

impl Allocator {
    /// An allocator for the global range `min..=max`.
    pub fn new(store: Store, min: u32, max: u32) -> Self {
        let _ = (store, min, max);
        todo!()
    }

    /// The identity of `labels`: an existing CiliumIdentity with exactly
    /// these labels, or a new one (lowest free id, created with
    /// compare-and-swap; retried on conflict).
    pub async fn allocate(&self, labels: &Labels) -> Result<u32, Error> {
        let _ = labels;
        todo!()
    }

    /// Labels of an identity (reserved or global), if known.
    pub async fn lookup(&self, id: u32) -> Result<Option<Labels>, Error> {
        let _ = id;
        todo!()
    }
}
