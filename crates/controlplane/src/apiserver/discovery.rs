//! Discovery: `/version`, the legacy documents (`/api`, `/api/v1`,
//! `/apis`, `/apis/<g>`, `/apis/<g>/<v>`) and the aggregated ones
//! (`APIGroupDiscoveryList`, v2 and v2beta1, chosen from the client's
//! Accept header), all generated from the registry of served kinds.

use std::collections::BTreeMap;

use api::{Kind, ResourceType};
use serde_json::{Value, json};

/// The Kubernetes version the server reports: kubectl's dispatcher picks
/// its client from `minor`.
pub const VERSION: (&str, &str) = ("1", "33");

/// Verbs of every collection served.
const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `GET /version`.
pub fn version() -> Value {
    let (major, minor) = VERSION;
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": format!("v{major}.{minor}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// One subresource: name, response kind (`group`, `version`, `kind`;
/// empty group/version = the parent's), verbs.
struct Sub {
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
}

const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];

const fn status(kind: &'static str) -> Sub {
    Sub {
        name: "status",
        group: "",
        version: "",
        kind,
        verbs: GET_PATCH_UPDATE,
    }
}

/// Subresources served for a kind.
fn subresources(ty: &ResourceType) -> Vec<Sub> {
    let mut subs = Vec::new();
    if ty.has_status_subresource() {
        subs.push(status(ty.kind));
    }
    match ty.kind {
        "Pod" => {
            subs.push(Sub {
                name: "log",
                group: "",
                version: "",
                kind: "Pod",
                verbs: &["get"],
            });
            subs.push(Sub {
                name: "exec",
                group: "",
                version: "",
                kind: "PodExecOptions",
                verbs: &["create", "get"],
            });
            subs.push(Sub {
                name: "eviction",
                group: "policy",
                version: "v1",
                kind: "Eviction",
                verbs: &["create"],
            });
        }
        "Deployment" => subs.push(Sub {
            name: "scale",
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
            verbs: GET_PATCH_UPDATE,
        }),
        _ => {}
    }
    subs
}

/// Discovery categories: `kubectl get all` and `kubectl get cilium`.
fn categories(ty: &ResourceType) -> Vec<&'static str> {
    match (ty.group, ty.kind) {
        ("cilium.io", _) => vec!["cilium"],
        (_, "Pod" | "Service" | "Deployment" | "DaemonSet") => vec!["all"],
        _ => Vec::new(),
    }
}

/// Kinds served in `group` at `version`.
fn kinds_in(group: &str, version: &str) -> impl Iterator<Item = &'static Kind> {
    api::registry()
        .iter()
        .filter(move |k| k.ty.group == group && k.ty.served.contains(&version))
}

/// Named groups and their versions, the storage (preferred) version first.
fn groups() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for k in api::registry().iter().filter(|k| !k.ty.group.is_empty()) {
        let versions = groups.entry(k.ty.group).or_default();
        for v in std::iter::once(&k.ty.version).chain(k.ty.served) {
            if !versions.contains(v) {
                versions.push(v);
            }
        }
    }
    for versions in groups.values_mut() {
        // Preferred first: the highest stable version.
        versions.sort_by_key(|v| std::cmp::Reverse(version_rank(v)));
    }
    groups
}

/// `v2` > `v1` > `v2beta1` > `v2alpha1`, as Kubernetes orders versions.
fn version_rank(v: &str) -> (u8, u32, u32) {
    let rest = v.trim_start_matches('v');
    let (major, pre) = rest.split_at(
        rest.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len()),
    );
    let major = major.parse().unwrap_or(0);
    let (stage, n) = if let Some(n) = pre.strip_prefix("beta") {
        (1, n)
    } else if let Some(n) = pre.strip_prefix("alpha") {
        (0, n)
    } else {
        (2, "0")
    };
    (stage, major, n.parse().unwrap_or(0))
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `GET /api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(name: &str, versions: &[&str]) -> Value {
    let list: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": group_version(name, v), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": list,
        "preferredVersion": list[0],
    })
}

/// `GET /apis`.
pub fn group_list() -> Value {
    let groups: Vec<Value> = groups().iter().map(|(g, vs)| api_group(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`; `None` for an unknown group.
pub fn group(name: &str) -> Option<Value> {
    let groups = groups();
    let versions = groups.get(name)?;
    let mut group = api_group(name, versions);
    group["kind"] = "APIGroup".into();
    group["apiVersion"] = "v1".into();
    Some(group)
}

/// `GET /api/v1`, `GET /apis/<g>/<v>`; `None` when nothing is served there.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for k in kinds_in(group, version) {
        let ty = &k.ty;
        resources.push(json!({
            "name": ty.plural,
            "singularName": ty.singular,
            "namespaced": ty.namespaced,
            "kind": ty.kind,
            "verbs": VERBS,
            "shortNames": ty.short_names,
            "categories": categories(ty),
        }));
        for sub in subresources(ty) {
            let mut entry = json!({
                "name": format!("{}/{}", ty.plural, sub.name),
                "singularName": "",
                "namespaced": ty.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if !sub.group.is_empty() {
                entry["group"] = sub.group.into();
                entry["version"] = sub.version.into();
            }
            resources.push(entry);
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources,
    }))
}

/// The aggregated discovery version a client accepts (`v2`, `v2beta1`),
/// or `None` when it wants the legacy documents.
pub fn aggregated_version(accept: &str) -> Option<&'static str> {
    let offered = |v: &str| {
        accept.split(',').any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&format!("v={v}").as_str())
                && params.contains(&"as=APIGroupDiscoveryList")
        })
    };
    ["v2", "v2beta1"].into_iter().find(|v| offered(v))
}

/// The Content-Type of an aggregated answer.
pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

fn resource_discovery(ty: &ResourceType, version: &str) -> Value {
    let subresources: Vec<Value> = subresources(ty)
        .into_iter()
        .map(|sub| {
            let (group, kind_version) = if sub.group.is_empty() {
                (ty.group, version)
            } else {
                (sub.group, sub.version)
            };
            json!({
                "subresource": sub.name,
                "responseKind": {"group": group, "version": kind_version, "kind": sub.kind},
                "verbs": sub.verbs,
            })
        })
        .collect();
    json!({
        "resource": ty.plural,
        "responseKind": {"group": ty.group, "version": version, "kind": ty.kind},
        "scope": if ty.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": ty.singular,
        "verbs": VERBS,
        "shortNames": ty.short_names,
        "categories": categories(ty),
        "subresources": subresources,
    })
}

fn group_discovery(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = kinds_in(group, v)
                .map(|k| resource_discovery(&k.ty, v))
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

/// Aggregated discovery: `/api` (`core` = true) or `/apis`.
pub fn aggregated(core: bool, version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![group_discovery("", &["v1"])]
    } else {
        groups()
            .iter()
            .map(|(g, vs)| group_discovery(g, vs))
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_a_clean_semver_the_dispatcher_understands() {
        let v = version();
        assert_eq!(v["minor"], "33");
        assert_eq!(v["gitVersion"], "v1.33.0");
    }

    #[test]
    fn legacy_documents_list_groups_and_resources() {
        let groups = group_list();
        let names: Vec<&str> = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        for g in [
            "apps",
            "cilium.io",
            "discovery.k8s.io",
            "rbac.authorization.k8s.io",
        ] {
            assert!(names.contains(&g), "{g} in {names:?}");
        }
        let cilium = group("cilium.io").unwrap();
        assert_eq!(cilium["preferredVersion"]["version"], "v2");
        assert!(group("nope.io").is_none());

        let core = resource_list("", "v1").unwrap();
        let eviction = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .expect("drain needs pods/eviction");
        assert_eq!(
            (eviction["group"].as_str(), eviction["version"].as_str()),
            (Some("policy"), Some("v1"))
        );
        assert!(resource_list("apps", "v9").is_none());
    }

    #[test]
    fn aggregated_version_follows_accept() {
        let new = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        let old = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(new), Some("v2"));
        assert_eq!(aggregated_version(old), Some("v2beta1"));
        assert_eq!(aggregated_version("application/json, */*"), None);
        let doc = aggregated(false, "v2beta1");
        assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        let core = aggregated(true, "v2");
        let pods = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["shortNames"][0], "po");
    }

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v2alpha1", "v1", "v2", "v2beta1"];
        v.sort_by_key(|v| std::cmp::Reverse(version_rank(v)));
        assert_eq!(v, ["v2", "v1", "v2beta1", "v2alpha1"]);
    }
}
