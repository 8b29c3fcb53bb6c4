//! Typed, watchable cluster-state store.
//!
//! Objects are JSON documents under the API server's registry layout
//! (`/registry/<plural>/<namespace>/<name>`, CRDs under
//! `/registry/cilium.io/<plural>/...`). Every write bumps a global
//! revision; an object's `metadata.resourceVersion` is the revision of its
//! last write, and updates are compare-and-swap on it. Watches deliver
//! every change after a given revision, in order.
//!
//! Backends: [`Store::memory`] (unit tests), [`Store::etcd`] and
//! [`Store::etcd_with`] (etcd, plaintext or with mutual TLS as an
//! [`EtcdConfig`] says) and [`Store::kubeconfig`] (a Kubernetes API
//! server). Callers never know which one they hold.
//!
//! Server-owned metadata: `create` fills `uid`, `creationTimestamp`,
//! `generation` (1) and the default namespace; `update` keeps the stored
//! `uid` and `creationTimestamp`, bumps `generation` when `spec` changes and
//! writes nothing when nothing changed. `resourceVersion` is never stored:
//! it is set from the revision on every object returned.
//!
//! Tests of other crates can run a private etcd with the `testing`
//! feature's `testing::EtcdServer`.

mod backend;
mod config;
mod etcd;
mod kube;
mod memory;
mod reflect;
#[cfg(feature = "testing")]
pub mod testing;
mod values;

use std::pin::Pin;

use api::{Object, ResourceType};
use futures::{Stream, StreamExt};
pub use toolkit::cache::{Change, WatchEvent};

use crate::backend::Backend;
pub use crate::config::{EtcdConfig, EtcdTls};

/// Errors of store operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist.
    #[error("{kind} \"{name}\" not found")]
    NotFound {
        /// Kind of the object.
        kind: String,
        /// Name (with namespace, `ns/name`, for namespaced types).
        name: String,
    },
    /// An object with that name exists already.
    #[error("{kind} \"{name}\" already exists")]
    AlreadyExists {
        /// Kind of the object.
        kind: String,
        /// Name.
        name: String,
    },
    /// Compare-and-swap failed: the object changed since it was read.
    #[error("conflict: {kind} \"{name}\" was modified (expected resourceVersion {expected})")]
    Conflict {
        /// Kind of the object.
        kind: String,
        /// Name.
        name: String,
        /// The resourceVersion the caller held.
        expected: String,
    },
    /// The object is not acceptable (missing name or namespace, ...).
    #[error("invalid object: {0}")]
    Invalid(String),
    /// The stored bytes do not decode as the expected type.
    #[error("cannot decode {key}: {source}")]
    Decode {
        /// Store key.
        key: String,
        /// The decoder's error.
        source: serde_json::Error,
    },
    /// The watch fell behind a compaction; re-list.
    #[error("watch revision {0} is compacted; re-list")]
    Compacted(i64),
    /// The backend failed (connection, timeout, ...).
    #[error("store backend: {0}")]
    Backend(String),
}

/// Result of store operations.
pub type Result<T> = std::result::Result<T, Error>;

/// A consistent list of objects and the store revision it was read at.
#[derive(Debug, Clone)]
pub struct List<T> {
    /// The objects, sorted by key.
    pub items: Vec<T>,
    /// Revision of the read: pass to [`Store::watch`] to get every later change.
    pub revision: i64,
}

/// A stream of watch events.
pub type WatchStream<T> = Pin<Box<dyn Stream<Item = Result<WatchEvent<T>>> + Send>>;

/// A never-ending stream of [`Change`]s.
pub type ChangeStream<T> = Pin<Box<dyn Stream<Item = Change<T>> + Send>>;

/// The cluster store. Cheap to clone (shared handle).
#[derive(Clone)]
pub struct Store {
    inner: Inner,
}

/// Key-value backends (objects semantics in [`values`]) or an API server
/// (which has them itself).
#[derive(Clone)]
enum Inner {
    Kv(Backend),
    Kube(kube::KubeBackend),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let describe = match &self.inner {
            Inner::Kv(b) => b.describe(),
            Inner::Kube(k) => k.describe(),
        };
        write!(f, "Store({describe})")
    }
}

impl Store {
    /// An in-memory store (tests).
    pub fn memory() -> Self {
        Self::memory_with_history(memory::DEFAULT_HISTORY)
    }

    /// An in-memory store that keeps only the last `events` changes for
    /// watches; a watch that falls further behind gets [`Error::Compacted`]
    /// (tests of re-list paths).
    pub fn memory_with_history(events: usize) -> Self {
        Self {
            inner: Inner::Kv(Backend::Memory(memory::MemoryBackend::new(events))),
        }
    }

    /// Connect to etcd in plaintext. Endpoints are `http://IP:PORT` or
    /// `unix:///path`.
    ///
    /// Checks that etcd answers (within a few seconds) and fails with
    /// [`Error::Backend`] otherwise; see [`Store::etcd_lazy`] for a handle
    /// that does not wait for etcd to be up.
    pub async fn etcd(endpoints: &[String]) -> Result<Self> {
        Self::etcd_with(&EtcdConfig::plain(endpoints)).await
    }

    /// Connect to etcd as `config` says: plaintext endpoints, or
    /// `https://IP:PORT` / `unixs:///path` with mutual TLS. Checks that
    /// etcd answers, like [`Store::etcd`]; a TLS file that cannot be read
    /// or parsed fails at once, naming the file.
    pub async fn etcd_with(config: &EtcdConfig) -> Result<Self> {
        let backend = etcd::EtcdBackend::connect(config).await?;
        backend.probe().await?;
        Ok(Self {
            inner: Inner::Kv(Backend::Etcd(std::sync::Arc::new(backend))),
        })
    }

    /// Like [`Store::etcd`] but without contacting etcd: only the
    /// endpoints are checked. Operations fail with [`Error::Backend`] while
    /// etcd is unreachable; [`Store::reflect`] keeps retrying until it is up.
    pub async fn etcd_lazy(endpoints: &[String]) -> Result<Self> {
        Self::etcd_lazy_with(&EtcdConfig::plain(endpoints)).await
    }

    /// Like [`Store::etcd_with`] but without contacting etcd (see
    /// [`Store::etcd_lazy`]); the endpoints and TLS files are checked.
    pub async fn etcd_lazy_with(config: &EtcdConfig) -> Result<Self> {
        Ok(Self {
            inner: Inner::Kv(Backend::Etcd(std::sync::Arc::new(
                etcd::EtcdBackend::connect(config).await?,
            ))),
        })
    }

    /// A store that is a Kubernetes API server, reached with kube-rs
    /// (`server` names it in messages). Does not contact the server.
    pub fn kubernetes(client: ::kube::Client, server: &str) -> Self {
        Self {
            inner: Inner::Kube(kube::KubeBackend::new(client, server.to_string())),
        }
    }

    /// Connect to the API server of a kubeconfig file (its current
    /// context, or `context`), or when `path` is `None` the one kube-rs
    /// infers (`$KUBECONFIG`, `~/.kube/config`, then in-cluster
    /// service-account credentials and `KUBERNETES_SERVICE_HOST/PORT`).
    /// Checks that the server answers.
    pub async fn kubeconfig(path: Option<&std::path::Path>, context: Option<&str>) -> Result<Self> {
        let store = Self::kubeconfig_lazy(path, context).await?;
        if let Inner::Kube(k) = &store.inner {
            k.probe().await?;
        }
        Ok(store)
    }

    /// Like [`Store::kubeconfig`] without contacting the server.
    pub async fn kubeconfig_lazy(
        path: Option<&std::path::Path>,
        context: Option<&str>,
    ) -> Result<Self> {
        let options = ::kube::config::KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let config = match path {
            Some(path) => {
                let kubeconfig = ::kube::config::Kubeconfig::read_from(path).map_err(|e| {
                    Error::Backend(format!("cannot read kubeconfig {}: {e}", path.display()))
                })?;
                ::kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| {
                        Error::Backend(format!("invalid kubeconfig {}: {e}", path.display()))
                    })?
            }
            None => ::kube::Config::infer()
                .await
                .map_err(|e| Error::Backend(format!("no Kubernetes configuration: {e}")))?,
        };
        let server = config.cluster_url.to_string();
        let client = ::kube::Client::try_from(config)
            .map_err(|e| Error::Backend(format!("cannot build a client for {server}: {e}")))?;
        Ok(Self::kubernetes(client, &server))
    }

    /// Connect to the cluster a component was pointed at (see
    /// [`ClusterSource`]); checks that it answers.
    pub async fn connect(source: &ClusterSource) -> Result<Self> {
        match source {
            ClusterSource::Kubernetes(path) => Self::kubeconfig(path.as_deref(), None).await,
            ClusterSource::Etcd(config) => Self::etcd_with(config).await,
        }
    }

    /// Whether this store is a Kubernetes API server.
    pub fn is_kubernetes(&self) -> bool {
        matches!(self.inner, Inner::Kube(_))
    }

    /// Get one object. A missing namespace of a namespaced type is `default`.
    pub async fn get<T: Object>(&self, namespace: Option<&str>, name: &str) -> Result<Option<T>> {
        match self.get_value(&T::TYPE, namespace, name).await? {
            Some(value) => Ok(Some(values::from_value(&T::TYPE, value)?)),
            None => Ok(None),
        }
    }

    /// List objects of a type, in one namespace or all (`None`).
    pub async fn list<T: Object>(&self, namespace: Option<&str>) -> Result<List<T>> {
        let list = self.list_values(&T::TYPE, namespace).await?;
        let items = list
            .items
            .into_iter()
            .map(|value| values::from_value(&T::TYPE, value))
            .collect::<Result<Vec<T>>>()?;
        Ok(List {
            items,
            revision: list.revision,
        })
    }

    /// Create an object. Fills `uid`, `creationTimestamp`, `resourceVersion`
    /// (and `generation` = 1); a missing namespace of a namespaced type is
    /// `default`. Returns the stored object.
    pub async fn create<T: Object>(&self, obj: &T) -> Result<T> {
        let value = self.create_value(&T::TYPE, &values::to_value(obj)?).await?;
        values::from_value(&T::TYPE, value)
    }

    /// Replace an object, compare-and-swap on `metadata.resourceVersion`
    /// (which must be set). Returns the stored object.
    pub async fn update<T: Object>(&self, obj: &T) -> Result<T> {
        let value = self.update_value(&T::TYPE, &values::to_value(obj)?).await?;
        values::from_value(&T::TYPE, value)
    }

    /// Replace an object's status: through the `status` subresource on an
    /// API server (for kinds that have one; other changes are ignored
    /// there), like [`Store::update`] on etcd.
    pub async fn update_status<T: Object>(&self, obj: &T) -> Result<T> {
        let value = values::to_value(obj)?;
        let written = match &self.inner {
            Inner::Kv(backend) => values::update(backend, &T::TYPE, &value).await?,
            Inner::Kube(kube) => kube.update_status(&T::TYPE, &value).await?,
        };
        values::from_value(&T::TYPE, written)
    }

    /// [`Store::modify`] for status changes: the write is
    /// [`Store::update_status`].
    pub async fn modify_status<T: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
        f: impl FnMut(&mut T) -> bool + Send,
    ) -> Result<T> {
        self.modify_with(namespace, name, f, true).await
    }

    /// Read-modify-write with retry on conflict: `f` is applied to the
    /// current object until the swap succeeds. `f` returning `false` means
    /// "no change needed": nothing is written and the stored object is
    /// returned as read. Gives up with [`Error::Conflict`] after 20 tries.
    pub async fn modify<T: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
        f: impl FnMut(&mut T) -> bool + Send,
    ) -> Result<T> {
        self.modify_with(namespace, name, f, false).await
    }

    async fn modify_with<T: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
        mut f: impl FnMut(&mut T) -> bool + Send,
        status: bool,
    ) -> Result<T> {
        let mut attempt = 1;
        loop {
            let Some(current) = self.get::<T>(namespace, name).await? else {
                return Err(values::not_found(&T::TYPE, namespace, name));
            };
            let mut obj = current.clone();
            if !f(&mut obj) {
                return Ok(current);
            }
            let written = if status {
                self.update_status(&obj).await
            } else {
                self.update(&obj).await
            };
            match written {
                Err(Error::Conflict { .. }) if attempt < MODIFY_ATTEMPTS => attempt += 1,
                result => return result,
            }
        }
    }

    /// Delete an object; returns its last state, or `None` if absent. The
    /// returned object's `resourceVersion` is the revision of the deletion.
    pub async fn delete<T: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<T>> {
        match self.delete_value(&T::TYPE, namespace, name).await? {
            Some(value) => Ok(Some(values::from_value(&T::TYPE, value)?)),
            None => Ok(None),
        }
    }

    /// Every change to objects of type `T` (one namespace or all) after
    /// `revision`, in order.
    ///
    /// The stream ends after a backend error ([`Error::Compacted`] when
    /// `revision` is too old, [`Error::Backend`] when the connection
    /// breaks); [`Store::reflect`] recovers from both. An object that does
    /// not decode as `T` yields [`Error::Decode`] and the stream goes on.
    /// Deletions carry the last state, with the deletion's revision as
    /// `resourceVersion`.
    pub fn watch<T: Object>(&self, namespace: Option<&str>, revision: i64) -> WatchStream<T> {
        self.watch_values(&T::TYPE, namespace, revision)
            .map(|event| event.and_then(|event| values::event_from_value(&T::TYPE, event)))
            .boxed()
    }

    /// List, then watch from the list's revision; on any watch error
    /// (disconnect, compaction) log it, back off and re-list, yielding a
    /// fresh [`Change::Synced`]. Never ends; errors never reach the caller.
    /// The base of every controller loop.
    ///
    /// Objects that do not decode as `T` are logged and skipped.
    pub fn reflect<T: Object>(&self, namespace: Option<&str>) -> ChangeStream<T> {
        reflect::reflect(self.clone(), namespace.map(str::to_string))
    }

    /// One object's successive states, from [`Store::reflect`]: yielded
    /// when it first appears in a snapshot and on every later add or
    /// update (deletions are not yielded). For "wait until X has Y" loops.
    pub fn reflect_named<T: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Pin<Box<dyn Stream<Item = T> + Send>> {
        use futures::StreamExt;
        let name = name.to_string();
        Box::pin(self.reflect::<T>(namespace).filter_map(move |change| {
            let found = match change {
                Change::Synced(items) => items.into_iter().find(|o| o.name() == name),
                Change::Event(WatchEvent::Added(o) | WatchEvent::Modified(o))
                    if o.name() == name =>
                {
                    Some(o)
                }
                Change::Event(_) => None,
            };
            futures::future::ready(found)
        }))
    }

    /// Untyped access for the CLI: get the JSON of one object.
    pub async fn get_value(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<serde_json::Value>> {
        match &self.inner {
            Inner::Kv(backend) => values::get(backend, ty, namespace, name).await,
            Inner::Kube(kube) => kube.get(ty, namespace, name).await,
        }
    }

    /// Untyped list.
    pub async fn list_values(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
    ) -> Result<List<serde_json::Value>> {
        match &self.inner {
            Inner::Kv(backend) => values::list(backend, ty, namespace).await,
            Inner::Kube(kube) => kube.list(ty, namespace).await,
        }
    }

    /// Untyped create (same defaults as [`Store::create`]).
    pub async fn create_value(
        &self,
        ty: &ResourceType,
        obj: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        match &self.inner {
            Inner::Kv(backend) => values::create(backend, ty, obj).await,
            Inner::Kube(kube) => kube.create(ty, obj).await,
        }
    }

    /// Untyped compare-and-swap update.
    pub async fn update_value(
        &self,
        ty: &ResourceType,
        obj: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        match &self.inner {
            Inner::Kv(backend) => values::update(backend, ty, obj).await,
            Inner::Kube(kube) => kube.update(ty, obj).await,
        }
    }

    /// Untyped delete.
    pub async fn delete_value(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<serde_json::Value>> {
        match &self.inner {
            Inner::Kv(backend) => values::delete(backend, ty, namespace, name).await,
            Inner::Kube(kube) => kube.delete(ty, namespace, name).await,
        }
    }

    /// Untyped watch (same semantics as [`Store::watch`]).
    pub fn watch_values(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        revision: i64,
    ) -> WatchStream<serde_json::Value> {
        match &self.inner {
            Inner::Kv(backend) => values::watch(backend, ty, namespace, revision),
            Inner::Kube(kube) => kube.watch(ty, namespace.map(str::to_string), revision),
        }
    }
}

/// Where a component finds its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSource {
    /// A Kubernetes API server: from this kubeconfig, or (`None`) the
    /// in-cluster service-account credentials.
    Kubernetes(Option<std::path::PathBuf>),
    /// etcd directly (kvstore-only setups and tests), plaintext or with
    /// mutual TLS.
    Etcd(EtcdConfig),
}

impl ClusterSource {
    /// The source a component's flags name: a kubeconfig first, then
    /// in-cluster credentials (`KUBERNETES_SERVICE_HOST` set), then etcd:
    /// its client configuration file (`etcd_config`, upstream's
    /// `kvstore-opt` `etcd.config`) with `etcd` (when not empty) replacing
    /// the file's endpoints (see [`EtcdConfig::from_sources`]).
    pub fn from_flags(
        kubeconfig: Option<std::path::PathBuf>,
        etcd: &[String],
        etcd_config: Option<&std::path::Path>,
    ) -> std::result::Result<Self, String> {
        if kubeconfig.is_some() {
            return Ok(Self::Kubernetes(kubeconfig));
        }
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            return Ok(Self::Kubernetes(None));
        }
        if !etcd.is_empty() || etcd_config.is_some() {
            return EtcdConfig::from_sources(etcd, etcd_config)
                .map(Self::Etcd)
                .map_err(|e| e.to_string());
        }
        Err(
            "no cluster to connect to: give --k8s-kubeconfig-path, run in a pod \
             (KUBERNETES_SERVICE_HOST), or give --etcd or kvstore-opt etcd.config"
                .into(),
        )
    }

    /// How status lines name it.
    pub fn describe(&self) -> String {
        match self {
            Self::Kubernetes(Some(path)) => format!("kubeconfig {}", path.display()),
            Self::Kubernetes(None) => "in-cluster".into(),
            Self::Etcd(config) => config.endpoints.join(","),
        }
    }
}

/// How many times [`Store::modify`] tries before giving up on conflicts.
const MODIFY_ATTEMPTS: u32 = 20;
