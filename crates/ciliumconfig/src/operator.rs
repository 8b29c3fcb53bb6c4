//! The operator's typed configuration: [`OperatorConfig`], the keys it
//! supports parsed, then every other key's syntax and the feature gates
//! the operator reads checked.
//!
//! Whether the pool can be cut into blocks (mask too long, shorter than
//! the pool) is not checked here: that is the IPAM controller's business,
//! which reports it on every CiliumNode and keeps running.

use std::collections::BTreeMap;
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::error::{ConfigError, invalid};
use crate::key::{KeySet, Reader};
use crate::kvstore::Kvstore;
use crate::value::{self, IpamMode};

/// The validated operator configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConfig {
    /// `ipam`.
    pub ipam: IpamMode,
    /// `cluster-pool-ipv4-cidr`: the pool CIDRs for cluster-pool IPAM, in
    /// order (at least one).
    pub pool_cidrs: Vec<Ipv4Net>,
    /// `cluster-pool-ipv4-mask-size`: the block prefix length (not
    /// range-checked against the pool, see the module docs).
    pub pool_mask: u8,
    /// `cluster-name`.
    pub cluster_name: String,
    /// `identity-gc-interval`: an identity is collected once unused for
    /// this long.
    pub identity_gc_interval: Duration,
    /// `kvstore` and `kvstore-opt`.
    pub kvstore: Kvstore,
}

impl OperatorConfig {
    /// Validate a key set; absent keys take their defaults.
    pub fn from_keys(given: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let keys = KeySet::new(given, Reader::Operator)?;
        let ipam = IpamMode::parse(keys.get("ipam"))?;
        let pool = keys.get("cluster-pool-ipv4-cidr");
        let pool_cidrs = value::parse_cidrs("cluster-pool-ipv4-cidr", pool)?;
        if pool_cidrs.is_empty() {
            return Err(invalid("cluster-pool-ipv4-cidr", pool, "no CIDR given"));
        }
        let pool_mask = value::parse_prefix_len(
            "cluster-pool-ipv4-mask-size",
            keys.get("cluster-pool-ipv4-mask-size"),
        )?;
        let cluster_name = value::parse_cluster_name("cluster-name", keys.get("cluster-name"))?;
        let gc = keys.get("identity-gc-interval");
        let identity_gc_interval =
            value::positive_duration(gc).map_err(|e| invalid("identity-gc-interval", gc, e))?;
        let kvstore = Kvstore::parse(&keys)?;
        keys.check_rest()?;
        Ok(Self {
            ipam,
            pool_cidrs,
            pool_mask,
            cluster_name,
            identity_gc_interval,
            kvstore,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::key_set;

    fn err(pairs: &[(&str, &str)]) -> String {
        OperatorConfig::from_keys(&key_set(pairs))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_follow_upstream() {
        let c = OperatorConfig::from_keys(&BTreeMap::new()).unwrap();
        assert_eq!(c.ipam, IpamMode::ClusterPool);
        assert_eq!(c.pool_cidrs, ["10.0.0.0/8".parse::<Ipv4Net>().unwrap()]);
        assert_eq!(c.pool_mask, 24);
        assert_eq!(c.cluster_name, "default");
        assert_eq!(c.identity_gc_interval, Duration::from_secs(30));
    }

    #[test]
    fn lists_modes_and_the_agents_keys() {
        let c = OperatorConfig::from_keys(&key_set(&[
            ("ipam", "kubernetes"),
            (
                "cluster-pool-ipv4-cidr",
                "172.20.0.0/16, 172.21.0.0/16 172.22.0.0/16",
            ),
            ("cluster-pool-ipv4-mask-size", "31"),
            ("cluster-name", "west"),
            ("identity-gc-interval", "15m"),
            ("routing-mode", "native"),
            ("nodes-gc-interval", "5m0s"),
            // A gate only the agent reads: the agent refuses it.
            ("enable-bpf-masquerade", "true"),
        ]))
        .unwrap();
        assert_eq!(c.ipam, IpamMode::Kubernetes);
        assert_eq!(c.pool_cidrs.len(), 3);
        assert_eq!(c.pool_mask, 31, "range checks are the controller's");
        assert_eq!(c.cluster_name, "west");
        assert_eq!(c.identity_gc_interval, Duration::from_secs(900));
    }

    #[test]
    fn errors_name_key_and_value() {
        assert_eq!(err(&[("ipam", "eni")]), "`ipam: eni` is not supported yet");
        assert_eq!(
            err(&[("cluster-pool-ipv4-cidr", "172.20.0.0/33")]),
            "`cluster-pool-ipv4-cidr: 172.20.0.0/33` is invalid: expected IPv4 CIDRs"
        );
        assert_eq!(
            err(&[("cluster-pool-ipv4-cidr", "")]),
            "`cluster-pool-ipv4-cidr: ` is invalid: no CIDR given"
        );
        assert_eq!(
            err(&[("cluster-pool-ipv4-mask-size", "x")]),
            "`cluster-pool-ipv4-mask-size: x` is invalid: expected a prefix length 0-32"
        );
        assert_eq!(
            err(&[("identity-gc-interval", "0s")]),
            "`identity-gc-interval: 0s` is invalid: \"0s\": must be positive"
        );
        assert_eq!(
            err(&[("enable-gateway-api", "true")]),
            "`enable-gateway-api: true` is not supported yet"
        );
        assert_eq!(
            err(&[("routing-mode", "fast")]),
            "`routing-mode: fast` is invalid: expected native or tunnel"
        );
        assert_eq!(err(&[("foo", "1")]), "unknown configuration key `foo`");
    }

    #[test]
    fn durations() {
        assert_eq!(
            value::positive_duration("2").unwrap(),
            Duration::from_secs(2)
        );
        assert_eq!(
            value::positive_duration("15m0s").unwrap(),
            Duration::from_secs(900)
        );
        assert!(value::positive_duration("5d").is_err());
        assert!(value::positive_duration("0s").is_err());
    }
}
