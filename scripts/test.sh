#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need, builds, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v cc >/dev/null || need_pkgs+=(build-essential)
command -v protoc >/dev/null || need_pkgs+=(protobuf-compiler) # etcd-client's build
[ -x /usr/bin/etcd ] || need_pkgs+=(etcd-server)               # the etcd engine's tests
command -v curl >/dev/null || need_pkgs+=(curl)                # raw HTTP in the end-to-end tests
# The node agent's tests run pods on the real runtime, CNI plugins and a busybox image.
command -v containerd >/dev/null || need_pkgs+=(containerd)
command -v runc >/dev/null || need_pkgs+=(runc)
[ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || need_pkgs+=(containernetworking-plugins)
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v mount >/dev/null || need_pkgs+=(mount)
command -v script >/dev/null || need_pkgs+=(bsdutils)                # a terminal for `kubectl exec -it`
command -v python3 >/dev/null || need_pkgs+=(python3 python3-pip)   # the Python client's streams
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
  else
    echo "missing: ${need_pkgs[*]} — install them (as root: apt-get install ${need_pkgs[*]})" >&2
    exit 1
  fi
fi

# The official Python client, for its exec streams (a pinned release, from PyPI).
python3 -c "import kubernetes" 2>/dev/null || python3 -m pip install -q "kubernetes==31.0.0" ||
  python3 -m pip install -q --break-system-packages "kubernetes==31.0.0"

command -v kubectl >/dev/null || { echo "kubectl (1.32) is needed by the end-to-end tests; install it and run again" >&2; exit 1; }

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads=2
