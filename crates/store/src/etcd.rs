//! etcd backend (etcd v3 API through `etcd-client`).
//!
//! The gRPC channel is built here rather than by `etcd-client`, so that
//! `unix://` endpoints work (etcd 3.4 names its socket `<path>:0`, which is
//! passed through as the file name) and so that every endpoint gets the
//! same connect timeout and HTTP/2 keep-alive: a dead etcd is noticed by
//! watches, a wrong endpoint fails within seconds. Channels connect
//! lazily and reconnect on the next request after a failure.
//!
//! Writes are transactions: create compares `create_revision == 0`, update
//! compares `mod_revision == expected`. Watches ask for `prev_kv` so that
//! deletions carry the last state.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, KeyValue, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::backend::{Kv, RawEvent, RawWatch, Swap};
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
    pub async fn connect(endpoints: &[String]) -> Result<Self> {
        let channel = channel(endpoints)?;
        let client = Client::from_channel(etcd_client::Channel::Tonic(channel), None)
            .await
            .map_err(|e| Error::Backend(format!("etcd client: {}", describe(&e))))?;
        Ok(Self {
            client,
            endpoints: endpoints.join(","),
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

/// The gRPC channel to `endpoints`: one `unix://` path, or `http://`
/// addresses (balanced when several).
fn channel(endpoints: &[String]) -> Result<Channel> {
    let invalid = |message: String| Error::Backend(format!("etcd endpoints: {message}"));
    match endpoints {
        [] => Err(invalid("no endpoint given".to_string())),
        [only] if only.starts_with("unix://") => {
            let path = std::path::PathBuf::from(&only["unix://".len()..]);
            if path.as_os_str().is_empty() {
                return Err(invalid(format!("{only}: empty socket path")));
            }
            // The authority is not used to connect, only sent as `:authority`.
            let endpoint = configure(Endpoint::from_static("http://localhost"));
            let connector = tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
                        std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            });
            Ok(endpoint.connect_with_connector_lazy(connector))
        }
        _ => {
            let mut list = Vec::with_capacity(endpoints.len());
            for url in endpoints {
                if !url.starts_with("http://") {
                    return Err(invalid(format!(
                        "{url}: expected http://IP:PORT (or a single unix:///path)"
                    )));
                }
                let endpoint = Endpoint::from_shared(url.clone())
                    .map_err(|e| invalid(format!("{url}: {e}")))?;
                list.push(configure(endpoint));
            }
            match <[Endpoint; 1]>::try_from(list) {
                Ok([endpoint]) => Ok(endpoint.connect_lazy()),
                Err(list) => Ok(Channel::balance_list(list.into_iter())),
            }
        }
    }
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
