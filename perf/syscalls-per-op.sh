#!/usr/bin/env bash
# System calls per operation, percore vs redis-server, under the same fixed request count.
#
# strace -c -f attaches to every thread of the running server for exactly the measured
# requests and counts each system call; calls/op = total / requests, with the top calls.
# Note for percore: I/O that Glommio submits through io_uring shows up only as
# io_uring_enter calls (one enter can carry many sends/receives); sends and receives
# glommio tries directly first (its "yolo" fast path) show up as sendto/recvfrom.
# strace slows every syscall a lot: the counts are right, the throughput is not.
#
# Usage: perf/syscalls-per-op.sh [--requests N] [--pipelines "1 16"] [--conns N] [--keys N]
#          [--servers "redis percore"] [--server-cpu C] [--client-cpu C] [--top N] [--out DIR]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

REQUESTS=200000
PIPELINES="1 16"
CONNS=50
KEYS=100000
SERVERS="redis percore"
SERVER_CPU=0
CLIENT_CPU=1
TOP=6
OUT=$ROOT/perf/results
while [ $# -gt 0 ]; do
    case $1 in
    --requests) REQUESTS=$2; shift 2 ;;
    --pipelines) PIPELINES=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    --server-cpu) SERVER_CPU=$2; shift 2 ;;
    --client-cpu) CLIENT_CPU=$2; shift 2 ;;
    --top) TOP=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done
command -v strace >/dev/null || die "strace not installed (apt-get install strace)"
build_release
mkdir -p "$OUT"

RESULTS=$TMPD/results.jsonl
: >"$RESULTS"
for server in $SERVERS; do
    start_server "$server" "$SERVER_CPU"
    pid=$(server_pid)
    bench "$CLIENT_CPU" -c "$CONNS" --load "$KEYS" --keyspace "$KEYS" -s 32 --load-only -q >&2
    for p in $PIPELINES; do
        out=$TMPD/strace-$server-$p.txt
        tids=$(cd "/proc/$pid/task" && printf '%s\n' * | paste -sd, -)
        strace -f -c -o "$out" -p "$tids" 2>/dev/null &
        spid=$!
        sleep 0.5
        bench "$CLIENT_CPU" -c "$CONNS" -P "$p" -n "$REQUESTS" --ratio 1:10 --keyspace "$KEYS" \
            --assume-loaded "$KEYS" -s 32 -q --json "$TMPD/$server-P$p.json" >/dev/null
        kill -INT "$spid"
        wait "$spid" || true
        ops=$(jq '.totals.count' "$TMPD/$server-P$p.json")
        # strace -c table: "% time seconds usecs/call calls [errors] syscall"; the last line is the total.
        calls=$(awk '$NF=="total"{print $4}' "$out")
        top=$(awk -v n="$ops" '$1 ~ /^[0-9.]+$/ && $NF != "total" {printf "%s %.3f\n", $NF, $4 / n}' "$out" |
            sort -k2 -gr | head -"$TOP" | jq -Rn '[inputs | split(" ") | {syscall:.[0], per_op:(.[1]|tonumber)}]')
        jq -nc --arg s "$server" --argjson p "$p" --argjson n "$ops" --argjson c "${calls:-0}" --argjson top "$top" \
            '{server:$s, pipeline:$p, requests:$n, syscalls:$c, syscalls_per_op:($c / $n), top:$top}' >>"$RESULTS"
    done
    stop_server
done

STAMP=$(free_stamp syscalls-per-op.json)
jq -s --arg rev "$(git_rev)" --arg machine "$(machine)" --arg date "$(date -u +%FT%TZ)" \
    --argjson keys "$KEYS" --argjson conns "$CONNS" \
    '{date:$date, git_rev:$rev, machine:$machine, workload:"GET/SET 10:1", keys:$keys, connections:$conns, results:.}' \
    "$RESULTS" >"$OUT/$STAMP-syscalls-per-op.json"
echo
jq -r '.results[] | "\(.server) P\(.pipeline): \((.syscalls_per_op * 1000 | round) / 1000) syscalls/op  (" +
    ([.top[] | "\(.syscall) \(.per_op)"] | join(", ")) + ")"' "$OUT/$STAMP-syscalls-per-op.json"
echo "wrote $OUT/$STAMP-syscalls-per-op.json"
