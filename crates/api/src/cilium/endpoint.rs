//! `CiliumEndpoint` (cilium.io/v2, namespaced, short `cep`): the agent's
//! published view of one pod endpoint. It has a `status` and no `spec`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::crd;
use crate::validation::{self as v, Check, NameRule, Path};

/// One endpoint (pod) managed by an agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumEndpoint {
    /// Standard object metadata; name and namespace are the pod's.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// State published by the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<EndpointStatus>,
}

cilium_object!(
    CiliumEndpoint,
    crd(
        "CiliumEndpoint",
        "ciliumendpoints",
        "ciliumendpoint",
        &["cep", "ciliumep"],
        true,
        "v2",
        &["v2"]
    ),
    validate
);

/// `status` of a [`CiliumEndpoint`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointStatus {
    /// Endpoint id, local to the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Security identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<EndpointIdentity>,
    /// Addresses and hosting node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networking: Option<EndpointNetworking>,
    /// Lifecycle state (`ready`, `waiting-for-identity`, ...), kept as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Identifiers of the workload behind the endpoint.
    #[serde(
        rename = "external-identifiers",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_identifiers: Option<ExternalIdentifiers>,
    /// Named container ports.
    #[serde(rename = "named-ports", skip_serializing_if = "Option::is_none")]
    pub named_ports: Option<Vec<NamedPort>>,
    /// Policy enforcement per direction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<EndpointPolicy>,
    /// Encryption key index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<super::node::EncryptionSpec>,
}

/// Security identity of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointIdentity {
    /// Numeric identity.
    #[serde(default)]
    pub id: i64,
    /// Labels the identity was derived from (`k8s:app=webpod`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

/// Addresses of an endpoint and the node hosting it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointNetworking {
    /// Address pairs.
    #[serde(default)]
    pub addressing: Vec<super::node::AddressPair>,
    /// IP of the hosting node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Identifiers of the workload behind an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalIdentifiers {
    /// Container runtime id.
    #[serde(rename = "container-id", skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Container name.
    #[serde(rename = "container-name", skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// CNI attachment id.
    #[serde(rename = "cni-attachment-id", skip_serializing_if = "Option::is_none")]
    pub cni_attachment_id: Option<String>,
    /// Pod namespace.
    #[serde(rename = "k8s-namespace", skip_serializing_if = "Option::is_none")]
    pub k8s_namespace: Option<String>,
    /// Pod name.
    #[serde(rename = "k8s-pod-name", skip_serializing_if = "Option::is_none")]
    pub k8s_pod_name: Option<String>,
    /// `<namespace>/<pod>`.
    #[serde(rename = "pod-name", skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
}

/// A named port of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedPort {
    /// Port name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port number.
    #[serde(default)]
    pub port: u16,
    /// `TCP`, `UDP`, `SCTP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// Policy enforcement state of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointPolicy {
    /// Ingress direction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<PolicyDirection>,
    /// Egress direction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<PolicyDirection>,
}

/// Enforcement state in one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDirection {
    /// Whether policy is enforced.
    #[serde(default)]
    pub enforcing: bool,
    /// Enforcement state string, kept as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

fn validate(ep: &CiliumEndpoint) -> Check {
    v::object_meta(&ep.metadata, NameRule::Subdomain)?;
    let Some(net) = ep.status.as_ref().and_then(|s| s.networking.as_ref()) else {
        return Ok(());
    };
    let path = Path::root("status").field("networking");
    for (i, pair) in net.addressing.iter().enumerate() {
        for (family, addr) in [("ipv4", &pair.ipv4), ("ipv6", &pair.ipv6)] {
            if let Some(addr) = addr.as_deref().filter(|a| !a.is_empty()) {
                v::ip(&path.field("addressing").index(i).field(family), addr)?;
            }
        }
    }
    if let Some(node) = net.node.as_deref().filter(|n| !n.is_empty()) {
        v::ip(&path.field("node"), node)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cilium::test_support::{invalid, round_trip};

    fn sample() -> serde_json::Value {
        json!({
            "metadata": {"name": "webpod-abc", "namespace": "default"},
            "status": {
                "id": 1234, "state": "ready",
                "identity": {"id": 12564, "labels": ["k8s:app=webpod"]},
                "networking": {"addressing": [{"ipv4": "172.20.1.7"}], "node": "192.168.10.101"},
                "external-identifiers": {"k8s-namespace": "default", "k8s-pod-name": "webpod-abc",
                                          "container-id": "c0ffee"},
                "named-ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                "policy": {"ingress": {"enforcing": false, "state": "<status disabled>"},
                           "egress": {"enforcing": true}}
            }
        })
    }

    #[test]
    fn round_trips_status_only() {
        let ep: CiliumEndpoint = round_trip(sample());
        let status = ep.status.as_ref().unwrap();
        assert_eq!(status.identity.as_ref().unwrap().id, 12564);
        assert_eq!(
            status
                .external_identifiers
                .as_ref()
                .unwrap()
                .k8s_pod_name
                .as_deref(),
            Some("webpod-abc")
        );
        let out = serde_json::to_value(&ep).unwrap();
        assert!(out.get("spec").is_none());
        assert_eq!(out["status"]["named-ports"][0]["port"], 80);
    }

    #[test]
    fn rejects_bad_addresses() {
        let mut e = sample();
        e["status"]["networking"]["addressing"][0]["ipv4"] = json!("172.20.1");
        assert!(
            invalid::<CiliumEndpoint>(e)
                .starts_with("status.networking.addressing[0].ipv4: Invalid value")
        );
    }
}
