//! How a client reaches etcd: its endpoints and, for `https://` and
//! `unixs://` endpoints, the TLS files (the CA that signed etcd's serving
//! certificate, the client certificate and its key).
//!
//! [`EtcdConfig`] also reads and writes etcd's client configuration file,
//! the YAML upstream Cilium points to with `kvstore-opt`'s `etcd.config`:
//!
//! ```yaml
//! endpoints:
//! - https://192.168.10.100:2379
//! trusted-ca-file: /var/lib/etcd-secrets/etcd-client-ca.crt
//! cert-file: /var/lib/etcd-secrets/etcd-client.crt
//! key-file: /var/lib/etcd-secrets/etcd-client.key
//! ```
//!
//! Other fields of etcd's format (`dial-timeout`, `insecure-transport`,
//! user names, ...) are refused by name rather than ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Endpoints and TLS of an etcd client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `http://HOST:PORT`, `https://HOST:PORT`, `unix:///path` or
    /// `unixs:///path` (one socket only).
    pub endpoints: Vec<String>,
    /// What `https://` and `unixs://` endpoints use (required by them,
    /// refused with plaintext endpoints).
    pub tls: Option<EtcdTls>,
}

/// The PEM files of a mutual-TLS etcd client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA certificate(s) etcd's serving certificate must chain to.
    pub trusted_ca_file: PathBuf,
    /// The client certificate presented to etcd.
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
}

/// etcd's client configuration file, the fields this client knows.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    endpoints: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trusted_ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_file: Option<PathBuf>,
}

impl EtcdConfig {
    /// Plaintext (or unix socket) endpoints, no TLS.
    pub fn plain(endpoints: &[String]) -> Self {
        Self {
            endpoints: endpoints.to_vec(),
            tls: None,
        }
    }

    /// Parse etcd's client configuration file format. `what` names the
    /// text in errors (its path).
    pub fn from_yaml(text: &str, what: &str) -> Result<Self> {
        let invalid = |detail: String| Error::Backend(format!("etcd config {what}: {detail}"));
        let file: ConfigFile = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| invalid(e.to_string()))?
        };
        let tls = match (file.trusted_ca_file, file.cert_file, file.key_file) {
            (None, None, None) => None,
            (Some(trusted_ca_file), Some(cert_file), Some(key_file)) => Some(EtcdTls {
                trusted_ca_file,
                cert_file,
                key_file,
            }),
            _ => {
                return Err(invalid(
                    "trusted-ca-file, cert-file and key-file go together (mutual TLS)".into(),
                ));
            }
        };
        Ok(Self {
            endpoints: file.endpoints,
            tls,
        })
    }

    /// Read etcd's client configuration file.
    pub fn read_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Backend(format!("cannot read etcd config {}: {e}", path.display()))
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// This configuration in etcd's client configuration file format.
    pub fn to_yaml(&self) -> String {
        let file = ConfigFile {
            endpoints: self.endpoints.clone(),
            trusted_ca_file: self.tls.as_ref().map(|t| t.trusted_ca_file.clone()),
            cert_file: self.tls.as_ref().map(|t| t.cert_file.clone()),
            key_file: self.tls.as_ref().map(|t| t.key_file.clone()),
        };
        serde_saphyr::to_string(&file).expect("strings and lists always serialize")
    }

    /// A process's etcd client from its two sources, as upstream Cilium
    /// combines `--kvstore-opt etcd.config=FILE` with an explicit address:
    /// the file's settings, with `endpoints` (when not empty) replacing
    /// the file's. Fails when neither names an endpoint.
    pub fn from_sources(endpoints: &[String], file: Option<&Path>) -> Result<Self> {
        let mut config = match file {
            Some(path) => Self::read_file(path)?,
            None => Self::plain(&[]),
        };
        if !endpoints.is_empty() {
            config.endpoints = endpoints.to_vec();
        }
        if config.endpoints.is_empty() {
            return Err(Error::Backend(
                "no etcd endpoint: give one (--etcd) or an etcd config file listing `endpoints` \
                 (kvstore-opt etcd.config)"
                    .into(),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> EtcdTls {
        EtcdTls {
            trusted_ca_file: "/pki/ca.crt".into(),
            cert_file: "/pki/c.crt".into(),
            key_file: "/pki/c.key".into(),
        }
    }

    #[test]
    fn upstream_files_parse_and_round_trip() {
        let text = "---\nendpoints:\n- https://192.168.10.100:2379\n\
                    trusted-ca-file: '/pki/ca.crt'\nkey-file: '/pki/c.key'\ncert-file: '/pki/c.crt'\n";
        let config = EtcdConfig::from_yaml(text, "f").unwrap();
        assert_eq!(
            config,
            EtcdConfig {
                endpoints: vec!["https://192.168.10.100:2379".into()],
                tls: Some(tls()),
            }
        );
        assert_eq!(
            EtcdConfig::from_yaml(&config.to_yaml(), "f").unwrap(),
            config
        );
        let plain = EtcdConfig::plain(&["http://127.0.0.1:2379".into()]);
        assert_eq!(EtcdConfig::from_yaml(&plain.to_yaml(), "f").unwrap(), plain);
    }

    #[test]
    fn partial_tls_and_unknown_fields_are_refused() {
        let e = EtcdConfig::from_yaml("trusted-ca-file: /ca.crt\n", "f").unwrap_err();
        assert_eq!(
            e.to_string(),
            "store backend: etcd config f: trusted-ca-file, cert-file and key-file go together (mutual TLS)"
        );
        let e = EtcdConfig::from_yaml("insecure-transport: true\n", "f").unwrap_err();
        assert!(e.to_string().contains("insecure-transport"), "{e}");
    }

    #[test]
    fn explicit_endpoints_replace_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.config");
        let from_file = EtcdConfig {
            endpoints: vec!["https://10.0.0.1:2379".into()],
            tls: Some(tls()),
        };
        std::fs::write(&path, from_file.to_yaml()).unwrap();
        assert_eq!(
            EtcdConfig::from_sources(&[], Some(&path)).unwrap(),
            from_file
        );
        let flag = vec!["https://127.0.0.1:2379".to_string()];
        let both = EtcdConfig::from_sources(&flag, Some(&path)).unwrap();
        assert_eq!((both.endpoints, both.tls), (flag.clone(), Some(tls())));
        assert_eq!(
            EtcdConfig::from_sources(&flag, None).unwrap(),
            EtcdConfig::plain(&flag)
        );
        let e = EtcdConfig::from_sources(&[], None).unwrap_err();
        assert!(e.to_string().contains("no etcd endpoint"), "{e}");
        let e = EtcdConfig::from_sources(&[], Some(&dir.path().join("absent"))).unwrap_err();
        assert!(e.to_string().contains("cannot read etcd config"), "{e}");
    }
}
