//! Which pods a controller deletes first when it scales down: upstream's `ActivePodsWithRanks`
//! order, the cheapest pod to lose first.

use std::cmp::Ordering;
use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::util::{POD_DELETION_COST, is_pod_ready, phase, ready_since, restarts};

fn node(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn phase_rank(p: &Pod) -> u8 {
    match phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn deletion_cost(p: &Pod) -> i64 {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse::<i32>().ok())
        .map(i64::from)
        .unwrap_or(0)
}

/// log2 of the age in nanoseconds (-1 for no age), as upstream's logarithmic scale-down compares.
fn log_rank(t: Timestamp, now: Timestamp) -> i64 {
    let d = now.as_nanosecond() - t.as_nanosecond();
    if d <= 0 { -1 } else { (d as f64).log2() as i64 }
}

/// Orders `pods` so the first ones are deleted first. `related` are pods counted per node to
/// prefer deleting pods doubled up on a node (usually the same list).
pub fn sort_for_deletion(pods: &mut [Pod], related: &[Pod], now: Timestamp) {
    let mut per_node: HashMap<String, i64> = HashMap::new();
    for p in related {
        let n = node(p);
        if !n.is_empty() {
            *per_node.entry(n.to_string()).or_default() += 1;
        }
    }
    let rank = |p: &Pod| per_node.get(node(p)).copied().unwrap_or(0);
    pods.sort_by(|a, b| less(a, b, rank(a), rank(b), now));
}

fn less(a: &Pod, b: &Pod, rank_a: i64, rank_b: i64, now: Timestamp) -> Ordering {
    // 1. Unassigned < assigned.
    let (na, nb) = (node(a).is_empty(), node(b).is_empty());
    if na != nb {
        return if na {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 2. Pending < Unknown < Running.
    let (pa, pb) = (phase_rank(a), phase_rank(b));
    if pa != pb {
        return pa.cmp(&pb);
    }
    // 3. Not ready < ready.
    let (ra, rb) = (is_pod_ready(a), is_pod_ready(b));
    if ra != rb {
        return if ra {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    // 4. Lower deletion cost first.
    let (ca, cb) = (deletion_cost(a), deletion_cost(b));
    if ca != cb {
        return ca.cmp(&cb);
    }
    // 5. Doubled up (more pods on the node) first.
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    let uid_order = || {
        a.metadata
            .uid
            .as_deref()
            .unwrap_or("")
            .cmp(b.metadata.uid.as_deref().unwrap_or(""))
    };
    // 6. Ready for less time first (logarithmic buckets).
    if ra
        && rb
        && let (Some(ta), Some(tb)) = (ready_since(a), ready_since(b))
        && ta != tb
    {
        let d = log_rank(ta, now) - log_rank(tb, now);
        if d != 0 {
            return d.cmp(&0);
        }
        return uid_order();
    }
    // 7. More restarts first.
    let (xa, xb) = (restarts(a), restarts(b));
    if xa != xb {
        return xb.cmp(&xa);
    }
    // 8. Newer first (logarithmic buckets); no creation time first.
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    match (created(a), created(b)) {
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(ta), Some(tb)) if ta != tb => {
            let d = log_rank(ta, now) - log_rank(tb, now);
            if d != 0 { d.cmp(&0) } else { uid_order() }
        }
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str, phase: &str, ready: bool, extra: serde_json::Value) -> Pod {
        let mut v = json!({
            "metadata": {"name": name, "uid": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        });
        if node.is_empty() {
            v["spec"].as_object_mut().expect("spec").remove("nodeName");
        }
        merge(&mut v, extra);
        serde_json::from_value(v).expect("pod")
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn order(mut pods: Vec<Pod>) -> Vec<String> {
        let related = pods.clone();
        let now: Timestamp = "2026-01-02T00:00:00Z".parse().expect("now");
        sort_for_deletion(&mut pods, &related, now);
        pods.into_iter()
            .map(|p| p.metadata.name.unwrap_or_default())
            .collect()
    }

    #[test]
    fn cheapest_pods_go_first() {
        let got = order(vec![
            pod("running-ready", "n1", "Running", true, json!({})),
            pod("unassigned", "", "Pending", false, json!({})),
            pod("pending", "n2", "Pending", false, json!({})),
            pod("running-not-ready", "n3", "Running", false, json!({})),
        ]);
        assert_eq!(
            got,
            [
                "unassigned",
                "pending",
                "running-not-ready",
                "running-ready"
            ]
        );
    }

    #[test]
    fn deletion_cost_restarts_and_age_break_ties() {
        let cost = |c: &str| json!({"metadata": {"annotations": {POD_DELETION_COST: c}}});
        let got = order(vec![
            pod("expensive", "n1", "Running", false, cost("10")),
            pod("cheap", "n2", "Running", false, cost("-5")),
            pod("plain", "n3", "Running", false, json!({})),
        ]);
        assert_eq!(got, ["cheap", "plain", "expensive"]);

        let got = order(vec![
            pod("old", "n1", "Running", false, json!({})),
            pod(
                "restarted",
                "n2",
                "Running",
                false,
                json!({"status": {"containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 4}]}}),
            ),
            pod(
                "new",
                "n3",
                "Running",
                false,
                json!({"metadata": {"creationTimestamp": "2026-01-01T23:59:00Z"}}),
            ),
        ]);
        assert_eq!(got, ["restarted", "new", "old"]);
    }

    #[test]
    fn doubled_up_pods_go_before_lonely_ones() {
        let got = order(vec![
            pod("alone", "n1", "Running", false, json!({})),
            pod("twin-a", "n2", "Running", false, json!({})),
            pod("twin-b", "n2", "Running", false, json!({})),
        ]);
        assert_eq!(got[2], "alone");
    }
}
