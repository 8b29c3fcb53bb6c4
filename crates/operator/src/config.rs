//! The operator's configuration: the `cilium-config` keys it reads (one
//! file per key in a directory, like a mounted ConfigMap, plus
//! `--config KEY=VALUE` overrides), validated into [`OperatorConfig`].
//!
//! Only syntax is checked here; whether the pool can be cut into blocks
//! (mask too long, shorter than the pool) is the IPAM controller's
//! business, which reports it on every CiliumNode and keeps running.
//! Keys the operator does not use (the agent's) are ignored.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ipnet::Ipv4Net;

/// Key: IPAM mode.
pub const KEY_IPAM: &str = "ipam";
/// Key: cluster-pool CIDRs (space or comma separated).
pub const KEY_POOL_CIDR: &str = "cluster-pool-ipv4-cidr";
/// Key: cluster-pool block size.
pub const KEY_POOL_MASK: &str = "cluster-pool-ipv4-mask-size";
/// Key: cluster name.
pub const KEY_CLUSTER_NAME: &str = "cluster-name";
/// Key: identity garbage-collection interval (also a flag).
pub const KEY_IDENTITY_GC_INTERVAL: &str = "identity-gc-interval";

/// Upstream's default `cluster-pool-ipv4-cidr`.
pub const DEFAULT_POOL_CIDR: &str = "10.0.0.0/8";
/// Upstream's default `cluster-pool-ipv4-mask-size`.
pub const DEFAULT_POOL_MASK: u8 = 24;
/// Default identity GC interval (and grace period).
pub const DEFAULT_IDENTITY_GC_INTERVAL: Duration = Duration::from_secs(30);

/// A configuration value the operator cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key has an unusable value.
    #[error("invalid {key} {value:?}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A `--config` argument without `=`.
    #[error("--config {0:?}: expected KEY=VALUE")]
    Malformed(String),
    /// The config directory cannot be read.
    #[error("cannot read config directory {path}: {reason}")]
    Unreadable {
        /// The directory or file.
        path: String,
        /// The I/O error.
        reason: String,
    },
}

/// IPAM mode (`ipam` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpamMode {
    /// The operator hands out pod CIDRs to CiliumNodes.
    ClusterPool,
    /// Node pod CIDRs come from Kubernetes; the operator does no IPAM.
    Kubernetes,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConfig {
    /// IPAM mode.
    pub ipam: IpamMode,
    /// Pool CIDRs for cluster-pool IPAM, in order.
    pub pool_cidrs: Vec<Ipv4Net>,
    /// Block prefix length (not range-checked here, see module docs).
    pub pool_mask: u8,
    /// Cluster name.
    pub cluster_name: String,
    /// Identity GC interval; an identity is collected once unused for this long.
    pub identity_gc_interval: Duration,
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// A positive duration (`500ms`, `30s`, `15m`, `1h30m`, or seconds): an
/// interval of zero would spin.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match toolkit::parse_duration(text)? {
        d if d.is_zero() => Err(format!("{:?}: must be positive", text.trim())),
        d => Ok(d),
    }
}

impl OperatorConfig {
    /// Validate the key set; absent keys take upstream's defaults.
    pub fn from_keys(keys: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let get = |key: &str| keys.get(key).map(|v| v.trim());
        let ipam = match get(KEY_IPAM).unwrap_or("cluster-pool") {
            "cluster-pool" => IpamMode::ClusterPool,
            "kubernetes" => IpamMode::Kubernetes,
            other => {
                return Err(invalid(
                    KEY_IPAM,
                    other,
                    "not supported yet by this operator (supported: cluster-pool, kubernetes)",
                ));
            }
        };
        let pool_text = get(KEY_POOL_CIDR).unwrap_or(DEFAULT_POOL_CIDR);
        let pool_cidrs = pool_text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<Ipv4Net>()
                    .map_err(|e| invalid(KEY_POOL_CIDR, pool_text, format!("{s}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if pool_cidrs.is_empty() {
            return Err(invalid(KEY_POOL_CIDR, pool_text, "no CIDR given"));
        }
        let pool_mask = match get(KEY_POOL_MASK) {
            None => DEFAULT_POOL_MASK,
            Some(text) => text
                .parse::<u8>()
                .ok()
                .filter(|m| *m <= 32)
                .ok_or_else(|| invalid(KEY_POOL_MASK, text, "expected a prefix length 0-32"))?,
        };
        let identity_gc_interval = match get(KEY_IDENTITY_GC_INTERVAL) {
            None => DEFAULT_IDENTITY_GC_INTERVAL,
            Some(text) => {
                positive_duration(text).map_err(|e| invalid(KEY_IDENTITY_GC_INTERVAL, text, e))?
            }
        };
        Ok(Self {
            ipam,
            pool_cidrs,
            pool_mask,
            cluster_name: get(KEY_CLUSTER_NAME).unwrap_or("default").to_string(),
            identity_gc_interval,
        })
    }
}

/// Read a ConfigMap-style directory: one file per key, the value its
/// content without the trailing newline. Hidden entries (`..data` of a
/// mounted ConfigMap) and subdirectories are skipped; symlinks are followed.
pub fn read_dir(dir: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let unreadable = |path: &Path, e: std::io::Error| ConfigError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut keys = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))? {
        let path = entry.map_err(|e| unreadable(dir, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let value = std::fs::read_to_string(&path).map_err(|e| unreadable(&path, e))?;
        keys.insert(name.to_string(), value.trim_end_matches('\n').to_string());
    }
    Ok(keys)
}

/// Apply `KEY=VALUE` overrides on top of `keys`.
pub fn apply_overrides(
    keys: &mut BTreeMap<String, String>,
    overrides: &[String],
) -> Result<(), ConfigError> {
    for item in overrides {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| ConfigError::Malformed(item.clone()))?;
        keys.insert(key.trim().to_string(), value.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
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
    fn lists_modes_and_errors() {
        let c = OperatorConfig::from_keys(&keys(&[
            ("ipam", "kubernetes"),
            (
                "cluster-pool-ipv4-cidr",
                "172.20.0.0/16, 172.21.0.0/16 172.22.0.0/16",
            ),
            ("cluster-pool-ipv4-mask-size", "31"),
            ("cluster-name", "west"),
            ("identity-gc-interval", "15m"),
            ("routing-mode", "native"),
        ]))
        .unwrap();
        assert_eq!(c.ipam, IpamMode::Kubernetes);
        assert_eq!(c.pool_cidrs.len(), 3);
        assert_eq!(c.pool_mask, 31, "range checks are the controller's");
        assert_eq!(c.cluster_name, "west");
        assert_eq!(c.identity_gc_interval, Duration::from_secs(900));

        let err = OperatorConfig::from_keys(&keys(&[("ipam", "eni")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid ipam "eni": not supported yet by this operator (supported: cluster-pool, kubernetes)"#
        );
        let err = OperatorConfig::from_keys(&keys(&[("cluster-pool-ipv4-cidr", "172.20.0.0/33")]))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#"invalid cluster-pool-ipv4-cidr "172.20.0.0/33": "#)
        );
        assert!(OperatorConfig::from_keys(&keys(&[("cluster-pool-ipv4-cidr", " ")])).is_err());
        assert!(OperatorConfig::from_keys(&keys(&[("cluster-pool-ipv4-mask-size", "x")])).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(positive_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(
            positive_duration("15m0s").unwrap(),
            Duration::from_secs(900)
        );
        assert!(positive_duration("5d").is_err());
        assert!(positive_duration("0s").is_err());
    }

    #[test]
    fn directory_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ipam"), "cluster-pool\n").unwrap();
        std::fs::write(dir.path().join("cluster-pool-ipv4-cidr"), "172.20.0.0/16").unwrap();
        std::fs::create_dir(dir.path().join("..data")).unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        let mut k = read_dir(dir.path()).unwrap();
        assert_eq!(k.len(), 2);
        assert_eq!(k["ipam"], "cluster-pool");
        apply_overrides(&mut k, &["cluster-pool-ipv4-mask-size=26".into()]).unwrap();
        let c = OperatorConfig::from_keys(&k).unwrap();
        assert_eq!(c.pool_cidrs, ["172.20.0.0/16".parse::<Ipv4Net>().unwrap()]);
        assert_eq!(c.pool_mask, 26);
        assert_eq!(
            apply_overrides(&mut k, &["nokey".into()]).unwrap_err(),
            ConfigError::Malformed("nokey".into())
        );
        assert!(read_dir(&dir.path().join("missing")).is_err());
    }
}
