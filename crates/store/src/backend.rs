//! The raw key-value layer under [`crate::Store`]: keys, JSON bytes and
//! revisions, with one implementation per backend behind an enum.
//!
//! It knows nothing of objects or metadata (that is [`crate::values`]);
//! it must give every backend the same revision semantics: one global
//! revision bumped by each write, compare-and-swap on an entry's mod
//! revision, and ordered change streams that end after their first error.

use std::sync::Arc;

use futures::stream::BoxStream;

use crate::{Result, etcd::EtcdBackend, memory::MemoryBackend};

/// One stored entry.
#[derive(Debug, Clone)]
pub(crate) struct Kv {
    /// Store key.
    pub key: String,
    /// JSON bytes.
    pub value: Vec<u8>,
    /// Revision that created the key (first write since it last was absent).
    pub create_revision: i64,
    /// Revision of the last write to the key.
    pub mod_revision: i64,
}

/// Outcome of a compare-and-swap write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Swap {
    /// Written at this revision.
    Written(i64),
    /// The key's mod revision was not the expected one.
    Conflict,
    /// The key does not exist.
    Missing,
}

/// One change seen by a raw watch.
#[derive(Debug, Clone)]
pub(crate) enum RawEvent {
    /// A write: creation when `create_revision == mod_revision`.
    Put(Kv),
    /// A deletion: the last stored entry and the revision of the deletion.
    Delete {
        /// The entry as it was before the deletion.
        prev: Kv,
        /// Revision of the deletion.
        revision: i64,
    },
}

/// A stream of raw changes; ends after its first error.
pub(crate) type RawWatch = BoxStream<'static, Result<RawEvent>>;

/// The backend of a [`crate::Store`].
#[derive(Clone)]
pub(crate) enum Backend {
    /// In-process maps (tests).
    Memory(MemoryBackend),
    /// A real etcd (boxed: the client is large).
    Etcd(Arc<EtcdBackend>),
}

impl Backend {
    /// A short description for `Debug` and errors.
    pub fn describe(&self) -> String {
        match self {
            Self::Memory(_) => "memory".to_string(),
            Self::Etcd(etcd) => format!("etcd {}", etcd.endpoints()),
        }
    }

    /// The entry at `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Kv>> {
        match self {
            Self::Memory(m) => Ok(m.get(key)),
            Self::Etcd(e) => e.get(key).await,
        }
    }

    /// Every entry under `prefix`, sorted by key, and the revision of the read.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Kv>, i64)> {
        match self {
            Self::Memory(m) => Ok(m.list(prefix)),
            Self::Etcd(e) => e.list(prefix).await,
        }
    }

    /// Write `value` at `key` if the key is absent: the new revision, or
    /// `None` when the key exists.
    pub async fn create(&self, key: &str, value: Vec<u8>) -> Result<Option<i64>> {
        match self {
            Self::Memory(m) => Ok(m.create(key, value)),
            Self::Etcd(e) => e.create(key, value).await,
        }
    }

    /// Write `value` at `key` if the key's mod revision is `expected`.
    pub async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> Result<Swap> {
        match self {
            Self::Memory(m) => Ok(m.update(key, value, expected)),
            Self::Etcd(e) => e.update(key, value, expected).await,
        }
    }

    /// Delete `key`: its last entry and the revision of the deletion, or
    /// `None` when absent.
    pub async fn delete(&self, key: &str) -> Result<Option<(Kv, i64)>> {
        match self {
            Self::Memory(m) => Ok(m.delete(key)),
            Self::Etcd(e) => e.delete(key).await,
        }
    }

    /// Every change under `prefix` after revision `after`, in order.
    pub fn watch(&self, prefix: String, after: i64) -> RawWatch {
        match self {
            Self::Memory(m) => m.watch(prefix, after),
            Self::Etcd(e) => e.watch(prefix, after),
        }
    }
}
