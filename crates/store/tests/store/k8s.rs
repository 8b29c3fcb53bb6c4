//! The api crate's real Kubernetes types (k8s-openapi `Pod`, `Namespace`)
//! through the store, on memory and etcd.

use api::Object;
use api::k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, PodStatus};
use api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use store::Store;

use crate::harness::start_etcd;

fn pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: Some("traefik/whoami".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn pods_and_namespaces(store: Store) {
    let ns = store
        .create(&Namespace {
            metadata: ObjectMeta {
                name: Some("team".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .expect("create namespace");
    assert_eq!(ns.metadata.namespace, None);
    assert!(ns.metadata.creation_timestamp.is_some());

    let created = store.create(&pod("web")).await.expect("create pod");
    assert_eq!(created.namespace(), Some("default"));
    let value = store
        .get_value(&Pod::TYPE, Some("default"), "web")
        .await
        .expect("get value")
        .expect("exists");
    assert_eq!(
        (value["apiVersion"].as_str(), value["kind"].as_str()),
        (Some("v1"), Some("Pod"))
    );

    // A status write keeps the generation; the typed view round-trips.
    let updated = store
        .modify::<Pod>(Some("default"), "web", |p| {
            p.status = Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some("10.244.0.5".into()),
                ..Default::default()
            });
            true
        })
        .await
        .expect("set status");
    assert_eq!(updated.metadata.generation, Some(1));
    let got: Pod = store
        .get(Some("default"), "web")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got, updated);
    assert_eq!(
        got.status.and_then(|s| s.pod_ip).as_deref(),
        Some("10.244.0.5")
    );

    let namespaces = store.list::<Namespace>(None).await.expect("list");
    assert_eq!(namespaces.items, [ns]);
}

#[tokio::test]
async fn pods_and_namespaces_memory() {
    pods_and_namespaces(Store::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd (installed by scripts/setup.sh); run by make test"]
async fn pods_and_namespaces_etcd() {
    let etcd = start_etcd().await;
    let store = Store::etcd(&etcd.endpoints()).await.expect("connect");
    pods_and_namespaces(store).await;
}
