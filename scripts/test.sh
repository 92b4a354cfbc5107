#!/usr/bin/env bash
# Runs percore's whole test suite on a fresh Debian machine with a Rust toolchain.
# Installs what the tests need (Debian's redis-server and redis-tools for the
# differential tests), then runs cargo test for the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_pkgs+=(redis-tools)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "scripts/test.sh: installing ${need_pkgs[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
    # Debian starts a redis-server service on 6379; the tests start their own.
    $SUDO systemctl stop redis-server >/dev/null 2>&1 || true
fi

# io_uring needs locked memory; percore raises the limit itself when allowed.
ulimit -l unlimited 2>/dev/null || true
# The connection-limit tests open 10,000 sockets.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release --workspace --all-targets
cargo test --release --workspace "$@"
