//! `CiliumLocalRedirectPolicy` (cilium.io/v2, namespaced, short `clrp`):
//! redirect traffic for an address or a service to node-local backend
//! pods. Ports are strings upstream (`"8080"`); numbers are accepted.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

use super::{PortString, check, crd};
use crate::validation::{self as v, Check, NameRule, Path};

/// A local redirect policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CiliumLocalRedirectPolicy {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Frontend, backend and options (immutable).
    #[serde(default)]
    pub spec: LocalRedirectPolicySpec,
    /// Status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<LocalRedirectPolicyStatus>,
}

cilium_object!(
    CiliumLocalRedirectPolicy,
    crd(
        "CiliumLocalRedirectPolicy",
        "ciliumlocalredirectpolicies",
        "ciliumlocalredirectpolicy",
        &["clrp"],
        true,
        "v2",
        &["v2"]
    ),
    validate
);

/// `spec` of a [`CiliumLocalRedirectPolicy`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalRedirectPolicySpec {
    /// What traffic is redirected.
    #[serde(default)]
    pub redirect_frontend: RedirectFrontend,
    /// Where it goes.
    #[serde(default)]
    pub redirect_backend: RedirectBackend,
    /// Do not redirect traffic coming from the backends themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_redirect_from_backend: Option<bool>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Exactly one of an address matcher or a service matcher.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedirectFrontend {
    /// An IP address and ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_matcher: Option<AddressMatcher>,
    /// A service and optionally some of its ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_matcher: Option<ServiceMatcher>,
}

/// Frontend by address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressMatcher {
    /// The address.
    #[serde(default)]
    pub ip: String,
    /// Ports (required).
    #[serde(default)]
    pub to_ports: Vec<PortInfo>,
}

/// Frontend by service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMatcher {
    /// Service name.
    #[serde(default)]
    pub service_name: String,
    /// Service namespace.
    #[serde(default)]
    pub namespace: String,
    /// Ports (absent = every service port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortInfo>>,
}

/// Backend pods (node-local, in the policy's namespace) and their ports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedirectBackend {
    /// Backend pods.
    #[serde(default)]
    pub local_endpoint_selector: LabelSelector,
    /// Backend ports.
    #[serde(default)]
    pub to_ports: Vec<PortInfo>,
}

/// A port, its protocol and an optional name mapping frontend to backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    /// Port number as a string, 1-65535.
    #[serde(default)]
    pub port: PortString,
    /// `TCP` or `UDP`.
    #[serde(default)]
    pub protocol: String,
    /// Name (required when several ports are listed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `status` of a [`CiliumLocalRedirectPolicy`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalRedirectPolicyStatus {
    /// Whether the policy is in effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
}

fn validate(lrp: &CiliumLocalRedirectPolicy) -> Check {
    v::object_meta(&lrp.metadata, NameRule::Subdomain)?;
    let spec = Path::root("spec");
    let front = spec.field("redirectFrontend");
    let fe = &lrp.spec.redirect_frontend;
    match (&fe.address_matcher, &fe.service_matcher) {
        (Some(_), Some(_)) => {
            return Err(front.forbidden("addressMatcher and serviceMatcher are mutually exclusive"));
        }
        (None, None) => {
            return Err(front.required("one of addressMatcher or serviceMatcher is required"));
        }
        (Some(am), None) => {
            let p = front.field("addressMatcher");
            v::ip(&p.field("ip"), &am.ip)?;
            if am.to_ports.is_empty() {
                return Err(p.field("toPorts").required(""));
            }
            ports(&p.field("toPorts"), &am.to_ports)?;
        }
        (None, Some(sm)) => {
            let p = front.field("serviceMatcher");
            if sm.service_name.is_empty() {
                return Err(p.field("serviceName").required(""));
            }
            if sm.namespace.is_empty() {
                return Err(p.field("namespace").required(""));
            }
            ports(
                &p.field("toPorts"),
                sm.to_ports.as_deref().unwrap_or_default(),
            )?;
        }
    }
    let back = spec.field("redirectBackend");
    v::label_selector(
        &back.field("localEndpointSelector"),
        &lrp.spec.redirect_backend.local_endpoint_selector,
    )?;
    if lrp.spec.redirect_backend.to_ports.is_empty() {
        return Err(back.field("toPorts").required(""));
    }
    ports(&back.field("toPorts"), &lrp.spec.redirect_backend.to_ports)
}

fn ports(path: &Path, ports: &[PortInfo]) -> Check {
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        check::port_string(&p.field("port"), &port.port, 1)?;
        v::one_of(&p.field("protocol"), &port.protocol, &["TCP", "UDP"])?;
        match port.name.as_deref() {
            Some(name) => v::port_name(&p.field("name"), name)?,
            None if ports.len() > 1 => {
                return Err(p
                    .field("name")
                    .required("ports must be named when several are listed"));
            }
            None => {}
        }
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
            "metadata": {"name": "lrp-addr"},
            "spec": {
                "redirectFrontend": {"addressMatcher": {"ip": "169.254.169.254",
                    "toPorts": [{"port": "8080", "protocol": "TCP"}]}},
                "redirectBackend": {"localEndpointSelector": {"matchLabels": {"app": "proxy"}},
                    "toPorts": [{"port": "80", "protocol": "TCP"}]}
            }
        })
    }

    #[test]
    fn round_trip_keeps_ports_as_strings() {
        let mut with_number = sample();
        with_number["spec"]["redirectBackend"]["toPorts"][0]["port"] = json!(80);
        let lrp: CiliumLocalRedirectPolicy = round_trip(with_number);
        assert_eq!(
            lrp.spec.redirect_backend.to_ports[0].port.number(),
            Some(80)
        );
        let out = serde_json::to_value(&lrp).unwrap();
        assert_eq!(out["spec"]["redirectBackend"]["toPorts"][0]["port"], "80");
    }

    #[test]
    fn rejects_invalid_policies() {
        let mut l = sample();
        l["spec"]["redirectFrontend"]["addressMatcher"]["toPorts"][0]["port"] = json!("0");
        assert_eq!(
            invalid::<CiliumLocalRedirectPolicy>(l),
            r#"spec.redirectFrontend.addressMatcher.toPorts[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"#
        );
        let mut l = sample();
        l["spec"]["redirectFrontend"]["addressMatcher"]["toPorts"][0]["port"] = json!("http");
        assert!(invalid::<CiliumLocalRedirectPolicy>(l).contains("must be a port number"));
        let mut l = sample();
        l["spec"]["redirectBackend"]["toPorts"][0]["protocol"] = json!("SCTP");
        assert!(
            invalid::<CiliumLocalRedirectPolicy>(l)
                .starts_with("spec.redirectBackend.toPorts[0].protocol: Unsupported value")
        );
        let mut l = sample();
        l["spec"]["redirectFrontend"]["serviceMatcher"] =
            json!({"serviceName": "s", "namespace": "d"});
        assert!(
            invalid::<CiliumLocalRedirectPolicy>(l).starts_with("spec.redirectFrontend: Forbidden")
        );
        let mut l = sample();
        l["spec"]["redirectFrontend"]["addressMatcher"]["ip"] = json!("169.254");
        assert!(
            invalid::<CiliumLocalRedirectPolicy>(l)
                .starts_with("spec.redirectFrontend.addressMatcher.ip: Invalid value")
        );
        let mut l = sample();
        l["spec"]["redirectBackend"]["toPorts"] =
            json!([{"port": "80", "protocol": "TCP"}, {"port": "53", "protocol": "UDP"}]);
        assert!(
            invalid::<CiliumLocalRedirectPolicy>(l)
                .starts_with("spec.redirectBackend.toPorts[0].name: Required value")
        );
    }
}
