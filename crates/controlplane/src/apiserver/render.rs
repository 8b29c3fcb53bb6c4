//! Response shapes of collections: a `<Kind>List`, or a `Table` when the
//! client asks for one (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`).

use api::ResourceType;
use serde_json::{Value, json};

use super::Reply;
use super::query::Query;

/// Whether the client asked for server-side Table output.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .any(|media| media.split(';').any(|p| p.trim() == "as=Table"))
}

/// The `apiVersion` a request on `ty` at `version` answers in.
pub fn api_version(ty: &ResourceType, version: &str) -> String {
    if ty.group.is_empty() {
        version.to_string()
    } else {
        format!("{}/{version}", ty.group)
    }
}

/// A list response.
pub fn list(
    ty: &ResourceType,
    version: &str,
    items: Vec<Value>,
    resource_version: &str,
    _accept: &str,
    _query: &Query,
) -> Reply {
    Reply::ok(json!({
        "kind": format!("{}List", ty.kind),
        "apiVersion": api_version(ty, version),
        "metadata": {"resourceVersion": resource_version},
        "items": items,
    }))
}
