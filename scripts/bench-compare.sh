#!/usr/bin/env bash
# percore vs redis-server, side by side, one server core each: the standard suite.
#
# Both servers run pinned to the same CPU (--server-cpu, default 0), one after the
# other, never together; the client (percore-bench) runs pinned to --client-cpus.
# Suite:
#   1. bytes per key: load --keys keys of 32-byte values (pipelined SETs); RSS delta
#      over the empty server and INFO used_memory delta, divided by the key count;
#   2. GET/SET 10:1 (--ratio 1:10), 50 connections, pipeline 1 and 16, closed loop;
#   3. open loop (CO-corrected) at 50% of redis-server's measured P1 peak, same mix:
#      p99 / p99.9.
# Writes perf/results/<date>-<suite>.json (every run's full percore-bench result) and
# perf/results/<date>-<suite>.svg (latency by percentile of every run), prints a
# table with percore/redis ratios.
#
# Usage: scripts/bench-compare.sh [--duration S] [--warmup S] [--keys N] [--conns N]
#          [--suite NAME] [--server-cpu C] [--client-cpus LIST] [--client-threads N]
#          [--open-pipeline N] [--out DIR]
# Quick smoke run: scripts/bench-compare.sh --duration 1 --warmup 0 --keys 10000 --suite smoke
set -euo pipefail
# shellcheck source=../perf/lib.sh
source "$(dirname "$0")/../perf/lib.sh"

DURATION=10
WARMUP=2
KEYS=1000000
CONNS=50
SUITE=standard
SERVER_CPU=0
CLIENT_CPUS=1
CLIENT_THREADS=1
OPEN_PIPELINE=16
OUT=$ROOT/perf/results
while [ $# -gt 0 ]; do
    case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --suite) SUITE=$2; shift 2 ;;
    --server-cpu) SERVER_CPU=$2; shift 2 ;;
    --client-cpus) CLIENT_CPUS=$2; shift 2 ;;
    --client-threads) CLIENT_THREADS=$2; shift 2 ;;
    --open-pipeline) OPEN_PIPELINE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done
build_release
mkdir -p "$OUT"
STAMP=$(free_stamp "$SUITE.json")
BASE=$OUT/$STAMP-$SUITE
COMMON=(--threads "$CLIENT_THREADS" --cpus "$CLIENT_CPUS" -c "$CONNS" --ratio 1:10
    --keyspace "$KEYS" --assume-loaded "$KEYS" -s 32 --warmup "$WARMUP" --duration "$DURATION" -q)

declare -A MEM
for server in redis percore; do
    echo "== $server (server CPU $SERVER_CPU, client CPUs $CLIENT_CPUS)" >&2
    start_server "$server" "$SERVER_CPU"
    pid=$(server_pid)
    sleep 0.5
    rss0=$(rss_bytes "$pid")
    used0=$(used_memory)
    bench "$CLIENT_CPUS" --threads "$CLIENT_THREADS" --cpus "$CLIENT_CPUS" -c "$CONNS" \
        --load "$KEYS" --keyspace "$KEYS" -s 32 --load-only -q >&2
    sleep 1
    rss1=$(rss_bytes "$pid")
    used1=$(used_memory)
    MEM[$server]=$(jq -n --argjson r0 "$rss0" --argjson r1 "$rss1" --argjson u0 "$used0" \
        --argjson u1 "$used1" --argjson k "$KEYS" \
        '{rss_empty:$r0, rss_loaded:$r1, used_memory_empty:$u0, used_memory_loaded:$u1,
          rss_bytes_per_key:(($r1-$r0)/$k), used_memory_bytes_per_key:(($u1-$u0)/$k)}')
    for p in 1 16; do
        echo "-- $server GET/SET 10:1, $CONNS conns, P$p" >&2
        bench "$CLIENT_CPUS" "${COMMON[@]}" -P "$p" --label "$server P$p" \
            --json "$TMPD/$server-P$p.json" >&2
    done
    if [ "$server" = redis ]; then
        PEAK=$(jq '.totals.ops_per_sec' "$TMPD/redis-P1.json")
        RATE=$(jq -n --argjson p "$PEAK" '($p / 2) | floor')
    fi
    echo "-- $server open loop at $RATE req/s (50% of redis P1 peak), window P$OPEN_PIPELINE" >&2
    bench "$CLIENT_CPUS" "${COMMON[@]}" -P "$OPEN_PIPELINE" --rate "$RATE" \
        --label "$server open $RATE/s" --json "$TMPD/$server-open.json" >&2
    stop_server
done

# One result document for the suite.
jq -n --arg suite "$SUITE" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg rev "$(git_rev)" \
    --arg machine "$(machine)" --argjson keys "$KEYS" --argjson conns "$CONNS" \
    --argjson duration "$DURATION" --argjson warmup "$WARMUP" --argjson rate "$RATE" \
    --arg server_cpu "$SERVER_CPU" --arg client_cpus "$CLIENT_CPUS" \
    --argjson mem_redis "${MEM[redis]}" --argjson mem_percore "${MEM[percore]}" \
    --slurpfile rp1 "$TMPD/redis-P1.json" --slurpfile pp1 "$TMPD/percore-P1.json" \
    --slurpfile rp16 "$TMPD/redis-P16.json" --slurpfile pp16 "$TMPD/percore-P16.json" \
    --slurpfile ro "$TMPD/redis-open.json" --slurpfile po "$TMPD/percore-open.json" \
    '{suite:$suite, date:$date, git_rev:$rev, machine:$machine,
      config:{keys:$keys, value_size:32, connections:$conns, duration_s:$duration, warmup_s:$warmup,
              open_loop_rate:$rate, server_cpu:$server_cpu, client_cpus:$client_cpus,
              percore_args:"--shards 1 --pin-cores yes --save \u0027\u0027",
              redis_args:"--save \u0027\u0027 --appendonly no"},
      memory:{redis:$mem_redis, percore:$mem_percore},
      runs:{P1:{redis:$rp1[0], percore:$pp1[0]}, P16:{redis:$rp16[0], percore:$pp16[0]},
            open:{redis:$ro[0], percore:$po[0]}},
      ratios:{P1_ops:($pp1[0].totals.ops_per_sec/$rp1[0].totals.ops_per_sec),
              P16_ops:($pp16[0].totals.ops_per_sec/$rp16[0].totals.ops_per_sec),
              open_p99:($po[0].totals.latency_us.p99/$ro[0].totals.latency_us.p99),
              open_p99_9:($po[0].totals.latency_us["p99.9"]/$ro[0].totals.latency_us["p99.9"]),
              rss_bytes_per_key:($mem_percore.rss_bytes_per_key/$mem_redis.rss_bytes_per_key),
              used_memory_bytes_per_key:($mem_percore.used_memory_bytes_per_key/$mem_redis.used_memory_bytes_per_key)}}' \
    >"$BASE.json"

"$BENCH" compare "$TMPD"/redis-P1.json "$TMPD"/percore-P1.json "$TMPD"/redis-P16.json \
    "$TMPD"/percore-P16.json "$TMPD"/redis-open.json "$TMPD"/percore-open.json \
    --svg "$BASE.svg" --title "GET/SET 10:1, $CONNS conns, $KEYS keys ($SUITE, $STAMP)" >/dev/null

# The table.
jq -r '
  def r(a; b): if b == 0 then "n/a" else ((a / b * 100 | round) / 100 | tostring) end;
  def row(name; a; b; unit): "\(name)\t\(a | round)\(unit)\t\(b | round)\(unit)\t\(r(b; a))";
  .runs as $x | .memory as $m |
  ["metric\tredis\tpercore\tpercore/redis",
   row("GET/SET 10:1 P1 ops/s"; $x.P1.redis.totals.ops_per_sec; $x.P1.percore.totals.ops_per_sec; ""),
   row("GET/SET 10:1 P1 p99 (us)"; $x.P1.redis.totals.latency_us.p99; $x.P1.percore.totals.latency_us.p99; ""),
   row("GET/SET 10:1 P16 ops/s"; $x.P16.redis.totals.ops_per_sec; $x.P16.percore.totals.ops_per_sec; ""),
   row("GET/SET 10:1 P16 p99 (us)"; $x.P16.redis.totals.latency_us.p99; $x.P16.percore.totals.latency_us.p99; ""),
   row("open loop \(.config.open_loop_rate)/s p99 (us)"; $x.open.redis.totals.latency_us.p99; $x.open.percore.totals.latency_us.p99; ""),
   row("open loop \(.config.open_loop_rate)/s p99.9 (us)"; $x.open.redis.totals.latency_us["p99.9"]; $x.open.percore.totals.latency_us["p99.9"]; ""),
   row("bytes/key (RSS delta)"; $m.redis.rss_bytes_per_key; $m.percore.rss_bytes_per_key; ""),
   row("bytes/key (used_memory delta)"; $m.redis.used_memory_bytes_per_key; $m.percore.used_memory_bytes_per_key; ""),
   "errors\t\([.runs[].redis.totals | .errors + .bad_replies] | add)\t\([.runs[].percore.totals | .errors + .bad_replies] | add)\t"
  ] | .[]' "$BASE.json" | column -t -s $'\t'
echo "wrote $BASE.json and $BASE.svg"
