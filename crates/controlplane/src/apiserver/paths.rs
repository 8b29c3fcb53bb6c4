//! Request paths: which endpoint a URL names (`/version`, discovery,
//! OpenAPI, or a resource with its namespace, name and subresource) and
//! which RBAC verb a method on it is.

use api::Kind;

/// What a request path names.
#[derive(Debug, Clone)]
pub enum Route {
    /// `/version`.
    Version,
    /// `/healthz`, `/livez`, `/readyz` (and their sub-paths).
    Health,
    /// `/api`: the core group's versions.
    CoreVersions,
    /// `/apis`: every named group.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`: a resource list.
    Resources {
        /// `""` for core.
        group: String,
        /// `v1`, `v2`, ...
        version: String,
    },
    /// `/openapi/v3`.
    OpenApiIndex,
    /// `/openapi/v3/<api|apis/g/v>`.
    OpenApiDocument(String),
    /// `/openapi/v2`: not served (kubectl 1.29+ uses v3).
    OpenApiV2,
    /// A resource collection or object.
    Resource(ResourcePath),
}

/// A resource request's target.
#[derive(Debug, Clone)]
pub struct ResourcePath {
    /// The kind.
    pub kind: &'static Kind,
    /// The version in the URL (a served version of the kind).
    pub version: String,
    /// The namespace in the URL.
    pub namespace: Option<String>,
    /// The object name; `None` for the collection.
    pub name: Option<String>,
    /// `status`, `scale`, `log`, `exec`, `eviction`, ...
    pub subresource: Option<String>,
}

/// Parse a request path (without the query). `None`: nothing is served
/// there.
pub fn route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => Some(Route::Version),
        ["healthz" | "livez" | "readyz", ..] => Some(Route::Health),
        ["api"] => Some(Route::CoreVersions),
        ["apis"] => Some(Route::Groups),
        ["apis", group] => Some(Route::Group((*group).to_string())),
        ["api", version] => Some(resources("", version)),
        ["apis", group, version] => Some(resources(group, version)),
        ["openapi", "v3"] => Some(Route::OpenApiIndex),
        ["openapi", "v3", rest @ ..] if !rest.is_empty() => {
            Some(Route::OpenApiDocument(rest.join("/")))
        }
        ["openapi", "v2"] => Some(Route::OpenApiV2),
        ["api", version, rest @ ..] => resource("", version, rest).map(Route::Resource),
        ["apis", group, version, rest @ ..] => resource(group, version, rest).map(Route::Resource),
        _ => None,
    }
}

fn resources(group: &str, version: &str) -> Route {
    Route::Resources {
        group: group.to_string(),
        version: version.to_string(),
    }
}

/// Subresource names a path may carry (handlers refuse what a kind
/// does not serve).
const SUBRESOURCES: [&str; 11] = [
    "status",
    "scale",
    "log",
    "exec",
    "attach",
    "portforward",
    "eviction",
    "binding",
    "finalize",
    "proxy",
    "token",
];

/// `[namespaces/<ns>/]<plural>[/<name>[/<sub>]]` under a group version.
fn resource(group: &str, version: &str, rest: &[&str]) -> Option<ResourcePath> {
    let find = |plural: &str| {
        api::registry().iter().find(|k| {
            k.ty.group == group && k.ty.plural == plural && k.ty.served.contains(&version)
        })
    };
    let path = |kind, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Some(ResourcePath {
            kind,
            version: version.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        })
    };
    match rest {
        // `/api/v1/namespaces/<ns>/<plural>...` names a namespaced kind;
        // `/api/v1/namespaces/<name>[/status|finalize]` the namespace.
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|k| k.ty.namespaced) => {
            let kind = find(plural)?;
            match tail {
                [] => path(kind, Some(ns), None, None),
                [name] => path(kind, Some(ns), Some(name), None),
                [name, sub] if SUBRESOURCES.contains(sub) => {
                    path(kind, Some(ns), Some(name), Some(sub))
                }
                _ => None,
            }
        }
        [plural, tail @ ..] => {
            let kind = find(plural)?;
            match tail {
                [] => path(kind, None, None, None),
                [name] if !kind.ty.namespaced || *plural == "namespaces" => {
                    path(kind, None, Some(name), None)
                }
                [name, sub] if !kind.ty.namespaced && SUBRESOURCES.contains(sub) => {
                    path(kind, None, Some(name), Some(sub))
                }
                _ => None,
            }
        }
        [] => None,
    }
}

/// The RBAC verb of a request on a resource path.
pub fn verb(method: &hyper::Method, path: &ResourcePath, watch: bool) -> &'static str {
    use hyper::Method;
    let collection = path.name.is_none();
    match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if collection => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

impl PartialEq for ResourcePath {
    fn eq(&self, other: &Self) -> bool {
        self.kind.ty == other.kind.ty
            && (
                &self.version,
                &self.namespace,
                &self.name,
                &self.subresource,
            ) == (
                &other.version,
                &other.namespace,
                &other.name,
                &other.subresource,
            )
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Group(a), Self::Group(b))
            | (Self::OpenApiDocument(a), Self::OpenApiDocument(b)) => a == b,
            (
                Self::Resources {
                    group: g1,
                    version: v1,
                },
                Self::Resources {
                    group: g2,
                    version: v2,
                },
            ) => (g1, v1) == (g2, v2),
            (Self::Resource(a), Self::Resource(b)) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match route(path) {
            Some(Route::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn resource_paths() {
        let r = res("/api/v1/namespaces/default/pods/curl-pod/exec");
        assert_eq!(r.kind.ty.kind, "Pod");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("curl-pod"));
        assert_eq!(r.subresource.as_deref(), Some("exec"));

        let r = res("/api/v1/pods");
        assert_eq!((r.namespace, r.name), (None, None));

        let r = res("/api/v1/namespaces/kube-system");
        assert_eq!(r.kind.ty.kind, "Namespace");
        assert_eq!(r.name.as_deref(), Some("kube-system"));

        let r = res("/apis/apps/v1/namespaces/default/deployments/webpod/scale");
        assert_eq!(r.subresource.as_deref(), Some("scale"));

        let r = res("/apis/cilium.io/v2/ciliumnodes/k8s-w1/status");
        assert_eq!(r.kind.ty.kind, "CiliumNode");
        assert_eq!(r.subresource.as_deref(), Some("status"));

        let r = res("/apis/cilium.io/v2alpha1/ciliumbgpclusterconfigs");
        assert_eq!(r.version, "v2alpha1");

        assert_eq!(route("/apis/apps/v2/deployments"), None);
        assert_eq!(route("/api/v1/namespaces/default/widgets"), None);
        assert_eq!(
            route("/api/v1/pods/x"),
            None,
            "namespaced object without namespace"
        );
    }

    #[test]
    fn other_routes() {
        assert_eq!(route("/version"), Some(Route::Version));
        assert_eq!(route("/api"), Some(Route::CoreVersions));
        assert_eq!(route("/apis/"), Some(Route::Groups));
        assert_eq!(
            route("/apis/apps/v1"),
            Some(Route::Resources {
                group: "apps".into(),
                version: "v1".into()
            })
        );
        assert_eq!(
            route("/openapi/v3/apis/apps/v1"),
            Some(Route::OpenApiDocument("apis/apps/v1".into()))
        );
        assert_eq!(route("/readyz/etcd"), Some(Route::Health));
        assert_eq!(route("/nope"), None);
    }

    #[test]
    fn verbs() {
        use hyper::Method;
        let coll = res("/api/v1/pods");
        let obj = res("/api/v1/namespaces/default/pods/p");
        assert_eq!(verb(&Method::GET, &coll, false), "list");
        assert_eq!(verb(&Method::GET, &coll, true), "watch");
        assert_eq!(verb(&Method::GET, &obj, false), "get");
        assert_eq!(verb(&Method::DELETE, &coll, false), "deletecollection");
        assert_eq!(verb(&Method::PATCH, &obj, false), "patch");
    }
}
