//! Typed, watchable cluster-state store.
//!
//! Objects are JSON documents under the API server's registry layout
//! (`/registry/<plural>/<namespace>/<name>`, CRDs under
//! `/registry/cilium.io/<plural>/...`). Every write bumps a global
//! revision; an object's `metadata.resourceVersion` is the revision of its
//! last write, and updates are compare-and-swap on it. Watches deliver
//! every change after a given revision, in order.
//!
//! Backends: [`Store::memory`] (unit tests) and [`Store::etcd`] (the lab's
//! real etcd). Callers never know which one they hold.

use std::pin::Pin;

use api::{Object, ResourceType};
use futures::Stream;

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

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<T> {
    /// The object was created.
    Added(T),
    /// The object was updated.
    Modified(T),
    /// The object was deleted (its last state).
    Deleted(T),
}

/// A stream of watch events.
pub type WatchStream<T> = Pin<Box<dyn Stream<Item = Result<WatchEvent<T>>> + Send>>;

/// What [`Store::reflect`] yields: a full snapshot, then changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    /// The complete current state (first item, and again after every
    /// re-list following a broken or compacted watch). Replaces any cache.
    Synced(Vec<T>),
    /// One change after the last snapshot.
    Event(WatchEvent<T>),
}

/// A never-ending stream of [`Change`]s.
pub type ChangeStream<T> = Pin<Box<dyn Stream<Item = Change<T>> + Send>>;

/// The cluster store. Cheap to clone (shared handle).
#[derive(Clone)]
pub struct Store {
    _todo: (),
}

impl Store {
    /// An in-memory store (tests).
    pub fn memory() -> Self {
        todo!()
    }

    /// Connect to etcd. Endpoints are `http://IP:PORT` or `unix:///path`.
    pub async fn etcd(endpoints: &[String]) -> Result<Self> {
        let _ = endpoints;
        todo!()
    }

    /// Get one object.
    pub async fn get<T: Object>(&self, namespace: Option<&str>, name: &str) -> Result<Option<T>> {
        let _ = (namespace, name);
        todo!()
    }

    /// List objects of a type, in one namespace or all (`None`).
    pub async fn list<T: Object>(&self, namespace: Option<&str>) -> Result<List<T>> {
        let _ = namespace;
        todo!()
    }

    /// Create an object. Fills `uid`, `creationTimestamp`, `resourceVersion`
    /// (and `generation` = 1); a missing namespace of a namespaced type is
    /// `default`. Returns the stored object.
    pub async fn create<T: Object>(&self, obj: &T) -> Result<T> {
        let _ = obj;
        todo!()
    }

    /// Replace an object, compare-and-swap on `metadata.resourceVersion`
    /// (which must be set). Returns the stored object.
    pub async fn update<T: Object>(&self, obj: &T) -> Result<T> {
        let _ = obj;
        todo!()
    }

    /// Read-modify-write with retry on conflict: `f` is applied to the
    /// current object until the swap succeeds. `f` returning `false` means
    /// "no change needed" and nothing is written.
    pub async fn modify<T: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
        f: impl FnMut(&mut T) -> bool + Send,
    ) -> Result<T> {
        let _ = (namespace, name, f);
        todo!()
    }

    /// Delete an object; returns its last state, or `None` if absent.
    pub async fn delete<T: Object>(&self, namespace: Option<&str>, name: &str) -> Result<Option<T>> {
        let _ = (namespace, name);
        todo!()
    }

    /// Every change to objects of type `T` (one namespace or all) after
    /// `revision`, in order.
    pub fn watch<T: Object>(&self, namespace: Option<&str>, revision: i64) -> WatchStream<T> {
        let _ = (namespace, revision);
        todo!()
    }

    /// List, then watch from the list's revision; on any watch error
    /// (disconnect, compaction) log it, back off and re-list, yielding a
    /// fresh [`Change::Synced`]. Never ends; errors never reach the caller.
    /// The base of every controller loop.
    pub fn reflect<T: Object>(&self, namespace: Option<&str>) -> ChangeStream<T> {
        let _ = namespace;
        todo!()
    }

    /// Untyped access for the CLI: get the JSON of one object.
    pub async fn get_value(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<serde_json::Value>> {
        let _ = (ty, namespace, name);
        todo!()
    }

    /// Untyped list.
    pub async fn list_values(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
    ) -> Result<List<serde_json::Value>> {
        let _ = (ty, namespace);
        todo!()
    }

    /// Untyped create (same defaults as [`Store::create`]).
    pub async fn create_value(
        &self,
        ty: &ResourceType,
        obj: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let _ = (ty, obj);
        todo!()
    }

    /// Untyped compare-and-swap update.
    pub async fn update_value(
        &self,
        ty: &ResourceType,
        obj: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let _ = (ty, obj);
        todo!()
    }

    /// Untyped delete.
    pub async fn delete_value(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<serde_json::Value>> {
        let _ = (ty, namespace, name);
        todo!()
    }
}
