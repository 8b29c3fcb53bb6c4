use api::k8s_openapi::api::authorization::v1::{NonResourceAttributes, ResourceAttributes as Ra};
use api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

use super::*;
use crate::apiserver::authn::AUTHENTICATED_GROUP;

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| s.to_string()).collect())
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: strings(groups),
        resources: strings(resources),
        verbs: strings(verbs).unwrap_or_default(),
        ..PolicyRule::default()
    }
}

fn named(names: &[&str], rule: PolicyRule) -> PolicyRule {
    PolicyRule {
        resource_names: strings(names),
        ..rule
    }
}

fn urls(urls: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        non_resource_urls: strings(urls),
        verbs: strings(verbs).unwrap_or_default(),
        ..PolicyRule::default()
    }
}

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: (!namespace.is_empty()).then(|| namespace.into()),
        ..ObjectMeta::default()
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    }
}

/// `User:alice`, `Group:devs`, `ServiceAccount:builder` or
/// `ServiceAccount:kube-system/cilium`.
fn subject(spec: &str) -> Subject {
    let (kind, name) = spec.split_once(':').unwrap();
    let (namespace, name) = match name.split_once('/') {
        Some((namespace, name)) => (Some(namespace.to_string()), name),
        None => (None, name),
    };
    Subject {
        kind: kind.into(),
        name: name.into(),
        namespace,
        ..Subject::default()
    }
}

fn cluster_binding(name: &str, role: &str, subjects: &[&str]) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta("", name),
        role_ref: role_ref("ClusterRole", role),
        subjects: Some(subjects.iter().map(|s| subject(s)).collect()),
    }
}

fn binding(namespace: &str, name: &str, role: (&str, &str), subjects: &[&str]) -> RoleBinding {
    RoleBinding {
        metadata: meta(namespace, name),
        role_ref: role_ref(role.0, role.1),
        subjects: Some(subjects.iter().map(|s| subject(s)).collect()),
    }
}

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
    let groups = [
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{namespace}"),
    ];
    user(
        &service_account_username(namespace, name),
        &groups.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

/// `group/resource[/sub]` in `namespace`, named `name`.
pub(crate) fn res<'a>(gr: &'a str, namespace: &'a str, name: &'a str) -> Target<'a> {
    let (api_group, rest) = gr.split_once('/').unwrap();
    let (resource, subresource) = rest.split_once('/').unwrap_or((rest, ""));
    Target::Resource(ResourceAttributes {
        api_group,
        resource,
        subresource,
        namespace,
        name,
    })
}

/// A non-resource path.
pub(crate) fn path(path: &str) -> Target<'_> {
    Target::NonResource { path }
}

#[test]
fn rule_matching() {
    let read_pods = rule(&[""], &["pods"], &["get", "list"]);
    let cases = [
        // verbs
        (
            "exact verb",
            &read_pods,
            "get",
            res("/pods", "d", "x"),
            true,
        ),
        (
            "other verb",
            &read_pods,
            "delete",
            res("/pods", "d", "x"),
            false,
        ),
        (
            "star verb",
            &rule(&[""], &["pods"], &["*"]),
            "deletecollection",
            res("/pods", "d", ""),
            true,
        ),
        // API groups
        (
            "core is not apps",
            &read_pods,
            "get",
            res("apps/pods", "d", "x"),
            false,
        ),
        (
            "exact group",
            &rule(&["apps"], &["deployments"], &["get"]),
            "get",
            res("apps/deployments", "d", "x"),
            true,
        ),
        (
            "star group",
            &rule(&["*"], &["pods"], &["get"]),
            "get",
            res("metrics.k8s.io/pods", "d", "x"),
            true,
        ),
        (
            "no groups",
            &rule(&[], &["pods"], &["get"]),
            "get",
            res("/pods", "d", "x"),
            false,
        ),
        // resources and subresources
        (
            "other resource",
            &read_pods,
            "get",
            res("/services", "d", "x"),
            false,
        ),
        (
            "pods does not cover pods/exec",
            &rule(&[""], &["pods"], &["*"]),
            "create",
            res("/pods/exec", "d", "x"),
            false,
        ),
        (
            "pods/exec",
            &rule(&[""], &["pods/exec"], &["create"]),
            "create",
            res("/pods/exec", "d", "x"),
            true,
        ),
        (
            "pods/exec is not pods",
            &rule(&[""], &["pods/exec"], &["get"]),
            "get",
            res("/pods", "d", "x"),
            false,
        ),
        (
            "pods/exec is not pods/log",
            &rule(&[""], &["pods/exec"], &["get"]),
            "get",
            res("/pods/log", "d", "x"),
            false,
        ),
        (
            "star covers subresources",
            &rule(&[""], &["*"], &["get"]),
            "get",
            res("/pods/log", "d", "x"),
            true,
        ),
        (
            "*/scale",
            &rule(&["apps"], &["*/scale"], &["update"]),
            "update",
            res("apps/deployments/scale", "d", "x"),
            true,
        ),
        (
            "*/scale is not the resource",
            &rule(&["apps"], &["*/scale"], &["update"]),
            "update",
            res("apps/deployments", "d", "x"),
            false,
        ),
        (
            "*/scale is not status",
            &rule(&["apps"], &["*/scale"], &["update"]),
            "update",
            res("apps/deployments/status", "d", "x"),
            false,
        ),
        (
            "pods/* is no wildcard",
            &rule(&[""], &["pods/*"], &["get"]),
            "get",
            res("/pods/log", "d", "x"),
            false,
        ),
        // resource names
        (
            "listed name",
            &named(&["x"], read_pods.clone()),
            "get",
            res("/pods", "d", "x"),
            true,
        ),
        (
            "other name",
            &named(&["x"], read_pods.clone()),
            "get",
            res("/pods", "d", "y"),
            false,
        ),
        (
            "names never match list",
            &named(&["x"], read_pods.clone()),
            "list",
            res("/pods", "d", ""),
            false,
        ),
        (
            "names never match create",
            &named(&["x"], rule(&[""], &["pods"], &["create"])),
            "create",
            res("/pods", "d", ""),
            false,
        ),
        (
            "no names match create",
            &rule(&[""], &["pods"], &["create"]),
            "create",
            res("/pods", "d", ""),
            true,
        ),
        // non-resource URLs
        (
            "exact url",
            &urls(&["/healthz"], &["get"]),
            "get",
            path("/healthz"),
            true,
        ),
        (
            "exact url only",
            &urls(&["/healthz"], &["get"]),
            "get",
            path("/healthz/etcd"),
            false,
        ),
        (
            "url prefix",
            &urls(&["/healthz/*"], &["get"]),
            "get",
            path("/healthz/etcd"),
            true,
        ),
        (
            "url prefix needs the slash",
            &urls(&["/healthz/*"], &["get"]),
            "get",
            path("/healthz"),
            false,
        ),
        (
            "bare prefix",
            &urls(&["/api*"], &["get"]),
            "get",
            path("/apis/apps"),
            true,
        ),
        (
            "star url",
            &urls(&["*"], &["get"]),
            "get",
            path("/anything"),
            true,
        ),
        (
            "url verb",
            &urls(&["*"], &["get"]),
            "post",
            path("/anything"),
            false,
        ),
        // the two kinds do not mix
        (
            "url rule is not a resource rule",
            &urls(&["*"], &["*"]),
            "get",
            res("/pods", "d", "x"),
            false,
        ),
        (
            "resource rule is not a url rule",
            &rule(&["*"], &["*"], &["*"]),
            "get",
            path("/healthz"),
            false,
        ),
    ];
    for (what, rule, verb, target, want) in cases {
        assert_eq!(rule_allows(rule, verb, &target), want, "{what}");
    }
}

fn fixture() -> Authorizer {
    Authorizer::new(Policy {
        roles: vec![Role {
            metadata: meta("default", "cm-editor"),
            rules: Some(vec![rule(&[""], &["configmaps"], &["*"])]),
        }],
        cluster_roles: vec![
            ClusterRole {
                metadata: meta("", "pod-reader"),
                rules: Some(vec![rule(
                    &[""],
                    &["pods", "pods/log"],
                    &["get", "list", "watch"],
                )]),
                ..ClusterRole::default()
            },
            ClusterRole {
                metadata: meta("", "metrics"),
                rules: Some(vec![urls(&["/metrics"], &["get"])]),
                ..ClusterRole::default()
            },
        ],
        role_bindings: vec![
            binding(
                "default",
                "alice-pods",
                ("ClusterRole", "pod-reader"),
                &["User:alice"],
            ),
            binding(
                "default",
                "cm",
                ("Role", "cm-editor"),
                &["ServiceAccount:builder"],
            ),
            binding(
                "default",
                "alice-metrics",
                ("ClusterRole", "metrics"),
                &["User:alice"],
            ),
            binding("kube-system", "cm", ("Role", "cm-editor"), &["User:carol"]),
            binding("kube-system", "odd", ("Secret", "x"), &["User:carol"]),
        ],
        cluster_role_bindings: vec![
            cluster_binding("readers", "pod-reader", &["Group:readers", "User:bob"]),
            cluster_binding(
                "agents",
                "pod-reader",
                &["ServiceAccount:kube-system/cilium"],
            ),
            cluster_binding("no-namespace", "pod-reader", &["ServiceAccount:nobody"]),
            cluster_binding("metrics", "metrics", &["Group:scrapers"]),
            cluster_binding("dangling", "missing", &["Group:dangling"]),
            cluster_binding("odd-kind", "pod-reader", &["Robot:bob"]),
        ],
    })
}

#[test]
fn bindings_grant_to_their_subjects_and_scope() {
    let authorizer = fixture();
    let alice = user("alice", &[]);
    let bob = user("bob", &[]);
    let reader = user("rita", &["readers"]);
    let scraper = user("sam", &["scrapers"]);
    let carol = user("carol", &[]);
    let root = user("root", &[SUPERUSER_GROUP]);
    let builder = service_account("default", "builder");
    let other_builder = service_account("other", "builder");
    let cilium = service_account("kube-system", "cilium");
    let nobody = service_account("default", "nobody");
    let robot = user("robot", &[]);
    let cases = [
        (
            "RoleBinding to a ClusterRole, in its namespace",
            &alice,
            "list",
            res("/pods", "default", ""),
            true,
        ),
        (
            "RoleBinding does not reach other namespaces",
            &alice,
            "list",
            res("/pods", "kube-system", ""),
            false,
        ),
        (
            "RoleBinding does not reach cluster scope",
            &alice,
            "list",
            res("/pods", "", ""),
            false,
        ),
        (
            "RoleBinding grants no paths",
            &alice,
            "get",
            path("/metrics"),
            false,
        ),
        (
            "ClusterRoleBinding to a group, any namespace",
            &reader,
            "watch",
            res("/pods", "kube-system", ""),
            true,
        ),
        (
            "ClusterRoleBinding to a group, cluster scope",
            &reader,
            "list",
            res("/pods", "", ""),
            true,
        ),
        (
            "ClusterRoleBinding to a user",
            &bob,
            "get",
            res("/pods/log", "default", "x"),
            true,
        ),
        (
            "ClusterRoleBinding grants only its rules",
            &bob,
            "delete",
            res("/pods", "default", "x"),
            false,
        ),
        (
            "ClusterRoleBinding grants paths",
            &scraper,
            "get",
            path("/metrics"),
            true,
        ),
        (
            "RoleBinding to a Role",
            &builder,
            "update",
            res("/configmaps", "default", "x"),
            true,
        ),
        (
            "SA subject defaults to the binding's namespace",
            &other_builder,
            "update",
            res("/configmaps", "other", "x"),
            false,
        ),
        (
            "SA in another namespace",
            &other_builder,
            "update",
            res("/configmaps", "default", "x"),
            false,
        ),
        (
            "SA subject with a namespace",
            &cilium,
            "list",
            res("/pods", "", ""),
            true,
        ),
        (
            "SA subject of a ClusterRoleBinding needs a namespace",
            &nobody,
            "list",
            res("/pods", "default", ""),
            false,
        ),
        (
            "Role from another namespace is not found",
            &carol,
            "get",
            res("/configmaps", "kube-system", "x"),
            false,
        ),
        (
            "unknown subject kind",
            &robot,
            "get",
            res("/pods", "default", "x"),
            false,
        ),
        (
            "superuser",
            &root,
            "delete",
            res("apps/deployments", "default", "x"),
            true,
        ),
        ("superuser, paths", &root, "post", path("/anything"), true),
    ];
    for (what, user, verb, target, want) in cases {
        let decision = authorizer.authorize(&Attributes { user, verb, target });
        assert_eq!(decision.allowed, want, "{what}: {decision:?}");
    }
}

#[test]
fn decision_reasons() {
    let authorizer = fixture();
    let alice = user("alice", &[]);
    let reader = user("rita", &["readers"]);
    let builder = service_account("default", "builder");
    let dangling = user("dan", &["dangling"]);
    let carol = user("carol", &[]);
    let root = user("root", &[SUPERUSER_GROUP]);
    let cases = [
        (
            &alice,
            "get",
            res("/pods", "default", "x"),
            r#"RBAC: allowed by RoleBinding "alice-pods/default" of ClusterRole "pod-reader" to User "alice""#,
        ),
        (
            &reader,
            "get",
            res("/pods", "", ""),
            r#"RBAC: allowed by ClusterRoleBinding "readers" of ClusterRole "pod-reader" to Group "readers""#,
        ),
        (
            &builder,
            "get",
            res("/configmaps", "default", "x"),
            r#"RBAC: allowed by RoleBinding "cm/default" of Role "cm-editor" to ServiceAccount "builder/default""#,
        ),
        (&alice, "delete", res("/pods", "default", "x"), ""),
        (&root, "delete", res("/pods", "default", "x"), ""),
        (
            &dangling,
            "get",
            res("/pods", "default", "x"),
            r#"RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found"#,
        ),
        (
            &carol,
            "get",
            res("/pods", "kube-system", "x"),
            r#"RBAC: [role.rbac.authorization.k8s.io "cm-editor" not found, unsupported role reference kind: "Secret"]"#,
        ),
    ];
    for (user, verb, target, want) in cases {
        let decision = authorizer.authorize(&Attributes { user, verb, target });
        assert_eq!(decision.reason, want, "{} {verb} {target:?}", user.username);
    }
}

#[test]
fn forbidden_messages() {
    let anonymous = UserInfo::anonymous();
    let alice = user("alice", &[]);
    let cases = [
        (
            &anonymous,
            "list",
            res("/pods", "default", ""),
            "",
            r#"pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" in the namespace "default""#,
        ),
        (
            &alice,
            "list",
            res("/nodes", "", ""),
            "",
            r#"nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope"#,
        ),
        (
            &alice,
            "get",
            res("apps/deployments", "default", "x"),
            "",
            r#"deployments.apps "x" is forbidden: User "alice" cannot get resource "deployments" in API group "apps" in the namespace "default""#,
        ),
        (
            &alice,
            "create",
            res("/pods/exec", "default", "web"),
            "",
            r#"pods "web" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" in the namespace "default""#,
        ),
        (
            &alice,
            "update",
            res("cilium.io/ciliumnodes/status", "", "n1"),
            "",
            r#"ciliumnodes.cilium.io "n1" is forbidden: User "alice" cannot update resource "ciliumnodes/status" in API group "cilium.io" at the cluster scope"#,
        ),
        (
            &alice,
            "get",
            path("/healthz"),
            "",
            r#"forbidden: User "alice" cannot get path "/healthz""#,
        ),
        (
            &alice,
            "get",
            res("/pods", "default", "x"),
            r#"RBAC: role.rbac.authorization.k8s.io "r" not found"#,
            r#"pods "x" is forbidden: User "alice" cannot get resource "pods" in API group "" in the namespace "default": RBAC: role.rbac.authorization.k8s.io "r" not found"#,
        ),
        (
            &alice,
            "get",
            path("/a\"b\\c\n\u{0}\u{85}é"),
            "",
            r#"forbidden: User "alice" cannot get path "/a\"b\\c\n\x00\u0085é""#,
        ),
    ];
    for (user, verb, target, reason, want) in cases {
        let forbidden = Forbidden::new(&Attributes { user, verb, target }, reason);
        assert_eq!(forbidden.message, want);
    }
}

#[test]
fn forbidden_status() {
    let alice = user("alice", &[]);
    let target = res("apps/deployments", "default", "x");
    let status = Forbidden::new(
        &Attributes {
            user: &alice,
            verb: "delete",
            target,
        },
        "",
    )
    .status();
    assert_eq!(
        status,
        serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "deployments.apps \"x\" is forbidden: User \"alice\" cannot delete resource \"deployments\" in API group \"apps\" in the namespace \"default\"",
            "reason": "Forbidden",
            "details": {"name": "x", "group": "apps", "kind": "deployments"},
            "code": 403,
        })
    );
    let status = Forbidden::new(
        &Attributes {
            user: &alice,
            verb: "get",
            target: path("/x"),
        },
        "",
    )
    .status();
    assert_eq!(status["details"], serde_json::json!({}));
}

#[test]
fn access_reviews() {
    let authorizer = fixture();
    let alice = user("alice", &[]);
    let resource =
        |verb: &str, resource: &str, subresource: Option<&str>| SelfSubjectAccessReviewSpec {
            resource_attributes: Some(Ra {
                namespace: Some("default".into()),
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                subresource: subresource.map(Into::into),
                ..Ra::default()
            }),
            non_resource_attributes: None,
        };
    let allowed = authorizer
        .review(&alice, &resource("list", "pods", None))
        .unwrap();
    assert!(allowed.allowed);
    assert_eq!(allowed.denied, None);
    assert!(allowed.reason.unwrap().contains("alice-pods/default"));
    let denied = authorizer
        .review(&alice, &resource("create", "pods", Some("exec")))
        .unwrap();
    assert_eq!((denied.allowed, denied.reason), (false, None));

    let healthz = SelfSubjectAccessReviewSpec {
        non_resource_attributes: Some(NonResourceAttributes {
            path: Some("/metrics".into()),
            verb: Some("get".into()),
        }),
        resource_attributes: None,
    };
    let scraper = user("sam", &["scrapers"]);
    assert!(authorizer.review(&scraper, &healthz).unwrap().allowed);

    let both = SelfSubjectAccessReviewSpec {
        resource_attributes: resource("get", "pods", None).resource_attributes,
        ..healthz
    };
    assert_eq!(authorizer.review(&alice, &both), Err(ReviewError::Both));
    let neither = SelfSubjectAccessReviewSpec::default();
    assert_eq!(
        authorizer.review(&alice, &neither),
        Err(ReviewError::Neither)
    );
}

#[test]
fn rules_reviews() {
    let authorizer = fixture();
    let cases: [(UserInfo, &str, usize, usize, Option<&str>); 6] = [
        (user("alice", &[]), "default", 1, 1, None),
        (user("alice", &[]), "kube-system", 0, 0, None),
        (user("rita", &["readers"]), "kube-system", 1, 0, None),
        (user("sam", &["scrapers"]), "default", 0, 1, None),
        (user("root", &[SUPERUSER_GROUP]), "default", 1, 1, None),
        (
            user("dan", &["dangling"]),
            "default",
            0,
            0,
            Some(r#"clusterrole.rbac.authorization.k8s.io "missing" not found"#),
        ),
    ];
    for (user, namespace, resource_rules, non_resource_rules, error) in cases {
        let status = authorizer.rules_for(&user, namespace);
        let what = format!("{} in {namespace}: {status:?}", user.username);
        assert_eq!(status.resource_rules.len(), resource_rules, "{what}");
        assert_eq!(
            status.non_resource_rules.len(),
            non_resource_rules,
            "{what}"
        );
        assert_eq!(status.evaluation_error.as_deref(), error, "{what}");
        assert!(!status.incomplete, "{what}");
    }
    let alice = authorizer.rules_for(&user("alice", &[]), "default");
    assert_eq!(
        alice.resource_rules[0].resources,
        strings(&["pods", "pods/log"])
    );
    assert_eq!(
        alice.non_resource_rules[0].non_resource_urls,
        strings(&["/metrics"])
    );
}

#[test]
fn unnamed_objects_are_ignored() {
    let authorizer = Authorizer::new(Policy {
        roles: vec![Role {
            metadata: meta("", "no-namespace"),
            ..Role::default()
        }],
        cluster_roles: vec![ClusterRole::default()],
        role_bindings: vec![binding(
            "",
            "no-namespace",
            ("ClusterRole", "x"),
            &["User:a"],
        )],
        cluster_role_bindings: vec![ClusterRoleBinding::default()],
    });
    assert!(authorizer.roles.is_empty());
    assert!(authorizer.cluster_roles.is_empty());
    assert!(authorizer.role_bindings.is_empty());
    assert!(authorizer.cluster_role_bindings.is_empty());
}
