//! Endpoint lifecycle: the CNI handlers (ADD, DEL, CHECK, GC), restore
//! after a restart, and IP orphan collection.
//!
//! [`Endpoints`] owns the local endpoint table and the node's IP pool and
//! serialises every change behind one async mutex, so an IP or endpoint ID
//! is never handed out twice. Side effects go through two seams so the
//! logic (ordering, rollback, idempotency) is unit-tested with fakes:
//! [`Plumbing`] (links, BPF maps, routes, identities, CiliumEndpoints) and
//! [`IpPool`] (the IPAM allocator). Every accepted change is persisted to
//! the state dir before it is acknowledged, and published on a watch
//! channel ([`EndpointSnapshot`]) for the ipcache controller, status and
//! metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use agentclient::{ApiError, CniAddRequest, CniAddResponse, CniCheckRequest, CniDelRequest};
use datapath::net::format_mac;
use ipnet::Ipv4Net;
use tokio::sync::{Mutex, watch};

use crate::endpoint::{EndpointState, host_ifname, ipam_owner, next_endpoint_id};
use crate::routes::endpoint_route;
use crate::state::{IpamState, StateDir};

/// CNI error codes used in [`ApiError::code`].
pub mod codes {
    /// Missing or invalid CNI environment (container ID, netns, ifname).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO: u32 = 5;
    /// Try again later (agent not ready, store unreachable).
    pub const TRY_AGAIN: u32 = 11;
    /// No address left in the node's pool, or no endpoint ID left.
    pub const IPAM_EXHAUSTED: u32 = 100;
    /// Creating the endpoint's interfaces failed.
    pub const LINK: u32 = 101;
    /// Identity allocation failed.
    pub const IDENTITY: u32 = 102;
    /// BPF map or program attach failed.
    pub const DATAPATH: u32 = 103;
    /// Publishing the CiliumEndpoint failed.
    pub const STORE: u32 = 104;
    /// CHECK found a discrepancy.
    pub const CHECK_FAILED: u32 = 105;
    /// CHECK/DEL of an endpoint the agent does not know.
    pub const UNKNOWN_CONTAINER: u32 = 3;
}

/// A failure of one side effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlumbError(pub String);

impl PlumbError {
    /// From anything printable.
    pub fn from_display(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// Result of a side effect.
pub type PlumbResult<T> = Result<T, PlumbError>;

/// The pod behind an ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// Namespace (empty for non-Kubernetes containers).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Container ID.
    pub container_id: String,
}

/// A created link (mirror of `datapath::net::EndpointLink`).
pub type EndpointLink = datapath::net::EndpointLink;

/// Side effects of endpoint management.
pub trait Plumbing: Send + Sync + 'static {
    /// Create the veth pair and configure the pod side.
    fn create_link(
        &self,
        netns: &Path,
        host_ifname: &str,
        ifname: &str,
        ip: Ipv4Addr,
        gateway: Ipv4Addr,
        mtu: LinkMtu,
    ) -> impl Future<Output = PlumbResult<EndpointLink>> + Send;
    /// Delete a host-side link (absent is fine).
    fn delete_link(&self, name: &str) -> impl Future<Output = PlumbResult<()>> + Send;
    /// The ifindex of a link in the node namespace, if it exists.
    fn link_ifindex(&self, name: &str) -> Option<u32>;
    /// Upsert a `cilium_lxc` entry.
    fn lxc_upsert(&self, ip: Ipv4Addr, info: &datapath::EndpointInfo) -> PlumbResult<()>;
    /// Delete a `cilium_lxc` entry.
    fn lxc_delete(&self, ip: Ipv4Addr) -> PlumbResult<()>;
    /// The `cilium_lxc` entry of `ip`.
    fn lxc_get(&self, ip: Ipv4Addr) -> PlumbResult<Option<datapath::EndpointInfo>>;
    /// Attach the endpoint programs.
    fn attach(&self, host_ifname: &str) -> PlumbResult<()>;
    /// Detach them.
    fn detach(&self, host_ifname: &str) -> PlumbResult<()>;
    /// Upsert an ipcache entry.
    fn ipcache_upsert(&self, prefix: Ipv4Net, identity: u32) -> PlumbResult<()>;
    /// Delete an ipcache entry.
    fn ipcache_delete(&self, prefix: Ipv4Net) -> PlumbResult<()>;
    /// The identity in the ipcache for `prefix`.
    fn ipcache_get(&self, prefix: Ipv4Net) -> PlumbResult<Option<u32>>;
    /// Replace a route.
    fn route_replace(
        &self,
        route: &datapath::net::Route,
    ) -> impl Future<Output = PlumbResult<()>> + Send;
    /// Delete a route.
    fn route_delete(
        &self,
        route: &datapath::net::Route,
    ) -> impl Future<Output = PlumbResult<()>> + Send;
    /// Security identity and its label strings for a pod (or container).
    fn resolve_identity(
        &self,
        pod: &PodRef,
    ) -> impl Future<Output = PlumbResult<(u32, Vec<String>)>> + Send;
    /// Create or update the endpoint's CiliumEndpoint.
    fn publish_cep(&self, ep: &EndpointState) -> impl Future<Output = PlumbResult<()>> + Send;
    /// Delete a CiliumEndpoint if it still belongs to `container_id`.
    fn remove_cep(
        &self,
        namespace: &str,
        name: &str,
        container_id: &str,
    ) -> impl Future<Output = PlumbResult<()>> + Send;
    /// CiliumEndpoints published for this node: `(namespace, name, container id)`.
    fn own_ceps(&self) -> impl Future<Output = PlumbResult<Vec<(String, String, String)>>> + Send;
}

/// MTUs of a new endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkMtu {
    /// The interfaces' MTU (both veth ends).
    pub link: u32,
    /// MTU on the pod's routes (0 = none).
    pub route: u32,
}

/// The node's IP pool (implemented by `ipam::NodeIpAllocator`).
pub trait IpPool: Send {
    /// Lowest free address for `owner`.
    fn allocate_next(&mut self, owner: &str) -> Result<Ipv4Addr, String>;
    /// A specific address (restore); the same owner again is fine.
    fn allocate(&mut self, ip: Ipv4Addr, owner: &str) -> Result<(), String>;
    /// Free an address.
    fn release(&mut self, ip: Ipv4Addr) -> Option<String>;
    /// Address -> owner.
    fn allocated(&self) -> BTreeMap<Ipv4Addr, String>;
    /// Usable addresses.
    fn capacity(&self) -> u32;
    /// The pod CIDRs.
    fn cidrs(&self) -> Vec<Ipv4Net>;
}

impl IpPool for ipam::NodeIpAllocator {
    fn allocate_next(&mut self, owner: &str) -> Result<Ipv4Addr, String> {
        ipam::NodeIpAllocator::allocate_next(self, owner).map_err(|e| e.to_string())
    }
    fn allocate(&mut self, ip: Ipv4Addr, owner: &str) -> Result<(), String> {
        ipam::NodeIpAllocator::allocate(self, ip, owner).map_err(|e| e.to_string())
    }
    fn release(&mut self, ip: Ipv4Addr) -> Option<String> {
        ipam::NodeIpAllocator::release(self, ip)
    }
    fn allocated(&self) -> BTreeMap<Ipv4Addr, String> {
        ipam::NodeIpAllocator::allocated(self).clone()
    }
    fn capacity(&self) -> u32 {
        ipam::NodeIpAllocator::capacity(self)
    }
    fn cidrs(&self) -> Vec<Ipv4Net> {
        ipam::NodeIpAllocator::cidrs(self).to_vec()
    }
}

/// IPAM owners that are not endpoints.
pub const RESERVED_OWNERS: &[&str] = &["router", "health"];

/// What the rest of the agent sees of the endpoint table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSnapshot {
    /// Endpoints by ID.
    pub endpoints: Vec<EndpointState>,
    /// Pool CIDRs.
    pub cidrs: Vec<Ipv4Net>,
    /// Pool capacity.
    pub capacity: u32,
    /// Allocated address -> owner.
    pub allocated: BTreeMap<Ipv4Addr, String>,
}

/// Node facts the handlers need.
#[derive(Debug, Clone)]
pub struct EndpointsCfg {
    /// Router IP (pods' gateway).
    pub router_ip: Ipv4Addr,
    /// Pod interface MTU.
    pub mtu: u32,
    /// MTU on the pod's routes (tunnel mode: `mtu` minus the tunnel
    /// overhead; 0 = none).
    pub route_mtu: u32,
    /// `enable-endpoint-routes`.
    pub endpoint_routes: bool,
}

struct Inner {
    pool: Box<dyn IpPool>,
    endpoints: BTreeMap<u16, EndpointState>,
}

/// The endpoint manager.
pub struct Endpoints<P: Plumbing> {
    plumbing: Arc<P>,
    cfg: EndpointsCfg,
    state: StateDir,
    inner: Mutex<Inner>,
    snapshot_tx: watch::Sender<EndpointSnapshot>,
}

/// One step to undo when an ADD fails.
#[derive(Debug)]
enum Undo {
    ReleaseIp(Ipv4Addr),
    DeleteLink(String),
    LxcDelete(Ipv4Addr),
    Detach(String),
    IpcacheDelete(Ipv4Net),
    RouteDelete(datapath::net::Route),
    RemoveState(u16),
}

fn api_error(code: u32, message: impl Into<String>) -> ApiError {
    ApiError {
        code,
        message: message.into(),
    }
}

fn host32(ip: Ipv4Addr) -> Ipv4Net {
    Ipv4Net::new(ip, 32).expect("/32 is valid")
}

/// The response to an ADD of `ep`.
pub fn add_response(ep: &EndpointState, router_ip: Ipv4Addr) -> CniAddResponse {
    CniAddResponse {
        endpoint_id: ep.id,
        host_ifname: ep.host_ifname.clone(),
        host_mac: format_mac(&ep.host_mac),
        ifname: ep.ifname.clone(),
        mac: format_mac(&ep.container_mac),
        ipv4: ep.ipv4.to_string(),
        prefix_len: 32,
        gateway: router_ip.to_string(),
        routes: vec![agentclient::RouteModel {
            dst: "0.0.0.0/0".to_string(),
            gw: Some(router_ip.to_string()),
        }],
        mtu: ep.mtu,
    }
}

impl<P: Plumbing> Endpoints<P> {
    /// A manager over `pool` (already holding router/health allocations).
    /// No I/O; call [`Endpoints::restore`] before serving.
    pub fn new(
        plumbing: Arc<P>,
        cfg: EndpointsCfg,
        state: StateDir,
        pool: Box<dyn IpPool>,
    ) -> Self {
        let (snapshot_tx, _) = watch::channel(EndpointSnapshot::default());
        Self {
            plumbing,
            cfg,
            state,
            inner: Mutex::new(Inner {
                pool,
                endpoints: BTreeMap::new(),
            }),
            snapshot_tx,
        }
    }

    /// Subscribe to endpoint/IPAM changes.
    pub fn subscribe(&self) -> watch::Receiver<EndpointSnapshot> {
        self.snapshot_tx.subscribe()
    }

    fn publish(&self, inner: &Inner) {
        let snap = EndpointSnapshot {
            endpoints: inner.endpoints.values().cloned().collect(),
            cidrs: inner.pool.cidrs(),
            capacity: inner.pool.capacity(),
            allocated: inner.pool.allocated(),
        };
        self.snapshot_tx.send_replace(snap);
    }

    fn save_ipam(&self, inner: &Inner) -> Result<(), ApiError> {
        let st = IpamState {
            cidrs: inner.pool.cidrs(),
            allocations: inner.pool.allocated(),
        };
        self.state
            .save_ipam(&st)
            .map_err(|e| api_error(codes::IO, format!("persisting IPAM state: {e}")))
    }

    /// CNI ADD.
    pub async fn add(&self, req: &CniAddRequest) -> Result<CniAddResponse, ApiError> {
        for (name, v) in [
            ("container_id (CNI_CONTAINERID)", &req.container_id),
            ("netns (CNI_NETNS)", &req.netns),
            ("ifname (CNI_IFNAME)", &req.ifname),
        ] {
            if v.is_empty() {
                return Err(api_error(codes::INVALID_ENV, format!("missing {name}")));
            }
        }
        let mut inner = self.inner.lock().await;
        if let Some(ep) = inner
            .endpoints
            .values()
            .find(|e| e.is(&req.container_id, &req.ifname))
        {
            tracing::info!(endpoint = ep.id, container = %req.container_id, "ADD: endpoint exists, returning it");
            return Ok(add_response(ep, self.cfg.router_ip));
        }
        let mut undo = Vec::new();
        match self.add_steps(&mut inner, req, &mut undo).await {
            Ok(ep) => {
                tracing::info!(
                    endpoint = ep.id,
                    container = %ep.container_id,
                    pod = %ep.pod(),
                    ip = %ep.ipv4,
                    identity = ep.identity,
                    host_ifname = %ep.host_ifname,
                    "endpoint created"
                );
                let resp = add_response(&ep, self.cfg.router_ip);
                inner.endpoints.insert(ep.id, ep);
                self.publish(&inner);
                Ok(resp)
            }
            Err(e) => {
                tracing::warn!(container = %req.container_id, error = %e.message, code = e.code, "ADD failed, rolling back");
                self.rollback(&mut inner, undo).await;
                self.publish(&inner);
                Err(e)
            }
        }
    }

    async fn add_steps(
        &self,
        inner: &mut Inner,
        req: &CniAddRequest,
        undo: &mut Vec<Undo>,
    ) -> Result<EndpointState, ApiError> {
        let mut timer = StepTimer::default();
        let used: BTreeSet<u16> = inner.endpoints.keys().copied().collect();
        let id = next_endpoint_id(&used)
            .ok_or_else(|| api_error(codes::IPAM_EXHAUSTED, "no free endpoint ID (1-4095)"))?;
        let owner = ipam_owner(&req.pod_namespace, &req.pod_name, &req.container_id);
        let ip = inner
            .pool
            .allocate_next(&owner)
            .map_err(|e| api_error(codes::IPAM_EXHAUSTED, format!("IPAM: {e}")))?;
        undo.push(Undo::ReleaseIp(ip));
        self.save_ipam(inner)?;
        timer.step("ipam");

        let host = host_ifname(&req.container_id, &req.ifname);
        let mtu = link_mtu(req.mtu, &self.cfg);
        // A leftover from a crashed ADD would make the veth creation fail.
        if self.plumbing.link_ifindex(&host).is_some() {
            self.plumbing
                .delete_link(&host)
                .await
                .map_err(|e| api_error(codes::LINK, format!("removing stale {host}: {e}")))?;
        }
        let link = self
            .plumbing
            .create_link(
                Path::new(&req.netns),
                &host,
                &req.ifname,
                ip,
                self.cfg.router_ip,
                mtu,
            )
            .await
            .map_err(|e| api_error(codes::LINK, format!("creating {host}: {e}")))?;
        undo.push(Undo::DeleteLink(host.clone()));
        timer.step("link");

        let pod = PodRef {
            namespace: req.pod_namespace.clone(),
            name: req.pod_name.clone(),
            container_id: req.container_id.clone(),
        };
        let (identity, labels) = self
            .plumbing
            .resolve_identity(&pod)
            .await
            .map_err(|e| api_error(codes::IDENTITY, format!("identity: {e}")))?;
        timer.step("identity");

        let ep = EndpointState {
            id,
            container_id: req.container_id.clone(),
            ifname: req.ifname.clone(),
            netns: req.netns.clone(),
            pod_namespace: req.pod_namespace.clone(),
            pod_name: req.pod_name.clone(),
            pod_uid: req.pod_uid.clone(),
            ipv4: ip,
            host_ifname: host.clone(),
            host_ifindex: link.host_ifindex,
            host_mac: link.host_mac,
            container_mac: link.container_mac,
            identity,
            labels,
            mtu: mtu.link,
        };
        let dp = |e: PlumbError| api_error(codes::DATAPATH, e.0);
        self.plumbing.lxc_upsert(ip, &ep.lxc_info()).map_err(dp)?;
        undo.push(Undo::LxcDelete(ip));
        self.plumbing.attach(&host).map_err(dp)?;
        undo.push(Undo::Detach(host.clone()));
        self.plumbing
            .ipcache_upsert(host32(ip), identity)
            .map_err(dp)?;
        undo.push(Undo::IpcacheDelete(host32(ip)));
        if self.cfg.endpoint_routes {
            let r = endpoint_route(ip, &host);
            self.plumbing.route_replace(&r).await.map_err(dp)?;
            undo.push(Undo::RouteDelete(r));
        }
        timer.step("datapath");
        self.state
            .save_endpoint(&ep)
            .map_err(|e| api_error(codes::IO, format!("persisting endpoint: {e}")))?;
        undo.push(Undo::RemoveState(id));
        timer.step("state");
        if !ep.pod().is_empty() {
            self.plumbing
                .publish_cep(&ep)
                .await
                .map_err(|e| api_error(codes::STORE, format!("CiliumEndpoint: {e}")))?;
        }
        timer.step("cep");
        tracing::debug!(endpoint = id, %ip, steps = %timer, "endpoint plumbing timings");
        Ok(ep)
    }

    async fn rollback(&self, inner: &mut Inner, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            let result = match &step {
                Undo::ReleaseIp(ip) => {
                    inner.pool.release(*ip);
                    self.save_ipam(inner).map_err(|e| PlumbError(e.message))
                }
                Undo::DeleteLink(name) => self.plumbing.delete_link(name).await,
                Undo::LxcDelete(ip) => self.plumbing.lxc_delete(*ip),
                Undo::Detach(name) => self.plumbing.detach(name),
                Undo::IpcacheDelete(p) => self.plumbing.ipcache_delete(*p),
                Undo::RouteDelete(r) => self.plumbing.route_delete(r).await,
                Undo::RemoveState(id) => self
                    .state
                    .remove_endpoint(*id)
                    .map_err(PlumbError::from_display),
            };
            if let Err(e) = result {
                tracing::error!(?step, error = %e, "rollback step failed");
            }
        }
    }

    /// Whether an endpoint gets a `<ip>/32 dev lxc…` route: always with
    /// `enable-endpoint-routes`, and for addresses outside the node's pod
    /// CIDR (kept from before a pod CIDR change), which the `cilium_host`
    /// route does not cover.
    fn needs_endpoint_route(&self, inner: &Inner, ip: Ipv4Addr) -> bool {
        self.cfg.endpoint_routes || !inner.pool.cidrs().iter().any(|c| c.contains(&ip))
    }

    /// Tear down everything of `ep` (best effort; errors are returned
    /// after every step was tried).
    async fn teardown(&self, inner: &mut Inner, ep: &EndpointState) -> Vec<String> {
        let mut errors = Vec::new();
        let mut note = |what: &str, r: PlumbResult<()>| {
            if let Err(e) = r {
                errors.push(format!("{what}: {e}"));
            }
        };
        note("detach", self.plumbing.detach(&ep.host_ifname));
        note("cilium_lxc", self.plumbing.lxc_delete(ep.ipv4));
        note("ipcache", self.plumbing.ipcache_delete(host32(ep.ipv4)));
        if self.needs_endpoint_route(inner, ep.ipv4) {
            note(
                "route",
                self.plumbing
                    .route_delete(&endpoint_route(ep.ipv4, &ep.host_ifname))
                    .await,
            );
        }
        note("link", self.plumbing.delete_link(&ep.host_ifname).await);
        if !ep.pod().is_empty()
            && let Err(e) = self
                .plumbing
                .remove_cep(&ep.pod_namespace, &ep.pod_name, &ep.container_id)
                .await
        {
            // Not fatal: the operator's GC removes CEPs of gone pods.
            tracing::warn!(endpoint = ep.id, error = %e, "removing CiliumEndpoint failed");
        }
        if inner.pool.allocated().get(&ep.ipv4) == Some(&ep.ipam_owner()) {
            inner.pool.release(ep.ipv4);
        }
        if let Err(e) = self.save_ipam(inner) {
            errors.push(e.message);
        }
        if let Err(e) = self.state.remove_endpoint(ep.id) {
            errors.push(e.to_string());
        }
        errors
    }

    /// CNI DEL: idempotent, success when there is nothing to delete.
    pub async fn del(&self, req: &CniDelRequest) -> Result<(), ApiError> {
        if req.container_id.is_empty() {
            return Err(api_error(
                codes::INVALID_ENV,
                "missing container_id (CNI_CONTAINERID)",
            ));
        }
        let mut inner = self.inner.lock().await;
        let found = inner
            .endpoints
            .values()
            .find(|e| e.is(&req.container_id, &req.ifname))
            .cloned();
        let Some(ep) = found else {
            // Maybe a leftover of an ADD that crashed half-way.
            let host = host_ifname(&req.container_id, &req.ifname);
            if self.plumbing.link_ifindex(&host).is_some() {
                self.plumbing
                    .delete_link(&host)
                    .await
                    .map_err(|e| api_error(codes::LINK, format!("deleting {host}: {e}")))?;
            }
            return Ok(());
        };
        let errors = self.teardown(&mut inner, &ep).await;
        inner.endpoints.remove(&ep.id);
        self.publish(&inner);
        tracing::info!(endpoint = ep.id, container = %ep.container_id, ip = %ep.ipv4, "endpoint deleted");
        if errors.is_empty() {
            Ok(())
        } else {
            Err(api_error(codes::IO, errors.join("; ")))
        }
    }

    /// CNI CHECK: the endpoint exists and its link, map entries and IP
    /// are in place.
    pub async fn check(&self, req: &CniCheckRequest) -> Result<(), ApiError> {
        let inner = self.inner.lock().await;
        let ep = inner
            .endpoints
            .values()
            .find(|e| e.is(&req.container_id, &req.ifname))
            .ok_or_else(|| {
                api_error(
                    codes::UNKNOWN_CONTAINER,
                    format!(
                        "no endpoint for container {} ifname {}",
                        req.container_id, req.ifname
                    ),
                )
            })?;
        let fail = |m: String| Err(api_error(codes::CHECK_FAILED, m));
        match self.plumbing.link_ifindex(&ep.host_ifname) {
            None => return fail(format!("{} does not exist", ep.host_ifname)),
            Some(i) if i != ep.host_ifindex => {
                return fail(format!(
                    "{} has ifindex {i}, expected {}",
                    ep.host_ifname, ep.host_ifindex
                ));
            }
            Some(_) => {}
        }
        if inner.pool.allocated().get(&ep.ipv4) != Some(&ep.ipam_owner()) {
            return fail(format!(
                "{} is not allocated to {}",
                ep.ipv4,
                ep.ipam_owner()
            ));
        }
        match self.plumbing.lxc_get(ep.ipv4) {
            Ok(Some(info)) if info == ep.lxc_info() => {}
            Ok(Some(info)) => {
                return fail(format!("cilium_lxc entry of {} differs: {info:?}", ep.ipv4));
            }
            Ok(None) => return fail(format!("cilium_lxc has no entry for {}", ep.ipv4)),
            Err(e) => return fail(format!("cilium_lxc: {e}")),
        }
        match self.plumbing.ipcache_get(host32(ep.ipv4)) {
            Ok(Some(id)) if id == ep.identity => Ok(()),
            Ok(other) => fail(format!(
                "ipcache entry of {}/32 is {other:?}, expected identity {}",
                ep.ipv4, ep.identity
            )),
            Err(e) => fail(format!("ipcache: {e}")),
        }
    }

    /// CNI GC: remove every endpoint not in `valid`, then release orphan
    /// IPs. Returns the container IDs removed.
    pub async fn gc(&self, valid: &[agentclient::Attachment]) -> Result<Vec<String>, ApiError> {
        let mut inner = self.inner.lock().await;
        let garbage: Vec<EndpointState> = inner
            .endpoints
            .values()
            .filter(|e| !valid.iter().any(|a| e.is(&a.container_id, &a.ifname)))
            .cloned()
            .collect();
        let mut removed = Vec::new();
        for ep in garbage {
            let errors = self.teardown(&mut inner, &ep).await;
            if !errors.is_empty() {
                tracing::warn!(endpoint = ep.id, errors = ?errors, "GC teardown incomplete");
            }
            inner.endpoints.remove(&ep.id);
            removed.push(ep.container_id.clone());
        }
        self.release_orphans(&mut inner)?;
        self.publish(&inner);
        Ok(removed)
    }

    /// Release allocations whose owner is neither reserved nor a live
    /// endpoint.
    fn release_orphans(&self, inner: &mut Inner) -> Result<Vec<Ipv4Addr>, ApiError> {
        let live: BTreeSet<(Ipv4Addr, String)> = inner
            .endpoints
            .values()
            .map(|e| (e.ipv4, e.ipam_owner()))
            .collect();
        let orphans = orphan_ips(&inner.pool.allocated(), &live);
        for ip in &orphans {
            let owner = inner.pool.release(*ip);
            tracing::info!(%ip, owner = owner.as_deref().unwrap_or(""), "released orphan IP");
        }
        if !orphans.is_empty() {
            self.save_ipam(inner)?;
        }
        Ok(orphans)
    }

    /// Restore persisted endpoints after a restart: endpoints whose link
    /// is gone are dropped (IP released, maps cleaned, CEP deleted); the
    /// others get their IP, map entries, programs, routes and CEP back,
    /// with the same endpoint ID. Then orphan IPs and our stale CEPs are
    /// removed.
    pub async fn restore(&self, saved: Vec<EndpointState>) {
        let mut inner = self.inner.lock().await;
        for mut ep in saved {
            let Some(ifindex) = self.plumbing.link_ifindex(&ep.host_ifname) else {
                tracing::warn!(endpoint = ep.id, host_ifname = %ep.host_ifname, "restore: link is gone, dropping endpoint");
                let errors = self.teardown(&mut inner, &ep).await;
                if !errors.is_empty() {
                    tracing::warn!(endpoint = ep.id, errors = ?errors, "restore: cleanup incomplete");
                }
                continue;
            };
            let in_pool = inner.pool.cidrs().iter().any(|c| c.contains(&ep.ipv4));
            if !in_pool {
                // The node got a new pod CIDR (its CiliumNode was deleted):
                // the pod keeps its address until it is recreated, reached
                // through a route of its own, as upstream does.
                tracing::warn!(endpoint = ep.id, ip = %ep.ipv4, "restore: IP is outside the node's pod CIDR; keeping it with an endpoint route until the pod is recreated");
            } else if let Err(e) = inner.pool.allocate(ep.ipv4, &ep.ipam_owner()) {
                tracing::error!(endpoint = ep.id, ip = %ep.ipv4, error = %e, "restore: IP not restorable, dropping endpoint");
                let _ = self.plumbing.delete_link(&ep.host_ifname).await;
                let _ = self.state.remove_endpoint(ep.id);
                continue;
            }
            if inner.endpoints.contains_key(&ep.id) {
                tracing::error!(endpoint = ep.id, "restore: duplicate endpoint ID, dropping");
                continue;
            }
            if ifindex != ep.host_ifindex {
                ep.host_ifindex = ifindex;
                let _ = self.state.save_endpoint(&ep);
            }
            let mut problems = Vec::new();
            if let Err(e) = self.plumbing.lxc_upsert(ep.ipv4, &ep.lxc_info()) {
                problems.push(format!("cilium_lxc: {e}"));
            }
            if let Err(e) = self.plumbing.attach(&ep.host_ifname) {
                problems.push(format!("attach: {e}"));
            }
            if let Err(e) = self.plumbing.ipcache_upsert(host32(ep.ipv4), ep.identity) {
                problems.push(format!("ipcache: {e}"));
            }
            if self.needs_endpoint_route(&inner, ep.ipv4)
                && let Err(e) = self
                    .plumbing
                    .route_replace(&endpoint_route(ep.ipv4, &ep.host_ifname))
                    .await
            {
                problems.push(format!("route: {e}"));
            }
            if !ep.pod().is_empty()
                && let Err(e) = self.plumbing.publish_cep(&ep).await
            {
                problems.push(format!("CiliumEndpoint: {e}"));
            }
            if problems.is_empty() {
                tracing::info!(endpoint = ep.id, ip = %ep.ipv4, pod = %ep.pod(), "endpoint restored");
            } else {
                tracing::error!(endpoint = ep.id, problems = ?problems, "endpoint restored with errors");
            }
            inner.endpoints.insert(ep.id, ep);
        }
        if let Err(e) = self.release_orphans(&mut inner) {
            tracing::error!(error = %e.message, "restore: orphan IP release");
        }
        if let Err(e) = self.save_ipam(&inner) {
            tracing::error!(error = %e.message, "restore: saving IPAM state");
        }
        match self.plumbing.own_ceps().await {
            Ok(ceps) => {
                for (ns, name, cid) in ceps {
                    let live = inner.endpoints.values().any(|e| {
                        e.container_id == cid && e.pod_namespace == ns && e.pod_name == name
                    });
                    if !live {
                        tracing::info!(namespace = %ns, name = %name, "deleting stale CiliumEndpoint of this node");
                        if let Err(e) = self.plumbing.remove_cep(&ns, &name, &cid).await {
                            tracing::warn!(error = %e, "deleting stale CiliumEndpoint failed");
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing this node's CiliumEndpoints failed"),
        }
        self.publish(&inner);
    }
}

/// The MTUs of a new endpoint: the CNI configuration's MTU (if any) or
/// the node's; the route MTU keeps the configured overhead below the
/// interface MTU (0, no route MTU, when the routing mode has none).
pub fn link_mtu(requested: Option<u32>, cfg: &EndpointsCfg) -> LinkMtu {
    let link = requested.filter(|m| *m > 0).unwrap_or(cfg.mtu);
    let route = if cfg.route_mtu == 0 {
        0
    } else {
        link.saturating_sub(cfg.mtu.saturating_sub(cfg.route_mtu))
    };
    LinkMtu { link, route }
}

/// Allocations that belong to nobody: owner neither reserved nor the
/// owner of a live endpoint at that address.
pub fn orphan_ips(
    allocated: &BTreeMap<Ipv4Addr, String>,
    live: &BTreeSet<(Ipv4Addr, String)>,
) -> Vec<Ipv4Addr> {
    allocated
        .iter()
        .filter(|(ip, owner)| {
            !RESERVED_OWNERS.contains(&owner.as_str()) && !live.contains(&(**ip, (*owner).clone()))
        })
        .map(|(ip, _)| *ip)
        .collect()
}

#[cfg(test)]
mod tests;

/// Durations of the steps of an endpoint creation (debug logs).
#[derive(Debug)]
struct StepTimer {
    last: std::time::Instant,
    steps: Vec<(&'static str, std::time::Duration)>,
}

impl Default for StepTimer {
    fn default() -> Self {
        Self {
            last: std::time::Instant::now(),
            steps: Vec::new(),
        }
    }
}

impl StepTimer {
    fn step(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.steps.push((name, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for StepTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, d)) in self.steps.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{name}={:.2}ms", d.as_secs_f64() * 1000.0)?;
        }
        Ok(())
    }
}
