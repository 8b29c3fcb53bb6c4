//! Test harness: a private, single-member etcd (`/usr/bin/etcd`, Debian's
//! 3.4) on loopback ports and a unix socket in a temporary directory; in
//! plaintext ([`EtcdServer::start`]) or with mutual TLS on both
//! ([`EtcdServer::start_mtls`], a CA and certificates of its own).
//!
//! Enabled by the `testing` feature; for tests only. [`EtcdServer::start`]
//! waits until etcd answers `/health` (polling with a deadline), and the
//! process is killed by its PID when the server is stopped or dropped
//! (also when a test panics). Failures panic with the tail of etcd's log.
//!
//! ```no_run
//! # async fn demo() {
//! let etcd = store::testing::EtcdServer::start();
//! let store = store::Store::etcd(&[etcd.endpoint.clone()]).await.unwrap();
//! # let _ = store;
//! # }
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{EtcdConfig, EtcdTls};

/// The etcd binary (Debian package `etcd-server`).
pub const ETCD_BINARY: &str = "/usr/bin/etcd";

/// The socket file etcd 3.4 creates for `unix://etcd.sock:0`.
const SOCKET_NAME: &str = "etcd.sock:0";
/// How long etcd may take to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts with fresh ports when the first ones turn out to be taken.
const START_ATTEMPTS: usize = 3;

/// The certificate names [`EtcdServer::start_mtls`] writes in its `pki`
/// directory (`<name>.crt`, `<name>.key`, and the CA's `ca.crt`).
pub const MTLS_SERVER_CERT: &str = "server";
/// The client certificate of [`EtcdServer::config`] with mutual TLS.
pub const MTLS_CLIENT_CERT: &str = "client";

/// A running etcd owned by the test; killed on drop.
pub struct EtcdServer {
    /// `http://127.0.0.1:PORT` (`https://` with mutual TLS).
    pub endpoint: String,
    /// `unix:///tmp/.../etcd.sock:0` (the same server; `unixs://` with
    /// mutual TLS).
    pub unix_endpoint: String,
    client_port: u16,
    peer_port: u16,
    /// The client files and configuration, with mutual TLS.
    tls: Option<(EtcdTls, Arc<rustls::ClientConfig>)>,
    child: Option<Child>,
    // Last: removed after the process is gone.
    dir: tempfile::TempDir,
}

impl EtcdServer {
    /// Start etcd on free loopback ports in a new temporary directory and
    /// wait until it is healthy. Panics (with etcd's log) if it does not
    /// come up.
    pub fn start() -> Self {
        Self::start_in(Self::new_dir(), None)
    }

    /// Like [`EtcdServer::start`], with mutual TLS on the TCP port and the
    /// socket (`--client-cert-auth`): a CA in `<dir>/pki` issues etcd's
    /// certificate (`127.0.0.1`, `localhost`) and a client certificate,
    /// which [`EtcdServer::config`] presents.
    pub fn start_mtls() -> Self {
        let dir = Self::new_dir();
        let pki_dir = dir.path().join("pki");
        let issue = || -> pki::Result<EtcdTls> {
            let ca = pki::Ca::load_or_generate(&pki_dir, "store-test-ca")?;
            let server = pki::Leaf::server(
                "etcd",
                &["localhost"],
                &[std::net::Ipv4Addr::LOCALHOST.into()],
            );
            ca.issue(&server)?.write(&pki_dir, MTLS_SERVER_CERT)?;
            let (cert_file, key_file) = ca
                .issue(&pki::Leaf::client("store-test", &[]))?
                .write(&pki_dir, MTLS_CLIENT_CERT)?;
            Ok(EtcdTls {
                trusted_ca_file: pki_dir.join("ca.crt"),
                cert_file,
                key_file,
            })
        };
        let files = issue().expect("issue the test certificates");
        let read = |p: &Path| std::fs::read_to_string(p).expect("read a test certificate");
        let pair = pki::CertPair {
            cert_pem: read(&files.cert_file),
            key_pem: read(&files.key_file),
        };
        let client = pki::client_config(&read(&files.trusted_ca_file), Some(&pair))
            .expect("a client TLS configuration");
        Self::start_in(dir, Some((files, Arc::new(client))))
    }

    fn new_dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("store-etcd-")
            .tempdir()
            .expect("create a temporary directory for etcd")
    }

    fn start_in(dir: tempfile::TempDir, tls: Option<(EtcdTls, Arc<rustls::ClientConfig>)>) -> Self {
        let s = if tls.is_some() { "s" } else { "" };
        let unix_endpoint = format!("unix{s}://{}", dir.path().join(SOCKET_NAME).display());
        let mut server = Self {
            endpoint: String::new(),
            unix_endpoint,
            client_port: 0,
            peer_port: 0,
            tls,
            child: None,
            dir,
        };
        for attempt in 1..=START_ATTEMPTS {
            (server.client_port, server.peer_port) = free_ports();
            server.endpoint = format!("http{s}://127.0.0.1:{}", server.client_port);
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(e) if attempt < START_ATTEMPTS => {
                    eprintln!("etcd did not start (attempt {attempt}), retrying: {e}");
                    server.stop();
                }
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The endpoints to pass to [`crate::Store::etcd`] (TCP).
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint.clone()]
    }

    /// The configuration to pass to [`crate::Store::etcd_with`]: the TCP
    /// endpoint and, with mutual TLS, the client's files.
    pub fn config(&self) -> EtcdConfig {
        EtcdConfig {
            endpoints: self.endpoints(),
            tls: self.tls.as_ref().map(|(files, _)| files.clone()),
        }
    }

    /// The directory holding the data dir, socket and `etcd.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the etcd process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kill etcd (SIGKILL to its PID) and reap it. The data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Fails only if it already exited, which is what we want.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start etcd again on the same ports and data directory (stopping it
    /// first if it runs) and wait until it is healthy.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn_and_wait() {
            panic!("{e}");
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        // A socket file left by a killed etcd would make the listen fail.
        let _ = std::fs::remove_file(dir.join(SOCKET_NAME));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("open {}: {e}", self.log_path().display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("clone log file handle: {e}"))?;
        let client = &self.endpoint;
        let unix = if self.tls.is_some() { "unixs" } else { "unix" };
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(ETCD_BINARY);
        command
            .current_dir(dir)
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!(
                "--listen-client-urls={client},{unix}://{SOCKET_NAME}"
            ))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"));
        if self.tls.is_some() {
            let pki = dir.join("pki");
            command
                .arg("--client-cert-auth")
                .arg(format!(
                    "--trusted-ca-file={}",
                    pki.join("ca.crt").display()
                ))
                .arg(format!(
                    "--cert-file={}",
                    pki.join(format!("{MTLS_SERVER_CERT}.crt")).display()
                ))
                .arg(format!(
                    "--key-file={}",
                    pki.join(format!("{MTLS_SERVER_CERT}.key")).display()
                ));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot run {ETCD_BINARY}: {e}"))?;
        self.child = Some(child);
        self.wait_healthy()
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.client_port));
        let socket = self.dir.path().join(SOCKET_NAME);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "etcd exited with {status} while starting; log:\n{}",
                    self.log_tail()
                ));
            }
            let tls = self.tls.as_ref().map(|(_, config)| config.clone());
            if socket.exists() && healthy(addr, tls) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "etcd not healthy on {addr} within {START_TIMEOUT:?}; log:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of etcd's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for EtcdServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdServer")
            .field("endpoint", &self.endpoint)
            .field("unix_endpoint", &self.unix_endpoint)
            .field("pid", &self.child.as_ref().map(Child::id))
            .finish()
    }
}

/// Two distinct free loopback ports (free when asked; etcd binds them soon
/// after, and [`EtcdServer::start`] retries if one was taken meanwhile).
fn free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().expect("local address").port();
    (port(&a), port(&b))
}

/// Whether etcd at `addr` answers `GET /health` with `"health":"true"`
/// (over TLS, presenting the client certificate, when `tls` is given).
fn healthy(addr: SocketAddr, tls: Option<Arc<rustls::ClientConfig>>) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut stream: Box<dyn ReadWrite> = match tls {
        None => Box::new(stream),
        Some(config) => {
            let name = rustls::pki_types::ServerName::from(addr.ip());
            let Ok(connection) = rustls::ClientConnection::new(config, name) else {
                return false;
            };
            Box::new(rustls::StreamOwned::new(connection, stream))
        }
    };
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.contains(r#""health":"true""#)
}

/// A plaintext or TLS stream.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
