//! Access control at the edge of the server: authenticate a request's
//! credentials (client certificate, service-account token), check that a
//! token's ServiceAccount still exists, and authorize with RBAC over the
//! cluster's Roles and bindings, kept current by watching them. The
//! bootstrap policy and the Cilium ServiceAccounts are stored at start-up
//! when absent.

use std::sync::{Arc, RwLock};

use api::Object;
use api::k8s_openapi::api::core::v1::ServiceAccount;
use api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use futures::StreamExt;
use store::{Change, Store};
use toolkit::cache::Cache;

use super::authn::{Authenticated, Authenticator, Credentials, UserInfo};
use super::bootstrap;
use super::rbac::{Attributes, Authorizer, Forbidden, Policy, ResourceAttributes, Target};
use super::status::{ApiError, ApiResult};

/// Authentication and authorization of one server.
pub struct Access {
    authenticator: Authenticator,
    authorizer: Arc<RwLock<Arc<Authorizer>>>,
    store: Store,
}

impl Access {
    /// Access control over `store`'s RBAC objects (the bootstrap policy
    /// until they are read).
    pub fn new(store: Store, authenticator: Authenticator) -> Self {
        Self {
            authenticator,
            authorizer: Arc::new(RwLock::new(Arc::new(Authorizer::new(bootstrap::policy())))),
            store,
        }
    }

    /// Store the bootstrap policy and ServiceAccounts, then keep the
    /// authorizer current with the cluster's RBAC objects (a task that
    /// runs for the server's life).
    /// Retried in the background until the store answers.
    pub fn start(&self) {
        let (store, slot) = (self.store.clone(), self.authorizer.clone());
        tokio::spawn(async move {
            toolkit::retry("storing the bootstrap RBAC policy", || {
                store_bootstrap(&store)
            })
            .await;
            follow_policy(store, slot).await;
        });
    }

    /// Who sent a request; 401 when nobody valid.
    pub async fn authenticate(&self, credentials: &Credentials<'_>) -> ApiResult<UserInfo> {
        let Authenticated {
            user,
            service_account,
        } = self
            .authenticator
            .authenticate(credentials, jiff::Timestamp::now())
            .map_err(|_| ApiError::unauthorized())?;
        if let Some(claims) = service_account {
            let sa = self
                .store
                .get::<ServiceAccount>(Some(&claims.namespace), &claims.serviceaccount.name)
                .await
                .map_err(ApiError::unavailable)?;
            let uid_matches = sa.as_ref().is_some_and(|sa| {
                claims.serviceaccount.uid.is_empty()
                    || sa.metadata.uid.as_deref() == Some(claims.serviceaccount.uid.as_str())
            });
            if !uid_matches {
                return Err(ApiError::unauthorized());
            }
        }
        Ok(user)
    }

    /// Authorize `verb` on a resource; 403 with upstream's message.
    pub fn authorize(
        &self,
        user: &UserInfo,
        verb: &str,
        resource: ResourceAttributes<'_>,
    ) -> ApiResult<()> {
        self.decide(user, verb, Target::Resource(resource))
    }

    /// Authorize a `get` of a non-resource path (discovery, version).
    pub fn authorize_path(&self, user: &UserInfo, path: &str) -> ApiResult<()> {
        self.decide(user, "get", Target::NonResource { path })
    }

    fn decide(&self, user: &UserInfo, verb: &str, target: Target<'_>) -> ApiResult<()> {
        let authorizer = self.authorizer.read().expect("authorizer lock").clone();
        let attributes = Attributes { user, verb, target };
        let decision = authorizer.authorize(&attributes);
        if decision.allowed {
            return Ok(());
        }
        let forbidden = Forbidden::new(&attributes, &decision.reason);
        Err(ApiError::forbidden(forbidden.message))
    }
}

/// Create every bootstrap object that does not exist.
async fn store_bootstrap(store: &Store) -> store::Result<()> {
    let policy = bootstrap::policy();
    create_missing(store, &policy.cluster_roles).await?;
    create_missing(store, &policy.cluster_role_bindings).await?;
    create_missing(store, &policy.roles).await?;
    create_missing(store, &policy.role_bindings).await?;
    create_missing(store, &bootstrap::service_accounts()).await
}

async fn create_missing<T: Object>(store: &Store, objects: &[T]) -> store::Result<()> {
    for obj in objects {
        match store.create(obj).await {
            Ok(_) | Err(store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Rebuild the authorizer whenever a Role, ClusterRole or binding changes.
async fn follow_policy(store: Store, slot: Arc<RwLock<Arc<Authorizer>>>) {
    enum Update {
        Role(Change<Role>),
        ClusterRole(Change<ClusterRole>),
        RoleBinding(Change<RoleBinding>),
        ClusterRoleBinding(Change<ClusterRoleBinding>),
    }
    let mut changes = futures::stream::select_all([
        store.reflect::<Role>(None).map(Update::Role).boxed(),
        store
            .reflect::<ClusterRole>(None)
            .map(Update::ClusterRole)
            .boxed(),
        store
            .reflect::<RoleBinding>(None)
            .map(Update::RoleBinding)
            .boxed(),
        store
            .reflect::<ClusterRoleBinding>(None)
            .map(Update::ClusterRoleBinding)
            .boxed(),
    ]);
    let (mut roles, mut cluster_roles, mut bindings, mut cluster_bindings) = (
        Cache::default(),
        Cache::default(),
        Cache::default(),
        Cache::default(),
    );
    while let Some(update) = changes.next().await {
        match update {
            Update::Role(c) => roles.apply(c),
            Update::ClusterRole(c) => cluster_roles.apply(c),
            Update::RoleBinding(c) => bindings.apply(c),
            Update::ClusterRoleBinding(c) => cluster_bindings.apply(c),
        };
        // A partial view (one kind listed, another not yet) would deny
        // what the bootstrap policy allows: wait for all four lists.
        if !(roles.synced()
            && cluster_roles.synced()
            && bindings.synced()
            && cluster_bindings.synced())
        {
            continue;
        }
        let policy = Policy {
            roles: roles.values().cloned().collect(),
            cluster_roles: cluster_roles.values().cloned().collect(),
            role_bindings: bindings.values().cloned().collect(),
            cluster_role_bindings: cluster_bindings.values().cloned().collect(),
        };
        *slot.write().expect("authorizer lock") = Arc::new(Authorizer::new(policy));
    }
}
