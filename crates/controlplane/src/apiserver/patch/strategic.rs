//! Strategic merge patch: a JSON merge patch whose lists merge per field
//! (by a merge key, as a set, or replaced whole) and whose `$` directives
//! steer the merge. The per-kind field table stands in for upstream's
//! struct tags.

use std::collections::BTreeMap;

use api::ResourceType;
use serde_json::{Map, Value};

use super::{PatchError, supports_strategic, unsupported};

/// How a list field merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListStrategy {
    /// The patch's list replaces the current one (the default).
    Replace,
    /// A set of primitives: union, no duplicates.
    Set,
    /// Elements are maps matched by this key and merged.
    MergeKey(&'static str),
}

/// A field whose patch strategy differs from the default, or which leads
/// to such fields (`fields` describes a map's fields, or a list's
/// elements').
#[derive(Debug)]
struct Field {
    name: &'static str,
    list: ListStrategy,
    fields: Schema,
}

/// The fields of one map type that need more than the default strategy.
type Schema = &'static [Field];

const fn nested(name: &'static str, fields: Schema) -> Field {
    Field {
        name,
        list: ListStrategy::Replace,
        fields,
    }
}

const fn keyed(name: &'static str, key: &'static str, fields: Schema) -> Field {
    Field {
        name,
        list: ListStrategy::MergeKey(key),
        fields,
    }
}

const fn set(name: &'static str) -> Field {
    Field {
        name,
        list: ListStrategy::Set,
        fields: LEAF,
    }
}

/// A type whose fields all use the default strategy.
const LEAF: Schema = &[];

/// Any field not listed in its parent's schema.
const DEFAULT_FIELD: Field = nested("", LEAF);

const METADATA: Field = nested(
    "metadata",
    &[set("finalizers"), keyed("ownerReferences", "uid", LEAF)],
);

const CONTAINER: Schema = &[
    keyed("ports", "containerPort", LEAF),
    keyed("env", "name", LEAF),
    keyed("volumeMounts", "mountPath", LEAF),
    keyed("volumeDevices", "devicePath", LEAF),
];

const POD_SPEC: Schema = &[
    keyed("containers", "name", CONTAINER),
    keyed("initContainers", "name", CONTAINER),
    keyed("ephemeralContainers", "name", CONTAINER),
    keyed("volumes", "name", LEAF),
    keyed("imagePullSecrets", "name", LEAF),
    keyed("hostAliases", "ip", LEAF),
    keyed("topologySpreadConstraints", "topologyKey", LEAF),
];

const POD_TEMPLATE: Field = nested("template", &[METADATA, nested("spec", POD_SPEC)]);

const CONDITIONS: Field = keyed("conditions", "type", LEAF);

/// Top-level schema per built-in kind with list strategies beyond
/// `metadata`'s: (group, kind, schema).
const KINDS: &[(&str, &str, Schema)] = &[
    (
        "",
        "Pod",
        &[
            METADATA,
            nested("spec", POD_SPEC),
            nested("status", &[CONDITIONS, keyed("podIPs", "ip", LEAF)]),
        ],
    ),
    (
        "",
        "Node",
        &[
            METADATA,
            nested("spec", &[set("podCIDRs")]),
            nested("status", &[CONDITIONS, keyed("addresses", "type", LEAF)]),
        ],
    ),
    (
        "",
        "Service",
        &[
            METADATA,
            nested("spec", &[keyed("ports", "port", LEAF)]),
            nested("status", &[CONDITIONS]),
        ],
    ),
    (
        "apps",
        "Deployment",
        &[
            METADATA,
            nested("spec", &[POD_TEMPLATE]),
            nested("status", &[CONDITIONS]),
        ],
    ),
    (
        "apps",
        "DaemonSet",
        &[
            METADATA,
            nested("spec", &[POD_TEMPLATE]),
            nested("status", &[CONDITIONS]),
        ],
    ),
];

/// Every other kind: only `metadata` has non-default strategies.
const OTHER_KIND: Schema = &[METADATA];

fn kind_schema(ty: &ResourceType) -> Schema {
    KINDS
        .iter()
        .find(|(group, kind, _)| *group == ty.group && *kind == ty.kind)
        .map_or(OTHER_KIND, |(_, _, schema)| schema)
}

fn field<'s>(schema: &'s [Field], name: &str) -> &'s Field {
    schema
        .iter()
        .find(|f| f.name == name)
        .unwrap_or(&DEFAULT_FIELD)
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies the strategic merge patch `patch` to `original`, an object of
/// type `ty` (a top-level `$patch: delete` leaves an empty object). Custom
/// resources are refused with [`PatchError::UnsupportedMediaType`].
pub fn strategic_merge_patch(
    ty: &ResourceType,
    original: &Value,
    patch: Map<String, Value>,
) -> Result<Value, PatchError> {
    if !supports_strategic(ty) {
        return Err(unsupported(ty));
    }
    let original = original.as_object().cloned().unwrap_or_default();
    Ok(match merge_map(original, patch, kind_schema(ty))? {
        Merged::Kept(map) => Value::Object(map),
        Merged::Deleted => Value::Object(Map::new()),
    })
}

/// A map's `$patch` directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Directive {
    Replace,
    Delete,
    Merge,
}

fn parse_directive(value: &Value) -> Result<Directive, PatchError> {
    match value.as_str() {
        Some("replace") => Ok(Directive::Replace),
        Some("delete") => Ok(Directive::Delete),
        Some("merge") => Ok(Directive::Merge),
        _ => Err(PatchError::BadDirective(format!(
            "unknown {PATCH} directive {value}"
        ))),
    }
}

/// The outcome of merging a patch map: the merged map, or the map's
/// removal (`$patch: delete`).
enum Merged {
    Kept(Map<String, Value>),
    Deleted,
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Schema,
) -> Result<Merged, PatchError> {
    match patch
        .remove(PATCH)
        .as_ref()
        .map(parse_directive)
        .transpose()?
    {
        Some(Directive::Delete) => return Ok(Merged::Deleted),
        Some(Directive::Replace) => original.clear(),
        Some(Directive::Merge) | None => {}
    }
    if let Some(keys) = patch.remove(RETAIN_KEYS) {
        retain_keys(&mut original, &patch, keys)?;
    }
    let mut lists = take_list_directives(&mut patch)?;
    for (key, value) in patch {
        let directives = lists.remove(&key).unwrap_or_default();
        let current = original.remove(&key);
        if let Some(merged) = merge_value(current, value, field(schema, &key), &directives)? {
            original.insert(key, merged);
        }
    }
    for (name, directives) in lists {
        if let Some(Value::Array(list)) = original.get_mut(&name) {
            let key = list_key(field(schema, &name));
            *list = directives.reorder(directives.without_deleted(std::mem::take(list)), key)?;
        }
    }
    Ok(Merged::Kept(original))
}

fn merge_value(
    current: Option<Value>,
    patch: Value,
    field: &Field,
    directives: &ListDirectives,
) -> Result<Option<Value>, PatchError> {
    Ok(match (current, patch) {
        (_, Value::Null) => None,
        (current, Value::Object(patch)) => {
            let base = match current {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            match merge_map(base, patch, field.fields)? {
                Merged::Kept(map) => Some(Value::Object(map)),
                Merged::Deleted => None,
            }
        }
        (current, Value::Array(patch)) => {
            let base = match current {
                Some(Value::Array(list)) => list,
                _ => Vec::new(),
            };
            Some(Value::Array(merge_list(base, patch, field, directives)?))
        }
        (_, scalar) => Some(scalar),
    })
}

/// `$retainKeys`: drop every key of `original` not listed; every key the
/// patch sets must be listed.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    keys: Value,
) -> Result<(), PatchError> {
    let keys: Vec<String> = serde_json::from_value(keys).map_err(|_| {
        PatchError::BadDirective(format!("{RETAIN_KEYS} must be a list of strings"))
    })?;
    if let Some(key) = patch
        .iter()
        .find(|(k, v)| !k.starts_with('$') && !v.is_null() && !keys.contains(k))
        .map(|(k, _)| k)
    {
        return Err(PatchError::RetainKeysMismatch { key: key.clone() });
    }
    original.retain(|k, _| keys.contains(k));
    Ok(())
}

/// The `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`
/// directives of one list.
#[derive(Debug, Default)]
struct ListDirectives {
    list: String,
    order: Option<Vec<Value>>,
    delete: Option<Vec<Value>>,
}

/// Removes every `$` key left in `patch` (unknown directives are
/// ignored) and returns the list directives among them, by list name.
fn take_list_directives(
    patch: &mut Map<String, Value>,
) -> Result<BTreeMap<String, ListDirectives>, PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with('$'))
        .cloned()
        .collect();
    let mut lists = BTreeMap::<String, ListDirectives>::new();
    for key in keys {
        let value = patch.remove(&key);
        let Some((list, is_order)) = key
            .strip_prefix(SET_ELEMENT_ORDER)
            .map(|list| (list, true))
            .or_else(|| {
                key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST)
                    .map(|list| (list, false))
            })
        else {
            continue;
        };
        let Some(Value::Array(values)) = value else {
            return Err(PatchError::BadDirective(format!("{key} must be a list")));
        };
        let entry = lists
            .entry(list.to_string())
            .or_insert_with(|| ListDirectives {
                list: list.to_string(),
                ..ListDirectives::default()
            });
        let slot = if is_order {
            &mut entry.order
        } else {
            &mut entry.delete
        };
        *slot = Some(values);
    }
    Ok(lists)
}

impl ListDirectives {
    /// `list` without the values of `$deleteFromPrimitiveList`.
    fn without_deleted(&self, list: Vec<Value>) -> Vec<Value> {
        match &self.delete {
            Some(deleted) => list.into_iter().filter(|v| !deleted.contains(v)).collect(),
            None => list,
        }
    }

    /// `list` in the order of `$setElementOrder`: the elements it names
    /// take, in its order, the positions such elements hold; the others
    /// (only on the server) stay where they are.
    fn reorder(&self, mut list: Vec<Value>, key: Option<&str>) -> Result<Vec<Value>, PatchError> {
        let Some(order) = &self.order else {
            return Ok(list);
        };
        let order = order
            .iter()
            .map(|item| identity(item, key))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                PatchError::BadDirective(format!(
                    "every item of {SET_ELEMENT_ORDER}{} needs the merge key {}",
                    self.list,
                    key.unwrap_or_default()
                ))
            })?;
        let ranked: Vec<(usize, usize)> = list
            .iter()
            .enumerate()
            .filter_map(|(slot, element)| {
                let id = identity(element, key)?;
                order.iter().position(|o| *o == id).map(|rank| (slot, rank))
            })
            .collect();
        let mut moved: Vec<(usize, Value)> = ranked
            .iter()
            .map(|&(slot, rank)| (rank, std::mem::take(&mut list[slot])))
            .collect();
        moved.sort_by_key(|(rank, _)| *rank);
        for (&(slot, _), (_, element)) in ranked.iter().zip(moved) {
            list[slot] = element;
        }
        Ok(list)
    }
}

/// What identifies a list element: its merge key's value in a keyed
/// list, the element itself otherwise.
fn identity<'v>(element: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(key) => element.get(key),
        None => Some(element),
    }
}

const fn list_key(field: &Field) -> Option<&'static str> {
    match field.list {
        ListStrategy::MergeKey(key) => Some(key),
        ListStrategy::Replace | ListStrategy::Set => None,
    }
}

/// A patch list's directive elements (`{"$patch": "replace"}`,
/// `{"$patch": "delete", key: v}`) split from its other elements.
#[derive(Default)]
struct SpecialElements {
    replace: bool,
    deleted: Vec<Value>,
    rest: Vec<Value>,
}

fn split_special(
    patch: Vec<Value>,
    key: Option<&'static str>,
) -> Result<SpecialElements, PatchError> {
    let mut split = SpecialElements::default();
    for element in patch {
        match element.get(PATCH).map(parse_directive).transpose()? {
            None => split.rest.push(element),
            Some(Directive::Replace) => split.replace = true,
            Some(Directive::Delete) => split.deleted.push(merge_key_of(&element, key)?),
            Some(Directive::Merge) => {
                return Err(PatchError::BadDirective(format!(
                    "{PATCH}: merge is not allowed as a list element"
                )));
            }
        }
    }
    Ok(split)
}

fn merge_key_of(element: &Value, key: Option<&'static str>) -> Result<Value, PatchError> {
    let Some(key) = key else {
        return Err(PatchError::BadDirective(format!(
            "{PATCH}: delete in a list without merge key (use {DELETE_FROM_PRIMITIVE_LIST}<list>)"
        )));
    };
    element
        .get(key)
        .cloned()
        .ok_or_else(|| PatchError::MissingMergeKey {
            key,
            element: element.to_string(),
        })
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: &Field,
    directives: &ListDirectives,
) -> Result<Vec<Value>, PatchError> {
    let key = list_key(field);
    let original = directives.without_deleted(original);
    let special = split_special(patch, key)?;
    let merged = match (field.list, special.replace) {
        (ListStrategy::Replace, _) | (_, true) => fresh_list(special.rest, field.fields)?,
        (ListStrategy::Set, false) => merge_set(original, special.rest),
        (ListStrategy::MergeKey(key), false) => merge_keyed(original, special, key, field.fields)?,
    };
    directives.reorder(merged, key)
}

/// A list taken from the patch alone, its maps cleaned of directives.
fn fresh_list(patch: Vec<Value>, fields: Schema) -> Result<Vec<Value>, PatchError> {
    let mut list = Vec::with_capacity(patch.len());
    for element in patch {
        match element {
            Value::Object(map) => {
                if let Merged::Kept(map) = merge_map(Map::new(), map, fields)? {
                    list.push(Value::Object(map));
                }
            }
            other => list.push(other),
        }
    }
    Ok(list)
}

fn merge_set(original: Vec<Value>, patch: Vec<Value>) -> Vec<Value> {
    let mut set = Vec::with_capacity(original.len() + patch.len());
    for value in original.into_iter().chain(patch) {
        if !set.contains(&value) {
            set.push(value);
        }
    }
    set
}

fn merge_keyed(
    original: Vec<Value>,
    patch: SpecialElements,
    key: &'static str,
    fields: Schema,
) -> Result<Vec<Value>, PatchError> {
    let mut list: Vec<Value> = original
        .into_iter()
        .filter(|e| !e.get(key).is_some_and(|v| patch.deleted.contains(v)))
        .collect();
    for element in patch.rest {
        let id = merge_key_of(&element, Some(key))?;
        let Value::Object(element) = element else {
            continue; // only maps have a merge key
        };
        let position = list.iter().position(|e| e.get(key) == Some(&id));
        let base = match position {
            Some(i) => match std::mem::take(&mut list[i]) {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            None => Map::new(),
        };
        match (merge_map(base, element, fields)?, position) {
            (Merged::Kept(map), Some(i)) => list[i] = Value::Object(map),
            (Merged::Kept(map), None) => list.push(Value::Object(map)),
            (Merged::Deleted, Some(i)) => {
                list.remove(i);
            }
            (Merged::Deleted, None) => {}
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apiserver::patch::tests::{assert_no_directives, deployment, pod, ty};

    fn smp(resource: &str, original: &Value, patch: Value) -> Result<Value, PatchError> {
        let Value::Object(patch) = patch else {
            panic!("patch must be an object");
        };
        strategic_merge_patch(ty(resource), original, patch)
    }

    /// One strategic merge patch case: resource, current object, patch,
    /// expected result.
    struct Case {
        name: &'static str,
        resource: &'static str,
        original: Value,
        patch: Value,
        expected: Value,
    }

    fn merge_cases() -> Vec<Case> {
        vec![
            Case {
                name: "containers merge by name",
                resource: "pods",
                original: pod(json!([
                    {"name": "a", "image": "x", "ports": [{"containerPort": 80}]},
                    {"name": "b", "image": "b"},
                ])),
                patch: json!({"spec": {"containers": [
                    {"name": "a", "image": "y"},
                    {"name": "c", "image": "c"},
                ]}}),
                expected: pod(json!([
                    {"name": "a", "image": "y", "ports": [{"containerPort": 80}]},
                    {"name": "b", "image": "b"},
                    {"name": "c", "image": "c"},
                ])),
            },
            Case {
                name: "ports merge by containerPort",
                resource: "pods",
                original: pod(json!([{"name": "a", "ports": [
                    {"containerPort": 80, "name": "http"},
                    {"containerPort": 53, "protocol": "UDP"},
                ]}])),
                patch: json!({"spec": {"containers": [{"name": "a", "ports": [
                    {"containerPort": 80, "name": "web"},
                    {"containerPort": 443},
                ]}]}}),
                expected: pod(json!([{"name": "a", "ports": [
                    {"containerPort": 80, "name": "web"},
                    {"containerPort": 53, "protocol": "UDP"},
                    {"containerPort": 443},
                ]}])),
            },
            Case {
                name: "env by name, $patch delete as a list element",
                resource: "pods",
                original: pod(json!([{"name": "a", "env": [
                    {"name": "A", "value": "1"},
                    {"name": "B", "value": "2"},
                ]}])),
                patch: json!({"spec": {"containers": [{"name": "a", "env": [
                    {"name": "A", "value": "3"},
                    {"$patch": "delete", "name": "B"},
                ]}]}}),
                expected: pod(json!([{"name": "a", "env": [{"name": "A", "value": "3"}]}])),
            },
            Case {
                name: "volumeMounts by mountPath, volumes by name",
                resource: "pods",
                original: json!({"spec": {
                    "containers": [{"name": "a", "volumeMounts": [
                        {"mountPath": "/a", "name": "v"},
                    ]}],
                    "volumes": [{"name": "v", "emptyDir": {}}],
                }}),
                patch: json!({"spec": {
                    "containers": [{"name": "a", "volumeMounts": [
                        {"mountPath": "/a", "readOnly": true},
                        {"mountPath": "/b", "name": "w"},
                    ]}],
                    "volumes": [{"name": "w", "configMap": {"name": "cm"}}],
                }}),
                expected: json!({"spec": {
                    "containers": [{"name": "a", "volumeMounts": [
                        {"mountPath": "/a", "name": "v", "readOnly": true},
                        {"mountPath": "/b", "name": "w"},
                    ]}],
                    "volumes": [
                        {"name": "v", "emptyDir": {}},
                        {"name": "w", "configMap": {"name": "cm"}},
                    ],
                }}),
            },
            Case {
                name: "null deletes keys",
                resource: "pods",
                original: json!({"metadata": {"labels": {"app": "web", "tier": "1"}},
                                 "spec": {"containers": [{"name": "a", "resources": {}}]}}),
                patch: json!({"metadata": {"labels": {"tier": null, "absent": null}},
                              "spec": {"containers": [{"name": "a", "resources": null}]}}),
                expected: json!({"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "a"}]}}),
            },
            Case {
                name: "$patch replace in a map",
                resource: "pods",
                original: json!({"spec": {"nodeSelector": {"a": "1"}, "hostname": "h"}}),
                patch: json!({"spec": {"nodeSelector": {"$patch": "replace", "b": "2"}}}),
                expected: json!({"spec": {"nodeSelector": {"b": "2"}, "hostname": "h"}}),
            },
            Case {
                name: "$patch delete in a map",
                resource: "pods",
                original: json!({"spec": {"securityContext": {"runAsUser": 1}, "hostname": "h"}}),
                patch: json!({"spec": {"securityContext": {"$patch": "delete"}}}),
                expected: json!({"spec": {"hostname": "h"}}),
            },
            Case {
                name: "$patch replace as a list element",
                resource: "pods",
                original: pod(json!([{"name": "a"}, {"name": "b"}])),
                patch: json!({"spec": {"containers": [
                    {"$patch": "replace"},
                    {"name": "c", "image": "c"},
                ]}}),
                expected: pod(json!([{"name": "c", "image": "c"}])),
            },
            Case {
                name: "$patch merge in a map is the default",
                resource: "pods",
                original: json!({"spec": {"nodeSelector": {"a": "1"}}}),
                patch: json!({"spec": {"nodeSelector": {"$patch": "merge", "b": "2"}}}),
                expected: json!({"spec": {"nodeSelector": {"a": "1", "b": "2"}}}),
            },
            Case {
                name: "$retainKeys drops unlisted keys",
                resource: "deployments",
                original: json!({"spec": {"strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 1},
                }}}),
                patch: json!({"spec": {"strategy": {
                    "$retainKeys": ["type"],
                    "type": "Recreate",
                    "rollingUpdate": null,
                }}}),
                expected: json!({"spec": {"strategy": {"type": "Recreate"}}}),
            },
            Case {
                name: "$setElementOrder orders a merged list",
                resource: "pods",
                original: pod(json!([{"name": "a"}, {"name": "b"}])),
                patch: json!({"spec": {
                    "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
                    "containers": [{"name": "a", "image": "y"}, {"name": "c"}],
                }}),
                expected: pod(json!([{"name": "c"}, {"name": "b"}, {"name": "a", "image": "y"}])),
            },
            Case {
                name: "$setElementOrder without the list keeps server-only elements in place",
                resource: "pods",
                original: pod(json!([{"name": "a"}, {"name": "x"}, {"name": "b"}])),
                patch: json!({"spec": {
                    "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                }}),
                expected: pod(json!([{"name": "b"}, {"name": "x"}, {"name": "a"}])),
            },
            Case {
                name: "finalizers merge as a set",
                resource: "configmaps",
                original: json!({"metadata": {"finalizers": ["x", "y"]}}),
                patch: json!({"metadata": {"finalizers": ["y", "z", "z"]}}),
                expected: json!({"metadata": {"finalizers": ["x", "y", "z"]}}),
            },
            Case {
                name: "$deleteFromPrimitiveList and $setElementOrder on a set",
                resource: "configmaps",
                original: json!({"metadata": {"finalizers": ["x", "y", "z"]}}),
                patch: json!({"metadata": {
                    "$deleteFromPrimitiveList/finalizers": ["x"],
                    "$setElementOrder/finalizers": ["z", "w", "y"],
                    "finalizers": ["w"],
                }}),
                expected: json!({"metadata": {"finalizers": ["z", "w", "y"]}}),
            },
            Case {
                name: "ownerReferences merge by uid",
                resource: "configmaps",
                original: json!({"metadata": {"ownerReferences": [
                    {"uid": "1", "name": "a"},
                    {"uid": "2", "name": "b"},
                ]}}),
                patch: json!({"metadata": {"ownerReferences": [
                    {"uid": "2", "controller": true},
                    {"$patch": "delete", "uid": "1"},
                ]}}),
                expected: json!({"metadata": {"ownerReferences": [
                    {"uid": "2", "name": "b", "controller": true},
                ]}}),
            },
            Case {
                name: "lists without a strategy replace",
                resource: "pods",
                original: json!({"spec": {
                    "tolerations": [{"key": "a"}, {"key": "b"}],
                    "containers": [{"name": "a", "args": ["1", "2"]}],
                }}),
                patch: json!({"spec": {
                    "tolerations": [{"key": "c"}],
                    "containers": [{"name": "a", "args": ["3"]}],
                }}),
                expected: json!({"spec": {
                    "tolerations": [{"key": "c"}],
                    "containers": [{"name": "a", "args": ["3"]}],
                }}),
            },
            Case {
                name: "pod templates use the PodSpec rules",
                resource: "deployments",
                original: deployment(json!([
                    {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]},
                    {"name": "b"},
                ])),
                patch: json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "a", "env": [{"name": "B", "value": "2"}]},
                ]}}}}),
                expected: deployment(json!([
                    {"name": "a", "image": "x", "env": [
                        {"name": "A", "value": "1"},
                        {"name": "B", "value": "2"},
                    ]},
                    {"name": "b"},
                ])),
            },
            Case {
                name: "service ports merge by port",
                resource: "services",
                original: json!({"spec": {"ports": [
                    {"port": 80, "targetPort": 8080, "name": "http"},
                    {"port": 443, "name": "https"},
                ]}}),
                patch: json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
                expected: json!({"spec": {"ports": [
                    {"port": 80, "targetPort": 9090, "name": "http"},
                    {"port": 443, "name": "https"},
                ]}}),
            },
            Case {
                name: "node addresses and conditions merge by type",
                resource: "nodes",
                original: json!({"status": {
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                                  {"type": "Hostname", "address": "n1"}],
                    "conditions": [{"type": "Ready", "status": "False"},
                                   {"type": "MemoryPressure", "status": "False"}],
                }}),
                patch: json!({"status": {
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                }}),
                expected: json!({"status": {
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.2"},
                                  {"type": "Hostname", "address": "n1"}],
                    "conditions": [{"type": "Ready", "status": "True"},
                                   {"type": "MemoryPressure", "status": "False"}],
                }}),
            },
            Case {
                name: "daemonset status conditions merge by type",
                resource: "daemonsets",
                original: json!({"status": {"conditions": [{"type": "A", "status": "False"}]}}),
                patch: json!({"status": {"conditions": [{"type": "B", "status": "True"}]}}),
                expected: json!({"status": {"conditions": [
                    {"type": "A", "status": "False"},
                    {"type": "B", "status": "True"},
                ]}}),
            },
            Case {
                name: "new subtrees are cleaned of directives and nulls",
                resource: "deployments",
                original: json!({"metadata": {"name": "d"}}),
                patch: json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "a"}],
                    "containers": [{
                        "name": "a",
                        "$setElementOrder/env": [{"name": "A"}],
                        "env": [{"name": "A", "value": "1"}, {"$patch": "delete", "name": "B"}],
                        "resources": null,
                        "$unknownDirective": 1,
                    }],
                    "securityContext": {"$patch": "replace", "runAsUser": 1},
                    "affinity": {"$patch": "delete"},
                }}}}),
                expected: json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {
                    "containers": [{"name": "a", "env": [{"name": "A", "value": "1"}]}],
                    "securityContext": {"runAsUser": 1},
                }}}}),
            },
        ]
    }

    #[test]
    fn strategic_merge_patch_cases() {
        for case in merge_cases() {
            let got = smp(case.resource, &case.original, case.patch)
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert_eq!(got, case.expected, "{}", case.name);
            assert_no_directives(&got);
        }
    }

    #[test]
    fn strategic_merge_patch_errors() {
        let cases: &[(&str, Value, u16, &str)] = &[
            (
                "missing merge key",
                json!({"spec": {"containers": [{"image": "x"}]}}),
                400,
                "does not contain declared merge key: name",
            ),
            (
                "element not a map",
                json!({"spec": {"containers": ["a"]}}),
                400,
                "merge key: name",
            ),
            (
                "delete without merge key",
                json!({"spec": {"containers": [{"$patch": "delete"}]}}),
                400,
                "merge key: name",
            ),
            (
                "unknown $patch",
                json!({"spec": {"$patch": "bogus"}}),
                400,
                "unknown $patch directive \"bogus\"",
            ),
            (
                "$patch merge as a list element",
                json!({"spec": {"containers": [{"$patch": "merge"}]}}),
                400,
                "not allowed as a list element",
            ),
            (
                "$patch delete in a primitive list",
                json!({"metadata": {"finalizers": [{"$patch": "delete"}]}}),
                400,
                "$deleteFromPrimitiveList",
            ),
            (
                "$setElementOrder not a list",
                json!({"spec": {"$setElementOrder/containers": {"name": "a"}}}),
                400,
                "$setElementOrder/containers must be a list",
            ),
            (
                "$setElementOrder item without merge key",
                json!({"spec": {"$setElementOrder/containers": [{"image": "a"}]}}),
                400,
                "needs the merge key name",
            ),
            (
                "$deleteFromPrimitiveList not a list",
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}}),
                400,
                "must be a list",
            ),
            (
                "$retainKeys not a list of strings",
                json!({"spec": {"securityContext": {"$retainKeys": [1]}}}),
                400,
                "$retainKeys must be a list of strings",
            ),
            (
                "$retainKeys not covering the patch",
                json!({"spec": {"securityContext": {"$retainKeys": ["a"], "b": 1}}}),
                422,
                "doesn't match retainKeys list: b",
            ),
        ];
        let original = pod(json!([{"name": "a"}]));
        for (name, patch, code, message) in cases {
            let e = smp("pods", &original, patch.clone()).unwrap_err();
            assert_eq!(e.code(), *code, "{name}: {e}");
            assert!(e.to_string().contains(message), "{name}: {e}");
        }
    }
}
