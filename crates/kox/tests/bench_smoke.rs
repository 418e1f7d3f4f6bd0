//! Smoke test of the API server benchmarks: each `kox bench …` runs end to end with tiny sizes
//! and writes a result that accounts for everything it did. No timing is asserted.

use std::process::Command;

use serde_json::Value;

/// Runs `kox bench <args> --json FILE` with its temporary files in a directory of its own, and
/// returns the JSON result.
fn bench(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("result.json");
    let out = Command::new(env!("CARGO_BIN_EXE_kox"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&json)
        .env("TMPDIR", dir.path())
        .output()
        .expect("run kox bench");
    assert!(
        out.status.success(),
        "kox bench {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("goals"), "no goals table:\n{stdout}");
    let text = std::fs::read_to_string(&json).expect("the JSON result was written");
    serde_json::from_str(&text).expect("the result is JSON")
}

#[test]
fn api_write_measures_creates_and_the_store_anchor() {
    let r = bench(&[
        "api-write",
        "--clients",
        "4",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--store-duration",
        "0.5",
    ]);
    let run = &r["runs"][0];
    assert!(run["api"]["creates"].as_u64().expect("creates") > 0, "{r}");
    assert_eq!(run["api"]["errors"], 0, "{r}");
    assert!(
        run["store_write"]["writes"].as_u64().expect("writes") > 0,
        "{r}"
    );
    assert!(r["median"]["ratio"].as_f64().expect("ratio") > 0.0, "{r}");
}

#[test]
fn api_list_returns_every_pod_in_every_kind_of_list() {
    let r = bench(&[
        "api-list",
        "--pods",
        "50",
        "--reps",
        "5",
        "--page-size",
        "20",
        "--clients",
        "8",
    ]);
    let lists = r["lists"].as_array().expect("lists");
    assert_eq!(lists.len(), 4, "{r}");
    let items: Vec<u64> = lists
        .iter()
        .map(|l| l["items"].as_u64().expect("items"))
        .collect();
    assert_eq!(items, [50, 50, 25, 50], "{r}");
    assert!(
        lists
            .iter()
            .all(|l| l["all_ms"].as_array().map(Vec::len) == Some(5))
    );
}

#[test]
fn watch_fanout_delivers_every_write_to_every_watcher() {
    let r = bench(&[
        "watch-fanout",
        "--watchers",
        "20",
        "--writes",
        "20",
        "--write-rate",
        "0",
        "--write-clients",
        "4",
        "--streams-per-connection",
        "8",
        "--settle",
        "0.2",
        "--drain-timeout",
        "60",
    ]);
    assert_eq!(r["params"]["connections"], 3, "{r}");
    assert_eq!(r["watchers_established"], 20, "{r}");
    assert_eq!(r["watchers_complete"], 20, "{r}");
    assert_eq!(r["events_delivered"], 400, "{r}");
    assert!(
        r["rss_kib"]["watchers_idle"].as_u64().expect("rss") > 0,
        "{r}"
    );
}

#[test]
fn footprint_reads_the_server_memory_idle_and_loaded() {
    let r = bench(&["footprint", "--pods", "50", "--settle", "0.2"]);
    let run = &r["runs"][0];
    for field in ["idle_kib", "pods_kib", "pods_watch_cache_kib", "peak_kib"] {
        assert!(run[field].as_u64().expect(field) > 0, "{r}");
    }
}

#[test]
fn footprint_with_nodes_runs_every_pod_on_simulated_nodes() {
    let r = bench(&[
        "footprint",
        "--pods",
        "20",
        "--nodes",
        "2",
        "--settle",
        "0.2",
    ]);
    assert_eq!(r["scheduler_in_server"], true, "{r}");
    assert!(
        r["runs"][0]["pods_kib"].as_u64().expect("pods_kib") > 0,
        "{r}"
    );
}

#[test]
fn startup_restarts_the_server_on_an_empty_and_a_filled_store() {
    let r = bench(&["startup", "--objects", "50", "--runs", "1"]);
    for case in ["first_boot_ms", "restart_empty_ms", "restart_loaded_ms"] {
        assert_eq!(r[case]["all"].as_array().map(Vec::len), Some(1), "{r}");
        assert!(r[case]["median"].as_f64().expect(case) > 0.0, "{r}");
    }
}

#[test]
fn scheduler_binds_every_pod_to_simulated_nodes() {
    let r = bench(&[
        "scheduler",
        "--nodes",
        "5",
        "--pods",
        "20",
        "--clients",
        "4",
        "--heartbeat-window",
        "0",
        "--timeout",
        "120",
    ]);
    assert_eq!(r["pods_bound"], 20, "{r}");
    assert_eq!(r["all_bound"], true, "{r}");
    assert!(
        r["overall_pods_per_sec"].as_f64().expect("pods/s") > 0.0,
        "{r}"
    );
    for rss in ["server_peak", "fake_nodes_peak", "scheduler_peak"] {
        assert!(r["rss_kib"][rss].as_u64().expect(rss) > 0, "{r}");
    }
    assert!(
        r["writes_per_sec"]["POST pods"].as_f64().expect("creates") > 0.0,
        "{r}"
    );
}

#[test]
fn controllers_scales_a_deployment_until_every_replica_runs() {
    let r = bench(&[
        "controllers",
        "--nodes",
        "5",
        "--replicas",
        "20",
        "--settle",
        "0.5",
        "--timeout",
        "180",
    ]);
    assert_eq!(r["completed"], true, "{r}");
    assert_eq!(r["final"]["available"], 20, "{r}");
    assert_eq!(r["final"]["running"], 20, "{r}");
    let cm = &r["controller_manager"];
    assert!(
        cm["peak_rss_kib"].as_u64().expect("peak_rss_kib") > 0,
        "{r}"
    );
    assert!(
        cm["cpu_seconds"].as_f64().expect("cpu_seconds") > 0.0,
        "{r}"
    );
}
