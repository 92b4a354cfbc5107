#!/usr/bin/env bash
# SET throughput with each persistence mode, redis-server and percore side by side.
#
# For each server and each mode — none (no AOF, no RDB), appendfsync always,
# everysec, no — a fresh server (one core: --server-cpu, percore with 1 shard) in
# a scratch directory on the same filesystem as the repository (not tmpfs: O_DIRECT
# and fdatasync must hit a real disk), then closed-loop SETs of 32-byte values over
# --keys keys, --conns connections, at every --pipelines depth. Reports ops/s,
# p50/p99/p99.9, each mode's ops/s relative to the same server's "none", and
# percore/redis. Writes perf/results/<date>-aof-throughput.json and prints a table.
#
# Usage: perf/aof-throughput.sh [--duration S] [--warmup S] [--keys N] [--conns N]
#          [--pipelines "1 16"] [--modes "none always everysec no"] [--servers "redis percore"]
#          [--server-cpu C] [--client-cpus LIST] [--out DIR]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

DURATION=8
WARMUP=2
KEYS=1000000
CONNS=50
PIPELINES="16"
MODES="none always everysec no"
SERVERS="redis percore"
SERVER_CPU=0
CLIENT_CPUS=$(($(nproc) - 1))
OUT=$ROOT/perf/results
while [ $# -gt 0 ]; do
    case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --pipelines) PIPELINES=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    --server-cpu) SERVER_CPU=$2; shift 2 ;;
    --client-cpus) CLIENT_CPUS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done
build_release
command -v jq >/dev/null || die "jq not found (apt-get install jq)"
mkdir -p "$OUT" "$TMPD/runs"
# Data on the repository's filesystem: /tmp may be tmpfs, which has no O_DIRECT.
DATA=$(mktemp -d "$ROOT/target/aof-throughput.XXXXXX")
trap 'rm -rf "$DATA"; cleanup' EXIT
ROWS=$TMPD/rows.jsonl
: >"$ROWS"
STAMP=$(free_stamp aof-throughput.json)
N=0

for server in $SERVERS; do
    for mode in $MODES; do
        dir=$DATA/$server-$mode
        mkdir -p "$dir"
        args=(--dir "$dir")
        if [ "$mode" = none ]; then
            args+=(--appendonly no)
        else
            args+=(--appendonly yes --appendfsync "$mode")
        fi
        echo "== $server, $mode" >&2
        SHARDS=1 start_server "$server" "$SERVER_CPU" "${args[@]}"
        for p in $PIPELINES; do
            N=$((N + 1))
            json=$TMPD/runs/$N.json
            bench "$CLIENT_CPUS" -c "$CONNS" -P "$p" --command "SET __key__ __data__" \
                --keyspace "$KEYS" -s 32 --warmup "$WARMUP" --duration "$DURATION" -q \
                --label "$server $mode P$p" --json "$json" >/dev/null
            jq -c --arg server "$server" --arg mode "$mode" --argjson p "$p" --arg file "$json" \
                '{server:$server, mode:$mode, pipeline:$p, ops_per_sec:.totals.ops_per_sec,
                  p50_us:.totals.latency_us.p50, p99_us:.totals.latency_us.p99,
                  p99_9_us:.totals.latency_us["p99.9"],
                  errors:(.totals.errors + .totals.bad_replies), file:$file}' "$json" >>"$ROWS"
        done
        stop_server
        rm -rf "$dir"
    done
done

# Ratios: to the same server's "none" at the same depth, and percore to redis.
jq -s '
  [ .[] as $r
    | ([.[] | select(.server == $r.server and .pipeline == $r.pipeline and .mode == "none")][0]
       .ops_per_sec) as $none
    | ([.[] | select(.server == "redis" and .pipeline == $r.pipeline and .mode == $r.mode)][0]
       .ops_per_sec) as $redis
    | $r + {vs_none: (if ($none // 0) > 0 then $r.ops_per_sec / $none else null end),
            vs_redis: (if ($redis // 0) > 0 then $r.ops_per_sec / $redis else null end)} ]' \
    "$ROWS" >"$TMPD/rows.json"
jq -r '.[] | .file' "$TMPD/rows.json" | xargs jq -s '.' >"$TMPD/runs.json"
jq -n --slurpfile rows "$TMPD/rows.json" --slurpfile runs "$TMPD/runs.json" \
    --arg rev "$(git_rev)" --arg machine "$(machine)" --arg date "$(date -u +%FT%TZ)" \
    --arg fs "$(df -T "$DATA" | awk 'NR==2{print $2" on "$1}')" \
    --argjson keys "$KEYS" --argjson conns "$CONNS" --argjson duration "$DURATION" \
    --arg server_cpu "$SERVER_CPU" --arg client "$CLIENT_CPUS" \
    '{date:$date, git_rev:$rev, machine:$machine, filesystem:$fs,
      workload:"closed loop SET, 32-byte values", keys:$keys, connections:$conns,
      duration_s:$duration, server_cpu:$server_cpu, client_cpus:$client,
      rows:[$rows[0][] | del(.file)], runs:$runs[0]}' >"$OUT/$STAMP-aof-throughput.json"

printf '%-8s %-9s %4s %11s %8s %8s %9s %8s %9s %6s\n' \
    server mode P ops/s p50_us p99_us p99.9_us vs_none vs_redis errors
jq -r '.rows[] | [.server, .mode, .pipeline, (.ops_per_sec | floor), (.p50_us | floor),
    (.p99_us | floor), (.p99_9_us | floor), ((.vs_none // 0) * 100 | floor / 100),
    ((.vs_redis // 0) * 100 | floor / 100), .errors] | @tsv' "$OUT/$STAMP-aof-throughput.json" |
    while IFS=$'\t' read -r a b c d e f g h i j; do
        printf '%-8s %-9s %4s %11s %8s %8s %9s %8s %9s %6s\n' "$a" "$b" "$c" "$d" "$e" "$f" "$g" "$h" "$i" "$j"
    done
echo "wrote $OUT/$STAMP-aof-throughput.json"
