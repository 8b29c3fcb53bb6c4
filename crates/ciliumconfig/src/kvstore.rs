//! The kvstore keys, read by the agent and the operator alike:
//! `kvstore` (`etcd`, or empty) and `kvstore-opt`, the etcd client's
//! options as upstream spells them, either as the ConfigMap writes them
//! (a JSON object, `{"etcd.config": "/var/lib/etcd-config/etcd.config"}`)
//! or as the `--kvstore-opt` flag does (`etcd.config=PATH,etcd.qps=20`).
//!
//! `etcd.config` names etcd's client configuration file (endpoints and
//! the TLS files, see `store::EtcdConfig`); `etcd.address` gives the
//! endpoints (comma-separated) instead of the file's. Upstream's tuning
//! options (rate limits, list limits, keep-alive) are accepted and have
//! no effect; any other option is an error naming it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{ConfigError, invalid};
use crate::key::KeySet;

/// `kvstore-opt`'s option naming etcd's client configuration file.
pub const ETCD_CONFIG_OPTION: &str = "etcd.config";
/// `kvstore-opt`'s option naming etcd's endpoints.
const ETCD_ADDRESS_OPTION: &str = "etcd.address";

/// Upstream's etcd options that tune the client and are accepted without
/// effect here.
const INERT_OPTIONS: &[&str] = &[
    "etcd.qps",
    "etcd.bootstrapQps",
    "etcd.maxInflight",
    "etcd.listLimit",
    "etcd.keepaliveHeartbeat",
    "etcd.keepaliveTimeout",
];

/// How the process reaches the kvstore, from `kvstore` and `kvstore-opt`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kvstore {
    /// `etcd.config`: etcd's client configuration file.
    pub etcd_config: Option<PathBuf>,
    /// `etcd.address`: endpoints replacing the file's (empty: none given).
    pub etcd_address: Vec<String>,
}

impl Kvstore {
    /// The endpoints given explicitly, which replace the file's: a
    /// process's own flag (`flag`, when not empty), else `etcd.address`.
    pub fn explicit_endpoints<'a>(&'a self, flag: &'a [String]) -> &'a [String] {
        if flag.is_empty() {
            &self.etcd_address
        } else {
            flag
        }
    }

    /// Read `kvstore` and `kvstore-opt` (which needs `kvstore: etcd`).
    pub(crate) fn parse(keys: &KeySet<'_>) -> Result<Self, ConfigError> {
        let kind = keys.get("kvstore");
        if !matches!(kind, "" | "etcd") {
            return Err(invalid("kvstore", kind, "expected etcd (or empty)"));
        }
        let text = keys.get("kvstore-opt");
        let options = parse_options(text)?;
        if kind.is_empty() && !options.is_empty() {
            return Err(ConfigError::Contradiction(
                "kvstore-opt configures the kvstore client: it needs kvstore: etcd".into(),
            ));
        }
        let mut kvstore = Self::default();
        for (name, value) in options {
            match name.as_str() {
                ETCD_CONFIG_OPTION => {
                    let path = PathBuf::from(&value);
                    if !path.is_absolute() {
                        return Err(invalid(
                            "kvstore-opt",
                            text,
                            format!("{ETCD_CONFIG_OPTION}: expected an absolute path"),
                        ));
                    }
                    kvstore.etcd_config = Some(path);
                }
                ETCD_ADDRESS_OPTION => {
                    kvstore.etcd_address = value
                        .split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(String::from)
                        .collect();
                }
                inert if INERT_OPTIONS.contains(&inert) => {}
                other => {
                    return Err(invalid(
                        "kvstore-opt",
                        text,
                        format!("unknown etcd option {other:?}"),
                    ));
                }
            }
        }
        Ok(kvstore)
    }
}

/// A map of options: a JSON (YAML flow) object, or `KEY=VALUE` pairs
/// separated by commas, where a part without `=` continues the value
/// before it (`etcd.address=A,B`).
fn parse_options(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(BTreeMap::new());
    }
    if text.starts_with('{') {
        let options = serde_saphyr::options! { with_snippet: false };
        return serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            invalid(
                "kvstore-opt",
                text,
                format!("expected a map of option names to strings: {e}"),
            )
        });
    }
    let mut options = BTreeMap::new();
    let mut last: Option<String> = None;
    for part in text.split(',') {
        match (part.split_once('='), &last) {
            (Some((k, v)), _) if !k.trim().is_empty() => {
                options.insert(k.trim().to_string(), v.trim().to_string());
                last = Some(k.trim().to_string());
            }
            (None, Some(key)) => {
                let value: &mut String = options.get_mut(key).expect("inserted with its key");
                value.push(',');
                value.push_str(part.trim());
            }
            _ => {
                return Err(invalid(
                    "kvstore-opt",
                    text,
                    "expected KEY=VALUE pairs separated by commas, or a JSON object",
                ));
            }
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Reader;
    use crate::testing::key_set;

    fn parse(pairs: &[(&str, &str)]) -> Result<Kvstore, String> {
        let given = key_set(pairs);
        let keys = KeySet::new(&given, Reader::Agent).unwrap();
        Kvstore::parse(&keys).map_err(|e| e.to_string())
    }

    #[test]
    fn both_spellings_of_the_options() {
        let file = Kvstore {
            etcd_config: Some("/var/lib/etcd-config/etcd.config".into()),
            etcd_address: Vec::new(),
        };
        let json = r#"{"etcd.config": "/var/lib/etcd-config/etcd.config", "etcd.qps": "20"}"#;
        assert_eq!(
            parse(&[("kvstore", "etcd"), ("kvstore-opt", json)]),
            Ok(file.clone())
        );
        let flag = "etcd.config=/var/lib/etcd-config/etcd.config, etcd.qps=20";
        assert_eq!(
            parse(&[("kvstore", "etcd"), ("kvstore-opt", flag)]),
            Ok(file)
        );
        let address = "etcd.address=https://10.0.0.1:2379,https://10.0.0.2:2379";
        assert_eq!(
            parse(&[("kvstore", "etcd"), ("kvstore-opt", address)])
                .unwrap()
                .etcd_address,
            ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
        );
        let parsed = parse(&[("kvstore", "etcd"), ("kvstore-opt", address)]).unwrap();
        let flag = vec!["https://127.0.0.1:2379".to_string()];
        assert_eq!(parsed.explicit_endpoints(&flag), flag);
        assert_eq!(parsed.explicit_endpoints(&[]), parsed.etcd_address);
        assert_eq!(parse(&[]), Ok(Kvstore::default()));
        assert_eq!(parse(&[("kvstore", "etcd")]), Ok(Kvstore::default()));
    }

    #[test]
    fn bad_options_are_named() {
        let e = |pairs: &[(&str, &str)]| parse(pairs).unwrap_err();
        assert_eq!(
            e(&[("kvstore", "consul")]),
            "`kvstore: consul` is invalid: expected etcd (or empty)"
        );
        assert_eq!(
            e(&[("kvstore-opt", "etcd.config=/x")]),
            "kvstore-opt configures the kvstore client: it needs kvstore: etcd"
        );
        assert_eq!(
            e(&[("kvstore", "etcd"), ("kvstore-opt", "etcd.foo=1")]),
            "`kvstore-opt: etcd.foo=1` is invalid: unknown etcd option \"etcd.foo\""
        );
        assert_eq!(
            e(&[("kvstore", "etcd"), ("kvstore-opt", "etcd.config=rel")]),
            "`kvstore-opt: etcd.config=rel` is invalid: etcd.config: expected an absolute path"
        );
        assert!(e(&[("kvstore", "etcd"), ("kvstore-opt", "nonsense")]).contains("KEY=VALUE"));
        assert!(e(&[("kvstore", "etcd"), ("kvstore-opt", "{bad")]).contains("expected a map"));
    }
}
