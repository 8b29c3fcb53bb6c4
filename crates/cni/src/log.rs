//! Debug logging (`enable-debug`): one line per event, appended to
//! `log-file` or written to stderr. Never on stdout, which carries the
//! CNI result; logging failures are ignored so they cannot fail a pod.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::NetConf;

/// Where debug lines go; disabled until a configuration enables it.
#[derive(Default)]
pub struct DebugLog {
    out: Option<Box<dyn Write>>,
}

impl DebugLog {
    /// The log a configuration asks for.
    pub fn for_conf(conf: &NetConf) -> Self {
        if !conf.enable_debug {
            return Self::default();
        }
        let file = conf
            .log_file
            .as_ref()
            .and_then(|path| OpenOptions::new().create(true).append(true).open(path).ok());
        let out: Box<dyn Write> = match file {
            Some(f) => Box::new(f),
            None => Box::new(std::io::stderr()),
        };
        Self { out: Some(out) }
    }

    /// Writes one line (`<unix seconds> cilium-cni[<pid>]: <msg>`).
    pub fn line(&mut self, msg: fmt::Arguments<'_>) {
        if let Some(out) = &mut self.out {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{}.{:03} cilium-cni[{}]: {msg}",
                now.as_secs(),
                now.subsec_millis(),
                std::process::id()
            );
        }
    }
}
