//! Which nodes a pod may run on by their labels and name: `spec.nodeSelector` and required node
//! affinity (upstream's `RequiredNodeAffinity`), written once for the scheduler and the
//! DaemonSet controller.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, PodSpec};

/// Whether a node selector requirement holds for a value (`None` when the key is absent).
pub fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or(&[]);
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if req.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether a node selector term matches a node: all expressions on labels and all fields
/// (only `metadata.name`) hold. A term with neither matches nothing, as upstream.
pub fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(name);
            requirement_matches(r, value)
        })
}

/// Whether a node with `labels` and `name` satisfies the pod's `nodeSelector` and its required
/// node affinity (any one term).
pub fn pod_fits(spec: &PodSpec, labels: &BTreeMap<String, String>, name: &str) -> bool {
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok
        && required.is_none_or(|sel| {
            sel.node_selector_terms
                .iter()
                .any(|t| term_matches(t, labels, name))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn requirements_hold_as_upstream() {
        let cases = [
            // (operator, values, node's value, holds)
            ("In", &["a", "b"][..], Some("a"), true),
            ("In", &["a"][..], None, false),
            ("NotIn", &["a"][..], Some("b"), true),
            ("NotIn", &["a"][..], None, true),
            ("NotIn", &["a"][..], Some("a"), false),
            ("Exists", &[][..], Some(""), true),
            ("Exists", &[][..], None, false),
            ("DoesNotExist", &[][..], None, true),
            ("Gt", &["5"][..], Some("6"), true),
            ("Gt", &["5"][..], Some("5"), false),
            ("Lt", &["5"][..], Some("4"), true),
            ("Lt", &["5"][..], Some("x"), false),
            ("Bogus", &["a"][..], Some("a"), false),
        ];
        for (op, values, value, want) in cases {
            assert_eq!(
                requirement_matches(&req("k", op, values), value),
                want,
                "{op} {values:?} {value:?}"
            );
        }
    }

    #[test]
    fn pods_fit_by_selector_and_any_required_term() {
        let labels: BTreeMap<String, String> = [("zone".to_string(), "a".to_string())].into();
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [],
            "nodeSelector": {"zone": "a"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
                ]}}},
        }))
        .unwrap();
        assert!(pod_fits(&spec, &labels, "n1"));
        assert!(!pod_fits(&spec, &labels, "n2"));
        let empty_term = NodeSelectorTerm::default();
        assert!(!term_matches(&empty_term, &labels, "n1"));
    }
}
