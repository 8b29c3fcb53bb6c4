//! The RBAC policy every lab cluster starts with, as data: the API server
//! creates each object at start-up if absent (existing objects are left
//! alone, so edits survive restarts).
//!
//! Kubernetes defaults (label `kubernetes.io/bootstrapping: rbac-defaults`):
//!
//! | ClusterRole | Bound to |
//! |---|---|
//! | `cluster-admin` (everything) | group `system:masters` |
//! | `system:discovery` (`/api`, `/apis`, `/openapi`, `/version`, health) | `system:authenticated` |
//! | `system:basic-user` (self-subject reviews) | `system:authenticated` |
//! | `system:public-info-viewer` (`/version`, health) | `system:authenticated`, `system:unauthenticated` |
//! | `system:node` (what the lab's kubelets do) | group `system:nodes` |
//! | `admin`, `edit`, `view` (subsets of upstream's) | nobody; bind them with RoleBindings |
//!
//! Upstream binds `system:node` to nobody and authorizes kubelets with the
//! Node authorizer; the lab has no Node authorizer, so the group binding
//! stands in for it.
//!
//! Cilium (label `app.kubernetes.io/part-of: cilium`): the ClusterRoles
//! `cilium` and `cilium-operator` with the rules Cilium's Helm chart grants
//! with its default values, the Role `cilium-config-agent` (ConfigMaps in
//! `kube-system`), bound to the ServiceAccounts `kube-system/cilium` and
//! `kube-system/cilium-operator` (see [`service_accounts`]).

use std::collections::BTreeMap;

use api::k8s_openapi::api::core::v1::ServiceAccount;
use api::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::authn::{AUTHENTICATED_GROUP, UNAUTHENTICATED_GROUP};
use super::rbac::{Policy, SUPERUSER_GROUP};

/// The group of the lab's kubelets (client certificates `O=system:nodes`,
/// `CN=system:node:<name>`).
pub const NODES_GROUP: &str = "system:nodes";
/// The namespace Cilium runs in.
pub const CILIUM_NAMESPACE: &str = "kube-system";
/// The ServiceAccount of the Cilium agent.
pub const CILIUM_AGENT_ACCOUNT: &str = "cilium";
/// The ServiceAccount of the Cilium operator.
pub const CILIUM_OPERATOR_ACCOUNT: &str = "cilium-operator";

/// The RBAC group name in role references.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Every bootstrap Role, ClusterRole, RoleBinding and ClusterRoleBinding.
pub fn policy() -> Policy {
    Policy {
        roles: ROLES.iter().map(RoleSpec::role).collect(),
        cluster_roles: CLUSTER_ROLES.iter().map(RoleSpec::cluster_role).collect(),
        role_bindings: ROLE_BINDINGS
            .iter()
            .map(BindingSpec::role_binding)
            .collect(),
        cluster_role_bindings: CLUSTER_ROLE_BINDINGS
            .iter()
            .map(BindingSpec::cluster_role_binding)
            .collect(),
    }
}

/// The ServiceAccounts the Cilium bindings name, to create if absent.
pub fn service_accounts() -> Vec<ServiceAccount> {
    [CILIUM_AGENT_ACCOUNT, CILIUM_OPERATOR_ACCOUNT]
        .into_iter()
        .map(|name| ServiceAccount {
            metadata: Owner::Cilium.meta(CILIUM_NAMESPACE, name),
            ..ServiceAccount::default()
        })
        .collect()
}

/// Who an object belongs to: decides its labels and annotations.
#[derive(Debug, Clone, Copy)]
enum Owner {
    Kubernetes,
    Cilium,
}

impl Owner {
    fn meta(self, namespace: &str, name: &str) -> ObjectMeta {
        let map = |pairs: &[(&str, &str)]| {
            let map: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (!map.is_empty()).then_some(map)
        };
        let (labels, annotations): (&[_], &[_]) = match self {
            Self::Kubernetes => (
                &[("kubernetes.io/bootstrapping", "rbac-defaults")],
                &[("rbac.authorization.kubernetes.io/autoupdate", "true")],
            ),
            Self::Cilium => (&[("app.kubernetes.io/part-of", "cilium")], &[]),
        };
        ObjectMeta {
            name: Some(name.into()),
            namespace: (!namespace.is_empty()).then(|| namespace.into()),
            labels: map(labels),
            annotations: map(annotations),
            ..ObjectMeta::default()
        }
    }
}

/// One policy rule as static data; empty lists are absent fields.
#[derive(Debug, Clone, Copy)]
struct Rule {
    groups: &'static [&'static str],
    resources: &'static [&'static str],
    names: &'static [&'static str],
    urls: &'static [&'static str],
    verbs: &'static [&'static str],
}

/// `verbs` on `resources` of `groups`.
const fn rule(
    groups: &'static [&'static str],
    resources: &'static [&'static str],
    verbs: &'static [&'static str],
) -> Rule {
    Rule {
        groups,
        resources,
        names: &[],
        urls: &[],
        verbs,
    }
}

/// [`rule`] restricted to objects named `names`.
const fn named(names: &'static [&'static str], rule: Rule) -> Rule {
    Rule { names, ..rule }
}

/// `verbs` on the non-resource `urls`.
const fn urls(urls: &'static [&'static str], verbs: &'static [&'static str]) -> Rule {
    Rule {
        groups: &[],
        resources: &[],
        names: &[],
        urls,
        verbs,
    }
}

impl Rule {
    fn policy_rule(&self) -> PolicyRule {
        let list = |items: &[&str]| {
            (!items.is_empty()).then(|| items.iter().map(|s| s.to_string()).collect())
        };
        PolicyRule {
            api_groups: list(self.groups),
            resources: list(self.resources),
            resource_names: list(self.names),
            non_resource_urls: list(self.urls),
            verbs: self.verbs.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// A Role or ClusterRole: its rules are the concatenation of `rules`.
struct RoleSpec {
    namespace: &'static str,
    name: &'static str,
    owner: Owner,
    rules: &'static [&'static [Rule]],
}

impl RoleSpec {
    fn rules(&self) -> Option<Vec<PolicyRule>> {
        Some(
            self.rules
                .iter()
                .copied()
                .flatten()
                .map(Rule::policy_rule)
                .collect(),
        )
    }

    fn role(&self) -> Role {
        Role {
            metadata: self.owner.meta(self.namespace, self.name),
            rules: self.rules(),
        }
    }

    fn cluster_role(&self) -> ClusterRole {
        ClusterRole {
            metadata: self.owner.meta("", self.name),
            rules: self.rules(),
            ..ClusterRole::default()
        }
    }
}

/// A binding subject.
#[derive(Debug, Clone, Copy)]
enum Who {
    Group(&'static str),
    /// Namespace and name.
    ServiceAccount(&'static str, &'static str),
}

impl Who {
    fn subject(self) -> Subject {
        match self {
            Self::Group(name) => Subject {
                api_group: Some(RBAC_GROUP.into()),
                kind: "Group".into(),
                name: name.into(),
                namespace: None,
            },
            Self::ServiceAccount(namespace, name) => Subject {
                api_group: None,
                kind: "ServiceAccount".into(),
                name: name.into(),
                namespace: Some(namespace.into()),
            },
        }
    }
}

/// A RoleBinding or ClusterRoleBinding.
struct BindingSpec {
    namespace: &'static str,
    name: &'static str,
    owner: Owner,
    /// `Role` or `ClusterRole`.
    role_kind: &'static str,
    role: &'static str,
    subjects: &'static [Who],
}

impl BindingSpec {
    fn role_ref(&self) -> RoleRef {
        RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: self.role_kind.into(),
            name: self.role.into(),
        }
    }

    fn subjects(&self) -> Option<Vec<Subject>> {
        Some(self.subjects.iter().map(|who| who.subject()).collect())
    }

    fn role_binding(&self) -> RoleBinding {
        RoleBinding {
            metadata: self.owner.meta(self.namespace, self.name),
            role_ref: self.role_ref(),
            subjects: self.subjects(),
        }
    }

    fn cluster_role_binding(&self) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: self.owner.meta("", self.name),
            role_ref: self.role_ref(),
            subjects: self.subjects(),
        }
    }
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "delete",
    "deletecollection",
    "patch",
    "update",
];

const CLUSTER_ADMIN: &[Rule] = &[rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])];

const DISCOVERY: &[Rule] = &[urls(
    &[
        "/livez",
        "/readyz",
        "/healthz",
        "/version",
        "/version/",
        "/openapi",
        "/openapi/*",
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
    ],
    &["get"],
)];

const BASIC_USER: &[Rule] = &[
    rule(
        &["authorization.k8s.io"],
        &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        &["create"],
    ),
    rule(
        &["authentication.k8s.io"],
        &["selfsubjectreviews"],
        &["create"],
    ),
];

const PUBLIC_INFO_VIEWER: &[Rule] = &[urls(
    &["/livez", "/readyz", "/healthz", "/version", "/version/"],
    &["get"],
)];

/// `view`: read the usual namespaced objects, except Secrets.
const VIEW: &[Rule] = &[
    rule(
        &[""],
        &[
            "bindings",
            "configmaps",
            "endpoints",
            "events",
            "limitranges",
            "namespaces/status",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
            "pods",
            "pods/log",
            "pods/status",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "replicationcontrollers/status",
            "resourcequotas",
            "resourcequotas/status",
            "serviceaccounts",
            "services",
            "services/status",
        ],
        READ,
    ),
    rule(&[""], &["namespaces"], READ),
    rule(&["discovery.k8s.io"], &["endpointslices"], READ),
    rule(
        &["apps"],
        &[
            "controllerrevisions",
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "statefulsets",
            "statefulsets/scale",
            "statefulsets/status",
        ],
        READ,
    ),
    rule(
        &["autoscaling"],
        &[
            "horizontalpodautoscalers",
            "horizontalpodautoscalers/status",
        ],
        READ,
    ),
    rule(
        &["batch"],
        &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
        READ,
    ),
    rule(
        &["networking.k8s.io"],
        &["ingresses", "ingresses/status", "networkpolicies"],
        READ,
    ),
    rule(
        &["policy"],
        &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        READ,
    ),
];

/// What `edit` adds to `view`: write workloads, read Secrets and the
/// escalating pod subresources, impersonate ServiceAccounts.
const EDIT: &[Rule] = &[
    rule(
        &[""],
        &[
            "pods",
            "pods/attach",
            "pods/exec",
            "pods/portforward",
            "pods/proxy",
        ],
        WRITE,
    ),
    rule(&[""], &["pods/eviction"], &["create"]),
    rule(
        &[""],
        &[
            "configmaps",
            "events",
            "persistentvolumeclaims",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "secrets",
            "serviceaccounts",
            "services",
            "services/proxy",
        ],
        WRITE,
    ),
    rule(&[""], &["serviceaccounts/token"], &["create"]),
    rule(
        &[""],
        &[
            "pods/attach",
            "pods/exec",
            "pods/portforward",
            "pods/proxy",
            "secrets",
            "services/proxy",
        ],
        READ,
    ),
    rule(&[""], &["serviceaccounts"], &["impersonate"]),
    rule(
        &["apps"],
        &[
            "daemonsets",
            "deployments",
            "deployments/rollback",
            "deployments/scale",
            "replicasets",
            "replicasets/scale",
            "statefulsets",
            "statefulsets/scale",
        ],
        WRITE,
    ),
    rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
    rule(&["batch"], &["cronjobs", "jobs"], WRITE),
    rule(
        &["networking.k8s.io"],
        &["ingresses", "networkpolicies"],
        WRITE,
    ),
    rule(&["policy"], &["poddisruptionbudgets"], WRITE),
];

/// What `admin` adds to `edit`: manage RBAC inside the namespace.
const ADMIN: &[Rule] = &[
    rule(
        &["authorization.k8s.io"],
        &["localsubjectaccessreviews"],
        &["create"],
    ),
    rule(
        &["rbac.authorization.k8s.io"],
        &["rolebindings", "roles"],
        READ_WRITE,
    ),
];

/// `system:node`: what a kubelet does (register and heartbeat its Node and
/// Lease, run and report pods, read what their volumes and env need).
const NODE: &[Rule] = &[
    rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
    rule(
        &["authorization.k8s.io"],
        &["localsubjectaccessreviews", "subjectaccessreviews"],
        &["create"],
    ),
    rule(&[""], &["services"], READ),
    rule(
        &[""],
        &["nodes"],
        &["create", "get", "list", "watch", "patch", "update"],
    ),
    rule(&[""], &["nodes/status"], &["patch", "update"]),
    rule(&[""], &["events"], &["create", "patch", "update"]),
    rule(
        &[""],
        &["pods"],
        &["get", "list", "watch", "create", "delete"],
    ),
    rule(&[""], &["pods/status"], &["patch", "update"]),
    rule(&[""], &["pods/eviction"], &["create"]),
    rule(&[""], &["configmaps", "secrets"], READ),
    rule(
        &[""],
        &["persistentvolumeclaims", "persistentvolumes"],
        &["get"],
    ),
    rule(&[""], &["endpoints"], &["get"]),
    rule(&[""], &["serviceaccounts/token"], &["create"]),
    rule(
        &["coordination.k8s.io"],
        &["leases"],
        &["create", "delete", "get", "patch", "update"],
    ),
];

/// The Cilium agent's ClusterRole (Helm chart defaults: no node
/// annotation, no L2 announcements, no Kubernetes secrets backend).
const CILIUM_AGENT: &[Rule] = &[
    rule(&["networking.k8s.io"], &["networkpolicies"], READ),
    rule(&["discovery.k8s.io"], &["endpointslices"], READ),
    rule(
        &[""],
        &["namespaces", "services", "pods", "endpoints", "nodes"],
        READ,
    ),
    rule(
        &["apiextensions.k8s.io"],
        &["customresourcedefinitions"],
        &["list", "watch", "get"],
    ),
    rule(
        &["cilium.io"],
        &[
            "ciliumloadbalancerippools",
            "ciliumbgppeeringpolicies",
            "ciliumclusterwideenvoyconfigs",
            "ciliumclusterwidenetworkpolicies",
            "ciliumegressgatewaypolicies",
            "ciliumendpoints",
            "ciliumendpointslices",
            "ciliumenvoyconfigs",
            "ciliumidentities",
            "ciliumlocalredirectpolicies",
            "ciliumnetworkpolicies",
            "ciliumnodes",
            "ciliumnodeconfigs",
            "ciliumcidrgroups",
            "ciliuml2announcementpolicies",
        ],
        &["list", "watch"],
    ),
    rule(
        &["cilium.io"],
        &["ciliumidentities", "ciliumendpoints", "ciliumnodes"],
        &["create"],
    ),
    rule(&["cilium.io"], &["ciliumidentities"], &["update"]),
    rule(&["cilium.io"], &["ciliumendpoints"], &["delete", "get"]),
    rule(
        &["cilium.io"],
        &["ciliumnodes", "ciliumnodes/status"],
        &["get", "update"],
    ),
    rule(
        &["cilium.io"],
        &[
            "ciliumnetworkpolicies/status",
            "ciliumclusterwidenetworkpolicies/status",
            "ciliumendpoints/status",
            "ciliumendpoints",
            "ciliuml2announcementpolicies/status",
        ],
        &["patch"],
    ),
];

/// The Cilium agent's Role in [`CILIUM_NAMESPACE`]: its configuration.
const CILIUM_CONFIG_AGENT: &[Rule] = &[rule(&[""], &["configmaps"], READ)];

/// The CRDs the Cilium operator may update.
const CILIUM_CRDS: &[&str] = &[
    "ciliumloadbalancerippools.cilium.io",
    "ciliumbgpclusterconfigs.cilium.io",
    "ciliumbgppeerconfigs.cilium.io",
    "ciliumbgpadvertisements.cilium.io",
    "ciliumbgpnodeconfigs.cilium.io",
    "ciliumbgpnodeconfigoverrides.cilium.io",
    "ciliumclusterwideenvoyconfigs.cilium.io",
    "ciliumclusterwidenetworkpolicies.cilium.io",
    "ciliumegressgatewaypolicies.cilium.io",
    "ciliumendpoints.cilium.io",
    "ciliumendpointslices.cilium.io",
    "ciliumenvoyconfigs.cilium.io",
    "ciliumidentities.cilium.io",
    "ciliumlocalredirectpolicies.cilium.io",
    "ciliumnetworkpolicies.cilium.io",
    "ciliumnodes.cilium.io",
    "ciliumnodeconfigs.cilium.io",
    "ciliumcidrgroups.cilium.io",
    "ciliuml2announcementpolicies.cilium.io",
    "ciliumpodippools.cilium.io",
    "ciliumgatewayclassconfigs.cilium.io",
];

/// The Cilium operator's ClusterRole (Helm chart defaults: node taint
/// removal, NetworkUnavailable, endpoint and node GC, unmanaged-pod
/// restarts, identities managed by the agents; no ingress, Gateway API,
/// BGP secrets or cluster mesh).
const CILIUM_OPERATOR: &[Rule] = &[
    rule(&[""], &["pods"], &["get", "list", "watch", "delete"]),
    named(&["cilium-config"], rule(&[""], &["configmaps"], &["patch"])),
    rule(&[""], &["nodes"], &["list", "watch"]),
    rule(&[""], &["nodes", "nodes/status"], &["patch"]),
    rule(&["discovery.k8s.io"], &["endpointslices"], READ),
    rule(&[""], &["services/status"], &["update", "patch"]),
    rule(&[""], &["namespaces"], READ),
    rule(&[""], &["services"], READ),
    rule(
        &["cilium.io"],
        &["ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies"],
        &[
            "create",
            "update",
            "deletecollection",
            "patch",
            "get",
            "list",
            "watch",
        ],
    ),
    rule(
        &["cilium.io"],
        &[
            "ciliumnetworkpolicies/status",
            "ciliumclusterwidenetworkpolicies/status",
        ],
        &["patch", "update"],
    ),
    rule(
        &["cilium.io"],
        &["ciliumendpoints", "ciliumidentities"],
        &["delete", "list", "watch"],
    ),
    rule(&["cilium.io"], &["ciliumidentities"], &["update"]),
    rule(
        &["cilium.io"],
        &["ciliumnodes"],
        &["create", "update", "get", "list", "watch", "delete"],
    ),
    rule(&["cilium.io"], &["ciliumnodes/status"], &["update"]),
    rule(
        &["cilium.io"],
        &[
            "ciliumendpointslices",
            "ciliumenvoyconfigs",
            "ciliumbgppeerconfigs",
            "ciliumbgpadvertisements",
            "ciliumbgpnodeconfigs",
        ],
        &[
            "create", "update", "get", "list", "watch", "delete", "patch",
        ],
    ),
    rule(
        &["cilium.io"],
        &[
            "ciliumbgpclusterconfigs/status",
            "ciliumbgppeerconfigs/status",
        ],
        &["update"],
    ),
    rule(
        &["apiextensions.k8s.io"],
        &["customresourcedefinitions"],
        &["create", "get", "list", "watch"],
    ),
    named(
        CILIUM_CRDS,
        rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &["update"],
        ),
    ),
    rule(
        &["cilium.io"],
        &[
            "ciliumloadbalancerippools",
            "ciliumpodippools",
            "ciliumbgpclusterconfigs",
            "ciliumbgpnodeconfigoverrides",
            "ciliumbgppeerconfigs",
        ],
        READ,
    ),
    rule(&["cilium.io"], &["ciliumpodippools"], &["create"]),
    rule(
        &["cilium.io"],
        &["ciliumloadbalancerippools/status"],
        &["patch"],
    ),
    rule(
        &["coordination.k8s.io"],
        &["leases"],
        &["create", "get", "update"],
    ),
    rule(
        &["cilium.io"],
        &["ciliumendpointslices"],
        &["deletecollection"],
    ),
];

const fn cluster_role(
    name: &'static str,
    owner: Owner,
    rules: &'static [&'static [Rule]],
) -> RoleSpec {
    RoleSpec {
        namespace: "",
        name,
        owner,
        rules,
    }
}

const CLUSTER_ROLES: &[RoleSpec] = &[
    cluster_role("cluster-admin", Owner::Kubernetes, &[CLUSTER_ADMIN]),
    cluster_role("system:discovery", Owner::Kubernetes, &[DISCOVERY]),
    cluster_role("system:basic-user", Owner::Kubernetes, &[BASIC_USER]),
    cluster_role(
        "system:public-info-viewer",
        Owner::Kubernetes,
        &[PUBLIC_INFO_VIEWER],
    ),
    cluster_role("system:node", Owner::Kubernetes, &[NODE]),
    cluster_role("view", Owner::Kubernetes, &[VIEW]),
    cluster_role("edit", Owner::Kubernetes, &[VIEW, EDIT]),
    cluster_role("admin", Owner::Kubernetes, &[VIEW, EDIT, ADMIN]),
    cluster_role("cilium", Owner::Cilium, &[CILIUM_AGENT]),
    cluster_role("cilium-operator", Owner::Cilium, &[CILIUM_OPERATOR]),
];

const ROLES: &[RoleSpec] = &[RoleSpec {
    namespace: CILIUM_NAMESPACE,
    name: "cilium-config-agent",
    owner: Owner::Cilium,
    rules: &[CILIUM_CONFIG_AGENT],
}];

const fn cluster_binding(
    role: &'static str,
    owner: Owner,
    subjects: &'static [Who],
) -> BindingSpec {
    BindingSpec {
        namespace: "",
        name: role,
        owner,
        role_kind: "ClusterRole",
        role,
        subjects,
    }
}

const CLUSTER_ROLE_BINDINGS: &[BindingSpec] = &[
    cluster_binding(
        "cluster-admin",
        Owner::Kubernetes,
        &[Who::Group(SUPERUSER_GROUP)],
    ),
    cluster_binding(
        "system:discovery",
        Owner::Kubernetes,
        &[Who::Group(AUTHENTICATED_GROUP)],
    ),
    cluster_binding(
        "system:basic-user",
        Owner::Kubernetes,
        &[Who::Group(AUTHENTICATED_GROUP)],
    ),
    cluster_binding(
        "system:public-info-viewer",
        Owner::Kubernetes,
        &[
            Who::Group(AUTHENTICATED_GROUP),
            Who::Group(UNAUTHENTICATED_GROUP),
        ],
    ),
    cluster_binding("system:node", Owner::Kubernetes, &[Who::Group(NODES_GROUP)]),
    cluster_binding(
        "cilium",
        Owner::Cilium,
        &[Who::ServiceAccount(CILIUM_NAMESPACE, CILIUM_AGENT_ACCOUNT)],
    ),
    cluster_binding(
        "cilium-operator",
        Owner::Cilium,
        &[Who::ServiceAccount(
            CILIUM_NAMESPACE,
            CILIUM_OPERATOR_ACCOUNT,
        )],
    ),
];

const ROLE_BINDINGS: &[BindingSpec] = &[BindingSpec {
    namespace: CILIUM_NAMESPACE,
    name: "cilium-config-agent",
    owner: Owner::Cilium,
    role_kind: "Role",
    role: "cilium-config-agent",
    subjects: &[Who::ServiceAccount(CILIUM_NAMESPACE, CILIUM_AGENT_ACCOUNT)],
}];

#[cfg(test)]
mod tests;
