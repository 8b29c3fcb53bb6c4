//! The kubelet's error type, and [`Context`] to say what was being done
//! when a system call, file or JSON operation failed. Every message
//! carries its cause inline (`cannot open /x: No such file or directory`),
//! so callers print one line. Failures of CNI plugins are
//! [`crate::cni::ClientError`]s.

/// What went wrong in the kubelet, the sandbox helper or a built-in
/// workload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file, socket or process operation failed.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// A namespace, mount or exec system call failed.
    #[error("{context}: {cause}")]
    Sys {
        /// What was being done.
        context: String,
        /// The errno.
        cause: nix::Error,
    },
    /// A record on disk does not decode, or cannot be encoded.
    #[error("{context}: {cause}")]
    Json {
        /// What was being done.
        context: String,
        /// The decoder's message.
        cause: serde_json::Error,
    },
    /// A step failed without a system error (a helper's exit status, a
    /// tool's message, a malformed request).
    #[error("{0}")]
    Failed(String),
    /// A pod, its sandbox or one of its containers does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A watch of the store ended.
    #[error("{0} watch ended")]
    WatchEnded(&'static str),
}

/// Attach what was being done to a failure, as an [`Error`].
pub(crate) trait Context<T> {
    /// With a message computed only on failure.
    fn with_context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T, Error>;

    /// With a fixed message.
    fn context(self, context: &str) -> Result<T, Error>
    where
        Self: Sized,
    {
        self.with_context(|| context)
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn with_context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T, Error> {
        self.map_err(|cause| Error::Io {
            context: f().into(),
            cause,
        })
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn with_context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T, Error> {
        self.map_err(|cause| Error::Sys {
            context: f().into(),
            cause,
        })
    }
}

impl<T> Context<T> for serde_json::Result<T> {
    fn with_context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T, Error> {
        self.map_err(|cause| Error::Json {
            context: f().into(),
            cause,
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn with_context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T, Error> {
        self.ok_or_else(|| Error::Failed(f().into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_cause() {
        let e = std::fs::read("/nonexistent/x")
            .with_context(|| "cannot read /nonexistent/x")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/x: No such file or directory"),
            "{e}"
        );
        let e = None::<()>.context("no PID").unwrap_err();
        assert_eq!(e.to_string(), "no PID");
        let e = Err::<(), _>(nix::Error::EPERM)
            .context("setns net")
            .unwrap_err();
        assert_eq!(e.to_string(), "setns net: EPERM: Operation not permitted");
    }
}
