//! The network configuration read from stdin: the standard keys
//! (`cniVersion`, `name`, `type`, `prevResult`, and for GC
//! `cni.dev/valid-attachments`) and ours (`socket-path`, `mtu`,
//! `enable-debug`, `log-file`). Unknown keys are ignored, as the
//! specification allows. Decoding never panics: malformed JSON is code 6,
//! a missing or mistyped field code 7, an unsupported version code 1.

use std::path::PathBuf;

use agentclient::{Attachment, DEFAULT_SOCKET_PATH};
use serde_json::{Map, Value};

use cnispec::error::{DECODE_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG};
use cnispec::{CniError, CniVersion};

/// A decoded plugin configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// `cniVersion`.
    pub cni_version: CniVersion,
    /// `name` of the network.
    pub name: String,
    /// `prevResult`, when chained after another plugin (an object).
    pub prev_result: Option<Value>,
    /// `socket-path`: the agent's API socket.
    pub socket_path: PathBuf,
    /// `mtu` asked of the agent.
    pub mtu: Option<u32>,
    /// `enable-debug`: log each invocation.
    pub enable_debug: bool,
    /// `log-file`: where debug logs go (stderr when absent).
    pub log_file: Option<PathBuf>,
    /// `cni.dev/valid-attachments` (GC); `None` when the key is absent.
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// Decodes stdin as a JSON object (code 6 otherwise).
pub fn decode(input: &[u8]) -> Result<Map<String, Value>, CniError> {
    match serde_json::from_slice::<Value>(input) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(
            CniError::new(DECODE_FAILURE, "failed to decode the network configuration")
                .with_details("expected a JSON object"),
        ),
        Err(e) => Err(
            CniError::new(DECODE_FAILURE, "failed to decode the network configuration")
                .with_details(e.to_string()),
        ),
    }
}

/// The configuration's version when it is one we speak (used to frame
/// errors even when the rest of the configuration is invalid).
pub fn version_hint(doc: &Map<String, Value>) -> Option<CniVersion> {
    doc.get("cniVersion")
        .and_then(Value::as_str)
        .and_then(CniVersion::parse)
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(INVALID_CONFIG, msg)
}

fn opt_str<'a>(doc: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, CniError> {
    match doc.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{key:?} must be a string"))),
    }
}

fn req_str<'a>(doc: &'a Map<String, Value>, key: &str) -> Result<&'a str, CniError> {
    match opt_str(doc, key)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(invalid(format!("missing {key:?}"))),
    }
}

/// The specification's network name rule: an alphanumeric first
/// character, then alphanumerics, `_`, `.` or `-`.
fn valid_network_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl NetConf {
    /// Validates a decoded configuration.
    pub fn from_doc(doc: &Map<String, Value>) -> Result<Self, CniError> {
        let version = req_str(doc, "cniVersion")?;
        let cni_version = CniVersion::parse(version).ok_or_else(|| {
            CniError::new(
                INCOMPATIBLE_VERSION,
                format!("incompatible CNI version {version:?}"),
            )
            .with_details(format!(
                "supported versions: {}",
                CniVersion::ALL.map(CniVersion::as_str).join(", ")
            ))
        })?;
        let name = req_str(doc, "name")?;
        if !valid_network_name(name) {
            return Err(invalid(format!("invalid network name {name:?}")));
        }
        req_str(doc, "type")?;
        let prev_result = match doc.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(_) => return Err(invalid("\"prevResult\" must be an object")),
        };
        let socket_path = match opt_str(doc, "socket-path")? {
            None | Some("") => PathBuf::from(DEFAULT_SOCKET_PATH),
            Some(p) => PathBuf::from(p),
        };
        let mtu = match doc.get("mtu") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n @ 68..=65535) => u32::try_from(n).ok(),
                _ => return Err(invalid("\"mtu\" must be an integer from 68 to 65535")),
            },
        };
        let enable_debug = match doc.get("enable-debug") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("\"enable-debug\" must be a boolean")),
        };
        let log_file = opt_str(doc, "log-file")?
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let valid_attachments = match doc.get("cni.dev/valid-attachments") {
            None => None,
            Some(v) => Some(attachments(v)?),
        };
        Ok(Self {
            cni_version,
            name: name.to_string(),
            prev_result,
            socket_path,
            mtu,
            enable_debug,
            log_file,
            valid_attachments,
        })
    }
}

/// `[{"containerID": "...", "ifname": "..."}]` (`null` is an empty list).
fn attachments(v: &Value) -> Result<Vec<Attachment>, CniError> {
    let bad = || invalid("\"cni.dev/valid-attachments\" must be a list of {containerID, ifname}");
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let obj = item.as_object().ok_or_else(bad)?;
                let field = |k: &str| obj.get(k).and_then(Value::as_str).ok_or_else(bad);
                Ok(Attachment {
                    container_id: field("containerID")?.to_string(),
                    ifname: field("ifname")?.to_string(),
                })
            })
            .collect(),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn conf(v: Value) -> Result<NetConf, CniError> {
        NetConf::from_doc(&decode(v.to_string().as_bytes())?)
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = conf(json!({"cniVersion": "1.0.0", "name": "cilium", "type": "cilium-cni"}))
            .expect("valid");
        assert_eq!(
            c,
            NetConf {
                cni_version: CniVersion::V1_0_0,
                name: "cilium".into(),
                prev_result: None,
                socket_path: PathBuf::from("/var/run/cilium/cilium.sock"),
                mtu: None,
                enable_debug: false,
                log_file: None,
                valid_attachments: None,
            }
        );
    }

    #[test]
    fn all_keys() {
        let c = conf(json!({
            "cniVersion": "1.1.0", "name": "cilium", "type": "cilium-cni",
            "socket-path": "/run/lab/n1/cilium.sock", "mtu": 1450,
            "enable-debug": true, "log-file": "/tmp/cni.log",
            "prevResult": {"cniVersion": "1.1.0", "ips": []},
            "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}],
            "ipam": {}, "dns": {}, "runtimeConfig": {}
        }))
        .expect("valid");
        assert_eq!(c.socket_path, PathBuf::from("/run/lab/n1/cilium.sock"));
        assert_eq!(c.mtu, Some(1450));
        assert!(c.enable_debug);
        assert_eq!(c.log_file, Some(PathBuf::from("/tmp/cni.log")));
        assert!(c.prev_result.is_some());
        assert_eq!(
            c.valid_attachments,
            Some(vec![Attachment {
                container_id: "c1".into(),
                ifname: "eth0".into()
            }])
        );
        let null = conf(json!({"cniVersion": "1.1.0", "name": "n", "type": "t",
            "cni.dev/valid-attachments": null}))
        .expect("valid");
        assert_eq!(null.valid_attachments, Some(vec![]));
    }

    #[test]
    fn malformed_json_is_code_6() {
        for bad in [&b"{"[..], b"", b"[1]", b"\"x\"", b"{\"a\":}"] {
            assert_eq!(decode(bad).unwrap_err().code, DECODE_FAILURE);
        }
    }

    #[test]
    fn unsupported_version_is_code_1() {
        for v in ["0.2.0", "2.0.0", "1.0"] {
            let e = conf(json!({"cniVersion": v, "name": "n", "type": "t"})).unwrap_err();
            assert_eq!(e.code, INCOMPATIBLE_VERSION, "{v}");
        }
    }

    #[test]
    fn invalid_fields_are_code_7() {
        for bad in [
            json!({"name": "n", "type": "t"}),
            json!({"cniVersion": 1, "name": "n", "type": "t"}),
            json!({"cniVersion": "1.0.0", "type": "t"}),
            json!({"cniVersion": "1.0.0", "name": "-n", "type": "t"}),
            json!({"cniVersion": "1.0.0", "name": "n"}),
            json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "mtu": 10}),
            json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "mtu": "1500"}),
            json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "enable-debug": "yes"}),
            json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "socket-path": 3}),
            json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "prevResult": []}),
            json!({"cniVersion": "1.1.0", "name": "n", "type": "t",
                   "cni.dev/valid-attachments": [{"containerID": "c"}]}),
        ] {
            assert_eq!(conf(bad.clone()).unwrap_err().code, INVALID_CONFIG, "{bad}");
        }
    }

    #[test]
    fn version_hint_only_for_supported() {
        let doc = decode(br#"{"cniVersion":"0.4.0"}"#).expect("object");
        assert_eq!(version_hint(&doc), Some(CniVersion::V0_4_0));
        let doc = decode(br#"{"cniVersion":"9.9.9"}"#).expect("object");
        assert_eq!(version_hint(&doc), None);
    }
}
