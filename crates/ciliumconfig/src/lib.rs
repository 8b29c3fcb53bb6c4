//! The `cilium-config` key set, owned here for the agent, the operator and
//! the lab alike; nothing else parses it.
//!
//! - The key table ([`keys`], [`lookup`]): every key this implementation
//!   knows, with its upstream name, value [`Type`], default, [`Class`]
//!   (supported, feature-gated "not supported yet" unless the value means
//!   off, inert) and [`Reader`]s. Any other key is an error naming it.
//! - Reading ([`Sources`]): a directory with one file per key (a mounted
//!   ConfigMap), a YAML map file, `--config KEY=VALUE` overrides; later
//!   sources win, and keys and values are trimmed the same way in all.
//!   [`ConfigFlags`] declares the three flags once for the binaries.
//! - Validation into the typed configs of the two readers,
//!   [`AgentConfig`] and [`OperatorConfig`] (sharing [`IpamMode`] and
//!   [`Kvstore`], how both reach etcd), with
//!   one error type, [`ConfigError`]; and [`validate`], which checks a
//!   cluster's key set as both will, for tools that write it.
//!
//! Pure code except for reading the sources.

mod agent;
mod error;
mod key;
mod kvstore;
mod operator;
mod sources;
mod table;
mod value;

use std::collections::BTreeMap;

pub use agent::{AgentConfig, RoutingMode, Tunnel, TunnelProtocol};
pub use error::ConfigError;
pub use key::{Class, Key, Reader, Type, keys, lookup};
pub use kvstore::{ETCD_CONFIG_OPTION, Kvstore};
pub use operator::OperatorConfig;
pub use sources::{ConfigFlags, Sources, parse_overrides, read_dir, read_yaml};
pub use value::{IpamMode, positive_duration};

/// Check a cluster's key set as its agents and its operator will when they
/// start: the first problem either of them would stop on.
pub fn validate(keys: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    AgentConfig::from_map(keys)?;
    OperatorConfig::from_keys(keys)?;
    Ok(())
}

/// What the unit tests of every module share.
#[cfg(test)]
mod testing {
    use std::collections::BTreeMap;

    /// A key set from `(key, value)` pairs.
    pub(crate) fn key_set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::key_set;

    #[test]
    fn validate_checks_both_readers() {
        let lab = key_set(&[
            ("ipam", "cluster-pool"),
            ("cluster-pool-ipv4-cidr", "172.20.0.0/16"),
            ("routing-mode", "native"),
            ("ipv4-native-routing-cidr", "172.20.0.0/16"),
            ("auto-direct-node-routes", "true"),
            ("identity-gc-interval", "1s"),
        ]);
        validate(&lab).unwrap();
        let with = |k: &str, v: &str| {
            let mut m = lab.clone();
            m.insert(k.into(), v.into());
            validate(&m).unwrap_err().to_string()
        };
        // The agent's gate, the agent's contradiction, the operator's check.
        assert_eq!(
            with("enable-bpf-masquerade", "true"),
            "`enable-bpf-masquerade: true` is not supported yet"
        );
        assert!(with("routing-mode", "tunnel").starts_with("auto-direct-node-routes: true"));
        assert_eq!(
            with("identity-gc-interval", "0"),
            "`identity-gc-interval: 0` is invalid: \"0\": must be positive"
        );
    }
}
