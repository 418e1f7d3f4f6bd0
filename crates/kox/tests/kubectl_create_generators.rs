//! End to end: kubectl's `create <kind>` generators, which send their objects as protobuf
//! (`application/vnd.kubernetes.protobuf`), against a real `kox server` — what kubectl prints and
//! what the cluster then holds.

mod common;

use common::{Cluster, table};
use serde_json::Value;

/// `kubectl get <args> -o json`, parsed.
fn get_json(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = c.ok(&all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {all:?}: {e}: {out}"))
}

/// The table row (header excluded) whose first cell is `name`.
fn row(out: &str, name: &str) -> Vec<String> {
    table(out)
        .into_iter()
        .skip(1)
        .find(|r| r[0] == name)
        .unwrap_or_else(|| panic!("no row {name} in {out}"))
}

#[test]
fn namespace_configmap_and_secret_generators() {
    let c = Cluster::start();
    assert_eq!(
        c.ok(&["create", "namespace", "x"]).trim(),
        "namespace/x created"
    );
    assert_eq!(row(&c.ok(&["get", "ns", "x"]), "x")[1], "Active");

    let files = tempfile::tempdir().expect("temp dir");
    let text = files.path().join("game.properties");
    std::fs::write(&text, "lives=3\nlevel=7\n").expect("write file");
    let binary = files.path().join("blob");
    std::fs::write(&binary, [0u8, 1, 2, 0xff]).expect("write file");
    let from_text = format!("--from-file={}", text.display());
    let from_binary = format!("--from-file=bin={}", binary.display());
    let out = c.ok(&[
        "create",
        "configmap",
        "c",
        "-n",
        "x",
        "--from-literal=a=b",
        &from_text,
        &from_binary,
    ]);
    assert_eq!(out.trim(), "configmap/c created");
    let cm = get_json(&c, &["cm", "c", "-n", "x"]);
    assert_eq!(cm["data"]["a"], "b", "{cm}");
    assert_eq!(cm["data"]["game.properties"], "lives=3\nlevel=7\n", "{cm}");
    assert_eq!(cm["binaryData"]["bin"], "AAEC/w==", "{cm}");
    assert_eq!(cm["metadata"]["namespace"], "x", "{cm}");
    assert!(
        cm["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    // The DATA column counts data and binaryData.
    assert_eq!(row(&c.ok(&["get", "cm", "c", "-n", "x"]), "c")[1], "3");

    let out = c.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=p=q",
        "--from-literal=empty=",
    ]);
    assert_eq!(out.trim(), "secret/s created");
    assert_eq!(
        c.ok(&["get", "secret", "s", "-o", "jsonpath={.data.p}"]),
        "cQ=="
    );
    let secret = get_json(&c, &["secret", "s"]);
    assert_eq!(secret["type"], "Opaque", "{secret}");
    assert_eq!(secret["data"]["empty"], "", "{secret}");
    let secrets = c.ok(&["get", "secret", "s"]);
    assert_eq!(row(&secrets, "s")[1..3], ["Opaque", "2"], "{secrets}");

    let out = c.ok(&[
        "create",
        "secret",
        "docker-registry",
        "reg",
        "--docker-server=registry.example.com",
        "--docker-username=u",
        "--docker-password=p",
    ]);
    assert_eq!(out.trim(), "secret/reg created");
    let reg = get_json(&c, &["secret", "reg"]);
    assert_eq!(reg["type"], "kubernetes.io/dockerconfigjson", "{reg}");
    assert!(reg["data"][".dockerconfigjson"].is_string(), "{reg}");

    // Creating again is a conflict, reported as upstream does.
    let err = c.fails(&["create", "namespace", "x"]);
    assert!(
        err.contains(r#"Error from server (AlreadyExists): namespaces "x" already exists"#),
        "{err}"
    );
}

#[test]
fn workload_and_service_generators() {
    let c = Cluster::start();
    let out = c.ok(&["create", "deployment", "d", "--image=nginx", "--replicas=3"]);
    assert_eq!(out.trim(), "deployment.apps/d created");
    let wide = c.ok(&["get", "deploy", "d", "-o", "wide"]);
    let rows = table(&wide);
    assert_eq!(
        rows[0],
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ],
        "{wide}"
    );
    let d = row(&wide, "d");
    assert_eq!(d[1], "0/3", "{wide}");
    assert_eq!(d[5..], ["nginx", "nginx", "app=d"], "{wide}");
    let deploy = get_json(&c, &["deploy", "d"]);
    assert_eq!(deploy["spec"]["replicas"], 3, "{deploy}");
    assert_eq!(deploy["spec"]["template"]["metadata"]["labels"]["app"], "d");
    // Defaults apply as for a JSON manifest: the decoded body has no empty strategy or status.
    assert_eq!(
        deploy["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%",
        "{deploy}"
    );
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );

    // replicas 0 is a pointer set to zero: it stays 0 rather than defaulting to 1.
    c.ok(&[
        "create",
        "deployment",
        "zero",
        "--image=nginx:1.27",
        "--replicas=0",
        "--port=80",
    ]);
    let zero = get_json(&c, &["deploy", "zero"]);
    assert_eq!(zero["spec"]["replicas"], 0, "{zero}");
    let container = &zero["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27", "{zero}");
    assert_eq!(container["ports"][0]["containerPort"], 80, "{zero}");
    assert_eq!(container["ports"][0]["protocol"], "TCP", "{zero}");

    let out = c.ok(&["create", "service", "clusterip", "s", "--tcp=80:8080"]);
    assert_eq!(out.trim(), "service/s created");
    let svc = get_json(&c, &["svc", "s"]);
    let port = &svc["spec"]["ports"][0];
    assert_eq!(port["name"], "80-8080", "{svc}");
    assert_eq!(port["port"], 80, "{svc}");
    assert_eq!(port["targetPort"], 8080, "{svc}");
    assert_eq!(svc["spec"]["selector"]["app"], "s", "{svc}");
    let services = c.ok(&["get", "svc", "s"]);
    let s = row(&services, "s");
    assert_eq!(s[1], "ClusterIP", "{services}");
    assert!(s[2].starts_with("10."), "{services}");
    assert_eq!(s[4], "80/TCP", "{services}");

    let out = c.ok(&["create", "service", "nodeport", "np", "--tcp=80:http"]);
    assert_eq!(out.trim(), "service/np created");
    let np = get_json(&c, &["svc", "np"]);
    assert_eq!(np["spec"]["type"], "NodePort", "{np}");
    assert_eq!(np["spec"]["ports"][0]["targetPort"], "http", "{np}");
    assert!(np["spec"]["ports"][0]["nodePort"].as_i64().unwrap_or(0) >= 30000);

    let out = c.ok(&["create", "job", "j", "--image=busybox", "--", "echo", "hi"]);
    assert_eq!(out.trim(), "job.batch/j created");
    let job = get_json(&c, &["job", "j"]);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["image"], "busybox", "{job}");
    assert_eq!(
        pod["containers"][0]["command"],
        serde_json::json!(["echo", "hi"])
    );
    assert_eq!(pod["restartPolicy"], "Never", "{job}");

    let out = c.ok(&[
        "create",
        "cronjob",
        "cj",
        "--image=busybox",
        "--schedule=*/5 * * * *",
    ]);
    assert_eq!(out.trim(), "cronjob.batch/cj created");
    let cronjobs = c.ok(&["get", "cronjob", "cj"]);
    assert_eq!(
        row(&cronjobs, "cj")[1..5],
        ["*/5", "*", "*", "*"],
        "{cronjobs}"
    );
    let cj = get_json(&c, &["cronjob", "cj"]);
    assert_eq!(cj["spec"]["schedule"], "*/5 * * * *", "{cj}");
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"], "OnFailure",
        "{cj}"
    );

    // A job from the cron job's template: kubectl reads the cron job, then sends a Job.
    let out = c.ok(&["create", "job", "manual", "--from=cronjob/cj"]);
    assert_eq!(out.trim(), "job.batch/manual created");
    let manual = get_json(&c, &["job", "manual"]);
    assert_eq!(
        manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"], "manual",
        "{manual}"
    );
    assert_eq!(manual["metadata"]["ownerReferences"][0]["kind"], "CronJob");
}

#[test]
fn access_and_policy_generators() {
    let c = Cluster::start();
    let out = c.ok(&["create", "serviceaccount", "sa"]);
    assert_eq!(out.trim(), "serviceaccount/sa created");
    assert!(table(&c.ok(&["get", "sa"])).iter().any(|r| r[0] == "sa"));

    let out = c.ok(&["create", "role", "r", "--verb=get", "--resource=pods"]);
    assert_eq!(out.trim(), "role.rbac.authorization.k8s.io/r created");
    let role = get_json(&c, &["role", "r"]);
    assert_eq!(
        role["rules"],
        serde_json::json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
        "{role}"
    );

    let out = c.ok(&[
        "create",
        "rolebinding",
        "rb",
        "--role=r",
        "--user=u",
        "--serviceaccount=default:sa",
    ]);
    assert_eq!(
        out.trim(),
        "rolebinding.rbac.authorization.k8s.io/rb created"
    );
    let bindings = c.ok(&["get", "rolebinding", "rb", "-o", "wide"]);
    let rb = row(&bindings, "rb");
    assert_eq!(rb[1], "Role/r", "{bindings}");
    assert!(rb.contains(&"u".to_string()), "{bindings}");
    assert!(rb.contains(&"default/sa".to_string()), "{bindings}");

    let out = c.ok(&[
        "create",
        "clusterrole",
        "cr",
        "--verb=list",
        "--resource=nodes",
    ]);
    assert_eq!(
        out.trim(),
        "clusterrole.rbac.authorization.k8s.io/cr created"
    );
    let out = c.ok(&[
        "create",
        "clusterrolebinding",
        "crb",
        "--clusterrole=cr",
        "--group=g",
    ]);
    assert_eq!(
        out.trim(),
        "clusterrolebinding.rbac.authorization.k8s.io/crb created"
    );
    let crb = get_json(&c, &["clusterrolebinding", "crb"]);
    assert_eq!(crb["roleRef"]["kind"], "ClusterRole", "{crb}");
    assert_eq!(crb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(crb["subjects"][0]["kind"], "Group", "{crb}");

    let out = c.ok(&["create", "priorityclass", "pc", "--value=1000"]);
    assert_eq!(out.trim(), "priorityclass.scheduling.k8s.io/pc created");
    let classes = c.ok(&["get", "priorityclass", "pc"]);
    assert_eq!(row(&classes, "pc")[1..3], ["1000", "false"], "{classes}");

    let out = c.ok(&["create", "quota", "q", "--hard=pods=10,cpu=1500m"]);
    assert_eq!(out.trim(), "resourcequota/q created");
    let quota = get_json(&c, &["quota", "q"]);
    assert_eq!(quota["spec"]["hard"]["pods"], "10", "{quota}");
    assert_eq!(quota["spec"]["hard"]["cpu"], "1500m", "{quota}");

    let out = c.ok(&[
        "create",
        "pdb",
        "p",
        "--selector=app=x",
        "--min-available=1",
    ]);
    assert_eq!(out.trim(), "poddisruptionbudget.policy/p created");
    let out = c.ok(&[
        "create",
        "pdb",
        "half",
        "--selector=app=x",
        "--max-unavailable=50%",
    ]);
    assert_eq!(out.trim(), "poddisruptionbudget.policy/half created");
    let pdbs = c.ok(&["get", "pdb"]);
    assert_eq!(row(&pdbs, "p")[1..3], ["1", "N/A"], "{pdbs}");
    assert_eq!(row(&pdbs, "half")[1..3], ["N/A", "50%"], "{pdbs}");
    let p = get_json(&c, &["pdb", "p"]);
    assert_eq!(p["spec"]["minAvailable"], 1, "{p}");
    assert_eq!(p["spec"]["selector"]["matchLabels"]["app"], "x", "{p}");

    let out = c.ok(&["create", "ingress", "i", "--rule=foo.com/bar=svc1:8080"]);
    assert_eq!(out.trim(), "ingress.networking.k8s.io/i created");
    let ing = get_json(&c, &["ingress", "i"]);
    let rule = &ing["spec"]["rules"][0];
    assert_eq!(rule["host"], "foo.com", "{ing}");
    let path = &rule["http"]["paths"][0];
    assert_eq!(path["path"], "/bar", "{ing}");
    assert_eq!(path["pathType"], "Exact", "{ing}");
    assert_eq!(path["backend"]["service"]["name"], "svc1", "{ing}");
    assert_eq!(path["backend"]["service"]["port"]["number"], 8080, "{ing}");
    let ingresses = c.ok(&["get", "ingress", "i"]);
    assert_eq!(row(&ingresses, "i")[2], "foo.com", "{ingresses}");
}

#[test]
fn dry_run_server_generators_write_nothing() {
    let c = Cluster::start();
    let cases: &[(&[&str], &str, &[&str])] = &[
        (
            &["create", "namespace", "dry"],
            "namespace/dry created (server dry run)",
            &["ns", "dry"],
        ),
        (
            &["create", "configmap", "dry", "--from-literal=a=b"],
            "configmap/dry created (server dry run)",
            &["cm", "dry"],
        ),
        (
            &["create", "secret", "generic", "dry", "--from-literal=p=q"],
            "secret/dry created (server dry run)",
            &["secret", "dry"],
        ),
        (
            &[
                "create",
                "deployment",
                "dry",
                "--image=nginx",
                "--replicas=3",
            ],
            "deployment.apps/dry created (server dry run)",
            &["deploy", "dry"],
        ),
        (
            &["create", "service", "clusterip", "dry", "--tcp=80:8080"],
            "service/dry created (server dry run)",
            &["svc", "dry"],
        ),
        (
            &["create", "job", "dry", "--image=busybox"],
            "job.batch/dry created (server dry run)",
            &["job", "dry"],
        ),
        (
            &["create", "role", "dry", "--verb=get", "--resource=pods"],
            "role.rbac.authorization.k8s.io/dry created (server dry run)",
            &["role", "dry"],
        ),
        (
            &["create", "priorityclass", "dry", "--value=10"],
            "priorityclass.scheduling.k8s.io/dry created (server dry run)",
            &["priorityclass", "dry"],
        ),
        (
            &["create", "quota", "dry", "--hard=pods=10"],
            "resourcequota/dry created (server dry run)",
            &["quota", "dry"],
        ),
        (
            &[
                "create",
                "pdb",
                "dry",
                "--selector=app=x",
                "--min-available=1",
            ],
            "poddisruptionbudget.policy/dry created (server dry run)",
            &["pdb", "dry"],
        ),
    ];
    for (create, printed, get) in cases {
        let mut args = create.to_vec();
        args.push("--dry-run=server");
        assert_eq!(c.ok(&args).trim(), *printed, "{args:?}");
        let mut get_args = vec!["get"];
        get_args.extend_from_slice(get);
        let err = c.fails(&get_args);
        assert!(err.contains("NotFound"), "{get_args:?}: {err}");
    }

    // The server's answer to a dry run is the defaulted object, decoded from protobuf.
    let out = c.ok(&[
        "create",
        "deployment",
        "dry",
        "--image=nginx",
        "--replicas=0",
        "--dry-run=server",
        "-o",
        "json",
    ]);
    let deploy: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(deploy["spec"]["replicas"], 0, "{deploy}");
    assert_eq!(
        deploy["spec"]["strategy"]["type"], "RollingUpdate",
        "{deploy}"
    );
    assert_eq!(deploy["metadata"]["name"], "dry", "{deploy}");
}
