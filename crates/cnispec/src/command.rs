//! The CNI operations (`CNI_COMMAND`) and the version each one appeared
//! in. Which `CNI_*` variables an operation needs is the plugin's to
//! check; how a runtime sequences them is the client's.

use crate::version::CniVersion;

/// The CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach a container to the network.
    Add,
    /// Release a container's attachment.
    Del,
    /// Verify an attachment.
    Check,
    /// Report whether the plugin can serve ADD.
    Status,
    /// Remove attachments not in the runtime's valid list.
    Gc,
    /// Report supported versions.
    Version,
}

impl Command {
    /// `CNI_COMMAND` value -> command.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "STATUS" => Self::Status,
            "GC" => Self::Gc,
            "VERSION" => Self::Version,
            _ => return None,
        })
    }

    /// The `CNI_COMMAND` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Status => "STATUS",
            Self::Gc => "GC",
            Self::Version => "VERSION",
        }
    }

    /// The first version with this command: CHECK from 0.4.0, STATUS and
    /// GC from 1.1.0, the others from the start.
    pub fn since(self) -> CniVersion {
        match self {
            Self::Check => CniVersion::V0_4_0,
            Self::Status | Self::Gc => CniVersion::V1_1_0,
            Self::Add | Self::Del | Self::Version => CniVersion::V0_3_0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_round_trips() {
        for c in [
            Command::Add,
            Command::Del,
            Command::Check,
            Command::Status,
            Command::Gc,
            Command::Version,
        ] {
            assert_eq!(Command::parse(c.as_str()), Some(c));
        }
        assert_eq!(Command::parse("add"), None);
        assert_eq!(Command::parse("UPDATE"), None);
    }

    #[test]
    fn commands_appear_with_their_versions() {
        assert_eq!(Command::Add.since(), CniVersion::V0_3_0);
        assert_eq!(Command::Check.since(), CniVersion::V0_4_0);
        assert_eq!(Command::Gc.since(), CniVersion::V1_1_0);
    }
}
