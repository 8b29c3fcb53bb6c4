//! CNI specification versions: the ones both sides speak, their order,
//! the `VERSION` command's answer and comparisons of a configuration's
//! version string. Owns version parsing and ordering only; what differs
//! between versions in a result lives in [`crate::result`], the version a
//! command appeared in in [`crate::command`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A supported CNI specification version, ordered oldest first. On the
/// wire it is its string (`"1.0.0"`); other strings do not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CniVersion {
    /// 0.3.0.
    V0_3_0,
    /// 0.3.1.
    V0_3_1,
    /// 0.4.0 (adds CHECK).
    V0_4_0,
    /// 1.0.0 (drops `ips[].version`).
    V1_0_0,
    /// 1.1.0 (adds STATUS, GC, interface `mtu`).
    V1_1_0,
}

impl CniVersion {
    /// Every supported version, oldest first.
    pub const ALL: [CniVersion; 5] = [
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];

    /// The newest supported version.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// `"1.0.0"` -> [`CniVersion::V1_0_0`]; `None` when unsupported.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The version string.
    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }
}

impl Serialize for CniVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CniVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unsupported CNI version {s:?}")))
    }
}

/// `major.minor.patch` of a version string, missing or unreadable parts
/// as 0 (`"1.0"` is 1.0.0).
fn numbers(v: &str) -> (u32, u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// Whether a configuration's `cniVersion` (any string, supported or not)
/// is `min` or newer, the way a runtime decides what a network can do.
pub fn at_least(version: &str, min: CniVersion) -> bool {
    numbers(version) >= numbers(min.as_str())
}

/// The `VERSION` command's output.
#[derive(Debug, Serialize)]
struct VersionInfo {
    #[serde(rename = "cniVersion")]
    cni_version: &'static str,
    #[serde(rename = "supportedVersions")]
    supported_versions: Vec<&'static str>,
}

/// `VERSION` output: the supported versions, labelled with the version the
/// runtime asked in (when we speak it) or the newest.
pub fn version_info(requested: Option<CniVersion>) -> String {
    let info = VersionInfo {
        cni_version: requested.unwrap_or(CniVersion::LATEST).as_str(),
        supported_versions: CniVersion::ALL.iter().map(|v| v.as_str()).collect(),
    };
    serde_json::to_string(&info).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_supported_versions() {
        for v in CniVersion::ALL {
            assert_eq!(CniVersion::parse(v.as_str()), Some(v));
        }
        for bad in ["0.1.0", "0.2.0", "1.2.0", "1.0", "", " 1.0.0"] {
            assert_eq!(CniVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn versions_are_ordered() {
        assert!(CniVersion::V0_3_1 < CniVersion::V0_4_0);
        assert!(CniVersion::V1_0_0 < CniVersion::V1_1_0);
        assert_eq!(CniVersion::LATEST, CniVersion::V1_1_0);
    }

    #[test]
    fn loose_comparison_of_configuration_versions() {
        assert!(at_least("0.4.0", CniVersion::V0_4_0));
        assert!(at_least("1.0", CniVersion::V0_4_0));
        assert!(at_least("2.0.0", CniVersion::V1_1_0));
        assert!(!at_least("0.3.1", CniVersion::V0_4_0));
        assert!(!at_least("garbage", CniVersion::V0_3_0));
    }

    #[test]
    fn wire_form_is_the_string() {
        let v: CniVersion = serde_json::from_str(r#""0.4.0""#).expect("supported");
        assert_eq!(v, CniVersion::V0_4_0);
        assert_eq!(serde_json::to_string(&v).expect("json"), r#""0.4.0""#);
        assert!(serde_json::from_str::<CniVersion>(r#""0.2.0""#).is_err());
    }

    #[test]
    fn version_output_lists_all() {
        assert_eq!(
            version_info(None),
            r#"{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#
        );
        assert!(version_info(Some(CniVersion::V0_4_0)).starts_with(r#"{"cniVersion":"0.4.0","#));
    }
}
