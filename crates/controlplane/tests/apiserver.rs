//! The API server against real clients: kube-rs (through the store's
//! Kubernetes backend and raw requests) over HTTPS with the lab's
//! certificates, on an in-memory store. Verbs, watches (resume, 410),
//! conflicts, status subresources, strategic merge, authentication and
//! RBAC, and the proxy of `pods/log` and `pods/exec` to a (fake) kubelet.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use api::k8s_openapi::api::core::v1::{ConfigMap, Pod};
use controlplane::apiserver::{self, authn::ServiceAccountTokens};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use pki::{Ca, Leaf};
use serde_json::json;
use store::{Change, Store, WatchEvent};

/// A running API server and its certificates.
struct Server {
    dir: tempfile::TempDir,
    ca: Ca,
    addr: SocketAddr,
    store: Store,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(
    store: Store,
    ca: &Ca,
    dir: &Path,
    addr: SocketAddr,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let ip = addr.ip();
    let pair = ca
        .issue(&Leaf::server("kube-apiserver", &["localhost"], &[ip]))
        .unwrap();
    let tls = pki::server_config(ca.cert_pem(), &pair, pki::ClientAuth::Optional).unwrap();
    let key = std::fs::read_to_string(dir.join("sa.key")).unwrap();
    let tokens =
        ServiceAccountTokens::from_pem(&key, apiserver::authn::DEFAULT_ISSUER, &[]).unwrap();
    let config = apiserver::ServerConfig {
        listen: addr,
        unix: None,
        advertise: addr.to_string(),
        tls: Arc::new(tls),
        tokens,
        kubernetes_service: None,
        kubelet_socket: Some(format!("{}/{{node}}.sock", dir.display())),
    };
    tokio::spawn(apiserver::serve(store, config))
}

impl Server {
    async fn start(store: Store) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_generate(dir.path(), "test-ca").unwrap();
        pki::write_key_if_missing(&dir.path().join("sa.key"), pki::new_key_pem).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let task = spawn(store.clone(), &ca, dir.path(), addr);
        let server = Self {
            dir,
            ca,
            addr,
            store,
            task,
        };
        server.wait_up().await;
        server
    }

    async fn wait_up(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("API server did not start");
    }

    /// Stop and start the server again on the same address.
    async fn restart(&mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        self.task = spawn(self.store.clone(), &self.ca, self.dir.path(), self.addr);
        self.wait_up().await;
    }

    /// A kubeconfig for a user with a client certificate (or none).
    fn kubeconfig(&self, user: Option<(&str, &[&str])>) -> PathBuf {
        let name = user.map_or("anonymous", |(u, _)| u).replace(':', "-");
        let mut auth = json!({});
        if let Some((user, groups)) = user {
            let pair = self.ca.issue(&Leaf::client(user, groups)).unwrap();
            let (cert, key) = pair.write(self.dir.path(), &name).unwrap();
            auth = json!({"client-certificate": cert, "client-key": key});
        }
        let ca = self.dir.path().join("ca.crt");
        let config = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "t", "cluster": {"server": format!("https://{}", self.addr), "certificate-authority": ca}}],
            "users": [{"name": "u", "user": auth}],
            "contexts": [{"name": "t", "context": {"cluster": "t", "user": "u"}}],
            "current-context": "t",
        });
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&path, config.to_string()).unwrap();
        path
    }

    async fn client(&self, user: Option<(&str, &[&str])>) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig(user)).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    async fn admin_store(&self) -> Store {
        let path = self.kubeconfig(Some(("admin", &["system:masters"])));
        Store::kubeconfig(Some(&path), None).await.unwrap()
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [
            {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "busybox"}
        ]},
    }))
    .unwrap()
}

fn status_code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn store_over_the_api_behaves_like_the_store() {
    let server = Server::start(Store::memory()).await;
    let store = server.admin_store().await;

    let created = store.create(&pod("web-1")).await.unwrap();
    let got: Pod = store.get(Some("default"), "web-1").await.unwrap().unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert!(
        store
            .get::<Pod>(Some("default"), "nope")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.create(&pod("web-1")).await,
        Err(store::Error::AlreadyExists { .. })
    ));

    // Status goes through the status subresource and sticks.
    let mut running = got.clone();
    running.status.get_or_insert_default().phase = Some("Running".into());
    let ignored = store.update(&running).await.unwrap();
    assert!(
        ignored.status.is_none(),
        "a main-resource write leaves the status alone"
    );
    let mut running = ignored.clone();
    running.status.get_or_insert_default().phase = Some("Running".into());
    let written = store.update_status(&running).await.unwrap();
    assert_eq!(written.status.unwrap().phase.as_deref(), Some("Running"));

    // A stale resourceVersion is a conflict.
    let mut stale = got.clone();
    stale
        .metadata
        .labels
        .get_or_insert_default()
        .insert("x".into(), "y".into());
    assert!(matches!(
        store.update(&stale).await,
        Err(store::Error::Conflict { .. })
    ));

    let list = store.list::<Pod>(None).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let mut watch = store.watch::<Pod>(Some("default"), list.revision);
    store.create(&pod("web-2")).await.unwrap();
    store.delete::<Pod>(Some("default"), "web-2").await.unwrap();
    let added = watch.next().await.unwrap().unwrap();
    assert!(matches!(added, WatchEvent::Added(p) if p.metadata.name.as_deref() == Some("web-2")));
    let deleted = watch.next().await.unwrap().unwrap();
    assert!(matches!(deleted, WatchEvent::Deleted(_)));
}

#[tokio::test]
async fn watch_resumes_after_a_restart_and_old_versions_expire() {
    let mut server = Server::start(Store::memory_with_history(5)).await;
    let store = server.admin_store().await;
    store.create(&pod("before")).await.unwrap();

    let mut changes = store.reflect::<Pod>(Some("default"));
    let Some(Change::Synced(items)) = changes.next().await else {
        panic!("first change is the list")
    };
    assert_eq!(items.len(), 1);

    server.restart().await;
    store.create(&pod("after")).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match changes.next().await.unwrap() {
                Change::Event(WatchEvent::Added(p))
                    if p.metadata.name.as_deref() == Some("after") =>
                {
                    break;
                }
                Change::Synced(items)
                    if items
                        .iter()
                        .any(|p| p.metadata.name.as_deref() == Some("after")) =>
                {
                    break;
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(
        seen.is_ok(),
        "the reflector saw the object created after the restart"
    );

    // More writes than the history keeps: an old revision is gone (410).
    let old = store.list::<Pod>(None).await.unwrap().revision;
    for i in 0..10 {
        store.create(&pod(&format!("p{i}"))).await.unwrap();
    }
    let mut stale = store.watch::<Pod>(None, old);
    assert!(matches!(
        stale.next().await,
        Some(Err(store::Error::Compacted(_)))
    ));
}

#[tokio::test]
async fn patches_and_subresources_through_kube_rs() {
    let server = Server::start(Store::memory()).await;
    let pods: Api<Pod> = Api::namespaced(
        server.client(Some(("admin", &["system:masters"]))).await,
        "default",
    );
    pods.create(&PostParams::default(), &pod("web"))
        .await
        .unwrap();

    // Strategic merge: container `a` by name, its ports by containerPort.
    let smp = json!({"spec": {"containers": [{"name": "a", "image": "nginx:2", "ports": [{"containerPort": 8080}]}]}});
    let patched = pods
        .patch("web", &PatchParams::default(), &Patch::Strategic(&smp))
        .await
        .unwrap();
    let containers = patched.spec.unwrap().containers;
    assert_eq!(containers.len(), 2, "container b kept");
    assert_eq!(containers[0].image.as_deref(), Some("nginx:2"));
    assert_eq!(
        containers[0].ports.as_ref().unwrap().len(),
        2,
        "ports merged"
    );

    // Merge patch of labels, JSON patch test failure.
    let merged = pods
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.metadata.labels.unwrap()["tier"], "front");
    let bad: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/metadata/name", "value": "other"}]))
            .unwrap();
    let err = pods
        .patch("web", &PatchParams::default(), &Patch::<()>::Json(bad))
        .await
        .unwrap_err();
    assert_eq!(status_code(&err), 422);

    // Status subresource: a main-resource write keeps the status.
    let status = json!({"status": {"phase": "Running"}});
    pods.patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let mut current = pods.get("web").await.unwrap();
    current.status = None;
    let replaced = pods
        .replace("web", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(replaced.status.unwrap().phase.as_deref(), Some("Running"));

    // Server-side apply creates, then merges.
    let cms: Api<ConfigMap> = Api::namespaced(pods.clone().into_client(), "default");
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}});
    let params = PatchParams::apply("test");
    cms.patch("cfg", &params, &Patch::Apply(&applied))
        .await
        .unwrap();
    let again = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"b": "2"}});
    let cm = cms
        .patch("cfg", &params, &Patch::Apply(&again))
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap().len(), 2);

    // Label selectors and 404s.
    let listed = pods
        .list(&ListParams::default().labels("tier=front"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let none = pods
        .list(&ListParams::default().labels("tier=back"))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    assert_eq!(status_code(&pods.get("nope").await.unwrap_err()), 404);
    pods.delete("web", &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn authentication_and_rbac() {
    let server = Server::start(Store::memory()).await;
    let anonymous: Api<Pod> = Api::namespaced(server.client(None).await, "default");
    assert_eq!(
        status_code(&anonymous.list(&ListParams::default()).await.unwrap_err()),
        401
    );

    let nobody: Api<Pod> = Api::namespaced(server.client(Some(("nobody", &[]))).await, "default");
    let err = nobody.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(status_code(&err), 403);
    let kube::Error::Api(status) = err else {
        unreachable!()
    };
    assert_eq!(
        status.message,
        "pods is forbidden: User \"nobody\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );

    // The agent's identity: may read CiliumNodes, may not delete pods.
    let agent = server
        .client(Some((
            "system:serviceaccount:kube-system:cilium",
            &["system:serviceaccounts"],
        )))
        .await;
    let gvk = kube::api::GroupVersionKind::gvk("cilium.io", "v2", "CiliumNode");
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "ciliumnodes");
    let nodes: Api<kube::api::DynamicObject> = Api::all_with(agent.clone(), &resource);
    nodes.list(&ListParams::default()).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(agent, "default");
    let err = pods
        .delete("x", &DeleteParams::default())
        .await
        .unwrap_err();
    assert_eq!(status_code(&err), 403);

    // Discovery is open to every authenticated user.
    let discovery = kube::discovery::Discovery::new(server.client(Some(("nobody", &[]))).await)
        .run_aggregated()
        .await
        .unwrap();
    assert!(discovery.groups().any(|g| g.name() == "cilium.io"));
}

/// A fake kubelet on a unix socket: a log request is answered with the
/// URI it was asked on; an exec (WebSocket, the first offered protocol)
/// sends its URI on stdout, then echoes stdin until its close signal and
/// ends with exit code 7.
async fn fake_kubelet(listener: tokio::net::UnixListener) {
    use bytes::Bytes;
    use futures::SinkExt;
    use http_body_util::Full;
    use hyper::header::{
        CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
    };
    use hyper_util::rt::TokioIo;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;

    let session = |io: hyper::upgrade::Upgraded, uri: String| async move {
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
        let out = |data: &[u8]| Message::binary([&[1u8][..], data].concat());
        ws.send(out(format!("{uri}\n").as_bytes())).await.unwrap();
        let mut input = Vec::new();
        while let Some(Ok(Message::Binary(m))) = ws.next().await {
            match m[0] {
                0 => input.extend_from_slice(&m[1..]),
                255 => break,
                _ => {}
            }
        }
        ws.send(out(&input)).await.unwrap();
        let status = json!({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "7"}]}});
        let status = [&[3u8][..], status.to_string().as_bytes()].concat();
        ws.send(Message::binary(status)).await.unwrap();
        let _ = ws.close(None).await;
    };
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| async move {
                    let uri = req.uri().to_string();
                    let mut resp = hyper::Response::new(Full::new(Bytes::new()));
                    if !req.headers().contains_key(UPGRADE) {
                        *resp.body_mut() = Full::new(Bytes::from(format!("{uri}\n")));
                        return Ok::<_, std::convert::Infallible>(resp);
                    }
                    let h = req.headers();
                    let accept = derive_accept_key(h[SEC_WEBSOCKET_KEY].as_bytes());
                    let offered = h[SEC_WEBSOCKET_PROTOCOL].to_str().unwrap();
                    let protocol = offered.split(',').next().unwrap().trim().to_string();
                    let upgrade = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move { session(upgrade.await.unwrap(), uri).await });
                    *resp.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
                    let h = resp.headers_mut();
                    h.insert(UPGRADE, "websocket".parse().unwrap());
                    h.insert(CONNECTION, "Upgrade".parse().unwrap());
                    h.insert(SEC_WEBSOCKET_ACCEPT, accept.parse().unwrap());
                    h.insert(SEC_WEBSOCKET_PROTOCOL, protocol.parse().unwrap());
                    Ok(resp)
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

#[tokio::test]
async fn log_and_exec_are_proxied_to_the_pods_kubelet() {
    use kube::api::{AttachParams, LogParams};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = Server::start(Store::memory()).await;
    let listener = tokio::net::UnixListener::bind(server.dir.path().join("node-a.sock")).unwrap();
    let kubelet = tokio::spawn(fake_kubelet(listener));
    let store = server.admin_store().await;
    let mut web = pod("web-1");
    web.spec.as_mut().unwrap().node_name = Some("node-a".into());
    web.metadata.annotations = Some(
        [(
            "kubectl.kubernetes.io/default-container".to_string(),
            "b".to_string(),
        )]
        .into(),
    );
    store.create(&web).await.unwrap();
    store.create(&pod("pending")).await.unwrap();
    let pods: Api<Pod> =
        Api::default_namespaced(server.client(Some(("admin", &["system:masters"]))).await);

    // Logs: the annotated default container, the query passed on.
    let tail = LogParams {
        tail_lines: Some(3),
        ..Default::default()
    };
    let log = pods.logs("web-1", &tail).await.unwrap();
    assert!(
        log.starts_with("/containerLogs/default/web-1/b?") && log.contains("tailLines=3"),
        "{log}"
    );
    let nope = LogParams {
        container: Some("nope".into()),
        ..Default::default()
    };
    let e = pods.logs("web-1", &nope).await.unwrap_err();
    assert_eq!(status_code(&e), 400);
    assert!(
        e.to_string()
            .contains("container nope is not valid for pod web-1")
    );
    assert_eq!(
        status_code(&pods.logs("gone", &tail).await.unwrap_err()),
        404
    );
    let a = LogParams {
        container: Some("a".into()),
        ..Default::default()
    };
    assert_eq!(
        pods.logs("pending", &a).await.unwrap(),
        "",
        "not scheduled: no log yet"
    );
    let e = pods.logs("pending", &tail).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("a container name must be specified for pod pending, choose one of: [a b]"),
        "{e}"
    );

    // Exec: upgraded, then bytes both ways until the kubelet's status.
    let params = AttachParams::default()
        .container("a")
        .stdin(true)
        .stderr(false);
    let mut p = pods.exec("web-1", ["cat"], &params).await.unwrap();
    let mut stdin = p.stdin().unwrap();
    stdin.write_all(b"hello\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    let mut out = String::new();
    p.stdout().unwrap().read_to_string(&mut out).await.unwrap();
    let (uri, echoed) = out.split_once('\n').unwrap();
    assert!(uri.starts_with("/exec/default/web-1/a?"), "{uri}");
    assert!(
        uri.contains("command=cat") && uri.contains("stdin=true"),
        "{uri}"
    );
    assert_eq!(echoed, "hello\n");
    let status = p.take_status().unwrap().await.unwrap();
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    p.join().await.unwrap();

    assert!(pods.exec("pending", ["true"], &params).await.is_err());
    assert!(
        pods.exec("web-1", ["true"], &AttachParams::default().container("zz"))
            .await
            .is_err()
    );
    kubelet.abort();
}
