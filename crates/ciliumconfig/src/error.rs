//! The one error type of reading and validating `cilium-config`: every
//! message names the key (and the value) at fault.

use std::path::PathBuf;

/// A configuration error, with the message shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key nobody knows.
    #[error("unknown configuration key `{0}`")]
    UnknownKey(String),
    /// A value that does not parse or is out of range.
    #[error("`{key}: {value}` is invalid: {reason}")]
    InvalidValue {
        /// Key.
        key: String,
        /// Value as given.
        value: String,
        /// Why.
        reason: String,
    },
    /// A feature this implementation does not have yet.
    #[error("`{key}: {value}` is not supported yet")]
    NotSupported {
        /// Key.
        key: String,
        /// Value as given.
        value: String,
    },
    /// Keys that contradict each other.
    #[error("{0}")]
    Contradiction(String),
    /// A `--config` argument without `=`, or with an empty key.
    #[error("`--config {0}`: expected KEY=VALUE")]
    BadOverride(String),
    /// A config directory or file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// Directory or file.
        path: PathBuf,
        /// Cause.
        message: String,
    },
    /// A config file is not a YAML map of keys to values.
    #[error("{path}: expected a YAML map of cilium-config keys to values: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// What the YAML parser said.
        message: String,
    },
}

/// An [`ConfigError::InvalidValue`].
pub(crate) fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}
