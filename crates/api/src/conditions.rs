//! Status conditions of built-in objects, read one way everywhere: a pod
//! or node is Ready when its `Ready` condition is `True`.

use k8s_openapi::api::core::v1::{Node, Pod};

/// The pod's `Ready` condition is `True` (a terminating pod may still be
/// Ready: callers that must skip it check `deletionTimestamp`).
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The node's `Ready` condition is `True`.
pub fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus, PodCondition, PodStatus};

    use super::*;

    #[test]
    fn ready_conditions() {
        let mut pod = Pod::default();
        assert!(!pod_is_ready(&pod));
        pod.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert!(pod_is_ready(&pod));
        let node = Node {
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "False".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(!node_is_ready(&node));
    }
}
