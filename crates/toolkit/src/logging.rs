//! The `tracing` subscriber every binary installs: upstream's
//! `--log-format` (`text`, `text-ts`, `json`, `json-ts`), the level from
//! `RUST_LOG` or the caller's default, to standard error. Colour codes are
//! written only when standard error is a terminal, so log files and
//! `cilium-lab logs` stay plain text.

use std::io::IsTerminal;
use std::str::FromStr;

/// Upstream's `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// Human-readable lines (timestamps are always written; kept for
    /// upstream compatibility).
    TextTs,
    /// One JSON object per line.
    Json,
    /// One JSON object per line (see [`LogFormat::TextTs`]).
    JsonTs,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "text-ts" => Ok(Self::TextTs),
            "json" => Ok(Self::Json),
            "json-ts" => Ok(Self::JsonTs),
            other => Err(format!(
                "unknown log format {other:?} (text, text-ts, json, json-ts)"
            )),
        }
    }
}

impl LogFormat {
    /// Whether lines are JSON.
    pub fn is_json(self) -> bool {
        matches!(self, Self::Json | Self::JsonTs)
    }
}

/// Install the global subscriber: `format`, level from `RUST_LOG` or
/// `default_level` (`info`, `debug` ...). A second call does nothing.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = if format.is_json() {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_like_upstream() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!("json-ts".parse(), Ok(LogFormat::JsonTs));
        assert!("json".parse::<LogFormat>().unwrap().is_json());
        assert!(!LogFormat::default().is_json());
        let e = "yaml".parse::<LogFormat>().unwrap_err();
        assert!(e.contains("yaml"), "{e}");
    }
}
