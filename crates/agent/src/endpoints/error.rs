//! [`EndpointError`]: why an endpoint operation failed, in the endpoint
//! manager's own terms. The REST layer maps each kind to a CNI error code
//! and HTTP status.

/// An endpoint operation's failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The request lacks something (container ID, netns, ifname).
    #[error("{0}")]
    InvalidRequest(String),
    /// No endpoint for that container and interface.
    #[error("{0}")]
    UnknownEndpoint(String),
    /// No address or endpoint ID left.
    #[error("{0}")]
    Exhausted(String),
    /// Creating or deleting the endpoint's interfaces failed.
    #[error("{0}")]
    Link(String),
    /// Identity allocation failed.
    #[error("{0}")]
    Identity(String),
    /// The endpoint's datapath state could not be applied.
    #[error("{0}")]
    Datapath(String),
    /// Persisting state failed.
    #[error("{0}")]
    Io(String),
    /// CHECK found a discrepancy.
    #[error("{0}")]
    CheckFailed(String),
}
