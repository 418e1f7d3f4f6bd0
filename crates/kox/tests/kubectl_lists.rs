//! `kind: List` files — what `kubectl get -o yaml` writes — through `apply`, `create` and
//! `replace`, with the kubectl matching the server and the oldest and newest releases beside
//! it; and the `/openapi/v2` document kubectl validates such files against.

mod common;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{Cluster, curl, header, status};
use serde_json::{Value, json};

/// Where the kubectl releases other than the dispatcher's are installed.
const KUBECTL_RELEASES: &str = "/usr/lib/google-cloud-sdk/bin";

/// One kubectl binary pointed at the cluster.
struct Kubectl<'a> {
    cluster: &'a Cluster,
    program: PathBuf,
    /// Tells apart the namespaces and files of each binary's cases.
    tag: String,
}

impl<'a> Kubectl<'a> {
    /// The kubectl on PATH: the dispatcher runs the release matching the server's version.
    fn dispatcher(cluster: &'a Cluster) -> Self {
        Kubectl {
            cluster,
            program: PathBuf::from("kubectl"),
            tag: "server".into(),
        }
    }

    /// The installed `kubectl.1.<minor>`, or `None` (saying so) when it is missing.
    fn release(cluster: &'a Cluster, minor: u32) -> Option<Self> {
        let program = Path::new(KUBECTL_RELEASES).join(format!("kubectl.1.{minor}"));
        if !program.exists() {
            eprintln!(
                "skipping kubectl 1.{minor}: {} is not installed",
                program.display()
            );
            return None;
        }
        Some(Kubectl {
            cluster,
            program,
            tag: format!("1-{minor}"),
        })
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = self.cluster.kubectl_program_cmd(&self.program, args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
        drop(input);
        child.wait_with_output().expect("kubectl output")
    }

    fn ok_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            self.program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_stdin(args, None)
    }

    /// Runs expecting failure; returns stderr.
    fn fails_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            !out.status.success(),
            "{} {args:?} should have failed: {}",
            self.program.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Writes `text` to a file of this binary's own in the cluster's data directory.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.cluster.data_dir().join(format!("{}-{name}", self.tag));
        std::fs::write(&path, text).expect("write manifest");
        path.display().to_string()
    }
}

fn assert_lists(out: &str, wanted: &[&str]) {
    for line in wanted {
        assert!(out.contains(line), "expected {line:?} in:\n{out}");
    }
}

/// A Deployment, a Service and a ConfigMap in a namespace of their own, exported as a List
/// and applied, replaced, created elsewhere and piped back.
fn list_round_trip(k: &Kubectl) {
    let ns = format!("lists-{}", k.tag);
    k.ok(&["create", "namespace", &ns]);
    k.ok(&["-n", &ns, "create", "deployment", "web", "--image=nginx"]);
    k.ok(&[
        "-n",
        &ns,
        "create",
        "service",
        "clusterip",
        "web",
        "--tcp=80:8080",
    ]);
    k.ok(&[
        "-n",
        &ns,
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
    ]);
    let export = || k.ok(&["-n", &ns, "get", "deploy,svc,cm", "-o", "yaml"]);

    let listing = export();
    assert!(listing.contains("kind: List"), "{listing}");
    let file = k.file("all.yaml", &listing);
    let out = k.ok(&["apply", "-f", &file]);
    assert_lists(
        &out,
        &[
            "deployment.apps/web configured",
            "service/web configured",
            "configmap/settings configured",
        ],
    );

    // The apply changed every resourceVersion: export again, as a user would.
    let file = k.file("all.yaml", &export());
    let out = k.ok(&["replace", "-f", &file]);
    assert_lists(
        &out,
        &[
            "deployment.apps/web replaced",
            "service/web replaced",
            "configmap/settings replaced",
        ],
    );

    let fresh = format!("lists-{}-copy", k.tag);
    k.ok(&["create", "namespace", &fresh]);
    let list: Value =
        serde_json::from_str(&k.ok(&["-n", &ns, "get", "deploy,svc,cm", "-o", "json"]))
            .expect("a JSON List");
    let file = k.file("copy.json", &portable(&list).to_string());
    let out = k.ok(&["-n", &fresh, "create", "-f", &file]);
    assert_lists(
        &out,
        &[
            "deployment.apps/web created",
            "service/web created",
            "configmap/settings created",
        ],
    );
    k.ok(&[
        "-n",
        &fresh,
        "get",
        "deployment/web",
        "service/web",
        "configmap/settings",
    ]);

    let config_maps = k.ok(&["-n", &ns, "get", "cm", "-o", "json"]);
    let out = k.ok_stdin(&["apply", "-f", "-"], Some(&config_maps));
    assert_lists(&out, &["configmap/settings configured"]);

    // kubectl validated the items against /openapi/v2: an unknown field is its own error.
    let bad = json!({
        "apiVersion": "v1", "kind": "List",
        "items": [{
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "typo" }, "dta": { "a": "b" },
        }],
    });
    let err = k.fails_stdin(&["-n", &ns, "apply", "-f", "-"], Some(&bad.to_string()));
    assert!(err.contains(r#"unknown field "dta""#), "{err}");
}

/// `list` without what ties its items to where they were read from: namespace, identity,
/// versions, status and the Service's allocated addresses.
fn portable(list: &Value) -> Value {
    let items: Vec<Value> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let mut item = item.clone();
            let meta = &item["metadata"];
            item["metadata"] = json!({ "name": meta["name"], "labels": meta["labels"] });
            let fields = item.as_object_mut().expect("an object");
            fields.remove("status");
            if let Some(spec) = fields.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
            item
        })
        .collect();
    json!({ "apiVersion": "v1", "kind": "List", "items": items })
}

/// A manifest of a version the server does not serve gets upstream's mapping error, not a
/// validation failure.
fn removed_api_version_has_no_match(k: &Kubectl) {
    let file = k.file(
        "v1beta1.yaml",
        "apiVersion: apps/v1beta1\nkind: Deployment\nmetadata:\n  name: old\nspec:\n  template:\n    \
         metadata:\n      labels: {app: old}\n    spec:\n      containers:\n      - name: c\n        \
         image: nginx\n",
    );
    for verb in ["apply", "create"] {
        let err = k.fails_stdin(&[verb, "-f", &file], None);
        assert!(
            err.contains(r#"no matches for kind "Deployment" in version "apps/v1beta1""#),
            "{verb}: {err}"
        );
    }
}

// The controller manager stays off so nothing rewrites the exported objects between an export
// and its use (a Deployment's status, `kube-root-ca.crt`).
#[test]
fn list_files_apply_create_and_replace_with_old_and_new_kubectl() {
    let c = Cluster::start_with(&["--disable-controller-manager"]);
    let kubectls: Vec<Kubectl> = std::iter::once(Kubectl::dispatcher(&c))
        .chain(Kubectl::release(&c, 27))
        .chain(Kubectl::release(&c, 33))
        .collect();
    for k in &kubectls {
        list_round_trip(k);
        removed_api_version_has_no_match(k);
    }
}

#[test]
fn explain_and_apply_work_with_kubectl_1_27_and_1_28() {
    let c = Cluster::start();
    for k in [27, 28]
        .into_iter()
        .filter_map(|minor| Kubectl::release(&c, minor))
    {
        let out = k.ok(&["explain", "deployment.spec.replicas"]);
        assert_lists(
            &out,
            &[
                "Deployment",
                "replicas",
                "<integer>",
                "Number of desired pods",
            ],
        );
        let out = k.ok(&["explain", "pods"]);
        assert_lists(&out, &["KIND:", "Pod", "spec"]);
        // These releases read /openapi/v2 for a single manifest too.
        let name = format!("one-{}", k.tag);
        let file = k.file(
            "cm.yaml",
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"),
        );
        assert_lists(
            &k.ok(&["apply", "-f", &file]),
            &[&format!("configmap/{name} created")],
        );
    }
}

/// `curl` as the admin with these request headers: the response's head and body.
fn get(c: &Cluster, path: &str, headers: &[&str]) -> (String, Vec<u8>) {
    let args: Vec<&OsStr> = headers
        .iter()
        .flat_map(|h| [OsStr::new("-H"), OsStr::new(h)])
        .collect();
    curl(c, path, &args)
}

#[test]
fn openapi_v2_is_served_as_protobuf_and_json_with_an_etag() {
    let c = Cluster::start();
    let (head, proto) = get(
        &c,
        "/openapi/v2",
        &["Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf"],
    );
    assert_eq!(status(&head), "200", "{head}");
    assert_eq!(
        header(&head, "content-type"),
        Some("application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    );
    // Field 1 of the Document, `swagger`, a string of 3 bytes: "2.0".
    assert!(
        proto.starts_with(b"\x0a\x032.0"),
        "{:?}",
        &proto[..16.min(proto.len())]
    );
    let contains = |needle: &[u8]| proto.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"io.k8s.api.core.v1.ConfigMap"));
    assert!(contains(b"x-kubernetes-group-version-kind"));
    let etag = header(&head, "etag").expect("an ETag").to_string();

    let (head, json_body) = get(&c, "/openapi/v2", &["Accept: application/json"]);
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    assert_eq!(header(&head, "etag"), Some(etag.as_str()));
    let doc: Value = serde_json::from_slice(&json_body).expect("JSON");
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(
        doc["definitions"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
        json!([{ "group": "apps", "version": "v1", "kind": "Deployment" }])
    );
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert!(
        patch["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"),
        "{patch}"
    );

    let (head, body) = get(
        &c,
        "/openapi/v2",
        &[
            "Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            &format!("If-None-Match: {etag}"),
        ],
    );
    assert_eq!(status(&head), "304", "{head}");
    assert!(body.is_empty());
    let (head, _) = get(&c, "/openapi/v2", &["If-None-Match: \"stale\""]);
    assert_eq!(status(&head), "200", "{head}");
    let (head, _) = get(&c, "/openapi/v2", &["Accept: text/html"]);
    assert_eq!(status(&head), "406", "{head}");
}
