//! The ADD result, rendered from the agent's answer in the shape of the
//! configuration's CNI version (the types and what differs between
//! versions are [`cnispec::result`]'s). When chained after another plugin
//! the previous result is kept and ours appended. Pure functions; the
//! agent's values are checked so that an invalid result is never printed.

use std::net::IpAddr;

use agentclient::CniAddResponse;
use cnispec::error::INVALID_CONFIG;
use cnispec::result::{AddResult, Dns, Interface, IpConfig, Route};
use cnispec::{CniError, CniVersion};
use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::AGENT_FAILURE;

fn bad_agent(what: impl Into<String>) -> CniError {
    CniError::new(AGENT_FAILURE, "the cilium agent returned an invalid result").with_details(what)
}

fn parse_ip(what: &str, s: &str) -> Result<IpAddr, CniError> {
    s.parse()
        .map_err(|_| bad_agent(format!("{what} {s:?} is not an IP address")))
}

/// `10.0.0.0/8` with a valid address and prefix length.
fn parse_cidr(s: &str) -> Result<IpNet, CniError> {
    s.parse()
        .map_err(|_| bad_agent(format!("route destination {s:?} is not a CIDR")))
}

/// The ADD result for `resp`, with the container interface in `netns`,
/// appended to `prev` (the configuration's `prevResult`) when chained.
pub fn add_result(
    version: CniVersion,
    resp: &CniAddResponse,
    netns: &str,
    prev: Option<&Value>,
) -> Result<Value, CniError> {
    let ip = parse_ip("pod address", &resp.ipv4)?;
    let address = IpNet::new(ip, resp.prefix_len)
        .map_err(|_| bad_agent(format!("prefix length {}", resp.prefix_len)))?;
    let gateway = parse_ip("gateway", &resp.gateway)?;
    let routes = resp
        .routes
        .iter()
        .map(|r| {
            Ok(Route {
                dst: parse_cidr(&r.dst)?,
                gw: r
                    .gw
                    .as_deref()
                    .map(|gw| parse_ip("route gateway", gw))
                    .transpose()?,
            })
        })
        .collect::<Result<_, CniError>>()?;
    let result = AddResult {
        cni_version: version,
        interfaces: vec![
            Interface {
                name: resp.host_ifname.clone(),
                mac: resp.host_mac.clone(),
                mtu: None,
                sandbox: String::new(),
            },
            Interface {
                name: resp.ifname.clone(),
                mac: resp.mac.clone(),
                mtu: (resp.mtu > 0).then_some(resp.mtu),
                sandbox: netns.to_string(),
            },
        ],
        ips: vec![IpConfig {
            version: None,
            address,
            gateway: Some(gateway),
            interface: Some(1),
        }],
        routes,
        dns: Dns::default(),
    }
    .convert(version);
    let ours = serde_json::to_value(&result).map_err(|e| bad_agent(e.to_string()))?;
    match prev {
        None => Ok(ours),
        Some(prev) => chain(prev, ours),
    }
}

/// `prev`'s interfaces, ips and routes followed by ours (our interface
/// indexes shifted past prev's); prev's DNS is kept when it has one.
fn chain(prev: &Value, ours: Value) -> Result<Value, CniError> {
    let bad = |key: &str| {
        CniError::new(INVALID_CONFIG, "invalid prevResult")
            .with_details(format!("{key:?} must be a list"))
    };
    let Value::Object(mut ours) = ours else {
        return Err(bad_agent("result is not an object"));
    };
    let prev = prev.as_object().cloned().unwrap_or_default();
    let list = |map: &Map<String, Value>, key: &str| match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err(bad(key)),
    };
    let prev_ifaces = list(&prev, "interfaces")?;
    let shift = prev_ifaces.len();
    let mut out = Map::new();
    out.insert("cniVersion".into(), ours["cniVersion"].take());
    let mut interfaces = prev_ifaces;
    interfaces.extend(list(&ours, "interfaces")?);
    out.insert("interfaces".into(), Value::Array(interfaces));
    let mut ips = list(&prev, "ips")?;
    for mut ip in list(&ours, "ips")? {
        if let Some(index) = ip.get("interface").and_then(Value::as_u64) {
            ip["interface"] = Value::from(index + shift as u64);
        }
        ips.push(ip);
    }
    out.insert("ips".into(), Value::Array(ips));
    let mut routes = list(&prev, "routes")?;
    routes.extend(list(&ours, "routes")?);
    out.insert("routes".into(), Value::Array(routes));
    let dns = match prev.get("dns") {
        Some(dns @ Value::Object(_)) => dns.clone(),
        _ => ours.remove("dns").unwrap_or_default(),
    };
    out.insert("dns".into(), dns);
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use agentclient::RouteModel;
    use serde_json::json;

    use super::*;

    fn resp() -> CniAddResponse {
        CniAddResponse {
            endpoint_id: 643,
            host_ifname: "lxc1a2b3c4d5e6f".into(),
            host_mac: "2e:fa:2d:bc:91:f2".into(),
            ifname: "eth0".into(),
            mac: "5a:4f:5a:d6:f1:93".into(),
            ipv4: "172.20.0.82".into(),
            prefix_len: 32,
            gateway: "172.20.0.172".into(),
            routes: vec![
                RouteModel {
                    dst: "172.20.0.172/32".into(),
                    gw: None,
                },
                RouteModel {
                    dst: "0.0.0.0/0".into(),
                    gw: Some("172.20.0.172".into()),
                },
            ],
            mtu: 1500,
        }
    }

    fn expected(version: &str, ip_version: Option<&str>, mtu: Option<u32>) -> Value {
        let mut ip =
            json!({"address": "172.20.0.82/32", "gateway": "172.20.0.172", "interface": 1});
        if let Some(v) = ip_version {
            ip["version"] = json!(v);
        }
        let mut eth0 =
            json!({"name": "eth0", "mac": "5a:4f:5a:d6:f1:93", "sandbox": "/var/run/netns/p1"});
        if let Some(m) = mtu {
            eth0["mtu"] = json!(m);
        }
        json!({
            "cniVersion": version,
            "interfaces": [{"name": "lxc1a2b3c4d5e6f", "mac": "2e:fa:2d:bc:91:f2"}, eth0],
            "ips": [ip],
            "routes": [{"dst": "172.20.0.172/32"}, {"dst": "0.0.0.0/0", "gw": "172.20.0.172"}],
            "dns": {}
        })
    }

    #[test]
    fn result_shape_per_version() {
        for (v, ip_version, mtu) in [
            (CniVersion::V0_3_0, Some("4"), None),
            (CniVersion::V0_3_1, Some("4"), None),
            (CniVersion::V0_4_0, Some("4"), None),
            (CniVersion::V1_0_0, None, None),
            (CniVersion::V1_1_0, None, Some(1500)),
        ] {
            let got = add_result(v, &resp(), "/var/run/netns/p1", None).expect("valid");
            assert_eq!(got, expected(v.as_str(), ip_version, mtu), "{}", v.as_str());
        }
    }

    #[test]
    fn chained_results_keep_the_previous_one() {
        let prev = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "dummy0"}],
            "ips": [{"address": "10.1.0.2/24", "interface": 0}],
            "dns": {"nameservers": ["10.96.0.10"]}
        });
        let got = add_result(CniVersion::V1_0_0, &resp(), "/ns", Some(&prev)).expect("valid");
        assert_eq!(got["interfaces"].as_array().map(Vec::len), Some(3));
        assert_eq!(got["interfaces"][0]["name"], "dummy0");
        assert_eq!(got["ips"][0]["interface"], 0);
        assert_eq!(got["ips"][1]["interface"], 2);
        assert_eq!(got["ips"][1]["address"], "172.20.0.82/32");
        assert_eq!(got["routes"].as_array().map(Vec::len), Some(2));
        assert_eq!(got["dns"]["nameservers"][0], "10.96.0.10");
        let bad = json!({"interfaces": "eth0"});
        let e = add_result(CniVersion::V1_0_0, &resp(), "/ns", Some(&bad)).unwrap_err();
        assert_eq!(e.code, INVALID_CONFIG);
    }

    #[test]
    fn invalid_agent_values_are_errors() {
        let mut r = resp();
        r.ipv4 = "172.20.0".into();
        assert_eq!(
            add_result(CniVersion::V1_0_0, &r, "/ns", None)
                .unwrap_err()
                .code,
            AGENT_FAILURE
        );
        let mut r = resp();
        r.prefix_len = 33;
        assert!(add_result(CniVersion::V1_0_0, &r, "/ns", None).is_err());
        let mut r = resp();
        r.routes[0].dst = "default".into();
        assert!(add_result(CniVersion::V1_0_0, &r, "/ns", None).is_err());
        let mut r = resp();
        r.gateway = String::new();
        assert!(add_result(CniVersion::V1_0_0, &r, "/ns", None).is_err());
    }
}
