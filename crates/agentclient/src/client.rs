//! A blocking HTTP/1.1 client over the agent's unix socket.
//!
//! One request per connection (`Connection: close`), written in one piece;
//! the response is read with an overall deadline (status line, headers,
//! then a body framed by `Content-Length`, `Transfer-Encoding: chunked` or
//! the end of the stream). No async runtime and no HTTP library: the CNI
//! plugin links this and is exec'd once per pod, so start-up cost matters
//! more than features. This module owns only the transport and the JSON
//! (de)coding; the routes and their types live in [`crate::types`].

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Serialize, de::DeserializeOwned};

use crate::ApiError;

/// Where the agent listens on a real node.
pub const DEFAULT_SOCKET_PATH: &str = "/var/run/cilium/cilium.sock";

/// Default time one request may take, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest status or header line accepted.
const MAX_LINE: u64 = 16 * 1024;
/// Most header lines accepted in one response.
const MAX_HEADERS: usize = 100;
/// Largest response body accepted.
const MAX_BODY: u64 = 64 * 1024 * 1024;

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

/// A response as read from the wire.
#[derive(Debug)]
struct Response {
    status: u16,
    reason: String,
    body: Vec<u8>,
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
        decode(self.request("GET", path, None)?)
    }

    /// `POST path` with a JSON body; decodes the JSON answer (use `()` for 204).
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(ClientError::Encode)?;
        decode(self.request("POST", path, Some(&body))?)
    }

    /// One exchange on a fresh connection.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, ClientError> {
        if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_whitespace() || b < 0x20) {
            return Err(ClientError::Protocol(format!(
                "invalid request path {path:?}"
            )));
        }
        let deadline = Instant::now() + self.timeout;
        let stream = self.connect()?;
        let wire = encode_request(method, path, body);
        stream
            .set_write_timeout(Some(remaining(deadline).map_err(|e| self.io_error(e))?))
            .map_err(|e| self.io_error(e))?;
        (&stream).write_all(&wire).map_err(|e| self.io_error(e))?;
        let mut reader = BufReader::new(DeadlineReader { stream, deadline });
        read_response(&mut reader, method == "HEAD").map_err(|e| match e {
            ReadError::Io(e) => self.io_error(e),
            ReadError::Protocol(msg) => ClientError::Protocol(msg),
        })
    }

    /// Connects within the timeout. `UnixStream::connect` blocks while the
    /// listener's backlog is full (an agent that stopped accepting), so it
    /// runs on a helper thread that is abandoned on timeout.
    fn connect(&self) -> Result<UnixStream, ClientError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let path = self.path.clone();
        std::thread::Builder::new()
            .name("agentclient-connect".into())
            .spawn(move || {
                // The receiver may have given up already; nothing to do then.
                let _ = tx.send(UnixStream::connect(path));
            })
            .map_err(|source| ClientError::Connect {
                path: self.path.clone(),
                source,
            })?;
        match rx.recv_timeout(self.timeout) {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(source)) => Err(ClientError::Connect {
                path: self.path.clone(),
                source,
            }),
            Err(_) => Err(ClientError::Timeout {
                path: self.path.clone(),
                timeout: self.timeout,
            }),
        }
    }

    fn io_error(&self, source: io::Error) -> ClientError {
        match source.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ClientError::Timeout {
                path: self.path.clone(),
                timeout: self.timeout,
            },
            _ => ClientError::Io {
                path: self.path.clone(),
                source,
            },
        }
    }
}

/// The request bytes: request line, headers, body.
fn encode_request(method: &str, path: &str, body: Option<&[u8]>) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: cilium-agentclient/{}\r\n\
         Accept: application/json\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(body) = body {
        head.push_str("Content-Type: application/json\r\n");
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut wire = head.into_bytes();
    wire.extend_from_slice(body.unwrap_or_default());
    wire
}

/// Decodes a response: 2xx bodies as `T` (an empty body as JSON `null`, so
/// `()` and `Option` fit 204), anything else as an [`ApiError`].
fn decode<T: DeserializeOwned>(resp: Response) -> Result<T, ClientError> {
    let empty = resp.body.iter().all(u8::is_ascii_whitespace);
    if (200..300).contains(&resp.status) {
        let body: &[u8] = if empty { b"null" } else { &resp.body };
        return serde_json::from_slice(body).map_err(|e| {
            ClientError::Protocol(format!("cannot decode the {} response: {e}", resp.status))
        });
    }
    let err = serde_json::from_slice::<ApiError>(&resp.body).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(&resp.body);
        let text = text.trim();
        let message = if text.is_empty() {
            format!("HTTP {} {}", resp.status, resp.reason)
        } else {
            format!("HTTP {} {}: {text}", resp.status, resp.reason)
        };
        ApiError { code: 0, message }
    });
    Err(ClientError::Api(err))
}

/// Time left before `deadline`, or a `TimedOut` error.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::from(io::ErrorKind::TimedOut))
    } else {
        Ok(left)
    }
}

/// A stream whose reads share one overall deadline.
struct DeadlineReader {
    stream: UnixStream,
    deadline: Instant,
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream
            .set_read_timeout(Some(remaining(self.deadline)?))?;
        self.stream.read(buf)
    }
}

/// Why a response could not be read.
#[derive(Debug)]
enum ReadError {
    Io(io::Error),
    Protocol(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

fn protocol<T>(msg: impl Into<String>) -> Result<T, ReadError> {
    Err(ReadError::Protocol(msg.into()))
}

/// Reads one response, skipping interim (1xx) ones.
fn read_response(r: &mut impl BufRead, head_only: bool) -> Result<Response, ReadError> {
    loop {
        let (status, reason) = parse_status_line(&read_line(r)?)?;
        let mut content_length = None;
        let mut chunked = false;
        let mut count = 0;
        loop {
            let line = read_line(r)?;
            if line.is_empty() {
                break;
            }
            count += 1;
            if count > MAX_HEADERS {
                return protocol("too many header lines");
            }
            let Some((name, value)) = line.split_once(':') else {
                return protocol(format!("malformed header line {line:?}"));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                match value.parse::<u64>() {
                    Ok(n) => content_length = Some(n),
                    Err(_) => return protocol(format!("invalid Content-Length {value:?}")),
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            }
        }
        if (100..200).contains(&status) {
            continue;
        }
        let body = if head_only || status == 204 || status == 304 {
            Vec::new()
        } else if chunked {
            read_chunked(r)?
        } else if let Some(n) = content_length {
            if n > MAX_BODY {
                return protocol(format!("body of {n} bytes is too large"));
            }
            let mut body = Vec::new();
            r.take(n).read_to_end(&mut body)?;
            if body.len() as u64 != n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the whole body arrived",
                )
                .into());
            }
            body
        } else {
            read_to_eof(r)?
        };
        return Ok(Response {
            status,
            reason,
            body,
        });
    }
}

/// One CRLF (or LF) terminated line without its terminator.
fn read_line(r: &mut impl BufRead) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    r.take(MAX_LINE + 1).read_until(b'\n', &mut buf)?;
    if buf.last() != Some(&b'\n') {
        if buf.len() as u64 > MAX_LINE {
            return protocol("line too long");
        }
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed in the middle of the response head",
        )
        .into());
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    match String::from_utf8(buf) {
        Ok(line) => Ok(line),
        Err(_) => protocol("response head is not UTF-8"),
    }
}

/// `HTTP/1.1 200 OK` -> (200, "OK").
fn parse_status_line(line: &str) -> Result<(u16, String), ReadError> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    let reason = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return protocol(format!("not an HTTP/1.x status line: {line:?}"));
    }
    match code.parse::<u16>() {
        Ok(status) if (100..1000).contains(&status) && code.len() == 3 => {
            Ok((status, reason.to_string()))
        }
        _ => protocol(format!("invalid status code in {line:?}")),
    }
}

/// A `Transfer-Encoding: chunked` body (chunk extensions and trailers are
/// read and ignored).
fn read_chunked(r: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let Ok(size) = u64::from_str_radix(size, 16) else {
            return protocol(format!("invalid chunk size line {line:?}"));
        };
        if size == 0 {
            while !read_line(r)?.is_empty() {}
            return Ok(body);
        }
        if body.len() as u64 + size > MAX_BODY {
            return protocol("chunked body is too large");
        }
        let before = body.len();
        r.take(size).read_to_end(&mut body)?;
        if (body.len() - before) as u64 != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed in the middle of a chunk",
            )
            .into());
        }
        if !read_line(r)?.is_empty() {
            return protocol("chunk not followed by CRLF");
        }
    }
}

/// A body delimited by the end of the connection.
fn read_to_eof(r: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    r.take(MAX_BODY + 1).read_to_end(&mut body)?;
    if body.len() as u64 > MAX_BODY {
        return protocol("body is too large");
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::net::UnixListener;
    use std::thread::JoinHandle;

    use super::*;
    use crate::{CniDelRequest, Health};

    /// A one-shot server: accepts one connection, returns the raw request
    /// through the join handle and answers with `response`.
    struct OneShot {
        _dir: tempfile::TempDir,
        path: PathBuf,
        handle: JoinHandle<String>,
    }

    fn serve_once(response: &'static [u8]) -> OneShot {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(&stream);
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("read request");
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().expect("length");
                }
                head.push_str(&line);
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("body");
            (&stream).write_all(response).expect("write response");
            head + &String::from_utf8(body).expect("utf8 body")
        });
        OneShot {
            _dir: dir,
            path,
            handle,
        }
    }

    fn health() -> Health {
        Health {
            status: "ok".into(),
            node: "k8s-ctr".into(),
        }
    }

    #[test]
    fn get_decodes_a_content_length_body() {
        let srv = serve_once(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 32\r\n\r\n\
              {\"status\":\"ok\",\"node\":\"k8s-ctr\"}",
        );
        let got: Health = Client::new(&srv.path).get("/v1/healthz").expect("get");
        assert_eq!(got, health());
        let req = srv.handle.join().expect("server");
        assert!(req.starts_with("GET /v1/healthz HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("Connection: close\r\n"), "{req}");
        assert!(!req.contains("Content-Length"), "{req}");
    }

    #[test]
    fn post_sends_json_and_decodes_a_chunked_body() {
        let srv = serve_once(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
              10;ext=1\r\n{\"status\":\"ok\",\"\r\n11\r\nnode\":\"k8s-ctr\"}\r\n0\r\nx-trailer: 1\r\n\r\n",
        );
        let req = CniDelRequest {
            container_id: "c1".into(),
            netns: String::new(),
            ifname: "eth0".into(),
        };
        let got: Health = Client::new(&srv.path)
            .post("/v1/cni/del", &req)
            .expect("post");
        assert_eq!(got, health());
        let raw = srv.handle.join().expect("server");
        let body = r#"{"container_id":"c1","netns":"","ifname":"eth0"}"#;
        assert!(raw.starts_with("POST /v1/cni/del HTTP/1.1\r\n"), "{raw}");
        assert!(raw.contains("Content-Type: application/json\r\n"), "{raw}");
        assert!(
            raw.contains(&format!("Content-Length: {}\r\n", body.len())),
            "{raw}"
        );
        assert!(raw.ends_with(&format!("\r\n\r\n{body}")), "{raw}");
    }

    #[test]
    fn no_content_decodes_as_unit() {
        let srv = serve_once(b"HTTP/1.1 204 No Content\r\n\r\n");
        Client::new(&srv.path)
            .post::<_, ()>("/v1/cni/check", &serde_json::json!({}))
            .expect("204");
        srv.handle.join().expect("server");
    }

    #[test]
    fn body_without_length_is_read_to_the_end() {
        let srv = serve_once(b"HTTP/1.0 200 OK\r\n\r\n[1,2,3]");
        let got: Vec<u32> = Client::new(&srv.path).get("/v1/x").expect("get");
        assert_eq!(got, vec![1, 2, 3]);
        srv.handle.join().expect("server");
    }

    #[test]
    fn interim_responses_are_skipped() {
        let srv = serve_once(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ntrue",
        );
        let got: bool = Client::new(&srv.path).get("/v1/x").expect("get");
        assert!(got);
        srv.handle.join().expect("server");
    }

    #[test]
    fn api_errors_are_decoded() {
        let srv = serve_once(
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 40\r\n\r\n\
              {\"code\":11,\"message\":\"no IPs available\"}",
        );
        let err = Client::new(&srv.path)
            .get::<Health>("/v1/healthz")
            .expect_err("500");
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
        srv.handle.join().expect("server");
    }

    #[test]
    fn non_json_errors_fall_back_to_the_text() {
        let srv = serve_once(b"HTTP/1.1 404 Not Found\r\ncontent-length: 10\r\n\r\nno route\r\n");
        let err = Client::new(&srv.path)
            .get::<Health>("/v1/nope")
            .expect_err("404");
        match err {
            ClientError::Api(e) => {
                assert_eq!(e.code, 0);
                assert_eq!(e.message, "HTTP 404 Not Found: no route");
            }
            other => panic!("unexpected {other:?}"),
        }
        srv.handle.join().expect("server");
    }

    #[test]
    fn undecodable_success_is_a_protocol_error() {
        let srv = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n{{{");
        let err = Client::new(&srv.path)
            .get::<Health>("/v1/healthz")
            .expect_err("bad json");
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
        srv.handle.join().expect("server");
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let srv = serve_once(b"SSH-2.0-OpenSSH\r\n\r\n");
        let err = Client::new(&srv.path)
            .get::<Health>("/v1/healthz")
            .expect_err("garbage");
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
        srv.handle.join().expect("server");
    }

    #[test]
    fn truncated_body_is_an_io_error() {
        let srv = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"status\"");
        let err = Client::new(&srv.path)
            .get::<Health>("/v1/healthz")
            .expect_err("truncated");
        assert!(matches!(err, ClientError::Io { .. }), "{err:?}");
        srv.handle.join().expect("server");
    }

    #[test]
    fn missing_socket_is_a_connect_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.sock");
        let err = Client::new(&path)
            .get::<Health>("/v1/healthz")
            .expect_err("no agent");
        match &err {
            ClientError::Connect { path: p, .. } => assert_eq!(p, &path),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with("cannot reach the cilium agent at")
        );
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
    fn bad_paths_are_refused_before_connecting() {
        let err = Client::new("/nonexistent")
            .get::<Health>("v1/healthz")
            .expect_err("path");
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
        let err = Client::new("/nonexistent")
            .get::<Health>("/v1/a b")
            .expect_err("path");
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    }
}
