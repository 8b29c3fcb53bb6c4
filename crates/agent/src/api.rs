//! The REST API on the agent's unix socket (axum), and the Prometheus
//! endpoint on `prometheus-serve-addr`. Handlers only translate between
//! the wire types of `agentclient` and the agent's state; every error is
//! an [`ApiError`] JSON body with a matching HTTP status.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use agentclient::{
    ApiError, CniAddRequest, CniAddResponse, CniCheckRequest, CniDelRequest, CniGcRequest,
    CniGcResponse, EndpointModel, Health, IpEntry, IpcacheMapEntry, LxcMapEntry, MetricsMapEntry,
    StatusResponse,
};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::config::AgentConfig;
use crate::dataplane::{Dataplane, IpcacheEntry};
use crate::endpoint::EndpointState;
use crate::endpoints::{AddRequest, EndpointError};
use crate::kernel::format_mac;
use crate::metrics::{direction_name, reason_name};
use crate::status::{self, StatusInputs};
use crate::tables::IpcacheRow;
use crate::tasks::Manager;

/// CNI error codes of [`ApiError::code`] (the plugin passes them on):
/// the specification's, and the agent's own from 100 up.
pub mod codes {
    pub use cnispec::error::{
        DECODE_FAILURE as DECODE, INVALID_ENV, IO_FAILURE as IO, UNKNOWN_CONTAINER,
    };
    /// No address left in the node's pool, or no endpoint ID left.
    pub const IPAM_EXHAUSTED: u32 = 100;
    /// Creating the endpoint's interfaces failed.
    pub const LINK: u32 = 101;
    /// Identity allocation failed.
    pub const IDENTITY: u32 = 102;
    /// BPF map or program attach failed.
    pub const DATAPATH: u32 = 103;
    /// CHECK found a discrepancy.
    pub const CHECK_FAILED: u32 = 105;
}

/// Everything the handlers read.
pub struct ApiState {
    /// Node name.
    pub node_name: String,
    /// Validated config.
    pub config: Arc<AgentConfig>,
    /// The router IP (pods' gateway).
    pub router_ip: std::net::Ipv4Addr,
    /// Endpoint manager.
    pub endpoints: Arc<Manager>,
    /// The desired ipcache.
    pub ipcache: reconciler::Table<IpcacheRow>,
    /// Map access.
    pub dataplane: Arc<crate::kernel::Kernel>,
    /// Status facts maintained by the daemon.
    pub status: Arc<Mutex<StatusInputs>>,
    /// Controller and reconciler health.
    pub health: toolkit::Health,
}

/// An error response.
#[derive(Debug)]
pub struct HttpError(pub StatusCode, pub ApiError);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<EndpointError> for HttpError {
    fn from(e: EndpointError) -> Self {
        let (status, code) = match &e {
            EndpointError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, codes::INVALID_ENV),
            EndpointError::UnknownEndpoint(_) => (StatusCode::NOT_FOUND, codes::UNKNOWN_CONTAINER),
            EndpointError::Exhausted(_) => (StatusCode::SERVICE_UNAVAILABLE, codes::IPAM_EXHAUSTED),
            EndpointError::Link(_) => (StatusCode::INTERNAL_SERVER_ERROR, codes::LINK),
            EndpointError::Identity(_) => (StatusCode::INTERNAL_SERVER_ERROR, codes::IDENTITY),
            EndpointError::Datapath(_) => (StatusCode::INTERNAL_SERVER_ERROR, codes::DATAPATH),
            EndpointError::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, codes::IO),
            EndpointError::CheckFailed(_) => (StatusCode::CONFLICT, codes::CHECK_FAILED),
        };
        HttpError(
            status,
            ApiError {
                code,
                message: e.to_string(),
            },
        )
    }
}

/// The response to an ADD of `ep`.
pub fn add_response(ep: &EndpointState, router_ip: std::net::Ipv4Addr) -> CniAddResponse {
    CniAddResponse {
        endpoint_id: ep.id,
        host_ifname: ep.host_ifname.clone(),
        host_mac: format_mac(&ep.host_mac),
        ifname: ep.ifname.clone(),
        mac: format_mac(&ep.container_mac),
        ipv4: ep.ipv4.to_string(),
        prefix_len: 32,
        gateway: router_ip.to_string(),
        routes: vec![agentclient::RouteModel {
            dst: "0.0.0.0/0".to_string(),
            gw: Some(router_ip.to_string()),
        }],
        mtu: ep.mtu,
    }
}

fn body<T>(r: Result<Json<T>, JsonRejection>) -> Result<T, HttpError> {
    r.map(|Json(t)| t).map_err(|e| {
        HttpError(
            StatusCode::BAD_REQUEST,
            ApiError {
                code: codes::DECODE,
                message: format!("invalid request body: {}", e.body_text()),
            },
        )
    })
}

fn internal(message: String) -> HttpError {
    HttpError(
        StatusCode::INTERNAL_SERVER_ERROR,
        ApiError { code: 0, message },
    )
}

type S = State<Arc<ApiState>>;
type R<T> = Result<Json<T>, HttpError>;

async fn healthz(State(s): S) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        node: s.node_name.clone(),
    })
}

async fn cni_add(
    State(s): S,
    req: Result<Json<CniAddRequest>, JsonRejection>,
) -> R<CniAddResponse> {
    let req = body(req)?;
    let ep = s
        .endpoints
        .add(&AddRequest {
            container_id: req.container_id,
            netns: req.netns,
            ifname: req.ifname,
            pod_namespace: req.pod_namespace,
            pod_name: req.pod_name,
            pod_uid: req.pod_uid,
            mtu: req.mtu,
        })
        .await?;
    Ok(Json(add_response(&ep, s.router_ip)))
}

async fn cni_del(
    State(s): S,
    req: Result<Json<CniDelRequest>, JsonRejection>,
) -> Result<StatusCode, HttpError> {
    let req = body(req)?;
    s.endpoints.del(&req.container_id, &req.ifname).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn cni_check(
    State(s): S,
    req: Result<Json<CniCheckRequest>, JsonRejection>,
) -> Result<StatusCode, HttpError> {
    let req = body(req)?;
    s.endpoints.check(&req.container_id, &req.ifname).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn cni_gc(State(s): S, req: Result<Json<CniGcRequest>, JsonRejection>) -> R<CniGcResponse> {
    let req = body(req)?;
    let valid: Vec<(String, String)> = req
        .valid
        .into_iter()
        .map(|a| (a.container_id, a.ifname))
        .collect();
    let removed = s.endpoints.gc(&valid).await?;
    Ok(Json(CniGcResponse { removed }))
}

async fn status_handler(State(s): S) -> Json<StatusResponse> {
    let snap = s.endpoints.subscribe().borrow().clone();
    let inputs = s.status.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Json(status::render(
        &s.config,
        &snap,
        &inputs,
        &s.health.snapshot(),
    ))
}

async fn config_handler(State(s): S) -> Json<BTreeMap<String, String>> {
    Json(s.config.effective.clone())
}

async fn endpoint_list(State(s): S) -> Json<Vec<EndpointModel>> {
    let snap = s.endpoints.subscribe().borrow().clone();
    Json(snap.endpoints.iter().map(|e| e.model()).collect())
}

/// The rows of `cilium-dbg ip list`.
pub fn ip_entries<'a>(rows: impl IntoIterator<Item = &'a IpcacheRow>) -> Vec<IpEntry> {
    rows.into_iter()
        .map(|row| {
            let labels = if row.labels.is_empty() {
                identity::Labels::reserved(row.identity)
                    .map(|l| l.to_strings())
                    .unwrap_or_default()
            } else {
                row.labels.clone()
            };
            IpEntry {
                prefix: row.prefix.to_string(),
                identity: row.identity,
                labels,
                source: row.source.as_str().to_string(),
                host_ip: row.tunnel_endpoint.or(row.host_ip).map(|ip| ip.to_string()),
            }
        })
        .collect()
}

async fn ip_list(State(s): S) -> Json<Vec<IpEntry>> {
    let rows = s.ipcache.rows();
    Json(ip_entries(rows.iter().map(|(r, _, _)| &**r)))
}

/// A `cilium_ipcache_v2` row as `cilium-dbg bpf ipcache list` prints it:
/// `tunnelendpoint=0.0.0.0 flags=<none>` without a tunnel endpoint,
/// `tunnelendpoint=<node ip> flags=hastunnel` with one.
pub fn ipcache_map_entry(prefix: ipnet::Ipv4Net, e: &IpcacheEntry) -> IpcacheMapEntry {
    IpcacheMapEntry {
        prefix: prefix.to_string(),
        identity: e.identity,
        encrypt_key: e.encrypt_key,
        tunnel_endpoint: e
            .tunnel_endpoint
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)
            .to_string(),
        flags: if e.tunnel_endpoint.is_some() {
            "hastunnel".into()
        } else {
            "<none>".into()
        },
    }
}

async fn map_ipcache(State(s): S) -> R<Vec<IpcacheMapEntry>> {
    let rows = s
        .dataplane
        .ipcache_entries()
        .map_err(|e| internal(e.to_string()))?;
    Ok(Json(
        rows.iter().map(|(p, e)| ipcache_map_entry(*p, e)).collect(),
    ))
}

async fn map_endpoint(State(s): S) -> R<Vec<LxcMapEntry>> {
    let rows = s
        .dataplane
        .lxc_entries()
        .map_err(|e| internal(e.to_string()))?;
    Ok(Json(
        rows.into_iter()
            .map(|e| LxcMapEntry {
                ip: e.ip.to_string(),
                id: e.endpoint_id,
                ifindex: e.ifindex,
                flags: 0,
                mac: format_mac(&e.mac),
                node_mac: format_mac(&e.node_mac),
                sec_id: e.identity,
            })
            .collect(),
    ))
}

async fn map_metrics(State(s): S) -> R<Vec<MetricsMapEntry>> {
    let rows = s.dataplane.metrics().map_err(|e| internal(e.to_string()))?;
    Ok(Json(
        rows.into_iter()
            .map(|m| MetricsMapEntry {
                reason: if m.reason == 0 {
                    "FORWARDED".into()
                } else {
                    reason_name(m.reason)
                },
                direction: direction_name(m.direction).into(),
                packets: m.packets,
                bytes: m.bytes,
            })
            .collect(),
    ))
}

async fn not_found() -> HttpError {
    HttpError(
        StatusCode::NOT_FOUND,
        ApiError {
            code: 0,
            message: "no such API endpoint".into(),
        },
    )
}

/// The REST router.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/healthz", get(healthz))
        .route("/v1/cni/add", post(cni_add))
        .route("/v1/cni/del", post(cni_del))
        .route("/v1/cni/check", post(cni_check))
        .route("/v1/cni/gc", post(cni_gc))
        .route("/v1/status", get(status_handler))
        .route("/v1/config", get(config_handler))
        .route("/v1/endpoint", get(endpoint_list))
        .route("/v1/ip", get(ip_list))
        .route("/v1/map/ipcache", get(map_ipcache))
        .route("/v1/map/endpoint", get(map_endpoint))
        .route("/v1/map/metrics", get(map_metrics))
        .fallback(not_found)
        .with_state(state)
}

/// Bind the unix socket: parent created, stale socket removed, mode 0660.
pub fn bind_unix(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let l = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(l)
}

/// Serve the REST API until the task is aborted.
pub async fn serve_unix(listener: tokio::net::UnixListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}

/// Serve `/metrics` on `addr`; `scrape` renders the text on every scrape.
pub async fn serve_metrics(
    addr: SocketAddr,
    scrape: Arc<dyn Fn() -> String + Send + Sync>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let scrape = scrape.clone();
            async move {
                let text = scrape();
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_statuses_and_codes() {
        let e = |err: EndpointError| {
            let HttpError(status, api) = HttpError::from(err);
            (status, api.code, api.message)
        };
        let m = || "why".to_string();
        assert_eq!(
            e(EndpointError::InvalidRequest(m())),
            (StatusCode::BAD_REQUEST, codes::INVALID_ENV, m())
        );
        assert_eq!(
            e(EndpointError::UnknownEndpoint(m())).0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            e(EndpointError::Exhausted(m())),
            (StatusCode::SERVICE_UNAVAILABLE, codes::IPAM_EXHAUSTED, m())
        );
        assert_eq!(
            e(EndpointError::Link(m())),
            (StatusCode::INTERNAL_SERVER_ERROR, codes::LINK, m())
        );
        assert_eq!(e(EndpointError::Datapath(m())).1, codes::DATAPATH);
        assert_eq!(e(EndpointError::CheckFailed(m())).0, StatusCode::CONFLICT);
    }

    #[test]
    fn ipcache_rows_in_upstream_format() {
        let e = |t: Option<&str>| IpcacheEntry {
            identity: 2,
            tunnel_endpoint: t.map(|t| t.parse().unwrap()),
            encrypt_key: 0,
        };
        let tunnelled = ipcache_map_entry("10.0.1.0/24".parse().unwrap(), &e(Some("192.168.1.11")));
        assert_eq!(tunnelled.prefix, "10.0.1.0/24");
        assert_eq!(tunnelled.identity, 2);
        assert_eq!(tunnelled.tunnel_endpoint, "192.168.1.11");
        assert_eq!(tunnelled.flags, "hastunnel");
        let plain = ipcache_map_entry("10.1.5.236/32".parse().unwrap(), &e(None));
        assert_eq!(plain.tunnel_endpoint, "0.0.0.0");
        assert_eq!(plain.flags, "<none>");
    }

    #[test]
    fn ip_list_host_is_the_tunnel_endpoint() {
        let row = |prefix: &str, host: Option<&str>, tep: Option<&str>| IpcacheRow {
            prefix: prefix.parse().unwrap(),
            identity: 2,
            source: crate::ipcache::Source::NodeResource,
            host_ip: host.map(|h| h.parse().unwrap()),
            tunnel_endpoint: tep.map(|t| t.parse().unwrap()),
            labels: vec![],
        };
        let rows = [
            row("0.0.0.0/0", None, None),
            row(
                "172.20.1.0/24",
                Some("192.168.10.101"),
                Some("192.168.10.101"),
            ),
            row("172.20.9.0/24", None, Some("192.168.10.109")),
        ];
        let hosts: Vec<Option<String>> = ip_entries(&rows).into_iter().map(|e| e.host_ip).collect();
        assert_eq!(
            hosts,
            vec![
                None,
                Some("192.168.10.101".to_string()),
                Some("192.168.10.109".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn socket_is_replaced_and_mode_0660() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/cilium.sock");
        let a = bind_unix(&path).unwrap();
        drop(a);
        let _b = bind_unix(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
    }
}
