//! The ADD result: the interfaces a plugin created, the addresses it
//! assigned, the routes it installed and the DNS settings it suggests,
//! in the shape of one CNI version, and its conversion to another.
//!
//! What differs between the versions this crate speaks: `ips[].version`
//! (`"4"`/`"6"`) exists up to 0.4.0, an interface's `mtu` from 1.1.0.
//! Keys a side does not model are ignored when decoding; a runtime that
//! must hand a result on unchanged keeps the JSON it received.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::version::CniVersion;

/// The result of a successful ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddResult {
    /// The version the result is framed in.
    #[serde(rename = "cniVersion")]
    pub cni_version: CniVersion,
    /// Interfaces created or used, host side and sandbox side.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes installed in the sandbox.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// DNS settings.
    #[serde(default)]
    pub dns: Dns,
}

/// An interface of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// MAC address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// MTU (1.1.0 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Path of the network namespace when the interface is in the sandbox.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// An address of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `"4"` or `"6"` (up to 0.4.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Address with prefix length (`10.244.1.5/24`).
    pub address: IpNet,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// DNS settings of a result (`{}` when the plugin suggests none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl AddResult {
    /// The same result in the shape of version `to`: `ips[].version` set
    /// from each address up to 0.4.0 and dropped after, interface MTUs
    /// dropped before 1.1.0.
    #[must_use]
    pub fn convert(mut self, to: CniVersion) -> Self {
        self.cni_version = to;
        for ip in &mut self.ips {
            ip.version = (to <= CniVersion::V0_4_0).then(|| {
                match ip.address {
                    IpNet::V4(_) => "4",
                    IpNet::V6(_) => "6",
                }
                .to_string()
            });
        }
        if to < CniVersion::V1_1_0 {
            for itf in &mut self.interfaces {
                itf.mtu = None;
            }
        }
        self
    }

    /// The addresses on the sandbox interface `ifname` (or on no
    /// particular interface), IPv4 first.
    pub fn addresses_on(&self, ifname: &str) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self
            .ips
            .iter()
            .filter(|ip| match ip.interface {
                Some(i) => self.interfaces.get(i).is_none_or(|itf| itf.name == ifname),
                None => true,
            })
            .map(|ip| ip.address.addr())
            .collect();
        ips.sort_by_key(|ip| ip.is_ipv6());
        ips
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn result() -> AddResult {
        AddResult {
            cni_version: CniVersion::V1_1_0,
            interfaces: vec![
                Interface {
                    name: "lxc1".into(),
                    mac: "2e:fa:2d:bc:91:f2".into(),
                    mtu: None,
                    sandbox: String::new(),
                },
                Interface {
                    name: "eth0".into(),
                    mac: String::new(),
                    mtu: Some(1500),
                    sandbox: "/var/run/netns/p1".into(),
                },
            ],
            ips: vec![IpConfig {
                version: None,
                address: "172.20.0.82/32".parse().expect("cidr"),
                gateway: Some("172.20.0.172".parse().expect("ip")),
                interface: Some(1),
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().expect("cidr"),
                gw: Some("172.20.0.172".parse().expect("ip")),
            }],
            dns: Dns::default(),
        }
    }

    fn json_of(r: &AddResult) -> Value {
        serde_json::to_value(r).expect("json")
    }

    #[test]
    fn shape_per_version() {
        let v11 = json_of(&result());
        assert_eq!(v11["cniVersion"], "1.1.0");
        assert_eq!(v11["interfaces"][1]["mtu"], 1500);
        assert!(v11["interfaces"][0].get("sandbox").is_none());
        assert!(v11["ips"][0].get("version").is_none());
        assert_eq!(v11["dns"], json!({}));
        let v10 = json_of(&result().convert(CniVersion::V1_0_0));
        assert!(v10["interfaces"][1].get("mtu").is_none());
        assert!(v10["ips"][0].get("version").is_none());
        let v04 = json_of(&result().convert(CniVersion::V0_4_0));
        assert_eq!(v04["cniVersion"], "0.4.0");
        assert_eq!(v04["ips"][0]["version"], "4");
        assert_eq!(v04["ips"][0]["address"], "172.20.0.82/32");
        assert_eq!(
            v04["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": "172.20.0.172"}])
        );
        let back: AddResult = serde_json::from_value(v04).expect("decode");
        assert_eq!(back.convert(CniVersion::V1_0_0).ips[0].version, None);
    }

    #[test]
    fn decoding_ignores_unknown_keys_and_finds_pod_addresses() {
        let r: AddResult = serde_json::from_value(json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "cni0", "mac": "aa"}, {"name": "vethX", "mac": "bb"},
                           {"name": "eth0", "mac": "cc", "sandbox": "/run/netns/x", "pciID": ""}],
            "ips": [{"interface": 2, "address": "fd00::5/64"},
                    {"interface": 2, "address": "10.244.1.5/24", "gateway": "10.244.1.1"},
                    {"interface": 0, "address": "10.244.1.1/24"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        }))
        .expect("result");
        assert_eq!(
            r.addresses_on("eth0"),
            vec![
                "10.244.1.5".parse::<IpAddr>().expect("ip"),
                "fd00::5".parse::<IpAddr>().expect("ip")
            ]
        );
        assert!(r.addresses_on("eth1").is_empty());
        assert!(serde_json::from_value::<AddResult>(json!({"cniVersion": "9.9.9"})).is_err());
    }
}
