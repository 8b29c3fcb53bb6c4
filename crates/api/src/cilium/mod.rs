//! Cilium custom resources (`cilium.io`), one module per area. Field names
//! follow upstream exactly (camelCase, and kebab-case where upstream uses
//! it); optional fields are `Option` and omitted when unset; unknown fields
//! are ignored; enum-like strings keep values we do not know yet.
//!
//! Every top-level type is declared with `#[serde(remote = "Self")]` and
//! then passed to `cilium_object!`, which adds `apiVersion`/`kind` on
//! serialization and implements [`crate::Object`].

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::ResourceType;

/// The API group of every Cilium resource.
pub const GROUP: &str = "cilium.io";

/// Versions served by kinds stored in `v2` that upstream also serves in
/// `v2alpha1`.
const V2_AND_V2ALPHA1: &[&str] = &["v2", "v2alpha1"];

/// Facts of a Cilium kind. `version` is the storage version; `served`
/// lists every version accepted from manifests.
const fn crd(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    namespaced: bool,
    version: &'static str,
    served: &'static [&'static str],
) -> ResourceType {
    ResourceType {
        kind,
        group: GROUP,
        version,
        served,
        plural,
        singular,
        short_names,
        namespaced,
    }
}

/// Serde and [`crate::Object`] impls for a Cilium top-level type declared
/// with `#[serde(remote = "Self")]`: serialization writes `apiVersion` and
/// `kind` (storage version) before the fields; deserialization ignores them
/// (the registry checks them before a typed decode).
macro_rules! cilium_object {
    ($ty:ident, $rt:expr, $validate:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                fn body<S: serde::Serializer>(value: &&$ty, s: S) -> Result<S::Ok, S::Error> {
                    $ty::serialize(*value, s)
                }
                #[derive(serde::Serialize)]
                struct Tagged<'a> {
                    #[serde(rename = "apiVersion")]
                    api_version: String,
                    kind: &'static str,
                    #[serde(flatten, serialize_with = "body")]
                    body: &'a $ty,
                }
                let ty = <$ty as $crate::Object>::TYPE;
                Tagged {
                    api_version: ty.api_version(),
                    kind: ty.kind,
                    body: self,
                }
                .serialize(serializer)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $ty::deserialize(deserializer)
            }
        }

        impl toolkit::cache::HasMeta for $ty {
            fn object_meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
        }

        impl_object!($ty, $rt, $validate);
    };
}

// Declared after the macros so the submodules can use them.
pub mod bgp;
pub mod cidrgroup;
pub mod endpoint;
pub mod externalworkload;
pub mod identity;
pub mod ippool;
pub mod l2;
pub mod lbipam;
pub mod lrp;
pub mod node;
pub mod nodeconfig;
pub mod policy;

/// A port written as a string upstream (`"8080"`); integers are accepted
/// too and kept as their decimal string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PortString(pub String);

impl PortString {
    /// The port as a number, when it is one.
    pub fn number(&self) -> Option<u32> {
        self.0.parse().ok()
    }
}

impl fmt::Display for PortString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for PortString {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl Serialize for PortString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PortString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = PortString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortString, E> {
                Ok(PortString(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortString, E> {
                Ok(PortString(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortString, E> {
                Ok(PortString(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A `status` holding only conditions (LB pools, L2 policies, BGP
/// cluster and peer configs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConditionsStatus {
    /// Conditions, keyed by `type` (`cilium.io/PoolConflict`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// Shared checks for Cilium resources.
pub(crate) mod check {
    use crate::validation::{self as v, Check, Path};

    use super::PortString;

    /// A port string holding a number in `min..=65535`.
    pub fn port_string(path: &Path, port: &PortString, min: i64) -> Check {
        match port.0.parse::<i64>() {
            Ok(n) => v::in_range(path, n, min, 65535),
            Err(_) => Err(path.invalid(
                &port.0,
                format!("must be a port number between {min} and 65535"),
            )),
        }
    }

    /// An autonomous system number within `min..=4294967295`.
    pub fn asn(path: &Path, asn: i64, min: i64) -> Check {
        v::in_range(path, asn, min, i64::from(u32::MAX))
    }

    /// Every entry of a list of CIDR strings parses.
    pub fn cidrs<'a>(path: &Path, cidrs: impl IntoIterator<Item = &'a String>) -> Check {
        for (i, c) in cidrs.into_iter().enumerate() {
            v::cidr(&path.index(i), c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Round-trip helper shared by the CRD modules' tests.

    use serde_json::Value;

    use crate::Object;

    /// Decode `value` as `T`, check it validates, serialize it back and
    /// check apiVersion/kind and that a second decode gives the same object.
    pub fn round_trip<T: Object + PartialEq + std::fmt::Debug>(value: Value) -> T {
        let obj: T = serde_json::from_value(value).expect("fixture deserializes");
        assert_eq!(obj.validate(), Ok(()), "fixture validates");
        let back = serde_json::to_value(&obj).expect("serializes");
        assert_eq!(back["apiVersion"], T::TYPE.api_version());
        assert_eq!(back["kind"], T::TYPE.kind);
        let again: T = serde_json::from_value(back).expect("deserializes again");
        assert_eq!(again, obj);
        obj
    }

    /// Decode `value` as `T` and return its validation error as text.
    pub fn invalid<T: Object>(value: Value) -> String {
        let obj: T = serde_json::from_value(value).expect("fixture deserializes");
        obj.validate()
            .expect_err("validation must fail")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_string_accepts_numbers_and_strings() {
        let p: PortString = serde_json::from_value(serde_json::json!(80)).unwrap();
        assert_eq!(p, PortString::from("80"));
        let p: PortString = serde_json::from_value(serde_json::json!("8080")).unwrap();
        assert_eq!(p.number(), Some(8080));
        assert_eq!(serde_json::to_value(&p).unwrap(), serde_json::json!("8080"));
        assert!(serde_json::from_value::<PortString>(serde_json::json!([1])).is_err());
    }
}
