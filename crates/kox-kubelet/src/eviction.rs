//! Node pressure, against the kubelet's default hard eviction thresholds
//! (`memory.available<100Mi`, `nodefs.available<10%`).

use std::path::Path;

/// `memory.available` below which the node is under memory pressure.
pub const MEMORY_AVAILABLE_MIN: i64 = 100 << 20;
/// Fraction of the node's filesystem that must stay free.
pub const NODEFS_AVAILABLE_MIN: f64 = 0.10;

pub fn memory_pressure() -> bool {
    crate::node::meminfo("MemAvailable:").is_some_and(|a| a < MEMORY_AVAILABLE_MIN)
}

pub fn disk_pressure(data_dir: &Path) -> bool {
    crate::node::disk_bytes(data_dir).is_some_and(|(total, avail)| {
        total > 0 && (avail as f64) < total as f64 * NODEFS_AVAILABLE_MIN
    })
}
