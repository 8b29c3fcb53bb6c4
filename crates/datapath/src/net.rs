//! Netlink helpers (rtnetlink): devices, endpoint veths, routes, sysctls.
//! Functions act on the calling process's network namespace (the node's),
//! except where a pod namespace path is given: those open a netlink socket
//! inside that namespace from a dedicated thread (never `setns` on a tokio
//! worker).

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{
    InfoData, InfoGeneve, InfoVeth, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol, RouteScope,
};
use rtnetlink::{
    Handle, LinkGeneve, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVxlan, RouteMessageBuilder,
};

use crate::{CILIUM_GENEVE, CILIUM_HOST, CILIUM_NET, CILIUM_VXLAN, Error, Result, TunnelProtocol};

const ENODEV: i32 = 19;
const EEXIST: i32 = 17;
const ESRCH: i32 = 3;
const ENOENT: i32 = 2;
const EADDRNOTAVAIL: i32 = 99;
const EOPNOTSUPP: i32 = 95;

/// MTU of the tunnel devices (the base MTU; overhead is taken off routes).
const TUNNEL_DEVICE_MTU: u32 = 1500;

fn nl(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Netlink(format!("{what}: {e}"))
}

/// The errno of a netlink error reply, if it is one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// A netlink handle in the calling thread's network namespace.
fn connect() -> Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| nl("netlink socket", e))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// A netlink handle whose socket lives in the network namespace at `netns`:
/// the socket is opened on a short-lived thread that `setns`es there (never
/// on a tokio worker), then used from here.
async fn connect_in(netns: &Path) -> Result<Handle> {
    let file = std::fs::File::open(netns).map_err(|e| nl(netns.display(), e))?;
    let rt = tokio::runtime::Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let res = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| nl("setns", e))
            .and_then(|()| {
                let _guard = rt.enter();
                rtnetlink::new_connection().map_err(|e| nl("netlink socket", e))
            });
        let _ = tx.send(res);
    });
    let (conn, handle, _) = rx.await.map_err(|e| nl("netns thread", e))??;
    tokio::spawn(conn);
    Ok(handle)
}

/// A link's netlink message by name, `None` if absent.
async fn link_message_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    match h
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
    {
        Ok(m) => Ok(m),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
        Err(e) => Err(nl(format!("get link {name}"), e)),
    }
}

/// Index and MAC of a link by name, `None` if absent.
async fn link_by_name(h: &Handle, name: &str) -> Result<Option<(u32, [u8; 6])>> {
    Ok(link_message_by_name(h, name)
        .await?
        .map(|msg| (msg.header.index, link_mac(&msg))))
}

/// `aa:bb:cc:dd:ee:ff`, as `ip link` prints a MAC.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn link_mac(msg: &LinkMessage) -> [u8; 6] {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(b) if b.len() == 6 => Some([b[0], b[1], b[2], b[3], b[4], b[5]]),
            _ => None,
        })
        .unwrap_or_default()
}

async fn require_link(h: &Handle, name: &str) -> Result<(u32, [u8; 6])> {
    link_by_name(h, name)
        .await?
        .ok_or_else(|| Error::Netlink(format!("link {name} not found")))
}

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
///
/// Idempotent: an existing pair is kept (MTU updated, stale addresses on
/// `cilium_host` removed). Also sets `rp_filter=0` and `forwarding=1` on both.
pub async fn setup_host_devices(router_ip: Ipv4Addr, mtu: u32) -> Result<u32> {
    let h = connect()?;
    let host = match link_by_name(&h, CILIUM_HOST).await? {
        Some((idx, _)) if link_by_name(&h, CILIUM_NET).await?.is_some() => idx,
        stale => {
            if let Some((idx, _)) = stale {
                del_index(&h, idx, CILIUM_HOST).await?;
            }
            if let Some((idx, _)) = link_by_name(&h, CILIUM_NET).await? {
                del_index(&h, idx, CILIUM_NET).await?;
            }
            h.link()
                .add(LinkVeth::new(CILIUM_HOST, CILIUM_NET).mtu(mtu).build())
                .execute()
                .await
                .map_err(|e| nl("creating cilium_host/cilium_net", e))?;
            require_link(&h, CILIUM_HOST).await?.0
        }
    };
    let net = require_link(&h, CILIUM_NET).await?.0;
    for (idx, name, arp) in [(host, CILIUM_HOST, false), (net, CILIUM_NET, true)] {
        let msg = LinkUnspec::new_with_index(idx)
            .arp(arp)
            .mtu(mtu)
            .up()
            .build();
        h.link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| nl(format!("configuring {name}"), e))?;
    }
    // Exactly router_ip/32 on cilium_host.
    let mut addrs = h.address().get().set_link_index_filter(host).execute();
    let mut stale = Vec::new();
    while let Some(a) = addrs
        .try_next()
        .await
        .map_err(|e| nl("listing addresses", e))?
    {
        let is_router = a.header.prefix_len == 32
            && a.attributes.iter().any(
                |x| matches!(x, AddressAttribute::Address(IpAddr::V4(ip)) if *ip == router_ip),
            );
        if a.header.family == AddressFamily::Inet && !is_router {
            stale.push(a);
        }
    }
    for a in stale {
        match h.address().del(a).execute().await {
            Err(e) if errno(&e) != Some(EADDRNOTAVAIL) => {
                return Err(nl("removing a stale cilium_host address", e));
            }
            _ => {}
        }
    }
    h.address()
        .add(host, IpAddr::V4(router_ip), 32)
        .replace()
        .execute()
        .await
        .map_err(|e| nl(format!("adding {router_ip}/32 to cilium_host"), e))?;
    for dev in [CILIUM_HOST, CILIUM_NET] {
        sysctl_set(&format!("net.ipv4.conf.{dev}.rp_filter"), "0")?;
        sysctl_set(&format!("net.ipv4.conf.{dev}.forwarding"), "1")?;
    }
    Ok(host)
}

async fn del_index(h: &Handle, idx: u32, name: &str) -> Result<()> {
    match h.link().del(idx).execute().await {
        Err(e) if errno(&e) != Some(ENODEV) => Err(nl(format!("deleting {name}"), e)),
        _ => Ok(()),
    }
}

/// Create the veth pair of an endpoint: `host_ifname` stays in the node
/// namespace (up), the peer moves into the pod namespace at `netns` as
/// `ifname` with `ip/32`, MTU `mtu`, a route to `gateway` (scope link) and
/// a default route via it; both routes carry `mtu route_mtu` unless it is
/// 0 (tunnel mode: device MTU 1500, routes 1450). All or nothing: on error
/// nothing is left.
///
/// The peer is created directly inside the pod namespace under its final
/// name; a leftover `host_ifname` from an earlier attempt is replaced.
/// `rp_filter` is set to 0 on the host side.
pub async fn create_endpoint_link(
    netns: &Path,
    host_ifname: &str,
    ifname: &str,
    ip: Ipv4Addr,
    gateway: Ipv4Addr,
    mtu: u32,
    route_mtu: u32,
) -> Result<EndpointLink> {
    let h = connect()?;
    let ns = std::fs::File::open(netns).map_err(|e| nl(netns.display(), e))?;
    let build = || {
        let peer = rtnetlink::LinkMessageBuilder::<LinkUnspec>::new()
            .name(ifname.to_string())
            .mtu(mtu)
            .setns_by_fd(ns.as_raw_fd())
            .build();
        LinkVeth::new(host_ifname, ifname)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .mtu(mtu)
            .up()
            .build()
    };
    if let Err(e) = h.link().add(build()).execute().await {
        // A leftover host veth from an earlier attempt: replace it once.
        match link_by_name(&h, host_ifname).await? {
            Some((idx, _)) if errno(&e) == Some(EEXIST) => {
                del_index(&h, idx, host_ifname).await?;
                h.link()
                    .add(build())
                    .execute()
                    .await
                    .map_err(|e| nl(format!("creating veth {host_ifname}"), e))?;
            }
            _ => return Err(nl(format!("creating veth {host_ifname}/{ifname}"), e)),
        }
    }
    let res = plumb_endpoint(&h, netns, host_ifname, ifname, ip, gateway, route_mtu).await;
    if res.is_err() {
        // All or nothing: deleting the host side removes the peer too.
        let _ = delete_link(host_ifname).await;
    }
    res
}

async fn plumb_endpoint(
    h: &Handle,
    netns: &Path,
    host_ifname: &str,
    ifname: &str,
    ip: Ipv4Addr,
    gateway: Ipv4Addr,
    route_mtu: u32,
) -> Result<EndpointLink> {
    let (host_ifindex, host_mac) = require_link(h, host_ifname).await?;
    sysctl_set(&format!("net.ipv4.conf.{host_ifname}.rp_filter"), "0")?;
    let pod = connect_in(netns).await?;
    let (idx, container_mac) = require_link(&pod, ifname).await?;
    pod.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(|e| nl(format!("setting {ifname} up"), e))?;
    pod.address()
        .add(idx, IpAddr::V4(ip), 32)
        .replace()
        .execute()
        .await
        .map_err(|e| nl(format!("adding {ip}/32"), e))?;
    let to_gw = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(gateway, 32)
        .output_interface(idx)
        .scope(RouteScope::Link)
        .build();
    let default = RouteMessageBuilder::<Ipv4Addr>::new()
        .output_interface(idx)
        .gateway(gateway)
        .build();
    for (what, mut msg) in [("gateway route", to_gw), ("default route", default)] {
        if route_mtu != 0 {
            msg.attributes
                .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(route_mtu)]));
        }
        pod.route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(|e| nl(format!("pod {what} via {gateway}"), e))?;
    }
    Ok(EndpointLink {
        host_ifindex,
        host_mac,
        container_mac,
    })
}

/// The device name of a tunnel protocol.
pub fn tunnel_device_name(protocol: TunnelProtocol) -> &'static str {
    match protocol {
        TunnelProtocol::Vxlan => CILIUM_VXLAN,
        TunnelProtocol::Geneve => CILIUM_GENEVE,
    }
}

/// Whether an existing link already is the tunnel device we want.
fn tunnel_link_matches(msg: &LinkMessage, protocol: TunnelProtocol, port: u16) -> bool {
    let infos = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(i) => Some(i),
        _ => None,
    });
    let Some(infos) = infos else { return false };
    let mtu_ok = msg
        .attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::Mtu(m) if *m == TUNNEL_DEVICE_MTU));
    let data = infos.iter().find_map(|i| match i {
        LinkInfo::Data(d) => Some(d),
        _ => None,
    });
    mtu_ok
        && match (protocol, data) {
            (TunnelProtocol::Vxlan, Some(InfoData::Vxlan(v))) => {
                v.contains(&InfoVxlan::CollectMetadata(true))
                    && v.contains(&InfoVxlan::Port(port))
                    && v.contains(&InfoVxlan::Learning(false))
            }
            (TunnelProtocol::Geneve, Some(InfoData::Geneve(g))) => {
                g.contains(&InfoGeneve::CollectMetadata) && g.contains(&InfoGeneve::Port(port))
            }
            _ => false,
        }
}

/// Create the tunnel device of `protocol` in the node namespace:
/// `cilium_vxlan` (VXLAN in external/collect_metadata mode, `dstport`
/// `port`, learning off) or `cilium_geneve` (GENEVE external, `port`), MTU
/// 1500, up; returns its ifindex.
///
/// Idempotent: a device with the right settings is kept, one with other
/// settings is replaced, and the other protocol's device is removed. A
/// kernel without GENEVE support yields an error naming `CONFIG_GENEVE`.
pub async fn setup_tunnel_device(protocol: TunnelProtocol, port: u16) -> Result<u32> {
    let h = connect()?;
    let name = tunnel_device_name(protocol);
    let other = match protocol {
        TunnelProtocol::Vxlan => CILIUM_GENEVE,
        TunnelProtocol::Geneve => CILIUM_VXLAN,
    };
    if let Some((idx, _)) = link_by_name(&h, other).await? {
        del_index(&h, idx, other).await?;
    }
    let idx = match link_message_by_name(&h, name).await? {
        Some(m) if tunnel_link_matches(&m, protocol, port) => m.header.index,
        stale => {
            if let Some(m) = stale {
                del_index(&h, m.header.index, name).await?;
            }
            let msg = match protocol {
                TunnelProtocol::Vxlan => LinkMessageBuilder::<LinkVxlan>::new(name)
                    .collect_metadata(true)
                    .port(port)
                    .learning(false)
                    .mtu(TUNNEL_DEVICE_MTU)
                    .build(),
                TunnelProtocol::Geneve => LinkMessageBuilder::<LinkGeneve>::new(name)
                    .collect_metadata()
                    .port(port)
                    .mtu(TUNNEL_DEVICE_MTU)
                    .build(),
            };
            match h.link().add(msg).execute().await {
                Ok(()) => {}
                Err(e) if protocol == TunnelProtocol::Geneve && errno(&e) == Some(EOPNOTSUPP) => {
                    return Err(Error::Other(format!(
                        "tunnel-protocol geneve: this kernel cannot create a GENEVE device \
                         (CONFIG_GENEVE is not enabled): creating {name}: {e}"
                    )));
                }
                Err(e) => return Err(nl(format!("creating {name} (port {port})"), e)),
            }
            require_link(&h, name).await?.0
        }
    };
    h.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(|e| nl(format!("setting {name} up"), e))?;
    sysctl_set(&format!("net.ipv4.conf.{name}.rp_filter"), "0")?;
    Ok(idx)
}

/// Remove `cilium_vxlan` and `cilium_geneve` from the node namespace
/// (absent is fine): used when switching back to native routing.
pub async fn delete_tunnel_devices() -> Result<()> {
    let h = connect()?;
    for name in [CILIUM_VXLAN, CILIUM_GENEVE] {
        if let Some((idx, _)) = link_by_name(&h, name).await? {
            del_index(&h, idx, name).await?;
        }
    }
    Ok(())
}

/// Delete a link by name in the node namespace (absent is fine).
pub async fn delete_link(name: &str) -> Result<()> {
    let h = connect()?;
    match link_by_name(&h, name).await? {
        Some((idx, _)) => del_index(&h, idx, name).await,
        None => Ok(()),
    }
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

fn route_message(r: &Route, ifindex: u32) -> RouteMessage {
    let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(r.dst.network(), r.dst.prefix_len())
        .output_interface(ifindex)
        .protocol(RouteProtocol::from(r.proto));
    if let Some(via) = r.via {
        b = b.gateway(via);
    }
    if let Some(src) = r.src {
        b = b.pref_source(src);
    }
    if r.scope_link {
        b = b.scope(RouteScope::Link);
    }
    let mut msg = b.build();
    if r.mtu != 0 {
        msg.attributes
            .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(r.mtu)]));
    }
    msg
}

/// Add or replace a route.
pub async fn route_replace(r: &Route) -> Result<()> {
    let h = connect()?;
    let (idx, _) = require_link(&h, &r.dev).await?;
    h.route()
        .add(route_message(r, idx))
        .replace()
        .execute()
        .await
        .map_err(|e| nl(format!("route replace {} dev {}", r.dst, r.dev), e))
}

/// Delete a route (absent is fine, and so is a vanished device).
pub async fn route_delete(r: &Route) -> Result<()> {
    let h = connect()?;
    let Some((idx, _)) = link_by_name(&h, &r.dev).await? else {
        return Ok(());
    };
    match h.route().del(route_message(r, idx)).execute().await {
        Err(e) if !matches!(errno(&e), Some(ESRCH | ENOENT | ENODEV)) => {
            Err(nl(format!("route delete {} dev {}", r.dst, r.dev), e))
        }
        _ => Ok(()),
    }
}

/// Every IPv4 route of the main table with protocol `proto`.
pub async fn routes_with_proto(proto: u8) -> Result<Vec<Route>> {
    let h = connect()?;
    let mut names = std::collections::HashMap::new();
    let mut links = h.link().get().execute();
    while let Some(l) = links.try_next().await.map_err(|e| nl("listing links", e))? {
        let name = l.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        names.insert(l.header.index, name.unwrap_or_default());
    }
    let mut out = Vec::new();
    let mut routes = h
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    while let Some(m) = routes
        .try_next()
        .await
        .map_err(|e| nl("listing routes", e))?
    {
        let table = m
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(m.header.table));
        if m.header.address_family != AddressFamily::Inet
            || table != u32::from(RouteHeader::RT_TABLE_MAIN)
            || u8::from(m.header.protocol) != proto
        {
            continue;
        }
        let mut r = Route {
            dst: Ipv4Net::default(),
            via: None,
            dev: String::new(),
            src: None,
            mtu: 0,
            proto,
            scope_link: m.header.scope == RouteScope::Link,
        };
        let mut dst = Ipv4Addr::UNSPECIFIED;
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = *ip,
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => r.via = Some(*ip),
                RouteAttribute::PrefSource(RouteAddress::Inet(ip)) => r.src = Some(*ip),
                RouteAttribute::Oif(i) => r.dev = names.get(i).cloned().unwrap_or_default(),
                RouteAttribute::Metrics(ms) => {
                    for mt in ms {
                        if let RouteMetric::Mtu(v) = mt {
                            r.mtu = *v;
                        }
                    }
                }
                _ => {}
            }
        }
        r.dst = Ipv4Net::new(dst, m.header.destination_prefix_length)
            .map_err(|e| nl("route prefix", e))?;
        out.push(r);
    }
    Ok(out)
}

/// Write a sysctl under `/proc/sys` (dots in `key`, e.g.
/// `net.ipv4.conf.cilium_host.rp_filter`). Acts on the calling thread's
/// network namespace for `net.*` keys.
pub fn sysctl_set(key: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| Error::Other(format!("sysctl {key}={value}: {e}")))
}
