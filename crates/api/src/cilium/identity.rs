//! `CiliumIdentity` (cilium.io/v2, cluster-scoped): a numeric security
//! identity (the object name) and its labels in the top-level
//! `security-labels` map.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::crd;
use crate::validation::{self as v, Check, NameRule, Path};

/// A security identity allocated in CRD mode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumIdentity {
    /// Standard object metadata; the name is the numeric identity.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Labels (`k8s:app` -> `webpod`).
    #[serde(rename = "security-labels", default)]
    pub security_labels: BTreeMap<String, String>,
}

cilium_object!(
    CiliumIdentity,
    crd(
        "CiliumIdentity",
        "ciliumidentities",
        "ciliumidentity",
        &["ciliumid"],
        false,
        "v2",
        &["v2"]
    ),
    validate
);

impl CiliumIdentity {
    /// The numeric identity named by the object, when the name is one.
    pub fn id(&self) -> Option<u32> {
        self.metadata.name.as_deref()?.parse().ok()
    }
}

fn validate(identity: &CiliumIdentity) -> Check {
    v::object_meta(&identity.metadata, NameRule::Subdomain)?;
    let name = identity.metadata.name.as_deref().unwrap_or_default();
    match identity.id() {
        Some(id) if id > 0 => Ok(()),
        _ => Err(Path::root("metadata")
            .field("name")
            .invalid(name, "must be a positive numeric identity")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cilium::test_support::{invalid, round_trip};

    #[test]
    fn round_trips_security_labels() {
        let id: CiliumIdentity = round_trip(json!({
            "metadata": {"name": "12564"},
            "security-labels": {"k8s:app": "webpod", "k8s:io.kubernetes.pod.namespace": "default"}
        }));
        assert_eq!(id.id(), Some(12564));
        assert_eq!(id.security_labels["k8s:app"], "webpod");
        let out = serde_json::to_value(&id).unwrap();
        assert_eq!(out["security-labels"]["k8s:app"], "webpod");
    }

    #[test]
    fn name_must_be_numeric() {
        assert_eq!(
            invalid::<CiliumIdentity>(json!({"metadata": {"name": "webpod"}})),
            r#"metadata.name: Invalid value: "webpod": must be a positive numeric identity"#
        );
    }
}
