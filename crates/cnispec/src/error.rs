//! The CNI error object (`{"cniVersion", "code", "msg", "details"}`) a
//! failing plugin prints, and the specification's codes (1-99 are
//! reserved by it; a plugin's own codes are 100 and up and live with the
//! plugin). Encoding (plugin side) and decoding (client side) only.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::version::CniVersion;

/// 1: the plugin does not speak the configuration's CNI version.
pub const INCOMPATIBLE_VERSION: u32 = 1;
/// 3: the container is unknown or does not exist.
pub const UNKNOWN_CONTAINER: u32 = 3;
/// 4: a required `CNI_*` environment variable is missing or invalid.
pub const INVALID_ENV: u32 = 4;
/// 5: reading the configuration failed.
pub const IO_FAILURE: u32 = 5;
/// 6: the configuration is not JSON.
pub const DECODE_FAILURE: u32 = 6;
/// 7: a field of the network configuration is missing or invalid.
pub const INVALID_CONFIG: u32 = 7;
/// 11: a transient condition (agent unreachable); the runtime should retry.
pub const TRY_AGAIN_LATER: u32 = 11;
/// 50: STATUS — the plugin cannot serve ADD requests.
pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
/// 51: STATUS — not available, and existing pods may have limited
/// connectivity.
pub const PLUGIN_NOT_AVAILABLE_LIMITED: u32 = 51;

/// A CNI error: printed by a plugin on stdout with a non-zero exit
/// status, decoded by the runtime (missing fields decode as empty).
/// Displayed as libcni does: `msg`, or `msg; details`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CniError {
    /// Error code.
    #[serde(default)]
    pub code: u32,
    /// Short message.
    #[serde(default)]
    pub msg: String,
    /// Longer explanation (may be empty).
    #[serde(default)]
    pub details: String,
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{}; {}", self.msg, self.details)
        }
    }
}

impl std::error::Error for CniError {}

/// The wire shape of [`CniError`].
#[derive(Serialize)]
struct ErrorObject<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
    code: u32,
    msg: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    details: &'a str,
}

impl CniError {
    /// An error with a code and a message.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// The same error with details.
    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The error object in the given version's framing.
    pub fn to_json(&self, version: CniVersion) -> String {
        let obj = ErrorObject {
            cni_version: version.as_str(),
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        };
        serde_json::to_string(&obj).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_spec_error_object() {
        let e = CniError::new(INVALID_ENV, "missing CNI_NETNS").with_details("required for ADD");
        assert_eq!(
            e.to_json(CniVersion::V1_0_0),
            r#"{"cniVersion":"1.0.0","code":4,"msg":"missing CNI_NETNS","details":"required for ADD"}"#
        );
        assert_eq!(
            CniError::new(TRY_AGAIN_LATER, "x").to_json(CniVersion::V0_3_1),
            r#"{"cniVersion":"0.3.1","code":11,"msg":"x"}"#
        );
    }

    #[test]
    fn decodes_and_displays_like_libcni() {
        let e: CniError = serde_json::from_str(
            r#"{"cniVersion":"1.0.0","code":11,"msg":"failed to allocate","details":"range full"}"#,
        )
        .expect("error object");
        assert_eq!(e.code, TRY_AGAIN_LATER);
        assert_eq!(e.to_string(), "failed to allocate; range full");
        let e: CniError = serde_json::from_str(r#"{"msg":"bad"}"#).expect("error object");
        assert_eq!((e.code, e.to_string()), (0, "bad".to_string()));
    }
}
