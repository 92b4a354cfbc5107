# shellcheck shell=bash
# Shared helpers for perf/*.sh and scripts/bench-compare.sh. Sourced, not run.
#
# Environment knobs (all optional):
#   PERCORE=path      percore binary        (default target/release/percore)
#   BENCH=path        percore-bench binary  (default target/release/percore-bench)
#   REDIS_SERVER=path redis-server          (default: the one on PATH, Debian's)
#   NO_BUILD=1        do not run cargo build --release first
#   WRAP="cmd args"   run the server under this wrapper (valgrind, strace, perf)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PERCORE=${PERCORE:-$ROOT/target/release/percore}
BENCH=${BENCH:-$ROOT/target/release/percore-bench}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
TMPD=$(mktemp -d /tmp/percore-perf.XXXXXX)
SERVER_PID=""
SERVER_PORT=""

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

cleanup() {
    stop_server
    rm -rf "$TMPD"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Builds the release binaries unless NO_BUILD=1 (cargo is a no-op when they are fresh).
build_release() {
    if [ "${NO_BUILD:-0}" != 1 ]; then
        (cd "$ROOT" && cargo build --release -p percore -p percore-bench) >&2 ||
            die "cargo build --release failed"
    fi
    [ -x "$PERCORE" ] || die "no percore binary at $PERCORE"
    [ -x "$BENCH" ] || die "no percore-bench binary at $BENCH"
    command -v "$REDIS_SERVER" >/dev/null || die "redis-server not found (apt-get install redis-server)"
    command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install redis-tools)"
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT [SECONDS]: until the server answers PING.
wait_port() {
    local port=$1 secs=${2:-20} i=0
    while [ $i -lt $((secs * 20)) ]; do
        if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then return 0; fi
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

# start_server redis|percore CPULIST [extra server args...]
# Starts the server pinned to CPULIST (taskset), on a free port; sets SERVER_PORT and SERVER_PID.
# percore gets --shards ${SHARDS:-1} --pin-cores yes: it pins its executors within the
# taskset mask it inherits (and spins briefly before parking, as in production).
start_server() {
    local kind=$1 cpus=$2
    shift 2
    local port
    port=$(free_port)
    local log=$TMPD/$kind-$port.log
    case $kind in
    redis)
        # shellcheck disable=SC2086
        taskset -c "$cpus" ${WRAP:-} "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 \
            --save '' --appendonly no "$@" >"$log" 2>&1 &
        ;;
    percore)
        # shellcheck disable=SC2086
        taskset -c "$cpus" ${WRAP:-} "$PERCORE" --port "$port" --shards "${SHARDS:-1}" \
            --pin-cores yes --save '' "$@" >"$log" 2>&1 &
        ;;
    *) die "unknown server kind $kind" ;;
    esac
    SERVER_PID=$!
    SERVER_PORT=$port
    if ! wait_port "$port" "${START_TIMEOUT:-20}"; then
        cat "$log" >&2
        die "$kind did not start"
    fi
}

# The server process's own pid (not the wrapper's), from INFO server.
server_pid() {
    redis-cli -p "$SERVER_PORT" info server | tr -d '\r' | awk -F: '$1=="process_id"{print $2}'
}

# RSS of a pid in bytes.
rss_bytes() {
    awk '/^VmRSS:/{print $2 * 1024}' "/proc/$1/status"
}

# INFO memory used_memory of the running server.
used_memory() {
    redis-cli -p "$SERVER_PORT" info memory | tr -d '\r' | awk -F: '$1=="used_memory"{print $2}'
}

# Stops the running server (SHUTDOWN NOSAVE, then TERM, then KILL) and waits for the wrapper.
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    redis-cli -p "$SERVER_PORT" shutdown nosave >/dev/null 2>&1 || true
    local i=0
    while kill -0 "$SERVER_PID" 2>/dev/null && [ $i -lt 200 ]; do
        sleep 0.05
        i=$((i + 1))
        [ $i -eq 100 ] && kill -TERM "$SERVER_PID" 2>/dev/null
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# bench CPULIST ARGS...: percore-bench pinned to CPULIST against the running server.
bench() {
    local cpus=$1
    shift
    taskset -c "$cpus" "$BENCH" --port "$SERVER_PORT" "$@"
}

# git revision (with -dirty) and a one-line machine description, for result files.
git_rev() { (cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown); }
machine() {
    echo "$(nproc) CPU $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(uname -sr), $("$REDIS_SERVER" --version | awk '{print $3}')"
}

# The stamp for a new result file "$OUT/<stamp>-$1": today's date, or the date
# with b, c, ... appended when a run of the same day already wrote one (results
# in perf/results/ are cited by RESULTS.md and must not be overwritten).
free_stamp() {
    local day stamp suffix
    day=$(date -u +%Y-%m-%d)
    stamp=$day
    for suffix in b c d e f g h i j k l m n o p q r s t u v w x y z; do
        [ -e "$OUT/$stamp-$1" ] || break
        stamp=$day$suffix
    done
    echo "$stamp"
}
