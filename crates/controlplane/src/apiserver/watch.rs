//! Watches: a chunked stream of `{"type": ..., "object": ...}` lines.
//!
//! Without a resourceVersion (or with `"0"`) the stream starts with an
//! `ADDED` event for every current object, then follows changes from the
//! list's revision; with one it follows changes after it. Changes come
//! from the kind's shared feed ([`super::feeds`]: one store watch per
//! kind, each event decoded and encoded once for all watches), or from a
//! store watch of this request's own when the feed cannot serve it. A
//! compacted revision ends the stream with an `ERROR` event carrying a
//! 410 Status (clients re-list). Label and field selectors apply to each
//! event: an object that stops matching is reported `DELETED`, one that
//! starts matching `ADDED`. With `allowWatchBookmarks=true` a `BOOKMARK`
//! carrying the latest revision is sent every [`BOOKMARK_INTERVAL`].
//! Lines that are ready together go out as one chunk.
//!
//! The response body is the watch itself, polled by its connection: no
//! task or channel of its own.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use api::ResourceType;
use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use serde_json::{Value, json};
use store::{Store, WatchEvent, WatchStream};
use tokio::sync::broadcast::error::RecvError;

use super::feeds::{self, Event, Feeds};
use super::query::Query;
use super::render::{self, Shape};
use super::status::{ApiError, ApiResult};

/// How often an idle watch with bookmarks gets one.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);

/// Lines sent as one chunk at most (when that many are ready).
const CHUNK_LINES: usize = 64;

/// What a watch has to know about its request.
pub struct WatchRequest {
    /// The watched kind.
    pub ty: &'static ResourceType,
    /// The version of the URL.
    pub version: String,
    /// The namespace of the URL.
    pub namespace: Option<String>,
    /// Selectors and options.
    pub query: Query,
    /// Objects or Tables.
    pub shape: Shape,
}

/// One line of the stream.
enum Line {
    /// A change read by this watch itself (initial state, own store watch).
    Event(&'static str, Value),
    /// A change of the kind's shared feed.
    Shared(Arc<Event>),
    Bookmark,
    Expired(i64),
}

/// Start a watch: the initial state (when asked for) and the change stream.
pub async fn start(
    store: &Store,
    feeds: &Feeds,
    req: WatchRequest,
) -> ApiResult<BoxStream<'static, Bytes>> {
    let ty = req.ty;
    let ns = req.namespace.clone();
    let (initial, from, known) = match req.query.resource_version.as_deref() {
        None | Some("0") => {
            let (items, revision) =
                super::resources::list_selected(store, ty, ns.as_deref(), &req.query).await?;
            let known: HashSet<String> = items.iter().map(key).collect();
            (items, revision, Some(known))
        }
        Some(rv) => {
            let rev: i64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?;
            (Vec::new(), rev, None)
        }
    };
    let changes = Changes {
        store: store.clone(),
        feeds: feeds.clone(),
        ty,
        namespace: ns,
        revision: from,
        source: Source::Unopened,
    };
    let filter = Filter {
        ty,
        api_version: render::api_version(ty, &req.version),
        query: req.query,
        known,
        revision: from,
        shape: req.shape,
        columns_sent: false,
    };
    let deadline = filter
        .query
        .timeout_seconds
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let bookmarks = filter.query.bookmarks.then(|| {
        tokio::time::interval_at(
            tokio::time::Instant::now() + BOOKMARK_INTERVAL,
            BOOKMARK_INTERVAL,
        )
    });
    let state = Body {
        initial: initial.into_iter(),
        changes,
        filter,
        bookmarks,
        ended: false,
    };
    // Polled by the connection itself (no task, no channel): a watcher
    // that does not read stops pulling from the feed, falls behind it and
    // is moved to a replay or its own store watch.
    let lines = futures::stream::unfold(state, |mut s| async move {
        let line = s.next().await?;
        Some((line, s))
    });
    let lines = match deadline {
        Some(at) => lines.take_until(tokio::time::sleep_until(at)).left_stream(),
        None => lines.right_stream(),
    };
    Ok(lines.ready_chunks(CHUNK_LINES).map(join).boxed())
}

/// The state of one watch's response.
struct Body {
    initial: std::vec::IntoIter<Value>,
    changes: Changes,
    filter: Filter,
    bookmarks: Option<tokio::time::Interval>,
    ended: bool,
}

impl Body {
    /// The next line to send; `None` after the last one.
    async fn next(&mut self) -> Option<Bytes> {
        while !self.ended {
            let line = match self.initial.next() {
                Some(object) => Line::Event("ADDED", object),
                None => {
                    let bookmarks = &mut self.bookmarks;
                    tokio::select! {
                        line = self.changes.next() => line,
                        _ = async { bookmarks.as_mut()?.tick().await; Some(()) }, if bookmarks.is_some() => Line::Bookmark,
                    }
                }
            };
            self.ended = matches!(line, Line::Expired(_));
            if let Some(line) = self.filter.line(line) {
                return Some(line);
            }
        }
        None
    }
}

/// Lines that were ready together, as one chunk.
fn join(lines: Vec<Bytes>) -> Bytes {
    match <[Bytes; 1]>::try_from(lines) {
        Ok([line]) => line,
        Err(lines) => {
            let mut chunk = BytesMut::with_capacity(lines.iter().map(Bytes::len).sum());
            for line in &lines {
                chunk.extend_from_slice(line);
            }
            chunk.freeze()
        }
    }
}

/// Where a watch's changes come from.
enum Source {
    Unopened,
    /// The kind's feed: what it had after our revision, then its events.
    Feed(
        VecDeque<Arc<Event>>,
        tokio::sync::broadcast::Receiver<Arc<Event>>,
    ),
    /// A store watch of our own.
    Store(WatchStream<Value>),
}

/// The changes after a revision of one kind (in one namespace or all).
struct Changes {
    store: Store,
    feeds: Feeds,
    ty: &'static ResourceType,
    namespace: Option<String>,
    /// The last revision delivered (or the start).
    revision: i64,
    source: Source,
}

impl Changes {
    /// Follow the feed from our revision, or the store when it cannot.
    fn open(&mut self) {
        self.source = match self.feeds.subscribe(self.ty, self.revision) {
            Some(sub) => Source::Feed(sub.backlog, sub.live),
            None => self.own_watch(),
        };
    }

    fn own_watch(&self) -> Source {
        Source::Store(
            self.store
                .watch_values(self.ty, self.namespace.as_deref(), self.revision),
        )
    }

    /// The next change, or the end (`Expired`). Cancel-safe.
    async fn next(&mut self) -> Line {
        loop {
            match &mut self.source {
                Source::Unopened => self.open(),
                Source::Feed(backlog, live) => {
                    let event = match backlog.pop_front() {
                        Some(event) => event,
                        None => match live.recv().await {
                            Ok(event) => event,
                            // Too slow for the feed: pick up from our
                            // revision again (a replay, or the store).
                            Err(RecvError::Lagged(_)) => {
                                self.open();
                                continue;
                            }
                            // The feed ended: the store itself tells us
                            // whether our revision is still there.
                            Err(RecvError::Closed) => {
                                self.source = self.own_watch();
                                continue;
                            }
                        },
                    };
                    if event.revision <= self.revision {
                        continue;
                    }
                    self.revision = event.revision;
                    if let Some(ns) = &self.namespace
                        && event.namespace() != Some(ns.as_str())
                    {
                        continue;
                    }
                    return Line::Shared(event);
                }
                Source::Store(events) => {
                    return match events.next().await {
                        Some(Ok(event)) => {
                            let (kind, object) = match event {
                                WatchEvent::Added(o) => ("ADDED", o),
                                WatchEvent::Modified(o) => ("MODIFIED", o),
                                WatchEvent::Deleted(o) => ("DELETED", o),
                            };
                            self.revision = self.revision.max(feeds::revision_of(&object));
                            Line::Event(kind, object)
                        }
                        Some(Err(store::Error::Compacted(rev))) => Line::Expired(rev),
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "watch ended");
                            Line::Expired(-1)
                        }
                        None => Line::Expired(-1),
                    };
                }
            }
        }
    }
}

/// Turns store events into the lines one watcher sees.
struct Filter {
    ty: &'static ResourceType,
    api_version: String,
    query: Query,
    /// Keys of the objects the watcher has seen matching; `None` when it
    /// started from a resourceVersion (prior state unknown).
    known: Option<HashSet<String>>,
    revision: i64,
    shape: Shape,
    /// Whether a Table event carried the column definitions already.
    columns_sent: bool,
}

impl Filter {
    fn line(&mut self, line: Line) -> Option<Bytes> {
        match line {
            Line::Event(kind, object) => {
                let kind = self.decide(kind, &object, feeds::revision_of(&object))?;
                Some(self.render(kind, object))
            }
            Line::Shared(event) => {
                let kind = self.decide(event.kind, &event.object, event.revision)?;
                Some(match self.shape {
                    Shape::Objects if kind == event.kind => event.line(),
                    _ => self.render(kind, event.object.clone()),
                })
            }
            Line::Bookmark => Some(encode(&json!({
                "type": "BOOKMARK",
                "object": {
                    "kind": self.ty.kind,
                    "apiVersion": self.api_version,
                    "metadata": {"resourceVersion": self.revision.to_string()},
                },
            }))),
            Line::Expired(rev) => {
                let error = if rev < 0 {
                    ApiError::unavailable("watch of the store ended; re-list")
                } else {
                    ApiError::expired(rev, None)
                };
                Some(encode(
                    &json!({"type": "ERROR", "object": error.to_status()}),
                ))
            }
        }
    }

    /// The event type this watcher gets for a change (`None`: nothing),
    /// given its selectors and what it has seen.
    fn decide(&mut self, kind: &'static str, object: &Value, rev: i64) -> Option<&'static str> {
        self.revision = self.revision.max(rev);
        let matches = self.query.selects(self.ty, object);
        let Some(known) = &mut self.known else {
            return match (kind, matches) {
                (_, true) => Some(kind),
                (_, false) => None,
            };
        };
        let key = key(object);
        let seen = known.contains(&key);
        let kind = match (kind, matches, seen) {
            ("DELETED", _, false) => return None,
            ("DELETED", true, _) => "DELETED",
            ("DELETED", false, _) => return None,
            (_, true, false) => "ADDED",
            (_, true, true) => kind,
            (_, false, true) => "DELETED",
            (_, false, false) => return None,
        };
        if kind == "DELETED" {
            known.remove(&key);
        } else {
            known.insert(key);
        }
        Some(kind)
    }

    fn render(&mut self, kind: &str, object: Value) -> Bytes {
        match self.shape {
            Shape::Objects => feeds::encode_line(kind, &object),
            Shape::Table(include) => {
                let rv = self.revision.to_string();
                let with_columns = !std::mem::replace(&mut self.columns_sent, true);
                let table = Shape::table(include, self.ty, &[object], &rv, with_columns);
                feeds::encode_line(kind, &table)
            }
        }
    }
}

fn encode(line: &Value) -> Bytes {
    let mut bytes = line.to_string().into_bytes();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn key(object: &Value) -> String {
    let field = |f: &str| {
        object
            .pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    format!("{}/{}", field("namespace"), field("name"))
}
