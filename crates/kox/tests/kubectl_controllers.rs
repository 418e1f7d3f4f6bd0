//! The controller manager end to end: a real `kox server` (which runs the controller manager
//! in-process unless told not to), standalone `kox controller-manager` processes, and the real
//! kubectl.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Cluster, free_port, monitoring_token, wait_for};

/// `kubectl get … -o jsonpath=…` output, or the error text.
fn jsonpath(c: &Cluster, args: &[&str], path: &str) -> Result<String, String> {
    let mut all: Vec<&str> = args.to_vec();
    let p = format!("jsonpath={path}");
    all.extend(["-o", &p]);
    let out = c.kubectl(&all);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn names(c: &Cluster, args: &[&str]) -> Vec<String> {
    let mut all = args.to_vec();
    all.extend(["-o", "name"]);
    let mut v: Vec<String> = c
        .ok(&all)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

#[test]
fn deleting_a_namespace_deletes_its_content_and_then_the_namespace() {
    let c = Cluster::start();
    wait_for(
        30,
        "componentstatuses to report the controller manager",
        || {
            let out = c.ok(&[
                "get",
                "componentstatuses",
                "controller-manager",
                "--no-headers",
            ]);
            if out.contains("Healthy") && !out.contains("Unhealthy") {
                Ok(())
            } else {
                Err(out)
            }
        },
    );
    // `kubectl delete namespace` returns once the namespace is gone.
    c.ok(&["create", "namespace", "plain"]);
    c.ok(&[
        "-n",
        "plain",
        "create",
        "configmap",
        "settings",
        "--from-literal=a=b",
    ]);
    c.ok(&[
        "-n",
        "plain",
        "create",
        "service",
        "clusterip",
        "web",
        "--tcp=80:8080",
    ]);
    c.ok(&["delete", "namespace", "plain", "--timeout=90s"]);
    let err = c.fails(&["get", "namespace", "plain"]);
    assert!(err.contains("NotFound"), "{err}");

    // A namespace whose content has a finalizer no one removes waits, and says why.
    c.ok(&["create", "namespace", "doomed"]);
    c.ok(&[
        "-n",
        "doomed",
        "create",
        "configmap",
        "settings",
        "--from-literal=a=b",
    ]);
    c.ok(&[
        "-n",
        "doomed",
        "create",
        "secret",
        "generic",
        "token",
        "--from-literal=t=x",
    ]);
    c.ok(&[
        "-n",
        "doomed",
        "create",
        "deployment",
        "web",
        "--image=busybox",
    ]);
    c.ok_stdin(
        &["-n", "doomed", "apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n",
    );
    c.ok(&["delete", "namespace", "doomed", "--wait=false"]);
    let phase = jsonpath(&c, &["get", "namespace", "doomed"], "{.status.phase}");
    assert_eq!(phase.as_deref(), Ok("Terminating"));
    wait_for(
        60,
        "the namespace to report the remaining finalizer",
        || {
            let msg = jsonpath(
                &c,
                &["get", "namespace", "doomed"],
                "{.status.conditions[?(@.type==\"NamespaceFinalizersRemaining\")].message}",
            )?;
            if msg
                == "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
            {
                Ok(())
            } else {
                Err(msg)
            }
        },
    );
    let remaining = jsonpath(
        &c,
        &["get", "namespace", "doomed"],
        "{.status.conditions[?(@.type==\"NamespaceContentRemaining\")].message}",
    );
    assert_eq!(
        remaining.as_deref(),
        Ok("Some resources are remaining: configmaps. has 1 resource instances")
    );
    wait_for(60, "everything but the held ConfigMap to go", || {
        let left = names(
            &c,
            &[
                "-n",
                "doomed",
                "get",
                "configmaps,secrets,services,deployments,replicasets,pods",
            ],
        );
        if left == ["configmap/held"] {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
    c.ok(&[
        "-n",
        "doomed",
        "patch",
        "configmap",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_for(60, "the namespace to go", || {
        let out = c.kubectl(&["get", "namespace", "doomed"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if err.contains("NotFound") {
            Ok(())
        } else {
            Err(format!("{}{err}", String::from_utf8_lossy(&out.stdout)))
        }
    });
}

/// Creates ConfigMap `owner` and two Secrets it owns (blocking its foreground deletion).
fn owner_with_dependents(c: &Cluster, owner: &str) {
    c.ok(&["create", "configmap", owner]);
    let uid = jsonpath(c, &["get", "configmap", owner], "{.metadata.uid}").expect("uid");
    for i in 1..=2 {
        c.ok_stdin(
            &["apply", "-f", "-"],
            &format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {owner}-dep{i}\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    uid: {uid}\n    blockOwnerDeletion: true\n"
            ),
        );
    }
}

fn secrets_of(c: &Cluster, owner: &str) -> Vec<String> {
    names(c, &["get", "secrets"])
        .into_iter()
        .filter(|n| n.starts_with(&format!("secret/{owner}-")))
        .collect()
}

#[test]
fn deleting_an_owner_cascades_in_background_or_foreground_unless_orphaned() {
    let c = Cluster::start();
    owner_with_dependents(&c, "bg");
    owner_with_dependents(&c, "fg");
    owner_with_dependents(&c, "orph");

    c.ok(&["delete", "configmap", "bg"]);
    wait_for(60, "the background owner's dependents to go", || {
        let left = secrets_of(&c, "bg");
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });

    // Foreground: the owner goes only after its blocking dependents, so once kubectl sees
    // it gone, they are gone too.
    c.ok(&[
        "delete",
        "configmap",
        "fg",
        "--cascade=foreground",
        "--timeout=90s",
    ]);
    assert_eq!(secrets_of(&c, "fg"), Vec::<String>::new());

    c.ok(&[
        "delete",
        "configmap",
        "orph",
        "--cascade=orphan",
        "--timeout=90s",
    ]);
    assert_eq!(
        secrets_of(&c, "orph"),
        ["secret/orph-dep1", "secret/orph-dep2"]
    );
    for s in ["orph-dep1", "orph-dep2"] {
        let refs = jsonpath(&c, &["get", "secret", s], "{.metadata.ownerReferences}");
        assert_eq!(
            refs.as_deref(),
            Ok(""),
            "orphaned {s} keeps no owner reference"
        );
    }

    // The workload chain: a Deployment owns a ReplicaSet, which owns the pods.
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
    ]);
    wait_for(60, "the deployment's ReplicaSet and pods", || {
        let rs = names(&c, &["get", "replicasets", "-l", "app=web"]);
        let pods = names(&c, &["get", "pods", "-l", "app=web"]);
        if rs.len() == 1 && pods.len() == 2 {
            Ok(())
        } else {
            Err(format!("{rs:?} {pods:?}"))
        }
    });
    c.ok(&[
        "delete",
        "deployment",
        "web",
        "--cascade=orphan",
        "--timeout=90s",
    ]);
    wait_for(
        60,
        "the orphaned ReplicaSet to lose its owner reference",
        || {
            let refs = jsonpath(
                &c,
                &["get", "replicasets", "-l", "app=web"],
                "{.items[*].metadata.ownerReferences}",
            )?;
            if refs.is_empty() { Ok(()) } else { Err(refs) }
        },
    );
    assert_eq!(names(&c, &["get", "pods", "-l", "app=web"]).len(), 2);
    c.ok(&["delete", "replicasets", "-l", "app=web"]);
    wait_for(60, "the ReplicaSet's pods to be deleted with it", || {
        let pods = names(&c, &["get", "pods", "-l", "app=web"]);
        if pods.is_empty() {
            Ok(())
        } else {
            Err(format!("{pods:?}"))
        }
    });
}

#[test]
fn new_namespaces_get_the_default_service_account_and_the_root_ca() {
    let c = Cluster::start();
    let kubeconfig = std::fs::read_to_string(c.kubeconfig()).expect("kubeconfig");
    let ca_data = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data:"))
        .expect("the admin kubeconfig embeds the CA")
        .trim()
        .to_string();
    let ca = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&ca_data)
            .expect("base64 CA"),
    )
    .expect("PEM");
    c.ok(&["create", "namespace", "team"]);
    let sa_uid = wait_for(30, "the default ServiceAccount", || {
        jsonpath(
            &c,
            &["-n", "team", "get", "serviceaccount", "default"],
            "{.metadata.uid}",
        )
    });
    wait_for(30, "kube-root-ca.crt", || {
        let got = jsonpath(
            &c,
            &["-n", "team", "get", "configmap", "kube-root-ca.crt"],
            "{.data.ca\\.crt}",
        )?;
        if got.trim() == ca.trim() {
            Ok(())
        } else {
            Err(got)
        }
    });
    // Both come back when deleted or edited.
    c.ok(&["-n", "team", "delete", "serviceaccount", "default"]);
    wait_for(30, "a new default ServiceAccount", || {
        let uid = jsonpath(
            &c,
            &["-n", "team", "get", "serviceaccount", "default"],
            "{.metadata.uid}",
        )?;
        if uid != sa_uid { Ok(()) } else { Err(uid) }
    });
    c.ok(&[
        "-n",
        "team",
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "--type=merge",
        "-p",
        r#"{"data":{"ca.crt":"tampered"}}"#,
    ]);
    wait_for(30, "kube-root-ca.crt restored", || {
        let got = jsonpath(
            &c,
            &["-n", "team", "get", "configmap", "kube-root-ca.crt"],
            "{.data.ca\\.crt}",
        )?;
        if got.trim() == ca.trim() {
            Ok(())
        } else {
            Err(got)
        }
    });
    // Every system namespace has them too.
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        wait_for(30, &format!("the default ServiceAccount in {ns}"), || {
            jsonpath(
                &c,
                &["-n", ns, "get", "serviceaccount", "default"],
                "{.metadata.name}",
            )
        });
    }
}

/// Sets a pod's IP and Ready condition through the status subresource, as a kubelet would.
fn set_pod_status(c: &Cluster, pod: &str, ip: &str, ready: bool) {
    let ready = if ready { "True" } else { "False" };
    c.ok(&[
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        &format!(
            r#"{{"status":{{"phase":"Running","podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}],"conditions":[{{"type":"Ready","status":"{ready}"}}]}}}}"#
        ),
    ]);
}

#[test]
fn endpoints_and_endpoint_slices_follow_pod_readiness() {
    let c = Cluster::start();
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n  - name: http\n    port: 80\n    targetPort: web\n",
    );
    for pod in ["a", "b"] {
        // Bound to a node no agent runs, so only this test writes their status.
        c.ok_stdin(
            &["apply", "-f", "-"],
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\n  labels:\n    app: web\nspec:\n  nodeName: ghost\n  containers:\n  - name: c\n    image: busybox\n    ports:\n    - name: web\n      containerPort: 8080\n"
            ),
        );
    }
    set_pod_status(&c, "a", "10.9.0.1", true);
    set_pod_status(&c, "b", "10.9.0.2", false);
    let endpoints = |c: &Cluster| {
        jsonpath(
            c,
            &["get", "endpoints", "web"],
            "{.subsets[*].addresses[*].ip}/{.subsets[*].notReadyAddresses[*].ip}/{.subsets[*].ports[*].port}",
        )
    };
    let slices = |c: &Cluster| {
        jsonpath(
            c,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web,endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io",
            ],
            "{range .items[*].endpoints[*]}{.addresses[0]}={.conditions.ready} {end}",
        )
    };
    wait_for(60, "endpoints with one ready and one unready pod", || {
        let e = endpoints(&c)?;
        if e == "10.9.0.1/10.9.0.2/8080" {
            Ok(())
        } else {
            Err(e)
        }
    });
    wait_for(
        60,
        "a slice with one ready and one unready endpoint",
        || {
            let s = slices(&c)?;
            if s == "10.9.0.1=true 10.9.0.2=false" {
                Ok(())
            } else {
                Err(s)
            }
        },
    );
    set_pod_status(&c, "b", "10.9.0.2", true);
    wait_for(60, "both pods ready in the endpoints", || {
        let e = endpoints(&c)?;
        if e == "10.9.0.1 10.9.0.2//8080" {
            Ok(())
        } else {
            Err(e)
        }
    });
    wait_for(60, "both pods ready in the slice", || {
        let s = slices(&c)?;
        if s == "10.9.0.1=true 10.9.0.2=true" {
            Ok(())
        } else {
            Err(s)
        }
    });
    c.ok(&["delete", "pod", "a", "--grace-period=0", "--force"]);
    wait_for(60, "the deleted pod to leave the endpoints", || {
        let e = endpoints(&c)?;
        if e == "10.9.0.2//8080" {
            Ok(())
        } else {
            Err(e)
        }
    });
    wait_for(60, "the deleted pod to leave the slice", || {
        let s = slices(&c)?;
        if s == "10.9.0.2=true" { Ok(()) } else { Err(s) }
    });
    // The slice belongs to the service: it goes with it.
    c.ok(&["delete", "service", "web"]);
    wait_for(60, "the service's endpoints and slices to go", || {
        let e = names(
            &c,
            &[
                "get",
                "endpoints,endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ],
        );
        let gone = c.kubectl(&["get", "endpoints", "web"]);
        if e.is_empty() && !gone.status.success() {
            Ok(())
        } else {
            Err(format!("{e:?}"))
        }
    });
}

/// An owner reference to an object of another namespace names nothing in the dependent's
/// namespace: the garbage collector deletes the dependent and says why, as upstream.
#[test]
fn an_owner_in_another_namespace_does_not_own_and_is_reported() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "owners"]);
    c.ok(&["create", "namespace", "dependents"]);
    c.ok(&["-n", "owners", "create", "configmap", "owner"]);
    let uid = jsonpath(
        &c,
        &["-n", "owners", "get", "configmap", "owner"],
        "{.metadata.uid}",
    )
    .expect("owner uid");
    c.ok_stdin(
        &["-n", "dependents", "apply", "-f", "-"],
        &format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"dependent","ownerReferences":[{{"apiVersion":"v1","kind":"ConfigMap","name":"owner","uid":"{uid}"}}]}}}}"#
        ),
    );
    wait_for(60, "the misplaced dependent to be collected", || {
        let out = c.kubectl(&["-n", "dependents", "get", "configmap", "dependent"]);
        if out.status.success() {
            Err("still there".to_string())
        } else {
            Ok(())
        }
    });
    let event = wait_for(30, "the OwnerRefInvalidNamespace event", || {
        let out = c.ok(&[
            "-n",
            "dependents",
            "get",
            "events",
            "--field-selector",
            "reason=OwnerRefInvalidNamespace",
            "-o",
            "jsonpath={.items[0].type} {.items[0].source.component} {.items[0].involvedObject.name}: {.items[0].message}",
        ]);
        if out.trim().is_empty() {
            Err(out)
        } else {
            Ok(out)
        }
    });
    assert_eq!(
        event,
        format!(
            r#"Warning garbage-collector-controller dependent: ownerRef [v1/ConfigMap, namespace: dependents, name: owner, uid: {uid}] does not exist in namespace "dependents""#
        )
    );
    // The owner itself is untouched.
    c.ok(&["-n", "owners", "get", "configmap", "owner"]);
}

/// A `kox controller-manager` process, killed when dropped.
struct ControllerManager {
    child: Child,
    port: u16,
    /// A token that may read its `/metrics`.
    token: String,
}

impl ControllerManager {
    fn start(c: &Cluster, log: &str) -> Self {
        let port = free_port();
        let log = std::fs::File::create(c.data_dir().join(log)).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kox"))
            .arg("controller-manager")
            .arg("--kubeconfig")
            .arg(c.kubeconfig())
            .args([
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kox controller-manager");
        ControllerManager {
            child,
            port,
            token: monitoring_token(c),
        }
    }

    /// Whether it leads, from its `/metrics` (`None` if it does not answer).
    fn leading(&self) -> Option<bool> {
        let out = Command::new("curl")
            .args(["-sk", "--max-time", "5", "-H"])
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(format!("https://127.0.0.1:{}/metrics", self.port))
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("leader_election_master_status"))?;
        Some(line.trim_end().ends_with(" 1"))
    }
}

impl Drop for ControllerManager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_standby_controller_manager_takes_over_when_the_leader_dies() {
    let c = Cluster::start_with(&["--disable-controller-manager"]);
    let a = ControllerManager::start(&c, "cm-a.log");
    let b = ControllerManager::start(&c, "cm-b.log");
    let a_leads = wait_for(60, "one leader and one standby", || {
        match (a.leading(), b.leading()) {
            (Some(true), Some(false)) => Ok(true),
            (Some(false), Some(true)) => Ok(false),
            other => Err(format!("{other:?}")),
        }
    });
    let holder = jsonpath(
        &c,
        &[
            "-n",
            "kube-system",
            "get",
            "lease",
            "kube-controller-manager",
        ],
        "{.spec.holderIdentity}",
    )
    .expect("the lease names its holder");
    c.ok(&["create", "namespace", "before"]);
    wait_for(30, "the leader to publish the root CA ConfigMap", || {
        jsonpath(
            &c,
            &["-n", "before", "get", "configmap", "kube-root-ca.crt"],
            "{.metadata.name}",
        )
    });
    // A Deployment the leader has acted on, so the new leader inherits its pods.
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox:1.36",
        "--replicas=3",
    ]);
    let pod_names = |c: &Cluster| -> Vec<String> {
        jsonpath(
            c,
            &["get", "pods", "-l", "app=web"],
            "{range .items[*]}{.metadata.name}{\"\\n\"}{end}",
        )
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
    };
    wait_for(60, "3 pods of the Deployment", || {
        let pods = pod_names(&c);
        if pods.len() == 3 {
            Ok(())
        } else {
            Err(format!("{pods:?}"))
        }
    });

    // Kill the leader without letting it release the lease.
    let (survivor, mut dead) = if a_leads { (b, a) } else { (a, b) };
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    let killed = Instant::now();
    wait_for(60, "the standby to take over", || {
        match survivor.leading() {
            Some(true) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let took = killed.elapsed();
    eprintln!("standby took over after {took:?}");
    // The lease lasts 15 s and is retried every 2 s: the standby leads within 20 s of the kill
    // (a loaded machine gets a few seconds of slack).
    assert!(
        took < Duration::from_secs(25),
        "the standby took {took:?} to take over"
    );
    let new_holder = jsonpath(
        &c,
        &[
            "-n",
            "kube-system",
            "get",
            "lease",
            "kube-controller-manager",
        ],
        "{.spec.holderIdentity}",
    )
    .expect("the lease names its holder");
    assert_ne!(new_holder, holder);
    c.ok(&["create", "namespace", "after"]);
    wait_for(
        30,
        "the new leader to publish the root CA ConfigMap",
        || {
            jsonpath(
                &c,
                &["-n", "after", "get", "configmap", "kube-root-ca.crt"],
                "{.metadata.name}",
            )
        },
    );
    // The new leader adopts the Deployment's pods instead of creating its own: scaled to 5,
    // exactly 5 pods and one ReplicaSet exist, and stay so.
    c.ok(&["scale", "deployment", "web", "--replicas=5"]);
    wait_for(60, "5 pods after the scale", || {
        let pods = pod_names(&c);
        if pods.len() == 5 {
            Ok(())
        } else {
            Err(format!("{pods:?}"))
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    let pods = pod_names(&c);
    assert_eq!(pods.len(), 5, "no duplicate pods: {pods:?}");
    let sets = jsonpath(
        &c,
        &["get", "replicasets", "-l", "app=web"],
        "{.items[*].metadata.name}",
    )
    .expect("replicasets");
    assert_eq!(sets.split_whitespace().count(), 1, "one ReplicaSet: {sets}");
    drop(dead);
}

/// Upstream's controller manager exits when it loses its lease; kox's stops every controller at
/// once, stands by, and campaigns again.
#[test]
fn a_leader_that_loses_its_lease_stops_acting_until_it_leads_again() {
    let c = Cluster::start_with(&["--disable-controller-manager"]);
    let cm = ControllerManager::start(&c, "cm.log");
    wait_for(60, "the controller manager to lead", || {
        match cm.leading() {
            Some(true) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    c.ok(&["create", "namespace", "led"]);
    wait_for(30, "the root CA ConfigMap in a new namespace", || {
        jsonpath(
            &c,
            &["-n", "led", "get", "configmap", "kube-root-ca.crt"],
            "{.metadata.name}",
        )
    });

    // Another candidate takes the lease, as one would after this leader's renewals failed.
    let renew = utc_now_micro();
    c.ok(&[
        "-n",
        "kube-system",
        "patch",
        "lease",
        "kube-controller-manager",
        "--type",
        "merge",
        "-p",
        &format!(
            r#"{{"spec":{{"holderIdentity":"another-candidate","leaseDurationSeconds":30,"renewTime":"{renew}"}}}}"#
        ),
    ]);
    let lost = Instant::now();
    wait_for(30, "the controller manager to step down", || {
        match cm.leading() {
            Some(false) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    eprintln!(
        "stepped down {:?} after the lease was taken",
        lost.elapsed()
    );
    c.ok(&["create", "namespace", "unled"]);
    // Nothing acts while another holds the lease: the root CA is not published. (The default
    // ServiceAccount is no signal: the API server creates it with the namespace.)
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(6) {
        assert_eq!(
            cm.leading(),
            Some(false),
            "it led again while the lease was held"
        );
        let ca = c.kubectl(&["-n", "unled", "get", "configmap", "kube-root-ca.crt"]);
        assert!(
            !ca.status.success(),
            "a controller acted without the lease: {}\ncontroller manager log:\n{}",
            String::from_utf8_lossy(&ca.stdout),
            std::fs::read_to_string(c.data_dir().join("cm.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The other candidate never renews: once its lease expires, this one leads again and
    // catches up.
    wait_for(90, "the controller manager to lead again", || {
        match cm.leading() {
            Some(true) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let holder = jsonpath(
        &c,
        &[
            "-n",
            "kube-system",
            "get",
            "lease",
            "kube-controller-manager",
        ],
        "{.spec.holderIdentity}",
    )
    .expect("the lease names its holder");
    assert_ne!(holder, "another-candidate");
    wait_for(30, "the root CA ConfigMap once leading again", || {
        jsonpath(
            &c,
            &["-n", "unled", "get", "configmap", "kube-root-ca.crt"],
            "{.metadata.name}",
        )
    });
}

/// Now as a Lease's `renewTime` (RFC 3339 with microseconds, UTC).
fn utc_now_micro() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"])
        .output()
        .expect("run date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A `kox fake-nodes` process, killed when dropped.
struct FakeNodes(Child);

impl FakeNodes {
    fn start(c: &Cluster, log: &str, prefix: &str) -> Self {
        let log = std::fs::File::create(c.data_dir().join(log)).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kox"))
            .arg("fake-nodes")
            .arg("--kubeconfig")
            .arg(c.kubeconfig())
            .args([
                "--count",
                "1",
                "--heartbeat-seconds",
                "2",
                "--name-prefix",
                prefix,
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kox fake-nodes");
        FakeNodes(child)
    }
}

impl Drop for FakeNodes {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_node_that_stops_heartbeating_goes_not_ready_and_its_pods_are_evicted() {
    let c = Cluster::start_with(&["--disable-controller-manager"]);
    let cm_port = free_port().to_string();
    let log = std::fs::File::create(c.data_dir().join("cm.log")).expect("log file");
    let mut cm = Command::new(env!("CARGO_BIN_EXE_kox"))
        .arg("controller-manager")
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args([
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &cm_port,
            "--leader-elect=false",
            "--node-monitor-grace-period",
            "10s",
            "--node-monitor-period",
            "1s",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start kox controller-manager");
    let _stay = FakeNodes::start(&c, "stay.log", "stay-");
    let mut gone = FakeNodes::start(&c, "gone.log", "gone-");
    wait_for(60, "two Ready nodes", || {
        let out = c.ok(&["get", "nodes", "--no-headers"]);
        if out.lines().filter(|l| l.contains(" Ready ")).count() == 2 {
            Ok(())
        } else {
            Err(out)
        }
    });
    c.ok(&["create", "namespace", "work"]);
    wait_for(30, "the default ServiceAccount", || {
        jsonpath(
            &c,
            &["-n", "work", "get", "serviceaccount", "default"],
            "{.metadata.name}",
        )
    });
    let pod = |name: &str, tolerations: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: gone-0\n  containers:\n  - name: c\n    image: busybox\n{tolerations}"
        )
    };
    // Leaves 3 s after the node becomes unreachable.
    c.ok_stdin(
        &["-n", "work", "apply", "-f", "-"],
        &pod(
            "short",
            "  tolerations:\n  - key: node.kubernetes.io/unreachable\n    operator: Exists\n    effect: NoExecute\n    tolerationSeconds: 3\n",
        ),
    );
    // Tolerates it for good.
    c.ok_stdin(
        &["-n", "work", "apply", "-f", "-"],
        &pod(
            "forever",
            "  tolerations:\n  - key: node.kubernetes.io/unreachable\n    operator: Exists\n    effect: NoExecute\n",
        ),
    );
    // Gets the admission default: 300 s.
    c.ok_stdin(&["-n", "work", "apply", "-f", "-"], &pod("default", ""));
    wait_for(60, "the pods to run on the doomed node", || {
        let out = c.ok(&["-n", "work", "get", "pods", "--no-headers"]);
        if out.lines().filter(|l| l.contains("Running")).count() == 3 {
            Ok(())
        } else {
            Err(out)
        }
    });

    let _ = gone.0.kill();
    let _ = gone.0.wait();
    wait_for(90, "the silent node to become NotReady", || {
        let msg = jsonpath(
            &c,
            &["get", "node", "gone-0"],
            "{.status.conditions[?(@.type==\"Ready\")].status}/{.status.conditions[?(@.type==\"Ready\")].message}",
        )?;
        if msg == "Unknown/Kubelet stopped posting node status." {
            Ok(())
        } else {
            Err(msg)
        }
    });
    let status = c.ok(&["get", "node", "gone-0", "--no-headers"]);
    assert!(status.contains("NotReady"), "{status}");
    wait_for(30, "the unreachable taints", || {
        let taints = jsonpath(
            &c,
            &["get", "node", "gone-0"],
            "{range .spec.taints[*]}{.key}:{.effect} {end}",
        )?;
        if taints.contains("node.kubernetes.io/unreachable:NoExecute")
            && taints.contains("node.kubernetes.io/unreachable:NoSchedule")
        {
            Ok(())
        } else {
            Err(taints)
        }
    });
    assert_eq!(
        c.ok(&["get", "node", "stay-0", "--no-headers"])
            .split_whitespace()
            .nth(1),
        Some("Ready"),
        "the healthy node is left alone"
    );
    // The pod tolerating 3 s is evicted: deleted, so Terminating while its node cannot
    // confirm; the others stay, marked not ready.
    wait_for(60, "the short-toleration pod to be evicted", || {
        let ts = jsonpath(
            &c,
            &["-n", "work", "get", "pod", "short"],
            "{.metadata.deletionTimestamp}",
        )?;
        if ts.is_empty() {
            Err("not deleted".into())
        } else {
            Ok(())
        }
    });
    let events = c.ok(&[
        "-n",
        "work",
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=short",
    ]);
    assert!(
        events.contains("TaintManagerEviction")
            && events.contains("Marking for deletion Pod work/short"),
        "{events}"
    );
    for p in ["forever", "default"] {
        let ts = jsonpath(
            &c,
            &["-n", "work", "get", "pod", p],
            "{.metadata.deletionTimestamp}",
        );
        assert_eq!(ts.as_deref(), Ok(""), "{p} tolerates the taint (for now)");
        wait_for(30, &format!("{p} marked not ready"), || {
            let ready = jsonpath(
                &c,
                &["-n", "work", "get", "pod", p],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            )?;
            if ready == "False" { Ok(()) } else { Err(ready) }
        });
    }
    // The default toleration is upstream's 300 s.
    let secs = jsonpath(
        &c,
        &["-n", "work", "get", "pod", "default"],
        "{.spec.tolerations[?(@.key==\"node.kubernetes.io/unreachable\")].tolerationSeconds}",
    );
    assert_eq!(secs.as_deref(), Ok("300"));

    // A deleted node's pods are garbage-collected (force-deleted).
    c.ok(&["delete", "node", "gone-0"]);
    wait_for(
        90,
        "the pod garbage collector to remove the deleted node's pods",
        || {
            let left = names(&c, &["-n", "work", "get", "pods"]);
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    );
    let _ = cm.kill();
    let _ = cm.wait();
}

#[test]
fn disruption_budgets_report_how_many_pods_may_go() {
    let c = Cluster::start();
    let _nodes = FakeNodes::start(&c, "nodes.log", "pdb-");
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=3",
    ]);
    c.ok(&[
        "create",
        "poddisruptionbudget",
        "by-count",
        "--selector=app=web",
        "--min-available=2",
    ]);
    c.ok(&[
        "create",
        "poddisruptionbudget",
        "by-percent",
        "--selector=app=web",
        "--max-unavailable=50%",
    ]);
    let budget = |name: &str| {
        jsonpath(
            &c,
            &["get", "pdb", name],
            "{.status.expectedPods}/{.status.currentHealthy}/{.status.desiredHealthy}/{.status.disruptionsAllowed}/{.status.conditions[0].reason}",
        )
    };
    wait_for(90, "the count budget to allow one disruption", || {
        let b = budget("by-count")?;
        if b == "3/3/2/1/SufficientPods" {
            Ok(())
        } else {
            Err(b)
        }
    });
    // 50% of the Deployment's 3 replicas rounds up to 2 unavailable.
    wait_for(
        60,
        "the percentage budget to follow the deployment's scale",
        || {
            let b = budget("by-percent")?;
            if b == "3/3/1/2/SufficientPods" {
                Ok(())
            } else {
                Err(b)
            }
        },
    );
    let row = c.ok(&["get", "pdb", "by-count", "--no-headers"]);
    assert_eq!(
        row.split_whitespace().take(4).collect::<Vec<_>>(),
        ["by-count", "2", "N/A", "1"],
        "{row}"
    );
    c.ok(&["scale", "deployment", "web", "--replicas=1"]);
    wait_for(90, "the count budget to allow nothing", || {
        let b = budget("by-count")?;
        if b == "1/1/2/0/InsufficientPods" {
            Ok(())
        } else {
            Err(b)
        }
    });
}

#[test]
fn quota_usage_gives_back_what_finished_pods_held() {
    let c = Cluster::start();
    let _nodes = FakeNodes::start(&c, "nodes.log", "quota-");
    c.ok(&["create", "quota", "q", "--hard=pods=5,count/pods=5"]);
    c.ok(&["create", "job", "once", "--image=busybox", "--", "true"]);
    wait_for(90, "the job to complete", || {
        let s = jsonpath(&c, &["get", "job", "once"], "{.status.succeeded}")?;
        if s == "1" { Ok(()) } else { Err(s) }
    });
    // The finished pod is still there, but no longer counts.
    assert_eq!(names(&c, &["get", "pods", "-l", "job-name=once"]).len(), 1);
    wait_for(60, "the quota to count no pods", || {
        let used = jsonpath(
            &c,
            &["get", "quota", "q"],
            "{.status.used.pods}/{.status.used.count/pods}",
        )?;
        if used == "0/0" { Ok(()) } else { Err(used) }
    });
}
