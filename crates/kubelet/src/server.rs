//! The kubelet's streaming server: HTTP/1.1 on a unix socket in the
//! node's state directory ([`crate::SOCKET_FILE`]), which the API
//! server's proxy dials for `pods/log`, `pods/exec` and `pods/attach`,
//! with the paths of the real kubelet:
//!
//! ```text
//!  GET      /containerLogs/<ns>/<pod>/<container>?follow&tailLines&limitBytes   text/plain, chunked
//!  GET|POST /exec/<ns>/<pod>/<container>?command=..&stdin&stdout&stderr&tty   101 -> WebSocket
//!  GET|POST /attach/<ns>/<pod>/<container>?stdin&stdout&stderr                101 -> WebSocket
//!  GET      /healthz
//! ```
//!
//! WebSocket sessions speak `v5.channel.k8s.io` or `v4.channel.k8s.io`
//! ([`crate::remotecommand`]); SPDY is refused. Errors are `Status`
//! objects, which the API server passes through to the client. Commands
//! run in the pod's namespaces through the sandbox helper, like
//! `cilium-lab exec`. A session runs inside its connection's task, so
//! dropping [`serve`] ends every connection and session.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::error::Context as _;
use crate::logs::{LogOptions, LogSource};
use crate::remotecommand::{Channels, Protocol, StreamOptions};
use crate::sandbox::{ContainerRecord, PodSandbox, SandboxArgs};
use crate::{Ctx, Error};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Sessions started on a connection, run by its task once it upgraded.
type Sessions = mpsc::UnboundedSender<BoxFuture<'static, ()>>;

/// A refused request, answered with a `Status`.
#[derive(Debug)]
struct Refusal {
    code: StatusCode,
    message: String,
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    fn response(&self) -> Response<Body> {
        let reason = match self.code {
            StatusCode::BAD_REQUEST => "BadRequest",
            StatusCode::NOT_FOUND => "NotFound",
            _ => "InternalError",
        };
        let status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": reason,
            "code": self.code.as_u16(),
        });
        reply(self.code, "application/json", full(status.to_string()))
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(m) => Self::not_found(m),
            e => Self {
                code: StatusCode::INTERNAL_SERVER_ERROR,
                message: e.to_string(),
            },
        }
    }
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).boxed_unsync()
}

fn reply(code: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Listen on `path` (replacing a stale socket).
pub(crate) fn bind(path: &Path) -> Result<UnixListener, Error> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove {}", path.display()));
        }
        _ => {}
    }
    UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))
}

/// Serve connections on `listener` until dropped.
pub(crate) async fn serve(ctx: Arc<Ctx>, listener: UnixListener) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(ctx.clone(), stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a streaming connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// One connection: HTTP requests, then the session it was upgraded to.
async fn connection(ctx: Arc<Ctx>, stream: UnixStream) {
    let (tx, mut sessions) = mpsc::unbounded_channel();
    let service = hyper::service::service_fn(move |req| {
        let (ctx, tx) = (ctx.clone(), tx.clone());
        async move { Ok::<_, Infallible>(respond(&ctx, req, &tx).await) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await
    {
        tracing::debug!(error = %e, "streaming connection ended");
    }
    while let Some(session) = sessions.recv().await {
        session.await;
    }
}

async fn respond(ctx: &Ctx, req: Request<Incoming>, sessions: &Sessions) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let result = match (req.method(), segments.as_slice()) {
        (&Method::GET, ["healthz"]) => Ok(reply(StatusCode::OK, "text/plain", full("ok"))),
        (&Method::GET, ["containerLogs", ns, pod, container]) => {
            logs(ctx, Target { ns, pod, container }, &query).await
        }
        (&Method::GET | &Method::POST, [verb @ ("exec" | "attach"), ns, pod, container]) => {
            let target = Target { ns, pod, container };
            upgrade(ctx, req, *verb == "exec", target, &query, sessions).await
        }
        _ => Err(Refusal::not_found(format!("no such endpoint: {path}"))),
    };
    result.unwrap_or_else(|r| r.response())
}

/// The container a request names.
#[derive(Clone, Copy)]
struct Target<'a> {
    ns: &'a str,
    pod: &'a str,
    container: &'a str,
}

/// The pod of `t` on this node and its container's record.
async fn find(ctx: &Ctx, t: Target<'_>) -> Result<(PodSandbox, ContainerRecord), Refusal> {
    let found = PodSandbox::find(&ctx.store, t.ns, t.pod, |_| ctx.cfg.state_dir.clone()).await?;
    if found.node != ctx.cfg.node {
        return Err(Refusal::not_found(format!(
            "pod {}/{} runs on {}, not on {}",
            t.ns, t.pod, found.node, ctx.cfg.node
        )));
    }
    let in_spec = found
        .pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .any(|c| c.name == t.container);
    if !in_spec {
        return Err(Refusal::bad_request(format!(
            "container {} is not valid for pod {}",
            t.container, t.pod
        )));
    }
    let record = found
        .record
        .containers
        .iter()
        .find(|c| c.name == t.container)
        .cloned()
        .ok_or_else(|| {
            Refusal::bad_request(format!(
                "container \"{}\" in pod \"{}\" is waiting to start",
                t.container, t.pod
            ))
        })?;
    Ok((found, record))
}

/// `containerLogs`: the log as a (chunked, with follow open-ended) body.
async fn logs(ctx: &Ctx, target: Target<'_>, query: &str) -> Result<Response<Body>, Refusal> {
    let opts = LogOptions::parse(query).map_err(Refusal::bad_request)?;
    let (_, c) = find(ctx, target).await?;
    let source = LogSource {
        path: c.log,
        process: c.process,
    };
    let chunks = crate::logs::stream(source, opts).await.map_err(|e| {
        Refusal::from(Error::Failed(format!(
            "cannot read the log of container {}: {e}",
            target.container
        )))
    })?;
    let body = StreamBody::new(chunks.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    Ok(reply(StatusCode::OK, "text/plain", body.boxed_unsync()))
}

/// Every value of a header, comma-joined.
fn header_values(req: &Request<Incoming>, name: header::HeaderName) -> Vec<&str> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

fn has_token(values: &[&str], token: &str) -> bool {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// `exec` and `attach`: check the request, answer 101 and queue the
/// session that runs on the upgraded connection.
async fn upgrade(
    ctx: &Ctx,
    mut req: Request<Incoming>,
    exec: bool,
    target: Target<'_>,
    query: &str,
    sessions: &Sessions,
) -> Result<Response<Body>, Refusal> {
    let opts = StreamOptions::parse(query, exec).map_err(Refusal::bad_request)?;
    // The pod's errors first: a client falling back to SPDY sees them too.
    let (found, container) = find(ctx, target).await?;
    let session = if exec {
        if !container.process.is_some_and(|p| p.alive()) {
            return Err(Refusal::bad_request(format!(
                "container {} in pod {} is not running",
                target.container, target.pod
            )));
        }
        let args = SandboxArgs {
            tty: opts.tty,
            ..found.exec_args(&ctx.cfg.cgroup, opts.command.clone())
        };
        let mut cmd = tokio::process::Command::new(&ctx.cfg.self_exe);
        cmd.args(args.command_line());
        Session::Exec(opts, cmd)
    } else if opts.tty {
        return Err(Refusal::bad_request(format!(
            "Unable to use a TTY - container {} did not allocate one",
            target.container
        )));
    } else {
        Session::Attach(LogSource {
            path: container.log,
            process: container.process,
        })
    };
    let upgrade_to = header_values(&req, header::UPGRADE);
    if upgrade_to
        .iter()
        .any(|u| u.to_ascii_lowercase().starts_with("spdy"))
    {
        return Err(Refusal::bad_request(
            "SPDY is not supported: use a WebSocket client (kubectl 1.30 or later, kube-rs) \
             speaking v5.channel.k8s.io or v4.channel.k8s.io",
        ));
    }
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()));
    let (true, true, Some(accept)) = (
        has_token(&header_values(&req, header::CONNECTION), "upgrade"),
        has_token(&upgrade_to, "websocket"),
        key,
    ) else {
        return Err(Refusal::bad_request("Upgrade request required"));
    };
    let offered = header_values(&req, header::SEC_WEBSOCKET_PROTOCOL);
    let protocol = Protocol::negotiate(offered.iter().copied()).ok_or_else(|| {
        Refusal::bad_request(format!(
            "unable to upgrade connection: none of the offered subprotocols {offered:?} \
             is supported (v5.channel.k8s.io, v4.channel.k8s.io)"
        ))
    })?;
    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_PROTOCOL, protocol.name())
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(full(""))
        .map_err(|e| {
            Refusal::from(Error::Failed(format!(
                "cannot build the upgrade response: {e}"
            )))
        })?;
    tracing::info!(
        pod = %format!("{}/{}", target.ns, target.pod),
        container = target.container,
        session = ?session,
        protocol = protocol.name(),
        "streaming session"
    );
    let on_upgrade = hyper::upgrade::on(&mut req);
    let _ = sessions.send(Box::pin(async move {
        if let Some(chan) = channels(on_upgrade, protocol).await {
            session.run(chan).await;
        }
    }));
    Ok(response)
}

/// What runs on an upgraded connection.
enum Session {
    /// A command in the pod.
    Exec(StreamOptions, tokio::process::Command),
    /// The container's output.
    Attach(LogSource),
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exec(opts, _) => write!(f, "exec {:?} (tty: {})", opts.command, opts.tty),
            Self::Attach(_) => write!(f, "attach"),
        }
    }
}

impl Session {
    async fn run<S>(self, chan: Channels<S>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        match self {
            Self::Exec(opts, cmd) => crate::exec::run(chan, opts, cmd).await,
            Self::Attach(source) => crate::logs::attach(chan, source).await,
        }
    }
}

/// The WebSocket on an upgraded connection.
async fn channels(
    on_upgrade: hyper::upgrade::OnUpgrade,
    protocol: Protocol,
) -> Option<Channels<TokioIo<hyper::upgrade::Upgraded>>> {
    match on_upgrade.await {
        Ok(io) => {
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
            Some(Channels::new(ws, protocol))
        }
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            None
        }
    }
}
