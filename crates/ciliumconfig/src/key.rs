//! What the key table says about a key ([`Key`]: type, default, class,
//! readers), the syntax check of each [`Type`], and [`KeySet`], through
//! which the agent's and the operator's typed configs read a key set: it
//! rejects unknown keys, hands out values with their defaults, and checks
//! every key a reader does not parse itself.

use std::collections::BTreeMap;

use crate::error::{ConfigError, invalid};
use crate::table::KEYS;
use crate::value;

/// The syntax of a key's value. Every type accepts the empty value, which
/// upstream's loader reads as the type's zero value; keys that must not be
/// empty are parsed precisely by the config that supports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Go's `strconv.ParseBool` spellings (`true`, `False`, `1`, `t`, ...).
    Bool,
    /// A decimal integer.
    Int,
    /// A decimal number (`0.0025`).
    Float,
    /// A Go duration (`30s`, `5m0s`, `100ms`).
    Duration,
    /// One IPv4 CIDR.
    Cidr,
    /// IPv4 CIDRs separated by commas or spaces.
    Cidrs,
    /// A listen address, `[ADDRESS]:PORT` (`:9962`).
    Address,
    /// An absolute path.
    Path,
    /// A cluster name: 1-32 characters of a-z, 0-9 and `-`.
    Name,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Free text.
    Text,
}

impl Type {
    /// Check the syntax of `value`, naming `key` in the error.
    pub fn check(self, key: &str, value: &str) -> Result<(), ConfigError> {
        if value.is_empty() {
            return Ok(());
        }
        match self {
            Type::Bool => value::parse_bool(key, value).map(drop),
            Type::Int => value
                .parse::<i64>()
                .map(drop)
                .map_err(|_| invalid(key, value, "expected an integer")),
            Type::Float => value
                .parse::<f64>()
                .map(drop)
                .map_err(|_| invalid(key, value, "expected a number")),
            Type::Duration => toolkit::parse_duration(value)
                .map(drop)
                .map_err(|e| invalid(key, value, e)),
            Type::Cidr => value::parse_cidr(key, value).map(drop),
            Type::Cidrs => value::parse_cidrs(key, value).map(drop),
            Type::Address => value::parse_listen_addr(key, value).map(drop),
            Type::Path => value::parse_abs_path(key, value).map(drop),
            Type::Name => value::parse_cluster_name(key, value).map(drop),
            Type::Choice(words) if words.contains(&value) => Ok(()),
            Type::Choice(words) => Err(invalid(key, value, expected_one_of(words))),
            Type::Text => Ok(()),
        }
    }
}

/// `expected a or b`, `expected a, b or c`.
fn expected_one_of(words: &[&str]) -> String {
    match words {
        [] => "expected nothing".into(),
        [one] => format!("expected {one}"),
        [init @ .., last] => format!("expected {} or {last}", init.join(", ")),
    }
}

/// What this implementation does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Parsed into the typed config of each of its [`Key::readers`] and
    /// acted upon.
    Supported,
    /// The feature does not exist yet: its readers accept only these
    /// values, which mean "off"; anything else is "not supported yet".
    FeatureGated {
        /// Values meaning "off" (booleans compared after normalising
        /// `False`, `0`, ... to `false`).
        off: &'static [&'static str],
    },
    /// Accepted (syntax checked) and ignored: nothing observable depends
    /// on it here (map sizes fixed by the datapath build, intervals of
    /// controllers that run event-driven, settings of Hubble, Envoy or
    /// Kubernetes client tuning).
    Inert,
}

/// A process that reads `cilium-config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// `cilium-agent`.
    Agent,
    /// `cilium-operator`.
    Operator,
}

/// One key of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// Upstream's name.
    pub name: &'static str,
    /// Value syntax.
    pub ty: Type,
    /// The value used when the key is absent: upstream's default, except
    /// for a feature-gated key, whose feature stays off here.
    pub default: &'static str,
    /// What this implementation does with it.
    pub class: Class,
    /// Who reads it upstream (and here, for supported and feature-gated
    /// keys).
    pub readers: &'static [Reader],
}

impl Key {
    /// Whether `reader` parses this key into its typed config.
    pub fn is_supported_by(&self, reader: Reader) -> bool {
        self.class == Class::Supported && self.readers.contains(&reader)
    }
}

/// Every known key, in the table's order.
pub fn keys() -> &'static [Key] {
    KEYS
}

/// The table's entry for `name`.
pub fn lookup(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// A key set as one reader sees it.
pub(crate) struct KeySet<'a> {
    given: &'a BTreeMap<String, String>,
    reader: Reader,
}

impl<'a> KeySet<'a> {
    /// Fails on the first unknown key (in key order).
    pub(crate) fn new(
        given: &'a BTreeMap<String, String>,
        reader: Reader,
    ) -> Result<Self, ConfigError> {
        match given.keys().find(|k| lookup(k).is_none()) {
            Some(key) => Err(ConfigError::UnknownKey(key.clone())),
            None => Ok(Self { given, reader }),
        }
    }

    /// The value of a key this reader supports: as given, else its default.
    ///
    /// # Panics
    /// If the table does not list `name` as supported by this reader (a
    /// bug the unit tests catch).
    pub(crate) fn get(&self, name: &str) -> &'a str {
        let key = lookup(name)
            .filter(|k| k.is_supported_by(self.reader))
            .unwrap_or_else(|| panic!("{name} is not supported by the {:?}", self.reader));
        self.given.get(name).map_or(key.default, String::as_str)
    }

    /// A boolean key this reader supports.
    pub(crate) fn bool(&self, name: &str) -> Result<bool, ConfigError> {
        value::parse_bool(name, self.get(name))
    }

    /// Check every given key this reader does not parse itself: its syntax
    /// by type and, for the feature gates it reads, that the value means
    /// "off".
    pub(crate) fn check_rest(&self) -> Result<(), ConfigError> {
        for (name, value) in self.given {
            let key = lookup(name).expect("unknown keys are rejected by KeySet::new");
            if key.is_supported_by(self.reader) {
                continue;
            }
            key.ty.check(name, value)?;
            if let Class::FeatureGated { off } = key.class
                && key.readers.contains(&self.reader)
                && !off.contains(&value::normalise(value))
            {
                return Err(ConfigError::NotSupported {
                    key: name.clone(),
                    value: value.clone(),
                });
            }
        }
        Ok(())
    }

    /// The effective key/value map: every key this reader supports with
    /// its default, overlaid with everything given.
    pub(crate) fn effective(&self) -> BTreeMap<String, String> {
        let mut effective: BTreeMap<String, String> = KEYS
            .iter()
            .filter(|k| k.is_supported_by(self.reader))
            .map(|k| (k.name.to_string(), k.default.to_string()))
            .collect();
        effective.extend(self.given.iter().map(|(k, v)| (k.clone(), v.clone())));
        effective
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::key_set;

    #[test]
    fn types_check_syntax_and_accept_empty() {
        let ok = [
            (Type::Bool, "False"),
            (Type::Int, "65536"),
            (Type::Float, "0.0025"),
            (Type::Duration, "5m0s"),
            (Type::Cidr, "10.0.0.0/8"),
            (Type::Cidrs, "10.0.0.0/8,10.1.0.0/16 10.2.0.0/16"),
            (Type::Address, ":4244"),
            (Type::Path, "/var/run/cilium"),
            (Type::Name, "west-1"),
            (Type::Choice(&["a", "b"]), "b"),
            (Type::Text, "anything at all"),
        ];
        for (ty, v) in ok {
            ty.check("k", v)
                .unwrap_or_else(|e| panic!("{ty:?} {v:?}: {e}"));
            ty.check("k", "")
                .unwrap_or_else(|e| panic!("{ty:?} empty: {e}"));
        }
        let bad = [
            (Type::Bool, "yes", "expected true or false"),
            (Type::Int, "1.5", "expected an integer"),
            (Type::Float, "x", "expected a number"),
            (Type::Cidr, "10.0.0.0", "expected an IPv4 CIDR"),
            (Type::Cidrs, "10.0.0.0/8 x", "expected IPv4 CIDRs"),
            (Type::Address, "4244", "expected [ADDRESS]:PORT, e.g. :9962"),
            (Type::Path, "relative", "expected an absolute path"),
            (
                Type::Name,
                "West",
                "expected 1-32 characters of a-z, 0-9 and -",
            ),
            (Type::Choice(&["a"]), "c", "expected a"),
            (Type::Choice(&["a", "b", "c"]), "d", "expected a, b or c"),
        ];
        for (ty, v, reason) in bad {
            assert_eq!(
                ty.check("k", v).unwrap_err().to_string(),
                format!("`k: {v}` is invalid: {reason}")
            );
        }
        let e = Type::Duration.check("k", "5d").unwrap_err().to_string();
        assert!(
            e.starts_with("`k: 5d` is invalid: \"5d\" is not a duration"),
            "{e}"
        );
    }

    #[test]
    fn key_sets_by_reader() {
        let g = key_set(&[("zz-unknown", "1"), ("aa-unknown", "1")]);
        assert_eq!(
            KeySet::new(&g, Reader::Agent).err().unwrap().to_string(),
            "unknown configuration key `aa-unknown`"
        );
        let g = key_set(&[("debug", "true"), ("enable-hubble", "true")]);
        let agent = KeySet::new(&g, Reader::Agent).unwrap();
        assert_eq!((agent.get("debug"), agent.get("mtu")), ("true", "0"));
        assert_eq!(
            agent.check_rest().unwrap_err().to_string(),
            "`enable-hubble: true` is not supported yet"
        );
        // The operator does not read `enable-hubble` nor `debug`: both are
        // only syntax-checked.
        KeySet::new(&g, Reader::Operator)
            .unwrap()
            .check_rest()
            .unwrap();
        let g = key_set(&[("debug", "maybe")]);
        assert_eq!(
            KeySet::new(&g, Reader::Operator)
                .unwrap()
                .check_rest()
                .unwrap_err()
                .to_string(),
            "`debug: maybe` is invalid: expected true or false"
        );
        assert_eq!(lookup("debug").map(|k| k.class), Some(Class::Supported));
        assert!(lookup("debug").unwrap().is_supported_by(Reader::Agent));
        assert!(!lookup("debug").unwrap().is_supported_by(Reader::Operator));
        assert_eq!(lookup("nope"), None);
        assert!(keys().iter().any(|k| k.class == Class::Inert));
    }

    #[test]
    #[should_panic(expected = "mtu is not supported by the Operator")]
    fn reading_a_key_the_reader_does_not_support_is_a_bug() {
        let g = BTreeMap::new();
        KeySet::new(&g, Reader::Operator).unwrap().get("mtu");
    }
}
