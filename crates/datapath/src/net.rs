//! Netlink helpers (rtnetlink): devices, endpoint veths, routes, sysctls.
//! Functions act on the calling process's network namespace (the node's),
//! except where a pod namespace path is given: those open a netlink socket
//! inside that namespace from a dedicated thread (never `setns` on a tokio
//! worker).

use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

use crate::Result;

/// A created endpoint link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointLink {
    /// Host-side ifindex.
    pub host_ifindex: u32,
    /// Host-side MAC.
    pub host_mac: [u8; 6],
    /// Container-side MAC.
    pub container_mac: [u8; 6],
}

/// Create (or re-create) `cilium_host`/`cilium_net`, put `router_ip/32` on
/// `cilium_host` (NOARP), bring both up; returns `cilium_host`'s ifindex.
pub async fn setup_host_devices(router_ip: Ipv4Addr, mtu: u32) -> Result<u32> {
    let _ = (router_ip, mtu);
    todo!()
}

/// Create the veth pair of an endpoint: `host_ifname` stays in the node
/// namespace (up), the peer moves into the pod namespace at `netns` as
/// `ifname` with `ip/32`, MTU `mtu`, a route to `gateway` (scope link) and
/// a default route via it. All or nothing: on error nothing is left.
pub async fn create_endpoint_link(
    netns: &Path,
    host_ifname: &str,
    ifname: &str,
    ip: Ipv4Addr,
    gateway: Ipv4Addr,
    mtu: u32,
) -> Result<EndpointLink> {
    let _ = (netns, host_ifname, ifname, ip, gateway, mtu);
    todo!()
}

/// Delete a link by name in the node namespace (absent is fine).
pub async fn delete_link(name: &str) -> Result<()> {
    let _ = name;
    todo!()
}

/// A route in the node namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination.
    pub dst: Ipv4Net,
    /// Gateway, if any.
    pub via: Option<Ipv4Addr>,
    /// Output device.
    pub dev: String,
    /// Preferred source address.
    pub src: Option<Ipv4Addr>,
    /// MTU metric (0 = none).
    pub mtu: u32,
    /// Protocol (`kernel` = 2, `static` = 4, or our own).
    pub proto: u8,
    /// Scope link (true) or universe.
    pub scope_link: bool,
}

/// Add or replace a route.
pub async fn route_replace(r: &Route) -> Result<()> {
    let _ = r;
    todo!()
}

/// Delete a route (absent is fine).
pub async fn route_delete(r: &Route) -> Result<()> {
    let _ = r;
    todo!()
}

/// Every IPv4 route of the main table with protocol `proto`.
pub async fn routes_with_proto(proto: u8) -> Result<Vec<Route>> {
    let _ = proto;
    todo!()
}

/// Write a sysctl under `/proc/sys` (dots in `key`).
pub fn sysctl_set(key: &str, value: &str) -> Result<()> {
    let _ = (key, value);
    todo!()
}
