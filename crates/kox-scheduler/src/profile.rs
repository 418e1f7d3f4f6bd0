//! Profiles: a scheduler name and the plugins (with weights) that serve pods asking for it.
//! Built from upstream's default plugin set, changed by a `KubeSchedulerConfiguration`
//! profile's `plugins` and `pluginConfig` (see `config.rs`).

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde_json::Value;

use crate::config::{PluginSet, ProfileConfig};
use crate::cycle_state::CycleState;
use crate::framework::{
    NodeInfo, Plugin, PodInfo, PostFilterContext, PostFilterOutcome, Status, Weighted,
};
use crate::plugins;

/// The scheduler name pods get when they name none.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// One profile, ready to schedule.
pub struct Profile {
    /// The `schedulerName` it serves.
    pub scheduler_name: String,
    /// Its plugins in filter order, with score weights.
    pub plugins: Vec<Weighted>,
    /// `percentageOfNodesToScore`; `None` or 0 is upstream's adaptive default.
    pub percentage_of_nodes_to_score: Option<u32>,
}

/// Upstream's default plugins (`getDefaultPlugins`, multiPoint) in order, with their score
/// weights. Names kox accepts but that do nothing here (volumes, queue sort, binder, gates)
/// are listed in [`NO_OP_PLUGINS`].
pub const DEFAULT_PLUGINS: &[(&str, i64)] = &[
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
];

/// Upstream plugins a configuration may name that have no part to play in kox: queue
/// sorting and binding are built in, scheduling gates are honoured by the queue, and volume
/// plugins have nothing to check without storage drivers.
pub const NO_OP_PLUGINS: &[&str] = &[
    "PrioritySort",
    "DefaultBinder",
    "SchedulingGates",
    "VolumeRestrictions",
    "VolumeBinding",
    "VolumeZone",
    "NodeVolumeLimits",
    "EBSLimits",
    "GCEPDLimits",
    "AzureDiskLimits",
    "CinderLimits",
    "DynamicResources",
];

/// Creates a plugin by its upstream name with its `pluginConfig` args; `Ok(None)` for
/// [`NO_OP_PLUGINS`].
pub fn new_plugin(name: &str, args: Option<&Value>) -> Result<Option<Box<dyn Plugin>>> {
    let plugin: Box<dyn Plugin> = match name {
        "NodeUnschedulable" => Box::new(plugins::node_unschedulable::NodeUnschedulable),
        "NodeName" => Box::new(plugins::node_name::NodeName),
        "TaintToleration" => Box::new(plugins::taint_toleration::TaintToleration),
        "NodeAffinity" => Box::new(plugins::node_affinity::NodeAffinity),
        "NodePorts" => Box::new(plugins::node_ports::NodePorts),
        "NodeResourcesFit" => Box::new(plugins::node_resources_fit::NodeResourcesFit::from_args(
            args,
        )?),
        "NodeResourcesBalancedAllocation" => {
            Box::new(plugins::balanced_allocation::BalancedAllocation)
        }
        "ImageLocality" => Box::new(plugins::image_locality::ImageLocality),
        "InterPodAffinity" => Box::new(plugins::inter_pod_affinity::InterPodAffinity::from_args(
            args,
        )?),
        "PodTopologySpread" => Box::new(
            plugins::pod_topology_spread::PodTopologySpread::from_args(args)?,
        ),
        "DefaultPreemption" => Box::new(plugins::default_preemption::DefaultPreemption::from_args(
            args,
        )?),
        n if NO_OP_PLUGINS.contains(&n) => return Ok(None),
        n => bail!("plugin {n:?} does not exist"),
    };
    Ok(Some(plugin))
}

/// Which extension points of a plugin a profile runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Points {
    filter: bool,
    post_filter: bool,
    score: bool,
}

impl Points {
    const ALL: Points = Points {
        filter: true,
        post_filter: true,
        score: true,
    };
}

/// A plugin with some of its extension points switched off by the configuration.
struct Masked {
    inner: Box<dyn Plugin>,
    points: Points,
}

impl Plugin for Masked {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[&NodeInfo]) -> Status {
        if self.points.filter {
            self.inner.pre_filter(state, pod, nodes)
        } else {
            Status::success()
        }
    }
    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        if self.points.filter {
            self.inner.add_pod(state, pod, other, node)
        }
    }
    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        if self.points.filter {
            self.inner.remove_pod(state, pod, other, node)
        }
    }
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if self.points.filter {
            self.inner.filter(state, pod, node)
        } else {
            Status::success()
        }
    }
    fn post_filter(
        &self,
        ctx: &PostFilterContext<'_>,
        state: &CycleState,
        pod: &PodInfo,
        statuses: &BTreeMap<String, Status>,
    ) -> PostFilterOutcome {
        if self.points.post_filter {
            self.inner.post_filter(ctx, state, pod, statuses)
        } else {
            PostFilterOutcome::Skip
        }
    }
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        feasible: &[&NodeInfo],
        all: &[&NodeInfo],
    ) {
        if self.points.score {
            self.inner.pre_score(state, pod, feasible, all)
        }
    }
    fn scores(&self) -> bool {
        self.points.score && self.inner.scores()
    }
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        self.inner.score(state, pod, node)
    }
    fn normalize(&self, state: &CycleState, scores: &mut [i64]) {
        self.inner.normalize(state, scores)
    }
    fn reserve(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status {
        self.inner.reserve(state, pod, node)
    }
    fn unreserve(&self, state: &CycleState, pod: &PodInfo, node: &str) {
        self.inner.unreserve(state, pod, node)
    }
}

/// One plugin's place in a profile being built.
struct Entry {
    name: String,
    weight: i64,
    points: Points,
}

fn disable(entries: &mut [Entry], set: &PluginSet, apply: impl Fn(&mut Points)) {
    for d in &set.disabled {
        for e in entries.iter_mut() {
            if d.name == "*" || d.name == e.name {
                apply(&mut e.points);
            }
        }
    }
}

fn enable(entries: &mut Vec<Entry>, set: &PluginSet, apply: impl Fn(&mut Points), score: bool) {
    for en in &set.enabled {
        let pos = entries.iter().position(|e| e.name == en.name);
        let entry = match pos {
            Some(i) => &mut entries[i],
            None => {
                entries.push(Entry {
                    name: en.name.clone(),
                    weight: 0,
                    points: Points {
                        filter: false,
                        post_filter: false,
                        score: false,
                    },
                });
                entries.last_mut().expect("just pushed")
            }
        };
        apply(&mut entry.points);
        if score {
            // Upstream: an enabled score plugin without a weight weighs 1.
            entry.weight = en.weight.filter(|w| *w > 0).unwrap_or(entry.weight.max(1));
        }
    }
}

impl Profile {
    /// Upstream's default profile.
    pub fn default_profile() -> Profile {
        Profile::build(&ProfileConfig::default(), None).expect("the default profile builds")
    }

    /// Builds a profile from its configuration; `percentage` is the file's top-level
    /// `percentageOfNodesToScore`.
    pub fn build(config: &ProfileConfig, percentage: Option<u32>) -> Result<Profile> {
        let mut entries: Vec<Entry> = DEFAULT_PLUGINS
            .iter()
            .map(|(name, weight)| Entry {
                name: name.to_string(),
                weight: *weight,
                points: Points::ALL,
            })
            .collect();
        if let Some(p) = &config.plugins {
            if let Some(set) = &p.multi_point {
                disable(&mut entries, set, |pt| *pt = Points::ALL_OFF);
                enable(&mut entries, set, |pt| *pt = Points::ALL, true);
            }
            let filters = [&p.pre_filter, &p.filter];
            for set in filters.into_iter().flatten() {
                disable(&mut entries, set, |pt| pt.filter = false);
                enable(&mut entries, set, |pt| pt.filter = true, false);
            }
            if let Some(set) = &p.post_filter {
                disable(&mut entries, set, |pt| pt.post_filter = false);
                enable(&mut entries, set, |pt| pt.post_filter = true, false);
            }
            if let Some(set) = &p.pre_score {
                disable(&mut entries, set, |pt| pt.score = false);
                enable(&mut entries, set, |pt| pt.score = true, false);
            }
            if let Some(set) = &p.score {
                disable(&mut entries, set, |pt| pt.score = false);
                enable(&mut entries, set, |pt| pt.score = true, true);
            }
            let others = [
                &p.queue_sort,
                &p.reserve,
                &p.permit,
                &p.pre_bind,
                &p.bind,
                &p.post_bind,
            ];
            for set in others.into_iter().flatten() {
                for r in set.enabled.iter().chain(&set.disabled) {
                    if r.name != "*" {
                        new_plugin(&r.name, None)?;
                    }
                }
            }
        }
        let mut args: BTreeMap<&str, &Value> = BTreeMap::new();
        for pc in &config.plugin_config {
            if args.insert(pc.name.as_str(), &pc.args).is_some() {
                bail!("pluginConfig: Duplicate value: {:?}", pc.name);
            }
        }
        let mut plugins = Vec::new();
        for e in entries {
            let Some(plugin) = new_plugin(&e.name, args.get(e.name.as_str()).copied())? else {
                continue;
            };
            if e.points == Points::ALL_OFF {
                continue;
            }
            let plugin: Box<dyn Plugin> = if e.points == Points::ALL {
                plugin
            } else {
                Box::new(Masked {
                    inner: plugin,
                    points: e.points,
                })
            };
            plugins.push(Weighted {
                plugin,
                weight: e.weight,
            });
        }
        for name in args.keys() {
            new_plugin(name, None)?;
        }
        Ok(Profile {
            scheduler_name: config
                .scheduler_name
                .clone()
                .unwrap_or_else(|| DEFAULT_SCHEDULER_NAME.to_string()),
            plugins,
            percentage_of_nodes_to_score: config.percentage_of_nodes_to_score.or(percentage),
        })
    }
}

impl Points {
    const ALL_OFF: Points = Points {
        filter: false,
        post_filter: false,
        score: false,
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KubeSchedulerConfiguration;

    fn profiles(yaml: &str) -> Result<Vec<Profile>> {
        let c = KubeSchedulerConfiguration::parse(&format!(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n{yaml}"
        ))?;
        c.profiles()
            .iter()
            .map(|p| Profile::build(p, c.percentage_of_nodes_to_score))
            .collect()
    }

    fn scoring(p: &Profile) -> Vec<(&'static str, i64)> {
        p.plugins
            .iter()
            .filter(|w| w.plugin.scores() && w.weight > 0)
            .map(|w| (w.plugin.name(), w.weight))
            .collect()
    }

    #[test]
    fn the_default_profile_has_upstreams_weights() {
        let p = Profile::default_profile();
        assert_eq!(p.scheduler_name, "default-scheduler");
        assert_eq!(
            scoring(&p),
            [
                ("TaintToleration", 3),
                ("NodeAffinity", 2),
                ("NodeResourcesFit", 1),
                ("PodTopologySpread", 2),
                ("InterPodAffinity", 2),
                ("NodeResourcesBalancedAllocation", 1),
                ("ImageLocality", 1),
            ]
        );
    }

    #[test]
    fn profiles_change_plugins_and_weights() {
        let ps = profiles(
            "percentageOfNodesToScore: 40\nprofiles:\n- schedulerName: a\n- schedulerName: b\n  percentageOfNodesToScore: 70\n  plugins:\n    score:\n      disabled:\n      - name: '*'\n      enabled:\n      - name: NodeResourcesFit\n        weight: 7\n    filter:\n      disabled:\n      - name: TaintToleration\n",
        )
        .expect("builds");
        assert_eq!(ps[0].percentage_of_nodes_to_score, Some(40));
        assert_eq!(ps[1].percentage_of_nodes_to_score, Some(70));
        assert_eq!(scoring(&ps[1]), [("NodeResourcesFit", 7)]);
        // TaintToleration still exists (its score is off too) but no longer filters.
        let tt = ps[1]
            .plugins
            .iter()
            .find(|w| w.plugin.name() == "TaintToleration")
            .expect("kept");
        let node = crate::framework::testing::node(
            "n",
            serde_json::json!({}),
            serde_json::json!({"taints": [{"key": "k", "effect": "NoSchedule"}]}),
            serde_json::json!({"cpu": "1"}),
        );
        let pod = crate::framework::testing::pod(serde_json::json!({"containers": []}));
        assert!(
            tt.plugin
                .filter(&CycleState::default(), &pod, &node)
                .is_success()
        );
    }

    #[test]
    fn unknown_plugins_are_refused() {
        let err =
            profiles("profiles:\n- plugins:\n    filter:\n      enabled:\n      - name: Nope\n")
                .err()
                .expect("refused");
        assert!(
            err.to_string().contains("plugin \"Nope\" does not exist"),
            "{err}"
        );
        assert!(
            profiles(
                "profiles:\n- plugins:\n    bind:\n      enabled:\n      - name: DefaultBinder\n"
            )
            .is_ok()
        );
    }
}
