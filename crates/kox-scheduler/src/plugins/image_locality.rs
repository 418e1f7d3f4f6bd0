//! ImageLocality: nodes that already hold the pod's container images score higher, by the
//! images' sizes, discounted by how few nodes hold them (so one node holding a popular image
//! does not attract every pod) — upstream's formula and thresholds.

use std::collections::HashMap;

use crate::cycle_state::CycleState;
use crate::framework::{MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo};

const MB: i64 = 1024 * 1024;
/// Below this the images are not worth preferring a node for.
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container, beyond this a bigger image scores no higher.
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// `nginx` → `nginx:latest`; names with a tag or digest stay.
pub fn normalized_image_name(name: &str) -> String {
    let colon = name.rfind(':').map(|i| i as i64).unwrap_or(-1);
    let slash = name.rfind('/').map(|i| i as i64).unwrap_or(-1);
    if colon <= slash {
        format!("{name}:latest")
    } else {
        name.to_string()
    }
}

fn pod_images(pod: &PodInfo) -> Vec<String> {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .filter_map(|c| c.image.as_deref())
        .map(normalized_image_name)
        .collect()
}

/// The size of `image` on `node`, if it holds it.
fn image_size(node: &NodeInfo, image: &str) -> Option<i64> {
    node.node
        .as_ref()?
        .status
        .as_ref()?
        .images
        .as_ref()?
        .iter()
        .find(|i| i.names.iter().flatten().any(|n| n == image))
        .map(|i| i.size_bytes.unwrap_or(0))
}

/// Per image of the pod: how many nodes hold it, out of how many.
#[derive(Clone, Default)]
struct Spread {
    nodes_with: HashMap<String, usize>,
    all_nodes: usize,
}

/// The ImageLocality score.
pub struct ImageLocality;

const KEY: &str = "ImageLocality";

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        KEY
    }

    fn scores(&self) -> bool {
        true
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _feasible: &[&NodeInfo],
        all: &[&NodeInfo],
    ) {
        let mut spread = Spread {
            all_nodes: all.len(),
            ..Spread::default()
        };
        for image in pod_images(pod) {
            let count = all
                .iter()
                .filter(|n| image_size(n, &image).is_some())
                .count();
            spread.nodes_with.insert(image, count);
        }
        state.write(KEY, spread);
    }

    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(spread) = state.read::<Spread>(KEY) else {
            return 0;
        };
        let images = pod_images(pod);
        let mut sum = 0i64;
        for image in &images {
            if let Some(size) = image_size(node, image) {
                let holders = spread.nodes_with.get(image).copied().unwrap_or(1);
                sum += (size as f64 * holders as f64 / spread.all_nodes.max(1) as f64) as i64;
            }
        }
        let max_threshold = MAX_CONTAINER_THRESHOLD * images.len() as i64;
        if max_threshold <= MIN_THRESHOLD {
            return 0;
        }
        let sum = sum.clamp(MIN_THRESHOLD, max_threshold);
        MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing::pod;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn node_with_images(name: &str, images: Value) -> NodeInfo {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"allocatable": {"cpu": "4"}, "images": images}
        }))
        .expect("node");
        NodeInfo::new(Some(Arc::new(node)))
    }

    #[test]
    fn image_names_are_normalized_as_upstream() {
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(normalized_image_name("nginx:1.27"), "nginx:1.27");
        assert_eq!(
            normalized_image_name("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
    }

    #[test]
    fn nodes_holding_big_images_score_higher() {
        let big = 500 * MB;
        let nodes = [
            node_with_images("a", json!([{"names": ["app:latest"], "sizeBytes": big}])),
            node_with_images("b", json!([{"names": ["app:latest"], "sizeBytes": big}])),
            node_with_images("c", json!([])),
            node_with_images("d", json!([{"names": ["tiny:latest"], "sizeBytes": MB}])),
        ];
        let all: Vec<&NodeInfo> = nodes.iter().collect();
        let p = pod(json!({"containers": [{"name": "c", "image": "app"}]}));
        let mut state = CycleState::default();
        ImageLocality.pre_score(&mut state, &p, &all, &all);
        let scores: Vec<i64> = nodes
            .iter()
            .map(|n| ImageLocality.score(&state, &p, n))
            .collect();
        // 500 MiB held by half the nodes counts as 250 MiB: (250-23)*100/(1000-23) = 23.
        assert_eq!(scores, [23, 23, 0, 0]);
        let tiny = pod(json!({"containers": [{"name": "c", "image": "tiny"}]}));
        ImageLocality.pre_score(&mut state, &tiny, &all, &all);
        assert_eq!(ImageLocality.score(&state, &tiny, &nodes[3]), 0);
    }
}
