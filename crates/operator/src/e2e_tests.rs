//! End-to-end tests: the operator's tasks running against a memory store,
//! driven only through CiliumNode, CiliumEndpoint and CiliumIdentity
//! objects, with deadline-bounded waits.

use std::collections::BTreeMap;
use std::time::Duration;

use api::cilium::endpoint::{CiliumEndpoint, EndpointIdentity, EndpointStatus};
use api::cilium::identity::CiliumIdentity;
use api::cilium::node::{CiliumNode, NodeAddress};
use store::Store;
use toolkit::OwnedTask;

use crate::config::OperatorConfig;
use crate::podcidr::current_error;

/// Start the operator; dropping the task is a crash/restart.
fn start(store: &Store, keys: &[(&str, &str)]) -> OwnedTask {
    let keys: BTreeMap<String, String> = keys
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    let config = OperatorConfig::from_keys(&keys).unwrap();
    let store = store.clone();
    OwnedTask::spawn("operator", async move {
        if let Err(e) = crate::run(store, config).await {
            panic!("operator failed: {e:#}");
        }
    })
}

const LAB: &[(&str, &str)] = &[
    ("ipam", "cluster-pool"),
    ("cluster-pool-ipv4-cidr", "172.20.0.0/16"),
    ("cluster-pool-ipv4-mask-size", "24"),
];

async fn create_node(store: &Store, name: &str, ip: &str) {
    let mut n = CiliumNode::default();
    n.metadata.name = Some(name.into());
    n.spec.addresses = Some(vec![NodeAddress {
        type_: "InternalIP".into(),
        ip: ip.into(),
    }]);
    store.create(&n).await.unwrap();
}

/// Poll `probe` until it returns `Some`, panicking with `what` after 10 s.
async fn wait_for<T, F: Future<Output = Option<T>>>(what: &str, mut probe: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn node(store: &Store, name: &str) -> CiliumNode {
    store.get(None, name).await.unwrap().unwrap()
}

fn cidrs_of(n: &CiliumNode) -> Option<Vec<String>> {
    n.spec.ipam.as_ref()?.pod_cidrs.clone()
}

async fn wait_cidr(store: &Store, name: &str) -> String {
    wait_for(&format!("podCIDRs of {name}"), || async {
        cidrs_of(&node(store, name).await).map(|c| c.join(","))
    })
    .await
}

async fn wait_error(store: &Store, name: &str) -> String {
    wait_for(&format!("operator error on {name}"), || async {
        current_error(&node(store, name).await).map(str::to_string)
    })
    .await
}

#[tokio::test]
async fn cluster_pool_assigns_keeps_across_restart_and_releases() {
    cluster_pool_lifecycle(Store::memory()).await;
}

/// The same against a real etcd.
#[tokio::test]
#[ignore = "needs etcd (installed by scripts/setup.sh); run by make test"]
async fn cluster_pool_lifecycle_on_etcd() {
    let etcd = store::testing::EtcdServer::start();
    cluster_pool_lifecycle(Store::etcd(&etcd.endpoints()).await.unwrap()).await;
}

async fn cluster_pool_lifecycle(store: Store) {
    let operator = start(&store, LAB);
    create_node(&store, "k8s-ctr", "192.168.10.100").await;
    create_node(&store, "k8s-w1", "192.168.10.101").await;
    create_node(&store, "k8s-w0", "192.168.20.100").await;
    assert_eq!(wait_cidr(&store, "k8s-ctr").await, "172.20.0.0/24");
    assert_eq!(wait_cidr(&store, "k8s-w1").await, "172.20.1.0/24");
    assert_eq!(wait_cidr(&store, "k8s-w0").await, "172.20.2.0/24");

    // Restart: existing blocks are restored, not reassigned.
    drop(operator);
    let operator = start(&store, LAB);
    create_node(&store, "k8s-w2", "192.168.10.102").await;
    assert_eq!(wait_cidr(&store, "k8s-w2").await, "172.20.3.0/24");
    assert_eq!(wait_cidr(&store, "k8s-ctr").await, "172.20.0.0/24");
    assert_eq!(wait_cidr(&store, "k8s-w1").await, "172.20.1.0/24");
    assert_eq!(wait_cidr(&store, "k8s-w0").await, "172.20.2.0/24");

    // Delete: the block is released but set aside while others are free,
    // so new nodes and the re-created node get new pod CIDRs.
    store.delete::<CiliumNode>(None, "k8s-w1").await.unwrap();
    create_node(&store, "k8s-w3", "192.168.10.103").await;
    assert_eq!(wait_cidr(&store, "k8s-w3").await, "172.20.4.0/24");
    create_node(&store, "k8s-w1", "192.168.10.101").await;
    assert_eq!(wait_cidr(&store, "k8s-w1").await, "172.20.5.0/24");
    for name in ["k8s-ctr", "k8s-w0", "k8s-w1", "k8s-w2", "k8s-w3"] {
        assert_eq!(current_error(&node(&store, name).await), None, "{name}");
    }
    drop(operator);
}

#[tokio::test]
async fn bad_mask_is_reported_on_every_node_and_nothing_is_allocated() {
    let store = Store::memory();
    create_node(&store, "a", "10.0.0.1").await;
    let _operator = start(
        &store,
        &[
            ("cluster-pool-ipv4-cidr", "172.20.0.0/16"),
            ("cluster-pool-ipv4-mask-size", "31"),
        ],
    );
    create_node(&store, "b", "10.0.0.2").await;
    let msg = "cluster-pool-ipv4-mask-size /31 is too long: the minimum block is /30";
    assert_eq!(wait_error(&store, "a").await, msg);
    assert_eq!(wait_error(&store, "b").await, msg);
    for name in ["a", "b"] {
        assert_eq!(cidrs_of(&node(&store, name).await), None);
    }
}

#[tokio::test]
async fn exhaustion_is_reported_on_the_node_left_out_until_a_block_frees() {
    let store = Store::memory();
    let _operator = start(
        &store,
        &[
            ("cluster-pool-ipv4-cidr", "172.20.0.0/23"),
            ("cluster-pool-ipv4-mask-size", "24"),
        ],
    );
    create_node(&store, "a", "10.0.0.1").await;
    assert_eq!(wait_cidr(&store, "a").await, "172.20.0.0/24");
    create_node(&store, "b", "10.0.0.2").await;
    assert_eq!(wait_cidr(&store, "b").await, "172.20.1.0/24");
    create_node(&store, "c", "10.0.0.3").await;
    let error = wait_error(&store, "c").await;
    assert!(error.contains("exhausted"), "{error}");
    assert_eq!(current_error(&node(&store, "a").await), None);

    store.delete::<CiliumNode>(None, "a").await.unwrap();
    assert_eq!(wait_cidr(&store, "c").await, "172.20.0.0/24");
    assert_eq!(current_error(&node(&store, "c").await), None);
}

async fn create_endpoint(store: &Store, name: &str, identity: u32) {
    let mut ep = CiliumEndpoint::default();
    ep.metadata.name = Some(name.into());
    ep.metadata.namespace = Some("default".into());
    ep.status = Some(EndpointStatus {
        identity: Some(EndpointIdentity {
            id: identity.into(),
            labels: None,
        }),
        ..EndpointStatus::default()
    });
    store.create(&ep).await.unwrap();
}

async fn identity_exists(store: &Store, id: u32) -> bool {
    store
        .get::<CiliumIdentity>(None, &id.to_string())
        .await
        .unwrap()
        .is_some()
}

fn app(name: &str) -> identity::Labels {
    identity::Labels::for_pod(
        "default",
        &BTreeMap::from([("app".to_string(), name.to_string())]),
        "default",
        "default",
    )
}

/// Identity GC, in kubernetes IPAM mode (which must leave nodes alone).
#[tokio::test]
async fn unused_identities_are_collected_and_used_ones_kept() {
    let store = Store::memory();
    create_node(&store, "k8s-ctr", "192.168.10.100").await;
    let _operator = start(
        &store,
        &[("ipam", "kubernetes"), ("identity-gc-interval", "100ms")],
    );
    let alloc = identity::Allocator::new(store.clone(), identity::MIN_GLOBAL, identity::MAX_GLOBAL);
    let web = alloc.allocate(&app("webpod")).await.unwrap();
    let curl = alloc.allocate(&app("curl")).await.unwrap();
    create_endpoint(&store, "webpod-1", web).await;

    wait_for("unused identity deleted", || async {
        (!identity_exists(&store, curl).await).then_some(())
    })
    .await;
    assert!(
        identity_exists(&store, web).await,
        "a referenced identity is kept"
    );

    // Create/delete cycles leave no identity behind.
    for i in 0..5 {
        let id = alloc.allocate(&app(&format!("cycle{i}"))).await.unwrap();
        create_endpoint(&store, &format!("cycle-{i}"), id).await;
        store
            .delete::<CiliumEndpoint>(Some("default"), &format!("cycle-{i}"))
            .await
            .unwrap();
    }
    store
        .delete::<CiliumEndpoint>(Some("default"), "webpod-1")
        .await
        .unwrap();
    wait_for("every identity collected", || async {
        let left = store.list::<CiliumIdentity>(None).await.unwrap().items;
        left.is_empty().then_some(())
    })
    .await;
    assert_eq!(
        cidrs_of(&node(&store, "k8s-ctr").await),
        None,
        "kubernetes mode allocates nothing"
    );
    assert_eq!(current_error(&node(&store, "k8s-ctr").await), None);
}
