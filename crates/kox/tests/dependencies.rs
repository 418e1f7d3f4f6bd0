//! The crate graph keeps its direction: only the API server touches the store; every other
//! component is an API client (`kube` + `kox-api`).

use std::collections::HashMap;

#[test]
fn components_never_depend_on_the_store_or_the_api_server() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let deps: HashMap<String, Vec<String>> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let names = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str().map(str::to_string))
                .collect();
            (p["name"].as_str().unwrap_or("").to_string(), names)
        })
        .collect();
    let clients = [
        "kox-scheduler",
        "kox-controllers",
        "kox-component",
        "kox-fakenode",
        "kox-kubelet",
    ];
    for client in clients {
        let d = deps
            .get(client)
            .unwrap_or_else(|| panic!("{client} is in the workspace"));
        for forbidden in ["kox-store", "kox-apiserver"] {
            assert!(
                !d.iter().any(|n| n == forbidden),
                "{client} depends on {forbidden}"
            );
        }
    }
    for (name, d) in &deps {
        if name != "kox" && name != "kox-apiserver" {
            assert!(
                !d.iter().any(|n| n == "kox-store"),
                "{name} depends on kox-store"
            );
        }
    }
}
