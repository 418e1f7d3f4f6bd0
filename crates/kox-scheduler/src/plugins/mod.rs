//! The filter and score plugins, one file each, named as upstream's.

pub mod balanced_allocation;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod taint_toleration;

use crate::framework::Plugin;

/// A plugin with its score weight.
pub struct Weighted {
    /// The plugin.
    pub plugin: Box<dyn Plugin>,
    /// What its normalized score is multiplied by.
    pub weight: i64,
}

/// The default profile's plugins, in upstream's filter order, with upstream's default weights.
pub fn default_plugins() -> Vec<Weighted> {
    let w = |plugin: Box<dyn Plugin>, weight| Weighted { plugin, weight };
    vec![
        w(Box::new(node_unschedulable::NodeUnschedulable), 0),
        w(Box::new(node_name::NodeName), 0),
        w(Box::new(taint_toleration::TaintToleration), 3),
        w(Box::new(node_affinity::NodeAffinity), 2),
        w(Box::new(node_ports::NodePorts), 0),
        w(Box::new(node_resources_fit::NodeResourcesFit), 1),
        w(Box::new(balanced_allocation::BalancedAllocation), 1),
    ]
}
