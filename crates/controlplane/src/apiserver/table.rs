//! Server-side Table output: the `meta.k8s.io/v1` `Table` that
//! kube-apiserver answers when a client sends
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (every
//! `kubectl get` without `-o yaml|json|name`, lists, single objects and
//! watch events alike).
//!
//! ```text
//!  table(type, objects, includeObject, with_columns, listMeta, now)
//!    columns of the type ─► built-in printers (pod, node, service, ...)   pod, builtin
//!                        ─► cilium.io CRD printer columns (JSONPath)     custom
//!                        ─► otherwise Name, Age
//!    each object ─► cells (+ row conditions) + row object:
//!                   PartialObjectMetadata (default) | the object | none
//! ```
//!
//! The server computes every column, the wide ones (`priority` 1) too:
//! kubectl hides those unless `-o wide`, upper-cases the names for its
//! headers and adds NAMESPACE (`-A`) and LABELS from the row's object
//! metadata. Cells are printed as given, so ages are rendered here
//! (kubectl's human durations) relative to the `now` the caller passes:
//! the module is pure.

use std::str::FromStr;

use api::ResourceType;
use api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

mod builtin;
mod custom;
mod format;
mod pod;

pub use format::human_duration;

/// Which object each row carries: the `includeObject` query parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object (`includeObject=None`).
    None,
    /// The object's metadata as a `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object (kubectl asks for it with `--sort-by`).
    Object,
}

/// An `includeObject` value other than `None`, `Metadata` or `Object`
/// (the API server answers 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "includeObject: Unsupported value: \"{0}\": supported values: \"Metadata\", \"None\", \"Object\""
)]
pub struct InvalidIncludeObject(pub String);

impl FromStr for IncludeObject {
    type Err = InvalidIncludeObject;

    /// Parses the query value; empty means the default (`Metadata`).
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "None" => Ok(Self::None),
            "" | "Metadata" => Ok(Self::Metadata),
            "Object" => Ok(Self::Object),
            other => Err(InvalidIncludeObject(other.to_string())),
        }
    }
}

/// The `Table` of `items` (stored objects of type `ty`, full JSON with
/// `metadata`, `spec`, `status`): one row per item, in order.
///
/// `with_columns` is false for watch events after the first, whose
/// `columnDefinitions` are null. `list_meta` becomes the Table's
/// `metadata` (the list's `resourceVersion` and `continue`, or the
/// object's `resourceVersion` for a single object or watch event). Ages
/// are computed relative to `now`.
pub fn table(
    ty: &ResourceType,
    items: &[Value],
    include: IncludeObject,
    with_columns: bool,
    list_meta: &ListMeta,
    now: Timestamp,
) -> Value {
    let columns = columns(ty);
    let definitions = if with_columns {
        columns.iter().map(Column::definition).collect()
    } else {
        Value::Null
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|object| row(ty, columns, object, include, now))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": serde_json::to_value(list_meta).unwrap_or_else(|_| json!({})),
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

/// The columns of a type: its printer's, else Name and Age.
fn columns(ty: &ResourceType) -> &'static [Column] {
    if ty.group == custom::GROUP {
        custom::columns(ty.kind)
    } else {
        builtin::columns(ty.kind).unwrap_or(custom::DEFAULT)
    }
}

/// One row: the cells, the row conditions (pods) and the object.
fn row(
    ty: &ResourceType,
    columns: &[Column],
    object: &Value,
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    let mut row = Map::new();
    let cells = columns.iter().map(|c| c.cell(object, now)).collect();
    row.insert("cells".into(), cells);
    if ty.group.is_empty()
        && ty.kind == "Pod"
        && let Some(conditions) = pod::row_conditions(object)
    {
        row.insert("conditions".into(), conditions);
    }
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
            let partial = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
            });
            row.insert("object".into(), partial);
        }
        IncludeObject::Object => {
            row.insert("object".into(), object.clone());
        }
    }
    Value::Object(row)
}

/// A printer function: the cell of one column for one object at `now`.
type Printer = fn(&Value, Timestamp) -> Value;

/// How a column's cell is computed.
#[derive(Clone, Copy)]
enum Cell {
    /// By a built-in printer.
    Printer(Printer),
    /// By a CRD printer column's JSONPath, typed by the column's type.
    JsonPath(&'static str),
}

/// One column: its `TableColumnDefinition` and how to fill its cells.
#[derive(Clone, Copy)]
struct Column {
    name: &'static str,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    type_: &'static str,
    /// `name` for the column naming the object, else empty.
    format: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    priority: u8,
    description: &'static str,
    cell: Cell,
}

impl Column {
    /// A column of type `string` filled by `printer`.
    const fn string(name: &'static str, description: &'static str, printer: Printer) -> Self {
        Self::typed(name, "string", description, printer)
    }

    /// A column of a given type filled by `printer`.
    const fn typed(
        name: &'static str,
        type_: &'static str,
        description: &'static str,
        printer: Printer,
    ) -> Self {
        Self {
            name,
            type_,
            format: "",
            priority: 0,
            description,
            cell: Cell::Printer(printer),
        }
    }

    /// A CRD printer column (`additionalPrinterColumns` entry).
    const fn json_path(
        name: &'static str,
        type_: &'static str,
        path: &'static str,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            type_,
            format: "",
            priority: 0,
            description,
            cell: Cell::JsonPath(path),
        }
    }

    /// The same column, shown only with `-o wide` (priority 1).
    const fn wide(self) -> Self {
        Self {
            priority: 1,
            ..self
        }
    }

    /// The same column, marked as naming the object (format `name`).
    const fn naming(self) -> Self {
        Self {
            format: "name",
            ..self
        }
    }

    fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }

    fn cell(&self, object: &Value, now: Timestamp) -> Value {
        match self.cell {
            Cell::Printer(printer) => printer(object, now),
            Cell::JsonPath(path) => custom::cell(self.type_, path, object, now),
        }
    }
}

/// What `metadata.name` means, as column description.
const NAME_DESCRIPTION: &str =
    "Name of the object, unique within its namespace (or the cluster for cluster-scoped kinds).";

/// What `metadata.creationTimestamp` means, as column description.
const CREATION_DESCRIPTION: &str =
    "Time the server created the object (RFC 3339, UTC); shown as the age since then.";

/// The `Name` column.
const NAME: Column = Column::string("Name", NAME_DESCRIPTION, |o, _| {
    str_at(o, "/metadata/name").into()
})
.naming();

/// The `Age` column of the built-in printers.
const AGE: Column = Column::string("Age", CREATION_DESCRIPTION, |o, now| {
    since(timestamp_at(o, "/metadata/creationTimestamp"), now).into()
});

/// The string at a JSON pointer, or "" when absent or not a string.
fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The array at a JSON pointer, or an empty slice.
fn array_at<'a>(object: &'a Value, pointer: &str) -> &'a [Value] {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The integer at a JSON pointer, or 0.
fn int_at(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Whether the boolean at a JSON pointer is true.
fn bool_at(object: &Value, pointer: &str) -> bool {
    object.pointer(pointer).and_then(Value::as_bool) == Some(true)
}

/// The number of entries of the map or list at a JSON pointer.
fn len_at(object: &Value, pointer: &str) -> i64 {
    let len = match object.pointer(pointer) {
        Some(Value::Object(map)) => map.len(),
        Some(Value::Array(items)) => items.len(),
        _ => 0,
    };
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// Whether a JSON pointer leads to a non-null value.
fn present(object: &Value, pointer: &str) -> bool {
    object.pointer(pointer).is_some_and(|v| !v.is_null())
}

/// The timestamp at a JSON pointer (RFC 3339), if any.
fn timestamp_at(object: &Value, pointer: &str) -> Option<Timestamp> {
    str_at(object, pointer).parse().ok()
}

/// The age of a timestamp at `now` as kubectl prints it; `<unknown>`
/// without one.
fn since(timestamp: Option<Timestamp>, now: Timestamp) -> String {
    timestamp.map_or_else(
        || "<unknown>".into(),
        |t| human_duration(now.duration_since(t)),
    )
}

/// `text`, or `<none>` when it is empty.
fn or_none(text: &str) -> String {
    if text.is_empty() {
        "<none>".into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference time of every test: ages are relative to it.
    pub(super) const NOW: &str = "2025-03-01T12:00:00Z";

    /// The registered type of a kind.
    pub(super) fn kind(kind: &str) -> &'static ResourceType {
        &api::registry()
            .iter()
            .find(|k| k.ty.kind == kind)
            .unwrap_or_else(|| panic!("{kind} is registered"))
            .ty
    }

    /// The table of objects of a kind at [`NOW`], with columns.
    pub(super) fn table_of(kind_name: &str, items: &[Value]) -> Value {
        let meta = ListMeta {
            resource_version: Some("42".into()),
            ..ListMeta::default()
        };
        table(
            kind(kind_name),
            items,
            IncludeObject::Metadata,
            true,
            &meta,
            NOW.parse().unwrap(),
        )
    }

    /// The cells of one object of a kind at [`NOW`].
    pub(super) fn cells(kind_name: &str, object: Value) -> Vec<Value> {
        let table = table_of(kind_name, &[object]);
        table["rows"][0]["cells"].as_array().unwrap().clone()
    }

    /// The cells of one object of a kind at [`NOW`], as compact JSON.
    pub(super) fn row_text(kind_name: &str, object: Value) -> String {
        Value::Array(cells(kind_name, object)).to_string()
    }

    /// The column names of a kind, `|`-separated, wide ones marked `*`.
    pub(super) fn headers(kind_name: &str) -> String {
        let table = table_of(kind_name, &[]);
        let names: Vec<String> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let wide = if c["priority"] == 1 { "*" } else { "" };
                format!("{}{wide}", c["name"].as_str().unwrap())
            })
            .collect();
        names.join("|")
    }

    fn config_map() -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cilium-config", "namespace": "kube-system",
                "resourceVersion": "41", "labels": {"app": "cilium"},
                "creationTimestamp": "2025-03-01T11:00:00Z"},
            "data": {"a": "1", "b": "2"}
        })
    }

    #[test]
    fn table_shape_and_column_definitions() {
        let t = table_of("ConfigMap", &[config_map()]);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({"resourceVersion": "42"}));
        assert_eq!(
            t["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name",
                "description": NAME_DESCRIPTION, "priority": 0})
        );
        assert_eq!(t["columnDefinitions"][1]["name"], "Data");
        assert_eq!(t["columnDefinitions"][2]["format"], "");
        assert_eq!(t["rows"][0]["cells"], json!(["cilium-config", 2, "60m"]));
        assert!(t["rows"][0].get("conditions").is_none());
        let empty = table_of("ConfigMap", &[]);
        assert_eq!(empty["rows"], json!([]));
    }

    #[test]
    fn include_object_variants() {
        let object = config_map();
        let build = |include| {
            let meta = ListMeta::default();
            let ty = kind("ConfigMap");
            table(
                ty,
                std::slice::from_ref(&object),
                include,
                true,
                &meta,
                NOW.parse().unwrap(),
            )
        };
        let metadata = build(IncludeObject::Metadata);
        assert_eq!(
            metadata["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": object["metadata"]})
        );
        assert_eq!(metadata["metadata"], json!({}));
        assert_eq!(build(IncludeObject::Object)["rows"][0]["object"], object);
        let none = build(IncludeObject::None);
        assert!(none["rows"][0].get("object").is_none());
        assert_eq!(none["rows"][0]["cells"][0], "cilium-config");
    }

    #[test]
    fn include_object_parses_query_values() {
        assert_eq!("None".parse(), Ok(IncludeObject::None));
        assert_eq!("Metadata".parse(), Ok(IncludeObject::Metadata));
        assert_eq!("".parse(), Ok(IncludeObject::Metadata));
        assert_eq!("Object".parse(), Ok(IncludeObject::Object));
        assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
        let err = "object".parse::<IncludeObject>().unwrap_err();
        assert_eq!(err, InvalidIncludeObject("object".into()));
        assert!(err.to_string().contains(r#"Unsupported value: "object""#));
    }

    #[test]
    fn watch_rows_carry_no_column_definitions() {
        let meta = ListMeta {
            resource_version: Some("41".into()),
            ..ListMeta::default()
        };
        let t = table(
            kind("ConfigMap"),
            &[config_map()],
            IncludeObject::Metadata,
            false,
            &meta,
            NOW.parse().unwrap(),
        );
        assert_eq!(t["columnDefinitions"], Value::Null);
        assert_eq!(t["metadata"]["resourceVersion"], "41");
        assert_eq!(t["rows"][0]["cells"], json!(["cilium-config", 2, "60m"]));
    }

    #[test]
    fn list_metadata_is_passed_through() {
        let meta = ListMeta {
            resource_version: Some("7".into()),
            continue_: Some("token".into()),
            remaining_item_count: Some(3),
            ..ListMeta::default()
        };
        let t = table(
            kind("Pod"),
            &[],
            IncludeObject::None,
            true,
            &meta,
            NOW.parse().unwrap(),
        );
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "7", "continue": "token", "remainingItemCount": 3})
        );
    }

    #[test]
    fn every_served_kind_has_one_cell_per_column() {
        for k in api::registry() {
            let object = json!({
                "apiVersion": k.ty.api_version(), "kind": k.ty.kind,
                "metadata": {"name": "x", "creationTimestamp": "2025-03-01T11:59:50Z"}
            });
            let meta = ListMeta::default();
            let now = NOW.parse().unwrap();
            let t = table(&k.ty, &[object], IncludeObject::Metadata, true, &meta, now);
            let definitions = t["columnDefinitions"].as_array().unwrap();
            let cells = t["rows"][0]["cells"].as_array().unwrap();
            assert_eq!(definitions.len(), cells.len(), "{}", k.ty.kind);
            let names: Vec<&Value> = definitions
                .iter()
                .filter(|d| d["format"] == "name")
                .collect();
            assert_eq!(names.len(), 1, "{} has one name column", k.ty.kind);
            assert!(cells.contains(&json!("x")), "{}", k.ty.kind);
        }
    }

    #[test]
    fn kinds_without_columns_get_name_and_age() {
        assert_eq!(headers("CiliumCIDRGroup"), "Name|Age");
        let cidr_group = json!({"metadata": {"name": "g",
            "creationTimestamp": "2025-03-01T11:59:15Z"}});
        assert_eq!(row_text("CiliumCIDRGroup", cidr_group), r#"["g","45s"]"#);
        let fake = ResourceType {
            kind: "Widget",
            group: "example.com",
            ..*kind("ConfigMap")
        };
        let meta = ListMeta::default();
        let t = table(
            &fake,
            &[],
            IncludeObject::None,
            true,
            &meta,
            NOW.parse().unwrap(),
        );
        assert_eq!(t["columnDefinitions"][1]["name"], "Age");
        assert_eq!(t["columnDefinitions"][1]["type"], "date");
    }

    #[test]
    fn ages_without_creation_time_are_unknown() {
        let cm = json!({"metadata": {"name": "a"}, "data": {}});
        assert_eq!(row_text("ConfigMap", cm), r#"["a",0,"<unknown>"]"#);
    }
}
