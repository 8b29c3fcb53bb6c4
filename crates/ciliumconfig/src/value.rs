//! Value parsers shared by the key table's type checks and the agent's
//! and the operator's typed configs (those returning a [`ConfigError`]
//! take the key for its message), and the [`IpamMode`] both configs use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::error::{ConfigError, invalid};

/// IPAM mode (`ipam`), shared by the agent and the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpamMode {
    /// `kubernetes`: the Node's `spec.podCIDR(s)`; the operator does no IPAM.
    Kubernetes,
    /// `cluster-pool`: the operator fills `CiliumNode.spec.ipam.podCIDRs`
    /// from `cluster-pool-ipv4-cidr`.
    ClusterPool,
}

impl IpamMode {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            IpamMode::Kubernetes => "kubernetes",
            IpamMode::ClusterPool => "cluster-pool",
        }
    }

    /// Parse `ipam`: upstream's other modes are "not supported yet".
    pub(crate) fn parse(value: &str) -> Result<Self, ConfigError> {
        match value {
            "kubernetes" => Ok(IpamMode::Kubernetes),
            "cluster-pool" => Ok(IpamMode::ClusterPool),
            "multi-pool" | "eni" | "azure" | "alibabacloud" | "crd" | "delegated-plugin" => {
                Err(ConfigError::NotSupported {
                    key: "ipam".into(),
                    value: value.into(),
                })
            }
            _ => Err(invalid(
                "ipam",
                value,
                "expected kubernetes or cluster-pool",
            )),
        }
    }
}

/// Go's `strconv.ParseBool`, which upstream uses for boolean keys.
pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

/// Normalise a boolean-looking value so `True`/`1` match `true` in the
/// feature gates' lists of values meaning "off".
pub(crate) fn normalise(value: &str) -> &str {
    match value {
        "1" | "t" | "T" | "TRUE" | "True" => "true",
        "0" | "f" | "F" | "FALSE" | "False" => "false",
        v => v,
    }
}

/// `:9962`, `0.0.0.0:9962`, `127.0.0.1:9962`; empty disables.
pub(crate) fn parse_listen_addr(key: &str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if value.is_empty() {
        return Ok(None);
    }
    let full = if value.starts_with(':') {
        format!("0.0.0.0{value}")
    } else {
        value.to_string()
    };
    full.parse::<SocketAddr>()
        .map(Some)
        .map_err(|_| invalid(key, value, "expected [ADDRESS]:PORT, e.g. :9962"))
}

/// An absolute path; empty means none.
pub(crate) fn parse_abs_path(key: &str, value: &str) -> Result<Option<PathBuf>, ConfigError> {
    if value.is_empty() {
        Ok(None)
    } else if value.starts_with('/') {
        Ok(Some(PathBuf::from(value)))
    } else {
        Err(invalid(key, value, "expected an absolute path"))
    }
}

/// One IPv4 CIDR, host bits cleared; empty means none.
pub(crate) fn parse_cidr(key: &str, value: &str) -> Result<Option<Ipv4Net>, ConfigError> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse::<Ipv4Net>()
        .map(|net| Some(net.trunc()))
        .map_err(|_| invalid(key, value, "expected an IPv4 CIDR"))
}

/// IPv4 CIDRs separated by commas or whitespace, in order (possibly none).
pub(crate) fn parse_cidrs(key: &str, value: &str) -> Result<Vec<Ipv4Net>, ConfigError> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Ipv4Net>()
                .map_err(|_| invalid(key, value, "expected IPv4 CIDRs"))
        })
        .collect()
}

/// A pool's block size (`cluster-pool-ipv4-mask-size`). Only its syntax:
/// whether the pool can be cut into such blocks is the operator's IPAM
/// controller's business, which reports it on every CiliumNode.
pub(crate) fn parse_prefix_len(key: &str, value: &str) -> Result<u8, ConfigError> {
    value
        .parse::<u8>()
        .ok()
        .filter(|m| *m <= 32)
        .ok_or_else(|| invalid(key, value, "expected a prefix length 0-32"))
}

/// `cluster-name`: 1-32 characters of a-z, 0-9 and `-`.
pub(crate) fn parse_cluster_name(key: &str, value: &str) -> Result<String, ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(value.to_string())
    } else {
        Err(invalid(
            key,
            value,
            "expected 1-32 characters of a-z, 0-9 and -",
        ))
    }
}

/// A positive duration (`500ms`, `30s`, `15m`, `1h30m`, or seconds): an
/// interval of zero would spin. Also the parser of duration flags.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match toolkit::parse_duration(text)? {
        d if d.is_zero() => Err(format!("{:?}: must be positive", text.trim())),
        d => Ok(d),
    }
}
