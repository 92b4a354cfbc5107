#!/usr/bin/env bash
# Latency while persisting: p99.9 of an open-loop GET/SET 10:1 load while the server
# snapshots (BGSAVE) or rewrites its AOF (BGREWRITEAOF), next to the same load idle,
# redis-server and percore side by side.
#
# For each server: load --keys 32-byte keys, then run the same open-loop load (--rate
# req/s in total, --conns connections, coordinated-omission corrected) for --duration
# seconds in each phase:
#   idle          nothing else running (no persistence configured)
#   bgsave        BGSAVE restarted as soon as the previous one finishes, for the whole window
#   idle-aof      a second server with appendonly yes, appendfsync everysec, nothing else
#   bgrewriteaof  BGREWRITEAOF restarted back to back on that server
# percore runs once per --shares value (its snapshot-shares knob: the CPU share of the
# snapshot/rewrite task queue against the connections' 1000). Reports ops/s,
# p50/p99/p99.9, p99.9 relative to the same server's idle phase, and how many
# snapshots/rewrites completed in the window (with their mean duration).
# Writes perf/results/<date>-snapshot-latency.json and one SVG per server config.
#
# Usage: perf/snapshot-latency.sh [--keys N] [--rate R] [--conns N] [--duration S]
#          [--shares "10 50 200"] [--servers "redis percore"] [--server-cpus LIST]
#          [--client-cpus LIST] [--out DIR]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

KEYS=1000000
RATE=20000
CONNS=50
DURATION=10
SHARES="50"
SERVERS="redis percore"
SERVER_CPUS=0
CLIENT_CPUS=$(($(nproc) - 1))
OUT=$ROOT/perf/results
while [ $# -gt 0 ]; do
    case $1 in
    --keys) KEYS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --shares) SHARES=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    --server-cpus) SERVER_CPUS=$2; shift 2 ;;
    --client-cpus) CLIENT_CPUS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done
build_release
command -v jq >/dev/null || die "jq not found (apt-get install jq)"
mkdir -p "$OUT" "$TMPD/runs"
ROWS=$TMPD/rows.jsonl
: >"$ROWS"
STAMP=$(free_stamp snapshot-latency.json)
N=0

# The field of INFO persistence that says a job of this kind is running.
in_progress() {
    redis-cli -p "$SERVER_PORT" info persistence | tr -d '\r' | awk -F: -v f="$1" '$1==f{print $2}'
}

# Memory in use on the machine (MemTotal - MemAvailable, bytes). Cheap to read: reading a
# big process's smaps takes its mmap lock and walks its page tables, which stalls the
# server and shows in the very latencies measured here. The job's cost (a fork's
# copied pages, percore's snapshot buffers) is the growth over the phase's start.
pss_bytes() {
    awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} END{print (t - a) * 1024}' /proc/meminfo
}

# mem_sampler PID OUTFILE STOPFILE: the peak PSS until STOPFILE exists.
mem_sampler() {
    local pid=$1 out=$2 stop=$3 peak=0 v
    while [ ! -e "$stop" ]; do
        v=$(pss_bytes "$pid")
        [ "$v" -gt "$peak" ] && peak=$v
        sleep 0.05
    done
    echo "$peak" >"$out"
}

# persist_loop CMD FIELD COUNTFILE STOPFILE: runs CMD back to back until STOPFILE
# exists; appends each completed job's duration (ms) to COUNTFILE.
persist_loop() {
    local cmd=$1 field=$2 count=$3 stop=$4 t0
    while [ ! -e "$stop" ]; do
        # A job may still be finishing from the previous round (Redis schedules
        # BGREWRITEAOF after a running BGSAVE): wait for it.
        while [ "$(in_progress "$field")" = 1 ]; do sleep 0.02; done
        t0=$(date +%s%N)
        redis-cli -p "$SERVER_PORT" "$cmd" >/dev/null
        sleep 0.02
        while [ "$(in_progress "$field")" = 1 ]; do sleep 0.02; done
        echo $((($(date +%s%N) - t0) / 1000000)) >>"$count"
    done
}

# phase SERVER CONFIG PHASE [CMD FIELD]: one measured window, optionally with a persistence loop.
phase() {
    local server=$1 config=$2 name=$3 cmd=${4:-} field=${5:-}
    N=$((N + 1))
    local json=$TMPD/runs/$N.json count=$TMPD/count.$N stop=$TMPD/stop.$N loop="" sampler
    local pid mem0
    : >"$count"
    pid=$(server_pid)
    mem0=$(pss_bytes "$pid")
    mem_sampler "$pid" "$TMPD/peak.$N" "$stop" &
    sampler=$!
    echo "== $server ($config): $name" >&2
    if [ -n "$cmd" ]; then
        persist_loop "$cmd" "$field" "$count" "$stop" &
        loop=$!
        # Let the first job start before the window opens.
        sleep 0.2
    fi
    bench "$CLIENT_CPUS" -c "$CONNS" -P 1 --rate "$RATE" --ratio 1:10 --keyspace "$KEYS" \
        --assume-loaded "$KEYS" -s 32 --warmup 1 --duration "$DURATION" -q \
        --label "$server $config $name" --json "$json" >/dev/null
    touch "$stop"
    [ -n "$loop" ] && wait "$loop"
    wait "$sampler"
    local jobs mean
    jobs=$(wc -l <"$count")
    mean=$(awk '{s+=$1} END {if (NR) printf "%d", s/NR; else print 0}' "$count")
    jq -c --arg server "$server" --arg config "$config" --arg phase "$name" \
        --argjson jobs "$jobs" --argjson mean "$mean" --arg file "$json" \
        --argjson mem0 "$mem0" --argjson peak "$(cat "$TMPD/peak.$N")" \
        '{server:$server, config:$config, phase:$phase, jobs:$jobs, job_ms_mean:$mean,
          pss_before_mb:($mem0 / 1048576), pss_extra_peak_mb:(($peak - $mem0) / 1048576),
          ops_per_sec:.totals.ops_per_sec, p50_us:.totals.latency_us.p50,
          p99_us:.totals.latency_us.p99, p99_9_us:.totals.latency_us["p99.9"],
          max_us:.totals.latency_us.max,
          errors:(.totals.errors + .totals.bad_replies), file:$file}' "$json" >>"$ROWS"
}

# measure SERVER CONFIG [server args...]: the four phases on fresh servers.
measure() {
    local server=$1 config=$2
    shift 2
    local dir=$TMPD/data-$N
    mkdir -p "$dir"
    start_server "$server" "$SERVER_CPUS" --dir "$dir" "$@"
    bench "$CLIENT_CPUS" -c "$CONNS" --load "$KEYS" --keyspace "$KEYS" -s 32 --load-only -q >&2
    phase "$server" "$config" idle
    phase "$server" "$config" bgsave bgsave rdb_bgsave_in_progress
    stop_server
    rm -rf "$dir"
    mkdir -p "$dir"
    start_server "$server" "$SERVER_CPUS" --dir "$dir" --appendonly yes --appendfsync everysec "$@"
    bench "$CLIENT_CPUS" -c "$CONNS" --load "$KEYS" --keyspace "$KEYS" -s 32 --load-only -q >&2
    # The load itself is in the AOF: compact it once so every rewrite starts alike.
    redis-cli -p "$SERVER_PORT" bgrewriteaof >/dev/null
    sleep 0.2
    while [ "$(in_progress aof_rewrite_in_progress)" = 1 ]; do sleep 0.05; done
    phase "$server" "$config" idle-aof
    phase "$server" "$config" bgrewriteaof bgrewriteaof aof_rewrite_in_progress
    stop_server
    rm -rf "$dir"
}

for s in $SERVERS; do
    case $s in
    redis) measure redis "default" ;;
    percore)
        for sh in $SHARES; do
            SHARDS=1 measure percore "snapshot-shares $sh" --snapshot-shares "$sh"
        done
        ;;
    *) die "unknown server $s" ;;
    esac
done

# Results: rows with the ratio to the same config's idle phase, full runs inline, table, plots.
jq -s '
  [ .[] as $r
    | ([.[] | select(.server == $r.server and .config == $r.config
                     and .phase == (if ($r.phase | test("aof")) then "idle-aof" else "idle" end))][0]
       .p99_9_us) as $idle
    | $r + {p99_9_vs_idle: (if $idle > 0 then ($r.p99_9_us / $idle) else null end)} ]' "$ROWS" \
    >"$TMPD/rows.json"
jq -r '.[] | .file' "$TMPD/rows.json" | xargs jq -s '.' >"$TMPD/runs.json"
jq -n --slurpfile rows "$TMPD/rows.json" --slurpfile runs "$TMPD/runs.json" \
    --arg rev "$(git_rev)" --arg machine "$(machine)" --arg date "$(date -u +%FT%TZ)" \
    --argjson keys "$KEYS" --argjson rate "$RATE" --argjson conns "$CONNS" \
    --argjson duration "$DURATION" --arg server_cpus "$SERVER_CPUS" --arg client "$CLIENT_CPUS" \
    '{date:$date, git_rev:$rev, machine:$machine, workload:"open loop GET/SET 10:1, 32-byte values",
      keys:$keys, rate:$rate, connections:$conns, duration_s:$duration,
      server_cpus:$server_cpus, client_cpus:$client,
      rows:[$rows[0][] | del(.file)], runs:$runs[0]}' >"$OUT/$STAMP-snapshot-latency.json"

printf '%-7s %-20s %-13s %5s %7s %10s %8s %8s %9s %8s %8s %6s\n' \
    server config phase jobs job_ms ops/s p50_us p99_us p99.9_us vs_idle +mem_MB errors
jq -r '.rows[] | [.server, .config, .phase, .jobs, .job_ms_mean, (.ops_per_sec | floor),
    (.p50_us | floor), (.p99_us | floor), (.p99_9_us | floor),
    ((.p99_9_vs_idle // 0) * 100 | floor / 100), (.pss_extra_peak_mb | floor), .errors] | @tsv' \
    "$OUT/$STAMP-snapshot-latency.json" |
    while IFS=$'\t' read -r a b c d e f g h i j k l; do
        printf '%-7s %-20s %-13s %5s %7s %10s %8s %8s %9s %8s %8s %6s\n' "$a" "$b" "$c" "$d" "$e" "$f" "$g" "$h" "$i" "$j" "$k" "$l"
    done
for cfg in $(jq -r '[.[] | .server + "|" + .config] | unique | .[] | @sh' "$TMPD/rows.json" | tr -d "'" | tr ' ' '_'); do
    want=${cfg//_/ }
    files=$(jq -r --arg w "$want" '.[] | select((.server + "|" + .config) == $w) | .file' "$TMPD/rows.json")
    svg=$OUT/$STAMP-snapshot-latency-${cfg//[|: \/]/_}.svg
    # shellcheck disable=SC2086
    "$BENCH" compare $files --svg "$svg" --title "latency while persisting: $want ($STAMP)" >/dev/null
    echo "plot: $svg"
done
echo "wrote $OUT/$STAMP-snapshot-latency.json"
