//! Persistence of the agent's local state in `--state-dir`, so a restarted
//! agent (even after `kill -9`) finds its IPs and endpoints again:
//!
//! ```text
//! <state-dir>/ipam.json            {"cidrs": [..], "allocations": {ip: owner}}
//! <state-dir>/endpoints/<id>.json  one EndpointState per endpoint
//! ```
//!
//! Every write is atomic (temporary file in the same directory, fsync,
//! rename). Our own JSON format is used for IPAM rather than the
//! allocator's serde form, so restoring never depends on its internals.
//! Owns only files below the state dir.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::endpoint::EndpointState;

/// Persistence errors.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file does not decode.
    #[error("{path}: {source}")]
    Decode {
        /// File.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
}

/// Persisted IPAM allocations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamState {
    /// The pod CIDRs the allocations were made from.
    pub cidrs: Vec<Ipv4Net>,
    /// Address -> owner.
    pub allocations: BTreeMap<Ipv4Addr, String>,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `bytes` to `path` atomically (tmp + fsync + rename).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    toolkit::write_atomic(path, bytes).map_err(io(path))
}

impl StateDir {
    /// A handle on `root` (no I/O).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    #[cfg(test)]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn ipam_path(&self) -> PathBuf {
        self.root.join("ipam.json")
    }

    fn endpoints_dir(&self) -> PathBuf {
        self.root.join("endpoints")
    }

    fn endpoint_path(&self, id: u16) -> PathBuf {
        self.endpoints_dir().join(format!("{id}.json"))
    }

    /// Load the IPAM state (empty when absent).
    pub fn load_ipam(&self) -> Result<IpamState, StateError> {
        let path = self.ipam_path();
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| StateError::Decode { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(IpamState::default()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Save the IPAM state.
    pub fn save_ipam(&self, state: &IpamState) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(state).expect("IPAM state serializes");
        write_file(&self.ipam_path(), &bytes)
    }

    /// Load every endpoint. Files that do not decode are returned as
    /// errors next to the good ones (the caller logs and skips them).
    pub fn load_endpoints(&self) -> Result<(Vec<EndpointState>, Vec<StateError>), StateError> {
        let dir = self.endpoints_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for entry in entries {
            let path = entry.map_err(io(&dir))?.path();
            if path.extension().is_none_or(|e| e != "json")
                || path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            match std::fs::read(&path) {
                Ok(bytes) => match serde_json::from_slice::<EndpointState>(&bytes) {
                    Ok(ep) => good.push(ep),
                    Err(source) => bad.push(StateError::Decode { path, source }),
                },
                Err(e) => bad.push(io(&path)(e)),
            }
        }
        good.sort_by_key(|e| e.id);
        Ok((good, bad))
    }

    /// Save one endpoint.
    pub fn save_endpoint(&self, ep: &EndpointState) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(ep).expect("endpoint state serializes");
        write_file(&self.endpoint_path(ep.id), &bytes)
    }

    /// Remove one endpoint (absent is fine).
    pub fn remove_endpoint(&self, id: u16) -> Result<(), StateError> {
        let path = self.endpoint_path(id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::tests::sample_endpoint;

    #[test]
    fn ipam_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path().join("state"));
        assert_eq!(sd.load_ipam().unwrap(), IpamState::default());
        let st = IpamState {
            cidrs: vec!["172.20.1.0/24".parse().unwrap()],
            allocations: [
                ("172.20.1.1".parse().unwrap(), "router".to_string()),
                (
                    "172.20.1.2".parse().unwrap(),
                    "default/webpod-1".to_string(),
                ),
            ]
            .into(),
        };
        sd.save_ipam(&st).unwrap();
        assert_eq!(sd.load_ipam().unwrap(), st);
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(sd.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["ipam.json".to_string()]);
    }

    #[test]
    fn endpoints_round_trip_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path());
        let a = sample_endpoint(7, "c1", "172.20.1.7");
        let b = sample_endpoint(3, "c2", "172.20.1.3");
        sd.save_endpoint(&a).unwrap();
        sd.save_endpoint(&b).unwrap();
        std::fs::write(dir.path().join("endpoints/99.json"), b"{not json").unwrap();
        let (good, bad) = sd.load_endpoints().unwrap();
        assert_eq!(good, vec![b.clone(), a.clone()]);
        assert_eq!(bad.len(), 1);
        sd.remove_endpoint(3).unwrap();
        sd.remove_endpoint(3).unwrap();
        std::fs::remove_file(dir.path().join("endpoints/99.json")).unwrap();
        assert_eq!(sd.load_endpoints().unwrap().0, vec![a]);
    }
}
