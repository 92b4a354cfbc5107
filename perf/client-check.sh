#!/usr/bin/env bash
# Is the load generator the bottleneck? Drives redis-server with redis-benchmark and with
# percore-bench under the same settings (same server CPU, same client CPU, same connections,
# pipeline and key space) and prints both throughputs: percore-bench must reach at least
# redis-benchmark's figure (memtier_benchmark too, when it is installed).
#
# Usage: perf/client-check.sh [--requests N] [--conns N] [--pipelines "1 16"] [--keys N]
#          [--server-cpu C] [--client-cpu C]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

REQUESTS=1000000
CONNS=50
PIPELINES="1 16"
KEYS=100000
SERVER_CPU=0
CLIENT_CPU=1
while [ $# -gt 0 ]; do
    case $1 in
    --requests) REQUESTS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --pipelines) PIPELINES=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --server-cpu) SERVER_CPU=$2; shift 2 ;;
    --client-cpu) CLIENT_CPU=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done
command -v redis-benchmark >/dev/null || die "redis-benchmark not found (apt-get install redis-tools)"
build_release
start_server redis "$SERVER_CPU"
bench "$CLIENT_CPU" -c "$CONNS" --load "$KEYS" --keyspace "$KEYS" -s 32 --load-only -q >&2
printf '%-4s %16s %16s %16s\n' P redis-benchmark percore-bench memtier
for p in $PIPELINES; do
    rb=$(taskset -c "$CLIENT_CPU" redis-benchmark -p "$SERVER_PORT" -t get -c "$CONNS" -P "$p" \
        -n "$REQUESTS" -r "$KEYS" -d 32 -q 2>/dev/null | tr '\r' '\n' | awk '/^GET:/{print $2}' | tail -1)
    pb=$(bench "$CLIENT_CPU" -c "$CONNS" -P "$p" -n "$REQUESTS" --ratio 0:1 --keyspace "$KEYS" \
        --assume-loaded "$KEYS" -s 32 -q --busy-poll 50 --json "$TMPD/pb.json" >/dev/null &&
        jq '.totals.ops_per_sec | floor' "$TMPD/pb.json")
    mt=n/a
    if command -v memtier_benchmark >/dev/null; then
        mt=$(taskset -c "$CLIENT_CPU" memtier_benchmark -p "$SERVER_PORT" -t 1 -c "$CONNS" --pipeline "$p" \
            --ratio 0:1 --key-maximum "$KEYS" --key-prefix key: -n $((REQUESTS / CONNS)) --hide-histogram \
            2>/dev/null | awk '/^Totals/{print int($2)}')
    fi
    printf '%-4s %16s %16s %16s\n' "$p" "$rb" "$pb" "$mt"
done
