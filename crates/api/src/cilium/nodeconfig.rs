//! `CiliumNodeConfig` (namespaced, stored in v2, v2alpha1 also served):
//! per-node overrides of `cilium-config` keys for the nodes matching
//! `nodeSelector`. The keys themselves are not interpreted here.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

use super::{V2_AND_V2ALPHA1, crd};
use crate::validation::{self as v, Check, NameRule, Path};

/// Config overrides for a set of nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumNodeConfig {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Overrides and node selector.
    #[serde(default)]
    pub spec: CiliumNodeConfigSpec,
}

cilium_object!(
    CiliumNodeConfig,
    crd(
        "CiliumNodeConfig",
        "ciliumnodeconfigs",
        "ciliumnodeconfig",
        &[],
        true,
        "v2",
        V2_AND_V2ALPHA1
    ),
    validate
);

/// `spec` of a [`CiliumNodeConfig`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CiliumNodeConfigSpec {
    /// `cilium-config` keys and values to override.
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
    /// Nodes the overrides apply to (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
}

fn validate(config: &CiliumNodeConfig) -> Check {
    v::object_meta(&config.metadata, NameRule::Subdomain)?;
    let path = Path::root("spec").field("nodeSelector");
    match &config.spec.node_selector {
        Some(sel) => v::label_selector(&path, sel),
        None => Err(path.required("")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cilium::test_support::{invalid, round_trip};

    #[test]
    fn round_trip_and_selector_required() {
        let c: CiliumNodeConfig = round_trip(json!({
            "metadata": {"name": "w0-native", "namespace": "kube-system"},
            "spec": {"defaults": {"routing-mode": "native"},
                     "nodeSelector": {"matchLabels": {"kubernetes.io/hostname": "k8s-w0"}}}
        }));
        assert_eq!(c.spec.defaults["routing-mode"], "native");
        assert_eq!(
            invalid::<CiliumNodeConfig>(
                json!({"metadata": {"name": "x"}, "spec": {"defaults": {}}})
            ),
            "spec.nodeSelector: Required value"
        );
    }
}
