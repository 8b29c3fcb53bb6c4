//! The endpoint manager: the CNI handlers (ADD, DEL, CHECK, GC), restore
//! after a restart, and IP orphan collection.
//!
//! One endpoint's kernel state is a veth pair (created here, through the
//! [`Dataplane`] seam, because it needs the pod's namespace) plus rows of
//! desired state: its `cilium_lxc` entry, its programs, its endpoint route
//! and its CiliumEndpoint ([`crate::tables`]). Reconcilers apply the rows;
//! an ADD returns once they, and the ipcache controller's row for the
//! pod's IP, are in place. A failed ADD removes what it wrote.
//!
//! Concurrency: operations on one attachment (container ID, interface) run
//! one at a time; different attachments run in parallel. The node-wide
//! state (IP pool, endpoint table) is behind a short synchronous lock that
//! is never held across an await, so identity allocation and store writes
//! of one ADD never hold up another.
//!
//! Every accepted change is persisted to the state dir before it is
//! acknowledged, and published on a watch channel ([`EndpointSnapshot`])
//! for the ipcache controller, status and metrics.

mod error;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use tokio::sync::watch;
use toolkit::KeyedLocks;

pub use self::error::EndpointError;
use crate::dataplane::{Dataplane, LinkInfo, LinkRequest};
use crate::endpoint::{EndpointState, host_ifname, ipam_owner, next_endpoint_id};
use crate::routes::endpoint_route;
use crate::state::{IpamState, StateDir};
use crate::tables::{CepRow, EndpointWriters, ProgramRow, RouteOwner, RouteRow, Tables};

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

/// Resolves the security identity of a new endpoint.
pub trait IdentityResolver: Send + Sync + 'static {
    /// The identity and its label strings for a pod (or container).
    fn resolve(
        &self,
        pod: &PodRef,
    ) -> impl Future<Output = Result<(u32, Vec<String>), String>> + Send;
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

impl EndpointSnapshot {
    /// The endpoints as the ipcache controller needs them.
    pub fn ipcache_endpoints(&self) -> Vec<crate::ipcache::LocalEndpoint> {
        self.endpoints
            .iter()
            .map(|e| crate::ipcache::LocalEndpoint {
                ip: e.ipv4,
                identity: e.identity,
                labels: e.labels.clone(),
            })
            .collect()
    }
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
    /// How long an ADD waits for its rows to be applied.
    pub apply_timeout: Duration,
}

/// An ADD's request, in the endpoint manager's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddRequest {
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS.
    pub netns: String,
    /// CNI_IFNAME.
    pub ifname: String,
    /// Pod namespace (empty for non-Kubernetes containers).
    pub pod_namespace: String,
    /// Pod name.
    pub pod_name: String,
    /// Pod UID.
    pub pod_uid: String,
    /// MTU asked for by the CNI configuration.
    pub mtu: Option<u32>,
}

/// MTUs of a new endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkMtu {
    /// The interfaces' MTU (both veth ends).
    pub link: u32,
    /// MTU on the pod's routes (0 = none).
    pub route: u32,
}

/// The node-wide state behind the short lock.
struct Inner {
    pool: Box<dyn IpPool>,
    endpoints: BTreeMap<u16, EndpointState>,
    /// IDs handed to ADDs still in progress.
    reserved_ids: BTreeSet<u16>,
}

/// The endpoint manager.
pub struct EndpointManager<D: Dataplane, I: IdentityResolver> {
    dataplane: Arc<D>,
    identities: I,
    tables: Tables,
    cfg: EndpointsCfg,
    state: StateDir,
    inner: Mutex<Inner>,
    attachments: KeyedLocks<(String, String)>,
    initializers: Mutex<Option<EndpointWriters>>,
    snapshot_tx: watch::Sender<EndpointSnapshot>,
}

fn host32(ip: Ipv4Addr) -> Ipv4Net {
    Ipv4Net::new(ip, 32).expect("/32 is valid")
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

/// The address and ID an ADD holds until it commits or gives up.
struct Reservation {
    id: u16,
    ip: Ipv4Addr,
}

impl<D: Dataplane, I: IdentityResolver> EndpointManager<D, I> {
    /// A manager over `pool` (already holding router/health allocations).
    /// No I/O; call [`EndpointManager::restore`] before serving, which
    /// declares the rows of `writers`' tables initialized.
    pub fn new(
        dataplane: Arc<D>,
        identities: I,
        (tables, writers): (Tables, EndpointWriters),
        cfg: EndpointsCfg,
        state: StateDir,
        pool: Box<dyn IpPool>,
    ) -> Self {
        let (snapshot_tx, _) = watch::channel(EndpointSnapshot::default());
        Self {
            dataplane,
            identities,
            tables,
            cfg,
            state,
            inner: Mutex::new(Inner {
                pool,
                endpoints: BTreeMap::new(),
                reserved_ids: BTreeSet::new(),
            }),
            attachments: KeyedLocks::new(),
            initializers: Mutex::new(Some(writers)),
            snapshot_tx,
        }
    }

    /// Subscribe to endpoint/IPAM changes.
    pub fn subscribe(&self) -> watch::Receiver<EndpointSnapshot> {
        self.snapshot_tx.subscribe()
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Every section leaves the state consistent before it can panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
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

    fn save_ipam(&self, inner: &Inner) -> Result<(), EndpointError> {
        let st = IpamState {
            cidrs: inner.pool.cidrs(),
            allocations: inner.pool.allocated(),
        };
        self.state
            .save_ipam(&st)
            .map_err(|e| EndpointError::Io(format!("persisting IPAM state: {e}")))
    }

    fn find(&self, container_id: &str, ifname: &str) -> Option<EndpointState> {
        self.inner()
            .endpoints
            .values()
            .find(|e| e.is(container_id, ifname))
            .cloned()
    }

    /// Whether an endpoint gets a `<ip>/32 dev lxc…` route: always with
    /// `enable-endpoint-routes`, and for addresses outside the node's pod
    /// CIDR (kept from before a pod CIDR change), which the `cilium_host`
    /// route does not cover.
    fn needs_endpoint_route(&self, ip: Ipv4Addr) -> bool {
        self.cfg.endpoint_routes || !self.inner().pool.cidrs().iter().any(|c| c.contains(&ip))
    }

    /// CNI ADD.
    pub async fn add(&self, req: &AddRequest) -> Result<EndpointState, EndpointError> {
        for (name, v) in [
            ("container_id (CNI_CONTAINERID)", &req.container_id),
            ("netns (CNI_NETNS)", &req.netns),
            ("ifname (CNI_IFNAME)", &req.ifname),
        ] {
            if v.is_empty() {
                return Err(EndpointError::InvalidRequest(format!("missing {name}")));
            }
        }
        let _attachment = self
            .attachments
            .lock((req.container_id.clone(), req.ifname.clone()))
            .await;
        if let Some(ep) = self.find(&req.container_id, &req.ifname) {
            tracing::info!(endpoint = ep.id, container = %req.container_id, "ADD: endpoint exists, returning it");
            return Ok(ep);
        }
        let mut timer = StepTimer::default();
        let owner = ipam_owner(&req.pod_namespace, &req.pod_name, &req.container_id);
        let reservation = self.reserve(&owner)?;
        timer.step("ipam");
        let ep = match self.create(req, &reservation, &mut timer).await {
            Ok(ep) => ep,
            Err(e) => {
                tracing::warn!(container = %req.container_id, error = %e, "ADD failed, rolling back");
                self.unreserve(&reservation);
                return Err(e);
            }
        };
        self.commit(&ep, &reservation);
        self.write_rows(&ep);
        if let Err(e) = self.wait_applied(&ep).await {
            tracing::warn!(endpoint = ep.id, container = %req.container_id, error = %e, "ADD failed, rolling back");
            let problems = self.teardown(&ep).await;
            if !problems.is_empty() {
                tracing::error!(endpoint = ep.id, ?problems, "rollback incomplete");
            }
            return Err(e);
        }
        timer.step("datapath");
        tracing::info!(
            endpoint = ep.id,
            container = %ep.container_id,
            pod = %ep.pod(),
            ip = %ep.ipv4,
            identity = ep.identity,
            host_ifname = %ep.host_ifname,
            steps = %timer,
            "endpoint created"
        );
        Ok(ep)
    }

    /// Take an endpoint ID and the lowest free address.
    fn reserve(&self, owner: &str) -> Result<Reservation, EndpointError> {
        let mut inner = self.inner();
        let used: BTreeSet<u16> = inner
            .endpoints
            .keys()
            .chain(&inner.reserved_ids)
            .copied()
            .collect();
        let id = next_endpoint_id(&used)
            .ok_or_else(|| EndpointError::Exhausted("no free endpoint ID (1-4095)".into()))?;
        let ip = inner
            .pool
            .allocate_next(owner)
            .map_err(|e| EndpointError::Exhausted(format!("IPAM: {e}")))?;
        if let Err(e) = self.save_ipam(&inner) {
            inner.pool.release(ip);
            return Err(e);
        }
        inner.reserved_ids.insert(id);
        self.publish(&inner);
        Ok(Reservation { id, ip })
    }

    /// Give back a reservation of a failed ADD.
    fn unreserve(&self, r: &Reservation) {
        let mut inner = self.inner();
        inner.reserved_ids.remove(&r.id);
        inner.pool.release(r.ip);
        if let Err(e) = self.save_ipam(&inner) {
            tracing::error!(error = %e, "rollback: saving IPAM state");
        }
        self.publish(&inner);
    }

    /// The veth pair, the identity and the persisted record of a new
    /// endpoint (the veth is removed again on failure).
    async fn create(
        &self,
        req: &AddRequest,
        r: &Reservation,
        timer: &mut StepTimer,
    ) -> Result<EndpointState, EndpointError> {
        let host = host_ifname(&req.container_id, &req.ifname);
        let mtu = link_mtu(req.mtu, &self.cfg);
        // A leftover from a crashed ADD would make the veth creation fail.
        if self.dataplane.link_ifindex(&host).is_some() {
            self.dataplane
                .delete_link(&host)
                .await
                .map_err(|e| EndpointError::Link(format!("removing stale {host}: {e}")))?;
        }
        let link = self
            .dataplane
            .create_link(&LinkRequest {
                netns: PathBuf::from(&req.netns),
                host_ifname: host.clone(),
                ifname: req.ifname.clone(),
                ip: r.ip,
                gateway: self.cfg.router_ip,
                mtu: mtu.link,
                route_mtu: mtu.route,
            })
            .await
            .map_err(|e| EndpointError::Link(format!("creating {host}: {e}")))?;
        timer.step("link");
        let made = self.identified(req, r, &host, link, mtu).await;
        if made.is_err()
            && let Err(e) = self.dataplane.delete_link(&host).await
        {
            tracing::error!(link = %host, error = %e, "rollback: deleting the link");
        }
        timer.step("identity");
        made
    }

    async fn identified(
        &self,
        req: &AddRequest,
        r: &Reservation,
        host: &str,
        link: LinkInfo,
        mtu: LinkMtu,
    ) -> Result<EndpointState, EndpointError> {
        let pod = PodRef {
            namespace: req.pod_namespace.clone(),
            name: req.pod_name.clone(),
            container_id: req.container_id.clone(),
        };
        let (identity, labels) = self
            .identities
            .resolve(&pod)
            .await
            .map_err(|e| EndpointError::Identity(format!("identity: {e}")))?;
        let ep = EndpointState {
            id: r.id,
            container_id: req.container_id.clone(),
            ifname: req.ifname.clone(),
            netns: req.netns.clone(),
            pod_namespace: req.pod_namespace.clone(),
            pod_name: req.pod_name.clone(),
            pod_uid: req.pod_uid.clone(),
            ipv4: r.ip,
            host_ifname: host.to_string(),
            host_ifindex: link.host_ifindex,
            host_mac: link.host_mac,
            container_mac: link.container_mac,
            identity,
            labels,
            mtu: mtu.link,
        };
        self.state
            .save_endpoint(&ep)
            .map_err(|e| EndpointError::Io(format!("persisting endpoint: {e}")))?;
        Ok(ep)
    }

    /// The endpoint joins the table (published for the ipcache controller).
    fn commit(&self, ep: &EndpointState, r: &Reservation) {
        let mut inner = self.inner();
        inner.reserved_ids.remove(&r.id);
        inner.endpoints.insert(ep.id, ep.clone());
        self.publish(&inner);
    }

    /// Desired rows of an endpoint: its map entry, programs, route and
    /// CiliumEndpoint.
    fn write_rows(&self, ep: &EndpointState) {
        self.tables.lxc.insert(ep.lxc_row());
        self.tables.programs.insert(ProgramRow {
            host_ifname: ep.host_ifname.clone(),
        });
        if self.needs_endpoint_route(ep.ipv4) {
            self.tables
                .routes
                .insert(endpoint_route(ep.ipv4, &ep.host_ifname));
        }
        if !ep.pod().is_empty() {
            self.tables.ceps.insert(CepRow {
                endpoint: ep.clone(),
            });
        }
    }

    /// Wait until the endpoint's datapath rows (and the ipcache entry of
    /// its IP) are applied.
    async fn wait_applied(&self, ep: &EndpointState) -> Result<(), EndpointError> {
        let t = self.cfg.apply_timeout;
        let datapath = |e: reconciler::WaitError| EndpointError::Datapath(e.to_string());
        let lxc = ep.lxc_row();
        self.tables
            .lxc
            .wait_row(&ep.ipv4, |r| *r == lxc, t)
            .await
            .map_err(datapath)?;
        self.tables
            .programs
            .wait_row(&ep.host_ifname, |_| true, t)
            .await
            .map_err(datapath)?;
        if self.needs_endpoint_route(ep.ipv4) {
            self.tables
                .routes
                .wait_row(&host32(ep.ipv4), |r| r.dev == ep.host_ifname, t)
                .await
                .map_err(datapath)?;
        }
        self.tables
            .ipcache
            .wait_row(&host32(ep.ipv4), |r| r.identity == ep.identity, t)
            .await
            .map_err(datapath)
    }

    /// Remove everything of `ep` (best effort): its rows (waiting for the
    /// reconcilers to act), its address and record, then its veth.
    /// Returns the problems met.
    async fn teardown(&self, ep: &EndpointState) -> Vec<String> {
        let mut problems = Vec::new();
        let t = &self.tables;
        let timeout = self.cfg.apply_timeout;
        remove_row(
            &t.programs,
            &ep.host_ifname,
            |_| true,
            timeout,
            &mut problems,
        )
        .await;
        remove_row(
            &t.lxc,
            &ep.ipv4,
            |r| r.endpoint_id == ep.id,
            timeout,
            &mut problems,
        )
        .await;
        let route_of_ep = |r: &RouteRow| r.owner == RouteOwner::Endpoint && r.dev == ep.host_ifname;
        remove_row(
            &t.routes,
            &host32(ep.ipv4),
            route_of_ep,
            timeout,
            &mut problems,
        )
        .await;
        // Not waited for: the store may be slow, and a CiliumEndpoint left
        // behind is removed by the retry or the next prune.
        let key = (ep.pod_namespace.clone(), ep.pod_name.clone());
        if t.ceps
            .get(&key)
            .is_some_and(|(r, _, _)| r.endpoint.container_id == ep.container_id)
        {
            t.ceps.delete(&key);
        }
        {
            let mut inner = self.inner();
            inner.endpoints.remove(&ep.id);
            if inner.pool.allocated().get(&ep.ipv4) == Some(&ep.ipam_owner()) {
                inner.pool.release(ep.ipv4);
            }
            if let Err(e) = self.save_ipam(&inner) {
                problems.push(e.to_string());
            }
            self.publish(&inner);
        }
        if let Err(e) = self.state.remove_endpoint(ep.id) {
            problems.push(e.to_string());
        }
        if self.dataplane.link_ifindex(&ep.host_ifname).is_some()
            && let Err(e) = self.dataplane.delete_link(&ep.host_ifname).await
        {
            problems.push(format!("link: {e}"));
        }
        problems
    }

    /// CNI DEL: idempotent, success when there is nothing to delete.
    pub async fn del(&self, container_id: &str, ifname: &str) -> Result<(), EndpointError> {
        if container_id.is_empty() {
            return Err(EndpointError::InvalidRequest(
                "missing container_id (CNI_CONTAINERID)".into(),
            ));
        }
        let _attachment = self
            .attachments
            .lock((container_id.to_string(), ifname.to_string()))
            .await;
        let Some(ep) = self.find(container_id, ifname) else {
            // Maybe a leftover of an ADD that crashed half-way.
            let host = host_ifname(container_id, ifname);
            if self.dataplane.link_ifindex(&host).is_some() {
                self.dataplane
                    .delete_link(&host)
                    .await
                    .map_err(|e| EndpointError::Link(format!("deleting {host}: {e}")))?;
            }
            return Ok(());
        };
        let problems = self.teardown(&ep).await;
        tracing::info!(endpoint = ep.id, container = %ep.container_id, ip = %ep.ipv4, "endpoint deleted");
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EndpointError::Io(problems.join("; ")))
        }
    }

    /// CNI CHECK: the endpoint exists and its link, map entries and IP
    /// are in place.
    pub async fn check(&self, container_id: &str, ifname: &str) -> Result<(), EndpointError> {
        let ep = self.find(container_id, ifname).ok_or_else(|| {
            EndpointError::UnknownEndpoint(format!(
                "no endpoint for container {container_id} ifname {ifname}"
            ))
        })?;
        let fail = |m: String| Err(EndpointError::CheckFailed(m));
        match self.dataplane.link_ifindex(&ep.host_ifname) {
            None => return fail(format!("{} does not exist", ep.host_ifname)),
            Some(i) if i != ep.host_ifindex => {
                return fail(format!(
                    "{} has ifindex {i}, expected {}",
                    ep.host_ifname, ep.host_ifindex
                ));
            }
            Some(_) => {}
        }
        if self.inner().pool.allocated().get(&ep.ipv4) != Some(&ep.ipam_owner()) {
            return fail(format!(
                "{} is not allocated to {}",
                ep.ipv4,
                ep.ipam_owner()
            ));
        }
        let lxc = match self.dataplane.lxc_entries() {
            Ok(all) => all.into_iter().find(|r| r.ip == ep.ipv4),
            Err(e) => return fail(format!("cilium_lxc: {e}")),
        };
        match lxc {
            Some(row) if row == ep.lxc_row() => {}
            Some(row) => return fail(format!("cilium_lxc entry of {} differs: {row:?}", ep.ipv4)),
            None => return fail(format!("cilium_lxc has no entry for {}", ep.ipv4)),
        }
        let ipcache = match self.dataplane.ipcache_entries() {
            Ok(all) => all
                .into_iter()
                .find(|(p, _)| *p == host32(ep.ipv4))
                .map(|(_, e)| e.identity),
            Err(e) => return fail(format!("ipcache: {e}")),
        };
        match ipcache {
            Some(id) if id == ep.identity => Ok(()),
            other => fail(format!(
                "ipcache entry of {}/32 is {other:?}, expected identity {}",
                ep.ipv4, ep.identity
            )),
        }
    }

    /// CNI GC: remove every endpoint not in `valid` (container ID,
    /// interface), then release orphan IPs. Returns the container IDs
    /// removed.
    pub async fn gc(&self, valid: &[(String, String)]) -> Result<Vec<String>, EndpointError> {
        let garbage: Vec<EndpointState> = self
            .inner()
            .endpoints
            .values()
            .filter(|e| !valid.iter().any(|(c, i)| e.is(c, i)))
            .cloned()
            .collect();
        let mut removed = Vec::new();
        for ep in garbage {
            let _attachment = self
                .attachments
                .lock((ep.container_id.clone(), ep.ifname.clone()))
                .await;
            let problems = self.teardown(&ep).await;
            if !problems.is_empty() {
                tracing::warn!(endpoint = ep.id, ?problems, "GC teardown incomplete");
            }
            removed.push(ep.container_id.clone());
        }
        self.release_orphans()?;
        Ok(removed)
    }

    /// Release allocations whose owner is neither reserved, nor a live
    /// endpoint, nor an ADD in progress.
    fn release_orphans(&self) -> Result<Vec<Ipv4Addr>, EndpointError> {
        let mut inner = self.inner();
        if !inner.reserved_ids.is_empty() {
            return Ok(Vec::new()); // an ADD holds an address not yet live
        }
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
            self.save_ipam(&inner)?;
            self.publish(&inner);
        }
        Ok(orphans)
    }

    /// Restore persisted endpoints after a restart: endpoints whose link
    /// is gone are dropped (address released; their map entries and
    /// CiliumEndpoint go with the reconcilers' prune); the others keep
    /// their address and endpoint ID and get their rows again. Then orphan
    /// IPs are released and the tables this manager writes are declared
    /// initialized, which lets their reconcilers prune.
    pub async fn restore(&self, saved: Vec<EndpointState>) {
        for ep in saved {
            self.restore_one(ep);
        }
        if let Err(e) = self.release_orphans() {
            tracing::error!(error = %e, "restore: orphan IP release");
        }
        let endpoints: Vec<EndpointState> = self.inner().endpoints.values().cloned().collect();
        for ep in &endpoints {
            self.write_rows(ep);
        }
        for ep in &endpoints {
            if let Err(e) = self.wait_applied(ep).await {
                tracing::error!(endpoint = ep.id, error = %e, "endpoint restored with errors");
            } else {
                tracing::info!(endpoint = ep.id, ip = %ep.ipv4, pod = %ep.pod(), "endpoint restored");
            }
        }
        let writers = self
            .initializers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(w) = writers {
            w.done();
        }
        self.publish(&self.inner());
    }

    /// Take back one persisted endpoint (no kernel writes yet).
    fn restore_one(&self, mut ep: EndpointState) {
        let mut inner = self.inner();
        let Some(ifindex) = self.dataplane.link_ifindex(&ep.host_ifname) else {
            tracing::warn!(endpoint = ep.id, host_ifname = %ep.host_ifname, "restore: link is gone, dropping endpoint");
            if let Err(e) = self.state.remove_endpoint(ep.id) {
                tracing::warn!(endpoint = ep.id, error = %e, "restore: removing the record");
            }
            return;
        };
        let in_pool = inner.pool.cidrs().iter().any(|c| c.contains(&ep.ipv4));
        if !in_pool {
            // The node got a new pod CIDR (its CiliumNode was deleted): the
            // pod keeps its address until it is recreated, reached through a
            // route of its own, as upstream does.
            tracing::warn!(endpoint = ep.id, ip = %ep.ipv4, "restore: IP is outside the node's pod CIDR; keeping it with an endpoint route until the pod is recreated");
        } else if let Err(e) = inner.pool.allocate(ep.ipv4, &ep.ipam_owner()) {
            tracing::error!(endpoint = ep.id, ip = %ep.ipv4, error = %e, "restore: IP not restorable, dropping endpoint");
            let _ = self.state.remove_endpoint(ep.id);
            return;
        }
        if inner.endpoints.contains_key(&ep.id) {
            tracing::error!(endpoint = ep.id, "restore: duplicate endpoint ID, dropping");
            return;
        }
        if ifindex != ep.host_ifindex {
            ep.host_ifindex = ifindex;
            if let Err(e) = self.state.save_endpoint(&ep) {
                tracing::warn!(endpoint = ep.id, error = %e, "restore: saving the new ifindex");
            }
        }
        inner.endpoints.insert(ep.id, ep);
        self.publish(&inner);
    }
}

/// Delete the row of `key` if `ours` says it belongs to the endpoint
/// being removed, and wait until its reconciler has acted.
async fn remove_row<R: reconciler::Row>(
    table: &reconciler::Table<R>,
    key: &R::Key,
    ours: impl Fn(&R) -> bool,
    timeout: Duration,
    problems: &mut Vec<String>,
) {
    if !table.get(key).is_some_and(|(r, _, _)| ours(&r)) {
        return;
    }
    if let Some(rev) = table.delete(key)
        && let Err(e) = table.wait_reconciled(rev, timeout).await
    {
        problems.push(e.to_string());
    }
}

/// Durations of the steps of an endpoint creation (debug logs).
#[derive(Debug)]
struct StepTimer {
    last: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl Default for StepTimer {
    fn default() -> Self {
        Self {
            last: Instant::now(),
            steps: Vec::new(),
        }
    }
}

impl StepTimer {
    fn step(&mut self, name: &'static str) {
        let now = Instant::now();
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

#[cfg(test)]
mod tests;
