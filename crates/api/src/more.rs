//! Further Kubernetes built-in kinds the API server serves: workloads
//! (DaemonSet), legacy Endpoints, Events, NetworkPolicy, ServiceAccounts,
//! RBAC objects and CustomResourceDefinitions. Their validation checks the
//! metadata; the API server's full rule set is out of scope.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Endpoints, Event, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use crate::core::builtin;
use crate::validation::{self as v, NameRule};

impl_object!(
    DaemonSet,
    builtin(
        "DaemonSet",
        "apps",
        "daemonsets",
        "daemonset",
        &["ds"],
        true
    ),
    |o: &DaemonSet| v::object_meta(&o.metadata, NameRule::Subdomain)
);

impl_object!(
    Endpoints,
    builtin("Endpoints", "", "endpoints", "endpoints", &["ep"], true),
    |o: &Endpoints| v::object_meta(&o.metadata, NameRule::Subdomain)
);

impl_object!(
    Event,
    builtin("Event", "", "events", "event", &["ev"], true),
    |o: &Event| v::object_meta(&o.metadata, NameRule::Subdomain)
);

impl_object!(
    NetworkPolicy,
    builtin(
        "NetworkPolicy",
        "networking.k8s.io",
        "networkpolicies",
        "networkpolicy",
        &["netpol"],
        true
    ),
    |o: &NetworkPolicy| v::object_meta(&o.metadata, NameRule::Subdomain)
);

impl_object!(
    ServiceAccount,
    builtin(
        "ServiceAccount",
        "",
        "serviceaccounts",
        "serviceaccount",
        &["sa"],
        true
    ),
    |o: &ServiceAccount| v::object_meta(&o.metadata, NameRule::Subdomain)
);

impl_object!(
    Role,
    builtin(
        "Role",
        "rbac.authorization.k8s.io",
        "roles",
        "role",
        &[],
        true
    ),
    |o: &Role| v::object_meta(&o.metadata, NameRule::PathSegment)
);

impl_object!(
    ClusterRole,
    builtin(
        "ClusterRole",
        "rbac.authorization.k8s.io",
        "clusterroles",
        "clusterrole",
        &[],
        false
    ),
    |o: &ClusterRole| v::object_meta(&o.metadata, NameRule::PathSegment)
);

impl_object!(
    RoleBinding,
    builtin(
        "RoleBinding",
        "rbac.authorization.k8s.io",
        "rolebindings",
        "rolebinding",
        &[],
        true
    ),
    |o: &RoleBinding| v::object_meta(&o.metadata, NameRule::PathSegment)
);

impl_object!(
    ClusterRoleBinding,
    builtin(
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "clusterrolebinding",
        &[],
        false
    ),
    |o: &ClusterRoleBinding| v::object_meta(&o.metadata, NameRule::PathSegment)
);

impl_object!(
    CustomResourceDefinition,
    builtin(
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "customresourcedefinition",
        &["crd", "crds"],
        false
    ),
    |o: &CustomResourceDefinition| v::object_meta(&o.metadata, NameRule::Subdomain)
);
