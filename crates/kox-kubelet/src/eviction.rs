//! Node-pressure eviction, as the kubelet's eviction manager: hard thresholds
//! (`--eviction-hard`, default `memory.available<100Mi,nodefs.available<10%`) put the node
//! under MemoryPressure or DiskPressure; under pressure the agent admits no new BestEffort pod
//! (no pod at all under disk pressure) and evicts one pod at a time, in upstream's order:
//! pods using more than they request first, then by priority, then by how far usage exceeds
//! the request.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use kox_api::quantity::Quantity;

/// One hard threshold: a signal and the least that must stay available.
#[derive(Clone, Debug, PartialEq)]
pub enum Minimum {
    Bytes(i64),
    /// A fraction of the total (0.1 for `10%`).
    Fraction(f64),
}

impl Minimum {
    fn bytes_of(&self, total: i64) -> i64 {
        match self {
            Minimum::Bytes(b) => *b,
            Minimum::Fraction(f) => (total as f64 * f) as i64,
        }
    }
}

/// The eviction thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    pub memory_available: Minimum,
    pub nodefs_available: Minimum,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            memory_available: Minimum::Bytes(100 << 20),
            nodefs_available: Minimum::Fraction(0.10),
        }
    }
}

impl Thresholds {
    /// Parses `memory.available<100Mi,nodefs.available<10%` (signals not given keep their
    /// default).
    pub fn parse(text: &str) -> Result<Thresholds, String> {
        let mut t = Thresholds::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (signal, value) = part.split_once('<').ok_or_else(|| {
                format!("{part:?}: expected signal<quantity, e.g. memory.available<100Mi")
            })?;
            let minimum = match value.strip_suffix('%') {
                Some(p) => Minimum::Fraction(
                    p.parse::<f64>()
                        .map_err(|_| format!("{part:?}: bad percentage"))?
                        / 100.0,
                ),
                None => Minimum::Bytes(
                    Quantity::parse(value)
                        .map_err(|e| format!("{part:?}: {e}"))?
                        .value(),
                ),
            };
            match signal {
                "memory.available" => t.memory_available = minimum,
                "nodefs.available" => t.nodefs_available = minimum,
                other => {
                    return Err(format!(
                        "unsupported eviction signal {other:?}: use memory.available or nodefs.available"
                    ));
                }
            }
        }
        Ok(t)
    }
}

/// The node's pressure, as last observed.
#[derive(Debug, Default)]
pub struct Pressure {
    pub memory: AtomicBool,
    pub disk: AtomicBool,
}

/// What a signal measured against its threshold.
#[derive(Clone, Debug)]
pub struct Observation {
    pub resource: &'static str,
    pub threshold: String,
    pub available: i64,
    pub pressure: bool,
}

/// `memory.available` (MemAvailable) against its threshold.
pub fn observe_memory(t: &Thresholds) -> Observation {
    let total = crate::node::meminfo("MemTotal:").unwrap_or(0);
    let available = crate::node::meminfo("MemAvailable:").unwrap_or(total);
    let min = t.memory_available.bytes_of(total);
    Observation {
        resource: "memory",
        threshold: describe(&t.memory_available),
        available,
        pressure: available < min,
    }
}

/// `nodefs.available` (the data directory's filesystem) against its threshold.
pub fn observe_disk(t: &Thresholds, data_dir: &Path) -> Observation {
    let (total, available) = crate::node::disk_bytes(data_dir).unwrap_or((0, 0));
    let min = t.nodefs_available.bytes_of(total);
    Observation {
        resource: "ephemeral-storage",
        threshold: describe(&t.nodefs_available),
        available,
        pressure: total > 0 && available < min,
    }
}

fn describe(m: &Minimum) -> String {
    match m {
        Minimum::Bytes(b) if b % (1 << 20) == 0 => format!("{}Mi", b >> 20),
        Minimum::Bytes(b) => b.to_string(),
        Minimum::Fraction(f) => format!("{}%", (f * 100.0).round()),
    }
}

impl Pressure {
    pub fn set(&self, memory: bool, disk: bool) {
        self.memory.store(memory, Ordering::Relaxed);
        self.disk.store(disk, Ordering::Relaxed);
    }

    /// Why a new pod is refused now (upstream's admission message), if it is.
    pub fn refuses(&self, best_effort: bool) -> Option<String> {
        if self.disk.load(Ordering::Relaxed) {
            return Some("Pod was rejected: The node had condition: [DiskPressure]. ".into());
        }
        (best_effort && self.memory.load(Ordering::Relaxed))
            .then(|| "Pod was rejected: The node had condition: [MemoryPressure]. ".into())
    }
}

/// A pod competing for eviction.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub uid: String,
    pub priority: i32,
    /// (container, usage, request) of the pressured resource.
    pub containers: Vec<(String, i64, i64)>,
}

impl Candidate {
    fn usage(&self) -> i64 {
        self.containers.iter().map(|c| c.1).sum()
    }
    fn request(&self) -> i64 {
        self.containers.iter().map(|c| c.2).sum()
    }
}

/// The pod to evict first: usage above requests, then lowest priority, then most above
/// its request.
pub fn pick(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates.iter().min_by_key(|c| {
        let over = c.usage() - c.request();
        (over <= 0, c.priority, std::cmp::Reverse(over))
    })
}

/// The message of an eviction, as upstream words it.
pub fn message(o: &Observation, victim: &Candidate) -> String {
    let mut m = format!(
        "The node was low on resource: {}. Threshold quantity: {}, available: {}Ki. ",
        o.resource,
        o.threshold,
        o.available / 1024
    );
    if let Some((name, usage, request)) = victim.containers.iter().max_by_key(|c| c.1 - c.2) {
        m.push_str(&format!(
            "Container {name} was using {}Ki, request is {}, has larger consumption of {}. ",
            usage / 1024,
            if *request == 0 {
                "0".to_string()
            } else {
                format!("{}Ki", request / 1024)
            },
            o.resource
        ));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_as_the_kubelet_flag() {
        let t = Thresholds::parse("memory.available<1Gi,nodefs.available<5%").unwrap();
        assert_eq!(t.memory_available, Minimum::Bytes(1 << 30));
        assert_eq!(t.nodefs_available, Minimum::Fraction(0.05));
        assert!(Thresholds::parse("pid.available<10").is_err());
        assert_eq!(Thresholds::parse("").unwrap(), Thresholds::default());
    }

    #[test]
    fn victims_are_chosen_in_upstreams_order() {
        let pod = |uid: &str, priority, usage, request| Candidate {
            uid: uid.into(),
            priority,
            containers: vec![("c".into(), usage, request)],
        };
        let pods = [
            pod("within", 0, 10, 100),
            pod("over-high", 1000, 500, 0),
            pod("over-low", 0, 50, 0),
            pod("over-more", 0, 90, 0),
        ];
        assert_eq!(pick(&pods).unwrap().uid, "over-more");
        assert_eq!(pick(&pods[..2]).unwrap().uid, "over-high");
    }
}
