//! The registry of every kind the cluster store serves: its
//! [`ResourceType`], how to look it up from a command line (`po`,
//! `deployments.apps`, `cn`) or from a manifest's `apiVersion`/`kind`, and
//! how to decode an object of it into its normalized storage form
//! (converted to the storage version, round-tripped through the Rust type,
//! validated).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use crate::cilium::{
    bgp, cidrgroup::CiliumCIDRGroup, endpoint::CiliumEndpoint,
    externalworkload::CiliumExternalWorkload, identity::CiliumIdentity, ippool::CiliumPodIPPool,
    l2::CiliumL2AnnouncementPolicy, lbipam, lrp::CiliumLocalRedirectPolicy, node::CiliumNode,
    nodeconfig::CiliumNodeConfig, policy,
};
use crate::manifest::DecodeError;
use crate::{FieldError, Object, ResourceType};

/// Rewrites a v2alpha1 object in place into the v2 shape.
type Conversion = fn(&mut Value) -> Result<(), FieldError>;

/// One served kind.
#[derive(Debug)]
pub struct Kind {
    /// Static facts (names, group, versions, scope).
    pub ty: ResourceType,
    from_v2alpha1: Option<Conversion>,
    decode_typed: fn(Value) -> Result<Value, DecodeError>,
}

impl Kind {
    const fn of<T: Object>() -> Self {
        Self {
            ty: T::TYPE,
            from_v2alpha1: None,
            decode_typed: decode_typed::<T>,
        }
    }

    const fn converted<T: Object>(conversion: Conversion) -> Self {
        Self {
            from_v2alpha1: Some(conversion),
            ..Self::of::<T>()
        }
    }

    /// Decode one object of this kind given in any served version: check
    /// the version, convert to the storage version, round-trip through the
    /// Rust type (unknown fields dropped, shapes checked) and validate.
    /// Returns the object as stored (`apiVersion` = storage version).
    pub fn decode(&self, mut object: Value) -> Result<Value, DecodeError> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(kind) = object.get("kind").and_then(Value::as_str)
            && kind != self.ty.kind
        {
            return Err(DecodeError::UnknownKind {
                kind: kind.to_string(),
                api_version: api_version.unwrap_or_default(),
            });
        }
        if let Some(api_version) = &api_version {
            let (group, version) = split_api_version(api_version);
            if group != self.ty.group {
                return Err(DecodeError::UnknownKind {
                    kind: self.ty.kind.to_string(),
                    api_version: api_version.clone(),
                });
            }
            if !self.ty.served.contains(&version) {
                return Err(unserved(&self.ty, api_version));
            }
            if version == "v2alpha1"
                && self.ty.version != version
                && let Some(convert) = self.from_v2alpha1
            {
                convert(&mut object).map_err(|error| DecodeError::Invalid {
                    kind: self.ty.kind,
                    name: object_name(&object),
                    error,
                })?;
            }
        }
        if let Some(map) = object.as_object_mut() {
            map.insert("apiVersion".into(), self.ty.api_version().into());
            map.insert("kind".into(), self.ty.kind.into());
        }
        (self.decode_typed)(object)
    }
}

/// `metadata.name` of a raw object, empty when absent.
pub(crate) fn object_name(object: &Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn decode_typed<T: Object>(object: Value) -> Result<Value, DecodeError> {
    let kind = T::TYPE.kind;
    let name = object_name(&object);
    let typed: T = serde_path_to_error::deserialize(object).map_err(|e| DecodeError::Type {
        kind,
        name: name.clone(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    typed.validate().map_err(|error| DecodeError::Invalid {
        kind,
        name: name.clone(),
        error,
    })?;
    serde_json::to_value(&typed).map_err(|e| DecodeError::Type {
        kind,
        name,
        path: String::new(),
        message: e.to_string(),
    })
}

static REGISTRY: [Kind; 36] = [
    Kind::of::<Namespace>(),
    Kind::of::<Node>(),
    Kind::of::<Pod>(),
    Kind::of::<Service>(),
    Kind::of::<Deployment>(),
    Kind::of::<EndpointSlice>(),
    Kind::of::<ConfigMap>(),
    Kind::of::<Secret>(),
    Kind::of::<Lease>(),
    Kind::of::<DaemonSet>(),
    Kind::of::<Endpoints>(),
    Kind::of::<Event>(),
    Kind::of::<NetworkPolicy>(),
    Kind::of::<ServiceAccount>(),
    Kind::of::<Role>(),
    Kind::of::<ClusterRole>(),
    Kind::of::<RoleBinding>(),
    Kind::of::<ClusterRoleBinding>(),
    Kind::of::<CustomResourceDefinition>(),
    Kind::of::<CiliumNode>(),
    Kind::of::<CiliumEndpoint>(),
    Kind::of::<CiliumIdentity>(),
    Kind::of::<policy::CiliumNetworkPolicy>(),
    Kind::of::<policy::CiliumClusterwideNetworkPolicy>(),
    Kind::of::<CiliumCIDRGroup>(),
    Kind::of::<CiliumExternalWorkload>(),
    Kind::of::<CiliumL2AnnouncementPolicy>(),
    Kind::converted::<lbipam::CiliumLoadBalancerIPPool>(lbipam::from_v2alpha1),
    Kind::of::<CiliumNodeConfig>(),
    Kind::of::<CiliumPodIPPool>(),
    Kind::of::<CiliumLocalRedirectPolicy>(),
    Kind::converted::<bgp::CiliumBGPClusterConfig>(bgp::from_v2alpha1),
    Kind::of::<bgp::CiliumBGPPeerConfig>(),
    Kind::of::<bgp::CiliumBGPAdvertisement>(),
    Kind::converted::<bgp::CiliumBGPNodeConfig>(bgp::from_v2alpha1),
    Kind::of::<bgp::CiliumBGPNodeConfigOverride>(),
];

/// Every served kind.
pub fn registry() -> &'static [Kind] {
    &REGISTRY
}

/// The kind a command-line resource name refers to: plural, singular,
/// kind or short name, case-insensitive, optionally group-qualified
/// (`pods`, `po`, `deploy`, `deployments.apps`, `cn`, `ciliumnodes`).
pub fn lookup(cli_name: &str) -> Option<&'static Kind> {
    REGISTRY.iter().find(|k| k.ty.matches_name(cli_name))
}

/// `apps/v1` -> (`apps`, `v1`); `v1` -> (``, `v1`).
fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

fn unserved(ty: &ResourceType, api_version: &str) -> DecodeError {
    let served = ty
        .served
        .iter()
        .map(|v| {
            format!("{}/{v}", ty.group)
                .trim_start_matches('/')
                .to_string()
        })
        .collect::<Vec<_>>()
        .join(", ");
    DecodeError::UnservedVersion {
        kind: ty.kind.to_string(),
        api_version: api_version.to_string(),
        served,
    }
}

/// The kind named by a manifest's `apiVersion` and `kind` (exact, as an
/// API server matches them). Errors when the kind is unknown in that group
/// or the version is not served.
pub fn lookup_gvk(api_version: &str, kind: &str) -> Result<&'static Kind, DecodeError> {
    let (group, version) = split_api_version(api_version);
    let found = REGISTRY
        .iter()
        .find(|k| k.ty.kind == kind && k.ty.group == group)
        .ok_or_else(|| DecodeError::UnknownKind {
            kind: kind.to_string(),
            api_version: api_version.to_string(),
        })?;
    if found.ty.served.contains(&version) {
        Ok(found)
    } else {
        Err(unserved(&found.ty, api_version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_names_resolve() {
        let cases = [
            ("pods", "Pod"),
            ("po", "Pod"),
            ("Pod", "Pod"),
            ("deploy", "Deployment"),
            ("deployments.apps", "Deployment"),
            ("svc", "Service"),
            ("no", "Node"),
            ("ns", "Namespace"),
            ("cm", "ConfigMap"),
            ("endpointslices", "EndpointSlice"),
            ("leases", "Lease"),
            ("ds", "DaemonSet"),
            ("ep", "Endpoints"),
            ("endpoints", "Endpoints"),
            ("ev", "Event"),
            ("netpol", "NetworkPolicy"),
            ("sa", "ServiceAccount"),
            ("clusterroles", "ClusterRole"),
            ("rolebindings", "RoleBinding"),
            ("crd", "CustomResourceDefinition"),
            ("cn", "CiliumNode"),
            ("ciliumnodes", "CiliumNode"),
            ("ciliumnodes.cilium.io", "CiliumNode"),
            ("cep", "CiliumEndpoint"),
            ("ciliumid", "CiliumIdentity"),
            ("cnp", "CiliumNetworkPolicy"),
            ("ccnp", "CiliumClusterwideNetworkPolicy"),
            ("ippools", "CiliumLoadBalancerIPPool"),
            ("lbippool", "CiliumLoadBalancerIPPool"),
            ("l2announcement", "CiliumL2AnnouncementPolicy"),
            ("clrp", "CiliumLocalRedirectPolicy"),
            ("cpip", "CiliumPodIPPool"),
            ("ccg", "CiliumCIDRGroup"),
            ("cew", "CiliumExternalWorkload"),
            ("ciliumnodeconfigs", "CiliumNodeConfig"),
            ("cbgpcluster", "CiliumBGPClusterConfig"),
            ("cbgppeer", "CiliumBGPPeerConfig"),
            ("cbgpadvert", "CiliumBGPAdvertisement"),
            ("cbgpnode", "CiliumBGPNodeConfig"),
            ("cbgpnodeoverride", "CiliumBGPNodeConfigOverride"),
        ];
        for (name, kind) in cases {
            assert_eq!(lookup(name).map(|k| k.ty.kind), Some(kind), "{name}");
        }
        assert!(lookup("deployments.cilium.io").is_none());
        assert!(lookup("widgets").is_none());
    }

    #[test]
    fn registry_names_are_unambiguous() {
        let mut names = std::collections::BTreeSet::new();
        for k in registry() {
            assert!(
                k.ty.served.contains(&k.ty.version),
                "{} serves its storage version",
                k.ty.kind
            );
            let singular = (k.ty.singular != k.ty.plural).then_some(k.ty.singular);
            for n in std::iter::once(k.ty.plural)
                .chain(singular)
                .chain(k.ty.short_names.iter().copied())
            {
                assert!(names.insert(n), "{n} used twice");
            }
        }
    }

    #[test]
    fn gvk_lookup() {
        assert_eq!(
            lookup_gvk("apps/v1", "Deployment").unwrap().ty.plural,
            "deployments"
        );
        assert_eq!(
            lookup_gvk("cilium.io/v2alpha1", "CiliumBGPPeerConfig")
                .unwrap()
                .ty
                .version,
            "v2"
        );
        assert_eq!(
            lookup_gvk("cilium.io/v2", "Foo").unwrap_err().to_string(),
            r#"no matches for kind "Foo" in version "cilium.io/v2""#
        );
        assert_eq!(
            lookup_gvk("v1", "Deployment").unwrap_err().to_string(),
            r#"no matches for kind "Deployment" in version "v1""#
        );
        assert_eq!(
            lookup_gvk("cilium.io/v2", "CiliumL2AnnouncementPolicy")
                .unwrap_err()
                .to_string(),
            r#"no matches for kind "CiliumL2AnnouncementPolicy" in version "cilium.io/v2" (served versions: cilium.io/v2alpha1)"#
        );
        assert!(lookup_gvk("apps/v2", "Deployment").is_err());
    }
}
