//! Tests of labels and of the allocator against the memory store; the
//! etcd tests are in `tests/etcd.rs`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use api::cilium::identity::CiliumIdentity;
use store::Store;

use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn app(name: &str) -> Labels {
    Labels::for_pod("default", &map(&[("app", name)]), "default", "default")
}

#[test]
fn pod_labels_follow_upstream_filter_and_add_namespace_cluster_and_sa() {
    let pod = map(&[
        ("app", "webpod"),
        ("pod-template-hash", "5d4f9c8b7"),
        ("controller-revision-hash", "abc"),
        ("statefulset.kubernetes.io/pod-name", "db-0"),
        ("io.kubernetes.pod.name", "webpod-1"),
        ("app.kubernetes.io/name", "web"),
        ("tier", "front"),
    ]);
    let labels = Labels::for_pod("default", &pod, "default", "default");
    assert_eq!(
        labels.to_strings(),
        [
            "k8s:app=webpod",
            "k8s:app.kubernetes.io/name=web",
            "k8s:io.cilium.k8s.policy.cluster=default",
            "k8s:io.cilium.k8s.policy.serviceaccount=default",
            "k8s:io.kubernetes.pod.namespace=default",
            "k8s:tier=front",
        ]
    );
    assert_eq!(labels.0["k8s:app"], "webpod");
    // Pods differing only in excluded labels share the identity labels.
    let other = Labels::for_pod(
        "default",
        &map(&[
            ("app", "webpod"),
            ("pod-template-hash", "x"),
            ("tier", "front"),
            ("app.kubernetes.io/name", "web"),
        ]),
        "default",
        "default",
    );
    assert_eq!(labels, other);
    // Empty service account and cluster add nothing.
    let bare = Labels::for_pod("kube-system", &BTreeMap::new(), "", "");
    assert_eq!(
        bare.to_strings(),
        ["k8s:io.kubernetes.pod.namespace=kube-system"]
    );
    assert!(is_identity_label("app"));
    assert!(!is_identity_label("batch.kubernetes.io/controller-uid"));
    assert!(!is_identity_label("annotation.foo"));
}

#[test]
fn reserved_labels_round_trip_by_id() {
    assert_eq!(
        Labels::reserved(HOST).unwrap().to_strings(),
        ["reserved:host"]
    );
    assert_eq!(
        Labels::reserved(WORLD).unwrap().to_strings(),
        ["reserved:world"]
    );
    assert_eq!(
        Labels::reserved(HEALTH).unwrap().to_strings(),
        ["reserved:health"]
    );
    assert_eq!(
        Labels::reserved(REMOTE_NODE).unwrap().to_strings(),
        ["reserved:remote-node"]
    );
    assert_eq!(
        Labels::reserved(KUBE_APISERVER).unwrap().to_strings(),
        ["reserved:kube-apiserver"]
    );
    for id in 1..=10 {
        assert_eq!(Labels::reserved(id).unwrap().reserved_id(), Some(id));
    }
    assert_eq!(Labels::reserved(0), None);
    assert_eq!(Labels::reserved(MIN_GLOBAL), None);
    assert_eq!(app("x").reserved_id(), None);
}

#[tokio::test]
async fn same_labels_same_id_new_labels_lowest_free() {
    let store = Store::memory();
    let alloc = Allocator::new(store.clone(), MIN_GLOBAL, MAX_GLOBAL);
    let web = alloc.allocate(&app("webpod")).await.unwrap();
    assert_eq!(web, 256);
    assert_eq!(alloc.allocate(&app("webpod")).await.unwrap(), 256);
    assert_eq!(alloc.allocate(&app("curl")).await.unwrap(), 257);
    assert_eq!(
        alloc
            .allocate(&Labels::reserved(HOST).unwrap())
            .await
            .unwrap(),
        HOST
    );

    let stored: CiliumIdentity = store.get(None, "256").await.unwrap().unwrap();
    assert_eq!(stored.security_labels["k8s:app"], "webpod");
    assert_eq!(
        stored.security_labels["k8s:io.kubernetes.pod.namespace"],
        "default"
    );

    // A second node sees the same identity.
    let other_node = Allocator::new(store.clone(), MIN_GLOBAL, MAX_GLOBAL);
    assert_eq!(other_node.allocate(&app("webpod")).await.unwrap(), 256);
    assert_eq!(other_node.lookup(257).await.unwrap(), Some(app("curl")));
    assert_eq!(
        other_node.lookup(HOST).await.unwrap(),
        Labels::reserved(HOST)
    );
    assert_eq!(other_node.lookup(999).await.unwrap(), None);

    // A freed id is reused for the next new label set.
    store.delete::<CiliumIdentity>(None, "256").await.unwrap();
    wait_until(|| alloc.cached(&app("webpod")).is_none()).await;
    assert_eq!(alloc.allocate(&app("new")).await.unwrap(), 256);
    assert_eq!(alloc.allocate(&app("webpod")).await.unwrap(), 258);
}

#[tokio::test]
async fn range_is_respected_and_exhaustion_reported() {
    let store = Store::memory();
    let alloc = Allocator::new(store.clone(), 300, 301);
    assert_eq!(alloc.allocate(&app("a")).await.unwrap(), 300);
    assert_eq!(alloc.allocate(&app("b")).await.unwrap(), 301);
    let err = alloc.allocate(&app("c")).await.unwrap_err();
    assert!(matches!(err, Error::Exhausted(300, 301)), "{err}");
    assert_eq!(err.to_string(), "no free identity in 300..=301");
    // Identities outside the range (another cluster's) are neither used nor counted.
    let other = Allocator::new(store, 400, 500);
    assert_eq!(other.allocate(&app("a")).await.unwrap(), 400);
}

/// Poll `cond` until true, panicking after a deadline.
async fn wait_until(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn warm_cache_answers_known_labels() {
    let store = Store::memory();
    let alloc = Allocator::new(store.clone(), MIN_GLOBAL, MAX_GLOBAL);
    let id = alloc.allocate(&app("webpod")).await.unwrap();
    wait_until(|| alloc.cached(&app("webpod")) == Some(id)).await;
    // An identity created by another node reaches the cache through the watch.
    let other = Allocator::new(store.clone(), MIN_GLOBAL, MAX_GLOBAL);
    let curl = other.allocate(&app("curl")).await.unwrap();
    wait_until(|| alloc.cached(&app("curl")) == Some(curl)).await;
    // The cache serves the labels of the id as well.
    assert_eq!(alloc.lookup(curl).await.unwrap(), Some(app("curl")));
}

/// Several "nodes" (allocators on one store), each with several tasks,
/// allocate overlapping label sets at once: every label set ends up with
/// exactly one id everywhere, and no id carries two label sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_allocators_converge() {
    let store = Store::memory();
    assert_converges(&store, 6, 4, 12).await;
}

pub(crate) async fn assert_converges(store: &Store, nodes: usize, tasks: usize, label_sets: usize) {
    let allocators: Vec<Allocator> = (0..nodes)
        .map(|_| Allocator::new(store.clone(), MIN_GLOBAL, MAX_GLOBAL))
        .collect();
    let mut handles = Vec::new();
    for (n, alloc) in allocators.iter().enumerate() {
        for t in 0..tasks {
            let alloc = alloc.clone();
            handles.push(tokio::spawn(async move {
                let mut got = Vec::new();
                // Different tasks walk the label sets in different orders.
                for i in 0..label_sets {
                    let which = (i + n * 7 + t * 3) % label_sets;
                    let id = alloc.allocate(&app(&format!("app{which}"))).await.unwrap();
                    got.push((which, id));
                }
                got
            }));
        }
    }
    let mut ids: HashMap<usize, u32> = HashMap::new();
    for handle in handles {
        for (which, id) in handle.await.unwrap() {
            let first = *ids.entry(which).or_insert(id);
            assert_eq!(first, id, "label set app{which} got two ids");
        }
    }
    let mut owners: HashMap<u32, usize> = HashMap::new();
    for (which, id) in &ids {
        assert!(
            owners.insert(*id, *which).is_none(),
            "id {id} given to two label sets"
        );
    }
    let stored = store.list::<CiliumIdentity>(None).await.unwrap().items;
    assert_eq!(
        stored.len(),
        label_sets,
        "one stored identity per label set"
    );
    for identity in stored {
        let id = identity.id().unwrap();
        assert_eq!(
            Labels(identity.security_labels),
            app(&format!("app{}", owners[&id]))
        );
    }
}

/// The same protocol against a real etcd (`store::testing::EtcdServer`).
mod etcd {
    use store::testing::EtcdServer;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    #[ignore = "needs etcd (installed by scripts/setup.sh); run by make test"]
    async fn allocators_on_etcd_converge() {
        let etcd = EtcdServer::start();
        let store = Store::etcd(&etcd.endpoints()).await.unwrap();
        assert_converges(&store, 4, 3, 8).await;
    }

    /// Once the cache is warm, known labels need no store round trip: they
    /// are served while etcd is down; new labels fail with a store error.
    #[tokio::test]
    #[ignore = "needs etcd (installed by scripts/setup.sh); run by make test"]
    async fn warm_cache_serves_known_labels_while_etcd_is_down() {
        let mut etcd = EtcdServer::start();
        let store = Store::etcd(&etcd.endpoints()).await.unwrap();
        let alloc = Allocator::new(store, MIN_GLOBAL, MAX_GLOBAL);
        let id = alloc.allocate(&app("webpod")).await.unwrap();
        assert_eq!(id, MIN_GLOBAL);
        wait_until(|| alloc.cached(&app("webpod")) == Some(id)).await;
        etcd.stop();
        assert_eq!(alloc.allocate(&app("webpod")).await.unwrap(), id);
        assert_eq!(alloc.lookup(id).await.unwrap(), Some(app("webpod")));
        assert!(matches!(
            alloc.allocate(&app("new")).await,
            Err(Error::Store(_))
        ));
        etcd.restart();
        assert_eq!(alloc.allocate(&app("new")).await.unwrap(), id + 1);
    }
}
