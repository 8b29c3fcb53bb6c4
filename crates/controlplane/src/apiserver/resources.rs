//! The verbs on resources: get, list, create, update, patch, delete and
//! deletecollection, with the `status` and `scale` subresources and pod
//! eviction, over the cluster store. Watches are in `watch`.
//!
//! The store keeps server-owned metadata (uid, creationTimestamp,
//! generation, resourceVersion = store revision); this module adds what
//! the API server does on top: namespaces from the URL, `generateName`,
//! validation of the kind (422 with the field path), status subresource
//! semantics, graceful pod deletion, finalizers, and deletion of
//! dependents by owner reference.

use api::k8s_openapi::api::core::v1::Pod;
use api::{DecodeError, Kind, Object, ResourceType};
use bytes::Bytes;
use serde_json::{Value, json};
use store::Store;

use super::Reply;
use super::patch::{self, PatchType};
use super::paths::ResourcePath;
use super::query::Query;
use super::render::{self, Shape};
use super::status::{self, ApiError, ApiResult};

/// How many times a patch is retried when the object changes under it.
const PATCH_ATTEMPTS: usize = 5;

/// One request on a resource path.
pub struct ResourceRequest {
    /// The target.
    pub path: ResourcePath,
    /// The verb (`get`, `list`, `create`, ...).
    pub verb: &'static str,
    /// The query.
    pub query: Query,
    /// The request's Content-Type.
    pub content_type: String,
    /// The request's Accept.
    pub accept: String,
    /// The body.
    pub body: Bytes,
}

impl ResourceRequest {
    fn ty(&self) -> &'static ResourceType {
        &self.path.kind.ty
    }

    fn name(&self) -> &str {
        self.path.name.as_deref().unwrap_or("")
    }

    fn namespace(&self) -> Option<&str> {
        self.path.namespace.as_deref()
    }
}

/// Serve a non-watch request.
pub async fn handle(store: &Store, req: ResourceRequest) -> ApiResult<Reply> {
    req.query.check_fields(req.ty())?;
    match (req.path.subresource.as_deref(), req.verb) {
        (None, "get") | (Some("status"), "get") => {
            let shape = Shape::of(&req.accept, &req.query)?;
            let object = get(store, &req).await?;
            Ok(Reply::ok(render::object(req.ty(), object, shape)))
        }
        (None, "list") => list(store, &req).await,
        (None, "create") => create(store, &req).await,
        (None, "update") | (Some("status"), "update") => update(store, &req).await.map(Reply::ok),
        (None, "patch") | (Some("status"), "patch") => patch(store, &req).await,
        (None, "delete") => delete(store, &req).await.map(Reply::ok),
        (None, "deletecollection") => delete_collection(store, &req).await.map(Reply::ok),
        (Some("scale"), _) if req.ty().kind == "Deployment" => {
            scale(store, &req).await.map(Reply::ok)
        }
        (Some("eviction"), "create") if req.ty().kind == "Pod" => evict(store, &req).await,
        (sub, verb) => Err(ApiError::method_not_allowed(
            verb,
            &format!(
                "{}{}",
                req.ty().plural,
                sub.map(|s| format!("/{s}")).unwrap_or_default()
            ),
        )),
    }
}

async fn current(store: &Store, req: &ResourceRequest) -> ApiResult<Option<Value>> {
    store
        .get_value(req.ty(), req.namespace(), req.name())
        .await
        .map_err(|e| ApiError::from_store(req.ty(), req.name(), e))
}

async fn get(store: &Store, req: &ResourceRequest) -> ApiResult<Value> {
    current(store, req)
        .await?
        .ok_or_else(|| ApiError::not_found(req.ty(), req.name()))
}

/// The objects of `ty` in `namespace` (or all) that `query`'s selectors
/// select, and the revision of the read.
pub async fn list_selected(
    store: &Store,
    ty: &ResourceType,
    namespace: Option<&str>,
    query: &Query,
) -> ApiResult<(Vec<Value>, i64)> {
    let list = store
        .list_values(ty, namespace)
        .await
        .map_err(|e| ApiError::from_store(ty, "", e))?;
    let items = list
        .items
        .into_iter()
        .filter(|o| query.selects(ty, o))
        .collect();
    Ok((items, list.revision))
}

async fn list(store: &Store, req: &ResourceRequest) -> ApiResult<Reply> {
    let ty = req.ty();
    let (items, revision) = list_selected(store, ty, req.namespace(), &req.query).await?;
    let revision = revision.to_string();
    let shape = Shape::of(&req.accept, &req.query)?;
    Ok(render::list(ty, &req.path.version, items, &revision, shape))
}

/// Decode a request body (JSON, or YAML for apply).
pub fn decode_body(req_body: &[u8], content_type: &str) -> ApiResult<Value> {
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return Err(ApiError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
        ]));
    }
    if content_type.contains("yaml") {
        return serde_saphyr::from_slice(req_body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    serde_json::from_slice(req_body)
        .map_err(|e| ApiError::bad_request(format!("the object provided is unrecognized: {e}")))
}

/// Check an object against its kind (version, shape, validation); the
/// stored form in the storage version.
fn validate(kind: &Kind, name: &str, object: Value) -> ApiResult<Value> {
    kind.decode(object).map_err(|e| match e {
        DecodeError::Invalid { error, .. } => {
            ApiError::invalid(&kind.ty, name, &error.path, &error.message)
        }
        DecodeError::Type { path, message, .. } => ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {path}: {message}",
            kind.ty.kind,
            kind.ty.api_version(),
            kind.ty.kind
        )),
        other => ApiError::bad_request(other.to_string()),
    })
}

/// Fill in and check the namespace of a body against the URL's.
fn place(req: &ResourceRequest, object: &mut Value) -> ApiResult<()> {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Err(ApiError::bad_request("Object 'metadata' is missing"));
    };
    if !req.ty().namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    let url_ns = req.namespace().unwrap_or("default");
    match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() && ns != url_ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta.insert("namespace".into(), url_ns.into());
            Ok(())
        }
    }
}

fn object_name(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

async fn create(store: &Store, req: &ResourceRequest) -> ApiResult<Reply> {
    let mut object = decode_body(&req.body, &req.content_type)?;
    place(req, &mut object)?;
    if object_name(&object).is_empty()
        && let Some(prefix) = object
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
    {
        let name = format!("{prefix}{}", crate::meta::random_suffix());
        object["metadata"]["name"] = name.into();
    }
    let name = object_name(&object).to_string();
    let object = validate(req.path.kind, &name, object)?;
    if req.query.dry_run {
        return Ok(Reply::Json(201, object));
    }
    let created = store
        .create_value(req.ty(), &object)
        .await
        .map_err(|e| ApiError::from_store(req.ty(), &name, e))?;
    Ok(Reply::Json(201, created))
}

/// The object to store when `incoming` replaces `stored` through the
/// main resource (status kept) or the status subresource (only status
/// taken).
fn merge_for_subresource(
    ty: &ResourceType,
    status_write: bool,
    stored: &Value,
    incoming: Value,
) -> Value {
    if !ty.has_status_subresource() {
        return incoming;
    }
    if status_write {
        let mut out = stored.clone();
        match incoming.get("status") {
            Some(s) => out["status"] = s.clone(),
            None => {
                out.as_object_mut().map(|o| o.remove("status"));
            }
        }
        if let Some(rv) = incoming.pointer("/metadata/resourceVersion") {
            out["metadata"]["resourceVersion"] = rv.clone();
        }
        out
    } else {
        let mut out = incoming;
        match stored.get("status") {
            Some(s) => out["status"] = s.clone(),
            None => {
                out.as_object_mut().map(|o| o.remove("status"));
            }
        }
        out
    }
}

/// Write `incoming` over the stored object (compare-and-swap on its
/// resourceVersion; an empty one means "whatever is stored").
async fn replace(
    store: &Store,
    req: &ResourceRequest,
    stored: &Value,
    mut incoming: Value,
) -> ApiResult<Value> {
    let name = req.name().to_string();
    if object_name(&incoming) != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            object_name(&incoming)
        )));
    }
    place(req, &mut incoming)?;
    let rv_missing = incoming
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if rv_missing {
        incoming["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"].clone();
    }
    let status_write = req.path.subresource.as_deref() == Some("status");
    let merged = merge_for_subresource(req.ty(), status_write, stored, incoming);
    let rv = merged["metadata"]["resourceVersion"].clone();
    let mut object = validate(req.path.kind, &name, merged)?;
    object["metadata"]["resourceVersion"] = rv;
    if req.query.dry_run {
        return Ok(object);
    }
    let written = store
        .update_value(req.ty(), &object)
        .await
        .map_err(|e| ApiError::from_store(req.ty(), &name, e))?;
    finish_if_released(store, req.ty(), &written).await?;
    Ok(written)
}

async fn update(store: &Store, req: &ResourceRequest) -> ApiResult<Value> {
    let incoming = decode_body(&req.body, &req.content_type)?;
    let stored = get(store, req).await?;
    replace(store, req, &stored, incoming).await
}

async fn patch(store: &Store, req: &ResourceRequest) -> ApiResult<Reply> {
    let patch_type = PatchType::from_content_type(&req.content_type, req.ty())?;
    for _ in 0..PATCH_ATTEMPTS {
        let stored = current(store, req).await?;
        let Some(stored) = stored else {
            if patch_type == PatchType::Apply {
                let mut object = patch::server_side_apply(req.ty(), None, &req.body)?;
                place(req, &mut object)?;
                let object = validate(req.path.kind, req.name(), object)?;
                let created = store
                    .create_value(req.ty(), &object)
                    .await
                    .map_err(|e| ApiError::from_store(req.ty(), req.name(), e))?;
                return Ok(Reply::Json(201, created));
            }
            return Err(ApiError::not_found(req.ty(), req.name()));
        };
        let patched = patch::patch(req.ty(), patch_type, &stored, &req.body)?;
        match replace(store, req, &stored, patched).await {
            Err(e) if e.reason == "Conflict" => continue,
            result => return result.map(Reply::ok),
        }
    }
    Err(ApiError::conflict(req.ty(), req.name()))
}

/// Delete an object whose deletion was pending once its last finalizer
/// is gone (pods are finished by their kubelet).
async fn finish_if_released(store: &Store, ty: &ResourceType, object: &Value) -> ApiResult<()> {
    let terminating = object.pointer("/metadata/deletionTimestamp").is_some();
    let held = object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if terminating && !held && ty.kind != "Pod" {
        let name = object_name(object);
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str);
        store
            .delete_value(ty, ns, name)
            .await
            .map_err(|e| ApiError::from_store(ty, name, e))?;
    }
    Ok(())
}

/// The propagation policy of a delete: query or DeleteOptions body.
fn propagation(req: &ResourceRequest) -> String {
    let from_body = serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|b| {
            b.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    req.query
        .propagation
        .clone()
        .or(from_body)
        .unwrap_or_else(|| "Background".into())
}

fn grace_zero(req: &ResourceRequest) -> bool {
    let from_body = serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|b| b.get("gracePeriodSeconds").and_then(Value::as_i64));
    let from_query = req
        .query
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse().ok());
    from_query.or(from_body) == Some(0)
}

/// How a request deletes (propagation, grace period 0, dry run).
fn deletion_of<'a>(req: &ResourceRequest, propagation: &'a str) -> Deletion<'a> {
    Deletion {
        propagation,
        force: grace_zero(req),
        dry_run: req.query.dry_run,
    }
}

async fn delete(store: &Store, req: &ResourceRequest) -> ApiResult<Value> {
    let propagation = propagation(req);
    let how = deletion_of(req, &propagation);
    delete_one(store, req.path.kind, req.namespace(), req.name(), how).await
}

/// Delete one object the way the API server does.
async fn delete_one(
    store: &Store,
    kind: &'static Kind,
    namespace: Option<&str>,
    name: &str,
    how: Deletion<'_>,
) -> ApiResult<Value> {
    let Deletion {
        propagation,
        force,
        dry_run,
    } = how;
    let ty = &kind.ty;
    let failed = |e| ApiError::from_store(ty, name, e);
    let stored = store
        .get_value(ty, namespace, name)
        .await
        .map_err(failed)?
        .ok_or_else(|| ApiError::not_found(ty, name))?;
    if dry_run {
        return Ok(stored);
    }
    if ty.kind == "Pod" {
        return delete_pod(store, namespace.unwrap_or("default"), name, force).await;
    }
    let held = stored
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if held {
        let mut marked = stored.clone();
        if marked.pointer("/metadata/deletionTimestamp").is_none() {
            marked["metadata"]["deletionTimestamp"] =
                serde_json::to_value(crate::meta::now()).unwrap_or_default();
            marked["metadata"]["deletionGracePeriodSeconds"] = 0.into();
            return store.update_value(ty, &marked).await.map_err(failed);
        }
        return Ok(stored);
    }
    if ty.kind == "Namespace" {
        delete_namespace_contents(store, name).await?;
    }
    let deleted = store
        .delete_value(ty, namespace, name)
        .await
        .map_err(failed)?
        .ok_or_else(|| ApiError::not_found(ty, name))?;
    if propagation != "Orphan"
        && let Some(uid) = deleted.pointer("/metadata/uid").and_then(Value::as_str)
    {
        delete_dependents(store, uid).await?;
    }
    Ok(deleted)
}

async fn delete_pod(store: &Store, namespace: &str, name: &str, force: bool) -> ApiResult<Value> {
    use crate::PodDeletion;
    let failed = |e| ApiError::from_store(&Pod::TYPE, name, e);
    let pod = match crate::delete_pod(store, namespace, name, force)
        .await
        .map_err(failed)?
    {
        PodDeletion::Terminating(p) | PodDeletion::Deleted(p) => p,
        PodDeletion::Absent => return Err(ApiError::not_found(&Pod::TYPE, name)),
    };
    serde_json::to_value(pod).map_err(ApiError::internal)
}

/// Kinds whose objects carry owner references to other objects.
const DEPENDENT_KINDS: [&str; 6] = [
    "Pod",
    "EndpointSlice",
    "Endpoints",
    "CiliumEndpoint",
    "CiliumNode",
    "Lease",
];

/// How objects are deleted.
#[derive(Clone, Copy)]
struct Deletion<'a> {
    propagation: &'a str,
    force: bool,
    dry_run: bool,
}

/// Delete each of `objects` of `kind`; objects already gone are fine.
async fn delete_each(
    store: &Store,
    kind: &'static Kind,
    objects: &[Value],
    how: Deletion<'_>,
) -> ApiResult<()> {
    for obj in objects {
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
        let one = delete_one(store, kind, ns, object_name(obj), how);
        match Box::pin(one).await {
            Err(e) if e.code == 404 => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// Delete every object owned by `uid` (background propagation).
async fn delete_dependents(store: &Store, uid: &str) -> ApiResult<()> {
    let how = Deletion {
        propagation: "Background",
        force: false,
        dry_run: false,
    };
    for kind in api::registry()
        .iter()
        .filter(|k| DEPENDENT_KINDS.contains(&k.ty.kind))
    {
        let (items, _) = list_selected(store, &kind.ty, None, &Query::default()).await?;
        let owned: Vec<Value> = items
            .into_iter()
            .filter(|obj| {
                obj.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
            })
            .collect();
        delete_each(store, kind, &owned, how).await?;
    }
    Ok(())
}

/// Remove every namespaced object of a namespace being deleted.
async fn delete_namespace_contents(store: &Store, namespace: &str) -> ApiResult<()> {
    let how = Deletion {
        propagation: "Background",
        force: true,
        dry_run: false,
    };
    for kind in api::registry().iter().filter(|k| k.ty.namespaced) {
        let (items, _) = list_selected(store, &kind.ty, Some(namespace), &Query::default()).await?;
        delete_each(store, kind, &items, how).await?;
    }
    Ok(())
}

async fn delete_collection(store: &Store, req: &ResourceRequest) -> ApiResult<Value> {
    let (items, _) = list_selected(store, req.ty(), req.namespace(), &req.query).await?;
    let propagation = propagation(req);
    delete_each(store, req.path.kind, &items, deletion_of(req, &propagation)).await?;
    Ok(status::success(req.ty(), "", None))
}

/// `deployments/<name>/scale`: an `autoscaling/v1` Scale view of
/// `spec.replicas`.
async fn scale(store: &Store, req: &ResourceRequest) -> ApiResult<Value> {
    let stored = get(store, req).await?;
    match req.verb {
        "get" => Ok(scale_of(&stored)),
        "update" | "patch" => {
            let view = scale_of(&stored);
            let wanted = if req.verb == "update" {
                decode_body(&req.body, &req.content_type)?
            } else {
                let patch_type = PatchType::from_content_type(&req.content_type, req.ty())?;
                patch::patch(req.ty(), patch_type, &view, &req.body)?
            };
            let replicas = wanted
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .ok_or_else(|| ApiError::bad_request("spec.replicas is required"))?;
            let mut object = stored.clone();
            object["spec"]["replicas"] = replicas.into();
            let written = replace(store, req, &stored, object).await?;
            Ok(scale_of(&written))
        }
        verb => Err(ApiError::method_not_allowed(verb, "deployments/scale")),
    }
}

fn scale_of(deployment: &Value) -> Value {
    let meta = &deployment["metadata"];
    let selector = deployment
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": deployment.pointer("/spec/replicas").cloned().unwrap_or(1.into())},
        "status": {
            "replicas": deployment.pointer("/status/replicas").cloned().unwrap_or(0.into()),
            "selector": selector,
        },
    })
}

/// `pods/<name>/eviction`: a graceful deletion (no disruption budgets).
async fn evict(store: &Store, req: &ResourceRequest) -> ApiResult<Reply> {
    let ns = req.namespace().unwrap_or("default");
    delete_pod(store, ns, req.name(), false).await?;
    Ok(Reply::Json(
        201,
        status::success(req.ty(), req.name(), None),
    ))
}
