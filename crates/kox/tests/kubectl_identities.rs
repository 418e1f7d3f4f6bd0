//! The cluster's own identities: the scheduler and the controller manager act with their own
//! client certificates (`system:kube-scheduler`, `system:kube-controller-manager`) and are held
//! to their RBAC roles; each controller acts as its own ServiceAccount in `kube-system`, with
//! a token the manager requests for it; `kox kubeconfig` issues a node credential (`system:node:<name>` in
//! `system:nodes`) that the real kubectl uses, which the Node authorizer and NodeRestriction
//! confine to its own Node, pods and their secrets; certificates carry several groups; bootstrap
//! tokens, and the token cleaner that deletes them once they expire.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Cluster, FakeNodes, kox_kubeconfig, wait_for};
use serde_json::Value;

/// The audit events written so far.
fn audit_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Whether an audit event is `user` doing `verb` on `resource[/subresource]`, answered `code`.
fn is(e: &Value, user: &str, verb: &str, resource: &str, sub: Option<&str>, code: u64) -> bool {
    e["user"]["username"] == user
        && e["verb"] == verb
        && e["objectRef"]["resource"] == resource
        && e["objectRef"]["subresource"].as_str() == sub
        && e["responseStatus"]["code"] == code
}

/// `kubectl --kubeconfig <kubeconfig> auth whoami -o json`: (user, groups).
fn whoami(c: &Cluster, kubeconfig: &Path) -> (String, Vec<String>) {
    let out = c.ok(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "auth",
        "whoami",
        "-o",
        "json",
    ]);
    let review: Value = serde_json::from_str(&out).expect("SelfSubjectReview");
    let info = &review["status"]["userInfo"];
    let groups = info["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (info["username"].as_str().unwrap_or("").to_string(), groups)
}

const DEPLOYMENT_CONTROLLER: &str = "system:serviceaccount:kube-system:deployment-controller";
const REPLICASET_CONTROLLER: &str = "system:serviceaccount:kube-system:replicaset-controller";

#[test]
fn scheduler_and_controllers_act_as_their_own_users() {
    let audit = tempfile::tempdir().unwrap();
    let audit_log = audit.path().join("audit.log");
    let c = Cluster::start_with(&["--audit-log-path", audit_log.to_str().unwrap()]);

    // Their kubeconfigs are in the data directory, each with its own certificate.
    let scheduler = c.data_dir().join("scheduler.kubeconfig");
    let manager = c.data_dir().join("controller-manager.kubeconfig");
    assert_eq!(whoami(&c, &scheduler).0, "system:kube-scheduler");
    assert_eq!(whoami(&c, &manager).0, "system:kube-controller-manager");
    // Least privilege: neither may do what its role does not grant.
    // (The authorizer's caches may trail the default policy written at start by a moment.)
    let can_i = |kubeconfig: &Path, args: &[&str], want: &str| {
        let mut full = vec![
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "auth",
            "can-i",
        ];
        full.extend_from_slice(args);
        wait_for(30, &format!("can-i {args:?} = {want}"), || {
            let got = String::from_utf8_lossy(&c.kubectl(&full).stdout)
                .trim()
                .to_string();
            (got == want).then_some(()).ok_or(got)
        })
    };
    can_i(
        &scheduler,
        &["create", "pods", "--subresource=binding"],
        "yes",
    );
    can_i(&scheduler, &["create", "pods"], "no");
    can_i(&scheduler, &["get", "secrets"], "no");
    // The manager itself only reads, keeps its lease and gets its controllers' tokens; the
    // controllers write with those.
    can_i(&manager, &["list", "pods", "--all-namespaces"], "yes");
    can_i(
        &manager,
        &[
            "create",
            "serviceaccounts",
            "--subresource=token",
            "-n",
            "kube-system",
        ],
        "yes",
    );
    can_i(&manager, &["create", "replicasets.apps"], "no");
    can_i(&manager, &["create", "pods"], "no");
    can_i(&manager, &["delete", "namespaces"], "no");
    can_i(&manager, &["create", "clusterrolebindings"], "no");
    can_i(&manager, &["create", "pods", "--subresource=exec"], "no");
    can_i(&manager, &["impersonate", "users"], "no");

    // Everything still works: a deployment's pods are created and scheduled.
    let _nodes = FakeNodes::start(&c, "fake-nodes.log", &["--count", "2"]);
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    wait_for(90, "2 running pods of deployment web", || {
        let out = c.ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName}/{.status.phase} {end}",
        ]);
        let running = out
            .split_whitespace()
            .filter(|p| p.ends_with("/Running") && !p.starts_with('/'))
            .count();
        (running == 2).then_some(()).ok_or(out)
    });

    // … by the components, as their own users: the scheduler binds, the Deployment controller
    // creates the ReplicaSet and the ReplicaSet controller the pods, each as its account.
    wait_for(
        30,
        "audit events of the scheduler and the controllers",
        || {
            let events = audit_events(&audit_log);
            let bound = events.iter().any(|e| {
                is(
                    e,
                    "system:kube-scheduler",
                    "create",
                    "pods",
                    Some("binding"),
                    201,
                )
            });
            let rs = events
                .iter()
                .any(|e| is(e, DEPLOYMENT_CONTROLLER, "create", "replicasets", None, 201));
            let pods = events
                .iter()
                .any(|e| is(e, REPLICASET_CONTROLLER, "create", "pods", None, 201));
            (bound && rs && pods)
                .then_some(())
                .ok_or(format!("binding {bound}, replicaset {rs}, pods {pods}"))
        },
    );
    let events = audit_events(&audit_log);
    assert!(
        !events
            .iter()
            .any(|e| e["user"]["username"] == "kubernetes-admin"
                && e["objectRef"]["subresource"] == "binding"),
        "the admin credential bound a pod"
    );
    let by_manager = |resource: &str| {
        events.iter().any(|e| {
            e["user"]["username"] == "system:kube-controller-manager"
                && e["verb"] == "create"
                && e["objectRef"]["resource"] == resource
                && e["objectRef"]["subresource"].is_null()
        })
    };
    assert!(
        !by_manager("replicasets") && !by_manager("pods"),
        "the manager's own credential wrote what a controller writes"
    );
    // The manager got the tokens: TokenRequests for the controllers' accounts.
    assert!(
        events.iter().any(|e| is(
            e,
            "system:kube-controller-manager",
            "create",
            "serviceaccounts",
            Some("token"),
            201
        ) && e["objectRef"]["name"] == "replicaset-controller"
            && e["objectRef"]["namespace"] == "kube-system"),
        "no TokenRequest for kube-system/replicaset-controller by the manager"
    );
    let refused: Vec<String> = events
        .iter()
        .filter(|e| {
            let user = e["user"]["username"].as_str().unwrap_or("");
            (user == "system:kube-scheduler"
                || user == "system:kube-controller-manager"
                || user.starts_with("system:serviceaccount:kube-system:"))
                && e["responseStatus"]["code"] == 403
        })
        .map(|e| {
            format!(
                "{} {} {}/{}",
                e["user"]["username"],
                e["verb"],
                e["objectRef"]["resource"],
                e["objectRef"]["subresource"]
            )
        })
        .collect();
    assert!(
        refused.is_empty(),
        "a component was refused something its role should grant: {refused:?}"
    );

    // The controllers' accounts exist in kube-system.
    let accounts = c.ok(&["get", "serviceaccounts", "-n", "kube-system", "-o", "name"]);
    for account in [
        "deployment-controller",
        "replicaset-controller",
        "namespace-controller",
        "generic-garbage-collector",
        "node-controller",
    ] {
        assert!(
            accounts
                .lines()
                .any(|l| l == format!("serviceaccount/{account}")),
            "kube-system/{account} missing from:\n{accounts}"
        );
    }

    // A controller whose account is deleted gets it back: its token, refused from then on, is
    // renewed at once and the account created again, so the ReplicaSet still scales.
    c.ok(&[
        "delete",
        "serviceaccount",
        "replicaset-controller",
        "-n",
        "kube-system",
    ]);
    c.ok(&["scale", "deployment", "web", "--replicas=3"]);
    wait_for(60, "3 pods of deployment web", || {
        let out = c.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
        (out.lines().count() == 3).then_some(()).ok_or(out)
    });
    c.ok(&[
        "get",
        "serviceaccount",
        "replicaset-controller",
        "-n",
        "kube-system",
    ]);
    let recreated = audit_events(&audit_log)
        .iter()
        .filter(|e| {
            is(
                e,
                "system:kube-controller-manager",
                "create",
                "serviceaccounts",
                None,
                201,
            ) && e["objectRef"]["name"] == "replicaset-controller"
        })
        .count();
    assert_eq!(
        recreated, 2,
        "the account was not created again by the manager"
    );

    // Without its role binding, the scheduler is refused: the pod stays unbound.
    c.ok(&["delete", "clusterrolebinding", "system:kube-scheduler"]);
    c.ok(&["run", "lonely", "--image=nginx"]);
    wait_for(60, "the scheduler's binding refused", || {
        audit_events(&audit_log)
            .iter()
            .any(|e| {
                is(
                    e,
                    "system:kube-scheduler",
                    "create",
                    "pods",
                    Some("binding"),
                    403,
                )
            })
            .then_some(())
            .ok_or_else(|| "no 403 yet".to_string())
    });
    let node = c.ok(&["get", "pod", "lonely", "-o", "jsonpath={.spec.nodeName}"]);
    assert_eq!(node, "", "the pod was bound without the scheduler's role");
}

#[test]
fn a_node_credential_reaches_only_its_own_node_and_pods() {
    let c = Cluster::start();
    let n1 = kox_kubeconfig(&c, "node-a", &["--node", "node-a"]);
    assert_eq!(
        whoami(&c, &n1),
        (
            "system:node:node-a".to_string(),
            vec![
                "system:nodes".to_string(),
                "system:authenticated".to_string()
            ]
        )
    );
    let as_node = |args: &[&str]| {
        let mut full = vec!["--kubeconfig", n1.to_str().unwrap()];
        full.extend_from_slice(args);
        full.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: &[&str], stdin: &str| {
        let args = as_node(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        c.kubectl_stdin(&args, stdin)
    };
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // The node registers itself; it may not register another node.
    let node = |name: &str| {
        format!(r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{name}"}}}}"#)
    };
    let out = run(&["create", "-f", "-"], &node("node-a"));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["create", "-f", "-"], &node("node-c"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            r#"nodes "node-c" is forbidden: node "node-a" is not allowed to modify node "node-c""#
        ),
        "{}",
        stderr(&out)
    );
    c.ok_stdin(&["create", "-f", "-"], &node("node-b"));

    // Its own status it may report; another node's it may not.
    let ready = |kubeconfig_args: &[&str], name: &str| -> String {
        let mut args = kubeconfig_args.to_vec();
        args.extend_from_slice(&["get", "node", name, "-o", "json"]);
        let mut obj: Value = serde_json::from_str(&c.ok(&args)).unwrap();
        obj["status"]["conditions"] = serde_json::json!([{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": rfc3339_in(0),
            "lastTransitionTime": rfc3339_in(0),
        }]);
        obj.to_string()
    };
    // (The node lifecycle controller may write the new Node between the read and the write:
    // a conflict is read again.)
    wait_for(30, "node-a's own status written", || {
        let own = ready(&["--kubeconfig", n1.to_str().unwrap()], "node-a");
        let out = run(&["replace", "--subresource=status", "-f", "-"], &own);
        let err = stderr(&out);
        assert!(out.status.success() || err.contains("Conflict"), "{err}");
        out.status.success().then_some(()).ok_or(err)
    });
    let status = c.ok(&[
        "get",
        "node",
        "node-a",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(status, "True");
    let refused = wait_for(30, "node-b's status refused", || {
        let other = ready(&[], "node-b");
        let out = run(&["replace", "--subresource=status", "-f", "-"], &other);
        assert!(!out.status.success(), "node-a wrote node-b's status");
        let err = stderr(&out);
        (!err.contains("Conflict"))
            .then_some(err.clone())
            .ok_or(err)
    });
    assert!(
        refused.contains(r#"node "node-a" is not allowed to modify node "node-b""#),
        "{refused}"
    );
    let out = run(&["label", "node", "node-b", "x=y"], "");
    assert!(!out.status.success(), "labelled another node");
    let out = run(&["delete", "node", "node-b"], "");
    assert!(!out.status.success(), "deleted another node");
    let labels = c.ok(&["get", "node", "node-b", "-o", "jsonpath={.metadata.labels}"]);
    assert!(!labels.contains("\"x\""), "{labels}");

    // Pods: status of its own pods only; no deleting others', no non-mirror pods.
    for n in ["node-a", "node-b"] {
        c.ok(&[
            "run",
            &format!("on-{n}"),
            "--image=nginx",
            &format!("--overrides={{\"spec\":{{\"nodeName\":\"{n}\"}}}}"),
        ]);
    }
    let running = |name: &str| {
        let mut obj: Value =
            serde_json::from_str(&c.ok(&["get", "pod", name, "-o", "json"])).unwrap();
        obj["status"]["phase"] = "Running".into();
        obj.to_string()
    };
    wait_for(30, "on-node-a's status written by its node", || {
        let out = run(
            &["replace", "--subresource=status", "-f", "-"],
            &running("on-node-a"),
        );
        let err = stderr(&out);
        assert!(out.status.success() || err.contains("Conflict"), "{err}");
        out.status.success().then_some(()).ok_or(err)
    });
    assert_eq!(
        c.ok(&["get", "pod", "on-node-a", "-o", "jsonpath={.status.phase}"]),
        "Running"
    );
    let refused = wait_for(30, "on-node-b's status refused", || {
        let out = run(
            &["replace", "--subresource=status", "-f", "-"],
            &running("on-node-b"),
        );
        assert!(!out.status.success(), "node-a wrote on-node-b's status");
        let err = stderr(&out);
        (!err.contains("Conflict"))
            .then_some(err.clone())
            .ok_or(err)
    });
    assert!(
        refused.contains(
            r#"pods "on-node-b" is forbidden: node "node-a" can only update pod status for pods with spec.nodeName set to itself"#
        ),
        "{refused}"
    );
    assert_eq!(
        c.ok(&["get", "pod", "on-node-b", "-o", "jsonpath={.status.phase}"]),
        "Pending"
    );
    let out = run(&["delete", "pod", "on-node-b", "--wait=false"], "");
    assert!(
        stderr(&out).contains("can only delete pods with spec.nodeName set to itself"),
        "{}",
        stderr(&out)
    );
    let out = run(&["run", "extra", "--image=nginx"], "");
    assert!(
        stderr(&out).contains("can only create mirror pods"),
        "{}",
        stderr(&out)
    );
    // And nothing beyond the node role: no RBAC writes.
    let out = run(
        &[
            "create",
            "clusterrolebinding",
            "x",
            "--clusterrole=cluster-admin",
            "--user=system:node:node-a",
        ],
        "",
    );
    assert!(stderr(&out).contains("is forbidden"), "{}", stderr(&out));

    // The Node authorizer: the node reads its own Node, its own pods (by field selector) and
    // only the secrets and config maps its pods use.
    let out = run(&["get", "nodes"], "");
    assert!(
        stderr(&out).contains("node 'node-a' cannot read all nodes, only its own Node object"),
        "{}",
        stderr(&out)
    );
    let out = run(&["get", "pods"], "");
    assert!(
        stderr(&out).contains("can only list/watch pods with spec.nodeName field selector"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &[
            "get",
            "pods",
            "--field-selector",
            "spec.nodeName=node-a",
            "-o",
            "name",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pod/on-node-a");
    for s in ["for-a", "not-for-a"] {
        c.ok(&["create", "secret", "generic", s, "--from-literal=k=v"]);
    }
    c.ok(&["create", "configmap", "cfg-a", "--from-literal=k=v"]);
    c.ok_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"uses-secret"},
"spec":{"nodeName":"node-a","containers":[{"name":"c","image":"nginx",
"env":[{"name":"K","valueFrom":{"secretKeyRef":{"name":"for-a","key":"k"}}}]}],
"volumes":[{"name":"cfg","configMap":{"name":"cfg-a"}}]}}"#,
    );
    // (The authorizer reads pods from the watch cache: the new pod shows within moments.)
    wait_for(30, "node-a reading its pod's secret", || {
        let out = run(&["get", "secret", "for-a", "-o", "name"], "");
        out.status.success().then_some(()).ok_or(stderr(&out))
    });
    let out = run(&["get", "configmap", "cfg-a", "-o", "name"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["get", "secret", "not-for-a"], "");
    assert!(
        stderr(&out).contains("no relationship found between node 'node-a' and this object"),
        "{}",
        stderr(&out)
    );
    let out = run(&["get", "secrets"], "");
    assert!(!out.status.success(), "node-a listed every secret");
}

#[test]
fn issued_certificates_carry_several_groups() {
    let c = Cluster::start();
    let jane = kox_kubeconfig(
        &c,
        "jane",
        &[
            "--user", "jane", "--group", "dev", "--group", "ops", "--group", "qa",
        ],
    );
    assert_eq!(
        whoami(&c, &jane),
        (
            "jane".to_string(),
            ["dev", "ops", "qa", "system:authenticated"]
                .map(String::from)
                .to_vec()
        )
    );
    // Each group counts for RBAC.
    c.ok(&["create", "namespace", "team"]);
    c.ok(&[
        "create",
        "rolebinding",
        "ops-view",
        "--clusterrole=view",
        "--group=ops",
        "-n",
        "team",
    ]);
    let can = |args: &[&str]| {
        let mut full = vec!["--kubeconfig", jane.to_str().unwrap(), "auth", "can-i"];
        full.extend_from_slice(args);
        String::from_utf8_lossy(&c.kubectl(&full).stdout)
            .trim()
            .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while can(&["list", "pods", "-n", "team"]) != "yes" {
        assert!(
            Instant::now() < deadline,
            "the ops group's binding never applied"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(can(&["list", "pods", "-n", "default"]), "no");
}

/// The time `secs` from now, in RFC 3339 (UTC).
fn rfc3339_in(secs: i64) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + secs;
    // Civil date from days since the epoch.
    let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A bootstrap-token Secret (`kube-system/bootstrap-token-<id>`) as `kubeadm token create`
/// writes it.
fn bootstrap_secret(id: &str, secret: &str, expiration: &str, usage: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Secret","type":"bootstrap.kubernetes.io/token",
"metadata":{{"name":"bootstrap-token-{id}","namespace":"kube-system"}},
"stringData":{{"token-id":"{id}","token-secret":"{secret}","expiration":"{expiration}",
"usage-bootstrap-authentication":"{usage}","usage-bootstrap-signing":"true",
"auth-extra-groups":"system:bootstrappers:kox:default-node-token"}}}}"#
    )
}

/// A kubeconfig that names the cluster only, no credential: the token comes from `--token`.
fn cluster_only_kubeconfig(c: &Cluster) -> PathBuf {
    let path = c.data_dir().join("cluster-only.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kox\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority: {}\ncontexts:\n- name: kox\n  context:\n    cluster: kox\n    user: nobody\nusers:\n- name: nobody\n  user: {{}}\ncurrent-context: kox\n",
            c.port,
            c.data_dir().join("tls/ca.crt").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn bootstrap_tokens_authenticate_until_they_expire_or_go() {
    let c = Cluster::start();
    let anonymous = cluster_only_kubeconfig(&c);
    let with_token = |token: &str, args: &[&str]| {
        let mut full = vec![
            "--kubeconfig",
            anonymous.to_str().unwrap(),
            "--token",
            token,
        ];
        full.extend_from_slice(args);
        c.kubectl(&full)
    };

    c.ok_stdin(
        &["create", "-f", "-"],
        &bootstrap_secret("abcdef", "0123456789abcdef", &rfc3339_in(3600), "true"),
    );
    let out = with_token("abcdef.0123456789abcdef", &["auth", "whoami", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let review: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "system:bootstrap:abcdef"
    );
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        serde_json::json!([
            "system:bootstrappers",
            "system:bootstrappers:kox:default-node-token",
            "system:authenticated"
        ])
    );

    let unauthorized = |token: &str| {
        let out = with_token(token, &["auth", "whoami"]);
        assert!(!out.status.success(), "{token} was accepted");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains("Unauthorized"), "{token}: {err}");
    };
    // A wrong secret, an unknown id.
    unauthorized("abcdef.0123456789abcdee");
    unauthorized("zzzzzz.0123456789abcdef");
    // Expired, or not meant for authentication.
    c.ok_stdin(
        &["create", "-f", "-"],
        &bootstrap_secret("expird", "0123456789abcdef", &rfc3339_in(-60), "true"),
    );
    unauthorized("expird.0123456789abcdef");
    c.ok_stdin(
        &["create", "-f", "-"],
        &bootstrap_secret("signon", "0123456789abcdef", &rfc3339_in(3600), "false"),
    );
    unauthorized("signon.0123456789abcdef");
    // Gone with its Secret.
    c.ok(&[
        "delete",
        "secret",
        "-n",
        "kube-system",
        "bootstrap-token-abcdef",
    ]);
    unauthorized("abcdef.0123456789abcdef");
}

#[test]
fn the_token_cleaner_deletes_bootstrap_tokens_once_they_expire() {
    let c = Cluster::start();
    let secret_exists = |ns: &str, name: &str| {
        let out = c.kubectl(&["get", "secret", "-n", ns, name, "-o", "name"]);
        if out.status.success() {
            return true;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("NotFound"), "get secret {ns}/{name}: {err}");
        false
    };
    let create = |manifest: &str| c.ok_stdin(&["create", "-f", "-"], manifest);
    create(&bootstrap_secret(
        "old111",
        "0123456789abcdef",
        &rfc3339_in(-60),
        "true",
    ));
    create(&bootstrap_secret(
        "soon22",
        "0123456789abcdef",
        &rfc3339_in(8),
        "true",
    ));
    create(&bootstrap_secret(
        "live33",
        "0123456789abcdef",
        &rfc3339_in(3600),
        "true",
    ));
    // Not bootstrap tokens for the cleaner: another type, another namespace.
    create(&format!(
        r#"{{"apiVersion":"v1","kind":"Secret","type":"Opaque",
"metadata":{{"name":"bootstrap-token-opaque","namespace":"kube-system"}},
"stringData":{{"expiration":"{}"}}}}"#,
        rfc3339_in(-60)
    ));
    c.ok(&["create", "namespace", "elsewhere"]);
    create(
        &bootstrap_secret("else44", "0123456789abcdef", &rfc3339_in(-60), "true")
            .replace(r#""namespace":"kube-system""#, r#""namespace":"elsewhere""#),
    );

    wait_for(60, "the expired token's Secret to be deleted", || {
        if secret_exists("kube-system", "bootstrap-token-old111") {
            Err("still there".to_string())
        } else {
            Ok(())
        }
    });
    // The one that expires a few seconds after it was created goes when it expires.
    wait_for(60, "the token expiring soon to be deleted", || {
        if secret_exists("kube-system", "bootstrap-token-soon22") {
            Err("still there".to_string())
        } else {
            Ok(())
        }
    });
    assert!(secret_exists("kube-system", "bootstrap-token-live33"));
    assert!(secret_exists("kube-system", "bootstrap-token-opaque"));
    assert!(secret_exists("elsewhere", "bootstrap-token-else44"));

    // The deleted token no longer authenticates; the live one still does.
    let anonymous = cluster_only_kubeconfig(&c);
    let whoami = |token: &str| {
        c.kubectl(&[
            "--kubeconfig",
            anonymous.to_str().unwrap(),
            "--token",
            token,
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
    };
    let out = whoami("old111.0123456789abcdef");
    assert!(!out.status.success(), "the expired token was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Unauthorized"), "{err}");
    let out = whoami("live33.0123456789abcdef");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "system:bootstrap:live33"
    );
}

#[test]
fn an_old_system_node_binding_keeps_its_group_until_an_administrator_removes_it() {
    let mut c = Cluster::start();
    c.ok(&[
        "create",
        "secret",
        "generic",
        "unrelated",
        "-n",
        "default",
        "--from-literal=k=v",
    ]);
    let node = kox_kubeconfig(&c, "node-a", &["--node", "node-a"]);
    let node_reads_secret = |c: &Cluster| {
        let out = c.kubectl(&[
            "--kubeconfig",
            node.to_str().unwrap(),
            "get",
            "secret",
            "unrelated",
            "-n",
            "default",
            "-o",
            "name",
        ]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success() || err.contains("Forbidden"), "{err}");
        out.status.success()
    };
    let subjects = |c: &Cluster| {
        c.ok(&[
            "get",
            "clusterrolebinding",
            "system:node",
            "-o",
            "jsonpath={.subjects[*].name}",
        ])
    };
    // A new cluster binds system:node to nobody: the Node authorizer alone lets nodes read
    // secrets, and only those their pods use.
    assert_eq!(subjects(&c), "");
    assert!(!node_reads_secret(&c));

    // A cluster made when system:node was bound to every node keeps that subject across a
    // restart: start-up reconciliation adds what is missing and never removes (upstream).
    c.ok(&[
        "patch",
        "clusterrolebinding",
        "system:node",
        "--type=merge",
        "-p",
        r#"{"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"Group","name":"system:nodes"}]}"#,
    ]);
    c.restart();
    assert_eq!(subjects(&c), "system:nodes");
    wait_for(
        30,
        "the old binding to let the node read any secret",
        || {
            node_reads_secret(&c)
                .then_some(())
                .ok_or_else(|| "forbidden".to_string())
        },
    );

    // The administrator removes it as upstream documents it.
    c.ok_stdin(
        &["auth", "reconcile", "--remove-extra-subjects", "-f", "-"],
        r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding",
"metadata":{"name":"system:node"},
"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"system:node"}}"#,
    );
    assert_eq!(subjects(&c), "");
    wait_for(30, "the node to be held to its own secrets again", || {
        (!node_reads_secret(&c))
            .then_some(())
            .ok_or_else(|| "still reads it".to_string())
    });
}

#[test]
fn a_node_reads_the_claims_volumes_and_volume_secrets_of_its_pods() {
    let c = Cluster::start();
    let node = kox_kubeconfig(&c, "node-a", &["--node", "node-a"]);
    let as_node = |args: &[&str]| {
        let mut full = vec!["--kubeconfig", node.to_str().unwrap()];
        full.extend_from_slice(args);
        c.kubectl(&full)
    };
    c.ok(&["create", "namespace", "storage"]);
    for s in ["csi-publish", "csi-controller"] {
        c.ok(&[
            "create",
            "secret",
            "generic",
            s,
            "-n",
            "storage",
            "--from-literal=k=v",
        ]);
    }
    let volume = |name: &str, claim: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"PersistentVolume","metadata":{{"name":"{name}"}},
"spec":{{"capacity":{{"storage":"1Gi"}},"accessModes":["ReadWriteOnce"],
"claimRef":{{"kind":"PersistentVolumeClaim","namespace":"default","name":"{claim}"}},
"csi":{{"driver":"csi.example.com","volumeHandle":"{name}",
"nodePublishSecretRef":{{"namespace":"storage","name":"csi-publish"}},
"controllerPublishSecretRef":{{"namespace":"storage","name":"csi-controller"}}}}}}}}"#
        )
    };
    c.ok_stdin(&["create", "-f", "-"], &volume("pv-a", "claim-a"));
    c.ok_stdin(&["create", "-f", "-"], &volume("pv-b", "claim-b"));
    for (claim, pv) in [("claim-a", "pv-a"), ("claim-b", "pv-b")] {
        c.ok_stdin(
            &["create", "-f", "-"],
            &format!(
                r#"{{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{{"name":"{claim}"}},
"spec":{{"accessModes":["ReadWriteOnce"],"resources":{{"requests":{{"storage":"1Gi"}}}},
"volumeName":"{pv}"}}}}"#
            ),
        );
    }
    c.ok_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"uses-claim"},
"spec":{"nodeName":"node-a","containers":[{"name":"c","image":"nginx"}],
"volumes":[{"name":"data","persistentVolumeClaim":{"claimName":"claim-a"}}]}}"#,
    );
    // (The authorizer reads pods from the watch cache: the new pod shows within moments.)
    wait_for(30, "node-a reading its pod's claim", || {
        let out = as_node(&["get", "pvc", "claim-a", "-o", "name"]);
        out.status
            .success()
            .then_some(())
            .ok_or(String::from_utf8_lossy(&out.stderr).into_owned())
    });
    let allowed = |args: &[&str]| {
        let out = as_node(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let refused = |args: &[&str]| {
        let out = as_node(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no relationship found between node 'node-a' and this object"),
            "{args:?}: {err}"
        );
    };
    allowed(&["get", "pv", "pv-a", "-o", "name"]);
    allowed(&[
        "get",
        "secret",
        "csi-publish",
        "-n",
        "storage",
        "-o",
        "name",
    ]);
    // The controller's secret, and what no pod of node-a leads to.
    refused(&["get", "secret", "csi-controller", "-n", "storage"]);
    refused(&["get", "pvc", "claim-b"]);
    refused(&["get", "pv", "pv-b"]);
}
