//! Watches: a chunked stream of `{"type": ..., "object": ...}` lines.
//!
//! Without a resourceVersion (or with `"0"`) the stream starts with an
//! `ADDED` event for every current object, then follows changes from the
//! list's revision; with one it follows changes after it. A compacted
//! revision ends the stream with an `ERROR` event carrying a 410 Status
//! (clients re-list). Label and field selectors apply to each event: an
//! object that stops matching is reported `DELETED`, one that starts
//! matching `ADDED`. With `allowWatchBookmarks=true` a `BOOKMARK` carrying
//! the latest revision is sent every [`BOOKMARK_INTERVAL`].

use std::collections::HashSet;
use std::time::Duration;

use api::ResourceType;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use serde_json::{Value, json};
use store::{Store, WatchEvent};

use super::query::Query;
use super::render::{self, Shape};
use super::status::{ApiError, ApiResult};

/// How often an idle watch with bookmarks gets one.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);

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
    Event(&'static str, Value),
    Bookmark,
    Expired(i64),
}

/// Start a watch: the initial state (when asked for) and the change stream.
pub async fn start(store: &Store, req: WatchRequest) -> ApiResult<BoxStream<'static, Bytes>> {
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
    let changes = store
        .watch_values(ty, ns.as_deref(), from)
        .map(|event| match event {
            Ok(WatchEvent::Added(o)) => Line::Event("ADDED", o),
            Ok(WatchEvent::Modified(o)) => Line::Event("MODIFIED", o),
            Ok(WatchEvent::Deleted(o)) => Line::Event("DELETED", o),
            Err(store::Error::Compacted(rev)) => Line::Expired(rev),
            Err(e) => {
                tracing::debug!(error = %e, "watch ended");
                Line::Expired(-1)
            }
        });
    let changes = if req.query.bookmarks {
        let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval_at(
            tokio::time::Instant::now() + BOOKMARK_INTERVAL,
            BOOKMARK_INTERVAL,
        ))
        .map(|_| Line::Bookmark);
        stream::select(changes, ticks).boxed()
    } else {
        changes.boxed()
    };
    let initial = stream::iter(initial.into_iter().map(|o| Line::Event("ADDED", o)));
    let mut lines = initial.chain(changes);
    let mut filter = Filter {
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
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        loop {
            let next = match deadline {
                Some(at) => match tokio::time::timeout_at(at, lines.next()).await {
                    Ok(next) => next,
                    Err(_) => return,
                },
                None => lines.next().await,
            };
            let Some(line) = next else { return };
            let last = matches!(line, Line::Expired(_));
            if let Some(event) = filter.line(line) {
                let mut bytes = event.to_string().into_bytes();
                bytes.push(b'\n');
                if tx.send(Bytes::from(bytes)).await.is_err() {
                    return;
                }
            }
            if last {
                return;
            }
        }
    });
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
}

/// Turns store events into the events one watcher sees.
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
    fn line(&mut self, line: Line) -> Option<Value> {
        match line {
            Line::Event(kind, object) => self.event(kind, object),
            Line::Bookmark => Some(json!({
                "type": "BOOKMARK",
                "object": {
                    "kind": self.ty.kind,
                    "apiVersion": self.api_version,
                    "metadata": {"resourceVersion": self.revision.to_string()},
                },
            })),
            Line::Expired(rev) => {
                let error = if rev < 0 {
                    ApiError::unavailable("watch of the store ended; re-list")
                } else {
                    ApiError::expired(rev, None)
                };
                Some(json!({"type": "ERROR", "object": error.to_status()}))
            }
        }
    }

    fn event(&mut self, kind: &'static str, object: Value) -> Option<Value> {
        if let Some(rev) = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|rv| rv.parse().ok())
        {
            self.revision = self.revision.max(rev);
        }
        let matches = self.query.selects(self.ty, &object);
        let key = key(&object);
        let seen = self.known.as_ref().map(|k| k.contains(&key));
        let kind = match (kind, matches, seen) {
            ("DELETED", _, Some(false)) => return None,
            ("DELETED", true, _) => "DELETED",
            ("DELETED", false, _) => return None,
            (_, true, Some(false)) => "ADDED",
            (_, true, _) => kind,
            (_, false, Some(true)) => "DELETED",
            (_, false, _) => return None,
        };
        if let Some(known) = &mut self.known {
            if kind == "DELETED" {
                known.remove(&key);
            } else {
                known.insert(key);
            }
        }
        let object = match self.shape {
            Shape::Objects => object,
            Shape::Table(include) => {
                let rv = self.revision.to_string();
                let with_columns = !std::mem::replace(&mut self.columns_sent, true);
                Shape::table(include, self.ty, &[object], &rv, with_columns)
            }
        };
        Some(json!({"type": kind, "object": object}))
    }
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
