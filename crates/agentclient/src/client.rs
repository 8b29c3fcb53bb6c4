//! A blocking client of the agent's REST API: hyper's HTTP/1.1 client
//! over the agent's unix socket.
//!
//! One request per connection (`Connection: close`, no pool): each call
//! connects, runs hyper's `client::conn::http1` handshake and reads the
//! whole response on a current-thread tokio runtime made for that call,
//! all within one deadline. The CNI plugin is exec'd once per pod and
//! makes one or two requests, so nothing is kept between calls and the
//! callers need no async runtime of their own. This module owns only the
//! transport and the JSON (de)coding; the routes and their types live in
//! [`crate::types`].

use std::error::Error as StdError;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::{Serialize, de::DeserializeOwned};
use tokio::net::UnixStream;

use crate::ApiError;

/// Where the agent listens on a real node.
pub const DEFAULT_SOCKET_PATH: &str = "/var/run/cilium/cilium.sock";

/// Default time one request may take, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest response body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// How often a connect refused for a full backlog is tried again.
const CONNECT_RETRY: Duration = Duration::from_millis(5);
/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("cilium-agentclient/", env!("CARGO_PKG_VERSION"));

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
    /// The agent did not answer within the client's timeout.
    #[error("the cilium agent at {path} did not answer within {timeout:?}")]
    Timeout {
        /// Socket path.
        path: PathBuf,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The connection failed after it was established (reset, closed early).
    #[error("I/O error talking to the cilium agent at {path}: {source}")]
    Io {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The request body could not be encoded as JSON.
    #[error("cannot encode the request body: {0}")]
    Encode(serde_json::Error),
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
    timeout: Duration,
}

impl Client {
    /// A client for the agent listening on `path`, with [`DEFAULT_TIMEOUT`].
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same client with another timeout for each whole request
    /// (connect, write, read).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The socket path this client talks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `GET path` decoding JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (status, body) = self.request(Method::GET, path, None)?;
        decode(status, &body)
    }

    /// `POST path` with a JSON body; decodes the JSON answer (use `()` for 204).
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(ClientError::Encode)?;
        let (status, body) = self.request(Method::POST, path, Some(body))?;
        decode(status, &body)
    }

    /// One exchange on a fresh connection, on a runtime of its own.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let req = build_request(method, path, body)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        rt.block_on(async {
            tokio::time::timeout(self.timeout, self.exchange(req))
                .await
                .unwrap_or_else(|_| {
                    Err(ClientError::Timeout {
                        path: self.path.clone(),
                        timeout: self.timeout,
                    })
                })
        })
    }

    /// Connect, send `req`, read the whole response.
    async fn exchange(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.transport_error(&e))?;
        // Drives the connection; its failures surface in `send_request` or
        // in the body. Dropped with the runtime at the end of the call.
        tokio::spawn(conn);
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| self.transport_error(&*e))?
            .to_bytes();
        Ok((status, body))
    }

    /// Connects to the socket. A non-blocking connect fails with
    /// `WouldBlock` while the listener's backlog is full (an agent that
    /// stopped accepting): like a blocking connect, wait for room, until
    /// the request's deadline.
    async fn connect(&self) -> Result<UnixStream, ClientError> {
        loop {
            match UnixStream::connect(&self.path).await {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(CONNECT_RETRY).await;
                }
                res => {
                    return res.map_err(|source| ClientError::Connect {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
    }

    /// Maps a failure of hyper (or of the body limit) after connecting:
    /// unparsable responses (head, or body framing: hyper reports those as
    /// invalid-data I/O errors) and oversized ones are protocol errors, the
    /// rest I/O errors with the kind of the underlying I/O error, if any.
    fn transport_error(&self, e: &(dyn StdError + 'static)) -> ClientError {
        if e.is::<LengthLimitError>() {
            return ClientError::Protocol(format!("response body larger than {MAX_BODY} bytes"));
        }
        let hyper = e.downcast_ref::<hyper::Error>();
        let mut kind = if hyper.is_some_and(hyper::Error::is_incomplete_message) {
            io::ErrorKind::UnexpectedEof
        } else {
            io::ErrorKind::Other
        };
        let mut message = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<io::Error>() {
                kind = io.kind();
            }
            message = format!("{message}: {c}");
            cause = c.source();
        }
        let malformed = matches!(
            kind,
            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
        );
        if hyper.is_some_and(hyper::Error::is_parse) || malformed {
            return ClientError::Protocol(message);
        }
        ClientError::Io {
            path: self.path.clone(),
            source: io::Error::new(kind, message),
        }
    }
}

/// The request: `path` in origin form, JSON headers, the body if any.
fn build_request(
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<Request<Full<Bytes>>, ClientError> {
    let uri = path
        .parse::<Uri>()
        .ok()
        .filter(|_| path.starts_with('/'))
        .ok_or_else(|| ClientError::Protocol(format!("invalid request path {path:?}")))?;
    let json = HeaderValue::from_static("application/json");
    let has_body = body.is_some();
    let mut req = Request::new(Full::new(Bytes::from(body.unwrap_or_default())));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    headers.insert(header::HOST, HeaderValue::from_static("localhost"));
    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    headers.insert(header::ACCEPT, json.clone());
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if has_body {
        headers.insert(header::CONTENT_TYPE, json);
    }
    Ok(req)
}

/// Decodes a response: 2xx bodies as `T` (an empty body as JSON `null`, so
/// `()` and `Option` fit 204), anything else as an [`ApiError`].
fn decode<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, ClientError> {
    let empty = body.iter().all(u8::is_ascii_whitespace);
    if status.is_success() {
        let body: &[u8] = if empty { b"null" } else { body };
        return serde_json::from_slice(body).map_err(|e| {
            ClientError::Protocol(format!(
                "cannot decode the {} response: {e}",
                status.as_u16()
            ))
        });
    }
    let err = serde_json::from_slice::<ApiError>(body).unwrap_or_else(|_| {
        let head = match status.canonical_reason() {
            Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
            None => format!("HTTP {}", status.as_u16()),
        };
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let message = if text.is_empty() {
            head
        } else {
            format!("{head}: {text}")
        };
        ApiError { code: 0, message }
    });
    Err(ClientError::Api(err))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::{Read, Write};
    use std::os::unix::net::{UnixListener, UnixStream as StdUnixStream};
    use std::thread::JoinHandle;
    use std::time::Instant;

    use axum::Json;
    use axum::Router;
    use axum::http::{HeaderMap, Method};
    use axum::routing::{any, get};
    use tokio::sync::oneshot;

    use super::*;
    use crate::{CniDelRequest, Health};

    fn health() -> Health {
        Health {
            status: "ok".into(),
            node: "k8s-ctr".into(),
        }
    }

    /// What `/v1/echo` saw of a request.
    async fn echo(method: Method, headers: HeaderMap, body: Bytes) -> Json<serde_json::Value> {
        let headers: BTreeMap<String, String> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        Json(serde_json::json!({
            "method": method.as_str(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        }))
    }

    fn routes() -> Router {
        Router::new()
            .route("/v1/healthz", get(|| async { Json(health()) }))
            .route("/v1/echo", any(echo))
            .route("/v1/none", any(|| async { StatusCode::NO_CONTENT }))
            .route(
                "/v1/fail",
                get(|| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        Json(ApiError {
                            code: 11,
                            message: "no IPs available".into(),
                        }),
                    )
                }),
            )
            .route(
                "/v1/text",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "no route\r\n") }),
            )
            .route("/v1/garbled", get(|| async { "{{{" }))
    }

    /// An axum server of [`routes`] on a temporary socket, on a thread of
    /// its own; stopped when dropped.
    struct Agent {
        _dir: tempfile::TempDir,
        path: PathBuf,
        stop: Option<oneshot::Sender<()>>,
        thread: Option<JoinHandle<()>>,
    }

    impl Drop for Agent {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            if let Some(thread) = self.thread.take() {
                thread.join().expect("agent thread");
            }
        }
    }

    fn agent() -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::from_std(listener).expect("listener");
                axum::serve(listener, routes())
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        Agent {
            _dir: dir,
            path,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A one-shot server that accepts one connection, reads the request
    /// head (GET requests only: no body) and writes `response` raw, for
    /// responses axum would not produce.
    struct Raw {
        _dir: tempfile::TempDir,
        path: PathBuf,
        thread: JoinHandle<()>,
    }

    fn serve_raw(response: impl AsRef<[u8]> + Send + 'static) -> Raw {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let thread = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut head = Vec::new();
            let mut byte = [0];
            while !head.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).expect("request head");
                head.push(byte[0]);
            }
            // The client may hang up first (oversized bodies).
            let _ = stream.write_all(response.as_ref());
        });
        Raw {
            _dir: dir,
            path,
            thread,
        }
    }

    fn get_raw<T: DeserializeOwned>(response: &'static [u8]) -> Result<T, ClientError> {
        let srv = serve_raw(response);
        let got = Client::new(&srv.path).get("/v1/x");
        srv.thread.join().expect("server");
        got
    }

    #[test]
    fn get_decodes_json() {
        let agent = agent();
        let got: Health = Client::new(&agent.path).get("/v1/healthz").expect("get");
        assert_eq!(got, health());
    }

    #[test]
    fn requests_carry_json_headers_and_close_the_connection() {
        let agent = agent();
        let client = Client::new(&agent.path);
        let got: serde_json::Value = client.get("/v1/echo").expect("get");
        assert_eq!(got["method"], "GET");
        let headers = &got["headers"];
        assert_eq!(headers["connection"], "close");
        assert_eq!(headers["accept"], "application/json");
        assert_eq!(headers["host"], "localhost");
        assert_eq!(headers["user-agent"], USER_AGENT);
        assert!(headers.get("content-length").is_none(), "{got}");
        assert!(headers.get("content-type").is_none(), "{got}");
        assert_eq!(got["body"], "");

        let req = CniDelRequest {
            container_id: "c1".into(),
            netns: String::new(),
            ifname: "eth0".into(),
        };
        let got: serde_json::Value = client.post("/v1/echo", &req).expect("post");
        let body = r#"{"container_id":"c1","netns":"","ifname":"eth0"}"#;
        assert_eq!(got["method"], "POST");
        assert_eq!(got["headers"]["content-type"], "application/json");
        assert_eq!(got["headers"]["content-length"], body.len().to_string());
        assert_eq!(got["body"], body);
    }

    #[test]
    fn no_content_decodes_as_unit() {
        let agent = agent();
        Client::new(&agent.path)
            .post::<_, ()>("/v1/none", &serde_json::json!({}))
            .expect("204");
    }

    #[test]
    fn api_errors_are_decoded() {
        let agent = agent();
        let err = Client::new(&agent.path)
            .get::<Health>("/v1/fail")
            .expect_err("503");
        match err {
            ClientError::Api(e) => assert_eq!(
                e,
                ApiError {
                    code: 11,
                    message: "no IPs available".into()
                }
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn non_json_errors_fall_back_to_the_text() {
        let agent = agent();
        let client = Client::new(&agent.path);
        let message = |path| match client.get::<Health>(path).expect_err("error") {
            ClientError::Api(e) => {
                assert_eq!(e.code, 0);
                e.message
            }
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            message("/v1/text"),
            "HTTP 500 Internal Server Error: no route"
        );
        assert_eq!(message("/v1/nope"), "HTTP 404 Not Found");
    }

    #[test]
    fn undecodable_success_is_a_protocol_error() {
        let agent = agent();
        let err = Client::new(&agent.path)
            .get::<Health>("/v1/garbled")
            .expect_err("bad json");
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let got: Health = get_raw(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
              10;ext=1\r\n{\"status\":\"ok\",\"\r\n10\r\nnode\":\"k8s-ctr\"}\r\n0\r\nx-trailer: 1\r\n\r\n",
        )
        .expect("get");
        assert_eq!(got, health());
    }

    #[test]
    fn bad_chunk_framing_is_a_protocol_error() {
        // The second chunk is one byte shorter than announced.
        let err = get_raw::<Health>(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
              10\r\n{\"status\":\"ok\",\"\r\n11\r\nnode\":\"k8s-ctr\"}\r\n0\r\n\r\n",
        )
        .expect_err("bad chunk");
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    }

    #[test]
    fn body_without_length_is_read_to_the_end() {
        let got: Vec<u32> = get_raw(b"HTTP/1.0 200 OK\r\n\r\n[1,2,3]").expect("get");
        assert_eq!(got, vec![1, 2, 3]);
    }

    #[test]
    fn interim_responses_are_skipped() {
        let got: bool = get_raw(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ntrue",
        )
        .expect("get");
        assert!(got);
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let err = get_raw::<Health>(b"SSH-2.0-OpenSSH\r\n\r\n").expect_err("garbage");
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    }

    #[test]
    fn truncated_body_is_an_io_error() {
        let err = get_raw::<Health>(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"status\"")
            .expect_err("truncated");
        match &err {
            ClientError::Io { source, .. } => {
                assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof, "{err}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn oversized_body_is_a_protocol_error() {
        let mut response = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_BODY + 1
        )
        .into_bytes();
        response.resize(response.len() + MAX_BODY + 1, b' ');
        let srv = serve_raw(response);
        let err = Client::new(&srv.path)
            .get::<Health>("/v1/x")
            .expect_err("too large");
        srv.thread.join().expect("server");
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    }

    #[test]
    fn missing_socket_is_a_connect_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.sock");
        let err = Client::new(&path)
            .get::<Health>("/v1/healthz")
            .expect_err("no agent");
        match &err {
            ClientError::Connect { path: p, source } => {
                assert_eq!(p, &path);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with("cannot reach the cilium agent at")
        );
    }

    #[test]
    fn stale_socket_is_a_connect_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.sock");
        drop(UnixListener::bind(&path).expect("bind"));
        let err = Client::new(&path)
            .get::<Health>("/v1/healthz")
            .expect_err("refused");
        match &err {
            ClientError::Connect { source, .. } => {
                assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn silent_agent_times_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            std::thread::sleep(Duration::from_millis(500));
            drop(stream);
        });
        let started = Instant::now();
        let err = Client::new(&path)
            .with_timeout(Duration::from_millis(100))
            .get::<Health>("/v1/healthz")
            .expect_err("timeout");
        assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_millis(400));
        server.join().expect("server");
    }

    #[test]
    fn full_backlog_times_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        // Backlog 0: one pending connection fills it; nobody accepts.
        let _listener = rt.block_on(async {
            let socket = tokio::net::UnixSocket::new_stream().expect("socket");
            socket.bind(&path).expect("bind");
            socket.listen(0).expect("listen")
        });
        let _pending = StdUnixStream::connect(&path).expect("first connect");
        let started = Instant::now();
        let err = Client::new(&path)
            .with_timeout(Duration::from_millis(100))
            .get::<Health>("/v1/healthz")
            .expect_err("timeout");
        assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_millis(400));
    }

    #[test]
    fn bad_paths_are_refused_before_connecting() {
        for path in ["v1/healthz", "/v1/a b", "http://agent/v1/healthz"] {
            let err = Client::new("/nonexistent")
                .get::<Health>(path)
                .expect_err("path");
            assert!(matches!(err, ClientError::Protocol(_)), "{path}: {err:?}");
        }
    }
}
