//! Resource types shared by every component: Kubernetes core objects
//! (re-exported from `k8s-openapi`), Cilium CRDs (`cilium.io` v2 and
//! v2alpha1), the registry of every kind the cluster store serves, and the
//! decoding of manifests (multi-document YAML, served versions, unknown
//! fields tolerated, invalid values rejected with their field path).

#[macro_use]
mod object;

pub mod cilium;
pub mod conditions;
mod core;
mod manifest;
mod more;
mod registry;
pub mod validation;

pub use k8s_openapi;
pub use manifest::{DecodeError, Manifest, decode_object, parse_manifests};
pub use object::{Object, ResourceType};
pub use registry::{Kind, lookup, lookup_gvk, registry};

/// A validation failure at one field of an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// Dotted path to the field (`spec.template.spec.containers[0].image`).
    pub path: String,
    /// What is wrong (`Invalid value: -1: must be greater than or equal to 0`).
    pub message: String,
}

impl FieldError {
    /// A new error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}
