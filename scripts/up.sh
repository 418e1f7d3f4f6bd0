#!/usr/bin/env bash
# Builds kox and runs the control plane in the foreground. Any arguments go to `kox server`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cc >/dev/null || { apt-get update -qq && apt-get install -y -qq build-essential; }
command -v protoc >/dev/null || { apt-get update -qq && apt-get install -y -qq protobuf-compiler; }
cargo build --release -p kox
exec ./target/release/kox server "$@"
