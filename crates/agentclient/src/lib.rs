//! The cilium-agent's REST API, spoken over the agent's unix socket
//! (`/var/run/cilium/cilium.sock` on a real node; per node in the lab).
//! This crate holds the wire types shared by the agent (server), the CNI
//! plugin and `cilium-dbg` (clients), and a small blocking client on
//! hyper's HTTP/1.1 client: the CNI plugin is exec'd per pod and makes one
//! or two requests, so every call opens its own connection on a runtime of
//! its own, and callers need no async runtime.
//!
//! Endpoints (JSON bodies; errors are [`ApiError`] with a non-2xx status):
//! - `GET  /v1/healthz`            -> [`Health`]  (CNI STATUS)
//! - `POST /v1/cni/add`            [`CniAddRequest`] -> [`CniAddResponse`]
//! - `POST /v1/cni/del`            [`CniDelRequest`] -> 204 (idempotent)
//! - `POST /v1/cni/check`          [`CniCheckRequest`] -> 204
//! - `POST /v1/cni/gc`             [`CniGcRequest`] -> [`CniGcResponse`]
//! - `GET  /v1/status`             -> [`StatusResponse`] (`cilium-dbg status`)
//! - `GET  /v1/config`             -> `BTreeMap<String, String>` (effective cilium-config)
//! - `GET  /v1/endpoint`           -> `Vec<`[`EndpointModel`]`>`
//! - `GET  /v1/ip`                 -> `Vec<`[`IpEntry`]`>` (`cilium-dbg ip list`)
//! - `GET  /v1/map/ipcache`        -> `Vec<`[`IpcacheMapEntry`]`>` (`bpf ipcache list`)
//! - `GET  /v1/map/endpoint`       -> `Vec<`[`LxcMapEntry`]`>` (`bpf endpoint list`)
//! - `GET  /v1/map/metrics`        -> `Vec<`[`MetricsMapEntry`]`>`

mod client;
mod types;

pub use client::{Client, ClientError, DEFAULT_SOCKET_PATH, DEFAULT_TIMEOUT};
pub use types::*;
