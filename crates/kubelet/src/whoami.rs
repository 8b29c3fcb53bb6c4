//! The built-in `traefik/whoami` workload and the lab router's static web
//! server: small blocking HTTP/1.1 servers (std only, a thread per
//! connection, minimal keep-alive).
//!
//! whoami answers every request with `Hostname:`, one `IP:` line per
//! interface address (interface order, IPv4 before IPv6), `RemoteAddr:`,
//! then the request line and headers as Go's `Request.Write` prints them
//! (Host, User-Agent, then the other headers sorted). They only serve:
//! no files, namespaces or other processes are touched.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::error::Context;

/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body read (and echoed).
const MAX_BODY: usize = 1024 * 1024;
/// Idle time before a kept-alive connection is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct HttpRequest {
    /// Method.
    pub method: String,
    /// Request target as sent.
    pub target: String,
    /// `HTTP/1.1`, `HTTP/1.0`.
    pub version: String,
    /// Headers in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Body (Content-Length only).
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the connection stays open after the response.
    fn keep_alive(&self) -> bool {
        let conn = self.header("connection").map(str::to_ascii_lowercase);
        match self.version.as_str() {
            "HTTP/1.1" => conn.as_deref() != Some("close"),
            _ => conn.as_deref() == Some("keep-alive"),
        }
    }
}

/// Read one request; `Ok(None)` at a clean end of stream.
fn read_request(r: &mut impl BufRead) -> Result<Option<HttpRequest>, Error> {
    let bad = |msg: String| Err(Error::Failed(msg));
    let mut line = String::new();
    // Skip empty lines between requests (RFC 9112 §2.2).
    loop {
        line.clear();
        if r.read_line(&mut line).context("cannot read the request")? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return bad(format!("malformed request line {line:?}"));
    };
    let mut req = HttpRequest {
        method: method.into(),
        target: target.into(),
        version: version.into(),
        ..Default::default()
    };
    let mut size = line.len();
    loop {
        line.clear();
        let n = r
            .read_line(&mut line)
            .context("cannot read the request head")?;
        size += n;
        if n == 0 {
            return bad("connection closed inside the request head".into());
        }
        if size > MAX_HEAD {
            return bad("request head too large".into());
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (name, value) = l
            .split_once(':')
            .with_context(|| format!("malformed header {l:?}"))?;
        req.headers.push((name.trim().into(), value.trim().into()));
    }
    if let Some(len) = req.header("content-length") {
        let Ok(len) = len.parse::<usize>() else {
            return bad(format!("bad Content-Length {len:?}"));
        };
        if len > MAX_BODY {
            return bad("body too large".into());
        }
        req.body.resize(len, 0);
        r.read_exact(&mut req.body)
            .context("cannot read the request body")?;
    }
    Ok(Some(req))
}

/// Go's canonical header key (`x-forwarded-for` → `X-Forwarded-For`).
fn canonical_header(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

/// The whoami body for `req` from `remote`, on a host named `hostname`
/// with interface addresses `ips`.
pub(crate) fn render_whoami(
    hostname: &str,
    ips: &[IpAddr],
    remote: SocketAddr,
    req: &HttpRequest,
) -> Vec<u8> {
    let mut s = format!("Hostname: {hostname}\n");
    for ip in ips {
        s.push_str(&format!("IP: {ip}\n"));
    }
    let remote = SocketAddr::new(remote.ip().to_canonical(), remote.port());
    s.push_str(&format!("RemoteAddr: {remote}\n"));
    s.push_str(&format!("{} {} HTTP/1.1\r\n", req.method, req.target));
    s.push_str(&format!("Host: {}\r\n", req.header("host").unwrap_or("")));
    let ua = req.header("user-agent").unwrap_or("Go-http-client/1.1");
    if !ua.is_empty() {
        s.push_str(&format!("User-Agent: {ua}\r\n"));
    }
    let skip = [
        "host",
        "user-agent",
        "content-length",
        "transfer-encoding",
        "trailer",
    ];
    let mut others: Vec<(String, &str)> = req
        .headers
        .iter()
        .filter(|(n, _)| !skip.iter().any(|s| n.eq_ignore_ascii_case(s)))
        .map(|(n, v)| (canonical_header(n), v.as_str()))
        .collect();
    others.sort_by(|a, b| a.0.cmp(&b.0));
    if !req.body.is_empty() {
        s.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    for (n, v) in others {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("\r\n");
    let mut out = s.into_bytes();
    out.extend_from_slice(&req.body);
    out
}

/// Every interface address in this network namespace, ordered as Go's
/// `net.Interfaces` + `Addrs` list them: by interface index, IPv4 before
/// IPv6.
pub(crate) fn interface_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<(u32, bool, usize, IpAddr)> = Vec::new();
    for (i, a) in addrs.enumerate() {
        let Some(sa) = a.address else { continue };
        let ip = if let Some(v4) = sa.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = sa.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        let index = nix::net::if_::if_nametoindex(a.interface_name.as_str()).unwrap_or(u32::MAX);
        out.push((index, ip.is_ipv6(), i, ip));
    }
    out.sort();
    out.into_iter().map(|(.., ip)| ip).collect()
}

/// The HTTP response head and body.
fn response(status: &str, content_type: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let date = crate::status::unix_now().strftime("%a, %d %b %Y %H:%M:%S GMT");
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: {content_type}\r\nDate: {date}\r\n{}\r\n",
        body.len(),
        if keep_alive { "" } else { "Connection: close\r\n" }
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Bind `port` on every address (dual stack when IPv6 exists).
fn bind(port: u16) -> Result<TcpListener, Error> {
    TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port))
        .or_else(|_| TcpListener::bind(("0.0.0.0", port)))
        .with_context(|| format!("cannot listen on port {port}"))
}

/// Computes a response body for a request from a peer.
type Handler = Arc<dyn Fn(&HttpRequest, SocketAddr) -> Vec<u8> + Send + Sync>;

/// Serve connections of `listener` with `handler` (blocking forever).
fn serve_with(listener: TcpListener, handler: Handler) -> Result<(), Error> {
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let handler = handler.clone();
        std::thread::spawn(move || {
            if let Err(e) = handle_connection(stream, &*handler) {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    Ok(())
}

fn handle_connection(
    stream: TcpStream,
    handler: &(dyn Fn(&HttpRequest, SocketAddr) -> Vec<u8> + Send + Sync),
) -> Result<(), Error> {
    let peer = stream.peer_addr().context("no peer address")?;
    stream
        .set_read_timeout(Some(IDLE_TIMEOUT))
        .context("cannot set the idle timeout")?;
    let mut writer = stream.try_clone().context("cannot clone the connection")?;
    let mut reader = BufReader::new(stream);
    loop {
        let req = match read_request(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) => {
                let _ = writer.write_all(&response(
                    "400 Bad Request",
                    "text/plain; charset=utf-8",
                    b"400 Bad Request",
                    false,
                ));
                return Err(e);
            }
        };
        let keep = req.keep_alive();
        let body = handler(&req, peer);
        let mut resp = response("200 OK", "text/plain; charset=utf-8", &body, keep);
        if req.method == "HEAD" {
            resp.truncate(resp.len() - body.len());
        }
        writer
            .write_all(&resp)
            .context("cannot write the response")?;
        if !keep {
            return Ok(());
        }
    }
}

/// Serve whoami on `port` (blocking). Like traefik/whoami it logs
/// `<date> <time> Starting up on port <port>` to stderr (its container
/// log); `name` only labels the kubelet's logs.
pub fn serve(port: u16, name: &str) -> Result<(), Error> {
    let listener = bind(port)?;
    tracing::info!(port, name, "whoami listening");
    let now = crate::status::unix_now().strftime("%Y/%m/%d %H:%M:%S");
    eprintln!("{now} Starting up on port {port}");
    serve_listener(listener)
}

/// Serve whoami on an already bound listener (blocking).
pub(crate) fn serve_listener(listener: TcpListener) -> Result<(), Error> {
    serve_with(
        listener,
        Arc::new(|req, peer| {
            let hostname = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default();
            render_whoami(&hostname, &interface_addresses(), peer, req)
        }),
    )
}

/// Answer every request on `port` with `body` (the lab router's web
/// server, e.g. `<h1>Web Server : router</h1>`). Blocking.
pub fn serve_static(port: u16, body: &str) -> Result<(), Error> {
    let listener = bind(port)?;
    tracing::info!(port, "static web server listening");
    let body = body.as_bytes().to_vec();
    serve_with(listener, Arc::new(move |_, _| body.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whoami_rendering_matches_go_request_write() {
        let raw = b"GET /path?x=1 HTTP/1.1\r\nHost: 10.96.0.5\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nx-zeta: z\r\n\r\n";
        let req = read_request(&mut &raw[..])
            .expect("parse")
            .expect("request");
        let body = render_whoami(
            "webpod-1",
            &[
                "127.0.0.1".parse().expect("ip"),
                "::1".parse().expect("ip"),
                "10.244.1.5".parse().expect("ip"),
            ],
            "[::ffff:10.244.0.7]:4711".parse().expect("addr"),
            &req,
        );
        assert_eq!(
            String::from_utf8(body).expect("utf8"),
            "Hostname: webpod-1\nIP: 127.0.0.1\nIP: ::1\nIP: 10.244.1.5\n\
             RemoteAddr: 10.244.0.7:4711\n\
             GET /path?x=1 HTTP/1.1\r\nHost: 10.96.0.5\r\nUser-Agent: curl/7.88.1\r\n\
             Accept: */*\r\nX-Zeta: z\r\n\r\n"
        );
        assert!(req.keep_alive());
    }

    #[test]
    fn request_parsing_edge_cases() {
        let raw = b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nConnection: close\r\n\r\n";
        let mut r = &raw[..];
        let a = read_request(&mut r).expect("a").expect("some");
        assert_eq!(a.body, b"abc");
        assert!(!a.keep_alive());
        let b = read_request(&mut r).expect("b").expect("some");
        assert!(!b.keep_alive());
        assert!(read_request(&mut r).expect("eof").is_none());
        assert!(read_request(&mut &b"garbage\r\n\r\n"[..]).is_err());
        assert_eq!(canonical_header("x-forwarded-for"), "X-Forwarded-For");
    }

    #[test]
    fn interface_addresses_start_with_loopback() {
        let ips = interface_addresses();
        assert_eq!(
            ips.first(),
            Some(&"127.0.0.1".parse::<IpAddr>().expect("ip"))
        );
    }
}
