//! The scheduler's view of the cluster: nodes and the pods on them — bound pods from the
//! watch, and *assumed* pods the scheduler has placed but whose binding has not come back yet,
//! so the next pod never double-books their room.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::framework::{NamespaceLabels, NodeInfo, PodInfo, SharedWorkloads, Workloads};

/// Nodes with their pods, plus which pods are assumed.
#[derive(Default)]
pub struct Cache {
    /// By node name; entries without a node hold pods bound to a node not seen yet.
    nodes: BTreeMap<String, NodeInfo>,
    /// Pod key → the node it counts on.
    pod_nodes: HashMap<String, String>,
    assumed: HashSet<String>,
    /// Pending pods nominated to a node by preemption, waiting for their victims to go; other
    /// pods of lower priority must leave them the room.
    nominated: HashMap<String, Vec<PodInfo>>,
    /// Pod key → the node it is nominated to.
    nominated_node: HashMap<String, String>,
    /// The labels of each namespace, for inter-pod affinity's namespace selectors.
    namespaces: NamespaceLabels,
    /// Services' and workload controllers' selectors, for default spread constraints.
    workloads: SharedWorkloads,
}

/// Whether an update of a node can make a pending pod fit (upstream's node-update event
/// filter): its labels, taints, cordon or allocatable changed.
fn relevant_change(old: &Node, new: &Node) -> bool {
    let alloc = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.allocatable.clone().or_else(|| s.capacity.clone()))
    };
    let spec = |n: &Node| n.spec.as_ref().map(|s| (s.taints.clone(), s.unschedulable));
    old.metadata.labels != new.metadata.labels || spec(old) != spec(new) || alloc(old) != alloc(new)
}

impl Cache {
    /// Adds or updates a node; returns whether pending pods deserve another try.
    pub fn set_node(&mut self, node: Node) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        let entry = self
            .nodes
            .entry(name)
            .or_insert_with(|| NodeInfo::new(None));
        let relevant = entry
            .node
            .as_ref()
            .is_none_or(|old| relevant_change(old, &node));
        entry.set_node(Arc::new(node));
        relevant
    }

    /// Removes a node (its pods stay counted until they are deleted).
    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.get_mut(name) {
            if info.pods.is_empty() {
                self.nodes.remove(name);
            } else {
                info.node = None;
            }
        }
    }

    /// Records a namespace's labels; returns whether they changed.
    pub fn set_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) -> bool {
        if self.namespaces.0.get(name) == Some(&labels) {
            return false;
        }
        Arc::make_mut(&mut self.namespaces.0).insert(name.to_string(), labels);
        true
    }

    /// Forgets a namespace.
    pub fn remove_namespace(&mut self, name: &str) {
        if self.namespaces.0.contains_key(name) {
            Arc::make_mut(&mut self.namespaces.0).remove(name);
        }
    }

    /// Names of the namespaces known.
    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces.0.keys().cloned().collect()
    }

    /// The namespaces' labels, shared (cheap to clone).
    pub fn namespace_labels(&self) -> NamespaceLabels {
        self.namespaces.clone()
    }

    /// The Services' and workload controllers' selectors, for updating.
    pub fn workloads_mut(&mut self) -> &mut Workloads {
        Arc::make_mut(&mut self.workloads.0)
    }

    /// The Services' and workload controllers' selectors, shared (cheap to clone).
    pub fn workloads(&self) -> SharedWorkloads {
        self.workloads.clone()
    }

    /// Names of the nodes known.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, i)| i.node.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The nodes that exist, in name order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.values().filter(|i| i.node.is_some())
    }

    /// How many nodes exist.
    pub fn node_count(&self) -> usize {
        self.nodes().count()
    }

    /// Records that a pending pod waits for room on `node` (`None`: on no node).
    pub fn set_nominated(&mut self, pod: Arc<Pod>, node: Option<&str>) {
        let key = crate::framework::pod_key(&pod);
        self.clear_nomination(&key);
        if let Some(node) = node.filter(|n| !n.is_empty()) {
            self.nominated
                .entry(node.to_string())
                .or_default()
                .push(PodInfo::new(pod));
            self.nominated_node.insert(key, node.to_string());
        }
    }

    fn clear_nomination(&mut self, key: &str) {
        if let Some(node) = self.nominated_node.remove(key)
            && let Some(list) = self.nominated.get_mut(&node)
        {
            list.retain(|p| p.key() != key);
            if list.is_empty() {
                self.nominated.remove(&node);
            }
        }
    }

    /// The pods nominated to `node`.
    pub fn nominated(&self, node: &str) -> &[PodInfo] {
        self.nominated.get(node).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether a bound pod is news to pods waiting on inter-pod affinity or spreading (upstream's
    /// AssignedPodAdd/Update): it is not counted yet, only assumed, or its labels changed.
    pub fn is_placement_news(&self, pod: &Pod) -> bool {
        let key = crate::framework::pod_key(pod);
        if self.assumed.contains(&key) {
            return true;
        }
        let Some(node) = self.pod_nodes.get(&key) else {
            return true;
        };
        self.nodes
            .get(node)
            .and_then(|n| n.pods.get(&key))
            .is_none_or(|p| p.pod.metadata.labels != pod.metadata.labels)
    }

    /// Counts a pod on `node`; confirms it if it was assumed.
    pub fn add_pod(&mut self, pod: Arc<Pod>, node: &str) {
        let info = PodInfo::new(pod);
        let key = info.key();
        self.clear_nomination(&key);
        self.assumed.remove(&key);
        if let Some(old) = self.pod_nodes.get(&key).cloned()
            && old != node
        {
            self.remove_pod(&key);
        }
        self.nodes
            .entry(node.to_string())
            .or_insert_with(|| NodeInfo::new(None))
            .add_pod(info);
        self.pod_nodes.insert(key, node.to_string());
    }

    /// Counts a pod the scheduler just placed on `node`, before its binding is confirmed.
    pub fn assume(&mut self, pod: Arc<Pod>, node: &str) {
        let key = crate::framework::pod_key(&pod);
        self.add_pod(pod, node);
        self.assumed.insert(key);
    }

    /// Whether a pod is assumed (placed, binding in flight).
    pub fn is_assumed(&self, key: &str) -> bool {
        self.assumed.contains(key)
    }

    /// Drops an assumed pod whose binding failed; a confirmed pod is kept.
    pub fn forget(&mut self, key: &str) {
        if self.assumed.remove(key) {
            self.remove_pod(key);
        }
    }

    /// Stops counting a pod; returns whether it was counted on a node.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        self.assumed.remove(key);
        self.clear_nomination(key);
        let Some(node) = self.pod_nodes.remove(key) else {
            return false;
        };
        if let Some(info) = self.nodes.get_mut(&node) {
            info.remove_pod(key);
            if info.node.is_none() && info.pods.is_empty() {
                self.nodes.remove(&node);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "10"}}}))
        .expect("node")
    }

    fn pod(name: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns"},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}}))
            .expect("pod"),
        )
    }

    #[test]
    fn assumed_pods_count_until_forgotten_or_confirmed() {
        let mut c = Cache::default();
        assert!(c.set_node(node("n", json!({}))));
        c.assume(pod("a"), "n");
        assert!(c.is_assumed("ns/a"));
        assert_eq!(c.nodes().next().expect("node").requested.milli_cpu, 1000);
        c.forget("ns/a");
        assert_eq!(c.nodes().next().expect("node").requested.milli_cpu, 0);
        c.assume(pod("b"), "n");
        c.add_pod(pod("b"), "n");
        assert!(!c.is_assumed("ns/b"));
        c.forget("ns/b");
        assert_eq!(c.nodes().next().expect("node").requested.milli_cpu, 1000);
    }

    #[test]
    fn pods_on_an_unseen_node_count_once_it_arrives() {
        let mut c = Cache::default();
        c.add_pod(pod("a"), "later");
        assert_eq!(c.node_count(), 0);
        c.set_node(node("later", json!({})));
        assert_eq!(c.nodes().next().expect("node").pods.len(), 1);
        assert!(c.remove_pod("ns/a"));
        c.remove_node("later");
        assert_eq!(c.node_count(), 0);
    }

    #[test]
    fn only_relevant_node_updates_retry_pending_pods() {
        let mut c = Cache::default();
        assert!(c.set_node(node("n", json!({}))));
        assert!(!c.set_node(node("n", json!({}))));
        assert!(c.set_node(node("n", json!({"zone": "a"}))));
    }

    #[test]
    fn namespace_labels_are_shared_and_report_changes() {
        let mut c = Cache::default();
        let team = |t: &str| BTreeMap::from([("team".to_string(), t.to_string())]);
        assert!(c.set_namespace("ns", team("a")));
        let before = c.namespace_labels();
        assert!(!c.set_namespace("ns", team("a")));
        assert!(c.set_namespace("ns", team("b")));
        // A snapshot taken earlier keeps what it saw.
        assert!(before.with("ns", |l| l == &team("a")));
        assert!(c.namespace_labels().with("ns", |l| l == &team("b")));
        c.remove_namespace("ns");
        assert!(c.namespace_labels().with("ns", |l| {
            l.get("kubernetes.io/metadata.name").map(String::as_str) == Some("ns")
        }));
    }

    #[test]
    fn nominations_follow_the_pod() {
        let mut c = Cache::default();
        c.set_node(node("n", json!({})));
        c.set_nominated(pod("a"), Some("n"));
        assert_eq!(c.nominated("n").len(), 1);
        c.set_nominated(pod("a"), Some("m"));
        assert!(c.nominated("n").is_empty());
        c.add_pod(pod("a"), "m");
        assert!(c.nominated("m").is_empty());
    }
}
