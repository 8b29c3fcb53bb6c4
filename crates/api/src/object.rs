//! The [`Object`] trait every stored resource implements, and the static
//! [`ResourceType`] facts (kind, group, versions, plural, scope) that the
//! store uses for keys and the CLI uses for names and aliases.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Serialize, de::DeserializeOwned};

use crate::FieldError;

/// Static facts about one resource type, as an API server would serve them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// `Pod`, `CiliumNode`, ...
    pub kind: &'static str,
    /// API group: `""` for core, `apps`, `discovery.k8s.io`, `cilium.io`.
    pub group: &'static str,
    /// The storage version (objects are stored and printed in it).
    pub version: &'static str,
    /// Every version accepted from manifests (includes `version`).
    pub served: &'static [&'static str],
    /// Lower-case plural (`pods`, `ciliumnodes`): the store's key segment.
    pub plural: &'static str,
    /// Lower-case singular (`pod`, `ciliumnode`).
    pub singular: &'static str,
    /// kubectl short names (`po`, `cn`, `cep`, ...).
    pub short_names: &'static [&'static str],
    /// Namespaced (true) or cluster-scoped (false).
    pub namespaced: bool,
}

impl ResourceType {
    /// `v1`, `apps/v1`, `cilium.io/v2`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether the API server serves `status` as a subresource: writes to
    /// the object leave its status alone and status is written through
    /// `<object>/status` (the kinds upstream serves that way).
    pub fn has_status_subresource(&self) -> bool {
        matches!(
            (self.group, self.kind),
            ("", "Pod" | "Node" | "Service" | "Namespace")
                | ("apps", "Deployment" | "DaemonSet")
                | ("apiextensions.k8s.io", "CustomResourceDefinition")
                | (
                    "cilium.io",
                    "CiliumLoadBalancerIPPool"
                        | "CiliumBGPClusterConfig"
                        | "CiliumBGPPeerConfig"
                        | "CiliumBGPNodeConfig"
                        | "CiliumNetworkPolicy"
                        | "CiliumClusterwideNetworkPolicy"
                )
        )
    }

    /// `pods`, `deployments.apps`, `ciliumnodes.cilium.io` (as in kubectl's
    /// `deployment.apps/webpod created`, singular form via [`Self::qualified_singular`]).
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `pod`, `deployment.apps`, `ciliumnode.cilium.io`.
    pub fn qualified_singular(&self) -> String {
        if self.group.is_empty() {
            self.singular.to_string()
        } else {
            format!("{}.{}", self.singular, self.group)
        }
    }

    /// Key prefix of every object of this type in the store, ending in `/`:
    /// `/registry/pods/`, `/registry/cilium.io/ciliumnodes/` (the API
    /// server's registry layout: built-in groups by plural, CRDs by group).
    pub fn registry_prefix(&self) -> String {
        if self.group == "cilium.io" {
            format!("/registry/{}/{}/", self.group, self.plural)
        } else {
            format!("/registry/{}/", self.plural)
        }
    }

    /// Store key of one object. `namespace` is ignored for cluster-scoped
    /// types and must be given for namespaced ones.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{ns}/{name}", self.registry_prefix()),
            _ => format!("{}{name}", self.registry_prefix()),
        }
    }

    /// Prefix that lists one namespace (namespaced types) or everything.
    pub fn list_prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{ns}/", self.registry_prefix()),
            _ => self.registry_prefix(),
        }
    }

    /// Whether `name` (as typed on a command line) names this type:
    /// kind, plural, singular or a short name, case-insensitive, optionally
    /// qualified by the group (`deployments.apps`).
    pub fn matches_name(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        let (base, group) = match name.split_once('.') {
            Some((b, g)) => (b.to_string(), Some(g.to_string())),
            None => (name.clone(), None),
        };
        if let Some(g) = group
            && g != self.group
        {
            return false;
        }
        base == self.plural
            || base == self.singular
            || base == self.kind.to_ascii_lowercase()
            || self.short_names.contains(&base.as_str())
    }
}

/// A resource the store can hold: serializable, with object metadata and
/// static type facts.
pub trait Object:
    toolkit::cache::HasMeta + Serialize + DeserializeOwned + Clone + Send + Sync + 'static
{
    /// Static facts of this type.
    const TYPE: ResourceType;

    /// The object's metadata.
    fn meta(&self) -> &ObjectMeta;

    /// The object's metadata, mutable.
    fn meta_mut(&mut self) -> &mut ObjectMeta;

    /// Semantic validation beyond what deserialization checks. Errors carry
    /// the field path (`spec.replicas`).
    fn validate(&self) -> Result<(), FieldError> {
        Ok(())
    }

    /// The object's name (empty when unset).
    fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or("")
    }

    /// The object's namespace, for namespaced types.
    fn namespace(&self) -> Option<&str> {
        self.meta().namespace.as_deref()
    }
}

/// Implements [`Object`] for a type whose metadata is in a `metadata` field:
/// `impl_object!(Type, RESOURCE_TYPE, validate_fn_or_closure)`.
macro_rules! impl_object {
    ($ty:ty, $rt:expr, $validate:expr) => {
        impl $crate::Object for $ty {
            const TYPE: $crate::ResourceType = $rt;

            fn meta(&self) -> &$crate::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }

            fn meta_mut(
                &mut self,
            ) -> &mut $crate::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }

            fn validate(&self) -> Result<(), $crate::FieldError> {
                let check: fn(&Self) -> Result<(), $crate::FieldError> = $validate;
                check(self)
            }
        }
    };
}
