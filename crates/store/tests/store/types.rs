//! Test-only resource types: a namespaced `Widget` with spec and status,
//! and a cluster-scoped `Gadget`.

use api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use api::{Object, ResourceType};
use serde::{Deserialize, Serialize};

/// A namespaced test object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Widget {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: WidgetSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WidgetStatus>,
}

/// Desired state of a [`Widget`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WidgetSpec {
    #[serde(default)]
    pub size: i64,
}

/// Observed state of a [`Widget`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WidgetStatus {
    #[serde(default)]
    pub ready: bool,
}

impl Widget {
    /// A widget with a name, an optional namespace and a size.
    pub fn new(namespace: Option<&str>, name: &str, size: i64) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: namespace.map(str::to_string),
                ..Default::default()
            },
            spec: WidgetSpec { size },
            status: None,
        }
    }
}

impl toolkit::cache::HasMeta for Widget {
    fn object_meta(&self) -> &ObjectMeta {
        &self.metadata
    }
}

impl Object for Widget {
    const TYPE: ResourceType = ResourceType {
        kind: "Widget",
        group: "test.example",
        version: "v1",
        served: &["v1"],
        plural: "widgets",
        singular: "widget",
        short_names: &["wd"],
        namespaced: true,
    };

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A cluster-scoped test object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Gadget {
    #[serde(default)]
    pub metadata: ObjectMeta,
}

impl Gadget {
    /// A gadget with a name.
    pub fn new(name: &str) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
        }
    }
}

impl toolkit::cache::HasMeta for Gadget {
    fn object_meta(&self) -> &ObjectMeta {
        &self.metadata
    }
}

impl Object for Gadget {
    const TYPE: ResourceType = ResourceType {
        kind: "Gadget",
        group: "test.example",
        version: "v1",
        served: &["v1"],
        plural: "gadgets",
        singular: "gadget",
        short_names: &[],
        namespaced: false,
    };

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}
