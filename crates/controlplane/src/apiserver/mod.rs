//! The lab's Kubernetes API server: a subset of the real one, served over
//! HTTPS and backed by the cluster store (etcd), that real `kubectl` and
//! kube-rs clients use unchanged.
//!
//! ```text
//!  TLS (lab CA) ─► authn (client cert CN/O, service-account token) ─► RBAC
//!      ─► route: /version, discovery, /openapi/v3, resources
//!      ─► verbs: get list watch create update patch delete deletecollection
//!      ─► store (etcd): resourceVersion = store revision
//! ```
//!
//! Pure parts live in their own modules (tables, patches, authorization);
//! the request handling at the edge.

pub mod authn;
pub mod bootstrap;
pub mod rbac;
