//! OpenAPI v3: the index (`/openapi/v3`) and one document per group
//! version, generated from the registry. Each kind's object path carries
//! a PATCH operation tagged with its group/version/kind and the
//! `fieldValidation` parameter, which is what kubectl 1.29+ looks for to
//! hand validation to the server (`--validate=strict` becomes
//! `fieldValidation=Strict`). Schemas are open objects: the server
//! validates every write itself.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use api::ResourceType;
use serde_json::{Map, Value, json};

/// Every group version served, as index keys (`api/v1`, `apis/apps/v1`).
fn group_versions() -> BTreeSet<String> {
    api::registry()
        .iter()
        .flat_map(|k| k.ty.served.iter().map(move |v| key(k.ty.group, v)))
        .collect()
}

fn key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`: each document's URL carries a hash of its content,
/// so kubectl's HTTP cache refetches it when it changes.
pub fn index() -> Value {
    let mut paths = Map::new();
    for gv in group_versions() {
        let doc = document(&gv).expect("indexed group versions have documents");
        let mut hasher = DefaultHasher::new();
        doc.to_string().hash(&mut hasher);
        paths.insert(
            gv.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={:016X}", hasher.finish())}),
        );
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/<gv>`; `None` for an unknown group version.
pub fn document(gv: &str) -> Option<Value> {
    let (group, version) = match gv.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), (*v).to_string()),
        ["apis", g, v] => ((*g).to_string(), (*v).to_string()),
        _ => return None,
    };
    let kinds: Vec<&ResourceType> = api::registry()
        .iter()
        .map(|k| &k.ty)
        .filter(|ty| ty.group == group && ty.served.contains(&version.as_str()))
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for ty in kinds {
        let gvk = json!({"group": ty.group, "version": version, "kind": ty.kind});
        let (collection, object) = resource_paths(ty, &group, &version);
        paths.insert(collection, collection_item(&gvk));
        paths.insert(object, object_item(&gvk));
        schemas.insert(
            schema_name(ty, &version),
            json!({
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "x-kubernetes-group-version-kind": [gvk],
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn resource_paths(ty: &ResourceType, group: &str, version: &str) -> (String, String) {
    let root = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let scope = if ty.namespaced {
        format!("{root}/namespaces/{{namespace}}/{}", ty.plural)
    } else {
        format!("{root}/{}", ty.plural)
    };
    (scope.clone(), format!("{scope}/{{name}}"))
}

fn schema_name(ty: &ResourceType, version: &str) -> String {
    let group = if ty.group.is_empty() {
        "core"
    } else {
        ty.group
    };
    format!("{group}.{version}.{}", ty.kind)
}

fn operation(gvk: &Value, action: &str) -> Value {
    json!({
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {"200": {"description": "OK"}},
    })
}

fn collection_item(gvk: &Value) -> Value {
    json!({"get": operation(gvk, "list"), "post": operation(gvk, "post")})
}

fn object_item(gvk: &Value) -> Value {
    json!({
        "get": operation(gvk, "get"),
        "put": operation(gvk, "put"),
        "patch": operation(gvk, "patch"),
        "delete": operation(gvk, "delete"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_patch_operation_with_field_validation() {
        for k in api::registry() {
            let gv = key(k.ty.group, k.ty.version);
            let doc = document(&gv).unwrap();
            let (_, object) = resource_paths(&k.ty, k.ty.group, k.ty.version);
            let patch = &doc["paths"][object.as_str()]["patch"];
            assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], k.ty.kind);
            assert!(
                patch["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == "fieldValidation")
            );
        }
    }

    #[test]
    fn index_points_at_every_document() {
        let index = index();
        let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        assert!(index["paths"]["api/v1"].is_object());
        assert!(index["paths"]["apis/cilium.io/v2alpha1"].is_object());
        assert!(document("apis/nope/v1").is_none());
        assert!(document("garbage").is_none());
    }
}
