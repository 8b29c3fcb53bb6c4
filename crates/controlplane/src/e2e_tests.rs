//! End-to-end tests of the whole control plane against the in-memory
//! store, with a fake kubelet: the seeds' webpod Deployment and Service,
//! spread, EndpointSlice, scaling to zero and back, graceful deletion.
//! Waits poll the store until a deadline; nothing relies on fixed sleeps.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use api::k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{
        Namespace, Node, NodeAddress, NodeCondition, NodeStatus, Pod, PodCondition, Service,
    },
    discovery::v1::EndpointSlice,
};
use futures::StreamExt;
use store::{Change, Store, WatchEvent};
use toolkit::OwnedTask;

use crate::endpointslices::SERVICE_NAME_LABEL;
use crate::meta::{pod_ip, pod_is_ready, pod_node};
use crate::{Config, request_pod_deletion};

const WEBPOD_DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: webpod
spec:
  replicas: 3
  selector:
    matchLabels:
      app: webpod
  template:
    metadata:
      labels:
        app: webpod
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchExpressions:
              - key: app
                operator: In
                values:
                - sample-app
            topologyKey: "kubernetes.io/hostname"
      containers:
      - name: webpod
        image: traefik/whoami
        ports:
        - containerPort: 80
"#;

const WEBPOD_SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: webpod
  labels:
    app: webpod
spec:
  selector:
    app: webpod
  ports:
  - protocol: TCP
    port: 80
    targetPort: 80
  type: ClusterIP
"#;

/// How long any condition may take.
const DEADLINE: Duration = Duration::from_secs(15);
/// Poll interval of [`eventually`].
const POLL: Duration = Duration::from_millis(10);

/// A spawned task aborted when the test ends (pass or panic).
fn spawn_owned(f: impl Future<Output = ()> + Send + 'static) -> OwnedTask {
    OwnedTask::spawn("test", f)
}

/// Poll `check` until it yields a value, or panic after [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A kubelet stand-in: running pods get an IP and Ready; pods with a
/// deletionTimestamp are deleted.
async fn fake_kubelet(store: Store) {
    let mut changes = store.reflect::<Pod>(None);
    let mut next_ip = 1u32;
    while let Some(change) = changes.next().await {
        let pods = match change {
            Change::Synced(pods) => pods,
            Change::Event(WatchEvent::Added(p) | WatchEvent::Modified(p)) => vec![p],
            Change::Event(WatchEvent::Deleted(_)) => continue,
        };
        for pod in pods {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            if pod.metadata.deletion_timestamp.is_some() {
                let _ = store.delete::<Pod>(Some(&ns), &name).await;
            } else if pod_node(&pod).is_some() && pod_ip(&pod).is_none() {
                let ip = format!("10.244.{}.{}", next_ip / 250, next_ip % 250 + 1);
                next_ip += 1;
                let _ = store
                    .modify::<Pod>(Some(&ns), &name, |p| {
                        let status = p.status.get_or_insert_default();
                        if status.pod_ip.is_some() {
                            return false;
                        }
                        status.pod_ip = Some(ip.clone());
                        status.phase = Some("Running".into());
                        status.conditions = Some(vec![PodCondition {
                            type_: "Ready".into(),
                            status: "True".into(),
                            ..Default::default()
                        }]);
                        true
                    })
                    .await;
            }
        }
    }
}

fn node(name: &str, ip: &str) -> Node {
    let mut n = Node::default();
    n.metadata.name = Some(name.into());
    n.metadata.labels = Some([("kubernetes.io/hostname".to_string(), name.to_string())].into());
    n.status = Some(NodeStatus {
        addresses: Some(vec![NodeAddress {
            type_: "InternalIP".into(),
            address: ip.into(),
        }]),
        conditions: Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    n
}

/// Start the control plane and the fake kubelet; create the seed nodes.
async fn lab() -> (Store, Vec<OwnedTask>) {
    let store = Store::memory();
    let cp_store = store.clone();
    let tasks = vec![
        spawn_owned(async move {
            if let Err(e) = crate::run(cp_store, Config::default()).await {
                panic!("control plane: {e:#}");
            }
        }),
        spawn_owned(fake_kubelet(store.clone())),
    ];
    // Registered in the "wrong" order, within one second: InternalIP decides.
    for (name, ip) in [
        ("k8s-w0", "192.168.20.100"),
        ("k8s-ctr", "192.168.10.100"),
        ("k8s-w1", "192.168.10.101"),
    ] {
        store.create(&node(name, ip)).await.expect("create node");
    }
    (store, tasks)
}

async fn webpods(store: &Store) -> Vec<Pod> {
    let pods = store
        .list::<Pod>(Some("default"))
        .await
        .expect("list pods")
        .items;
    pods.into_iter()
        .filter(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("webpod-"))
        })
        .collect()
}

/// The webpod slice's endpoints as (ready, serving, terminating), once it exists.
async fn slice_endpoints(store: &Store) -> Option<Vec<(bool, bool, bool)>> {
    let slices = store
        .list::<EndpointSlice>(Some("default"))
        .await
        .ok()?
        .items;
    let slice = slices.into_iter().find(|s| {
        s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .map(String::as_str)
            == Some("webpod")
    })?;
    Some(
        slice
            .endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.clone().unwrap_or_default();
                (
                    c.ready == Some(true),
                    c.serving == Some(true),
                    c.terminating == Some(true),
                )
            })
            .collect(),
    )
}

async fn scale(store: &Store, replicas: i32) {
    store
        .modify::<Deployment>(Some("default"), "webpod", |d| {
            d.spec.get_or_insert_default().replicas = Some(replicas);
            true
        })
        .await
        .expect("scale");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webpod_deployment_spreads_serves_and_scales() {
    let (store, _tasks) = lab().await;

    // Namespaces and node podCIDRs in creation order.
    eventually("system namespaces", || async {
        let list = store.list::<Namespace>(None).await.ok()?.items;
        let names: Vec<String> = list.into_iter().filter_map(|n| n.metadata.name).collect();
        (names.iter().any(|n| n == "default") && names.iter().any(|n| n == "kube-system"))
            .then_some(())
    })
    .await;
    let cidrs = eventually("node podCIDRs", || async {
        let nodes = store.list::<Node>(None).await.ok()?.items;
        nodes
            .iter()
            .map(|n| Some((n.metadata.name.clone()?, n.spec.as_ref()?.pod_cidr.clone()?)))
            .collect::<Option<BTreeMap<String, String>>>()
            .filter(|m| m.len() == 3)
    })
    .await;
    assert_eq!(cidrs["k8s-ctr"], "10.244.0.0/24");
    assert_eq!(cidrs["k8s-w1"], "10.244.1.0/24");
    assert_eq!(cidrs["k8s-w0"], "10.244.2.0/24");

    let deploy: Deployment =
        serde_saphyr::from_str(WEBPOD_DEPLOYMENT).expect("deployment manifest");
    let svc: Service = serde_saphyr::from_str(WEBPOD_SERVICE).expect("service manifest");
    store.create(&deploy).await.expect("create deployment");
    store.create(&svc).await.expect("create service");

    // Three ready pods, one per node.
    let pods = eventually("3 ready webpods", || async {
        let pods = webpods(&store).await;
        (pods.len() == 3 && pods.iter().all(pod_is_ready)).then_some(pods)
    })
    .await;
    let mut nodes: Vec<&str> = pods.iter().filter_map(pod_node).collect();
    nodes.sort_unstable();
    assert_eq!(
        nodes,
        ["k8s-ctr", "k8s-w0", "k8s-w1"],
        "one webpod per node"
    );
    for p in &pods {
        let name = p.metadata.name.as_deref().unwrap();
        let hash = &p.metadata.labels.as_ref().unwrap()["pod-template-hash"];
        assert!(name.starts_with(&format!("webpod-{hash}-")), "{name}");
    }

    // The Service got an IP; the slice lists 3 ready endpoints.
    let ip = eventually("service cluster IP", || async {
        let svc = store
            .get::<Service>(Some("default"), "webpod")
            .await
            .ok()??;
        svc.spec?.cluster_ip
    })
    .await;
    assert_eq!(ip, "10.96.0.2");
    eventually("3 ready endpoints", || async {
        let eps = slice_endpoints(&store).await?;
        (eps.len() == 3 && eps.iter().all(|e| *e == (true, true, false))).then_some(())
    })
    .await;
    eventually("deployment status 3/3", || async {
        let d = store
            .get::<Deployment>(Some("default"), "webpod")
            .await
            .ok()??;
        let s = d.status?;
        (s.ready_replicas == Some(3)
            && s.available_replicas == Some(3)
            && s.updated_replicas == Some(3))
        .then_some(())
    })
    .await;

    // Scale to 0: pods go (gracefully, through the kubelet), slice empties.
    scale(&store, 0).await;
    eventually("no webpods", || async {
        webpods(&store).await.is_empty().then_some(())
    })
    .await;
    eventually("empty slice", || async {
        slice_endpoints(&store).await?.is_empty().then_some(())
    })
    .await;

    // And back to 3.
    scale(&store, 3).await;
    eventually("3 ready endpoints again", || async {
        let eps = slice_endpoints(&store).await?;
        (eps.len() == 3 && eps.iter().all(|e| e.0)).then_some(())
    })
    .await;
    let pods = webpods(&store).await;
    let mut nodes: Vec<&str> = pods.iter().filter_map(pod_node).collect();
    nodes.sort_unstable();
    assert_eq!(
        nodes,
        ["k8s-ctr", "k8s-w0", "k8s-w1"],
        "spread again after scaling up"
    );

    // Deleting the Deployment deletes its pods.
    store
        .delete::<Deployment>(Some("default"), "webpod")
        .await
        .expect("delete deployment");
    eventually("pods garbage-collected", || async {
        webpods(&store).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_unschedulable_and_graceful_deletion() {
    let (store, _tasks) = lab().await;
    for name in ["k8s-ctr", "k8s-w1", "k8s-w0"] {
        store
            .modify::<Node>(None, name, |n| {
                n.spec.get_or_insert_default().unschedulable = Some(true);
                true
            })
            .await
            .expect("cordon");
    }
    let mut pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "lonely", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "nicolaka/netshoot"}]}
    }))
    .expect("pod");
    pod.metadata.labels = Some([("app".to_string(), "lonely".to_string())].into());
    store.create(&pod).await.expect("create pod");
    let message = eventually("Unschedulable condition", || async {
        let p = store.get::<Pod>(Some("default"), "lonely").await.ok()??;
        let c = p
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")?;
        (c.reason.as_deref() == Some("Unschedulable")).then_some(c.message?)
    })
    .await;
    assert_eq!(
        message,
        "0/3 nodes are available: 3 node(s) were unschedulable."
    );

    // Uncordoning one node retries the pod without any other trigger.
    store
        .modify::<Node>(None, "k8s-w1", |n| {
            n.spec.get_or_insert_default().unschedulable = Some(false);
            true
        })
        .await
        .expect("uncordon");
    eventually("pod bound to k8s-w1 and ready", || async {
        let p = store.get::<Pod>(Some("default"), "lonely").await.ok()??;
        (pod_node(&p) == Some("k8s-w1") && pod_is_ready(&p)).then_some(())
    })
    .await;

    // Graceful deletion of a bound pod goes through the kubelet.
    request_pod_deletion(&store, "default", "lonely", false)
        .await
        .expect("delete");
    eventually("pod gone", || async {
        store
            .get::<Pod>(Some("default"), "lonely")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let err = request_pod_deletion(&store, "default", "lonely", false)
        .await
        .unwrap_err();
    assert!(matches!(err, store::Error::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_change_replaces_every_pod() {
    let (store, _tasks) = lab().await;
    let deploy: Deployment =
        serde_saphyr::from_str(WEBPOD_DEPLOYMENT).expect("deployment manifest");
    store.create(&deploy).await.expect("create deployment");
    let hash_of = |p: &Pod| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"))
            .cloned()
    };
    let old = eventually("3 ready webpods", || async {
        let pods = webpods(&store).await;
        (pods.len() == 3 && pods.iter().all(pod_is_ready)).then(|| hash_of(&pods[0]))
    })
    .await;

    store
        .modify::<Deployment>(Some("default"), "webpod", |d| {
            let spec = d.spec.get_or_insert_default();
            if let Some(pod_spec) = spec.template.spec.as_mut() {
                pod_spec.containers[0].image = Some("traefik/whoami:v1.10".into());
            }
            true
        })
        .await
        .expect("change template");
    eventually("3 ready pods of the new template only", || async {
        let pods = webpods(&store).await;
        let all_new = pods.iter().all(|p| hash_of(p) != old && pod_is_ready(p));
        (pods.len() == 3 && all_new).then_some(())
    })
    .await;
    eventually("status 3/3 updated", || async {
        let s = store
            .get::<Deployment>(Some("default"), "webpod")
            .await
            .ok()??
            .status?;
        (s.updated_replicas == Some(3) && s.ready_replicas == Some(3) && s.replicas == Some(3))
            .then_some(())
    })
    .await;
}
