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
use datapath::net::format_mac;
use tokio::sync::watch;

use crate::cni::{Endpoints, Plumbing, codes};
use crate::config::AgentConfig;
use crate::ipcache::IpcacheTable;
use crate::metrics::{MetricsSnapshot, direction_name, reason_name};
use crate::status::{self, StatusInputs};

/// Read access to the BPF maps, for the `/v1/map/*` routes and metrics.
pub trait MapReader: Send + Sync + 'static {
    /// `cilium_lxc`.
    fn lxc_dump(&self) -> Result<Vec<(std::net::Ipv4Addr, datapath::EndpointInfo)>, String>;
    /// `cilium_ipcache_v2`.
    fn ipcache_dump(&self) -> Result<Vec<(ipnet::Ipv4Net, datapath::IpcacheEntry)>, String>;
    /// `cilium_metrics`.
    fn metrics_dump(&self) -> Result<Vec<(datapath::MetricsKey, datapath::MetricsValue)>, String>;
}

impl MapReader for crate::plumbing::RealPlumbing {
    fn lxc_dump(&self) -> Result<Vec<(std::net::Ipv4Addr, datapath::EndpointInfo)>, String> {
        self.with_datapath(|dp| dp.lxc_dump())
            .map_err(|e| e.to_string())
    }
    fn ipcache_dump(&self) -> Result<Vec<(ipnet::Ipv4Net, datapath::IpcacheEntry)>, String> {
        self.with_datapath(|dp| dp.ipcache_dump())
            .map_err(|e| e.to_string())
    }
    fn metrics_dump(&self) -> Result<Vec<(datapath::MetricsKey, datapath::MetricsValue)>, String> {
        self.with_datapath(|dp| dp.metrics_dump())
            .map_err(|e| e.to_string())
    }
}

/// Everything the handlers read.
pub struct ApiState<P: Plumbing> {
    /// Node name.
    pub node_name: String,
    /// Validated config.
    pub config: Arc<AgentConfig>,
    /// Endpoint manager.
    pub endpoints: Arc<Endpoints<P>>,
    /// The desired ipcache.
    pub ipcache: watch::Receiver<IpcacheTable>,
    /// Map access.
    pub maps: Arc<dyn MapReader>,
    /// Status facts maintained by the daemon.
    pub status: Arc<Mutex<StatusInputs>>,
}

/// An error response.
#[derive(Debug)]
pub struct HttpError(pub StatusCode, pub ApiError);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        let status = match e.code {
            codes::INVALID_ENV | 6 | 7 => StatusCode::BAD_REQUEST,
            codes::UNKNOWN_CONTAINER => StatusCode::NOT_FOUND,
            codes::CHECK_FAILED => StatusCode::CONFLICT,
            codes::TRY_AGAIN | codes::IPAM_EXHAUSTED => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        HttpError(status, e)
    }
}

fn body<T>(r: Result<Json<T>, JsonRejection>) -> Result<T, HttpError> {
    r.map(|Json(t)| t).map_err(|e| {
        HttpError(
            StatusCode::BAD_REQUEST,
            ApiError {
                code: 6,
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

type S<P> = State<Arc<ApiState<P>>>;
type R<T> = Result<Json<T>, HttpError>;

async fn healthz<P: Plumbing>(State(s): S<P>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        node: s.node_name.clone(),
    })
}

async fn cni_add<P: Plumbing>(
    State(s): S<P>,
    req: Result<Json<CniAddRequest>, JsonRejection>,
) -> R<CniAddResponse> {
    let req = body(req)?;
    Ok(Json(s.endpoints.add(&req).await?))
}

async fn cni_del<P: Plumbing>(
    State(s): S<P>,
    req: Result<Json<CniDelRequest>, JsonRejection>,
) -> Result<StatusCode, HttpError> {
    let req = body(req)?;
    s.endpoints.del(&req).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn cni_check<P: Plumbing>(
    State(s): S<P>,
    req: Result<Json<CniCheckRequest>, JsonRejection>,
) -> Result<StatusCode, HttpError> {
    let req = body(req)?;
    s.endpoints.check(&req).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn cni_gc<P: Plumbing>(
    State(s): S<P>,
    req: Result<Json<CniGcRequest>, JsonRejection>,
) -> R<CniGcResponse> {
    let req = body(req)?;
    let removed = s.endpoints.gc(&req.valid).await?;
    Ok(Json(CniGcResponse { removed }))
}

async fn status_handler<P: Plumbing>(State(s): S<P>) -> Json<StatusResponse> {
    let snap = s.endpoints.subscribe().borrow().clone();
    let inputs = s.status.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Json(status::render(&s.config, &snap, &inputs))
}

async fn config_handler<P: Plumbing>(State(s): S<P>) -> Json<BTreeMap<String, String>> {
    Json(s.config.effective.clone())
}

async fn endpoint_list<P: Plumbing>(State(s): S<P>) -> Json<Vec<EndpointModel>> {
    let snap = s.endpoints.subscribe().borrow().clone();
    Json(snap.endpoints.iter().map(|e| e.model()).collect())
}

/// The rows of `cilium-dbg ip list`.
pub fn ip_entries(table: &IpcacheTable) -> Vec<IpEntry> {
    table
        .iter()
        .map(|(prefix, row)| {
            let labels = if row.labels.is_empty() {
                identity::Labels::reserved(row.identity)
                    .map(|l| l.to_strings())
                    .unwrap_or_default()
            } else {
                row.labels.clone()
            };
            IpEntry {
                prefix: prefix.to_string(),
                identity: row.identity,
                labels,
                source: row.source.as_str().to_string(),
                host_ip: row.tunnel_endpoint.or(row.host_ip).map(|ip| ip.to_string()),
            }
        })
        .collect()
}

async fn ip_list<P: Plumbing>(State(s): S<P>) -> Json<Vec<IpEntry>> {
    let table = s.ipcache.borrow().clone();
    Json(ip_entries(&table))
}

/// A `cilium_ipcache_v2` row as `cilium-dbg bpf ipcache list` prints it:
/// `tunnelendpoint=0.0.0.0 flags=<none>` without a tunnel endpoint,
/// `tunnelendpoint=<node ip> flags=hastunnel` with one.
pub fn ipcache_map_entry(prefix: ipnet::Ipv4Net, e: &datapath::IpcacheEntry) -> IpcacheMapEntry {
    IpcacheMapEntry {
        prefix: prefix.to_string(),
        identity: e.sec_identity,
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

async fn map_ipcache<P: Plumbing>(State(s): S<P>) -> R<Vec<IpcacheMapEntry>> {
    let rows = s.maps.ipcache_dump().map_err(internal)?;
    Ok(Json(
        rows.iter().map(|(p, e)| ipcache_map_entry(*p, e)).collect(),
    ))
}

async fn map_endpoint<P: Plumbing>(State(s): S<P>) -> R<Vec<LxcMapEntry>> {
    let rows = s.maps.lxc_dump().map_err(internal)?;
    Ok(Json(
        rows.into_iter()
            .map(|(ip, e)| LxcMapEntry {
                ip: ip.to_string(),
                id: e.lxc_id,
                ifindex: e.ifindex,
                flags: e.flags,
                mac: format_mac(&e.mac),
                node_mac: format_mac(&e.node_mac),
                sec_id: e.sec_id,
            })
            .collect(),
    ))
}

async fn map_metrics<P: Plumbing>(State(s): S<P>) -> R<Vec<MetricsMapEntry>> {
    let rows = s.maps.metrics_dump().map_err(internal)?;
    Ok(Json(
        rows.into_iter()
            .map(|(k, v)| MetricsMapEntry {
                reason: if k.reason == 0 {
                    "FORWARDED".into()
                } else {
                    reason_name(k.reason)
                },
                direction: direction_name(k.dir).into(),
                packets: v.count,
                bytes: v.bytes,
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
pub fn router<P: Plumbing>(state: Arc<ApiState<P>>) -> Router {
    Router::new()
        .route("/v1/healthz", get(healthz::<P>))
        .route("/v1/cni/add", post(cni_add::<P>))
        .route("/v1/cni/del", post(cni_del::<P>))
        .route("/v1/cni/check", post(cni_check::<P>))
        .route("/v1/cni/gc", post(cni_gc::<P>))
        .route("/v1/status", get(status_handler::<P>))
        .route("/v1/config", get(config_handler::<P>))
        .route("/v1/endpoint", get(endpoint_list::<P>))
        .route("/v1/ip", get(ip_list::<P>))
        .route("/v1/map/ipcache", get(map_ipcache::<P>))
        .route("/v1/map/endpoint", get(map_endpoint::<P>))
        .route("/v1/map/metrics", get(map_metrics::<P>))
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

/// Serve `/metrics` on `addr`; `snapshot` is called on every scrape.
pub async fn serve_metrics(
    addr: SocketAddr,
    snapshot: Arc<dyn Fn() -> MetricsSnapshot + Send + Sync>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let snapshot = snapshot.clone();
            async move {
                let text = crate::metrics::render(&snapshot());
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
    fn error_statuses() {
        let e = |code| {
            HttpError::from(ApiError {
                code,
                message: String::new(),
            })
            .0
        };
        assert_eq!(e(codes::INVALID_ENV), StatusCode::BAD_REQUEST);
        assert_eq!(e(codes::UNKNOWN_CONTAINER), StatusCode::NOT_FOUND);
        assert_eq!(e(codes::IPAM_EXHAUSTED), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e(codes::LINK), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn ipcache_rows_in_upstream_format() {
        let e = |t: Option<&str>| datapath::IpcacheEntry {
            sec_identity: 2,
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
        let row = |host: Option<&str>, tep: Option<&str>| crate::ipcache::IpcacheRow {
            identity: 2,
            source: crate::ipcache::Source::NodeResource,
            host_ip: host.map(|h| h.parse().unwrap()),
            tunnel_endpoint: tep.map(|t| t.parse().unwrap()),
            labels: vec![],
        };
        let table: IpcacheTable = [
            (
                "172.20.1.0/24".parse().unwrap(),
                row(Some("192.168.10.101"), Some("192.168.10.101")),
            ),
            (
                "172.20.9.0/24".parse().unwrap(),
                row(None, Some("192.168.10.109")),
            ),
            ("0.0.0.0/0".parse().unwrap(), row(None, None)),
        ]
        .into();
        let hosts: Vec<Option<String>> =
            ip_entries(&table).into_iter().map(|e| e.host_ip).collect();
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
