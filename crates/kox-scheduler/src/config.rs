//! The scheduler's configuration file: upstream's `KubeSchedulerConfiguration`
//! (`kubescheduler.config.k8s.io/v1`), the parts kox uses — `percentageOfNodesToScore`,
//! `leaderElection`, and `profiles` with their plugin sets and plugin arguments. Unknown fields
//! are refused, as upstream's strict decoding does.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

/// The file's top level.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeSchedulerConfiguration {
    /// Must be `kubescheduler.config.k8s.io/v1`.
    pub api_version: Option<String>,
    /// Must be `KubeSchedulerConfiguration`.
    pub kind: Option<String>,
    /// Percentage of nodes to find feasible before scoring; 0 or unset is adaptive.
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Leader election settings.
    pub leader_election: Option<LeaderElection>,
    /// Accepted and ignored (the kubeconfig comes from the command line).
    pub client_connection: Option<Value>,
    /// Accepted and ignored.
    pub parallelism: Option<u32>,
    /// Accepted and ignored (kox's backoff is fixed at upstream's defaults).
    pub pod_initial_backoff_seconds: Option<u64>,
    /// Accepted and ignored.
    pub pod_max_backoff_seconds: Option<u64>,
    /// The profiles; none means one default profile.
    #[serde(default)]
    pub profiles: Vec<ProfileConfig>,
}

/// `leaderElection`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElection {
    /// Whether to take part in leader election.
    pub leader_elect: Option<bool>,
    /// `15s` by default.
    pub lease_duration: Option<String>,
    /// `10s` by default.
    pub renew_deadline: Option<String>,
    /// `2s` by default.
    pub retry_period: Option<String>,
    /// Accepted; only `leases` is supported.
    pub resource_lock: Option<String>,
    /// `kube-scheduler` by default.
    pub resource_name: Option<String>,
    /// `kube-system` by default.
    pub resource_namespace: Option<String>,
}

/// One profile.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileConfig {
    /// The `schedulerName` pods use to pick this profile (`default-scheduler` when unset).
    pub scheduler_name: Option<String>,
    /// Overrides the top-level percentage for this profile.
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Changes to the default plugin set.
    pub plugins: Option<PluginsConfig>,
    /// Plugin arguments, by plugin name.
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

/// `plugins`: per extension point, plugins enabled and disabled.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginsConfig {
    /// Every extension point a plugin implements.
    pub multi_point: Option<PluginSet>,
    /// Upstream's queue sort; kox always sorts by priority then age.
    pub queue_sort: Option<PluginSet>,
    /// Pre-filter.
    pub pre_filter: Option<PluginSet>,
    /// Filter.
    pub filter: Option<PluginSet>,
    /// Post-filter (preemption).
    pub post_filter: Option<PluginSet>,
    /// Pre-score.
    pub pre_score: Option<PluginSet>,
    /// Score.
    pub score: Option<PluginSet>,
    /// Reserve.
    pub reserve: Option<PluginSet>,
    /// Permit (no kox plugin implements it).
    pub permit: Option<PluginSet>,
    /// Pre-bind (no kox plugin implements it).
    pub pre_bind: Option<PluginSet>,
    /// Bind (kox binds through `pods/binding`, upstream's DefaultBinder).
    pub bind: Option<PluginSet>,
    /// Post-bind (no kox plugin implements it).
    pub post_bind: Option<PluginSet>,
}

/// Plugins enabled and disabled at one extension point.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginSet {
    /// Added, in order, after the defaults that remain.
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    /// Removed from the defaults; `*` removes them all.
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

/// A plugin by name, with its score weight.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginRef {
    /// The plugin's name.
    pub name: String,
    /// Its score weight (only for score and multiPoint).
    pub weight: Option<i64>,
}

/// Arguments of one plugin.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    /// The plugin's name.
    pub name: String,
    /// Its arguments (`NodeResourcesFitArgs`, …).
    #[serde(default)]
    pub args: Value,
}

impl KubeSchedulerConfiguration {
    /// Reads and checks a configuration file (YAML or JSON).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the scheduler configuration {}", path.display()))?;
        Self::parse(&text)
            .with_context(|| format!("in the scheduler configuration {}", path.display()))
    }

    /// Parses and checks a configuration's text.
    pub fn parse(text: &str) -> Result<Self> {
        let config: KubeSchedulerConfiguration =
            serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        match config.api_version.as_deref() {
            Some("kubescheduler.config.k8s.io/v1") => {}
            Some(other) => {
                bail!("apiVersion {other:?} is not supported: use kubescheduler.config.k8s.io/v1")
            }
            None => bail!("apiVersion is required: use kubescheduler.config.k8s.io/v1"),
        }
        if config.kind.as_deref() != Some("KubeSchedulerConfiguration") {
            bail!("kind must be KubeSchedulerConfiguration");
        }
        if let Some(p) = config.percentage_of_nodes_to_score
            && p > 100
        {
            bail!("percentageOfNodesToScore: Invalid value: {p}: not in valid range [0-100]");
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in config.profiles.iter().enumerate() {
            let name = p.scheduler_name.as_deref().unwrap_or("default-scheduler");
            if name.is_empty() {
                bail!("profiles[{i}].schedulerName: Required value");
            }
            if !names.insert(name.to_string()) {
                bail!("profiles[{i}].schedulerName: Duplicate value: {name:?}");
            }
        }
        Ok(config)
    }

    /// The profiles, or one default profile when the file names none.
    pub fn profiles(&self) -> Vec<ProfileConfig> {
        if self.profiles.is_empty() {
            vec![ProfileConfig::default()]
        } else {
            self.profiles.clone()
        }
    }
}

impl LeaderElection {
    /// Applies these settings to upstream's defaults; `None` when `leaderElect: false`.
    pub fn apply(
        &self,
        mut base: kox_component::LeaderElectionConfig,
    ) -> Result<Option<kox_component::LeaderElectionConfig>> {
        if self.leader_elect == Some(false) {
            return Ok(None);
        }
        if let Some(lock) = self.resource_lock.as_deref()
            && lock != "leases"
        {
            bail!(
                "leaderElection.resourceLock: Unsupported value: {lock:?}: supported values: \"leases\""
            );
        }
        if let Some(d) = &self.lease_duration {
            base.lease_duration = parse_duration(d)?;
        }
        if let Some(d) = &self.renew_deadline {
            base.renew_deadline = parse_duration(d)?;
        }
        if let Some(d) = &self.retry_period {
            base.retry_period = parse_duration(d)?;
        }
        if let Some(n) = &self.resource_name {
            base.name = n.clone();
        }
        if let Some(n) = &self.resource_namespace {
            base.namespace = n.clone();
        }
        if base.renew_deadline >= base.lease_duration {
            bail!("leaderElection.renewDeadline: Invalid value: must be less than leaseDuration");
        }
        Ok(Some(base))
    }
}

/// Parses a Go duration of the simple kinds used in this file (`15s`, `500ms`, `1m`).
pub fn parse_duration(text: &str) -> Result<Duration> {
    let (num, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| text.split_at(i))
        .with_context(|| format!("duration {text:?} has no unit"))?;
    let n: f64 = num
        .parse()
        .with_context(|| format!("duration {text:?} is not a number"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("duration {text:?}: unknown unit {unit:?}"),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typical_file_parses() {
        let c = KubeSchedulerConfiguration::parse(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 30
leaderElection:
  leaderElect: false
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packing
  plugins:
    score:
      disabled:
      - name: NodeResourcesBalancedAllocation
      enabled:
      - name: ImageLocality
        weight: 5
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
"#,
        )
        .expect("parses");
        assert_eq!(c.percentage_of_nodes_to_score, Some(30));
        assert_eq!(c.profiles().len(), 2);
        assert_eq!(
            c.profiles[1]
                .plugins
                .as_ref()
                .unwrap()
                .score
                .as_ref()
                .unwrap()
                .enabled[0]
                .weight,
            Some(5)
        );
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn bad_files_are_refused_with_the_field_named() {
        for (text, want) in [
            ("kind: KubeSchedulerConfiguration", "apiVersion is required"),
            (
                "apiVersion: kubescheduler.config.k8s.io/v1beta3\nkind: KubeSchedulerConfiguration",
                "not supported",
            ),
            (
                "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: a\n- schedulerName: a",
                "Duplicate value",
            ),
            (
                "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nbogus: 1",
                "bogus",
            ),
        ] {
            let err = format!("{:#}", KubeSchedulerConfiguration::parse(text).unwrap_err());
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
