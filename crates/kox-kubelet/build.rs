//! Builds the pause program (`src/pause.c`) as a static executable: the sandbox image kox
//! provides itself, so a node needs no registry to start pods.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("pause");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    println!("cargo:rerun-if-changed=src/pause.c");
    let status = Command::new(&cc)
        .args(["-static", "-Os", "-s", "-Wall", "-o"])
        .arg(&out)
        .arg("src/pause.c")
        .status()
        .unwrap_or_else(|e| {
            panic!("running {cc} to build the pause program: {e} (install build-essential)")
        });
    assert!(
        status.success(),
        "{cc} failed to build src/pause.c statically (needs libc6-dev)"
    );
}
