//! The real [`Plumbing`]: the `datapath` crate (maps, programs, netlink),
//! the identity allocator and the store (Pods, CiliumEndpoints). Also the
//! few host facts the agent reads itself ([`sys`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;

use api::Object as _;
use api::cilium::endpoint::CiliumEndpoint;
use api::k8s_openapi::api::core::v1::Pod;
use datapath::Datapath;
use datapath::net::Route;
use ipnet::Ipv4Net;
use store::Store;

use crate::cni::{EndpointLink, LinkMtu, PlumbError, PlumbResult, Plumbing, PodRef};
use crate::endpoint::EndpointState;

/// Label key for containers that are not Kubernetes pods (podman ...):
/// they all share one identity rather than one per container.
pub const UNMANAGED_CONTAINER_LABEL: &str = "container:io.cilium.cni.runtime";

/// Production plumbing.
pub struct RealPlumbing {
    datapath: Mutex<Datapath>,
    store: Store,
    identities: identity::Allocator,
    cluster: String,
    node_ip: Ipv4Addr,
}

fn err(e: impl std::fmt::Display) -> PlumbError {
    PlumbError::from_display(e)
}

impl RealPlumbing {
    /// Wrap a loaded datapath.
    pub fn new(
        datapath: Datapath,
        store: Store,
        identities: identity::Allocator,
        cluster: String,
        node_ip: Ipv4Addr,
    ) -> Self {
        Self {
            datapath: Mutex::new(datapath),
            store,
            identities,
            cluster,
            node_ip,
        }
    }

    /// Run `f` on the datapath.
    pub fn with_datapath<T>(&self, f: impl FnOnce(&mut Datapath) -> T) -> T {
        let mut dp = self.datapath.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut dp)
    }
}

impl Plumbing for RealPlumbing {
    async fn create_link(
        &self,
        netns: &Path,
        host_ifname: &str,
        ifname: &str,
        ip: Ipv4Addr,
        gateway: Ipv4Addr,
        mtu: LinkMtu,
    ) -> PlumbResult<EndpointLink> {
        datapath::net::create_endpoint_link(
            netns,
            host_ifname,
            ifname,
            ip,
            gateway,
            mtu.link,
            mtu.route,
        )
        .await
        .map_err(err)
    }

    async fn delete_link(&self, name: &str) -> PlumbResult<()> {
        datapath::net::delete_link(name).await.map_err(err)
    }

    fn link_ifindex(&self, name: &str) -> Option<u32> {
        sys::link_ifindex(name)
    }

    fn lxc_upsert(&self, ip: Ipv4Addr, info: &datapath::EndpointInfo) -> PlumbResult<()> {
        self.with_datapath(|dp| dp.lxc_upsert(ip, info))
            .map_err(err)
    }

    fn lxc_delete(&self, ip: Ipv4Addr) -> PlumbResult<()> {
        self.with_datapath(|dp| dp.lxc_delete(ip)).map_err(err)
    }

    fn lxc_get(&self, ip: Ipv4Addr) -> PlumbResult<Option<datapath::EndpointInfo>> {
        let all = self.with_datapath(|dp| dp.lxc_dump()).map_err(err)?;
        Ok(all.into_iter().find(|(a, _)| *a == ip).map(|(_, i)| i))
    }

    fn attach(&self, host_ifname: &str) -> PlumbResult<()> {
        self.with_datapath(|dp| dp.attach_endpoint(host_ifname))
            .map_err(err)
    }

    fn detach(&self, host_ifname: &str) -> PlumbResult<()> {
        self.with_datapath(|dp| dp.detach_endpoint(host_ifname))
            .map_err(err)
    }

    fn ipcache_upsert(&self, prefix: Ipv4Net, identity: u32) -> PlumbResult<()> {
        let e = datapath::IpcacheEntry {
            sec_identity: identity,
            tunnel_endpoint: None,
            encrypt_key: 0,
        };
        self.with_datapath(|dp| dp.ipcache_upsert(prefix, &e))
            .map_err(err)
    }

    fn ipcache_delete(&self, prefix: Ipv4Net) -> PlumbResult<()> {
        self.with_datapath(|dp| dp.ipcache_delete(prefix))
            .map_err(err)
    }

    fn ipcache_get(&self, prefix: Ipv4Net) -> PlumbResult<Option<u32>> {
        let all = self.with_datapath(|dp| dp.ipcache_dump()).map_err(err)?;
        Ok(all
            .into_iter()
            .find(|(p, _)| *p == prefix)
            .map(|(_, e)| e.sec_identity))
    }

    async fn route_replace(&self, route: &Route) -> PlumbResult<()> {
        datapath::net::route_replace(route).await.map_err(err)
    }

    async fn route_delete(&self, route: &Route) -> PlumbResult<()> {
        datapath::net::route_delete(route).await.map_err(err)
    }

    async fn resolve_identity(&self, pod: &PodRef) -> PlumbResult<(u32, Vec<String>)> {
        let labels = if pod.namespace.is_empty() || pod.name.is_empty() {
            identity::Labels(BTreeMap::from([(
                UNMANAGED_CONTAINER_LABEL.to_string(),
                "cni".to_string(),
            )]))
        } else {
            let found = self
                .store
                .get::<Pod>(Some(&pod.namespace), &pod.name)
                .await
                .map_err(err)?;
            let (pod_labels, sa) = match &found {
                Some(p) => (
                    p.metadata.labels.clone().unwrap_or_default(),
                    p.spec
                        .as_ref()
                        .and_then(|s| s.service_account_name.clone())
                        .unwrap_or_else(|| "default".to_string()),
                ),
                None => {
                    tracing::warn!(namespace = %pod.namespace, pod = %pod.name, "pod not in the store; identity from its namespace only");
                    (BTreeMap::new(), "default".to_string())
                }
            };
            identity::Labels::for_pod(&pod.namespace, &pod_labels, &sa, &self.cluster)
        };
        let id = self.identities.allocate(&labels).await.map_err(err)?;
        Ok((id, labels.to_strings()))
    }

    async fn publish_cep(&self, ep: &EndpointState) -> PlumbResult<()> {
        let Some(want) = ep.cilium_endpoint(self.node_ip) else {
            return Ok(());
        };
        loop {
            match self
                .store
                .get::<CiliumEndpoint>(Some(&ep.pod_namespace), &ep.pod_name)
                .await
                .map_err(err)?
            {
                None => match self.store.create(&want).await {
                    Err(store::Error::AlreadyExists { .. }) => continue,
                    r => return r.map(|_| ()).map_err(err),
                },
                Some(_) => {
                    return self
                        .store
                        .modify::<CiliumEndpoint>(Some(&ep.pod_namespace), &ep.pod_name, |c| {
                            if c.status == want.status {
                                return false;
                            }
                            c.status = want.status.clone();
                            true
                        })
                        .await
                        .map(|_| ())
                        .map_err(err);
                }
            }
        }
    }

    async fn remove_cep(&self, namespace: &str, name: &str, container_id: &str) -> PlumbResult<()> {
        let Some(cep) = self
            .store
            .get::<CiliumEndpoint>(Some(namespace), name)
            .await
            .map_err(err)?
        else {
            return Ok(());
        };
        let owner = cep
            .status
            .as_ref()
            .and_then(|s| s.external_identifiers.as_ref())
            .and_then(|x| x.container_id.as_deref());
        if owner.is_some_and(|o| o != container_id) {
            return Ok(()); // a newer sandbox of the same pod owns it
        }
        self.store
            .delete::<CiliumEndpoint>(Some(namespace), name)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn own_ceps(&self) -> PlumbResult<Vec<(String, String, String)>> {
        let list = self.store.list::<CiliumEndpoint>(None).await.map_err(err)?;
        let node = self.node_ip.to_string();
        Ok(list
            .items
            .into_iter()
            .filter_map(|c| {
                let st = c.status.as_ref()?;
                if st.networking.as_ref()?.node.as_deref() != Some(node.as_str()) {
                    return None;
                }
                let cid = st
                    .external_identifiers
                    .as_ref()
                    .and_then(|x| x.container_id.clone())
                    .unwrap_or_default();
                Some((c.namespace()?.to_string(), c.name().to_string(), cid))
            })
            .collect())
    }
}

/// Host facts read directly (all in the calling process's network
/// namespace, never through sysfs, which belongs to whoever mounted it).
pub mod sys {
    use std::net::Ipv4Addr;

    use ipnet::Ipv4Net;

    use crate::routes::LocalAddr;

    /// The ifindex of a link, if it exists.
    pub fn link_ifindex(name: &str) -> Option<u32> {
        nix::net::if_::if_nametoindex(name).ok()
    }

    /// Every IPv4 address on a local interface, with its prefix.
    pub fn local_addrs() -> Vec<LocalAddr> {
        let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
            return Vec::new();
        };
        addrs
            .filter_map(|a| {
                let ip = a.address.as_ref()?.as_sockaddr_in()?.ip();
                let mask: Ipv4Addr = a
                    .netmask
                    .as_ref()
                    .and_then(|m| m.as_sockaddr_in().map(|s| s.ip()))
                    .unwrap_or(Ipv4Addr::BROADCAST);
                let len = u32::from(mask).leading_ones() as u8;
                Some(LocalAddr {
                    ifname: a.interface_name.clone(),
                    addr: Ipv4Net::new(ip, len).ok()?,
                })
            })
            .collect()
    }

    /// A device's MTU, from `ip -o link show dev NAME` (netlink, so in
    /// our network namespace).
    pub fn device_mtu(name: &str) -> Option<u32> {
        let out = std::process::Command::new("ip")
            .args(["-o", "link", "show", "dev", name])
            .output()
            .ok()?;
        parse_mtu(&String::from_utf8_lossy(&out.stdout))
    }

    /// `... mtu 1500 qdisc ...` -> 1500.
    pub fn parse_mtu(line: &str) -> Option<u32> {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w == "mtu" {
                return words.next()?.parse().ok();
            }
        }
        None
    }

    /// Resident set size of this process in bytes.
    pub fn rss_bytes() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn mtu_parsing() {
            let l =
                "3: eth1@if4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP";
            assert_eq!(parse_mtu(l), Some(1450));
            assert_eq!(parse_mtu("garbage"), None);
        }

        #[test]
        fn loopback_exists_and_rss_is_read() {
            assert!(rss_bytes() > 0);
            assert!(link_ifindex("lo").is_some());
            assert!(link_ifindex("surely-not-a-link").is_none());
        }
    }
}
