//! Certificates renew themselves: with client certificates valid for only 30 s, `kox server`
//! issues the admin, scheduler and controller manager new ones before the old expire and
//! rewrites their kubeconfigs; the in-process scheduler and controller manager switch to them
//! without a restart and keep working after the first certificates have expired, while a copy
//! of the first admin kubeconfig is refused (401), as upstream checks expiry on every request.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Cluster, FakeNodes, wait_for};

/// The expiry (Unix time) of the client certificate embedded in a kubeconfig.
fn cert_expiry(kubeconfig: &Path) -> i64 {
    use base64::Engine;
    let text = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
    let data = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-certificate-data: "))
        .expect("client-certificate-data");
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64");
    kox_apiserver::pki::not_after(std::str::from_utf8(&pem).expect("PEM")).expect("certificate")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn components_keep_working_after_their_first_certificates_expire() {
    let c = Cluster::start_with(&["--client-cert-validity", "30s"]);
    let dir = c.data_dir().to_path_buf();
    let kubeconfigs = [
        dir.join("admin.kubeconfig"),
        dir.join("scheduler.kubeconfig"),
        dir.join("controller-manager.kubeconfig"),
    ];
    let first_expiry: Vec<i64> = kubeconfigs.iter().map(|k| cert_expiry(k)).collect();
    for expiry in &first_expiry {
        let left = expiry - now();
        assert!((0..=31).contains(&left), "issued for 30 s, {left} s left");
    }
    let old_admin = dir.join("old-admin.kubeconfig");
    std::fs::copy(&kubeconfigs[0], &old_admin).unwrap();
    let _nodes = FakeNodes::start(&c, "nodes.log", &["--count", "2"]);
    wait_for(60, "2 Ready nodes", || {
        let out = c.ok(&["get", "nodes", "--no-headers"]);
        let ready = out.lines().filter(|l| l.contains(" Ready ")).count();
        (ready == 2).then_some(()).ok_or(out)
    });

    // Every kubeconfig gets a certificate that outlives the first: renewed with a third of
    // the 30 s left.
    wait_for(60, "renewed kubeconfigs", || {
        let renewed: Vec<bool> = kubeconfigs
            .iter()
            .zip(&first_expiry)
            .map(|(k, first)| cert_expiry(k) > *first)
            .collect();
        renewed
            .iter()
            .all(|r| *r)
            .then_some(())
            .ok_or(format!("renewed: {renewed:?}"))
    });
    let latest = *first_expiry.iter().max().unwrap();
    while now() <= latest + 1 {
        std::thread::sleep(Duration::from_millis(200));
    }

    // The first certificates have expired: one that is not renewed is refused …
    let out = c.fails(&[
        "--kubeconfig",
        old_admin.to_str().unwrap(),
        "get",
        "namespaces",
    ]);
    assert!(
        out.contains("Unauthorized") || out.contains("must be logged in"),
        "an expired admin certificate is a 401: {out}"
    );
    // … while the admin kubeconfig kubectl reads now works, and the controller manager
    // (Deployment → ReplicaSet → pods) and the scheduler (pods → nodes) keep working.
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox:1.36",
        "--replicas=3",
    ]);
    let started = Instant::now();
    wait_for(90, "3 pods of web scheduled and Running", || {
        let out = c.ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "custom-columns=NODE:.spec.nodeName,PHASE:.status.phase",
            "--no-headers",
        ]);
        let running = out
            .lines()
            .filter(|l| !l.starts_with("<none>") && l.trim_end().ends_with("Running"))
            .count();
        (running == 3).then_some(()).ok_or(out)
    });
    // Several renewals have happened by now; the components followed each.
    assert!(
        cert_expiry(&kubeconfigs[1]) > latest,
        "scheduler kubeconfig renewed"
    );
    let log = c.server_log();
    for stem in ["scheduler", "controller-manager"] {
        assert!(
            log.contains(&format!(
                "{stem}.kubeconfig changed: using its new credentials"
            )),
            "the {stem} switched to its new certificate; server log:\n{log}"
        );
    }
    eprintln!(
        "pods Running {:.1} s after the first certificates expired",
        started.elapsed().as_secs_f64()
    );
}
