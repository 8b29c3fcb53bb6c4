//! Query parameters of resource requests: watch, resource versions,
//! label and field selectors, Table options, dry runs and deletion
//! propagation.

use std::collections::BTreeMap;

use api::ResourceType;
use serde_json::Value;
use toolkit::selector::LabelQuery;

use super::status::{ApiError, ApiResult};

/// Parsed query of a resource request.
#[derive(Debug, Default)]
pub struct Query {
    /// `watch=true|1`.
    pub watch: bool,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
    /// `labelSelector`.
    pub labels: LabelQuery,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `includeObject` (Table output).
    pub include_object: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `propagationPolicy` (also read from a DeleteOptions body).
    pub propagation: Option<String>,
    /// Everything else (`container`, `follow`, `command`, ...).
    pub rest: BTreeMap<String, Vec<String>>,
}

impl Query {
    /// Parse a query string.
    pub fn parse(raw: Option<&str>) -> ApiResult<Self> {
        let mut q = Self::default();
        for (key, value) in pairs(raw.unwrap_or("")) {
            match key.as_str() {
                "watch" => q.watch = value == "true" || value == "1",
                "resourceVersion" => q.resource_version = Some(value).filter(|v| !v.is_empty()),
                "allowWatchBookmarks" => q.bookmarks = value == "true",
                "timeoutSeconds" => {
                    q.timeout_seconds = Some(value.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid timeoutSeconds {value:?}"))
                    })?)
                }
                "labelSelector" => {
                    q.labels = LabelQuery::parse(&value).map_err(|e| {
                        ApiError::bad_request(format!("unable to parse requirement: {e}"))
                    })?
                }
                "fieldSelector" => q.fields = FieldSelector::parse(&value)?,
                "includeObject" => q.include_object = Some(value),
                "dryRun" => q.dry_run = value == "All",
                "propagationPolicy" => q.propagation = Some(value),
                _ => q.rest.entry(key).or_default().push(value),
            }
        }
        Ok(q)
    }

    /// The first value of another parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.rest
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// Whether an object passes the label and field selectors.
    pub fn selects(&self, ty: &ResourceType, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        self.labels
            .matches_with(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
            && self.fields.matches(ty, obj)
    }

    /// Check the field selector names only fields `ty` supports.
    pub fn check_fields(&self, ty: &ResourceType) -> ApiResult<()> {
        self.fields.check(ty)
    }
}

/// Decoded `k=v` pairs of a query string.
fn pairs(raw: &str) -> impl Iterator<Item = (String, String)> + '_ {
    raw.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (percent_decode(k), percent_decode(v))
    })
}

/// `%XX` and `+` decoding of a query component.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// A field selector: `a=b,c!=d` (`==` is `=`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    fn parse(s: &str) -> ApiResult<Self> {
        let mut terms = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: {term:?}: expected field=value or field!=value"
                )));
            };
            terms.push((field.trim().to_string(), equal, value.trim().to_string()));
        }
        Ok(Self(terms))
    }

    fn check(&self, ty: &ResourceType) -> ApiResult<()> {
        let known = fields_of(ty);
        match self
            .0
            .iter()
            .find(|(f, _, _)| !known.iter().any(|(k, _)| k == f))
        {
            Some((field, _, _)) => Err(ApiError::bad_request(format!(
                "\"{field}\" is not a known field selector: only {}",
                known
                    .iter()
                    .map(|(k, _)| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            None => Ok(()),
        }
    }

    fn matches(&self, ty: &ResourceType, obj: &Value) -> bool {
        let known = fields_of(ty);
        self.0.iter().all(|(field, equal, value)| {
            let actual = known
                .iter()
                .find(|(k, _)| k == field)
                .map(|(_, pointer)| field_value(obj, pointer))
                .unwrap_or_default();
            (actual == *value) == *equal
        })
    }
}

/// Selectable fields of a kind and where they live in the object.
fn fields_of(ty: &ResourceType) -> Vec<(&'static str, &'static str)> {
    let mut fields = vec![
        ("metadata.name", "/metadata/name"),
        ("metadata.namespace", "/metadata/namespace"),
    ];
    let extra: &[(&str, &str)] = match (ty.group, ty.kind) {
        ("", "Pod") => &[
            ("spec.nodeName", "/spec/nodeName"),
            ("spec.restartPolicy", "/spec/restartPolicy"),
            ("spec.schedulerName", "/spec/schedulerName"),
            ("spec.serviceAccountName", "/spec/serviceAccountName"),
            ("spec.hostNetwork", "/spec/hostNetwork"),
            ("status.phase", "/status/phase"),
            ("status.podIP", "/status/podIP"),
            ("status.nominatedNodeName", "/status/nominatedNodeName"),
        ],
        ("", "Event") => &[
            ("involvedObject.kind", "/involvedObject/kind"),
            ("involvedObject.namespace", "/involvedObject/namespace"),
            ("involvedObject.name", "/involvedObject/name"),
            ("involvedObject.uid", "/involvedObject/uid"),
            ("involvedObject.apiVersion", "/involvedObject/apiVersion"),
            (
                "involvedObject.resourceVersion",
                "/involvedObject/resourceVersion",
            ),
            ("involvedObject.fieldPath", "/involvedObject/fieldPath"),
            ("reason", "/reason"),
            ("reportingComponent", "/reportingComponent"),
            ("source", "/source/component"),
            ("type", "/type"),
        ],
        ("", "Node") => &[("spec.unschedulable", "/spec/unschedulable")],
        ("", "Namespace") => &[("status.phase", "/status/phase")],
        ("", "Secret") => &[("type", "/type")],
        _ => &[],
    };
    fields.extend_from_slice(extra);
    fields
}

/// A field's value as a selector compares it: strings as is, booleans
/// and numbers printed, missing booleans `false`, other missing values
/// empty.
fn field_value(obj: &Value, pointer: &str) -> String {
    match obj.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        None if pointer.ends_with("hostNetwork") || pointer.ends_with("unschedulable") => {
            "false".into()
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::Object;
    use api::k8s_openapi::api::core::v1::{Event, Node, Pod};
    use serde_json::json;

    #[test]
    fn parses_kubectl_queries() {
        let q = Query::parse(Some(
            "allowWatchBookmarks=true&fieldSelector=metadata.name%3Dwebpod&resourceVersion=42&timeoutSeconds=310&watch=true",
        ))
        .unwrap();
        assert!(q.watch && q.bookmarks);
        assert_eq!(q.resource_version.as_deref(), Some("42"));
        assert_eq!(q.timeout_seconds, Some(310));
        let pod = json!({"metadata": {"name": "webpod", "namespace": "default"}});
        assert!(q.selects(&Pod::TYPE, &pod));
        let q = Query::parse(Some("container=c&follow=true&command=curl&command=-s")).unwrap();
        assert_eq!(q.get("container"), Some("c"));
        assert_eq!(q.rest["command"], ["curl", "-s"]);
    }

    #[test]
    fn field_selectors_like_drain_and_describe() {
        let q = Query::parse(Some(
            "fieldSelector=spec.nodeName%3Dk8s-w1,status.phase!%3DSucceeded,status.phase!%3DFailed&labelSelector=app%3Dwebpod",
        ))
        .unwrap();
        q.check_fields(&Pod::TYPE).unwrap();
        let running = json!({"metadata": {"name": "a", "labels": {"app": "webpod"}}, "spec": {"nodeName": "k8s-w1"}, "status": {"phase": "Running"}});
        let done = json!({"metadata": {"name": "b", "labels": {"app": "webpod"}}, "spec": {"nodeName": "k8s-w1"}, "status": {"phase": "Succeeded"}});
        assert!(q.selects(&Pod::TYPE, &running));
        assert!(!q.selects(&Pod::TYPE, &done));

        let q = Query::parse(Some(
            "fieldSelector=involvedObject.name%3Dx,involvedObject.namespace%3D",
        ))
        .unwrap();
        q.check_fields(&Event::TYPE).unwrap();
        assert!(q.selects(&Event::TYPE, &json!({"involvedObject": {"name": "x"}})));

        let q = Query::parse(Some("fieldSelector=spec.unschedulable%3Dfalse")).unwrap();
        assert!(q.selects(&Node::TYPE, &json!({"spec": {}})));

        let err = Query::parse(Some("fieldSelector=foo.bar%3D1"))
            .unwrap()
            .check_fields(&Node::TYPE)
            .unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .starts_with("\"foo.bar\" is not a known field selector: only \"metadata.name\"")
        );
        assert!(Query::parse(Some("labelSelector=a%20b")).is_err());
        assert!(Query::parse(Some("timeoutSeconds=x")).is_err());
    }

    #[test]
    fn percent_decoding_tolerates_garbage() {
        assert_eq!(percent_decode("a%3Db+c"), "a=b c");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("é%é"), "é%é");
    }
}
