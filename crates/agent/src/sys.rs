//! Host facts the agent reads itself, all in the calling process's
//! network namespace (never through sysfs, which belongs to whoever
//! mounted it): links, local addresses, a device's MTU, our RSS.

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
        let l = "3: eth1@if4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP";
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
