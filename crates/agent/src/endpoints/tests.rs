//! The endpoint manager against a fake dataplane and fake reconciler
//! targets (the real reconciler framework in between), and a stand-in for
//! the ipcache controller that maps local endpoints to ipcache rows.

use std::sync::Arc;
use std::sync::Mutex as StdMutex;

use reconciler::{OpError, Operations, ReconcilerMetrics, Row};
use tokio::sync::Notify;
use toolkit::{Health, OwnedTask};

use super::*;
use crate::dataplane::{DatapathMetric, DataplaneError, IpcacheEntry};
use crate::endpoint::tests::sample_endpoint;
use crate::ipcache::LocalNode;
use crate::tables::LxcRow;

/// What the fake kernel and store hold.
#[derive(Default)]
struct World {
    links: BTreeMap<String, u32>,
    link_mtus: BTreeMap<String, (u32, u32)>,
    next_ifindex: u32,
    lxc: BTreeMap<Ipv4Addr, LxcRow>,
    attached: BTreeSet<String>,
    ipcache: BTreeMap<Ipv4Net, u32>,
    routes: BTreeMap<Ipv4Net, RouteRow>,
    /// (namespace, name) -> container ID.
    ceps: BTreeMap<(String, String), String>,
    /// The step that fails (`create_link`, `identity`, `lxc`, ...).
    fail: Option<&'static str>,
}

#[derive(Default, Clone)]
struct Fake(Arc<StdMutex<World>>);

impl Fake {
    fn w(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap()
    }
    fn step(&self, name: &'static str) -> Result<(), String> {
        match self.w().fail {
            Some(f) if f == name => Err(format!("{name} failed")),
            _ => Ok(()),
        }
    }
}

impl Dataplane for Fake {
    async fn create_link(&self, req: &LinkRequest) -> Result<LinkInfo, DataplaneError> {
        self.step("create_link").map_err(DataplaneError)?;
        let mut w = self.w();
        w.next_ifindex += 1;
        let idx = 100 + w.next_ifindex;
        w.links.insert(req.host_ifname.clone(), idx);
        w.link_mtus
            .insert(req.host_ifname.clone(), (req.mtu, req.route_mtu));
        Ok(LinkInfo {
            host_ifindex: idx,
            host_mac: [2, 0, 0, 0, 0, 1],
            container_mac: [2, 0, 0, 0, 0, 2],
        })
    }
    async fn delete_link(&self, name: &str) -> Result<(), DataplaneError> {
        self.w().links.remove(name);
        Ok(())
    }
    fn link_ifindex(&self, name: &str) -> Option<u32> {
        self.w().links.get(name).copied()
    }
    fn lxc_entries(&self) -> Result<Vec<LxcRow>, DataplaneError> {
        Ok(self.w().lxc.values().copied().collect())
    }
    fn ipcache_entries(&self) -> Result<Vec<(Ipv4Net, IpcacheEntry)>, DataplaneError> {
        Ok(self
            .w()
            .ipcache
            .iter()
            .map(|(p, id)| {
                let e = IpcacheEntry {
                    identity: *id,
                    tunnel_endpoint: None,
                    encrypt_key: 0,
                };
                (*p, e)
            })
            .collect())
    }
    fn metrics(&self) -> Result<Vec<DatapathMetric>, DataplaneError> {
        Ok(Vec::new())
    }
}

/// Identities: 300 for everyone; a container named `slow` waits for
/// `gate` first.
struct Identities {
    fake: Fake,
    gate: Arc<Notify>,
}

impl IdentityResolver for Identities {
    async fn resolve(&self, pod: &PodRef) -> Result<(u32, Vec<String>), String> {
        if pod.container_id == "slow" {
            self.gate.notified().await;
        }
        self.fake.step("identity")?;
        Ok((
            300,
            vec![format!("k8s:io.kubernetes.pod.namespace={}", pod.namespace)],
        ))
    }
}

/// A fake target of one table: `apply` writes a row into the world,
/// `remove` takes it out, `keep` prunes to the desired set.
struct Target<R> {
    fake: Fake,
    step: &'static str,
    apply: fn(&mut World, &R),
    remove: fn(&mut World, &R),
    keep: fn(&mut World, &[Arc<R>]),
}

impl<R: Row> Operations<R> for Target<R> {
    async fn update(&self, row: &R) -> Result<(), OpError> {
        self.fake.step(self.step).map_err(OpError)?;
        (self.apply)(&mut self.fake.w(), row);
        Ok(())
    }
    async fn delete(&self, row: &R) -> Result<(), OpError> {
        (self.remove)(&mut self.fake.w(), row);
        Ok(())
    }
    async fn prune(&self, desired: &[Arc<R>]) -> Result<(), OpError> {
        (self.keep)(&mut self.fake.w(), desired);
        Ok(())
    }
}

type Mgr = EndpointManager<Fake, Identities>;

struct Setup {
    fake: Fake,
    eps: Arc<Mgr>,
    gate: Arc<Notify>,
    health: Health,
    _dir: tempfile::TempDir,
    state: StateDir,
    _reconcilers: Vec<reconciler::Reconciler>,
    _ipcache: OwnedTask,
}

/// A tiny pool over 10.0.0.0/29 (6 usable addresses).
#[derive(Default)]
struct Pool(BTreeMap<Ipv4Addr, String>);

impl IpPool for Pool {
    fn allocate_next(&mut self, owner: &str) -> Result<Ipv4Addr, String> {
        let ip = (1..=6u8)
            .map(|i| Ipv4Addr::new(10, 0, 0, i))
            .find(|ip| !self.0.contains_key(ip))
            .ok_or("pool exhausted")?;
        self.0.insert(ip, owner.to_string());
        Ok(ip)
    }
    fn allocate(&mut self, ip: Ipv4Addr, owner: &str) -> Result<(), String> {
        match self.0.get(&ip) {
            Some(o) if o != owner => Err(format!("{ip} owned by {o}")),
            _ => {
                self.0.insert(ip, owner.to_string());
                Ok(())
            }
        }
    }
    fn release(&mut self, ip: Ipv4Addr) -> Option<String> {
        self.0.remove(&ip)
    }
    fn allocated(&self) -> BTreeMap<Ipv4Addr, String> {
        self.0.clone()
    }
    fn capacity(&self) -> u32 {
        6
    }
    fn cidrs(&self) -> Vec<Ipv4Net> {
        vec!["10.0.0.0/29".parse().unwrap()]
    }
}

fn cfg(route_mtu: u32, endpoint_routes: bool) -> EndpointsCfg {
    EndpointsCfg {
        router_ip: "10.0.0.1".parse().unwrap(),
        mtu: 1500,
        route_mtu,
        endpoint_routes,
        apply_timeout: Duration::from_secs(5),
    }
}

fn router_pool() -> Pool {
    let mut pool = Pool::default();
    pool.allocate(Ipv4Addr::new(10, 0, 0, 1), "router").unwrap();
    pool
}

fn spawn_targets(fake: &Fake, tables: &Tables, health: &Health) -> Vec<reconciler::Reconciler> {
    let metrics = ReconcilerMetrics::new();
    let cfg = |name: &str| {
        let mut c = reconciler::Config::new(name);
        c.retry_min = Duration::from_millis(10);
        c
    };
    vec![
        reconciler::spawn(
            tables.lxc.clone(),
            Target::<LxcRow> {
                fake: fake.clone(),
                step: "lxc",
                apply: |w, r| {
                    w.lxc.insert(r.ip, *r);
                },
                remove: |w, r| {
                    w.lxc.remove(&r.ip);
                },
                keep: |w, d| w.lxc.retain(|ip, _| d.iter().any(|r| r.ip == *ip)),
            },
            cfg("lxc"),
            health,
            &metrics,
        ),
        reconciler::spawn(
            tables.ipcache.clone(),
            Target::<crate::tables::IpcacheRow> {
                fake: fake.clone(),
                step: "ipcache",
                apply: |w, r| {
                    w.ipcache.insert(r.prefix, r.identity);
                },
                remove: |w, r| {
                    w.ipcache.remove(&r.prefix);
                },
                keep: |w, d| w.ipcache.retain(|p, _| d.iter().any(|r| r.prefix == *p)),
            },
            cfg("ipcache"),
            health,
            &metrics,
        ),
        reconciler::spawn(
            tables.programs.clone(),
            Target::<ProgramRow> {
                fake: fake.clone(),
                step: "attach",
                apply: |w, r| {
                    w.attached.insert(r.host_ifname.clone());
                },
                remove: |w, r| {
                    w.attached.remove(&r.host_ifname);
                },
                keep: |_, _| {},
            },
            cfg("programs"),
            health,
            &metrics,
        ),
        reconciler::spawn(
            tables.routes.clone(),
            Target::<RouteRow> {
                fake: fake.clone(),
                step: "route",
                apply: |w, r| {
                    w.routes.insert(r.dst, r.clone());
                },
                remove: |w, r| {
                    w.routes.remove(&r.dst);
                },
                keep: |w, d| w.routes.retain(|p, _| d.iter().any(|r| r.dst == *p)),
            },
            cfg("routes"),
            health,
            &metrics,
        ),
        reconciler::spawn(
            tables.ceps.clone(),
            Target::<CepRow> {
                fake: fake.clone(),
                step: "cep",
                apply: |w, r| {
                    let e = &r.endpoint;
                    w.ceps.insert(
                        (e.pod_namespace.clone(), e.pod_name.clone()),
                        e.container_id.clone(),
                    );
                },
                remove: |w, r| {
                    let e = &r.endpoint;
                    let key = (e.pod_namespace.clone(), e.pod_name.clone());
                    if w.ceps.get(&key) == Some(&e.container_id) {
                        w.ceps.remove(&key);
                    }
                },
                keep: |w, d| w.ceps.retain(|k, _| d.iter().any(|r| r.key() == *k)),
            },
            cfg("ceps"),
            health,
            &metrics,
        ),
    ]
}

/// The ipcache controller's job for local endpoints only.
fn mirror_ipcache(eps: &Mgr, tables: &Tables) -> OwnedTask {
    let mut rx = eps.subscribe();
    let table = tables.ipcache.clone();
    OwnedTask::spawn("ipcache", async move {
        loop {
            let local = rx.borrow_and_update().ipcache_endpoints();
            let rows = crate::ipcache::compute(&LocalNode::default(), &local, &[], &[], false);
            table.sync(|_| true, rows.into_values());
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
}

fn setup_cfg(pool: Pool, cfg: EndpointsCfg) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path());
    let fake = Fake::default();
    let gate = Arc::new(Notify::new());
    let (tables, writers) = Tables::new();
    // The other writers of the routes and ipcache tables speak at once.
    writers.cluster.routes.done();
    writers.cluster.ipcache.done();
    writers.startup.routes.done();
    let health = Health::new();
    let reconcilers = spawn_targets(&fake, &tables, &health);
    let eps = Arc::new(EndpointManager::new(
        Arc::new(fake.clone()),
        Identities {
            fake: fake.clone(),
            gate: gate.clone(),
        },
        (tables.clone(), writers.endpoints),
        cfg,
        state.clone(),
        Box::new(pool),
    ));
    let ipcache = mirror_ipcache(&eps, &tables);
    Setup {
        fake,
        eps,
        gate,
        health,
        _dir: dir,
        state,
        _reconcilers: reconcilers,
        _ipcache: ipcache,
    }
}

fn setup_with(pool: Pool, endpoint_routes: bool) -> Setup {
    setup_cfg(pool, cfg(0, endpoint_routes))
}

fn setup() -> Setup {
    setup_with(router_pool(), false)
}

fn add_req(cid: &str) -> AddRequest {
    AddRequest {
        container_id: cid.into(),
        netns: format!("/var/run/netns/{cid}"),
        ifname: "eth0".into(),
        pod_namespace: "default".into(),
        pod_name: format!("pod-{cid}"),
        pod_uid: "u".into(),
        mtu: None,
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Poll `check` for up to five seconds.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn add_creates_everything_and_is_idempotent() {
    let s = setup();
    let ep = s.eps.add(&add_req("c1")).await.unwrap();
    assert_eq!(ep.ipv4, ip("10.0.0.2"));
    assert_eq!(ep.id, 1);
    assert_eq!(ep.host_ifname, host_ifname("c1", "eth0"));
    {
        let w = s.fake.w();
        assert!(w.links.contains_key(&ep.host_ifname));
        assert!(w.attached.contains(&ep.host_ifname));
        assert_eq!(w.lxc[&ip("10.0.0.2")], ep.lxc_row());
        assert_eq!(w.ipcache[&"10.0.0.2/32".parse::<Ipv4Net>().unwrap()], 300);
        assert!(w.routes.is_empty(), "the pod CIDR route covers it");
    }
    eventually("the CiliumEndpoint", || s.fake.w().ceps.len() == 1).await;
    // Persisted.
    assert_eq!(s.state.load_endpoints().unwrap().0.len(), 1);
    assert_eq!(
        s.state.load_ipam().unwrap().allocations[&ip("10.0.0.2")],
        "default/pod-c1"
    );
    // Same attachment again: same answer, nothing new.
    let again = s.eps.add(&add_req("c1")).await.unwrap();
    assert_eq!(again, ep);
    assert_eq!(s.fake.w().links.len(), 1);
    // Another pod: next IP and ID.
    let ep2 = s.eps.add(&add_req("c2")).await.unwrap();
    assert_eq!((ep2.ipv4, ep2.id), (ip("10.0.0.3"), 2));
    let snap = s.eps.subscribe().borrow().clone();
    assert_eq!(snap.endpoints.len(), 2);
    assert_eq!(snap.allocated.len(), 3);
    s.eps.check("c2", "eth0").await.unwrap();
}

#[tokio::test]
async fn add_rolls_back_at_every_failing_step() {
    for step in [
        "create_link",
        "identity",
        "lxc",
        "attach",
        "ipcache",
        "route",
    ] {
        let s = setup_with(router_pool(), true);
        s.fake.w().fail = Some(step);
        let e = s.eps.add(&add_req("c1")).await.unwrap_err();
        assert!(e.to_string().contains(step), "{step}: {e}");
        assert!(
            !matches!(e, EndpointError::InvalidRequest(_)),
            "{step}: {e:?}"
        );
        {
            let w = s.fake.w();
            assert!(w.links.is_empty(), "{step}: link left");
            assert!(w.lxc.is_empty(), "{step}: lxc left");
            assert!(w.attached.is_empty(), "{step}: attach left");
            assert!(w.routes.is_empty(), "{step}: route left");
        }
        eventually("the ipcache entry to go", || {
            !s.fake.w().ipcache.contains_key(&host32(ip("10.0.0.2")))
        })
        .await;
        let snap = s.eps.subscribe().borrow().clone();
        assert!(snap.endpoints.is_empty());
        assert_eq!(snap.allocated.len(), 1, "{step}: only the router IP stays");
        assert!(s.state.load_endpoints().unwrap().0.is_empty());
        assert_eq!(s.state.load_ipam().unwrap().allocations.len(), 1);
        // And the next ADD works and reuses the address.
        s.fake.w().fail = None;
        let ep = s.eps.add(&add_req("c1")).await.unwrap();
        assert_eq!(ep.ipv4, ip("10.0.0.2"));
        assert_eq!(s.fake.w().routes.len(), 1, "enable-endpoint-routes");
    }
}

#[tokio::test]
async fn a_failing_cilium_endpoint_write_is_retried_and_shown() {
    let s = setup();
    s.fake.w().fail = Some("cep");
    s.eps.add(&add_req("c1")).await.unwrap();
    eventually("the error in the controller status", || {
        s.health.snapshot().iter().any(|c| {
            c.name == "ceps"
                && c.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("cep failed"))
        })
    })
    .await;
    s.fake.w().fail = None;
    eventually("the retry", || s.fake.w().ceps.len() == 1).await;
    eventually("a healthy status", || {
        s.health.snapshot().iter().all(|c| c.healthy())
    })
    .await;
}

#[tokio::test]
async fn identity_allocation_does_not_hold_up_other_adds() {
    let s = setup();
    let eps = s.eps.clone();
    let slow = tokio::spawn(async move { eps.add(&add_req("slow")).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let fast = tokio::time::timeout(Duration::from_secs(2), s.eps.add(&add_req("fast")))
        .await
        .expect("a slow identity lookup blocked another ADD")
        .unwrap();
    assert!(!slow.is_finished());
    s.gate.notify_one();
    let slow = slow.await.unwrap().unwrap();
    assert_ne!(slow.ipv4, fast.ipv4);
    assert_ne!(slow.id, fast.id);
}

#[tokio::test]
async fn add_rejects_missing_env_and_exhaustion() {
    let s = setup();
    let mut bad = add_req("c1");
    bad.netns.clear();
    let e = s.eps.add(&bad).await.unwrap_err();
    assert_eq!(
        e,
        EndpointError::InvalidRequest("missing netns (CNI_NETNS)".into())
    );
    for i in 0..5 {
        s.eps.add(&add_req(&format!("c{i}"))).await.unwrap();
    }
    let e = s.eps.add(&add_req("c9")).await.unwrap_err();
    assert_eq!(e, EndpointError::Exhausted("IPAM: pool exhausted".into()));
    // Never two pods with one IP.
    let snap = s.eps.subscribe().borrow().clone();
    let ips: BTreeSet<_> = snap.endpoints.iter().map(|e| e.ipv4).collect();
    assert_eq!(ips.len(), 5);
}

#[tokio::test]
async fn del_is_idempotent_and_removes_everything() {
    let s = setup_with(router_pool(), true);
    s.eps.add(&add_req("c1")).await.unwrap();
    eventually("the CiliumEndpoint", || s.fake.w().ceps.len() == 1).await;
    s.eps.del("c1", "eth0").await.unwrap();
    {
        let w = s.fake.w();
        assert!(w.links.is_empty() && w.lxc.is_empty() && w.routes.is_empty());
        assert!(w.attached.is_empty());
    }
    eventually("ipcache and CiliumEndpoint to go", || {
        let w = s.fake.w();
        !w.ipcache.contains_key(&host32(ip("10.0.0.2"))) && w.ceps.is_empty()
    })
    .await;
    assert_eq!(s.eps.subscribe().borrow().allocated.len(), 1);
    assert!(s.state.load_endpoints().unwrap().0.is_empty());
    s.eps.del("c1", "eth0").await.unwrap();
    s.eps.del("never", "eth0").await.unwrap();
}

#[tokio::test]
async fn del_of_an_old_sandbox_keeps_the_new_cep() {
    let s = setup();
    s.eps.add(&add_req("old")).await.unwrap();
    let mut new = add_req("new");
    new.pod_name = "pod-old".into();
    s.eps.add(&new).await.unwrap();
    eventually("the new CiliumEndpoint", || {
        s.fake.w().ceps.get(&("default".into(), "pod-old".into())) == Some(&"new".to_string())
    })
    .await;
    s.eps.del("old", "eth0").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        s.fake
            .w()
            .ceps
            .get(&("default".into(), "pod-old".into()))
            .map(String::as_str),
        Some("new")
    );
}

#[tokio::test]
async fn del_cleans_a_leftover_link() {
    let s = setup();
    s.fake.w().links.insert(host_ifname("c1", "eth0"), 5);
    s.eps.del("c1", "eth0").await.unwrap();
    assert!(s.fake.w().links.is_empty());
}

#[tokio::test]
async fn check_finds_discrepancies() {
    let s = setup();
    let ep = s.eps.add(&add_req("c1")).await.unwrap();
    s.eps.check("c1", "eth0").await.unwrap();
    s.fake.w().ipcache.clear();
    let e = s.eps.check("c1", "eth0").await.unwrap_err();
    assert!(
        matches!(&e, EndpointError::CheckFailed(m) if m.contains("ipcache")),
        "{e}"
    );
    s.fake.w().lxc.clear();
    let e = s.eps.check("c1", "eth0").await.unwrap_err();
    assert!(e.to_string().contains("cilium_lxc"), "{e}");
    s.fake.w().links.remove(&ep.host_ifname);
    let e = s.eps.check("c1", "eth0").await.unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(matches!(
        s.eps.check("x", "eth0").await.unwrap_err(),
        EndpointError::UnknownEndpoint(_)
    ));
}

#[tokio::test]
async fn gc_removes_unlisted_endpoints_and_orphans() {
    let mut pool = router_pool();
    pool.allocate(ip("10.0.0.6"), "default/ghost").unwrap();
    let s = setup_with(pool, false);
    s.eps.add(&add_req("c1")).await.unwrap();
    s.eps.add(&add_req("c2")).await.unwrap();
    let removed = s
        .eps
        .gc(&[("c1".to_string(), "eth0".to_string())])
        .await
        .unwrap();
    assert_eq!(removed, vec!["c2".to_string()]);
    let snap = s.eps.subscribe().borrow().clone();
    assert_eq!(
        snap.allocated.values().cloned().collect::<Vec<_>>(),
        vec!["router".to_string(), "default/pod-c1".to_string()]
    );
}

#[tokio::test]
async fn restore_keeps_live_endpoints_drops_gone_ones_and_prunes() {
    let s = setup();
    let live = sample_endpoint(7, "c1", "10.0.0.4");
    let gone = sample_endpoint(3, "c2", "10.0.0.5");
    s.state.save_endpoint(&live).unwrap();
    s.state.save_endpoint(&gone).unwrap();
    {
        let mut w = s.fake.w();
        w.links.insert(live.host_ifname.clone(), 42);
        // What the previous run left: the gone endpoint's entry and CEP,
        // and a stale CEP of this node.
        w.lxc.insert(gone.ipv4, gone.lxc_row());
        w.ceps
            .insert(("default".into(), "pod-c2".into()), "c2".into());
        w.ceps
            .insert(("default".into(), "stale".into()), "zzz".into());
    }
    let (saved, _) = s.state.load_endpoints().unwrap();
    s.eps.restore(saved).await;
    let snap = s.eps.subscribe().borrow().clone();
    assert_eq!(snap.endpoints.len(), 1);
    let ep = &snap.endpoints[0];
    assert_eq!(ep.id, 7, "never renumbered");
    assert_eq!(ep.host_ifindex, 42, "ifindex refreshed");
    assert_eq!(
        snap.allocated.get(&ip("10.0.0.4")).map(String::as_str),
        Some("default/pod-c1")
    );
    assert!(!snap.allocated.contains_key(&ip("10.0.0.5")));
    assert_eq!(s.fake.w().lxc[&ip("10.0.0.4")].ifindex, 42);
    assert!(s.fake.w().attached.contains(&live.host_ifname));
    eventually("the prune of what nobody owns", || {
        let w = s.fake.w();
        w.lxc.keys().eq([&ip("10.0.0.4")])
            && w.ceps
                .keys()
                .eq([&("default".to_string(), "pod-c1".to_string())])
    })
    .await;
    assert_eq!(s.state.load_endpoints().unwrap().0.len(), 1);
    // A new ADD does not reuse ID 7 or the restored IP.
    let ep = s.eps.add(&add_req("c3")).await.unwrap();
    assert_eq!(ep.id, 1);
    assert_eq!(ep.ipv4, ip("10.0.0.2"));
}

#[test]
fn link_mtu_keeps_the_tunnel_overhead() {
    let native = cfg(0, false);
    let tunnel = cfg(1450, false);
    let m = |link, route| LinkMtu { link, route };
    assert_eq!(link_mtu(None, &native), m(1500, 0));
    assert_eq!(link_mtu(Some(1400), &native), m(1400, 0));
    assert_eq!(link_mtu(None, &tunnel), m(1500, 1450));
    assert_eq!(link_mtu(Some(0), &tunnel), m(1500, 1450));
    assert_eq!(link_mtu(Some(1400), &tunnel), m(1400, 1350));
}

#[tokio::test]
async fn tunnel_mode_pods_get_the_route_mtu() {
    let s = setup_cfg(router_pool(), cfg(1450, false));
    let ep = s.eps.add(&add_req("c1")).await.unwrap();
    assert_eq!(ep.mtu, 1500, "eth0 keeps the device MTU");
    assert_eq!(s.fake.w().link_mtus[&ep.host_ifname], (1500, 1450));
}

#[test]
fn orphans() {
    let allocated: BTreeMap<Ipv4Addr, String> = [
        (ip("10.0.0.1"), "router".to_string()),
        (ip("10.0.0.2"), "health".to_string()),
        (ip("10.0.0.3"), "default/a".to_string()),
        (ip("10.0.0.4"), "default/b".to_string()),
    ]
    .into();
    let live: BTreeSet<(Ipv4Addr, String)> = [(ip("10.0.0.3"), "default/a".to_string())].into();
    assert_eq!(orphan_ips(&allocated, &live), vec![ip("10.0.0.4")]);
}
