//! CustomResourceDefinitions of the `cilium.io` kinds, generated from the
//! registry and stored at start-up, so that `kubectl get crd` lists them
//! as on a real cluster (names, scope, served and storage versions,
//! status subresource, categories).

use api::ResourceType;
use api::k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};
use store::Store;

/// The CRD of one custom kind.
pub fn definition(ty: &ResourceType) -> Value {
    let versions: Vec<Value> = ty
        .served
        .iter()
        .map(|v| {
            let mut version = json!({
                "name": v,
                "served": true,
                "storage": *v == ty.version,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            });
            if ty.has_status_subresource() {
                version["subresources"] = json!({"status": {}});
            }
            version
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{}", ty.plural, ty.group)},
        "spec": {
            "group": ty.group,
            "names": {
                "plural": ty.plural,
                "singular": ty.singular,
                "kind": ty.kind,
                "listKind": format!("{}List", ty.kind),
                "shortNames": ty.short_names,
                "categories": ["cilium"],
            },
            "scope": if ty.namespaced { "Namespaced" } else { "Cluster" },
            "versions": versions,
        },
    })
}

/// Every custom kind of the registry.
fn custom_kinds() -> impl Iterator<Item = &'static ResourceType> {
    api::registry()
        .iter()
        .map(|k| &k.ty)
        .filter(|ty| ty.group == "cilium.io")
}

/// Store the CRD of every custom kind that has none.
pub async fn ensure(store: &Store) -> store::Result<()> {
    let ty = &<CustomResourceDefinition as api::Object>::TYPE;
    for kind in custom_kinds() {
        let crd = definition(kind);
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        if store.get_value(ty, None, name).await?.is_none() {
            match store.create_value(ty, &crd).await {
                Ok(_) | Err(store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_decode_as_crds() {
        for ty in custom_kinds() {
            let crd: CustomResourceDefinition = serde_json::from_value(definition(ty)).unwrap();
            assert_eq!(crd.spec.names.kind, ty.kind);
            let storage: Vec<_> = crd.spec.versions.iter().filter(|v| v.storage).collect();
            assert_eq!(storage.len(), 1, "{}", ty.kind);
        }
    }

    #[tokio::test]
    async fn ensure_creates_each_once() {
        let store = Store::memory();
        ensure(&store).await.unwrap();
        ensure(&store).await.unwrap();
        let ty = &<CustomResourceDefinition as api::Object>::TYPE;
        let list = store.list_values(ty, None).await.unwrap();
        assert_eq!(list.items.len(), custom_kinds().count());
        assert!(
            list.items
                .iter()
                .any(|c| c["metadata"]["name"] == "ciliumnodes.cilium.io")
        );
    }
}
