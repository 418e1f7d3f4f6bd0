//! Authentication and RBAC as kubectl users see them: `kubectl auth can-i` for users, groups
//! and service accounts before and after bindings, `kubectl create token` and using the token,
//! `kubectl auth whoami`, and impersonation with `--as` / `--as-group`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Cluster;

const TOKENS: &str = "jane-token,jane,uid-jane,\"dev-team,qa\"\nbob-token,bob,uid-bob\n";

struct Auth {
    c: Cluster,
    _tokens: tempfile::TempDir,
}

fn start() -> Auth {
    let tokens = tempfile::tempdir().unwrap();
    let file = tokens.path().join("tokens.csv");
    std::fs::write(&file, TOKENS).unwrap();
    let c = Cluster::start_with(&["--token-auth-file", file.to_str().unwrap()]);
    Auth { c, _tokens: tokens }
}

impl Auth {
    /// A kubeconfig that authenticates with `token` only (no client certificate).
    fn token_kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        let path = self.c.data_dir().join(format!("{name}.kubeconfig"));
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kox\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {ca}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: kox\n  context:\n    cluster: kox\n    user: {name}\ncurrent-context: kox\n",
            port = self.c.port,
            ca = self.c.data_dir().join("tls/ca.crt").display(),
        );
        std::fs::write(&path, yaml).unwrap();
        path
    }

    /// `kubectl auth can-i …` as the holder of `kubeconfig`: true for "yes".
    fn can_i(&self, kubeconfig: &Path, args: &[&str]) -> bool {
        let mut full = vec![
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "auth",
            "can-i",
        ];
        full.extend_from_slice(args);
        let out = self.c.kubectl(&full);
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        match stdout.as_str() {
            "yes" => {
                assert!(out.status.success());
                true
            }
            "no" => false,
            other => panic!(
                "kubectl auth can-i {args:?}: {other:?} / {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    fn as_user(&self, kubeconfig: &Path, args: &[&str]) -> std::process::Output {
        let mut full = vec!["--kubeconfig", kubeconfig.to_str().unwrap()];
        full.extend_from_slice(args);
        self.c.kubectl(&full)
    }
}

/// Polls until `f` holds (RBAC follows new bindings within moments).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn can_i_matrix_before_and_after_bindings() {
    let a = start();
    let c = &a.c;
    c.ok(&["create", "namespace", "dev"]);
    c.ok(&["create", "namespace", "prod"]);
    c.ok(&["create", "serviceaccount", "builder", "-n", "dev"]);
    let jane = a.token_kubeconfig("jane", "jane-token");
    let bob = a.token_kubeconfig("bob", "bob-token");
    let builder_token = c.ok(&["create", "token", "builder", "-n", "dev"]);
    let builder = a.token_kubeconfig("builder", builder_token.trim());

    // Before any binding: everyone may ask about themselves, nobody may touch workloads.
    for who in [&jane, &bob, &builder] {
        assert!(a.can_i(
            who,
            &["create", "selfsubjectaccessreviews.authorization.k8s.io"]
        ));
        assert!(!a.can_i(who, &["list", "pods", "-n", "dev"]));
        assert!(!a.can_i(who, &["create", "deployments", "-n", "dev"]));
        assert!(!a.can_i(who, &["list", "pods", "-n", "prod"]));
    }
    let admin = c.kubeconfig();
    assert!(a.can_i(&admin, &["*", "*"]));

    c.ok(&[
        "create",
        "rolebinding",
        "jane-edit",
        "--clusterrole=edit",
        "--user=jane",
        "-n",
        "dev",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "team-view",
        "--clusterrole=view",
        "--group=dev-team",
        "-n",
        "prod",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "builder-view",
        "--clusterrole=view",
        "--serviceaccount=dev:builder",
        "-n",
        "dev",
    ]);

    eventually("jane may create deployments in dev", || {
        a.can_i(&jane, &["create", "deployments", "-n", "dev"])
    });
    // jane: edit in dev (as user), view in prod (through her group).
    assert!(a.can_i(&jane, &["delete", "pods", "-n", "dev"]));
    assert!(!a.can_i(&jane, &["create", "roles", "-n", "dev"]));
    assert!(a.can_i(&jane, &["list", "pods", "-n", "prod"]));
    assert!(!a.can_i(&jane, &["delete", "pods", "-n", "prod"]));
    assert!(!a.can_i(&jane, &["list", "nodes"]));
    // bob: still nothing.
    assert!(!a.can_i(&bob, &["list", "pods", "-n", "dev"]));
    assert!(!a.can_i(&bob, &["list", "pods", "-n", "prod"]));
    // the service account: view in dev only.
    eventually("builder may list pods in dev", || {
        a.can_i(&builder, &["list", "pods", "-n", "dev"])
    });
    assert!(!a.can_i(&builder, &["create", "pods", "-n", "dev"]));
    assert!(!a.can_i(&builder, &["list", "pods", "-n", "prod"]));
    // Subresources are their own permissions: view reads pods/log but does not exec.
    assert!(a.can_i(&builder, &["get", "pods", "--subresource=log", "-n", "dev"]));
    assert!(!a.can_i(
        &builder,
        &["create", "pods", "--subresource=exec", "-n", "dev"]
    ));

    // The admin asks on others' behalf with --as / --as-group.
    assert!(a.can_i(
        &admin,
        &["create", "deployments", "-n", "dev", "--as", "jane"]
    ));
    assert!(!a.can_i(
        &admin,
        &["create", "deployments", "-n", "dev", "--as", "bob"]
    ));
    assert!(a.can_i(
        &admin,
        &[
            "list",
            "pods",
            "-n",
            "prod",
            "--as",
            "someone",
            "--as-group",
            "dev-team"
        ]
    ));
    assert!(a.can_i(
        &admin,
        &[
            "list",
            "pods",
            "-n",
            "dev",
            "--as",
            "system:serviceaccount:dev:builder"
        ]
    ));

    // --list shows jane's rules in dev.
    let out = a.as_user(&jane, &["auth", "can-i", "--list", "-n", "dev"]);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("deployments.apps ") && l.contains("create")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("selfsubjectaccessreviews.authorization.k8s.io")),
        "{list}"
    );
}

#[test]
fn created_token_works_and_is_limited_by_rbac() {
    let a = start();
    let c = &a.c;
    c.ok(&["create", "namespace", "dev"]);
    c.ok(&["create", "serviceaccount", "builder", "-n", "dev"]);
    c.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=k=v",
        "-n",
        "dev",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "builder-view",
        "--clusterrole=view",
        "--serviceaccount=dev:builder",
        "-n",
        "dev",
    ]);
    let token = c.ok(&["create", "token", "builder", "-n", "dev", "--duration=20m"]);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let builder = a.token_kubeconfig("builder", token);
    eventually("the token reads configmaps", || {
        a.as_user(&builder, &["get", "configmap", "settings", "-n", "dev"])
            .status
            .success()
    });
    let out = a.as_user(&builder, &["get", "secrets", "-n", "dev"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error from server (Forbidden): secrets is forbidden: User \"system:serviceaccount:dev:builder\" cannot list resource \"secrets\" in API group \"\" in the namespace \"dev\""
    );
    let out = a.as_user(&builder, &["create", "configmap", "x", "-n", "dev"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot create resource \"configmaps\""));

    // whoami through the token.
    let me = String::from_utf8_lossy(&a.as_user(&builder, &["auth", "whoami"]).stdout).into_owned();
    assert!(me.contains("system:serviceaccount:dev:builder"), "{me}");
    assert!(
        me.contains("[system:serviceaccounts system:serviceaccounts:dev system:authenticated]"),
        "{me}"
    );

    // Deleting the service account kills its tokens.
    c.ok(&["delete", "serviceaccount", "builder", "-n", "dev"]);
    let out = a.as_user(&builder, &["get", "configmap", "settings", "-n", "dev"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn whoami_and_impersonation() {
    let a = start();
    let c = &a.c;
    let jane = a.token_kubeconfig("jane", "jane-token");
    let out = a.as_user(&jane, &["auth", "whoami"]);
    let me = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = common::table(&me);
    assert_eq!(rows[0], ["ATTRIBUTE", "VALUE"]);
    assert_eq!(rows[1], ["Username", "jane"]);
    assert_eq!(rows[2], ["UID", "uid-jane"]);
    assert_eq!(
        rows[3],
        ["Groups", "[dev-team", "qa", "system:authenticated]"]
    );

    let admin = c.ok(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(admin, "kubernetes-admin");
    let impersonated = c.ok(&[
        "auth",
        "whoami",
        "--as",
        "bob",
        "--as-group",
        "qa",
        "-o",
        "jsonpath={.status.userInfo.groups}",
    ]);
    assert_eq!(impersonated, "[\"qa\",\"system:authenticated\"]");

    // jane may not impersonate: that is itself authorized.
    let out = a.as_user(
        &jane,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods",
            "--as",
            "bob",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error from server (Forbidden): users \"bob\" is forbidden: User \"jane\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );
    // Granted the verb on that one user, she may.
    c.ok(&[
        "create",
        "clusterrole",
        "impersonate-bob",
        "--verb=impersonate",
        "--resource=users",
        "--resource-name=bob",
    ]);
    c.ok(&[
        "create",
        "clusterrolebinding",
        "jane-as-bob",
        "--clusterrole=impersonate-bob",
        "--user=jane",
    ]);
    eventually("jane may act as bob", || {
        let out = a.as_user(
            &jane,
            &[
                "auth",
                "whoami",
                "--as",
                "bob",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ],
        );
        out.status.success() && String::from_utf8_lossy(&out.stdout) == "bob"
    });
    let out = a.as_user(&jane, &["auth", "whoami", "--as", "amy"]);
    assert!(!out.status.success());
    // Bad token: 401.
    let bad = a.token_kubeconfig("bad", "not-a-token");
    let out = a.as_user(&bad, &["get", "pods"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("You must be logged in to the server (Unauthorized)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
