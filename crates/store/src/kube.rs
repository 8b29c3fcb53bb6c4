//! The Kubernetes API backend: the store's operations as requests to an
//! API server with kube-rs (the lab's or a real cluster's), so that a
//! component never knows which one it talks to.
//!
//! | store            | API                                                        |
//! |------------------|------------------------------------------------------------|
//! | get / list       | `GET` object / collection; revision = list resourceVersion |
//! | create           | `POST` (409 AlreadyExists)                                 |
//! | update           | `PUT` (409 Conflict)                                       |
//! | update_status    | `PUT …/status` for kinds that serve status as a subresource, else `PUT` |
//! | delete           | `DELETE` with grace period 0 (removed now, as on etcd); the last state as returned |
//! | watch            | `GET ?watch=true&resourceVersion=R&allowWatchBookmarks=true`, re-opened from the last seen revision when the server ends it; `410` → [`Error::Compacted`] |
//!
//! Revisions are the API's resourceVersions parsed as integers (they are
//! etcd revisions on the lab's API server and on real ones).

use api::ResourceType;
use futures::{StreamExt, stream};
use kube::core::params::{DeleteParams, GetParams, ListParams, PostParams, WatchParams};
use kube::core::{Request, WatchEvent as KubeEvent};
use serde_json::Value;

use crate::{Error, List, Result, WatchEvent, WatchStream};

/// A store backed by a Kubernetes API server.
#[derive(Clone)]
pub(crate) struct KubeBackend {
    client: kube::Client,
    server: String,
}

impl KubeBackend {
    pub fn new(client: kube::Client, server: String) -> Self {
        Self { client, server }
    }

    pub fn describe(&self) -> String {
        format!("kubernetes {}", self.server)
    }

    /// Check the server answers.
    pub async fn probe(&self) -> Result<()> {
        self.client
            .apiserver_version()
            .await
            .map(|_| ())
            .map_err(|e| {
                Error::Backend(format!("cannot reach the API server {}: {e}", self.server))
            })
    }

    pub async fn get(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>> {
        let req = collection(ty, namespace)
            .get(name, &GetParams::default())
            .map_err(request_error)?;
        optional(ty, name, self.client.request::<Value>(req).await)
    }

    pub async fn list(&self, ty: &ResourceType, namespace: Option<&str>) -> Result<List<Value>> {
        let req = collection(ty, namespace)
            .list(&ListParams::default())
            .map_err(request_error)?;
        let mut list: Value = self
            .client
            .request(req)
            .await
            .map_err(|e| api_error(ty, "", e))?;
        let revision = revision_of(&list["metadata"]);
        let items = match list.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items.into_iter().map(|i| typed(ty, i)).collect(),
            _ => Vec::new(),
        };
        Ok(List { items, revision })
    }

    pub async fn create(&self, ty: &ResourceType, obj: &Value) -> Result<Value> {
        let (ns, name) = identity(ty, obj);
        let req = collection(ty, ns.as_deref())
            .create(&PostParams::default(), encode(obj)?)
            .map_err(request_error)?;
        self.client
            .request(req)
            .await
            .map(|v| typed(ty, v))
            .map_err(|e| api_error(ty, &name, e))
    }

    /// `PUT` the object (its status is ignored by the server for kinds
    /// that serve status as a subresource).
    pub async fn update(&self, ty: &ResourceType, obj: &Value) -> Result<Value> {
        self.put(ty, obj, None).await
    }

    /// `PUT` the object's status (through the subresource where there is
    /// one).
    pub async fn update_status(&self, ty: &ResourceType, obj: &Value) -> Result<Value> {
        let subresource = ty.has_status_subresource().then_some("status");
        self.put(ty, obj, subresource).await
    }

    async fn put(
        &self,
        ty: &ResourceType,
        obj: &Value,
        subresource: Option<&str>,
    ) -> Result<Value> {
        let (ns, name) = identity(ty, obj);
        let api = collection(ty, ns.as_deref());
        let params = PostParams::default();
        let req = match subresource {
            Some(sub) => api.replace_subresource(sub, &name, &params, encode(obj)?),
            None => api.replace(&name, &params, encode(obj)?),
        }
        .map_err(request_error)?;
        self.client
            .request(req)
            .await
            .map(|v| typed(ty, v))
            .map_err(|e| api_error(ty, &name, e))
    }

    pub async fn delete(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>> {
        let req = collection(ty, namespace)
            .delete(name, &DeleteParams::background().grace_period(0))
            .map_err(request_error)?;
        optional(ty, name, self.client.request::<Value>(req).await)
    }

    /// Every change after `revision`; re-opened from the last revision
    /// seen (events and bookmarks) when the server closes the stream;
    /// ended by the first error.
    pub fn watch(
        &self,
        ty: &ResourceType,
        namespace: Option<String>,
        revision: i64,
    ) -> WatchStream<Value> {
        let state = Watch {
            backend: self.clone(),
            ty: *ty,
            namespace,
            revision,
            current: None,
            failed: false,
        };
        stream::unfold(state, |mut w| async move {
            let next = w.next().await?;
            Some((next, w))
        })
        .boxed()
    }

    /// One watch request from `revision`.
    async fn open_watch(
        &self,
        ty: ResourceType,
        namespace: Option<&str>,
        revision: i64,
    ) -> Result<stream::BoxStream<'static, Result<Item>>> {
        let req = collection(&ty, namespace)
            .watch(&WatchParams::default(), &revision.to_string())
            .map_err(request_error)?;
        let events = self
            .client
            .request_events::<Value>(req)
            .await
            .map_err(|e| watch_error(revision, e))?;
        Ok(events
            .map(move |event| match event {
                Ok(KubeEvent::Added(o)) => Ok(Item::Event(WatchEvent::Added(typed(&ty, o)))),
                Ok(KubeEvent::Modified(o)) => Ok(Item::Event(WatchEvent::Modified(typed(&ty, o)))),
                Ok(KubeEvent::Deleted(o)) => Ok(Item::Event(WatchEvent::Deleted(typed(&ty, o)))),
                Ok(KubeEvent::Bookmark(b)) => Ok(Item::Bookmark(
                    b.metadata.resource_version.parse().unwrap_or(revision),
                )),
                Ok(KubeEvent::Error(status)) if status.code == 410 => {
                    Err(Error::Compacted(revision))
                }
                Ok(KubeEvent::Error(status)) => {
                    Err(Error::Backend(format!("watch: {}", status.message)))
                }
                Err(e) => Err(watch_error(revision, e)),
            })
            .boxed())
    }
}

/// What one watch response line carries.
enum Item {
    Event(WatchEvent<Value>),
    Bookmark(i64),
}

/// A watch that re-opens itself from its last revision.
struct Watch {
    backend: KubeBackend,
    ty: ResourceType,
    namespace: Option<String>,
    revision: i64,
    current: Option<stream::BoxStream<'static, Result<Item>>>,
    failed: bool,
}

impl Watch {
    async fn next(&mut self) -> Option<Result<WatchEvent<Value>>> {
        if self.failed {
            return None;
        }
        loop {
            let events = match self.current.as_mut() {
                Some(events) => events,
                None => match self
                    .backend
                    .open_watch(self.ty, self.namespace.as_deref(), self.revision)
                    .await
                {
                    Ok(s) => self.current.insert(s),
                    Err(e) => return Some(self.fail(e)),
                },
            };
            match events.next().await {
                Some(Ok(Item::Event(event))) => {
                    let (WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o)) =
                        &event;
                    self.revision = self.revision.max(revision_of(&o["metadata"]));
                    return Some(Ok(event));
                }
                Some(Ok(Item::Bookmark(rev))) => self.revision = self.revision.max(rev),
                Some(Err(e)) => return Some(self.fail(e)),
                None => self.current = None,
            }
        }
    }

    fn fail(&mut self, e: Error) -> Result<WatchEvent<Value>> {
        self.failed = true;
        self.current = None;
        Err(e)
    }
}

/// The request builder of a kind's collection in one namespace or all.
fn collection(ty: &ResourceType, namespace: Option<&str>) -> Request {
    let root = if ty.group.is_empty() {
        format!("/api/{}", ty.version)
    } else {
        format!("/apis/{}/{}", ty.group, ty.version)
    };
    Request::new(match (ty.namespaced, namespace) {
        (true, Some(ns)) => format!("{root}/namespaces/{ns}/{}", ty.plural),
        _ => format!("{root}/{}", ty.plural),
    })
}

/// Namespace (`default` when a namespaced object names none) and name.
fn identity(ty: &ResourceType, obj: &Value) -> (Option<String>, String) {
    let meta = &obj["metadata"];
    let ns = ty
        .namespaced
        .then(|| meta["namespace"].as_str().unwrap_or("default").to_string());
    (ns, meta["name"].as_str().unwrap_or("").to_string())
}

/// Objects of built-in lists come without `apiVersion`/`kind`: add them.
fn typed(ty: &ResourceType, mut obj: Value) -> Value {
    if let Some(map) = obj.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| ty.api_version().into());
        map.entry("kind").or_insert_with(|| ty.kind.into());
    }
    obj
}

fn revision_of(meta: &Value) -> i64 {
    meta["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

fn encode(obj: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(obj).map_err(|e| Error::Invalid(format!("cannot encode object: {e}")))
}

fn request_error(e: kube::core::request::Error) -> Error {
    Error::Invalid(format!("cannot build request: {e}"))
}

/// The object an API answer carries, `None` when it is a 404.
fn optional(ty: &ResourceType, name: &str, answer: kube::Result<Value>) -> Result<Option<Value>> {
    match answer {
        Ok(v) => Ok(Some(typed(ty, v))),
        Err(e) if status_code(&e) == Some(404) => Ok(None),
        Err(e) => Err(api_error(ty, name, e)),
    }
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Map an API error to the store's.
fn api_error(ty: &ResourceType, name: &str, e: kube::Error) -> Error {
    let kube::Error::Api(status) = &e else {
        return Error::Backend(e.to_string());
    };
    match (status.code, status.reason.as_str()) {
        (404, _) => Error::NotFound {
            kind: ty.kind.to_string(),
            name: name.to_string(),
        },
        (409, "AlreadyExists") => Error::AlreadyExists {
            kind: ty.kind.to_string(),
            name: name.to_string(),
        },
        (409, _) => Error::Conflict {
            kind: ty.kind.to_string(),
            name: name.to_string(),
            expected: String::new(),
        },
        (400 | 422, _) => Error::Invalid(status.message.clone()),
        (410, _) => Error::Compacted(0),
        _ => Error::Backend(format!("{} ({})", status.message, status.code)),
    }
}

fn watch_error(revision: i64, e: kube::Error) -> Error {
    match status_code(&e) {
        Some(410) => Error::Compacted(revision),
        _ => Error::Backend(format!("watch: {e}")),
    }
}
