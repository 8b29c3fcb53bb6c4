//! PATCH bodies: which kind of patch a request carries (from its
//! `Content-Type`) and the document that results from applying it to the
//! current object. Pure: the server reads the body, loads the object,
//! handles `resourceVersion` and metadata, and stores what this returns.
//!
//! | Content-Type | Semantics |
//! |---|---|
//! | `application/json-patch+json` | RFC 6902 operations |
//! | `application/merge-patch+json` | RFC 7386: maps merge, `null` deletes, lists replace |
//! | `application/strategic-merge-patch+json` | merge patch with per-field list strategies and `$` directives (built-in kinds only) |
//! | `application/apply-patch+yaml` | server-side apply: create or merge the applied configuration |
//!
//! Strategic merge patch (SMP) knows, per kind, which lists merge by a key
//! (containers by `name`, ports by `containerPort`, conditions by `type`,
//! ...), which merge as sets of primitives (finalizers), and replaces every
//! other list. It honours `$patch` (`replace`, `delete`, `merge`) in maps
//! and as list elements, `$retainKeys`, `$setElementOrder/<list>` and
//! `$deleteFromPrimitiveList/<list>`, which is what client-side
//! `kubectl apply` sends. Directives never reach the result; unknown ones
//! are ignored.
//!
//! Server-side apply merges the applied configuration with SMP semantics
//! for built-in kinds and merge-patch semantics for custom resources.
//! Field ownership (managers, conflicts) is not tracked.

use api::ResourceType;
use serde_json::{Map, Value};

mod strategic;

pub use strategic::strategic_merge_patch;

/// Most operations one JSON patch may carry (as upstream).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// A PATCH request that cannot be applied, with the HTTP status the server
/// answers it with ([`PatchError::code`], [`PatchError::reason`]).
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The Content-Type is not a patch type this resource accepts (415).
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {accepted}"
    )]
    UnsupportedMediaType {
        /// The accepted media types, comma-separated.
        accepted: String,
    },
    /// The body is not well-formed JSON (or YAML) of the expected shape (400).
    #[error("error decoding {format}: {message}")]
    Decode {
        /// `patch` for JSON bodies, `YAML` for apply bodies.
        format: &'static str,
        /// What was wrong.
        message: String,
    },
    /// A JSON patch with more than [`MAX_JSON_PATCH_OPERATIONS`] (413).
    #[error(
        "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {count}"
    )]
    TooManyOperations {
        /// Operations in the patch.
        count: usize,
    },
    /// A JSON patch operation failed: `test` mismatch, missing path (422).
    #[error(transparent)]
    JsonPatch(#[from] json_patch::PatchError),
    /// A malformed strategic-merge-patch directive (400).
    #[error("invalid strategic merge patch: {0}")]
    BadDirective(String),
    /// A merge-list element without the list's merge key (400).
    #[error("map: {element} does not contain declared merge key: {key}")]
    MissingMergeKey {
        /// The merge key of the list.
        key: &'static str,
        /// The offending element, as JSON.
        element: String,
    },
    /// A patched key absent from its map's `$retainKeys` list (422).
    #[error("patch content doesn't match retainKeys list: {key} is not retained")]
    RetainKeysMismatch {
        /// The patched key.
        key: String,
    },
    /// A server-side apply body carrying `metadata.managedFields` (400).
    #[error("metadata.managedFields must be nil")]
    ManagedFields,
}

impl PatchError {
    /// HTTP status code of the error.
    pub const fn code(&self) -> u16 {
        match self {
            Self::UnsupportedMediaType { .. } => 415,
            Self::TooManyOperations { .. } => 413,
            Self::JsonPatch(_) | Self::RetainKeysMismatch { .. } => 422,
            Self::Decode { .. }
            | Self::BadDirective(_)
            | Self::MissingMergeKey { .. }
            | Self::ManagedFields => 400,
        }
    }

    /// The `Status` reason of the error (`BadRequest`, `Invalid`, ...).
    pub const fn reason(&self) -> &'static str {
        match self.code() {
            415 => "UnsupportedMediaType",
            413 => "RequestEntityTooLarge",
            422 => "Invalid",
            _ => "BadRequest",
        }
    }
}

/// The kind of patch a PATCH request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 JSON patch.
    Json,
    /// RFC 7386 JSON merge patch.
    Merge,
    /// Kubernetes strategic merge patch (built-in kinds only).
    Strategic,
    /// Server-side apply (YAML or JSON body).
    Apply,
}

impl PatchType {
    /// Every patch type, in the order upstream lists them.
    const ALL: [Self; 4] = [Self::Json, Self::Merge, Self::Strategic, Self::Apply];

    /// The media type naming this patch type.
    pub const fn media_type(self) -> &'static str {
        match self {
            Self::Json => "application/json-patch+json",
            Self::Merge => "application/merge-patch+json",
            Self::Strategic => "application/strategic-merge-patch+json",
            Self::Apply => "application/apply-patch+yaml",
        }
    }

    /// The patch type of a request's `Content-Type` (parameters such as
    /// `; charset=utf-8` ignored) for a resource of type `ty`. Unknown
    /// media types, and strategic merge patches of custom resources, are
    /// [`PatchError::UnsupportedMediaType`].
    pub fn from_content_type(content_type: &str, ty: &ResourceType) -> Result<Self, PatchError> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        accepted(ty)
            .find(|t| t.media_type().eq_ignore_ascii_case(media_type))
            .ok_or_else(|| unsupported(ty))
    }
}

/// The patch types a resource of type `ty` accepts.
fn accepted(ty: &ResourceType) -> impl Iterator<Item = PatchType> {
    let strategic = supports_strategic(ty);
    PatchType::ALL
        .into_iter()
        .filter(move |t| strategic || *t != PatchType::Strategic)
}

fn unsupported(ty: &ResourceType) -> PatchError {
    PatchError::UnsupportedMediaType {
        accepted: accepted_media_types(ty),
    }
}

/// The media types a PATCH of a resource of type `ty` may carry,
/// comma-separated as in the 415 message.
pub fn accepted_media_types(ty: &ResourceType) -> String {
    accepted(ty)
        .map(PatchType::media_type)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `ty` is a built-in kind, which alone accept strategic merge
/// patches: the core group, the dotless groups (`apps`, `batch`; a CRD
/// group always has a dot) and the `k8s.io` groups. Custom resources
/// (`cilium.io`, ...) do not.
pub fn supports_strategic(ty: &ResourceType) -> bool {
    let group = ty.group;
    !group.contains('.') || group == "k8s.io" || group.ends_with(".k8s.io")
}

/// The object that results from applying the PATCH `body` of type
/// `patch_type` to `current`, an object of type `ty`. For
/// [`PatchType::Apply`] this is [`server_side_apply`] on an existing object.
pub fn patch(
    ty: &ResourceType,
    patch_type: PatchType,
    current: &Value,
    body: &[u8],
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => json_patch(current, body),
        PatchType::Merge => {
            let mut object = current.clone();
            json_patch::merge(&mut object, &Value::Object(decode_json(body)?));
            Ok(object)
        }
        PatchType::Strategic => strategic_merge_patch(ty, current, decode_json(body)?),
        PatchType::Apply => server_side_apply(ty, Some(current), body),
    }
}

/// Server-side apply of the configuration in `body` (YAML or JSON) to
/// `current`: the applied document itself (directives and `null`s
/// dropped) when the object does not exist, else the configuration merged
/// into it (strategic merge for built-in kinds, merge patch for custom
/// resources).
pub fn server_side_apply(
    ty: &ResourceType,
    current: Option<&Value>,
    body: &[u8],
) -> Result<Value, PatchError> {
    let applied = decode_yaml(body)?;
    if applied
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|f| !f.is_null())
    {
        return Err(PatchError::ManagedFields);
    }
    let mut object = current
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    if supports_strategic(ty) {
        return strategic_merge_patch(ty, &object, applied);
    }
    json_patch::merge(&mut object, &Value::Object(applied));
    Ok(object)
}

fn json_patch(current: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let operations: json_patch::Patch =
        serde_json::from_slice(body).map_err(|e| decode_error("patch", e))?;
    if operations.0.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            count: operations.0.len(),
        });
    }
    let mut object = current.clone();
    json_patch::patch(&mut object, &operations)?;
    Ok(object)
}

fn decode_error(format: &'static str, error: impl std::fmt::Display) -> PatchError {
    PatchError::Decode {
        format,
        message: error.to_string(),
    }
}

/// A JSON body that must be an object.
fn decode_json(body: &[u8]) -> Result<Map<String, Value>, PatchError> {
    let value = serde_json::from_slice(body).map_err(|e| decode_error("patch", e))?;
    into_object("patch", value)
}

/// An apply body: YAML, or JSON (a YAML subset, parsed as JSON for its
/// error messages).
fn decode_yaml(body: &[u8]) -> Result<Map<String, Value>, PatchError> {
    let text = std::str::from_utf8(body).map_err(|e| decode_error("YAML", e))?;
    let value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| decode_error("YAML", e))?
    } else {
        let options = serde_saphyr::options! { with_snippet: false, legacy_octal_numbers: true };
        serde_saphyr::from_str_with_options(text, options).map_err(|e| decode_error("YAML", e))?
    };
    into_object("YAML", value)
}

fn into_object(format: &'static str, value: Value) -> Result<Map<String, Value>, PatchError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(decode_error(
            format,
            format_args!("expected an object, got {}", type_name(&other)),
        )),
    }
}

const fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The registered type of a resource (`pods`, `deployments`, `cn`).
    pub(super) fn ty(name: &str) -> &'static ResourceType {
        &api::lookup(name).expect("registered resource").ty
    }

    fn bytes(value: &Value) -> Vec<u8> {
        serde_json::to_vec(value).expect("serializable")
    }

    pub(super) fn assert_no_directives(value: &Value) {
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| {
                assert!(!k.starts_with('$'), "directive {k} leaked");
                assert_no_directives(v);
            }),
            Value::Array(list) => list.iter().for_each(assert_no_directives),
            _ => {}
        }
    }

    pub(super) fn pod(containers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": containers}})
    }

    pub(super) fn deployment(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}})
    }

    const ACCEPTED_BUILT_IN: &str = "application/json-patch+json, application/merge-patch+json, \
        application/strategic-merge-patch+json, application/apply-patch+yaml";
    const ACCEPTED_CUSTOM: &str =
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";

    #[test]
    fn patch_type_from_content_type() {
        let cases: &[(&str, &str, Result<PatchType, &str>)] = &[
            ("application/json-patch+json", "pods", Ok(PatchType::Json)),
            (
                "application/merge-patch+json; charset=utf-8",
                "pods",
                Ok(PatchType::Merge),
            ),
            (
                "application/strategic-merge-patch+json",
                "deployments",
                Ok(PatchType::Strategic),
            ),
            ("application/apply-patch+yaml", "cn", Ok(PatchType::Apply)),
            (" Application/JSON-Patch+JSON ", "cn", Ok(PatchType::Json)),
            ("application/json", "pods", Err(ACCEPTED_BUILT_IN)),
            (
                "application/strategic-merge-patch+json",
                "cn",
                Err(ACCEPTED_CUSTOM),
            ),
            ("", "cnp", Err(ACCEPTED_CUSTOM)),
        ];
        for (content_type, resource, expected) in cases {
            let got = PatchType::from_content_type(content_type, ty(resource));
            match (got, expected) {
                (Ok(got), Ok(expected)) => assert_eq!(got, *expected, "{content_type}"),
                (Err(e), Err(accepted)) => {
                    assert_eq!((e.code(), e.reason()), (415, "UnsupportedMediaType"));
                    assert_eq!(
                        e.to_string(),
                        format!(
                            "the body of the request was in an unknown format - \
                             accepted media types include: {accepted}"
                        )
                    );
                }
                (got, _) => panic!("{content_type} on {resource}: {got:?}"),
            }
        }
    }

    #[test]
    fn strategic_is_for_built_in_kinds_only() {
        for resource in [
            "pods",
            "deployments",
            "leases",
            "endpointslices",
            "roles",
            "crd",
        ] {
            assert!(supports_strategic(ty(resource)), "{resource}");
        }
        for resource in ["cn", "cep", "cnp", "ciliumidentities"] {
            assert!(!supports_strategic(ty(resource)), "{resource}");
        }
    }

    #[test]
    fn json_patch_applies_operations() {
        let current = pod(json!([{"name": "a", "image": "x"}]));
        let ops = json!([
            {"op": "test", "path": "/spec/containers/0/name", "value": "a"},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "y"},
            {"op": "add", "path": "/metadata/labels", "value": {"app": "web"}},
        ]);
        let got = patch(ty("pods"), PatchType::Json, &current, &bytes(&ops)).unwrap();
        assert_eq!(got["spec"]["containers"][0]["image"], "y");
        assert_eq!(got["metadata"]["labels"], json!({"app": "web"}));
    }

    #[test]
    fn json_patch_errors() {
        let current = pod(json!([{"name": "a"}]));
        let too_many = Value::Array(vec![
            json!({"op": "test", "path": "/kind", "value": "Pod"});
            MAX_JSON_PATCH_OPERATIONS + 1
        ]);
        let cases: &[(&str, Vec<u8>, u16, &str)] = &[
            (
                "test failure",
                bytes(&json!([{"op": "test", "path": "/kind", "value": "Node"}])),
                422,
                "value did not match",
            ),
            (
                "bad path",
                bytes(&json!([{"op": "remove", "path": "/spec/nope/x"}])),
                422,
                "path is invalid",
            ),
            (
                "unknown op",
                bytes(&json!([{"op": "frobnicate", "path": "/kind"}])),
                400,
                "error decoding patch",
            ),
            (
                "not a list",
                bytes(&json!({"op": "add"})),
                400,
                "error decoding patch",
            ),
            ("not JSON", b"[{".to_vec(), 400, "error decoding patch"),
            ("too many", bytes(&too_many), 413, "maximum operations"),
        ];
        for (name, body, code, message) in cases {
            let e = patch(ty("pods"), PatchType::Json, &current, body).unwrap_err();
            assert_eq!(e.code(), *code, "{name}: {e}");
            assert!(e.to_string().contains(message), "{name}: {e}");
        }
    }

    #[test]
    fn merge_patch_deletes_by_null_and_replaces_lists() {
        let mut current = pod(json!([{"name": "a", "image": "x"}, {"name": "b"}]));
        current["metadata"]["labels"] = json!({"app": "web", "tier": "1"});
        let body = json!({"metadata": {"labels": {"tier": null}},
                          "spec": {"containers": [{"name": "a", "image": "y"}]}});
        let got = patch(ty("pods"), PatchType::Merge, &current, &bytes(&body)).unwrap();
        assert_eq!(got["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(
            got["spec"]["containers"],
            json!([{"name": "a", "image": "y"}])
        );
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        let current = pod(json!([]));
        let cases: &[(&str, PatchType, &[u8])] = &[
            ("merge: not JSON", PatchType::Merge, b"{"),
            ("merge: a list", PatchType::Merge, b"[1]"),
            ("strategic: not JSON", PatchType::Strategic, b"{\"spec\":"),
            ("strategic: a string", PatchType::Strategic, b"\"x\""),
            ("apply: bad YAML", PatchType::Apply, b"metadata: [x\n  y: {"),
            ("apply: bad JSON", PatchType::Apply, b"{\"kind\": }"),
            ("apply: a list", PatchType::Apply, b"- a\n- b\n"),
            ("apply: empty", PatchType::Apply, b""),
            ("apply: not UTF-8", PatchType::Apply, b"\xff\xfe"),
        ];
        for (name, patch_type, body) in cases {
            let e = patch(ty("pods"), *patch_type, &current, body).unwrap_err();
            assert_eq!((e.code(), e.reason()), (400, "BadRequest"), "{name}: {e}");
            assert!(e.to_string().starts_with("error decoding"), "{name}: {e}");
        }
    }

    #[test]
    fn strategic_patch_of_a_custom_resource_is_refused() {
        let current = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNode"});
        let body = bytes(&json!({"spec": {}}));
        let e = patch(ty("cn"), PatchType::Strategic, &current, &body).unwrap_err();
        assert_eq!(e.code(), 415);
        assert!(e.to_string().ends_with(ACCEPTED_CUSTOM), "{e}");
    }

    /// The patches client-side `kubectl apply` computes from the
    /// last-applied annotation.
    #[test]
    fn kubectl_client_side_apply_patches() {
        let last_applied = "kubectl.kubernetes.io/last-applied-configuration";
        let live = deployment(json!([{"name": "web", "image": "nginx:1.25", "env": [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "1"},
        ]}]));
        let body = json!({
            "metadata": {"annotations": {last_applied: "{}\n"}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{
                    "$setElementOrder/env": [{"name": "A"}],
                    "env": [{"name": "A", "value": "2"}, {"$patch": "delete", "name": "B"}],
                    "image": "nginx:1.26",
                    "name": "web",
                }],
            }}},
        });
        let got = patch(ty("deploy"), PatchType::Strategic, &live, &bytes(&body)).unwrap();
        let mut expected = deployment(json!([{"name": "web", "image": "nginx:1.26", "env": [
            {"name": "A", "value": "2"},
        ]}]));
        expected["metadata"]["annotations"] = json!({last_applied: "{}\n"});
        assert_eq!(got, expected);

        let live = json!({"spec": {"ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
        ]}});
        let body = json!({"spec": {
            "$setElementOrder/ports": [{"port": 8080}],
            "ports": [{"name": "http", "port": 8080, "targetPort": 8080},
                      {"$patch": "delete", "port": 80}],
        }});
        let got = patch(ty("svc"), PatchType::Strategic, &live, &bytes(&body)).unwrap();
        assert_eq!(
            got,
            json!({"spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}})
        );
    }

    const APPLIED_POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: p
  labels:
    app: web
  annotations: null
spec:
  containers:
  - name: a
    image: nginx:1.26
    ports:
    - containerPort: 80
";

    #[test]
    fn server_side_apply_creates_missing_objects() {
        let expected_pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"app": "web"}},
            "spec": {"containers": [
                {"name": "a", "image": "nginx:1.26", "ports": [{"containerPort": 80}]},
            ]},
        });
        let node = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNode",
                          "metadata": {"name": "n"}, "spec": {"ipam": {"podCIDRs": ["10.0.0.0/24"]}}});
        let cases: &[(&str, &str, Vec<u8>, &Value)] = &[
            (
                "YAML pod",
                "pods",
                APPLIED_POD.as_bytes().to_vec(),
                &expected_pod,
            ),
            ("JSON pod", "pods", bytes(&expected_pod), &expected_pod),
            ("JSON custom resource", "cn", bytes(&node), &node),
        ];
        for (name, resource, body, expected) in cases {
            let got = server_side_apply(ty(resource), None, body).unwrap();
            assert_eq!(&got, *expected, "{name}");
        }
    }

    #[test]
    fn server_side_apply_merges_into_existing_objects() {
        let mut live = pod(json!([
            {"name": "a", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "envoy"},
        ]));
        live["metadata"]["uid"] = json!("u1");
        let got = patch(ty("pods"), PatchType::Apply, &live, APPLIED_POD.as_bytes()).unwrap();
        assert_eq!(
            got["metadata"],
            json!({"name": "p", "uid": "u1", "labels": {"app": "web"}})
        );
        assert_eq!(
            got["spec"]["containers"],
            json!([
                {"name": "a", "image": "nginx:1.26", "env": [{"name": "A", "value": "1"}],
                 "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "envoy"},
            ])
        );

        // Custom resources merge as merge patches: lists are atomic.
        let live = json!({"metadata": {"name": "n", "uid": "u2"},
                          "spec": {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}});
        let applied =
            json!({"metadata": {"name": "n"}, "spec": {"addresses": [{"ip": "10.0.0.3"}]}});
        let got = server_side_apply(ty("cn"), Some(&live), &bytes(&applied)).unwrap();
        assert_eq!(
            got,
            json!({"metadata": {"name": "n", "uid": "u2"},
                   "spec": {"addresses": [{"ip": "10.0.0.3"}]}})
        );
    }

    #[test]
    fn server_side_apply_refuses_managed_fields() {
        let body = b"metadata:\n  name: p\n  managedFields:\n  - manager: kubectl\n";
        let e = server_side_apply(ty("pods"), None, body).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (400, "metadata.managedFields must be nil")
        );
    }
}
