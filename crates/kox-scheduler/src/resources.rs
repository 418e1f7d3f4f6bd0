//! Resource amounts in the units the scheduler compares: milli-CPU, bytes, pod slots, and
//! integer amounts of extended resources.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use kox_api::quantity::Quantity;

/// CPU assumed for a container without a CPU request when scoring (upstream's 100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed for a container without a memory request when scoring (upstream's 200Mi).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in thousandths of a core.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Pod slots (only meaningful for a node's allocatable).
    pub pods: i64,
    /// Extended resources (`example.com/gpu`, `hugepages-2Mi`), by name.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a `ResourceList`; unparsable quantities count as zero (validation rejects them).
    pub fn from_list(list: Option<&BTreeMap<String, ApiQuantity>>) -> Self {
        let mut r = Resources::default();
        for (name, q) in list.into_iter().flatten() {
            let Ok(q) = Quantity::parse(&q.0) else {
                continue;
            };
            match name.as_str() {
                "cpu" => r.milli_cpu = q.milli_value(),
                "memory" => r.memory = q.value(),
                "ephemeral-storage" => r.ephemeral_storage = q.value(),
                "pods" => r.pods = q.value(),
                other => {
                    r.scalar.insert(other.to_string(), q.value());
                }
            }
        }
        r
    }

    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    /// Subtracts `other` from `self`.
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Raises each amount of `self` to at least `other`'s.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.pods = self.pods.max(other.pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    /// Whether every amount is zero.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

fn container_requests(c: &Container) -> Resources {
    Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

/// What a pod requests, as upstream's `resource.PodRequests`: the sum of its containers and
/// restartable (sidecar) init containers, at least the largest init container (plus the
/// sidecars started before it), plus the pod overhead.
pub fn pod_requests(pod: &Pod) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut reqs = Resources::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        let step = if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r);
            sidecars.add(&r);
            sidecars.clone()
        } else {
            let mut t = r;
            t.add(&sidecars);
            t
        };
        init_max.max_with(&step);
    }
    reqs.max_with(&init_max);
    if let Some(overhead) = spec.overhead.as_ref() {
        reqs.add(&Resources::from_list(Some(overhead)));
    }
    reqs
}

/// CPU and memory a pod counts for when scoring: like [`pod_requests`], with containers that
/// request no CPU or memory counted at the defaults, so best-effort pods still spread.
pub fn pod_non_zero_requests(pod: &Pod) -> (i64, i64) {
    let Some(spec) = pod.spec.as_ref() else {
        return (0, 0);
    };
    let non_zero = |c: &Container| {
        let r = container_requests(c);
        let has = |n: &str| {
            c.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .is_some_and(|l| l.contains_key(n))
        };
        (
            if has("cpu") {
                r.milli_cpu
            } else {
                DEFAULT_MILLI_CPU_REQUEST
            },
            if has("memory") {
                r.memory
            } else {
                DEFAULT_MEMORY_REQUEST
            },
        )
    };
    let (mut cpu, mut mem) = (0, 0);
    for c in &spec.containers {
        let (c, m) = non_zero(c);
        cpu += c;
        mem += m;
    }
    let (mut side_cpu, mut side_mem, mut init_cpu, mut init_mem) = (0, 0, 0, 0);
    for c in spec.init_containers.iter().flatten() {
        let (c_cpu, c_mem) = non_zero(c);
        let (step_cpu, step_mem) = if c.restart_policy.as_deref() == Some("Always") {
            cpu += c_cpu;
            mem += c_mem;
            side_cpu += c_cpu;
            side_mem += c_mem;
            (side_cpu, side_mem)
        } else {
            (c_cpu + side_cpu, c_mem + side_mem)
        };
        init_cpu = init_cpu.max(step_cpu);
        init_mem = init_mem.max(step_mem);
    }
    cpu = cpu.max(init_cpu);
    mem = mem.max(init_mem);
    if let Some(overhead) = spec.overhead.as_ref() {
        let o = Resources::from_list(Some(overhead));
        cpu += o.milli_cpu;
        mem += o.memory;
    }
    (cpu, mem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("pod")
    }

    fn c(name: &str, cpu: &str, mem: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "resources": {"requests": {"cpu": cpu, "memory": mem}}})
    }

    #[test]
    fn requests_sum_containers_and_take_the_largest_init_container() {
        let cases = [
            (
                serde_json::json!({"containers": [c("a", "100m", "1Gi"), c("b", "200m", "1Gi")]}),
                300,
                2 << 30,
            ),
            (
                serde_json::json!({"containers": [c("a", "100m", "1Gi")], "initContainers": [c("i", "2", "512Mi")]}),
                2000,
                1 << 30,
            ),
            (
                serde_json::json!({"containers": [c("a", "100m", "1Gi")], "overhead": {"cpu": "50m", "memory": "1Mi"}}),
                150,
                (1 << 30) + (1 << 20),
            ),
            (
                // A sidecar runs alongside the containers and under the later init containers.
                serde_json::json!({"containers": [c("a", "100m", "1Gi")], "initContainers": [
                    {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
                    c("i", "1500m", "1Gi")]}),
                2500,
                2 << 30,
            ),
        ];
        for (spec, cpu, mem) in cases {
            let r = pod_requests(&pod(serde_json::json!({"spec": spec.clone()})));
            assert_eq!((r.milli_cpu, r.memory), (cpu, mem), "{spec}");
        }
    }

    #[test]
    fn containers_without_requests_count_as_defaults_when_scoring() {
        let p =
            pod(serde_json::json!({"spec": {"containers": [{"name": "a"}, c("b", "1", "1Gi")]}}));
        assert_eq!(
            pod_non_zero_requests(&p),
            (1100, DEFAULT_MEMORY_REQUEST + (1 << 30))
        );
        assert!(
            pod_requests(&pod(
                serde_json::json!({"spec": {"containers": [{"name": "a"}]}})
            ))
            .is_zero()
        );
    }
}
