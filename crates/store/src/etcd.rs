//! etcd backend (etcd v3 API through `etcd-client`).
//!
//! The gRPC channel is built here rather than by `etcd-client`, so that
//! `unix://` endpoints work (etcd 3.4 names its socket `<path>:0`, which is
//! passed through as the file name) and so that every endpoint gets the
//! same connect timeout and HTTP/2 keep-alive: a dead etcd is noticed by
//! watches, a wrong endpoint fails within seconds. Channels connect
//! lazily and reconnect on the next request after a failure; with
//! several endpoints a connection goes to the first that answers.
//!
//! `https://` and `unixs://` endpoints speak mutual TLS (rustls with
//! *ring*, through the `pki` crate): etcd's certificate must chain to the
//! configured CA and name the endpoint's host (`localhost` for a socket),
//! and the client presents its certificate. The files are read once, when
//! the store is made.
//!
//! Writes are transactions: create compares `create_revision == 0`, update
//! compares `mod_revision == expected`. Watches ask for `prev_kv` so that
//! deletions carry the last state.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, KeyValue, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::backend::{Kv, RawEvent, RawWatch, Swap};
use crate::config::{EtcdConfig, EtcdTls};
use crate::{Error, Result};

/// Time allowed to open a connection to an endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed for one unary request (including connecting).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for the connectivity check of [`crate::Store::etcd`].
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 ping interval (etcd's default minimum is 5 s) and ack timeout.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Handle on an etcd cluster.
pub(crate) struct EtcdBackend {
    client: Client,
    endpoints: String,
}

impl EtcdBackend {
    /// Build the channel and client; no request is sent.
    pub async fn connect(config: &EtcdConfig) -> Result<Self> {
        let channel = channel(config)?;
        let client = Client::from_channel(etcd_client::Channel::Tonic(channel), None)
            .await
            .map_err(|e| Error::Backend(format!("etcd client: {}", describe(&e))))?;
        Ok(Self {
            client,
            endpoints: config.endpoints.join(","),
        })
    }

    /// The endpoints, comma-separated (for messages).
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// Check that etcd answers.
    pub async fn probe(&self) -> Result<()> {
        let mut kv = self.client.kv_client();
        let request = kv.get("/", Some(GetOptions::new().with_count_only()));
        match tokio::time::timeout(PROBE_TIMEOUT, request).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Error::Backend(format!(
                "cannot reach etcd at {}: {}",
                self.endpoints,
                describe(&e)
            ))),
            Err(_) => Err(Error::Backend(format!(
                "cannot reach etcd at {}: no answer within {PROBE_TIMEOUT:?}",
                self.endpoints
            ))),
        }
    }

    /// Run one request with [`REQUEST_TIMEOUT`], mapping errors.
    async fn call<R>(
        &self,
        what: &str,
        key: &str,
        request: impl Future<Output = std::result::Result<R, etcd_client::Error>>,
    ) -> Result<R> {
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(Error::Backend(format!(
                "etcd {} {what} {key}: {}",
                self.endpoints,
                describe(&e)
            ))),
            Err(_) => Err(Error::Backend(format!(
                "etcd {} {what} {key}: no answer within {REQUEST_TIMEOUT:?}",
                self.endpoints
            ))),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Kv>> {
        let mut kv = self.client.kv_client();
        let mut response = self.call("get", key, kv.get(key, None)).await?;
        response
            .take_kvs()
            .into_iter()
            .next()
            .map(to_kv)
            .transpose()
    }

    pub async fn list(&self, prefix: &str) -> Result<(Vec<Kv>, i64)> {
        let mut kv = self.client.kv_client();
        let options = GetOptions::new().with_prefix();
        let mut response = self
            .call("list", prefix, kv.get(prefix, Some(options)))
            .await?;
        let revision = header_revision(response.header());
        let items = response
            .take_kvs()
            .into_iter()
            .map(to_kv)
            .collect::<Result<_>>()?;
        Ok((items, revision))
    }

    pub async fn create(&self, key: &str, value: Vec<u8>) -> Result<Option<i64>> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let mut kv = self.client.kv_client();
        let response = self.call("create", key, kv.txn(txn)).await?;
        Ok(response
            .succeeded()
            .then(|| header_revision(response.header())))
    }

    pub async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> Result<Swap> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, value, None)])
            .or_else([TxnOp::get(key, Some(GetOptions::new().with_count_only()))]);
        let mut kv = self.client.kv_client();
        let response = self.call("update", key, kv.txn(txn)).await?;
        if response.succeeded() {
            return Ok(Swap::Written(header_revision(response.header())));
        }
        let exists = response.op_responses().iter().any(|op| match op {
            TxnOpResponse::Get(get) => get.count() > 0,
            _ => false,
        });
        Ok(if exists {
            Swap::Conflict
        } else {
            Swap::Missing
        })
    }

    pub async fn delete(&self, key: &str) -> Result<Option<(Kv, i64)>> {
        let mut kv = self.client.kv_client();
        let options = DeleteOptions::new().with_prev_key();
        let response = self
            .call("delete", key, kv.delete(key, Some(options)))
            .await?;
        let revision = header_revision(response.header());
        match response.prev_kvs().first() {
            Some(prev) => Ok(Some((to_kv(prev.clone())?, revision))),
            None => Ok(None),
        }
    }

    pub fn watch(self: &Arc<Self>, prefix: String, after: i64) -> RawWatch {
        let backend = Arc::clone(self);
        let events = async move {
            let options = WatchOptions::new()
                .with_prefix()
                .with_prev_key()
                .with_start_revision(after + 1);
            let mut client = backend.client.watch_client();
            let stream = backend
                .call(
                    "watch",
                    &prefix,
                    client.watch(prefix.as_str(), Some(options)),
                )
                .await;
            match stream {
                Ok(stream) => watch_events(stream, backend.endpoints.clone(), after).boxed(),
                Err(e) => futures::stream::iter([Err(e)]).boxed(),
            }
        };
        futures::stream::once(events).flatten().boxed()
    }
}

/// Turn an etcd watch into raw events; the stream ends after an error.
fn watch_events(
    stream: etcd_client::WatchStream,
    endpoints: String,
    after: i64,
) -> impl futures::Stream<Item = Result<RawEvent>> + Send {
    struct Cursor {
        stream: Option<etcd_client::WatchStream>,
        pending: std::collections::VecDeque<Result<RawEvent>>,
        endpoints: String,
        after: i64,
    }
    let cursor = Cursor {
        stream: Some(stream),
        pending: Default::default(),
        endpoints,
        after,
    };
    futures::stream::unfold(cursor, |mut cursor| async move {
        loop {
            if let Some(item) = cursor.pending.pop_front() {
                if item.is_err() {
                    cursor.stream = None;
                    cursor.pending.clear();
                }
                return Some((item, cursor));
            }
            let stream = cursor.stream.as_mut()?;
            let failure = match stream.message().await {
                Ok(Some(response)) if response.canceled() => {
                    if response.compact_revision() > 0 {
                        Error::Compacted(cursor.after)
                    } else {
                        Error::Backend(format!(
                            "etcd {}: watch canceled: {}",
                            cursor.endpoints,
                            response.cancel_reason()
                        ))
                    }
                }
                Ok(Some(response)) => {
                    for event in response.events() {
                        let item = to_event(event);
                        if let Ok(event) = &item {
                            cursor.after = event_revision(event);
                        }
                        cursor.pending.push_back(item);
                    }
                    continue;
                }
                Ok(None) => Error::Backend(format!(
                    "etcd {}: watch stream closed by the server",
                    cursor.endpoints
                )),
                Err(e) => Error::Backend(format!(
                    "etcd {}: watch: {}",
                    cursor.endpoints,
                    describe(&e)
                )),
            };
            cursor.pending.push_back(Err(failure));
        }
    })
}

fn event_revision(event: &RawEvent) -> i64 {
    match event {
        RawEvent::Put(kv) => kv.mod_revision,
        RawEvent::Delete { revision, .. } => *revision,
    }
}

fn to_event(event: &etcd_client::Event) -> Result<RawEvent> {
    let Some(kv) = event.kv() else {
        return Err(Error::Backend("etcd watch event without key".to_string()));
    };
    match event.event_type() {
        EventType::Put => Ok(RawEvent::Put(to_kv(kv.clone())?)),
        EventType::Delete => {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let prev = event.prev_kv().ok_or_else(|| {
                Error::Backend(format!(
                    "etcd watch: deletion of {key} without its previous value (compacted?)"
                ))
            })?;
            Ok(RawEvent::Delete {
                prev: to_kv(prev.clone())?,
                revision: kv.mod_revision(),
            })
        }
    }
}

fn to_kv(kv: KeyValue) -> Result<Kv> {
    let create_revision = kv.create_revision();
    let mod_revision = kv.mod_revision();
    let (key, value) = kv.into_key_value();
    let key = String::from_utf8(key)
        .map_err(|e| Error::Backend(format!("etcd returned a non-UTF-8 key: {e}")))?;
    Ok(Kv {
        key,
        value,
        create_revision,
        mod_revision,
    })
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision())
}

/// One place the channel connects to.
#[derive(Debug, Clone)]
enum Target {
    /// `HOST:PORT` over TCP, and the name etcd's certificate must carry
    /// (the host: an IP address or a DNS name).
    Tcp {
        authority: String,
        server_name: ServerName<'static>,
    },
    /// A unix socket; a TLS server behind it must be certified for
    /// [`UNIX_SERVER_NAME`].
    Unix(PathBuf),
}

/// The name etcd's certificate is checked against on `unixs://`
/// endpoints (a socket has no host name of its own).
const UNIX_SERVER_NAME: &str = "localhost";

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { authority, .. } => f.write_str(authority),
            Target::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A connection, plaintext or TLS, over TCP or a unix socket.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Opens the channel's connections: the targets in order until one
/// connects (and, with TLS, completes the handshake, verifying etcd's
/// certificate and presenting the client's).
#[derive(Clone)]
struct Dialer {
    targets: Arc<[Target]>,
    tls: Option<TlsConnector>,
}

impl Dialer {
    async fn dial(self) -> std::io::Result<TokioIo<Box<dyn Io>>> {
        let mut failures = Vec::new();
        for target in self.targets.iter() {
            match self.dial_one(target).await {
                Ok(io) => return Ok(TokioIo::new(io)),
                Err(e) => failures.push(e),
            }
        }
        let kind = failures
            .last()
            .map_or(std::io::ErrorKind::NotFound, std::io::Error::kind);
        let text: Vec<String> = failures.iter().map(ToString::to_string).collect();
        Err(std::io::Error::new(kind, text.join("; ")))
    }

    async fn dial_one(&self, target: &Target) -> std::io::Result<Box<dyn Io>> {
        let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{target}: {e}"));
        let (stream, server_name): (Box<dyn Io>, _) = match target {
            Target::Tcp {
                authority,
                server_name,
            } => {
                let stream = TcpStream::connect(authority.as_str())
                    .await
                    .map_err(named)?;
                stream.set_nodelay(true).map_err(named)?;
                (Box::new(stream), server_name.clone())
            }
            Target::Unix(path) => {
                let stream = UnixStream::connect(path).await.map_err(named)?;
                let name = ServerName::try_from(UNIX_SERVER_NAME).expect("a valid DNS name");
                (Box::new(stream), name)
            }
        };
        match &self.tls {
            None => Ok(stream),
            Some(tls) => {
                let stream = tls.connect(server_name, stream).await.map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{target}: TLS handshake: {e}"))
                })?;
                Ok(Box::new(stream))
            }
        }
    }
}

/// The gRPC channel of a configuration. Connections are opened by a
/// [`Dialer`], so tonic itself speaks plaintext HTTP/2 over them (its
/// URIs are `http://`, whatever the endpoints' scheme).
fn channel(config: &EtcdConfig) -> Result<Channel> {
    let (targets, secure) = targets(&config.endpoints)?;
    let tls = match (&config.tls, secure) {
        (Some(tls), true) => Some(tls_connector(tls)?),
        (None, false) => None,
        (None, true) => {
            return Err(Error::Backend(format!(
                "etcd endpoints {}: https:// and unixs:// need TLS files \
                 (trusted-ca-file, cert-file, key-file)",
                config.endpoints.join(",")
            )));
        }
        (Some(_), false) => {
            return Err(Error::Backend(format!(
                "etcd endpoints {}: TLS files given for plaintext endpoints \
                 (use https:// or unixs://)",
                config.endpoints.join(",")
            )));
        }
    };
    let uri = match &targets[0] {
        Target::Tcp { authority, .. } => format!("http://{authority}"),
        // The authority is not used to connect, only sent as `:authority`.
        Target::Unix(_) => format!("http://{UNIX_SERVER_NAME}"),
    };
    let endpoint =
        Endpoint::from_shared(uri).map_err(|e| Error::Backend(format!("etcd endpoints: {e}")))?;
    let dialer = Dialer {
        targets: targets.into(),
        tls,
    };
    let connector = tower::service_fn(move |_: Uri| dialer.clone().dial());
    Ok(configure(endpoint).connect_with_connector_lazy(connector))
}

/// Parse endpoints: `http(s)://HOST:PORT` or `unix(s):///path`, all of
/// them plaintext or all TLS (returned as the second value).
fn targets(endpoints: &[String]) -> Result<(Vec<Target>, bool)> {
    let invalid = |message: String| Error::Backend(format!("etcd endpoints: {message}"));
    if endpoints.is_empty() {
        return Err(invalid("no endpoint given".to_string()));
    }
    let mut targets = Vec::with_capacity(endpoints.len());
    let mut secure = Vec::with_capacity(endpoints.len());
    for url in endpoints {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(invalid(format!(
                "{url}: expected http(s)://HOST:PORT or unix(s):///path"
            )));
        };
        let target = match scheme {
            "unix" | "unixs" if rest.is_empty() => {
                return Err(invalid(format!("{url}: empty socket path")));
            }
            "unix" | "unixs" => Target::Unix(PathBuf::from(rest)),
            "http" | "https" => {
                let authority = rest.strip_suffix('/').unwrap_or(rest);
                let host = match authority.rsplit_once(':') {
                    Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => host,
                    _ => {
                        return Err(invalid(format!("{url}: expected {scheme}://HOST:PORT")));
                    }
                };
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let server_name = ServerName::try_from(host.to_string())
                    .map_err(|e| invalid(format!("{url}: {e}")))?;
                Target::Tcp {
                    authority: authority.to_string(),
                    server_name,
                }
            }
            _ => {
                return Err(invalid(format!(
                    "{url}: expected http(s)://HOST:PORT or unix(s):///path"
                )));
            }
        };
        targets.push(target);
        secure.push(scheme.ends_with('s'));
    }
    if secure.iter().any(|s| *s != secure[0]) {
        return Err(invalid(format!(
            "{}: mixes plaintext and TLS endpoints",
            endpoints.join(",")
        )));
    }
    Ok((targets, secure[0]))
}

/// The TLS client of `tls`: its files read and checked now (a bad file is
/// named at start-up, not at the first connection).
fn tls_connector(tls: &EtcdTls) -> Result<TlsConnector> {
    let failed = |path: &Path, detail: String| {
        Error::Backend(format!("etcd TLS: {}: {detail}", path.display()))
    };
    let read = |path: &Path| std::fs::read_to_string(path).map_err(|e| failed(path, e.to_string()));
    let ca = read(&tls.trusted_ca_file)?;
    pki::certs_from_pem(&ca).map_err(|e| failed(&tls.trusted_ca_file, e.to_string()))?;
    let pair = pki::CertPair {
        cert_pem: read(&tls.cert_file)?,
        key_pem: read(&tls.key_file)?,
    };
    pki::certs_from_pem(&pair.cert_pem).map_err(|e| failed(&tls.cert_file, e.to_string()))?;
    pki::key_from_pem(&pair.key_pem).map_err(|e| failed(&tls.key_file, e.to_string()))?;
    let mut config = pki::client_config(&ca, Some(&pair))
        .map_err(|e| Error::Backend(format!("etcd TLS: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

fn configure(endpoint: Endpoint) -> Endpoint {
    endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
}

/// A one-line description of an etcd client error: the gRPC code and
/// message, and the root cause (`Connection refused`, a missing socket).
fn describe(error: &etcd_client::Error) -> String {
    let (mut text, mut source) = match error {
        etcd_client::Error::GRpcStatus(status) => (
            format!("{:?}: {}", status.code(), status.message()),
            std::error::Error::source(status),
        ),
        other => (other.to_string(), std::error::Error::source(other)),
    };
    let mut root = None;
    while let Some(cause) = source {
        root = Some(cause);
        source = cause.source();
    }
    if let Some(root) = root.map(ToString::to_string)
        && !text.contains(&root)
    {
        text.push_str(": ");
        text.push_str(&root);
    }
    text
}
