//! Manifest decoding: multi-document YAML (split on `---` lines as kubectl
//! does, empty and comment-only documents skipped, `v1 List` expanded) into
//! objects normalized to their storage version, with errors worded for a
//! kubectl user (syntax errors with line and column, type errors and
//! invalid values with their field path).
//!
//! YAML is read with `serde-saphyr`: it reports line and column, and reads
//! scalars as Kubernetes' YAML 1.1 reader does where manifests rely on it
//! (`yes`/`no`/`on`/`off` booleans, `0644` octal).

use serde_json::Value;
use serde_saphyr::MessageFormatter;

use crate::FieldError;
use crate::registry::{Kind, lookup_gvk};

/// Why a manifest or object could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The YAML text is malformed. `line`/`column` are 1-based positions in
    /// the whole input (0 when the parser gave none).
    #[error("error parsing manifest (document {document}): {}{message}", position(*line, *column))]
    Syntax {
        /// 1-based index of the document among the non-empty ones.
        document: usize,
        /// Line in the input.
        line: u64,
        /// Column in the line.
        column: u64,
        /// The parser's message.
        message: String,
    },
    /// The document is not a mapping.
    #[error("error validating data: the object must be a mapping, not {found}")]
    NotAnObject {
        /// What was found (`a sequence`, `a string`, ...).
        found: &'static str,
    },
    /// `apiVersion` or `kind` is missing.
    #[error("error validating data: {field} not set")]
    MissingField {
        /// `apiVersion` or `kind`.
        field: &'static str,
    },
    /// No served kind has this name in this group.
    #[error("no matches for kind \"{kind}\" in version \"{api_version}\"")]
    UnknownKind {
        /// Kind as written.
        kind: String,
        /// apiVersion as written.
        api_version: String,
    },
    /// The kind exists but not in this version.
    #[error(
        "no matches for kind \"{kind}\" in version \"{api_version}\" (served versions: {served})"
    )]
    UnservedVersion {
        /// Kind.
        kind: String,
        /// apiVersion as written.
        api_version: String,
        /// Served apiVersions, comma-separated.
        served: String,
    },
    /// A field has the wrong type or shape.
    #[error("{kind} \"{name}\" is invalid: {}{message}", prefix(path))]
    Type {
        /// Kind.
        kind: &'static str,
        /// Object name (empty when unset).
        name: String,
        /// Path of the offending field (empty for the whole object).
        path: String,
        /// What is wrong (`invalid type: string "x", expected i32`).
        message: String,
    },
    /// A field has an invalid value.
    #[error("The {kind} \"{name}\" is invalid: {error}")]
    Invalid {
        /// Kind.
        kind: &'static str,
        /// Object name (empty when unset).
        name: String,
        /// The field and what is wrong.
        error: FieldError,
    },
    /// An error in one document of a multi-document input that does not
    /// name the object it concerns.
    #[error("error parsing manifest (document {document}): {source}")]
    Document {
        /// 1-based index of the document among the non-empty ones.
        document: usize,
        /// The error.
        source: Box<DecodeError>,
    },
}

fn position(line: u64, column: u64) -> String {
    if line == 0 {
        String::new()
    } else {
        format!("line {line}, column {column}: ")
    }
}

fn prefix(path: &str) -> String {
    if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// One decoded object, normalized to its kind's storage version.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The object's kind.
    pub kind: &'static Kind,
    /// The object as stored: `apiVersion` rewritten to the storage version,
    /// unknown fields dropped, validated.
    pub object: Value,
}

impl Manifest {
    /// `metadata.name` (empty when unset).
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `metadata.namespace`, when set.
    pub fn namespace(&self) -> Option<&str> {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// Decode one object (from JSON, or one YAML document): look its kind up
/// by `apiVersion`/`kind`, convert it to the storage version, round-trip it
/// through the Rust type and validate it.
pub fn decode_object(value: Value) -> Result<Manifest, DecodeError> {
    let Value::Object(map) = &value else {
        return Err(DecodeError::NotAnObject {
            found: type_name(&value),
        });
    };
    let field = |name: &'static str| {
        map.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(DecodeError::MissingField { field: name })
    };
    let kind = lookup_gvk(field("apiVersion")?, field("kind")?)?;
    let object = kind.decode(value)?;
    Ok(Manifest { kind, object })
}

/// Documents of a multi-document YAML stream, split as kubectl does: on
/// lines starting with `---` followed by nothing but blanks or a comment.
/// Yields (1-based first line, text) of each document that has content.
fn documents(text: &str) -> Vec<(u64, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    let has_content = |doc: &str| {
        doc.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
    };
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_no = i as u64 + 1;
        let rest = line.strip_prefix("---").map(str::trim);
        if rest.is_some_and(|r| r.is_empty() || r.starts_with('#')) {
            if has_content(&current) {
                docs.push((start, std::mem::take(&mut current)));
            }
            current.clear();
            start = line_no + 1;
        } else {
            current.push_str(line);
        }
    }
    if has_content(&current) {
        docs.push((start, current));
    }
    docs
}

fn parse_yaml(document: usize, first_line: u64, text: &str) -> Result<Value, DecodeError> {
    let options = serde_saphyr::options! { with_snippet: false, legacy_octal_numbers: true };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let (line, column) = e
            .location()
            .filter(|l| l.line() > 0)
            .map_or((0, 0), |l| (l.line() + first_line - 1, l.column()));
        DecodeError::Syntax {
            document,
            line,
            column,
            message: serde_saphyr::DefaultMessageFormatter
                .format_message(&e)
                .into_owned(),
        }
    })
}

/// Parse a multi-document YAML (or JSON) manifest into decoded objects, in
/// order. Empty documents are skipped; a `v1` `List` contributes its
/// `items`. The first error stops decoding.
pub fn parse_manifests(text: &str) -> Result<Vec<Manifest>, DecodeError> {
    let mut out = Vec::new();
    for (index, (first_line, doc)) in documents(text).into_iter().enumerate() {
        let document = index + 1;
        let value = parse_yaml(document, first_line, &doc)?;
        if value.is_null() {
            continue;
        }
        let in_document = |e: DecodeError| match e {
            DecodeError::NotAnObject { .. } | DecodeError::MissingField { .. } => {
                DecodeError::Document {
                    document,
                    source: Box::new(e),
                }
            }
            other => other,
        };
        let is_list = value.get("apiVersion").and_then(Value::as_str) == Some("v1")
            && value.get("kind").and_then(Value::as_str) == Some("List");
        if is_list {
            let items = match value.get("items") {
                Some(Value::Array(items)) => items.clone(),
                _ => Vec::new(),
            };
            for item in items {
                out.push(decode_object(item).map_err(in_document)?);
            }
        } else {
            out.push(decode_object(value).map_err(in_document)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample(name: &str) -> String {
        let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("sample manifest {path} must exist: {e}"))
    }

    fn kinds(manifests: &[Manifest]) -> Vec<&str> {
        manifests.iter().map(|m| m.kind.ty.kind).collect()
    }

    fn err(text: &str) -> String {
        parse_manifests(text)
            .expect_err("decoding must fail")
            .to_string()
    }

    #[test]
    fn every_sample_manifest_decodes() {
        let cases: [(&str, &[&str]); 6] = [
            ("webpod.yaml", &["Deployment", "Service"]),
            ("curl-pod.yaml", &["Pod"]),
            (
                "bgp.yaml",
                &[
                    "CiliumBGPAdvertisement",
                    "CiliumBGPPeerConfig",
                    "CiliumBGPClusterConfig",
                ],
            ),
            ("lb-pool.yaml", &["CiliumLoadBalancerIPPool"]),
            ("lrp-addr.yaml", &["Pod", "CiliumLocalRedirectPolicy"]),
            ("lrp-svc.yaml", &["Service", "CiliumLocalRedirectPolicy"]),
        ];
        for (file, expected) in cases {
            let manifests =
                parse_manifests(&sample(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(kinds(&manifests), expected, "{file}");
        }
        let web = parse_manifests(&sample("webpod.yaml")).unwrap();
        assert_eq!(web[0].name(), "webpod");
        assert_eq!(web[0].object["apiVersion"], "apps/v1");
        assert_eq!(web[0].object["spec"]["replicas"], 3);
        assert_eq!(web[1].object["spec"]["ports"][0]["targetPort"], 80);
        let bgp = parse_manifests(&sample("bgp.yaml")).unwrap();
        assert_eq!(bgp[1].object["spec"]["timers"]["holdTimeSeconds"], 9);
        assert_eq!(
            bgp[2].object["spec"]["bgpInstances"][0]["peers"][0]["peerAddress"],
            "192.168.10.200"
        );
        assert_eq!(
            bgp[2].object["spec"]["nodeSelector"]["matchLabels"]["enable-bgp"],
            "true"
        );
        let pool = parse_manifests(&sample("lb-pool.yaml")).unwrap();
        assert_eq!(pool[0].object["spec"]["allowFirstLastIPs"], "No");
        let lrp = parse_manifests(&sample("lrp-addr.yaml")).unwrap();
        assert_eq!(
            lrp[1].object["spec"]["redirectFrontend"]["addressMatcher"]["toPorts"][0]["port"],
            "8080"
        );
    }

    #[test]
    fn v2alpha1_and_v2_both_accepted_and_stored_as_v2() {
        for version in ["v2", "v2alpha1"] {
            let bgp = sample("bgp.yaml").replace("cilium.io/v2", &format!("cilium.io/{version}"));
            let pool =
                sample("lb-pool.yaml").replace("cilium.io/v2", &format!("cilium.io/{version}"));
            for text in [bgp, pool] {
                for m in parse_manifests(&text).unwrap_or_else(|e| panic!("{version}: {e}")) {
                    assert_eq!(m.object["apiVersion"], "cilium.io/v2");
                }
            }
        }
        let alpha = r#"
apiVersion: cilium.io/v2alpha1
kind: CiliumBGPClusterConfig
metadata: {name: c}
spec:
  bgpInstances:
  - name: i
    localASN: 65001
    peers:
    - name: p
      peerAddress: 10.0.0.1
      peerConfigRef: {name: peer, group: cilium.io, kind: CiliumBGPPeerConfig}
---
apiVersion: cilium.io/v2alpha1
kind: CiliumLoadBalancerIPPool
metadata: {name: old}
spec:
  cidrs:
  - cidr: 10.0.10.0/24
"#;
        let m = parse_manifests(alpha).unwrap();
        assert_eq!(
            m[0].object["spec"]["bgpInstances"][0]["peers"][0]["peerConfigRef"],
            json!({"name": "peer"})
        );
        assert_eq!(m[1].object["spec"]["blocks"][0]["cidr"], "10.0.10.0/24");
        let bad_ref = alpha.replace("kind: CiliumBGPPeerConfig", "kind: Secret");
        assert!(err(&bad_ref).starts_with(r#"The CiliumBGPClusterConfig "c" is invalid: spec.bgpInstances[0].peers[0].peerConfigRef.kind: Unsupported value: "Secret""#));
    }

    #[test]
    fn unknown_fields_are_accepted_and_dropped() {
        let text = r#"
apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata:
  name: p
spec:
  futureField: {a: 1}
  blocks:
  - cidr: 10.0.0.0/24
    alsoNew: true
---
apiVersion: v1
kind: Pod
metadata: {name: p, someday: x}
spec:
  containers: [{name: c, image: i, newKnob: 3}]
"#;
        let m = parse_manifests(text).unwrap();
        assert!(m[0].object["spec"].get("futureField").is_none());
        assert_eq!(
            m[0].object["spec"]["blocks"][0],
            json!({"cidr": "10.0.0.0/24"})
        );
        assert!(
            m[1].object["spec"]["containers"][0]
                .get("newKnob")
                .is_none()
        );
    }

    #[test]
    fn newer_enum_values_are_kept() {
        let text = r#"
apiVersion: cilium.io/v2
kind: CiliumBGPAdvertisement
metadata: {name: a}
spec:
  advertisements:
  - advertisementType: SomethingNew
    service: {addresses: [FutureIP]}
"#;
        let m = parse_manifests(text).unwrap();
        assert_eq!(
            m[0].object["spec"]["advertisements"][0]["advertisementType"],
            "SomethingNew"
        );
    }

    #[test]
    fn syntax_errors_report_document_line_and_column() {
        let text = "# first\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\
                    apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  labels: a: b\n";
        assert_eq!(
            err(text),
            "error parsing manifest (document 2): line 10, column 12: mapping values are not allowed in this context"
        );
    }

    #[test]
    fn empty_documents_and_comments_are_skipped() {
        let text = "---\n# nothing here\n---\n\n--- # marker comment\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n";
        let m = parse_manifests(text).unwrap();
        assert_eq!(kinds(&m), ["Namespace"]);
        assert!(parse_manifests("").unwrap().is_empty());
    }

    #[test]
    fn yaml_1_1_scalars_read_like_kubernetes() {
        let text = r#"
apiVersion: cilium.io/v2
kind: CiliumBGPPeerConfig
metadata: {name: p}
spec:
  gracefulRestart: {enabled: yes}
---
apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata: {name: q}
spec:
  allowFirstLastIPs: No
  blocks: [{cidr: 10.0.0.0/24}]
"#;
        let m = parse_manifests(text).unwrap();
        assert_eq!(m[0].object["spec"]["gracefulRestart"]["enabled"], true);
        assert_eq!(m[1].object["spec"]["allowFirstLastIPs"], "No");
    }

    #[test]
    fn type_errors_name_the_field() {
        let text = sample("webpod.yaml").replace("replicas: 3", "replicas: x");
        assert_eq!(
            err(&text),
            r#"Deployment "webpod" is invalid: spec.replicas: invalid type: string "x", expected i32"#
        );
        let text = sample("bgp.yaml").replace("localASN: 65001", "localASN: [1]");
        assert!(err(&text).starts_with(
            r#"CiliumBGPClusterConfig "cilium-bgp" is invalid: spec.bgpInstances[0].localASN: invalid type: sequence"#
        ));
    }

    #[test]
    fn semantic_errors_read_like_kubectl() {
        let text = sample("webpod.yaml").replace("replicas: 3", "replicas: -1");
        assert_eq!(
            err(&text),
            r#"The Deployment "webpod" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"#
        );
        let text = sample("curl-pod.yaml").replace("name: curl-pod", "name: Web_Pod");
        assert!(err(&text).starts_with(
            r#"The Pod "Web_Pod" is invalid: metadata.name: Invalid value: "Web_Pod": a lowercase RFC 1123 subdomain must consist of"#
        ));
        let text =
            sample("bgp.yaml").replace("keepAliveTimeSeconds: 3", "keepAliveTimeSeconds: 30");
        assert_eq!(
            err(&text),
            r#"The CiliumBGPPeerConfig "cilium-peer" is invalid: spec.timers.keepAliveTimeSeconds: Invalid value: 30: must be less than or equal to holdTimeSeconds (9)"#
        );
        let text = sample("lrp-addr.yaml").replace("\"8080\"", "\"99999\"");
        assert!(err(&text).starts_with(
            r#"The CiliumLocalRedirectPolicy "lrp-addr" is invalid: spec.redirectFrontend.addressMatcher.toPorts[0].port: Invalid value: 99999"#
        ));
        let text = sample("lb-pool.yaml").replace("172.16.1.0/24", "172.16.1.0/33");
        assert!(err(&text).contains("spec.blocks[0].cidr: Invalid value: \"172.16.1.0/33\""));
    }

    #[test]
    fn missing_type_meta_and_unknown_kinds() {
        assert_eq!(
            err("kind: Pod\nmetadata: {name: a}\n"),
            "error parsing manifest (document 1): error validating data: apiVersion not set"
        );
        assert_eq!(
            err("apiVersion: v1\n---\napiVersion: v1\nkind: ''\n"),
            "error parsing manifest (document 1): error validating data: kind not set"
        );
        assert_eq!(
            err("- a\n- b\n"),
            "error parsing manifest (document 1): error validating data: the object must be a mapping, not a sequence"
        );
        assert_eq!(
            err("apiVersion: cilium.io/v2\nkind: Foo\nmetadata: {name: a}\n"),
            r#"no matches for kind "Foo" in version "cilium.io/v2""#
        );
        assert!(
            err(
                "apiVersion: cilium.io/v2\nkind: CiliumL2AnnouncementPolicy\nmetadata: {name: a}\n"
            )
            .contains("served versions: cilium.io/v2alpha1")
        );
    }

    #[test]
    fn decode_object_and_lists() {
        let m = decode_object(json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumIdentity",
            "metadata": {"name": "12564"}, "security-labels": {"k8s:app": "webpod"}
        }))
        .unwrap();
        assert_eq!(m.kind.ty.plural, "ciliumidentities");
        assert_eq!(m.object["security-labels"]["k8s:app"], "webpod");
        let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "a"},
             "data": {"k": "v"}}]}"#;
        let m = parse_manifests(list).unwrap();
        assert_eq!(kinds(&m), ["Namespace", "ConfigMap"]);
        assert_eq!(m[1].namespace(), Some("a"));
    }

    #[test]
    fn kind_decode_rejects_mismatched_type_meta() {
        let pod = crate::registry::lookup("po").unwrap();
        let e = pod
            .decode(json!({"apiVersion": "apps/v1", "kind": "Pod", "metadata": {"name": "a"}}))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"no matches for kind "Pod" in version "apps/v1""#
        );
        let e = pod
            .decode(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}}))
            .unwrap_err();
        assert!(matches!(e, DecodeError::UnknownKind { .. }));
    }
}
