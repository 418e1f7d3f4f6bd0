//! The served resources, from the legacy discovery documents (each group's preferred
//! version), with the verbs each supports. Failures are reported per group-version so a
//! controller can go on with the rest, as upstream's `ServerPreferredResources`.

use kube::Client;
use kube::api::ApiResource;

/// A served resource and what it supports.
#[derive(Clone, Debug)]
pub struct Resource {
    /// Group, version, kind and plural.
    pub api: ApiResource,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// The verbs, as discovery lists them.
    pub verbs: Vec<String>,
}

impl Resource {
    /// Whether `verb` is supported.
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// `resource.group` as upstream prints group-resources in messages (`pods.`,
    /// `deployments.apps`).
    pub fn group_resource(&self) -> String {
        format!("{}.{}", self.api.plural, self.api.group)
    }
}

/// What discovery found, and the group-versions it could not read.
#[derive(Clone, Debug, Default)]
pub struct Discovered {
    /// Every top-level resource (no subresources) of each group's preferred version.
    pub resources: Vec<Resource>,
    /// `group/version` → error, for group-versions whose resource list failed.
    pub failed: Vec<(String, String)>,
}

/// Reads discovery. Fails only if the group list itself cannot be read.
pub async fn discover(client: &Client) -> Result<Discovered, kube::Error> {
    let mut out = Discovered::default();
    let mut group_versions: Vec<(String, String)> = Vec::new();
    let core = client.list_core_api_versions().await?;
    for v in core.versions {
        group_versions.push((String::new(), v));
    }
    let groups = client.list_api_groups().await?;
    for g in groups.groups {
        let version = g
            .preferred_version
            .map(|p| p.version)
            .or_else(|| g.versions.first().map(|v| v.version.clone()));
        if let Some(v) = version {
            group_versions.push((g.name, v));
        }
    }
    for (group, version) in group_versions {
        let api_version = if group.is_empty() {
            version.clone()
        } else {
            format!("{group}/{version}")
        };
        let list = if group.is_empty() {
            client.list_core_api_resources(&version).await
        } else {
            client.list_api_group_resources(&api_version).await
        };
        let list = match list {
            Ok(l) => l,
            Err(e) => {
                out.failed.push((api_version, e.to_string()));
                continue;
            }
        };
        for r in list.resources {
            if r.name.contains('/') {
                continue;
            }
            out.resources.push(Resource {
                api: ApiResource {
                    group: group.clone(),
                    version: version.clone(),
                    api_version: api_version.clone(),
                    kind: r.kind,
                    plural: r.name,
                },
                namespaced: r.namespaced,
                verbs: r.verbs,
            });
        }
    }
    Ok(out)
}
