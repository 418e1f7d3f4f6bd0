//! A fuzz run against a real `kox server`: requests with generated paths, queries, headers and
//! bodies (valid objects bent out of shape, bytes at random), as the admin (so they reach the
//! handlers, admission and validation) and anonymously. Every request must get an answer
//! that is not a server error, and the server must keep answering.
//!
//! CI runs a short run. A longer one, with another seed:
//! `KOX_FUZZ_REQUESTS=100000 KOX_FUZZ_SEED=7 cargo test -p kox --test fuzz_requests -- --nocapture`

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Cluster, h2_admin};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

/// A small deterministic generator (xorshift64*), so a failing run can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const RESOURCES: &[(&str, &str)] = &[
    ("/api/v1", "pods"),
    ("/api/v1", "configmaps"),
    ("/api/v1", "secrets"),
    ("/api/v1", "services"),
    ("/api/v1", "namespaces"),
    ("/api/v1", "nodes"),
    ("/api/v1", "serviceaccounts"),
    ("/apis/apps/v1", "deployments"),
    ("/apis/batch/v1", "jobs"),
    ("/apis/rbac.authorization.k8s.io/v1", "clusterroles"),
    ("/apis/coordination.k8s.io/v1", "leases"),
    ("/apis/networking.k8s.io/v1", "networkpolicies"),
    (
        "/apis/admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
    ),
];

const SEGMENTS: &[&str] = &[
    "fuzz",
    "default",
    "kube-system",
    "..",
    "%2e%2e",
    "%2F",
    "a%00b",
    "",
    "UPPER",
    "x.y",
    "status",
    "scale",
    "binding",
    "eviction",
    "token",
    "log",
    "exec",
    "finalize",
    "proxy",
    "%C3%A9",
    "%ff%fe",
    "a%20b",
];

const QUERIES: &[&str] = &[
    "limit=-1",
    "limit=99999999999999999999",
    "limit=2&continue=garbage",
    "resourceVersion=-5",
    "resourceVersion=abc",
    "resourceVersion=0",
    "resourceVersionMatch=Exact&resourceVersion=1",
    "watch=true&timeoutSeconds=1",
    "watch=1&resourceVersion=1&timeoutSeconds=1",
    "labelSelector=a%20in%20(",
    "labelSelector=a!=b,c",
    "fieldSelector=spec.nodeName%3D%3D",
    "fieldSelector=metadata.name=x,,",
    "dryRun=All",
    "dryRun=Bogus",
    "fieldValidation=Strict",
    "fieldManager=%ff",
    "propagationPolicy=Nope",
    "gracePeriodSeconds=-100",
    "includeObject=Object",
    "pretty=true",
];

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "text/plain",
    "",
];

const ACCEPTS: &[&str] = &[
    "application/json",
    "application/json;as=Table;v=v1;g=meta.k8s.io",
    "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
    "application/vnd.kubernetes.protobuf",
    "application/yaml",
    "*/*",
    "garbage/;;;",
];

/// A valid object to bend.
fn seed_object(rng: &mut Rng) -> Value {
    let name = format!("fuzz-{}", rng.below(20));
    match rng.below(4) {
        0 => json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "labels": {"a": "b"}}, "data": {"k": "v"}}),
        1 => json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                    "spec": {"containers": [{"name": "c", "image": "i",
                             "env": [{"name": "E", "value": "1"}],
                             "ports": [{"containerPort": 80}]}]}}),
        2 => json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                             "template": {"metadata": {"labels": {"a": "b"}},
                                          "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        _ => json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                    "spec": {"ports": [{"port": 80, "targetPort": "http"}], "type": "ClusterIP"}}),
    }
}

/// Replaces a value somewhere in `v` by something of another shape.
fn bend(rng: &mut Rng, v: &mut Value, depth: usize) {
    let replacement = |rng: &mut Rng| match rng.below(10) {
        0 => Value::Null,
        1 => json!(-1),
        2 => json!(1e308),
        3 => json!("x".repeat(rng.below(70_000))),
        4 => json!([]),
        5 => json!({}),
        6 => json!(true),
        7 => json!(u64::MAX),
        8 => json!({"$patch": "delete", "$retainKeys": [1]}),
        _ => json!("\u{0000}\u{ffff}"),
    };
    match v {
        Value::Object(m) if !m.is_empty() && depth < 8 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let key = rng.pick(&keys).clone();
            if rng.chance(20) {
                m.remove(&key);
            } else if rng.chance(50) {
                bend(rng, m.get_mut(&key).unwrap(), depth + 1);
            } else {
                m.insert(key, replacement(rng));
            }
        }
        Value::Array(a) if !a.is_empty() && depth < 8 => {
            let i = rng.below(a.len());
            bend(rng, &mut a[i], depth + 1);
        }
        other => *other = replacement(rng),
    }
}

fn body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => Vec::new(),
        1 => (0..rng.below(4096)).map(|_| rng.next() as u8).collect(),
        2 => {
            // Deep nesting.
            let n = rng.below(20_000);
            format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()
        }
        3 => b"k8s\x00\x0a\x02v1\x12\x03Pod\x1a\xff\xff\xff\xff\x0f".to_vec(),
        4 => br#"[{"op":"replace","path":"/metadata/name","value":"x"},{"op":"move","from":"/a","path":"/a/b"}]"#.to_vec(),
        _ => {
            let mut v = seed_object(rng);
            for _ in 0..=rng.below(4) {
                bend(rng, &mut v, 0);
            }
            serde_json::to_vec(&v).unwrap()
        }
    }
}

fn path(rng: &mut Rng) -> String {
    let (prefix, resource) = *rng.pick(RESOURCES);
    let mut path = prefix.to_string();
    let namespaced =
        resource != "namespaces" && resource != "nodes" && !resource.starts_with("cluster");
    if namespaced && rng.chance(70) {
        path += &format!("/namespaces/{}", rng.pick(&["default", "fuzz", "%ff"]));
    }
    path += &format!("/{resource}");
    for _ in 0..rng.below(3) {
        path += &format!("/{}", rng.pick(SEGMENTS));
    }
    if rng.chance(60) {
        let queries: Vec<&str> = (0..=rng.below(3)).map(|_| *rng.pick(QUERIES)).collect();
        path += &format!("?{}", queries.join("&"));
    }
    path
}

#[test]
fn generated_requests_never_get_a_server_error() {
    let requests: usize = std::env::var("KOX_FUZZ_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let seed: u64 = std::env::var("KOX_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x006b_6f78);
    let c = Cluster::start_with(&["--disable-scheduler", "--disable-controller-manager"]);
    c.ok(&["create", "namespace", "fuzz"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let failures = rt.block_on(async {
        let mut rng = Rng(seed | 1);
        let mut send = h2_admin(&c).await;
        let mut failures = Vec::new();
        for i in 0..requests {
            let method = *rng.pick(&["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]);
            let path = path(&mut rng);
            let mut req = http::Request::builder().method(method).uri(&path);
            let ct = *rng.pick(CONTENT_TYPES);
            if !ct.is_empty() {
                req = req.header("Content-Type", ct);
            }
            req = req.header("Accept", *rng.pick(ACCEPTS));
            if rng.chance(5) {
                req = req.header("Impersonate-User", *rng.pick(&["system:admin", "", "x"]));
            }
            if rng.chance(5) {
                req = req.header("Impersonate-Group", "system:masters");
            }
            let body = body(&mut rng);
            let sent = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            let req = req.body(Full::new(Bytes::from(body))).unwrap();
            if send.ready().await.is_err() {
                send = h2_admin(&c).await;
            }
            let answer = tokio::time::timeout(Duration::from_secs(10), async {
                let resp = send.send_request(req).await?;
                let code = resp.status().as_u16();
                resp.into_body().collect().await?;
                Ok::<_, hyper::Error>(code)
            })
            .await;
            match answer {
                Ok(Ok(code)) if code < 500 || code == 503 || code == 504 => {}
                Ok(Ok(code)) => failures.push(format!("#{i} {method} {path} ({ct}): {code}")),
                Ok(Err(e)) => {
                    failures.push(format!("#{i} {method} {path} ({ct}, body {sent:?}): {e:?}"))
                }
                Err(_) => failures.push(format!("#{i} {method} {path} ({ct}): no answer in 10 s")),
            }
        }
        failures
    });
    eprintln!(
        "{requests} generated requests (seed {seed}) in {:?}",
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    c.ok(&["get", "namespaces"]);
}
