//! In-memory backend (tests): a sorted map of entries, a global revision
//! counter, and a bounded log of recent changes that watches read from.
//!
//! Every write happens under one mutex and bumps the revision by exactly
//! one, so the log is contiguous; watchers are woken through a
//! `tokio::sync::watch` channel carrying the current revision. A watch that
//! asks for changes older than the log gets [`Error::Compacted`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use tokio::sync::watch;

use crate::Error;
use crate::backend::{Kv, RawEvent, RawWatch, Swap};

/// How many changes the memory backend keeps for watches by default.
pub(crate) const DEFAULT_HISTORY: usize = 10_000;

/// Shared handle on the in-memory state.
#[derive(Clone)]
pub(crate) struct MemoryBackend {
    state: Arc<Mutex<State>>,
    revision_tx: Arc<watch::Sender<i64>>,
}

struct State {
    revision: i64,
    entries: BTreeMap<String, Kv>,
    /// The last changes, oldest first, revisions contiguous.
    log: VecDeque<(i64, RawEvent)>,
    history: usize,
    /// Changes at or before this revision may be missing from the log.
    compacted: i64,
}

impl MemoryBackend {
    /// An empty store keeping `history` changes (at least one).
    pub fn new(history: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                revision: 0,
                entries: BTreeMap::new(),
                log: VecDeque::new(),
                history: history.max(1),
                compacted: 0,
            })),
            revision_tx: Arc::new(watch::Sender::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-written
        // (every write is a few infallible steps), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<Kv> {
        self.lock().entries.get(key).cloned()
    }

    pub fn list(&self, prefix: &str) -> (Vec<Kv>, i64) {
        let state = self.lock();
        let items = state
            .entries
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect();
        (items, state.revision)
    }

    pub fn create(&self, key: &str, value: Vec<u8>) -> Option<i64> {
        let mut state = self.lock();
        if state.entries.contains_key(key) {
            return None;
        }
        let revision = state.revision + 1;
        let kv = Kv {
            key: key.to_string(),
            value,
            create_revision: revision,
            mod_revision: revision,
        };
        Some(self.commit(&mut state, key, Some(kv.clone()), RawEvent::Put(kv)))
    }

    pub fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> Swap {
        let mut state = self.lock();
        let Some(current) = state.entries.get(key) else {
            return Swap::Missing;
        };
        if current.mod_revision != expected {
            return Swap::Conflict;
        }
        let kv = Kv {
            key: key.to_string(),
            value,
            create_revision: current.create_revision,
            mod_revision: state.revision + 1,
        };
        Swap::Written(self.commit(&mut state, key, Some(kv.clone()), RawEvent::Put(kv)))
    }

    pub fn delete(&self, key: &str) -> Option<(Kv, i64)> {
        let mut state = self.lock();
        let prev = state.entries.get(key)?.clone();
        let revision = state.revision + 1;
        let event = RawEvent::Delete {
            prev: prev.clone(),
            revision,
        };
        self.commit(&mut state, key, None, event);
        Some((prev, revision))
    }

    /// Apply one write at the next revision, log it and wake watchers.
    fn commit(&self, state: &mut State, key: &str, entry: Option<Kv>, event: RawEvent) -> i64 {
        state.revision += 1;
        let revision = state.revision;
        match entry {
            Some(kv) => state.entries.insert(key.to_string(), kv),
            None => state.entries.remove(key),
        };
        state.log.push_back((revision, event));
        while state.log.len() > state.history {
            if let Some((dropped, _)) = state.log.pop_front() {
                state.compacted = dropped;
            }
        }
        self.revision_tx.send_replace(revision);
        revision
    }

    /// The logged changes under `prefix` after `after`, and the revision
    /// they were read up to; `Err` when the log no longer reaches back.
    fn changes_since(&self, prefix: &str, after: i64) -> Result<(Vec<RawEvent>, i64), Error> {
        let state = self.lock();
        if after < state.compacted {
            return Err(Error::Compacted(after));
        }
        let events = state
            .log
            .iter()
            .filter(|(revision, event)| *revision > after && event_key(event).starts_with(prefix))
            .map(|(_, event)| event.clone())
            .collect();
        Ok((events, state.revision.max(after)))
    }

    pub fn watch(&self, prefix: String, after: i64) -> RawWatch {
        struct Cursor {
            backend: MemoryBackend,
            revision_rx: watch::Receiver<i64>,
            prefix: String,
            seen: i64,
            pending: VecDeque<RawEvent>,
            failed: bool,
        }
        let cursor = Cursor {
            backend: self.clone(),
            revision_rx: self.revision_tx.subscribe(),
            prefix,
            seen: after,
            pending: VecDeque::new(),
            failed: false,
        };
        futures::stream::unfold(cursor, |mut cursor| async move {
            loop {
                if cursor.failed {
                    return None;
                }
                if let Some(event) = cursor.pending.pop_front() {
                    return Some((Ok(event), cursor));
                }
                let seen = cursor.seen;
                // The sender lives in `cursor.backend`, so this never fails.
                let _ = cursor.revision_rx.wait_for(|current| *current > seen).await;
                match cursor.backend.changes_since(&cursor.prefix, seen) {
                    Ok((events, upto)) => {
                        cursor.pending.extend(events);
                        cursor.seen = upto;
                    }
                    Err(e) => {
                        cursor.failed = true;
                        return Some((Err(e), cursor));
                    }
                }
            }
        })
        .boxed()
    }
}

fn event_key(event: &RawEvent) -> &str {
    match event {
        RawEvent::Put(kv) => &kv.key,
        RawEvent::Delete { prev, .. } => &prev.key,
    }
}
