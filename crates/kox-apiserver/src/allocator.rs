//! Service ClusterIP and NodePort allocation, claimed in the store so no two services ever get
//! the same address or port — across restarts and across API servers sharing a store.
//!
//! A claim is a key under `/registry/ranges/…` created with create-if-absent; the claim is made
//! before the service is written and released if that write fails or the service is deleted.

use std::net::Ipv4Addr;
use std::sync::Arc;

use kox_store::{Condition, Store, WriteOutcome};
use rand::Rng;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceDef;

const IP_PREFIX: &str = "/registry/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";

/// The service address ranges.
pub struct Allocators {
    store: Arc<dyn Store>,
    /// First address of the service range (network address).
    base: u32,
    /// Number of addresses in the range.
    size: u32,
    node_ports: std::ops::RangeInclusive<u16>,
}

impl Allocators {
    /// `cidr` such as `10.43.0.0/16`.
    pub fn new(store: Arc<dyn Store>, cidr: &str) -> anyhow::Result<Self> {
        let (addr, bits) = cidr
            .split_once('/')
            .ok_or_else(|| anyhow::anyhow!("service CIDR {cidr:?} needs a /prefix"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|e| anyhow::anyhow!("service CIDR {cidr:?}: {e}"))?;
        let bits: u32 = bits
            .parse()
            .map_err(|e| anyhow::anyhow!("service CIDR {cidr:?}: {e}"))?;
        anyhow::ensure!(
            (8..=30).contains(&bits),
            "service CIDR {cidr:?}: prefix must be between /8 and /30"
        );
        let size = 1u32 << (32 - bits);
        let base = u32::from(addr) & !(size - 1);
        Ok(Self {
            store,
            base,
            size,
            node_ports: 30000..=32767,
        })
    }

    /// The first usable address: the `kubernetes` service's ClusterIP.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        n > self.base && n < self.base + self.size - 1
    }

    async fn claim(&self, key: String, owner: &str) -> ApiResult<bool> {
        match self
            .store
            .put(
                key.into_bytes(),
                owner.as_bytes().to_vec(),
                Condition::Absent,
            )
            .await?
        {
            WriteOutcome::Committed { .. } => Ok(true),
            WriteOutcome::Failed { .. } => Ok(false),
        }
    }

    /// Releases claims made by a failed write.
    pub async fn release(&self, claims: Vec<String>) {
        for key in claims {
            if let Err(e) = self.store.delete(key.into_bytes(), Condition::None).await {
                tracing::warn!(error = %e, "releasing a service address claim failed");
            }
        }
    }

    /// Releases what a deleted object held.
    pub async fn release_for(&self, def: &ResourceDef, obj: &Value) {
        if !is_service(def) {
            return;
        }
        let mut claims = Vec::new();
        for ip in obj
            .pointer("/spec/clusterIPs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if ip != "None" {
                claims.push(format!("{IP_PREFIX}{ip}"));
            }
        }
        for np in node_ports(obj) {
            claims.push(format!("{PORT_PREFIX}{np}"));
        }
        self.release(claims).await;
    }

    /// Assigns a ClusterIP and NodePorts to a service (keeping those of `old`), returning the
    /// claims made. Other kinds pass through.
    pub async fn allocate(
        &self,
        def: &ResourceDef,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<Vec<String>> {
        if !is_service(def) {
            return Ok(Vec::new());
        }
        let owner = format!(
            "{}/{}",
            obj.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(""),
            obj.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        );
        let mut claims = Vec::new();
        match self.allocate_inner(obj, old, &owner, &mut claims).await {
            Ok(()) => Ok(claims),
            Err(e) => {
                self.release(claims).await;
                Err(e)
            }
        }
    }

    async fn allocate_inner(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        owner: &str,
        claims: &mut Vec<String>,
    ) -> ApiResult<()> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ty = obj
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        let invalid = |field: &str, value: kox_api::field::BadValue, detail: &str| {
            ApiError::invalid(
                "Service",
                "",
                &name,
                &[crate::validation::FieldError::invalid(
                    &crate::validation::p(field),
                    value,
                    detail,
                )],
            )
        };
        // ClusterIP.
        let old_ip = old
            .and_then(|o| o.pointer("/spec/clusterIP"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let asked = obj
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if ty != "ExternalName" {
            let ip = match (old_ip, asked.as_str()) {
                (Some(old), "") => old,
                (Some(old), asked) if asked == old => old,
                (_, "None") => "None".to_string(),
                (_, "") => {
                    let mut found = None;
                    for _ in 0..64 {
                        let offset = rand::rng().random_range(1..self.size - 1);
                        let ip = Ipv4Addr::from(self.base + offset);
                        // Leave the first address for the `kubernetes` service.
                        if offset == 1 {
                            continue;
                        }
                        if self.claim(format!("{IP_PREFIX}{ip}"), owner).await? {
                            claims.push(format!("{IP_PREFIX}{ip}"));
                            found = Some(ip.to_string());
                            break;
                        }
                    }
                    found.ok_or_else(|| {
                        ApiError::internal("failed to allocate a service IP: range is full")
                    })?
                }
                (_, asked) => {
                    let ip: Ipv4Addr = asked.parse().map_err(|_| {
                        invalid(
                            "spec.clusterIPs[0]",
                            asked.into(),
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                        )
                    })?;
                    if !self.contains(ip) {
                        return Err(invalid(
                            "spec.clusterIPs",
                            vec![ip.to_string()].into(),
                            &format!(
                                "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}/{}",
                                Ipv4Addr::from(self.base),
                                32 - self.size.trailing_zeros()
                            ),
                        ));
                    }
                    if !self.claim(format!("{IP_PREFIX}{ip}"), owner).await? {
                        return Err(invalid(
                            "spec.clusterIPs",
                            vec![ip.to_string()].into(),
                            &format!(
                                "failed to allocate IP {ip}: provided IP is already allocated"
                            ),
                        ));
                    }
                    claims.push(format!("{IP_PREFIX}{ip}"));
                    ip.to_string()
                }
            };
            let spec = &mut obj["spec"];
            spec["clusterIP"] = json!(ip);
            spec["clusterIPs"] = json!([ip]);
            if ip != "None" || spec.get("ipFamilies").is_none() {
                spec["ipFamilies"] = json!(["IPv4"]);
                spec["ipFamilyPolicy"] = json!("SingleStack");
            }
        }
        // NodePorts.
        if ty == "NodePort" || ty == "LoadBalancer" {
            // Upstream's patchAllocatedValues: a port that names no nodePort keeps the one its
            // name had, unless another port asks for that one now; the port number may change.
            let old_ports: Vec<(String, i64)> = old
                .and_then(|o| o.pointer("/spec/ports"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
                    Some((name.to_string(), p.get("nodePort")?.as_i64()?))
                })
                .collect();
            let asked_all = node_ports(obj);
            let count = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0);
            for i in 0..count {
                let name = obj["spec"]["ports"][i]
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let asked = obj["spec"]["ports"][i]
                    .get("nodePort")
                    .and_then(Value::as_i64)
                    .filter(|n| *n != 0);
                let kept = old_ports
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, np)| *np)
                    .filter(|np| !asked_all.contains(np));
                let np = match (asked, kept) {
                    (None, Some(k)) => k,
                    // Already this service's.
                    (Some(a), _) if old_ports.iter().any(|(_, np)| *np == a) => a,
                    (Some(a), _) => {
                        if !self.node_ports.contains(&(a as u16)) || a > 65535 {
                            return Err(invalid(
                                &format!("spec.ports[{i}].nodePort"),
                                a.into(),
                                "provided port is not in the valid range. The range of valid ports is 30000-32767",
                            ));
                        }
                        if !self.claim(format!("{PORT_PREFIX}{a}"), owner).await? {
                            return Err(invalid(
                                &format!("spec.ports[{i}].nodePort"),
                                a.into(),
                                "provided port is already allocated",
                            ));
                        }
                        claims.push(format!("{PORT_PREFIX}{a}"));
                        a
                    }
                    (None, None) => {
                        let mut found = None;
                        for _ in 0..128 {
                            let p = rand::rng().random_range(self.node_ports.clone());
                            if self.claim(format!("{PORT_PREFIX}{p}"), owner).await? {
                                claims.push(format!("{PORT_PREFIX}{p}"));
                                found = Some(i64::from(p));
                                break;
                            }
                        }
                        found.ok_or_else(|| {
                            ApiError::internal("failed to allocate a node port: range is full")
                        })?
                    }
                };
                obj["spec"]["ports"][i]["nodePort"] = json!(np);
            }
        }
        Ok(())
    }

    /// Claims the `kubernetes` service's address at bootstrap (idempotent).
    pub async fn claim_first_ip(&self) -> ApiResult<()> {
        self.claim(
            format!("{IP_PREFIX}{}", self.first_ip()),
            "default/kubernetes",
        )
        .await
        .map(|_| ())
    }
}

fn is_service(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.kind == "Service"
}

fn node_ports(obj: &Value) -> Vec<i64> {
    obj.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
        .collect()
}
