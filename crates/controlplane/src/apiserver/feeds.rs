//! Shared watch feeds: one store watch per kind, however many API
//! watches of it are open, fanned out to them.
//!
//! A kind's feed starts at the revision of the first watch that needs it
//! and follows the store from then on. It keeps its last [`RECENT`]
//! events, so that a watch starting from a revision the feed has passed
//! replays them first. A watch from before them (the feed's `floor`), or
//! whose feed ended (a store error, a compacted start), reads the store
//! directly instead, which also gives it the right answer for a
//! compacted revision (410). Each event is decoded once and, for watches
//! of plain objects, encoded once: its line is shared by every watch it
//! goes to.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use api::ResourceType;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use store::{Store, WatchEvent};
use tokio::sync::broadcast;
use toolkit::OwnedTask;

/// Events each feed keeps for watches that start behind it.
pub const RECENT: usize = 1024;
/// Events a watch may fall behind its feed before it is moved off it
/// (it re-subscribes from its last revision: a replay, or the store).
pub const LAG: usize = 4096;

/// One change of a kind, as every watch of it gets it.
#[derive(Debug)]
pub struct Event {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// The object, with its resourceVersion.
    pub object: Value,
    /// Its store revision.
    pub revision: i64,
    line: OnceLock<Bytes>,
}

impl Event {
    /// An event of the store's.
    pub fn new(event: WatchEvent<Value>) -> Self {
        let (kind, object) = match event {
            WatchEvent::Added(o) => ("ADDED", o),
            WatchEvent::Modified(o) => ("MODIFIED", o),
            WatchEvent::Deleted(o) => ("DELETED", o),
        };
        Self {
            kind,
            revision: revision_of(&object),
            object,
            line: OnceLock::new(),
        }
    }

    /// The watch line of the event as it is (`{"type":…,"object":…}`
    /// and a newline), encoded by the first watch that sends it.
    pub fn line(&self) -> Bytes {
        self.line
            .get_or_init(|| encode_line(self.kind, &self.object))
            .clone()
    }

    /// The object's namespace.
    pub fn namespace(&self) -> Option<&str> {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }
}

/// `{"type":<kind>,"object":<object>}` and a newline.
pub fn encode_line(kind: &str, object: &Value) -> Bytes {
    let mut bytes = Vec::with_capacity(256);
    bytes.extend_from_slice(b"{\"type\":\"");
    bytes.extend_from_slice(kind.as_bytes());
    bytes.extend_from_slice(b"\",\"object\":");
    serde_json::to_writer(&mut bytes, object).expect("JSON values encode");
    bytes.extend_from_slice(b"}\n");
    Bytes::from(bytes)
}

/// `metadata.resourceVersion` as a revision (0 when absent).
pub fn revision_of(object: &Value) -> i64 {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// What a watch gets from [`Feeds::subscribe`].
pub struct Subscription {
    /// The events after the asked revision that the feed had already.
    pub backlog: VecDeque<Arc<Event>>,
    /// Every later event.
    pub live: broadcast::Receiver<Arc<Event>>,
}

struct FeedState {
    /// Every event after this revision is in `recent` or still to come.
    floor: i64,
    recent: VecDeque<Arc<Event>>,
    /// `None` once the feed ended.
    tx: Option<broadcast::Sender<Arc<Event>>>,
}

struct Feed {
    state: Mutex<FeedState>,
    /// The store watch (ended when the feed is dropped).
    task: OnceLock<OwnedTask>,
}

impl Feed {
    fn push(&self, event: WatchEvent<Value>) {
        let event = Arc::new(Event::new(event));
        let mut st = lock(&self.state);
        st.recent.push_back(event.clone());
        if st.recent.len() > RECENT
            && let Some(old) = st.recent.pop_front()
        {
            st.floor = st.floor.max(old.revision);
        }
        if let Some(tx) = &st.tx {
            // No receiver is fine: the event stays in `recent`.
            let _ = tx.send(event);
        }
    }

    fn alive(&self) -> bool {
        lock(&self.state).tx.is_some()
    }
}

type FeedMap = Mutex<HashMap<(&'static str, &'static str), Arc<Feed>>>;

/// Every kind's feed. Cheap to clone; feeds stop when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Feeds {
    store: Store,
    feeds: Arc<FeedMap>,
}

impl Feeds {
    /// No feed yet: each starts with the first watch of its kind.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            feeds: Arc::default(),
        }
    }

    /// Every change of `ty` (all namespaces) after `revision`, or `None`
    /// when the kind's feed has passed it (read the store directly).
    pub fn subscribe(&self, ty: &'static ResourceType, revision: i64) -> Option<Subscription> {
        let feed = {
            let mut feeds = lock(&self.feeds);
            let key = (ty.group, ty.plural);
            match feeds.get(&key) {
                Some(feed) if feed.alive() => feed.clone(),
                _ => {
                    let feed = self.start(ty, revision);
                    feeds.insert(key, feed.clone());
                    feed
                }
            }
        };
        let st = lock(&feed.state);
        let tx = st.tx.as_ref()?;
        if revision < st.floor {
            return None;
        }
        Some(Subscription {
            backlog: st
                .recent
                .iter()
                .filter(|e| e.revision > revision)
                .cloned()
                .collect(),
            live: tx.subscribe(),
        })
    }

    /// A feed of `ty` from `revision`, its store watch running.
    fn start(&self, ty: &'static ResourceType, revision: i64) -> Arc<Feed> {
        let (tx, _) = broadcast::channel(LAG);
        let feed = Arc::new(Feed {
            state: Mutex::new(FeedState {
                floor: revision,
                recent: VecDeque::new(),
                tx: Some(tx),
            }),
            task: OnceLock::new(),
        });
        let mut events = self.store.watch_values(ty, None, revision);
        let weak: Weak<Feed> = Arc::downgrade(&feed);
        let task = OwnedTask::spawn(format!("watch-feed-{}", ty.plural), async move {
            let error = loop {
                let Some(event) = events.next().await else {
                    break "the store watch ended".to_string();
                };
                let Some(feed) = weak.upgrade() else { return };
                match event {
                    Ok(event) => feed.push(event),
                    Err(e) => break e.to_string(),
                }
            };
            tracing::debug!(kind = ty.kind, %error, "watch feed ended; its watches read the store");
            if let Some(feed) = weak.upgrade() {
                lock(&feed.state).tx = None;
            }
        });
        let _ = feed.task.set(task);
        feed
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn config_maps() -> &'static ResourceType {
        &api::lookup("configmaps").unwrap().ty
    }

    async fn create(store: &Store, ns: &str, name: &str) -> i64 {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}});
        revision_of(&store.create_value(config_maps(), &cm).await.unwrap())
    }

    async fn recv(sub: &mut Subscription) -> Arc<Event> {
        if let Some(e) = sub.backlog.pop_front() {
            return e;
        }
        tokio::time::timeout(Duration::from_secs(5), sub.live.recv())
            .await
            .expect("an event in time")
            .expect("the feed is alive")
    }

    #[tokio::test]
    async fn one_feed_serves_live_and_late_watches_in_order() {
        let store = Store::memory();
        let feeds = Feeds::new(store.clone());
        let start = create(&store, "a", "before").await;
        let mut first = feeds.subscribe(config_maps(), start).unwrap();
        let r1 = create(&store, "a", "one").await;
        let r2 = create(&store, "b", "two").await;
        let e = recv(&mut first).await;
        assert_eq!(
            (e.kind, e.revision, e.namespace()),
            ("ADDED", r1, Some("a"))
        );
        assert_eq!(recv(&mut first).await.revision, r2);
        // A watch from r1 replays r2 from the feed, then gets live events.
        let mut late = feeds.subscribe(config_maps(), r1).unwrap();
        assert_eq!(late.backlog.len(), 1);
        assert_eq!(recv(&mut late).await.revision, r2);
        store
            .delete_value(config_maps(), Some("a"), "one")
            .await
            .unwrap();
        let (a, b) = (recv(&mut first).await, recv(&mut late).await);
        assert!(Arc::ptr_eq(&a, &b), "one event for every watch");
        assert_eq!(a.kind, "DELETED");
        // Its line, encoded once: `{"type":…,"object":…}` and a newline.
        let line = a.line();
        assert!(line.ends_with(b"\n"));
        let line: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(line["type"], "DELETED");
        assert_eq!(line["object"]["metadata"]["name"], "one");
        assert_eq!(b.line(), a.line());
    }

    #[tokio::test]
    async fn watches_from_before_the_kept_events_read_the_store() {
        let store = Store::memory();
        let feeds = Feeds::new(store.clone());
        let start = create(&store, "a", "first").await;
        let mut sub = feeds.subscribe(config_maps(), start).unwrap();
        let mut last = start;
        for i in 0..=RECENT {
            last = create(&store, "a", &format!("cm-{i}")).await;
        }
        // Drain until the feed has seen every write.
        while recv(&mut sub).await.revision < last {}
        assert!(feeds.subscribe(config_maps(), start).is_none());
        let kept = feeds.subscribe(config_maps(), last - 10).unwrap();
        assert_eq!(kept.backlog.len(), 10);
    }

    #[tokio::test]
    async fn a_feed_that_ends_is_replaced_by_the_next_watch() {
        // History of 2 events: the first feed starts from a compacted
        // revision and ends at once.
        let store = Store::memory_with_history(2);
        let feeds = Feeds::new(store.clone());
        let old = create(&store, "a", "one").await;
        for name in ["two", "three", "four"] {
            create(&store, "a", name).await;
        }
        let mut stale = feeds.subscribe(config_maps(), old - 1).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), stale.live.recv()).await;
        assert!(matches!(
            ended,
            Ok(Err(broadcast::error::RecvError::Closed))
        ));
        let now = create(&store, "a", "five").await;
        let mut fresh = feeds.subscribe(config_maps(), now).unwrap();
        let six = create(&store, "a", "six").await;
        assert_eq!(recv(&mut fresh).await.revision, six);
    }
}
