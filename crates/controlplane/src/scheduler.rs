//! The scheduler: binds every pending pod (no `spec.nodeName`, not being
//! deleted) to a feasible node, or records why none fits.
//!
//! Feasible = the Node exists, is not cordoned (`spec.unschedulable`), its
//! Ready condition is not `False`, it matches `spec.nodeSelector`, and no
//! required pod anti-affinity (the pod's own terms, or terms of pods
//! already there) forbids it. Among feasible nodes the pod goes to the one
//! with the fewest pods of the same owner, then fewest pods, then by name.
//! Owns `spec.nodeName` and the `PodScheduled` condition of pending pods;
//! nothing else. Taints, node affinity and resources are not modelled.

use std::collections::BTreeMap;

use api::k8s_openapi::api::core::v1::{Node, Pod, PodAffinityTerm, PodCondition};
use futures::StreamExt;
use store::Store;

use crate::Error;
use crate::cache::{Cache, Pacer, Pass, feed};
use crate::meta::{
    controller_of, creation_order, key_of, label_selector_matches, labels, map_selector_matches,
    now, pod_is_finished, pod_is_terminating, pod_node,
};

/// Label key whose value is the node's name (the usual anti-affinity
/// topology); nodes lacking the label fall back to their name.
const HOSTNAME_KEY: &str = "kubernetes.io/hostname";

/// Where one pending pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Bind to this node.
    Bind(String),
    /// No node fits; the message says why (`0/3 nodes are available: ...`).
    Unschedulable(String),
}

/// Why a node was filtered out (the text follows kube-scheduler's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Misfit {
    Cordoned,
    NotReady,
    Selector,
    AntiAffinity,
}

impl Misfit {
    fn text(self) -> &'static str {
        match self {
            Self::Cordoned => "node(s) were unschedulable",
            Self::NotReady => "node(s) were not ready",
            Self::Selector => "node(s) didn't match Pod's node affinity/selector",
            Self::AntiAffinity => "node(s) didn't match pod anti-affinity rules",
        }
    }
}

fn wants_default_scheduler(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .is_none_or(|n| n.is_empty() || n == "default-scheduler")
}

/// Pods this scheduler must place.
fn is_pending(pod: &Pod) -> bool {
    pod_node(pod).is_none()
        && !pod_is_terminating(pod)
        && !pod_is_finished(pod)
        && wants_default_scheduler(pod)
}

fn required_anti_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[])
}

fn topology_value<'n>(node: &'n Node, key: &str) -> Option<&'n str> {
    labels(&node.metadata)
        .get(key)
        .map(String::as_str)
        .or_else(|| {
            (key == HOSTNAME_KEY)
                .then_some(node.metadata.name.as_deref())
                .flatten()
        })
}

/// Whether `term` (declared by a pod in `owner_ns`) selects `other`.
fn term_selects(term: &PodAffinityTerm, owner_ns: &str, other: &Pod) -> bool {
    let other_ns = other.metadata.namespace.as_deref().unwrap_or("default");
    let all_namespaces = term.namespace_selector.as_ref().is_some_and(|s| {
        s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
    });
    let ns_ok = match term.namespaces.as_deref() {
        _ if all_namespaces => true,
        Some(list) if !list.is_empty() => list.iter().any(|n| n == other_ns),
        _ => owner_ns == other_ns,
    };
    ns_ok
        && term
            .label_selector
            .as_ref()
            .is_some_and(|sel| label_selector_matches(sel, labels(&other.metadata)))
}

/// The scheduler's view while planning: nodes by name and pods per node
/// (including pods placed earlier in the same pass).
struct View<'a> {
    nodes: BTreeMap<&'a str, &'a Node>,
    placed: Vec<(String, &'a Pod)>,
}

impl<'a> View<'a> {
    fn same_domain(&self, a: &str, b: &str, key: &str) -> bool {
        match (self.nodes.get(a), self.nodes.get(b)) {
            (Some(na), Some(nb)) => {
                matches!((topology_value(na, key), topology_value(nb, key)), (Some(x), Some(y)) if x == y)
            }
            _ => key == HOSTNAME_KEY && a == b,
        }
    }

    fn anti_affinity_allows(&self, pod: &Pod, node: &str) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let own_terms = required_anti_affinity(pod);
        self.placed.iter().all(|(other_node, other)| {
            let other_ns = other.metadata.namespace.as_deref().unwrap_or("default");
            let mine = own_terms.iter().any(|t| {
                term_selects(t, ns, other) && self.same_domain(node, other_node, &t.topology_key)
            });
            let theirs = required_anti_affinity(other).iter().any(|t| {
                term_selects(t, other_ns, pod)
                    && self.same_domain(node, other_node, &t.topology_key)
            });
            !mine && !theirs
        })
    }

    fn misfit(&self, pod: &Pod, node: &Node) -> Option<Misfit> {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let spec = node.spec.as_ref();
        let not_ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "False");
        let selector = pod.spec.as_ref().and_then(|s| s.node_selector.as_ref());
        if spec.and_then(|s| s.unschedulable).unwrap_or(false) {
            Some(Misfit::Cordoned)
        } else if not_ready {
            Some(Misfit::NotReady)
        } else if selector.is_some_and(|sel| !map_selector_matches(sel, labels(&node.metadata))) {
            Some(Misfit::Selector)
        } else if !self.anti_affinity_allows(pod, name) {
            Some(Misfit::AntiAffinity)
        } else {
            None
        }
    }

    /// (pods of the same owner, all pods) on `node`: lower is better.
    fn load(&self, pod: &Pod, node: &str) -> (usize, usize) {
        let owner = controller_of(&pod.metadata).map(|r| r.uid.as_str());
        let same_owner = |other: &Pod| match owner {
            Some(uid) => controller_of(&other.metadata).is_some_and(|r| r.uid == uid),
            None => {
                controller_of(&other.metadata).is_none()
                    && other.metadata.namespace == pod.metadata.namespace
                    && labels(&other.metadata) == labels(&pod.metadata)
            }
        };
        let here = self
            .placed
            .iter()
            .filter(|(n, p)| n == node && !pod_is_terminating(p));
        here.fold((0, 0), |(same, all), (_, p)| {
            (same + usize::from(same_owner(p)), all + 1)
        })
    }

    fn place(&self, pod: &Pod) -> Placement {
        let mut misfits: BTreeMap<Misfit, usize> = BTreeMap::new();
        let mut best: Option<((usize, usize), &str)> = None;
        for (&name, node) in &self.nodes {
            if let Some(m) = self.misfit(pod, node) {
                *misfits.entry(m).or_default() += 1;
                continue;
            }
            let score = (self.load(pod, name), name);
            if best.is_none_or(|b| score < b) {
                best = Some(score);
            }
        }
        match best {
            Some((_, node)) => Placement::Bind(node.to_string()),
            None if self.nodes.is_empty() => {
                Placement::Unschedulable("no nodes available to schedule pods".into())
            }
            None => {
                let reasons: Vec<String> = misfits
                    .iter()
                    .map(|(m, n)| format!("{n} {}", m.text()))
                    .collect();
                Placement::Unschedulable(format!(
                    "0/{} nodes are available: {}.",
                    self.nodes.len(),
                    reasons.join(", ")
                ))
            }
        }
    }
}

/// Decide a placement for every pending pod, oldest first; each decision
/// counts for the next (so replicas spread in one pass).
pub fn plan_scheduling<'a>(pods: &[&'a Pod], nodes: &[&'a Node]) -> Vec<(&'a Pod, Placement)> {
    let mut view = View {
        nodes: nodes
            .iter()
            .filter_map(|n| Some((n.metadata.name.as_deref()?, *n)))
            .collect(),
        placed: pods
            .iter()
            .filter(|p| !pod_is_finished(p))
            .filter_map(|p| Some((pod_node(p)?.to_string(), *p)))
            .collect(),
    };
    let mut pending: Vec<&Pod> = pods.iter().copied().filter(|p| is_pending(p)).collect();
    pending.sort_by(|a, b| creation_order(&a.metadata).cmp(&creation_order(&b.metadata)));
    pending
        .into_iter()
        .map(|pod| {
            let placement = view.place(pod);
            if let Placement::Bind(node) = &placement {
                view.placed.push((node.clone(), pod));
            }
            (pod, placement)
        })
        .collect()
}

/// Set the `PodScheduled` condition; `false` when nothing changed.
fn set_scheduled_condition(
    pod: &mut Pod,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> bool {
    let conditions = pod
        .status
        .get_or_insert_default()
        .conditions
        .get_or_insert_default();
    let existing = conditions.iter_mut().find(|c| c.type_ == "PodScheduled");
    if let Some(c) = &existing
        && c.status == status
        && c.reason.as_deref() == reason
        && c.message.as_deref() == message
    {
        return false;
    }
    let condition = PodCondition {
        type_: "PodScheduled".into(),
        status: status.into(),
        reason: reason.map(Into::into),
        message: message.map(Into::into),
        last_transition_time: Some(now()),
        ..Default::default()
    };
    match existing {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
    true
}

/// The pod after applying `placement`, or `None` if it already says so.
pub fn apply_placement(pod: &Pod, placement: &Placement) -> Option<Pod> {
    let mut pod = pod.clone();
    match placement {
        Placement::Bind(node) => {
            pod.spec.get_or_insert_default().node_name = Some(node.clone());
            set_scheduled_condition(&mut pod, "True", None, None);
            Some(pod)
        }
        Placement::Unschedulable(message) => {
            set_scheduled_condition(&mut pod, "False", Some("Unschedulable"), Some(message))
                .then_some(pod)
        }
    }
}

/// Controller loop: watches Pods and Nodes, binds pending pods.
pub async fn run(store: Store) -> Result<(), Error> {
    let mut pods = Cache::<Pod>::default();
    let mut nodes = Cache::<Node>::default();
    let mut pod_rx = store.reflect::<Pod>(None);
    let mut node_rx = store.reflect::<Node>(None);
    let mut pacer = Pacer::default();
    loop {
        tokio::select! {
            change = pod_rx.next() => feed(&mut pods, change, &mut pacer)?,
            change = node_rx.next() => feed(&mut nodes, change, &mut pacer)?,
            () = pacer.due(), if pods.synced() && nodes.synced() => {
                let mut pass = Pass::new("scheduler");
                let writes: Vec<(String, Placement, Pod)> = {
                    let pod_view: Vec<&Pod> = pods.values().collect();
                    let node_view: Vec<&Node> = nodes.values().collect();
                    plan_scheduling(&pod_view, &node_view)
                        .into_iter()
                        .filter_map(|(pod, placement)| {
                            let updated = apply_placement(pod, &placement)?;
                            Some((key_of(&pod.metadata), placement, updated))
                        })
                        .collect()
                };
                for (key, placement, pod) in writes {
                    let result = store.update(&pod).await;
                    if let Some(written) = pass.check("schedule", &key, result) {
                        match &placement {
                            Placement::Bind(node) => tracing::info!(pod = key, node, "bound pod"),
                            Placement::Unschedulable(why) => {
                                tracing::warn!(pod = key, reason = why.as_str(), "pod is unschedulable");
                            }
                        }
                        pods.written(written);
                    }
                }
                pacer.finished(pass.ok());
            }
        }
    }
}

/// Pods per node name (diagnostics and tests).
#[cfg(test)]
fn per_node<'a>(plan: &[(&'a Pod, Placement)]) -> std::collections::HashMap<String, Vec<&'a str>> {
    let mut out: std::collections::HashMap<String, Vec<&str>> = std::collections::HashMap::new();
    for (pod, placement) in plan {
        let node = match placement {
            Placement::Bind(n) => n.clone(),
            Placement::Unschedulable(_) => "-".into(),
        };
        out.entry(node)
            .or_default()
            .push(pod.metadata.name.as_deref().unwrap_or(""));
    }
    out
}

#[cfg(test)]
mod tests {
    use api::k8s_openapi::{
        api::core::v1::{
            Affinity, NodeCondition, NodeSpec, NodeStatus, PodAntiAffinity, PodSpec, PodStatus,
        },
        apimachinery::pkg::apis::meta::v1::{
            LabelSelector, LabelSelectorRequirement, OwnerReference, Time,
        },
        jiff::Timestamp,
    };

    use super::*;

    fn node(name: &str) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.labels = Some([(HOSTNAME_KEY.to_string(), name.to_string())].into());
        n.spec = Some(NodeSpec::default());
        n
    }

    fn pod(name: &str, created: i64, app: &str, owner: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        p.metadata.labels = Some([("app".to_string(), app.to_string())].into());
        p.metadata.owner_references = owner.map(|uid| {
            vec![OwnerReference {
                kind: "Deployment".into(),
                uid: uid.into(),
                controller: Some(true),
                ..Default::default()
            }]
        });
        p.spec = Some(PodSpec::default());
        p
    }

    fn bound(mut p: Pod, node: &str) -> Pod {
        p.spec.get_or_insert_default().node_name = Some(node.into());
        p
    }

    fn anti_affinity(mut p: Pod, op: &str, values: &[&str]) -> Pod {
        let term = PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "app".into(),
                    operator: op.into(),
                    values: Some(values.iter().map(|v| v.to_string()).collect()),
                }]),
                match_labels: None,
            }),
            topology_key: HOSTNAME_KEY.into(),
            ..Default::default()
        };
        p.spec.get_or_insert_default().affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![term]),
                ..Default::default()
            }),
            ..Default::default()
        });
        p
    }

    fn seed_nodes() -> Vec<Node> {
        vec![node("k8s-ctr"), node("k8s-w1"), node("k8s-w0")]
    }

    fn plan<'a>(pods: &'a [Pod], nodes: &'a [Node]) -> Vec<(&'a Pod, Placement)> {
        let p: Vec<&Pod> = pods.iter().collect();
        let n: Vec<&Node> = nodes.iter().collect();
        plan_scheduling(&p, &n)
    }

    #[test]
    fn webpod_replicas_spread_one_per_node_despite_unmatched_anti_affinity() {
        let nodes = seed_nodes();
        let pods: Vec<Pod> = (0..3)
            .map(|i| {
                anti_affinity(
                    pod(&format!("webpod-{i}"), i, "webpod", Some("d1")),
                    "In",
                    &["sample-app"],
                )
            })
            .collect();
        let placed = per_node(&plan(&pods, &nodes));
        assert_eq!(placed.len(), 3, "{placed:?}");
        for n in ["k8s-ctr", "k8s-w1", "k8s-w0"] {
            assert_eq!(placed[n].len(), 1, "{placed:?}");
        }
        // Deterministic: oldest pod to the first node by name.
        assert_eq!(placed["k8s-ctr"], ["webpod-0"]);
    }

    #[test]
    fn spread_prefers_fewest_same_owner_then_fewest_pods() {
        let nodes = seed_nodes();
        let pods = vec![
            bound(pod("a-0", 0, "a", Some("da")), "k8s-ctr"),
            bound(pod("other-0", 0, "o", Some("do")), "k8s-w0"),
            bound(pod("other-1", 0, "o", Some("do")), "k8s-w0"),
            pod("a-1", 1, "a", Some("da")),
            pod("a-2", 2, "a", Some("da")),
        ];
        let placed = per_node(&plan(&pods, &nodes));
        // k8s-w1 (no pods) then k8s-w0 (no "a" pods, though busier) before k8s-ctr.
        assert_eq!(placed["k8s-w1"], ["a-1"]);
        assert_eq!(placed["k8s-w0"], ["a-2"]);
        // Without owners, identical labels count as the same group.
        let pods = vec![
            bound(pod("x-0", 0, "x", None), "k8s-ctr"),
            pod("x-1", 1, "x", None),
        ];
        let placed = per_node(&plan(&pods, &nodes));
        assert_eq!(placed["k8s-w0"], ["x-1"]);
    }

    #[test]
    fn cordon_not_ready_and_node_selector_filter() {
        let mut nodes = seed_nodes();
        nodes[0].spec.as_mut().unwrap().unschedulable = Some(true);
        nodes[1].status = Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "False".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let pods = vec![pod("p", 0, "p", None)];
        assert_eq!(plan(&pods, &nodes)[0].1, Placement::Bind("k8s-w0".into()));

        let mut picky = pod("q", 0, "q", None);
        picky.spec.as_mut().unwrap().node_selector =
            Some([("disk".to_string(), "ssd".to_string())].into());
        let pods = vec![picky];
        assert_eq!(
            plan(&pods, &nodes)[0].1,
            Placement::Unschedulable(
                "0/3 nodes are available: 1 node(s) were unschedulable, 1 node(s) were not ready, \
                 1 node(s) didn't match Pod's node affinity/selector."
                    .into()
            )
        );
        nodes[2]
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("disk".into(), "ssd".into());
        assert_eq!(plan(&pods, &nodes)[0].1, Placement::Bind("k8s-w0".into()));
        assert!(matches!(plan(&pods, &[])[0].1, Placement::Unschedulable(_)));
    }

    #[test]
    fn anti_affinity_own_and_existing_terms() {
        let nodes = seed_nodes();
        // Own term: at most one "db" per host.
        let pods: Vec<Pod> = (0..4)
            .map(|i| anti_affinity(pod(&format!("db-{i}"), i, "db", Some("d")), "In", &["db"]))
            .collect();
        let result = plan(&pods, &nodes);
        let placed = per_node(&result);
        assert_eq!(placed["-"], ["db-3"]);
        let Placement::Unschedulable(msg) = &result[3].1 else {
            panic!()
        };
        assert_eq!(
            msg,
            "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
        );

        // An existing pod's term repels a newcomer it selects.
        let pods = vec![
            anti_affinity(
                bound(pod("loner", 0, "loner", None), "k8s-ctr"),
                "Exists",
                &[],
            ),
            pod("web", 1, "web", None),
        ];
        assert_eq!(plan(&pods, &nodes)[0].1, Placement::Bind("k8s-w0".into()));
        // NotIn and DoesNotExist select through the same matcher.
        let pods = vec![
            bound(pod("web-0", 0, "web", None), "k8s-ctr"),
            bound(pod("web-1", 0, "web", None), "k8s-w0"),
            anti_affinity(pod("x", 1, "x", None), "NotIn", &["x"]),
        ];
        assert_eq!(plan(&pods, &nodes)[0].1, Placement::Bind("k8s-w1".into()));
    }

    #[test]
    fn skips_bound_terminating_and_finished_pods_and_records_conditions() {
        let nodes = seed_nodes();
        let mut deleting = pod("d", 0, "d", None);
        deleting.metadata.deletion_timestamp = Some(now());
        let mut done = pod("f", 0, "f", None);
        done.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        let pods = vec![bound(pod("b", 0, "b", None), "k8s-w1"), deleting, done];
        assert!(plan(&pods, &nodes).is_empty());

        let p = pod("p", 0, "p", None);
        let bound_pod = apply_placement(&p, &Placement::Bind("k8s-w1".into())).unwrap();
        assert_eq!(pod_node(&bound_pod), Some("k8s-w1"));
        let why = Placement::Unschedulable("0/0".into());
        let marked = apply_placement(&p, &why).unwrap();
        let c = &marked.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some("Unschedulable"))
        );
        assert!(
            apply_placement(&marked, &why).is_none(),
            "unchanged condition is not rewritten"
        );
    }
}
