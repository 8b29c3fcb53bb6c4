use std::collections::BTreeSet;

use super::*;
use crate::apiserver::authn::{UserInfo, service_account_username};
use crate::apiserver::rbac::tests::{path, res};
use crate::apiserver::rbac::{Attributes, Authorizer, Target};

fn user(name: &str, groups: &[&str]) -> UserInfo {
    let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    groups.push(AUTHENTICATED_GROUP.into());
    UserInfo {
        username: name.into(),
        groups,
        ..UserInfo::default()
    }
}

fn service_account(namespace: &str, name: &str) -> UserInfo {
    let group = format!("system:serviceaccounts:{namespace}");
    user(
        &service_account_username(namespace, name),
        &["system:serviceaccounts", &group],
    )
}

/// Asserts each (verb, target, allowed) for `who`.
fn check(authorizer: &Authorizer, who: &UserInfo, cases: &[(&str, Target<'_>, bool)]) {
    for (verb, target, want) in cases {
        let attributes = Attributes {
            user: who,
            verb,
            target: *target,
        };
        let decision = authorizer.authorize(&attributes);
        assert_eq!(
            decision.allowed, *want,
            "{} {verb} {target:?}: {decision:?}",
            who.username
        );
    }
}

#[test]
fn cilium_agent() {
    let agent = service_account(CILIUM_NAMESPACE, CILIUM_AGENT_ACCOUNT);
    check(
        &Authorizer::new(policy()),
        &agent,
        &[
            ("list", res("cilium.io/ciliumnodes", "", ""), true),
            ("watch", res("cilium.io/ciliumnodes", "", ""), true),
            ("create", res("cilium.io/ciliumnodes", "", ""), true),
            (
                "update",
                res("cilium.io/ciliumnodes/status", "", "n1"),
                true,
            ),
            ("delete", res("cilium.io/ciliumnodes", "", "n1"), false),
            (
                "create",
                res("cilium.io/ciliumendpoints", "default", ""),
                true,
            ),
            (
                "delete",
                res("cilium.io/ciliumendpoints", "default", "p"),
                true,
            ),
            ("create", res("cilium.io/ciliumidentities", "", ""), true),
            ("delete", res("cilium.io/ciliumidentities", "", "1"), false),
            (
                "list",
                res("cilium.io/ciliumnetworkpolicies", "default", ""),
                true,
            ),
            (
                "get",
                res("apiextensions.k8s.io/customresourcedefinitions", "", "x"),
                true,
            ),
            ("watch", res("/pods", "", ""), true),
            ("delete", res("/pods", "default", "p"), false),
            ("get", res("/secrets", "default", "s"), false),
            ("patch", res("/nodes", "", "n1"), false),
            (
                "get",
                res("/configmaps", CILIUM_NAMESPACE, "cilium-config"),
                true,
            ),
            ("get", res("/configmaps", "default", "x"), false),
            ("get", path("/version"), true),
        ],
    );
}

#[test]
fn cilium_operator() {
    let operator = service_account(CILIUM_NAMESPACE, CILIUM_OPERATOR_ACCOUNT);
    let crds = "apiextensions.k8s.io/customresourcedefinitions";
    check(
        &Authorizer::new(policy()),
        &operator,
        &[
            ("delete", res("/pods", "kube-system", "coredns-1"), true),
            (
                "patch",
                res("/configmaps", CILIUM_NAMESPACE, "cilium-config"),
                true,
            ),
            (
                "patch",
                res("/configmaps", CILIUM_NAMESPACE, "other"),
                false,
            ),
            ("patch", res("/nodes", "", "n1"), true),
            ("patch", res("/nodes/status", "", "n1"), true),
            ("update", res(crds, "", "ciliumnodes.cilium.io"), true),
            ("update", res(crds, "", "widgets.example.com"), false),
            ("create", res(crds, "", ""), true),
            (
                "create",
                res("coordination.k8s.io/leases", "kube-system", ""),
                true,
            ),
            (
                "update",
                res("coordination.k8s.io/leases", "kube-system", "l"),
                true,
            ),
            ("delete", res("cilium.io/ciliumidentities", "", "1"), true),
            ("create", res("cilium.io/ciliumidentities", "", ""), false),
            ("delete", res("cilium.io/ciliumnodes", "", "n1"), true),
            (
                "update",
                res("cilium.io/ciliumnodes/status", "", "n1"),
                true,
            ),
            ("get", res("/secrets", "default", "s"), false),
            (
                "get",
                res("/configmaps", CILIUM_NAMESPACE, "cilium-config"),
                false,
            ),
        ],
    );
}

#[test]
fn kubelets() {
    let node = user("system:node:n1", &[NODES_GROUP]);
    check(
        &Authorizer::new(policy()),
        &node,
        &[
            ("create", res("/nodes", "", "")),
            ("patch", res("/nodes/status", "", "n1")),
            ("update", res("/pods/status", "default", "p")),
            ("delete", res("/pods", "default", "p")),
            ("watch", res("/pods", "", "")),
            ("create", res("/events", "default", "")),
            ("get", res("/secrets", "default", "s")),
            ("watch", res("/configmaps", "default", "")),
            ("create", res("/serviceaccounts/token", "default", "sa")),
            (
                "create",
                res("coordination.k8s.io/leases", "kube-node-lease", ""),
            ),
            (
                "update",
                res("coordination.k8s.io/leases", "kube-node-lease", "n1"),
            ),
        ]
        .map(|(verb, target)| (verb, target, true)),
    );
    check(
        &Authorizer::new(policy()),
        &node,
        &[
            ("delete", res("/nodes", "", "n1"), false),
            ("update", res("/pods", "default", "p"), false),
            ("create", res("/pods/exec", "default", "p"), false),
            ("list", res("cilium.io/ciliumnodes", "", ""), false),
        ],
    );
}

#[test]
fn anonymous_authenticated_and_masters() {
    let authorizer = Authorizer::new(policy());
    let ssar = res("authorization.k8s.io/selfsubjectaccessreviews", "", "");
    let ssrr = res("authorization.k8s.io/selfsubjectrulesreviews", "", "");
    let whoami = res("authentication.k8s.io/selfsubjectreviews", "", "");
    check(
        &authorizer,
        &UserInfo::anonymous(),
        &[
            ("get", path("/healthz"), true),
            ("get", path("/livez"), true),
            ("get", path("/readyz"), true),
            ("get", path("/version"), true),
            ("get", path("/api"), false),
            ("get", path("/apis"), false),
            ("get", path("/openapi/v3"), false),
            ("create", ssar, false),
            ("list", res("/pods", "default", ""), false),
        ],
    );
    check(
        &authorizer,
        &user("alice", &[]),
        &[
            ("get", path("/api"), true),
            ("get", path("/api/v1"), true),
            ("get", path("/apis/apps/v1"), true),
            ("get", path("/openapi/v3/apis/apps/v1"), true),
            ("get", path("/version/"), true),
            ("get", path("/metrics"), false),
            ("post", path("/api"), false),
            ("create", ssar, true),
            ("create", ssrr, true),
            ("create", whoami, true),
            ("list", res("/pods", "default", ""), false),
            ("list", res("/namespaces", "", ""), false),
        ],
    );
    check(
        &authorizer,
        &user("admin", &[SUPERUSER_GROUP]),
        &[
            ("delete", res("/pods", "default", "p"), true),
            (
                "escalate",
                res("rbac.authorization.k8s.io/clusterroles", "", "x"),
                true,
            ),
            ("get", path("/metrics"), true),
        ],
    );
}

#[test]
fn view_edit_admin() {
    let mut policy = policy();
    for (user, role) in [("vera", "view"), ("ed", "edit"), ("ada", "admin")] {
        policy.role_bindings.push(RoleBinding {
            metadata: ObjectMeta {
                name: Some(format!("{user}-{role}")),
                namespace: Some("team".into()),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: RBAC_GROUP.into(),
                kind: "ClusterRole".into(),
                name: role.into(),
            },
            subjects: Some(vec![Subject {
                kind: "User".into(),
                name: user.into(),
                ..Subject::default()
            }]),
        });
    }
    let authorizer = Authorizer::new(policy);
    let table = [
        // verb, target, view, edit, admin
        ("list", res("/pods", "team", ""), [true, true, true]),
        ("get", res("/pods/log", "team", "p"), [true, true, true]),
        (
            "list",
            res("apps/deployments", "team", ""),
            [true, true, true],
        ),
        ("list", res("/pods", "other", ""), [false, false, false]),
        ("get", res("/secrets", "team", "s"), [false, true, true]),
        (
            "create",
            res("apps/deployments", "team", ""),
            [false, true, true],
        ),
        (
            "update",
            res("apps/deployments/scale", "team", "d"),
            [false, true, true],
        ),
        (
            "create",
            res("/pods/exec", "team", "p"),
            [false, true, true],
        ),
        (
            "create",
            res("rbac.authorization.k8s.io/rolebindings", "team", ""),
            [false, false, true],
        ),
        (
            "update",
            res("/resourcequotas", "team", "q"),
            [false, false, false],
        ),
    ];
    for (verb, target, allowed) in table {
        for (who, want) in ["vera", "ed", "ada"].into_iter().zip(allowed) {
            check(&authorizer, &user(who, &[]), &[(verb, target, want)]);
        }
    }
}

#[test]
fn every_binding_references_a_bootstrap_role() {
    let policy = policy();
    let cluster_roles: BTreeSet<_> = policy
        .cluster_roles
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    let roles: BTreeSet<_> = policy
        .roles
        .iter()
        .map(|r| (r.metadata.namespace.clone(), r.metadata.name.clone()))
        .collect();
    for binding in &policy.cluster_role_bindings {
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert!(
            cluster_roles.contains(&binding.role_ref.name),
            "{binding:?}"
        );
    }
    for binding in &policy.role_bindings {
        let role = &binding.role_ref;
        let found = match role.kind.as_str() {
            "Role" => {
                roles.contains(&(binding.metadata.namespace.clone(), Some(role.name.clone())))
            }
            _ => cluster_roles.contains(&role.name),
        };
        assert!(found, "{binding:?}");
    }
    let authorizer = Authorizer::new(policy);
    let everyone = user("everyone", &[UNAUTHENTICATED_GROUP, NODES_GROUP]);
    let status = authorizer.rules_for(&everyone, CILIUM_NAMESPACE);
    assert_eq!(status.evaluation_error, None);
}

#[test]
fn objects_are_valid_api_objects() {
    fn decode<T: serde::Serialize>(api_version: &str, kind: &str, object: &T) {
        let value = serde_json::to_value(object).unwrap();
        let decoded = api::lookup_gvk(api_version, kind)
            .unwrap()
            .decode(value.clone());
        assert!(decoded.is_ok(), "{kind} {value}: {decoded:?}");
    }
    let policy = policy();
    let rbac = "rbac.authorization.k8s.io/v1";
    policy.roles.iter().for_each(|o| decode(rbac, "Role", o));
    policy
        .cluster_roles
        .iter()
        .for_each(|o| decode(rbac, "ClusterRole", o));
    policy
        .role_bindings
        .iter()
        .for_each(|o| decode(rbac, "RoleBinding", o));
    policy
        .cluster_role_bindings
        .iter()
        .for_each(|o| decode(rbac, "ClusterRoleBinding", o));
    service_accounts()
        .iter()
        .for_each(|o| decode("v1", "ServiceAccount", o));
    let names: Vec<_> = policy
        .cluster_roles
        .iter()
        .filter_map(|r| r.metadata.name.as_deref())
        .collect();
    let unique: BTreeSet<_> = names.iter().collect();
    assert_eq!(names.len(), unique.len(), "duplicate ClusterRoles");
    for name in [
        "cluster-admin",
        "system:discovery",
        "system:basic-user",
        "system:public-info-viewer",
        "system:node",
        "admin",
        "edit",
        "view",
        "cilium",
        "cilium-operator",
    ] {
        assert!(names.contains(&name), "{name}");
    }
}
