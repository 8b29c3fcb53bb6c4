//! Small helpers shared by every controller of the lab control plane:
//! owner references, pod state predicates,
//! creation ordering, stable hashes and kube-style random name suffixes.
//!
//! Pure functions only; no store access, no I/O. Controllers must use
//! these instead of re-implementing them.

use std::collections::BTreeMap;

use api::k8s_openapi::{
    Metadata, Resource,
    api::core::v1::Pod,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time},
    jiff::Timestamp,
};

pub use api::conditions::pod_is_ready;
pub use toolkit::cache::key_of;
pub use toolkit::selector::{label_selector_matches, map_selector_matches};

/// Label key of a pod's template hash (set by the Deployment controller).
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Characters of generated name suffixes and hashes: no vowels (no words),
/// no look-alikes (`0`/`o`, `1`/`l`/`i`, `3`/`e`).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Labels of an object (empty map when unset).
pub fn labels(meta: &ObjectMeta) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    meta.labels.as_ref().unwrap_or(&EMPTY)
}

/// The owner reference marking `owner` as the managing controller of an
/// object (`controller: true`, `blockOwnerDeletion: true`).
pub fn controller_reference<T>(owner: &T) -> OwnerReference
where
    T: Resource + Metadata<Ty = ObjectMeta>,
{
    let meta = owner.metadata();
    OwnerReference {
        api_version: T::API_VERSION.to_string(),
        kind: T::KIND.to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The owner reference with `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Whether the object is controlled by an object of kind `T` (any uid).
pub fn controller_uid_of_kind<T: Resource>(meta: &ObjectMeta) -> Option<&str> {
    controller_of(meta)
        .filter(|r| r.kind == T::KIND && r.api_version == T::API_VERSION)
        .map(|r| r.uid.as_str())
}

/// Sort key "oldest first": creationTimestamp, then namespace and name.
pub fn creation_order(meta: &ObjectMeta) -> (Option<Timestamp>, &str, &str) {
    (
        meta.creation_timestamp.as_ref().map(|t| t.0),
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or(""),
    )
}

/// The current time as a Kubernetes `Time` (jiff is built without its
/// `std` clock here, so read the system clock directly).
pub fn now() -> Time {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(since_epoch.as_secs()).unwrap_or(0);
    let nanos = i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0);
    Time(Timestamp::new(secs, nanos).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// The pod has been asked to terminate (`metadata.deletionTimestamp`).
pub fn pod_is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The pod's phase is `Succeeded` or `Failed`: it runs nothing any more.
pub fn pod_is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The pod neither terminates nor has finished: it counts as a replica.
pub fn pod_is_active(pod: &Pod) -> bool {
    !pod_is_terminating(pod) && !pod_is_finished(pod)
}

/// The pod's IPv4 address as reported by its kubelet.
pub fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|ip| !ip.is_empty())
}

/// The node a pod is bound to.
pub fn pod_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// 64-bit FNV-1a: a stable, dependency-free hash for names.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `len` characters of the safe alphabet derived from `value`.
pub fn safe_encode(mut value: u64, len: usize) -> String {
    let base = SAFE_ALPHABET.len() as u64;
    (0..len)
        .map(|_| {
            let c = SAFE_ALPHABET[(value % base) as usize] as char;
            value /= base;
            c
        })
        .collect()
}

/// A random 5-character name suffix (`webpod-6d8f7c9b4-x2kqz`).
pub fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..5)
        .map(|_| SAFE_ALPHABET[rng.random_range(0..SAFE_ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use api::k8s_openapi::api::apps::v1::Deployment;

    use super::*;

    #[test]
    fn owner_references() {
        let mut d = Deployment::default();
        d.metadata.name = Some("webpod".into());
        d.metadata.uid = Some("u1".into());
        let r = controller_reference(&d);
        assert_eq!(
            (r.api_version.as_str(), r.kind.as_str(), r.uid.as_str()),
            ("apps/v1", "Deployment", "u1")
        );
        let meta = ObjectMeta {
            owner_references: Some(vec![r]),
            ..Default::default()
        };
        assert_eq!(controller_uid_of_kind::<Deployment>(&meta), Some("u1"));
        assert_eq!(controller_uid_of_kind::<Pod>(&meta), None);
    }

    #[test]
    fn encodings_are_stable() {
        assert_eq!(stable_hash(b"abc"), stable_hash(b"abc"));
        assert_ne!(stable_hash(b"abc"), stable_hash(b"abd"));
        let s = safe_encode(stable_hash(b"abc"), 10);
        assert_eq!(s.len(), 10);
        assert!(s.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        let r = random_suffix();
        assert_eq!(r.len(), 5);
        assert!(r.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
    }
}
