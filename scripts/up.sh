#!/usr/bin/env bash
# Builds kox and runs the control plane in the foreground. Any arguments go to `kox server`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cc >/dev/null || { apt-get update -qq && apt-get install -y -qq build-essential; }
command -v protoc >/dev/null || { apt-get update -qq && apt-get install -y -qq protobuf-compiler; }
# The node agent runs pods on containerd with runc and the CNI plugins.
command -v containerd >/dev/null && command -v runc >/dev/null && [ -x /usr/lib/cni/bridge ] ||
  { apt-get update -qq && apt-get install -y -qq containerd runc containernetworking-plugins; }
cargo build --release -p kox
exec ./target/release/kox server "$@"
