#!/usr/bin/env bash
# Instructions (and cycles, when the CPU exposes them) per operation, percore vs redis-server,
# under the same fixed request count.
#
# With hardware counters (`perf stat -e instructions true` counts), perf stat attaches to the
# server for exactly the measured requests. Without them (VMs such as ci-2c report
# "<not supported>"), the server runs under valgrind --tool=callgrind and callgrind_control
# dumps the counters right before and right after the measured requests, so start-up, the
# load phase and shutdown are excluded: instructions/op = Ir of that dump / requests.
# Callgrind slows the server ~50x: latencies are meaningless there, counts are exact.
#
# Usage: perf/instructions-per-op.sh [--requests N] [--pipelines "1 16"] [--conns N]
#          [--keys N] [--servers "redis percore"] [--method auto|perf|callgrind]
#          [--server-cpu C] [--client-cpu C] [--out DIR]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

REQUESTS=200000
PIPELINES="1 16"
CONNS=50
KEYS=100000
SERVERS="redis percore"
METHOD=auto
SERVER_CPU=0
CLIENT_CPU=1
OUT=$ROOT/perf/results
while [ $# -gt 0 ]; do
    case $1 in
    --requests) REQUESTS=$2; shift 2 ;;
    --pipelines) PIPELINES=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    --method) METHOD=$2; shift 2 ;;
    --server-cpu) SERVER_CPU=$2; shift 2 ;;
    --client-cpu) CLIENT_CPU=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done
build_release
mkdir -p "$OUT"

if [ "$METHOD" = auto ]; then
    if perf stat -x, -e instructions true 2>&1 >/dev/null | grep -q '^[0-9]'; then
        METHOD=perf
    else
        METHOD=callgrind
        echo "no hardware instruction counter here (perf stat -e instructions: not supported): using callgrind" >&2
    fi
fi
case $METHOD in
perf) ;;
callgrind) command -v valgrind >/dev/null || die "valgrind not installed (apt-get install valgrind)" ;;
*) die "--method must be auto, perf or callgrind" ;;
esac

RESULTS=$TMPD/results.jsonl
: >"$RESULTS"
for server in $SERVERS; do
    if [ "$METHOD" = callgrind ]; then
        WRAP="valgrind --tool=callgrind --callgrind-out-file=$TMPD/cg-$server.%p" START_TIMEOUT=120 \
            start_server "$server" "$SERVER_CPU"
    else
        start_server "$server" "$SERVER_CPU"
    fi
    pid=$(server_pid)
    bench "$CLIENT_CPU" -c "$CONNS" --load "$KEYS" --keyspace "$KEYS" -s 32 --load-only -q >&2
    for p in $PIPELINES; do
        args=(-c "$CONNS" -P "$p" -n "$REQUESTS" --ratio 1:10 --keyspace "$KEYS" --assume-loaded "$KEYS"
            -s 32 -q --json "$TMPD/$server-P$p.json")
        if [ "$METHOD" = perf ]; then
            perf stat -x, -e instructions,cycles -p "$pid" -o "$TMPD/stat-$server-$p.csv" &
            spid=$!
            sleep 0.3
            bench "$CLIENT_CPU" "${args[@]}" >/dev/null
            kill -INT "$spid"
            wait "$spid" || true
            instr=$(awk -F, '$3 ~ /^instructions/{print $1}' "$TMPD/stat-$server-$p.csv")
            cycles=$(awk -F, '$3 ~ /^cycles/{print $1}' "$TMPD/stat-$server-$p.csv")
        else
            callgrind_control -d "$pid" >/dev/null 2>&1
            bench "$CLIENT_CPU" "${args[@]}" >/dev/null
            callgrind_control -d "$pid" >/dev/null 2>&1
            # The newest dump holds exactly the counts since the previous dump.
            last=$(printf '%s\n' "$TMPD"/cg-"$server"."$pid".* | sort -V | tail -1)
            instr=$(awk '/^summary:/{print $2}' "$last")
            cycles=null
        fi
        ops=$(jq '.totals.count' "$TMPD/$server-P$p.json")
        errs=$(jq '.totals.errors + .totals.bad_replies' "$TMPD/$server-P$p.json")
        [ "$errs" = 0 ] || echo "warning: $errs error replies from $server" >&2
        jq -nc --arg s "$server" --argjson p "$p" --argjson i "${instr:-null}" --argjson c "${cycles:-null}" \
            --argjson n "$ops" --arg m "$METHOD" \
            '{server:$s, pipeline:$p, method:$m, requests:$n, instructions:$i, cycles:$c,
              instructions_per_op:(if $i == null then null else $i / $n end),
              cycles_per_op:(if $c == null then null else $c / $n end)}' >>"$RESULTS"
    done
    stop_server
done

STAMP=$(free_stamp instructions-per-op.json)
jq -s --arg rev "$(git_rev)" --arg machine "$(machine)" --arg date "$(date -u +%FT%TZ)" \
    --argjson keys "$KEYS" --argjson conns "$CONNS" \
    '{date:$date, git_rev:$rev, machine:$machine, workload:"GET/SET 10:1", keys:$keys, connections:$conns, results:.}' \
    "$RESULTS" >"$OUT/$STAMP-instructions-per-op.json"
echo
printf '%-8s %4s %14s %12s %12s\n' server P instructions/op cycles/op "vs redis"
jq -r '.results as $r | $r[] | . as $x |
    ([$r[] | select(.server == "redis" and .pipeline == $x.pipeline)][0].instructions_per_op) as $base |
    [ .server, (.pipeline | tostring), (.instructions_per_op | floor | tostring),
      (if .cycles_per_op == null then "n/a" else (.cycles_per_op | floor | tostring) end),
      (if $base == null or $base == 0 then "" else ((.instructions_per_op / $base * 100 | round) / 100 | tostring) end)
    ] | @tsv' "$OUT/$STAMP-instructions-per-op.json" |
    while IFS=$'\t' read -r s p i c r; do printf '%-8s %4s %14s %12s %12s\n' "$s" "$p" "$i" "$c" "$r"; done
echo "wrote $OUT/$STAMP-instructions-per-op.json ($METHOD)"
