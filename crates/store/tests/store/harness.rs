//! A store under test and a way to break its watches.

use std::time::Duration;

use futures::{Stream, StreamExt};
use store::Store;
use store::testing::EtcdServer;

use crate::types::Gadget;

/// Memory stores keep this few events, so [`Harness::disrupt`] can push a
/// watcher out of the log.
const MEMORY_HISTORY: usize = 16;

/// How long any awaited condition may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A store plus what it runs on.
pub struct Harness {
    pub store: Store,
    etcd: Option<EtcdServer>,
}

impl Harness {
    /// A memory store with a short event log.
    pub fn memory() -> Self {
        Self {
            store: Store::memory_with_history(MEMORY_HISTORY),
            etcd: None,
        }
    }

    /// A fresh etcd, reached over TCP.
    pub async fn etcd_tcp() -> Self {
        let etcd = start_etcd().await;
        let store = Store::etcd(std::slice::from_ref(&etcd.endpoint))
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", etcd.endpoint));
        Self {
            store,
            etcd: Some(etcd),
        }
    }

    /// A fresh etcd, reached over its unix socket.
    pub async fn etcd_unix() -> Self {
        let etcd = start_etcd().await;
        let store = Store::etcd(std::slice::from_ref(&etcd.unix_endpoint))
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", etcd.unix_endpoint));
        Self {
            store,
            etcd: Some(etcd),
        }
    }

    /// A fresh etcd with mutual TLS, reached over TCP with the client
    /// certificate.
    pub async fn etcd_mtls() -> Self {
        let etcd = tokio::task::spawn_blocking(EtcdServer::start_mtls)
            .await
            .expect("start etcd");
        let store = Store::etcd_with(&etcd.config())
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", etcd.endpoint));
        Self {
            store,
            etcd: Some(etcd),
        }
    }

    /// Break every open watch: etcd is killed and restarted on the same
    /// ports and data; the memory store gets more unrelated writes than it
    /// keeps history for (watches that have not read them are compacted).
    pub async fn disrupt(&mut self) {
        match self.etcd.take() {
            Some(mut etcd) => {
                let etcd = tokio::task::spawn_blocking(move || {
                    etcd.stop();
                    etcd.restart();
                    etcd
                })
                .await
                .expect("restart etcd");
                self.etcd = Some(etcd);
            }
            None => {
                for i in 0..MEMORY_HISTORY + 4 {
                    let name = format!("filler-{i}");
                    self.store
                        .create(&Gadget::new(&name))
                        .await
                        .expect("create filler");
                }
            }
        }
    }
}

/// Start etcd without blocking the runtime's workers.
pub async fn start_etcd() -> EtcdServer {
    tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .expect("start etcd")
}

/// The next item of a stream, within [`DEADLINE`].
pub async fn next<S: Stream + Unpin>(stream: &mut S, what: &str) -> S::Item {
    tokio::time::timeout(DEADLINE, stream.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {DEADLINE:?}"))
        .unwrap_or_else(|| panic!("stream ended while waiting for {what}"))
}
