//! Object semantics over JSON values: keys from the resource type,
//! defaults on create (namespace, uid, creationTimestamp, generation),
//! compare-and-swap updates that keep server-owned metadata, and
//! `resourceVersion` set from the backend's revisions on every object
//! returned (the stored JSON never holds one).
//!
//! The typed API of [`crate::Store`] converts to and from these values; this
//! module does no I/O of its own beyond [`Backend`] calls.

use api::{Object, ResourceType};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Map, Value};

use crate::backend::{Backend, Kv, RawEvent, Swap};
use crate::{Error, List, Result, WatchEvent, WatchStream};

/// The namespace used when a namespaced object or lookup names none.
const DEFAULT_NAMESPACE: &str = "default";

/// The namespace a lookup of `ty` means: `default` when a namespaced type
/// is given none, nothing for cluster-scoped types.
fn effective_namespace<'a>(ty: &ResourceType, namespace: Option<&'a str>) -> Option<&'a str> {
    ty.namespaced
        .then(|| namespace.unwrap_or(DEFAULT_NAMESPACE))
}

/// `ns/name` for namespaced types, `name` otherwise.
fn display_name(ty: &ResourceType, namespace: Option<&str>, name: &str) -> String {
    match effective_namespace(ty, namespace) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// The [`Error::NotFound`] of one object.
pub(crate) fn not_found(ty: &ResourceType, namespace: Option<&str>, name: &str) -> Error {
    Error::NotFound {
        kind: ty.kind.to_string(),
        name: display_name(ty, namespace, name),
    }
}

/// Serialize a typed object.
pub(crate) fn to_value<T: Object>(obj: &T) -> Result<Value> {
    serde_json::to_value(obj)
        .map_err(|e| Error::Invalid(format!("cannot encode {}: {e}", T::TYPE.kind)))
}

/// Deserialize a typed object (errors name its key).
pub(crate) fn from_value<T: Object>(ty: &ResourceType, value: Value) -> Result<T> {
    let key = value_key(ty, &value);
    serde_json::from_value(value).map_err(|source| Error::Decode { key, source })
}

/// Deserialize the object of a watch event.
pub(crate) fn event_from_value<T: Object>(
    ty: &ResourceType,
    event: WatchEvent<Value>,
) -> Result<WatchEvent<T>> {
    Ok(match event {
        WatchEvent::Added(v) => WatchEvent::Added(from_value(ty, v)?),
        WatchEvent::Modified(v) => WatchEvent::Modified(from_value(ty, v)?),
        WatchEvent::Deleted(v) => WatchEvent::Deleted(from_value(ty, v)?),
    })
}

/// The store key of an object value (best effort, for messages).
fn value_key(ty: &ResourceType, value: &Value) -> String {
    let meta = value.get("metadata");
    let field = |name: &str| meta.and_then(|m| m.get(name)).and_then(Value::as_str);
    ty.key(
        effective_namespace(ty, field("namespace")),
        field("name").unwrap_or(""),
    )
}

/// Decode stored bytes and set `resourceVersion` to `revision`.
fn decode(kv: &Kv, revision: i64) -> Result<Value> {
    let mut value: Value = serde_json::from_slice(&kv.value).map_err(|source| Error::Decode {
        key: kv.key.clone(),
        source,
    })?;
    metadata_mut(&mut value)
        .map_err(|_| Error::Backend(format!("{}: stored value is not a JSON object", kv.key)))?
        .insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    Ok(value)
}

fn metadata_mut(value: &mut Value) -> Result<&mut Map<String, Value>> {
    let Value::Object(obj) = value else {
        return Err(Error::Invalid("an object must be a JSON object".into()));
    };
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    match meta {
        Value::Object(meta) => Ok(meta),
        _ => Err(Error::Invalid("metadata must be a JSON object".into())),
    }
}

fn string_field<'a>(meta: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    meta.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Validate and complete an object about to be written: `apiVersion` and
/// `kind` when missing, the namespace (defaulted, or removed for
/// cluster-scoped types), no stored `resourceVersion`. Returns the object
/// and its key.
fn prepare(ty: &ResourceType, obj: &Value) -> Result<(Value, String)> {
    let mut value = obj.clone();
    if let Value::Object(map) = &mut value {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(ty.api_version()));
        map.entry("kind")
            .or_insert_with(|| Value::String(ty.kind.to_string()));
    }
    let meta = metadata_mut(&mut value)?;
    let name = string_field(meta, "name")
        .ok_or_else(|| Error::Invalid(format!("{}: metadata.name is required", ty.kind)))?
        .to_string();
    check_segment(ty, "metadata.name", &name)?;
    let namespace = if ty.namespaced {
        let ns = string_field(meta, "namespace")
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_string();
        check_segment(ty, "metadata.namespace", &ns)?;
        meta.insert("namespace".into(), Value::String(ns.clone()));
        Some(ns)
    } else {
        meta.remove("namespace");
        None
    };
    meta.remove("resourceVersion");
    let key = ty.key(namespace.as_deref(), &name);
    Ok((value, key))
}

/// Names and namespaces become key segments: no `/`, nothing odd.
fn check_segment(ty: &ResourceType, field: &str, segment: &str) -> Result<()> {
    let ok = segment.len() <= 253
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{}: {field} {segment:?} must consist of letters, digits, '-', '.', '_' or ':'",
            ty.kind
        )))
    }
}

fn encode(value: &Value) -> Vec<u8> {
    // A `serde_json::Value` always serializes.
    serde_json::to_vec(value).unwrap_or_default()
}

/// A random RFC 4122 version 4 UUID, as Kubernetes uses for `metadata.uid`.
fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The current time as Kubernetes serializes it (`2025-01-02T03:04:05Z`).
fn now() -> Value {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    k8s_openapi::jiff::Timestamp::from_second(seconds)
        .ok()
        .and_then(|t| serde_json::to_value(Time(t)).ok())
        .unwrap_or(Value::Null)
}

pub(crate) async fn get(
    backend: &Backend,
    ty: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>> {
    let key = ty.key(effective_namespace(ty, namespace), name);
    match backend.get(&key).await? {
        Some(kv) => Ok(Some(decode(&kv, kv.mod_revision)?)),
        None => Ok(None),
    }
}

pub(crate) async fn list(
    backend: &Backend,
    ty: &ResourceType,
    namespace: Option<&str>,
) -> Result<List<Value>> {
    let (entries, revision) = backend.list(&ty.list_prefix(namespace)).await?;
    let items = entries
        .iter()
        .map(|kv| decode(kv, kv.mod_revision))
        .collect::<Result<_>>()?;
    Ok(List { items, revision })
}

pub(crate) async fn create(backend: &Backend, ty: &ResourceType, obj: &Value) -> Result<Value> {
    let (mut value, key) = prepare(ty, obj)?;
    let meta = metadata_mut(&mut value)?;
    meta.insert("uid".into(), Value::String(new_uid()));
    meta.insert("creationTimestamp".into(), now());
    meta.insert("generation".into(), Value::from(1));
    match backend.create(&key, encode(&value)).await? {
        Some(revision) => {
            metadata_mut(&mut value)?.insert(
                "resourceVersion".into(),
                Value::String(revision.to_string()),
            );
            Ok(value)
        }
        None => Err(Error::AlreadyExists {
            kind: ty.kind.to_string(),
            name: display_name(ty, value_namespace(&value), value_name(&value)),
        }),
    }
}

fn value_name(value: &Value) -> &str {
    value["metadata"]["name"].as_str().unwrap_or("")
}

fn value_namespace(value: &Value) -> Option<&str> {
    value["metadata"]["namespace"].as_str()
}

pub(crate) async fn update(backend: &Backend, ty: &ResourceType, obj: &Value) -> Result<Value> {
    let expected_text = obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let (mut value, key) = prepare(ty, obj)?;
    let name = display_name(ty, value_namespace(&value), value_name(&value));
    let conflict = || Error::Conflict {
        kind: ty.kind.to_string(),
        name: name.clone(),
        expected: expected_text.clone(),
    };
    let expected: i64 = expected_text.parse().map_err(|_| {
        Error::Invalid(format!(
            "{} {name}: metadata.resourceVersion is required for an update (got {expected_text:?})",
            ty.kind
        ))
    })?;
    let Some(current) = backend.get(&key).await? else {
        return Err(Error::NotFound {
            kind: ty.kind.to_string(),
            name,
        });
    };
    if current.mod_revision != expected {
        return Err(conflict());
    }
    let stored = decode(&current, current.mod_revision)?;
    let spec_changed = stored.get("spec") != value.get("spec");
    let stored_meta = &stored["metadata"];
    let meta = metadata_mut(&mut value)?;
    for field in ["uid", "creationTimestamp"] {
        match stored_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    let generation = stored_meta["generation"].as_i64().unwrap_or(1) + i64::from(spec_changed);
    meta.insert("generation".into(), Value::from(generation));

    // An update that changes nothing is not written (no revision, no event),
    // so controllers that write back what they read do not loop.
    let mut unchanged = stored.clone();
    metadata_mut(&mut unchanged)?.remove("resourceVersion");
    if unchanged == value {
        return Ok(stored);
    }
    match backend.update(&key, encode(&value), expected).await? {
        Swap::Written(revision) => {
            metadata_mut(&mut value)?.insert(
                "resourceVersion".into(),
                Value::String(revision.to_string()),
            );
            Ok(value)
        }
        Swap::Conflict => Err(conflict()),
        Swap::Missing => Err(Error::NotFound {
            kind: ty.kind.to_string(),
            name,
        }),
    }
}

pub(crate) async fn delete(
    backend: &Backend,
    ty: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>> {
    let key = ty.key(effective_namespace(ty, namespace), name);
    match backend.delete(&key).await? {
        Some((prev, revision)) => Ok(Some(decode(&prev, revision)?)),
        None => Ok(None),
    }
}

pub(crate) fn watch(
    backend: &Backend,
    ty: &ResourceType,
    namespace: Option<&str>,
    revision: i64,
) -> WatchStream<Value> {
    backend
        .watch(ty.list_prefix(namespace), revision)
        .map(|event| {
            event.and_then(|event| match event {
                RawEvent::Put(kv) if kv.create_revision == kv.mod_revision => {
                    Ok(WatchEvent::Added(decode(&kv, kv.mod_revision)?))
                }
                RawEvent::Put(kv) => Ok(WatchEvent::Modified(decode(&kv, kv.mod_revision)?)),
                RawEvent::Delete { prev, revision } => {
                    Ok(WatchEvent::Deleted(decode(&prev, revision)?))
                }
            })
        })
        .boxed()
}
