//! The lab's Kubernetes API server: a subset of the real one, served over
//! HTTPS and backed by the cluster store (etcd), that real `kubectl` and
//! kube-rs clients use unchanged.
//!
//! ```text
//!  TLS (lab CA) ─► authn (client cert CN/O, service-account token) ─► RBAC
//!      ─► route: /version, discovery, /openapi/v3, resources
//!      ─► verbs: get list watch create update patch delete deletecollection
//!      ─► store (etcd): resourceVersion = store revision; watches share
//!         one store watch per kind (feeds)
//!      ─► pods/log, pods/exec, pods/attach: proxied to the node's kubelet
//! ```
//!
//! Pure parts live in their own modules (tables, patches, authorization);
//! the request handling at the edge.

pub mod access;
pub mod authn;
pub mod bootstrap;
pub mod crds;
pub mod discovery;
pub mod feeds;
pub mod kubernetes_service;
pub mod openapi;
pub mod patch;
pub mod paths;
pub mod proxy;
pub mod query;
pub mod rbac;
pub mod render;
pub mod resources;
pub mod status;
pub mod table;
pub mod watch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use store::Store;

use paths::Route;
use status::{ApiError, ApiResult};

/// Largest request body accepted (the API server's limit).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how the API server listens.
pub struct ServerConfig {
    /// Listen address (`192.168.10.100:6443`).
    pub listen: SocketAddr,
    /// Also listen on this unix socket (the lab forwards the host's
    /// loopback port to it); the same TLS is spoken there.
    pub unix: Option<std::path::PathBuf>,
    /// The address clients are told to use (`/api`'s
    /// `serverAddressByClientCIDRs`).
    pub advertise: String,
    /// TLS: the serving certificate and the client CA.
    pub tls: Arc<rustls::ServerConfig>,
    /// Issues and verifies service-account tokens.
    pub tokens: authn::ServiceAccountTokens,
    /// The `default/kubernetes` Service to maintain, if any.
    pub kubernetes_service: Option<kubernetes_service::KubernetesService>,
    /// A node's kubelet socket, `{node}` standing for the node name
    /// (`pods/log`, `pods/exec` and `pods/attach` are proxied there).
    pub kubelet_socket: Option<String>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("advertise", &self.advertise)
            .finish_non_exhaustive()
    }
}

/// A response before it is encoded.
pub enum Reply {
    /// A JSON body with a status code.
    Json(u16, Value),
    /// A JSON body with its own Content-Type.
    Typed(u16, String, Value),
    /// A streamed body (watches).
    Stream(BoxStream<'static, Bytes>),
    /// A complete response (proxied from a kubelet).
    Proxied(Response<Body>),
}

impl Reply {
    /// 200 with a JSON body.
    pub fn ok(value: Value) -> Self {
        Self::Json(200, value)
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

struct Server {
    store: Store,
    /// The kinds' shared watch feeds.
    feeds: feeds::Feeds,
    advertise: String,
    access: access::Access,
    kubelet_socket: Option<String>,
}

/// Serve the API until the listener fails. Every connection is TLS; the
/// client certificate (when presented) names the caller.
pub async fn serve(store: Store, config: ServerConfig) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let unix = match &config.unix {
        Some(path) => {
            let _ = std::fs::remove_file(path);
            Some(tokio::net::UnixListener::bind(path)?)
        }
        None => None,
    };
    let access = access::Access::new(
        store.clone(),
        authn::Authenticator::new(config.tokens, false),
    );
    // The store may not be up yet: keep trying in the background.
    let bootstrap_store = store.clone();
    tokio::spawn(async move {
        toolkit::retry("storing the CustomResourceDefinitions", || {
            crds::ensure(&bootstrap_store)
        })
        .await;
    });
    access.start();
    tracing::info!(listen = %config.listen, unix = ?config.unix, "API server listening");
    let acceptor = tokio_rustls::TlsAcceptor::from(config.tls.clone());
    let server = Arc::new(Server {
        feeds: feeds::Feeds::new(store.clone()),
        store,
        advertise: config.advertise.clone(),
        access,
        kubelet_socket: config.kubelet_socket.clone(),
    });
    let tcp_loop = async {
        loop {
            let (tcp, _) = listener.accept().await?;
            spawn_connection(server.clone(), acceptor.clone(), tcp);
        }
    };
    let unix_loop = async {
        match &unix {
            Some(unix) => loop {
                let (stream, _) = unix.accept().await?;
                spawn_connection(server.clone(), acceptor.clone(), stream);
            },
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = tcp_loop => r,
        r = unix_loop => r,
    }
}

fn spawn_connection<S>(server: Arc<Server>, acceptor: tokio_rustls::TlsAcceptor, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection(server, acceptor, stream).await {
            tracing::debug!(error = %e, "API connection ended");
        }
    });
}

async fn connection<S>(
    server: Arc<Server>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: S,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await??;
    let certificate: Option<Arc<[u8]>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| Arc::from(cert.as_ref()));
    let service = hyper::service::service_fn(move |req| {
        let (server, certificate) = (server.clone(), certificate.clone());
        async move { Ok::<_, Infallible>(server.respond(certificate.as_deref(), req).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades()
        .await?;
    Ok(())
}

impl Server {
    async fn respond(&self, certificate: Option<&[u8]>, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let credentials = authn::Credentials {
            client_certificate: certificate,
            authorization: authorization.as_deref(),
        };
        let reply = match self.access.authenticate(&credentials).await {
            Ok(user) => self.handle(&user, req).await,
            Err(e) => Err(e),
        };
        let reply = reply.unwrap_or_else(|e| {
            if e.code >= 500 {
                tracing::warn!(%method, %path, code = e.code, message = %e.message, "API request failed");
            }
            Reply::Json(e.code, e.to_status())
        });
        encode(reply)
    }

    async fn handle(&self, user: &authn::UserInfo, req: Request<Incoming>) -> ApiResult<Reply> {
        let route = paths::route(req.uri().path()).ok_or_else(ApiError::no_route)?;
        if !matches!(route, Route::Resource(_)) {
            self.access.authorize_path(user, req.uri().path())?;
        }
        let header = |name: header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let accept = header(header::ACCEPT);
        match route {
            Route::Version => Ok(Reply::ok(discovery::version())),
            Route::Health => Ok(Reply::Typed(
                200,
                "text/plain".into(),
                Value::String("ok".into()),
            )),
            Route::CoreVersions | Route::Groups => {
                let core = route == Route::CoreVersions;
                Ok(match discovery::aggregated_version(&accept) {
                    Some(v) => Reply::Typed(
                        200,
                        discovery::aggregated_content_type(v),
                        discovery::aggregated(core, v),
                    ),
                    None if core => Reply::ok(discovery::core_versions(&self.advertise)),
                    None => Reply::ok(discovery::group_list()),
                })
            }
            Route::Group(g) => discovery::group(&g)
                .map(Reply::ok)
                .ok_or_else(ApiError::no_route),
            Route::Resources { group, version } => discovery::resource_list(&group, &version)
                .map(Reply::ok)
                .ok_or_else(ApiError::no_route),
            Route::OpenApiIndex => Ok(Reply::ok(openapi::index())),
            Route::OpenApiDocument(gv) => openapi::document(&gv)
                .map(Reply::ok)
                .ok_or_else(ApiError::no_route),
            Route::OpenApiV2 => Err(ApiError::no_route()),
            Route::Resource(path) => {
                let query = query::Query::parse(req.uri().query())?;
                let verb = paths::verb(req.method(), &path, query.watch);
                self.access.authorize(
                    user,
                    verb,
                    rbac::ResourceAttributes {
                        api_group: path.kind.ty.group,
                        resource: path.kind.ty.plural,
                        subresource: path.subresource.as_deref().unwrap_or(""),
                        namespace: path.namespace.as_deref().unwrap_or(""),
                        name: path.name.as_deref().unwrap_or(""),
                    },
                )?;
                if proxy::proxied(&path) {
                    let socket = self.kubelet_socket.as_deref();
                    return proxy::forward(&self.store, socket, &path, &query, req)
                        .await
                        .map(Reply::Proxied);
                }
                if verb == "watch" {
                    query.check_fields(&path.kind.ty)?;
                    let shape = render::Shape::of(&accept, &query)?;
                    let stream = watch::start(
                        &self.store,
                        &self.feeds,
                        watch::WatchRequest {
                            ty: &path.kind.ty,
                            version: path.version.clone(),
                            namespace: path.namespace.clone(),
                            query,
                            shape,
                        },
                    )
                    .await?;
                    return Ok(Reply::Stream(stream));
                }
                let content_type = header(header::CONTENT_TYPE);
                let body = read_body(req.into_body(), req_method_has_body(verb)).await?;
                resources::handle(
                    &self.store,
                    resources::ResourceRequest {
                        path,
                        verb,
                        query,
                        content_type,
                        accept,
                        body,
                    },
                )
                .await
            }
        }
    }
}

fn req_method_has_body(verb: &str) -> bool {
    !matches!(verb, "get" | "list" | "watch")
}

async fn read_body(body: Incoming, wanted: bool) -> ApiResult<Bytes> {
    if !wanted {
        return Ok(Bytes::new());
    }
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))
}

fn encode(reply: Reply) -> Response<Body> {
    let (code, content_type, body): (u16, String, Body) = match reply {
        Reply::Proxied(response) => return response,
        Reply::Json(code, value) => (code, "application/json".into(), json_body(&value)),
        Reply::Typed(code, content_type, Value::String(text)) => (
            code,
            content_type,
            Full::new(Bytes::from(text)).boxed_unsync(),
        ),
        Reply::Typed(code, content_type, value) => (code, content_type, json_body(&value)),
        Reply::Stream(stream) => (
            200,
            "application/json".into(),
            BodyExt::boxed_unsync(StreamBody::new(
                stream.map(|b| Ok::<_, Infallible>(Frame::data(b))),
            )),
        ),
    };
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
        .header("Cache-Control", "no-cache, private")
        .body(body)
        .expect("static response parts are valid")
}

fn json_body(value: &Value) -> Body {
    Full::new(Bytes::from(value.to_string())).boxed_unsync()
}
