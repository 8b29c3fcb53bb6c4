//! Unit tests of the endpoint lifecycle with fake plumbing and pool.

use std::sync::Mutex as StdMutex;

use super::*;
use crate::endpoint::tests::sample_endpoint;

#[derive(Default)]
struct World {
    links: BTreeMap<String, u32>,
    next_ifindex: u32,
    lxc: BTreeMap<Ipv4Addr, datapath::EndpointInfo>,
    attached: BTreeSet<String>,
    ipcache: BTreeMap<Ipv4Net, u32>,
    routes: Vec<datapath::net::Route>,
    link_mtus: BTreeMap<String, LinkMtu>,
    ceps: BTreeMap<(String, String), String>,
    fail: Option<&'static str>,
    calls: Vec<String>,
}

#[derive(Default)]
struct Fake(StdMutex<World>);

impl Fake {
    fn w(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap()
    }
    fn step(&self, name: &'static str) -> PlumbResult<()> {
        let mut w = self.w();
        w.calls.push(name.to_string());
        if w.fail == Some(name) {
            return Err(PlumbError(format!("{name} failed")));
        }
        Ok(())
    }
}

impl Plumbing for Fake {
    async fn create_link(
        &self,
        _netns: &Path,
        host_ifname: &str,
        _ifname: &str,
        _ip: Ipv4Addr,
        _gateway: Ipv4Addr,
        mtu: LinkMtu,
    ) -> PlumbResult<EndpointLink> {
        self.step("create_link")?;
        let mut w = self.w();
        w.link_mtus.insert(host_ifname.to_string(), mtu);
        w.next_ifindex += 1;
        let idx = 100 + w.next_ifindex;
        w.links.insert(host_ifname.to_string(), idx);
        Ok(EndpointLink {
            host_ifindex: idx,
            host_mac: [2, 0, 0, 0, 0, 1],
            container_mac: [2, 0, 0, 0, 0, 2],
        })
    }
    async fn delete_link(&self, name: &str) -> PlumbResult<()> {
        self.step("delete_link")?;
        self.w().links.remove(name);
        Ok(())
    }
    fn link_ifindex(&self, name: &str) -> Option<u32> {
        self.w().links.get(name).copied()
    }
    fn lxc_upsert(&self, ip: Ipv4Addr, info: &datapath::EndpointInfo) -> PlumbResult<()> {
        self.step("lxc_upsert")?;
        self.w().lxc.insert(ip, *info);
        Ok(())
    }
    fn lxc_delete(&self, ip: Ipv4Addr) -> PlumbResult<()> {
        self.w().lxc.remove(&ip);
        Ok(())
    }
    fn lxc_get(&self, ip: Ipv4Addr) -> PlumbResult<Option<datapath::EndpointInfo>> {
        Ok(self.w().lxc.get(&ip).copied())
    }
    fn attach(&self, host_ifname: &str) -> PlumbResult<()> {
        self.step("attach")?;
        self.w().attached.insert(host_ifname.to_string());
        Ok(())
    }
    fn detach(&self, host_ifname: &str) -> PlumbResult<()> {
        self.w().attached.remove(host_ifname);
        Ok(())
    }
    fn ipcache_upsert(&self, prefix: Ipv4Net, identity: u32) -> PlumbResult<()> {
        self.step("ipcache_upsert")?;
        self.w().ipcache.insert(prefix, identity);
        Ok(())
    }
    fn ipcache_delete(&self, prefix: Ipv4Net) -> PlumbResult<()> {
        self.w().ipcache.remove(&prefix);
        Ok(())
    }
    fn ipcache_get(&self, prefix: Ipv4Net) -> PlumbResult<Option<u32>> {
        Ok(self.w().ipcache.get(&prefix).copied())
    }
    async fn route_replace(&self, route: &datapath::net::Route) -> PlumbResult<()> {
        self.step("route_replace")?;
        self.w().routes.push(route.clone());
        Ok(())
    }
    async fn route_delete(&self, route: &datapath::net::Route) -> PlumbResult<()> {
        self.w().routes.retain(|r| r != route);
        Ok(())
    }
    async fn resolve_identity(&self, pod: &PodRef) -> PlumbResult<(u32, Vec<String>)> {
        self.step("resolve_identity")?;
        Ok((
            300,
            vec![format!("k8s:io.kubernetes.pod.namespace={}", pod.namespace)],
        ))
    }
    async fn publish_cep(&self, ep: &EndpointState) -> PlumbResult<()> {
        self.step("publish_cep")?;
        self.w().ceps.insert(
            (ep.pod_namespace.clone(), ep.pod_name.clone()),
            ep.container_id.clone(),
        );
        Ok(())
    }
    async fn remove_cep(&self, namespace: &str, name: &str, container_id: &str) -> PlumbResult<()> {
        let mut w = self.w();
        let key = (namespace.to_string(), name.to_string());
        if w.ceps.get(&key).map(String::as_str) == Some(container_id) {
            w.ceps.remove(&key);
        }
        Ok(())
    }
    async fn own_ceps(&self) -> PlumbResult<Vec<(String, String, String)>> {
        Ok(self
            .w()
            .ceps
            .iter()
            .map(|((ns, n), c)| (ns.clone(), n.clone(), c.clone()))
            .collect())
    }
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

struct Setup {
    fake: Arc<Fake>,
    eps: Endpoints<Fake>,
    _dir: tempfile::TempDir,
    state: StateDir,
}

fn cfg(route_mtu: u32, endpoint_routes: bool) -> EndpointsCfg {
    EndpointsCfg {
        router_ip: "10.0.0.1".parse().unwrap(),
        mtu: 1500,
        route_mtu,
        endpoint_routes,
    }
}

fn setup_with(pool: Pool, endpoint_routes: bool) -> Setup {
    setup_cfg(pool, cfg(0, endpoint_routes))
}

fn setup_cfg(pool: Pool, cfg: EndpointsCfg) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path());
    let fake = Arc::new(Fake::default());
    let eps = Endpoints::new(fake.clone(), cfg, state.clone(), Box::new(pool));
    Setup {
        fake,
        eps,
        _dir: dir,
        state,
    }
}

fn setup() -> Setup {
    let mut pool = Pool::default();
    pool.allocate(Ipv4Addr::new(10, 0, 0, 1), "router").unwrap();
    setup_with(pool, false)
}

fn add_req(cid: &str) -> CniAddRequest {
    CniAddRequest {
        container_id: cid.into(),
        netns: format!("/var/run/netns/{cid}"),
        ifname: "eth0".into(),
        pod_namespace: "default".into(),
        pod_name: format!("pod-{cid}"),
        pod_uid: "u".into(),
        mtu: None,
    }
}

fn del_req(cid: &str) -> CniDelRequest {
    CniDelRequest {
        container_id: cid.into(),
        netns: String::new(),
        ifname: "eth0".into(),
    }
}

#[tokio::test]
async fn add_creates_everything_and_is_idempotent() {
    let s = setup();
    let r = s.eps.add(&add_req("c1")).await.unwrap();
    assert_eq!(r.ipv4, "10.0.0.2");
    assert_eq!(r.endpoint_id, 1);
    assert_eq!(r.gateway, "10.0.0.1");
    assert_eq!(r.host_ifname, host_ifname("c1", "eth0"));
    assert_eq!(r.routes[0].dst, "0.0.0.0/0");
    {
        let w = s.fake.w();
        assert!(w.links.contains_key(&r.host_ifname));
        assert!(w.attached.contains(&r.host_ifname));
        assert_eq!(w.lxc[&Ipv4Addr::new(10, 0, 0, 2)].lxc_id, 1);
        assert_eq!(w.ipcache[&"10.0.0.2/32".parse::<Ipv4Net>().unwrap()], 300);
        assert_eq!(w.ceps.len(), 1);
    }
    // Persisted.
    assert_eq!(s.state.load_endpoints().unwrap().0.len(), 1);
    assert_eq!(
        s.state.load_ipam().unwrap().allocations[&Ipv4Addr::new(10, 0, 0, 2)],
        "default/pod-c1"
    );
    // Same attachment again: same answer, nothing new.
    let again = s.eps.add(&add_req("c1")).await.unwrap();
    assert_eq!(again, r);
    assert_eq!(s.fake.w().links.len(), 1);
    // Another pod: next IP and ID.
    let r2 = s.eps.add(&add_req("c2")).await.unwrap();
    assert_eq!((r2.ipv4.as_str(), r2.endpoint_id), ("10.0.0.3", 2));
    let snap = s.eps.subscribe().borrow().clone();
    assert_eq!(snap.endpoints.len(), 2);
    assert_eq!(snap.allocated.len(), 3);
}

#[tokio::test]
async fn add_rolls_back_at_every_failing_step() {
    for step in [
        "create_link",
        "resolve_identity",
        "lxc_upsert",
        "attach",
        "ipcache_upsert",
        "route_replace",
        "publish_cep",
    ] {
        let mut pool = Pool::default();
        pool.allocate(Ipv4Addr::new(10, 0, 0, 1), "router").unwrap();
        let s = setup_with(pool, true);
        s.fake.w().fail = Some(step);
        let e = s.eps.add(&add_req("c1")).await.unwrap_err();
        assert!(e.message.contains(step), "{step}: {}", e.message);
        assert!(e.code >= 100, "{step}: code {}", e.code);
        {
            let w = s.fake.w();
            assert!(w.links.is_empty(), "{step}: link left");
            assert!(w.lxc.is_empty(), "{step}: lxc left");
            assert!(w.attached.is_empty(), "{step}: attach left");
            assert!(w.ipcache.is_empty(), "{step}: ipcache left");
            assert!(w.routes.is_empty(), "{step}: route left");
            assert!(w.ceps.is_empty(), "{step}: cep left");
        }
        let snap = s.eps.subscribe().borrow().clone();
        assert!(snap.endpoints.is_empty());
        assert_eq!(snap.allocated.len(), 1, "{step}: only the router IP stays");
        assert!(s.state.load_endpoints().unwrap().0.is_empty());
        assert_eq!(s.state.load_ipam().unwrap().allocations.len(), 1);
        // And the next ADD works and reuses the address.
        s.fake.w().fail = None;
        let r = s.eps.add(&add_req("c1")).await.unwrap();
        assert_eq!(r.ipv4, "10.0.0.2");
    }
}

#[tokio::test]
async fn add_rejects_missing_env_and_exhaustion() {
    let s = setup();
    let mut bad = add_req("c1");
    bad.netns.clear();
    let e = s.eps.add(&bad).await.unwrap_err();
    assert_eq!(e.code, codes::INVALID_ENV);
    assert_eq!(e.message, "missing netns (CNI_NETNS)");
    for i in 0..5 {
        s.eps.add(&add_req(&format!("c{i}"))).await.unwrap();
    }
    let e = s.eps.add(&add_req("c9")).await.unwrap_err();
    assert_eq!(e.code, codes::IPAM_EXHAUSTED);
    assert_eq!(e.message, "IPAM: pool exhausted");
    // Never two pods with one IP.
    let snap = s.eps.subscribe().borrow().clone();
    let ips: BTreeSet<_> = snap.endpoints.iter().map(|e| e.ipv4).collect();
    assert_eq!(ips.len(), 5);
}

#[tokio::test]
async fn del_is_idempotent_and_removes_everything() {
    let s = setup();
    s.eps.add(&add_req("c1")).await.unwrap();
    s.eps.del(&del_req("c1")).await.unwrap();
    {
        let w = s.fake.w();
        assert!(w.links.is_empty() && w.lxc.is_empty() && w.ipcache.is_empty());
        assert!(w.ceps.is_empty() && w.attached.is_empty());
    }
    assert_eq!(s.eps.subscribe().borrow().allocated.len(), 1);
    assert!(s.state.load_endpoints().unwrap().0.is_empty());
    s.eps.del(&del_req("c1")).await.unwrap();
    s.eps.del(&del_req("never")).await.unwrap();
}

#[tokio::test]
async fn del_of_an_old_sandbox_keeps_the_new_cep() {
    let s = setup();
    s.eps.add(&add_req("old")).await.unwrap();
    let mut new = add_req("new");
    new.pod_name = "pod-old".into();
    s.eps.add(&new).await.unwrap();
    s.eps.del(&del_req("old")).await.unwrap();
    let w = s.fake.w();
    assert_eq!(
        w.ceps
            .get(&("default".into(), "pod-old".into()))
            .map(String::as_str),
        Some("new")
    );
}

#[tokio::test]
async fn del_cleans_a_leftover_link() {
    let s = setup();
    s.fake.w().links.insert(host_ifname("c1", "eth0"), 5);
    s.eps.del(&del_req("c1")).await.unwrap();
    assert!(s.fake.w().links.is_empty());
}

#[tokio::test]
async fn check_finds_discrepancies() {
    let s = setup();
    let r = s.eps.add(&add_req("c1")).await.unwrap();
    let req = CniCheckRequest {
        container_id: "c1".into(),
        netns: String::new(),
        ifname: "eth0".into(),
    };
    s.eps.check(&req).await.unwrap();
    s.fake.w().ipcache.clear();
    let e = s.eps.check(&req).await.unwrap_err();
    assert_eq!(e.code, codes::CHECK_FAILED);
    assert!(e.message.contains("ipcache"), "{}", e.message);
    s.fake.w().lxc.clear();
    assert!(
        s.eps
            .check(&req)
            .await
            .unwrap_err()
            .message
            .contains("cilium_lxc")
    );
    s.fake.w().links.remove(&r.host_ifname);
    assert!(
        s.eps
            .check(&req)
            .await
            .unwrap_err()
            .message
            .contains("does not exist")
    );
    let unknown = CniCheckRequest {
        container_id: "x".into(),
        ..req
    };
    assert_eq!(
        s.eps.check(&unknown).await.unwrap_err().code,
        codes::UNKNOWN_CONTAINER
    );
}

#[tokio::test]
async fn gc_removes_unlisted_endpoints_and_orphans() {
    let mut pool = Pool::default();
    pool.allocate(Ipv4Addr::new(10, 0, 0, 1), "router").unwrap();
    pool.allocate(Ipv4Addr::new(10, 0, 0, 6), "default/ghost")
        .unwrap();
    let s = setup_with(pool, false);
    s.eps.add(&add_req("c1")).await.unwrap();
    s.eps.add(&add_req("c2")).await.unwrap();
    let removed = s
        .eps
        .gc(&[agentclient::Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        }])
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
async fn restore_keeps_live_endpoints_and_drops_gone_ones() {
    let s = setup();
    let live = sample_endpoint(7, "c1", "10.0.0.4");
    let gone = sample_endpoint(3, "c2", "10.0.0.5");
    s.state.save_endpoint(&live).unwrap();
    s.state.save_endpoint(&gone).unwrap();
    {
        let mut w = s.fake.w();
        w.links.insert(live.host_ifname.clone(), 42);
        // A stale CEP of this node and the gone endpoint's CEP.
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
        snap.allocated
            .get(&Ipv4Addr::new(10, 0, 0, 4))
            .map(String::as_str),
        Some("default/pod-c1")
    );
    assert!(!snap.allocated.contains_key(&Ipv4Addr::new(10, 0, 0, 5)));
    {
        let w = s.fake.w();
        assert_eq!(w.lxc[&Ipv4Addr::new(10, 0, 0, 4)].ifindex, 42);
        assert!(w.attached.contains(&live.host_ifname));
        assert_eq!(
            w.ceps.keys().cloned().collect::<Vec<_>>(),
            vec![("default".to_string(), "pod-c1".to_string())]
        );
    }
    assert_eq!(s.state.load_endpoints().unwrap().0.len(), 1);
    // A new ADD does not reuse ID 7 or the restored IP.
    let r = s.eps.add(&add_req("c3")).await.unwrap();
    assert_eq!(r.endpoint_id, 1);
    assert_eq!(r.ipv4, "10.0.0.2");
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
    let mut pool = Pool::default();
    pool.allocate(Ipv4Addr::new(10, 0, 0, 1), "router").unwrap();
    let s = setup_cfg(pool, cfg(1450, false));
    let r = s.eps.add(&add_req("c1")).await.unwrap();
    assert_eq!(r.mtu, 1500, "eth0 keeps the device MTU");
    assert_eq!(
        s.fake.w().link_mtus[&r.host_ifname],
        LinkMtu {
            link: 1500,
            route: 1450
        }
    );
}

#[test]
fn orphans() {
    let allocated: BTreeMap<Ipv4Addr, String> = [
        (Ipv4Addr::new(10, 0, 0, 1), "router".to_string()),
        (Ipv4Addr::new(10, 0, 0, 2), "health".to_string()),
        (Ipv4Addr::new(10, 0, 0, 3), "default/a".to_string()),
        (Ipv4Addr::new(10, 0, 0, 4), "default/b".to_string()),
    ]
    .into();
    let live: BTreeSet<(Ipv4Addr, String)> =
        [(Ipv4Addr::new(10, 0, 0, 3), "default/a".to_string())].into();
    assert_eq!(
        orphan_ips(&allocated, &live),
        vec![Ipv4Addr::new(10, 0, 0, 4)]
    );
}
