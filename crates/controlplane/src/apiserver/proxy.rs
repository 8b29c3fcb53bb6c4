//! `pods/log`, `pods/exec` and `pods/attach`: the API server proxies them
//! to the kubelet of the pod's node, as the real one does.
//!
//! ```text
//!  client ── GET …/pods/P/exec?command=…  (Upgrade: websocket) ──> look up P, choose its container
//!         ── dial the node's kubelet (unix socket, `{node}` pattern)
//!         ── GET /exec/NS/P/C?command=…   (same upgrade headers) ──> kubelet
//!  client <── 101 + the kubelet's headers <──────────────────────── 101
//!  client <══ bytes both ways (copy_bidirectional) ═══════════════> kubelet
//! ```
//!
//! Logs are a plain request (`/containerLogs/NS/P/C`) whose body is
//! streamed through. The kubelet speaks the protocols (WebSocket
//! `v5.channel.k8s.io`, and refuses SPDY); non-101 answers, its `Status`
//! errors included, reach the client unchanged.

use std::convert::Infallible;

use api::k8s_openapi::api::core::v1::Pod;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, BodyStream, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use store::Store;

use super::Body;
use super::paths::ResourcePath;
use super::query::Query;
use super::status::{ApiError, ApiResult};

/// The annotation naming the container `logs` and `exec` default to.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// Request headers the kubelet needs (the upgrade handshake).
const FORWARDED: [header::HeaderName; 6] = [
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_PROTOCOL,
    header::HeaderName::from_static("x-stream-protocol-version"),
];

/// Whether the kubelet serves `path` (a pod's `log`, `exec` or `attach`).
pub fn proxied(path: &ResourcePath) -> bool {
    path.kind.ty.kind == "Pod"
        && path.name.is_some()
        && matches!(path.subresource.as_deref(), Some("log" | "exec" | "attach"))
}

/// The container a request is for: `requested`, else the one the pod's
/// default-container annotation names, else its only one.
pub fn choose_container(pod: &Pod, requested: Option<&str>) -> ApiResult<String> {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let names: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| c.name.as_str())
        .collect();
    if let Some(c) = requested.filter(|c| !c.is_empty()) {
        return if names.contains(&c) {
            Ok(c.to_string())
        } else {
            Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )))
        };
    }
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        .filter(|c| names.contains(&c.as_str()));
    match (annotated, names.as_slice()) {
        (Some(c), _) => Ok(c.clone()),
        (None, [only]) => Ok((*only).to_string()),
        (None, []) => Err(ApiError::bad_request(format!(
            "pod {name} does not have a container"
        ))),
        (None, many) => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            many.join(" ")
        ))),
    }
}

/// The kubelet path of a request: `/containerLogs|exec|attach/NS/POD/C`
/// with the client's query.
fn kubelet_uri(sub: &str, ns: &str, pod: &str, container: &str, query: Option<&str>) -> String {
    let endpoint = if sub == "log" { "containerLogs" } else { sub };
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("/{endpoint}/{ns}/{pod}/{container}{query}")
}

/// Forward a proxied request (see [`proxied`]) to the kubelet of the
/// pod's node, whose socket is `kubelet_socket` with `{node}` replaced.
pub(super) async fn forward(
    store: &Store,
    kubelet_socket: Option<&str>,
    path: &ResourcePath,
    query: &Query,
    mut req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let ty = &path.kind.ty;
    let sub = path.subresource.as_deref().unwrap_or("");
    let (ns, name) = (
        path.namespace.as_deref().unwrap_or("default"),
        path.name.as_deref().unwrap_or(""),
    );
    let allowed = match sub {
        "log" => req.method() == Method::GET,
        _ => req.method() == Method::GET || req.method() == Method::POST,
    };
    if !allowed {
        return Err(ApiError::method_not_allowed(
            req.method().as_str(),
            &format!("pods/{sub}"),
        ));
    }
    let pod = store
        .get::<Pod>(Some(ns), name)
        .await
        .map_err(|e| ApiError::from_store(ty, name, e))?
        .ok_or_else(|| ApiError::not_found(ty, name))?;
    let container = choose_container(&pod, query.get("container"))?;
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty());
    let node = match node {
        Some(n) => n,
        // Not scheduled yet: no log so far.
        None if sub == "log" => return Ok(plain(StatusCode::OK, Bytes::new())),
        None => {
            return Err(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            )));
        }
    };
    let socket = kubelet_socket
        .map(|p| p.replace("{node}", node))
        .ok_or_else(|| ApiError::internal("no kubelet endpoint is configured"))?;

    let uri = kubelet_uri(sub, ns, name, &container, req.uri().query());
    let mut out = Request::builder()
        .method(req.method().clone())
        .uri(uri)
        .header(header::HOST, "kubelet");
    for h in &FORWARDED {
        for v in req.headers().get_all(h) {
            out = out.header(h, v);
        }
    }
    let out = out
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(format!("cannot build the kubelet request: {e}")))?;
    let client_upgrade = req
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut req));

    let dial_error = |e: &dyn std::fmt::Display| {
        ApiError::internal(format!("error dialing backend: dial unix {socket}: {e}"))
    };
    let stream = tokio::net::UnixStream::connect(&socket)
        .await
        .map_err(|e| dial_error(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| dial_error(&e))?;
    // Ends with the connection: the response body, or the upgraded pipe.
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "kubelet connection ended");
        }
    });
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| ApiError::internal(format!("error talking to the kubelet on {node}: {e}")))?;

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(ApiError::internal(
                "the kubelet switched protocols on a plain request",
            ));
        };
        let kubelet_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, kubelet_upgrade) {
                Ok((client, kubelet)) => {
                    let (mut client, mut kubelet) = (TokioIo::new(client), TokioIo::new(kubelet));
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await;
                }
                Err(e) => tracing::debug!(error = %e, "upgrade to the kubelet failed"),
            }
        });
    }
    let (parts, body) = resp.into_parts();
    let body = if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        Full::new(Bytes::new()).boxed_unsync()
    } else {
        relay(body)
    };
    let mut reply = Response::new(body);
    *reply.status_mut() = parts.status;
    for (k, v) in &parts.headers {
        if k != header::CONTENT_LENGTH && k != header::TRANSFER_ENCODING {
            reply.headers_mut().append(k, v.clone());
        }
    }
    Ok(reply)
}

/// A text/plain response.
fn plain(status: StatusCode, text: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(text).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    r
}

/// The kubelet's response body, chunk by chunk as it arrives; an error
/// ends it.
fn relay(body: Incoming) -> Body {
    let frames = BodyStream::new(body)
        .take_while(|f| std::future::ready(f.is_ok()))
        .filter_map(|f| {
            std::future::ready(
                f.ok()
                    .and_then(|f| f.into_data().ok())
                    .map(|d| Ok::<_, Infallible>(Frame::data(d))),
            )
        });
    StreamBody::new(frames).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::k8s_openapi::api::core::v1::{Container, PodSpec};

    fn pod(containers: &[&str], default: Option<&str>) -> Pod {
        let mut p = Pod {
            spec: Some(PodSpec {
                containers: containers
                    .iter()
                    .map(|c| Container {
                        name: (*c).to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        p.metadata.name = Some("p".into());
        if let Some(d) = default {
            p.metadata.annotations = Some(
                [(DEFAULT_CONTAINER_ANNOTATION.to_string(), d.to_string())]
                    .into_iter()
                    .collect(),
            );
        }
        p
    }

    #[test]
    fn container_choice() {
        let one = pod(&["web"], None);
        assert_eq!(choose_container(&one, None).expect("only"), "web");
        assert_eq!(choose_container(&one, Some("")).expect("only"), "web");
        assert_eq!(choose_container(&one, Some("web")).expect("named"), "web");
        let e = choose_container(&one, Some("nope")).unwrap_err();
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        assert_eq!(e.message, "container nope is not valid for pod p");

        let two = pod(&["a", "b"], None);
        assert_eq!(
            choose_container(&two, None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(
            choose_container(&pod(&["a", "b"], Some("b")), None).expect("annotated"),
            "b"
        );
        assert_eq!(
            choose_container(&pod(&["a", "b"], Some("b")), Some("a")).expect("asked"),
            "a"
        );
        assert!(choose_container(&pod(&["a", "b"], Some("zz")), None).is_err());
        assert_eq!(
            choose_container(&pod(&[], None), None).unwrap_err().message,
            "pod p does not have a container"
        );
    }

    #[test]
    fn kubelet_paths() {
        assert_eq!(
            kubelet_uri(
                "log",
                "default",
                "web",
                "c",
                Some("follow=true&container=c")
            ),
            "/containerLogs/default/web/c?follow=true&container=c"
        );
        assert_eq!(
            kubelet_uri("exec", "ns", "p", "c", Some("command=ls&stdout=true")),
            "/exec/ns/p/c?command=ls&stdout=true"
        );
        assert_eq!(
            kubelet_uri("attach", "ns", "p", "c", None),
            "/attach/ns/p/c"
        );
    }

    #[test]
    fn proxied_paths() {
        let route = |p: &str| match super::super::paths::route(p) {
            Some(super::super::paths::Route::Resource(r)) => r,
            other => panic!("{p}: {other:?}"),
        };
        assert!(proxied(&route("/api/v1/namespaces/default/pods/p/exec")));
        assert!(proxied(&route("/api/v1/namespaces/default/pods/p/log")));
        assert!(proxied(&route("/api/v1/namespaces/default/pods/p/attach")));
        assert!(!proxied(&route("/api/v1/namespaces/default/pods/p/status")));
        assert!(!proxied(&route("/api/v1/namespaces/default/pods/p")));
    }
}
