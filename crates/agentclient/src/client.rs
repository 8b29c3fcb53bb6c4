//! A blocking HTTP/1.1 client over the agent's unix socket.

use std::path::{Path, PathBuf};

use serde::{Serialize, de::DeserializeOwned};

use crate::ApiError;

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached (agent not running?).
    #[error("cannot reach the cilium agent at {path}: {source}")]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The agent answered with an error.
    #[error("{0}")]
    Api(ApiError),
    /// Malformed response.
    #[error("invalid response from the agent: {0}")]
    Protocol(String),
}

/// A client of one agent.
#[derive(Debug, Clone)]
pub struct Client {
    path: PathBuf,
}

impl Client {
    /// A client for the agent listening on `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
        }
    }

    /// `GET path` decoding JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let _ = path;
        todo!()
    }

    /// `POST path` with a JSON body; decodes the JSON answer (use `()` for 204).
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let _ = (path, body);
        todo!()
    }
}
