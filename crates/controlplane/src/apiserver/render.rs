//! Response shapes: a `<Kind>List` for collections, and a `Table` for
//! lists, single objects and watch events when the client asks for one
//! (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`).

use api::ResourceType;
use api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use serde_json::{Value, json};

use super::Reply;
use super::query::Query;
use super::status::{ApiError, ApiResult};
use super::table::{self, IncludeObject};

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

/// How a request wants objects rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Plain objects and lists.
    Objects,
    /// Tables with rows carrying this much of each object.
    Table(IncludeObject),
}

impl Shape {
    /// The shape asked for by a request's Accept and `includeObject`.
    pub fn of(accept: &str, query: &Query) -> ApiResult<Self> {
        if !wants_table(accept) {
            return Ok(Self::Objects);
        }
        let include = query
            .include_object
            .as_deref()
            .unwrap_or("")
            .parse::<IncludeObject>()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Self::Table(include))
    }

    /// A Table of `items` (columns only when `with_columns`).
    pub fn table(
        include: IncludeObject,
        ty: &ResourceType,
        items: &[Value],
        rv: &str,
        with_columns: bool,
    ) -> Value {
        let meta = ListMeta {
            resource_version: Some(rv.to_string()),
            ..ListMeta::default()
        };
        table::table(
            ty,
            items,
            include,
            with_columns,
            &meta,
            jiff::Timestamp::now(),
        )
    }
}

fn resource_version(object: &Value) -> &str {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A single object (a one-row Table when asked for).
pub fn object(ty: &ResourceType, object: Value, shape: Shape) -> Value {
    match shape {
        Shape::Objects => object,
        Shape::Table(include) => {
            let rv = resource_version(&object).to_string();
            Shape::table(include, ty, &[object], &rv, true)
        }
    }
}

/// A list response.
pub fn list(ty: &ResourceType, version: &str, items: Vec<Value>, rv: &str, shape: Shape) -> Reply {
    Reply::ok(match shape {
        Shape::Objects => json!({
            "kind": format!("{}List", ty.kind),
            "apiVersion": api_version(ty, version),
            "metadata": {"resourceVersion": rv},
            "items": items,
        }),
        Shape::Table(include) => Shape::table(include, ty, &items, rv, true),
    })
}
