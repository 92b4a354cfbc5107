#!/usr/bin/env bash
# Latency-tuning study: how percore's shards, the pipeline depth and percore's scheduling
# knobs move throughput and p99.9.
#
# Every point starts a fresh percore pinned with taskset, loads --keys 32-byte keys, runs
# GET/SET 10:1 with --conns connections, and stops it. Sweeps:
#   shards     SHARDS in --shards, closed loop at P16 + open loop at RATE (window 16)
#   pipeline   depth in --pipelines (1 shard), closed loop
#   pin        --pin-cores no / yes (1 shard): "yes" is also what turns on glommio's
#              spin_before_park (50 µs, fixed in src/server/mod.rs); closed P1 + open at RATE
#   knob:NAME  every --knob NAME=v1,v2 given: percore --NAME v, closed P1 + open at RATE
# RATE (--rate) defaults to 50% of the 1-shard P1 closed-loop peak measured first.
# The script lists which scheduling knobs this percore has (CONFIG GET *spin* / *preempt*
# / *shares*) so the sweep can be extended with --knob once they exist.
# Writes perf/results/<date>-latency-study.json (one row per run, plus every run's full
# result) and one SVG per sweep (latency by percentile), prints a table.
#
# Usage: perf/latency-study.sh [--duration S] [--warmup S] [--keys N] [--conns N]
#          [--shards "1 2"] [--pipelines "1 4 16 64"] [--rate R] [--knob NAME=v1,v2 ...]
#          [--server-cpus LIST] [--multi-server-cpus LIST] [--client-cpus LIST]
#          [--sweeps "shards pipeline pin knobs"] [--out DIR]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

DURATION=5
WARMUP=1
KEYS=100000
CONNS=50
SHARDS_LIST="1 2"
PIPELINES="1 4 16 64"
RATE=""
KNOBS=()
SERVER_CPUS=0
MULTI_SERVER_CPUS=0-$(($(nproc) - 1))
CLIENT_CPUS=$(($(nproc) - 1))
SWEEPS="shards pipeline pin knobs"
OUT=$ROOT/perf/results
while [ $# -gt 0 ]; do
    case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --shards) SHARDS_LIST=$2; shift 2 ;;
    --pipelines) PIPELINES=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --knob) KNOBS+=("$2"); shift 2 ;;
    --server-cpus) SERVER_CPUS=$2; shift 2 ;;
    --multi-server-cpus) MULTI_SERVER_CPUS=$2; shift 2 ;;
    --client-cpus) CLIENT_CPUS=$2; shift 2 ;;
    --sweeps) SWEEPS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done
build_release
mkdir -p "$OUT" "$TMPD/runs"
ROWS=$TMPD/rows.jsonl
: >"$ROWS"
STAMP=$(free_stamp latency-study.json)
N=0

# point SWEEP LABEL SHARDS CPUS "percore args" "closed:P open:P ..."
point() {
    local sweep=$1 label=$2 shards=$3 cpus=$4 args=$5 runs=$6
    echo "== $sweep: $label" >&2
    # shellcheck disable=SC2086
    SHARDS=$shards start_server percore "$cpus" $args
    bench "$CLIENT_CPUS" -c "$CONNS" --load "$KEYS" --keyspace "$KEYS" -s 32 --load-only -q >&2
    for r in $runs; do
        local mode=${r%%:*} p=${r#*:} extra=()
        if [ "$mode" = open ]; then extra=(--rate "$RATE"); fi
        N=$((N + 1))
        local json=$TMPD/runs/$N.json
        bench "$CLIENT_CPUS" -c "$CONNS" -P "$p" --ratio 1:10 --keyspace "$KEYS" --assume-loaded "$KEYS" \
            -s 32 --warmup "$WARMUP" --duration "$DURATION" -q "${extra[@]}" \
            --label "$label $mode P$p" --json "$json" >/dev/null
        jq -c --arg sweep "$sweep" --arg point "$label" --argjson shards "$shards" --arg args "$args" \
            --arg mode "$mode" --argjson p "$p" --arg file "$json" \
            '{sweep:$sweep, point:$point, shards:$shards, args:$args, mode:$mode, pipeline:$p,
              rate:.config.rate, ops_per_sec:.totals.ops_per_sec, p50_us:.totals.latency_us.p50,
              p99_us:.totals.latency_us.p99, p99_9_us:.totals.latency_us["p99.9"],
              errors:(.totals.errors + .totals.bad_replies), file:$file}' "$json" >>"$ROWS"
    done
    stop_server
}

# Which scheduling knobs does this percore have?
SHARDS=1 start_server percore "$SERVER_CPUS"
echo "percore scheduling knobs (CONFIG GET):" >&2
for pat in '*spin*' '*preempt*' '*shares*' '*task*queue*' '*pin*' '*shards*'; do
    found=$(redis-cli -p "$SERVER_PORT" config get "$pat" | paste -sd' ' -)
    echo "  $pat: ${found:-(none)}" >&2
done
stop_server

# The baseline fixes the open-loop rate.
point baseline "1 shard" 1 "$SERVER_CPUS" "" "closed:1"
if [ -z "$RATE" ]; then
    RATE=$(tail -1 "$ROWS" | jq '(.ops_per_sec / 2) | floor')
    [ "$RATE" -gt 0 ] || die "the baseline measured no throughput"
fi
echo "open-loop rate: $RATE req/s" >&2

for sweep in $SWEEPS; do
    case $sweep in
    shards)
        for s in $SHARDS_LIST; do
            cpus=$SERVER_CPUS
            [ "$s" -gt 1 ] && cpus=$MULTI_SERVER_CPUS
            point shards "$s shard(s)" "$s" "$cpus" "" "closed:16 open:16"
        done
        ;;
    pipeline)
        for p in $PIPELINES; do point pipeline "P$p" 1 "$SERVER_CPUS" "" "closed:$p"; done
        ;;
    pin)
        for v in no yes; do
            point pin "pin-cores $v" 1 "$SERVER_CPUS" "--pin-cores $v" "closed:1 open:1"
        done
        ;;
    knobs)
        for k in "${KNOBS[@]}"; do
            name=${k%%=*}
            for v in $(echo "${k#*=}" | tr ',' ' '); do
                point "knob:$name" "$name $v" 1 "$SERVER_CPUS" "--$name $v" "closed:1 open:1"
            done
        done
        ;;
    *) die "unknown sweep $sweep" ;;
    esac
done

# Results: rows + full runs, a table, one plot per sweep.
jq -s --arg rev "$(git_rev)" --arg machine "$(machine)" --arg date "$(date -u +%FT%TZ)" \
    --argjson keys "$KEYS" --argjson conns "$CONNS" --argjson rate "$RATE" \
    --arg server_cpus "$SERVER_CPUS" --arg multi "$MULTI_SERVER_CPUS" --arg client "$CLIENT_CPUS" \
    '{date:$date, git_rev:$rev, machine:$machine, workload:"GET/SET 10:1", keys:$keys,
      connections:$conns, open_loop_rate:$rate, server_cpus:$server_cpus,
      multi_shard_server_cpus:$multi, client_cpus:$client,
      rows:[.[] | del(.file)], runs:[.[] | .file]}' "$ROWS" >"$TMPD/summary.json"
# Inline every run's full result in place of its temporary file name.
jq '.runs' -r "$TMPD/summary.json" | jq -r '.[]' | xargs jq -s '.' >"$TMPD/runs.json"
jq --slurpfile runs "$TMPD/runs.json" '.runs = $runs[0]' "$TMPD/summary.json" >"$OUT/$STAMP-latency-study.json"

printf '%-10s %-18s %-6s %4s %12s %10s %10s %10s %6s\n' sweep point mode P ops/s p50_us p99_us p99.9_us errors
jq -r '.rows[] | [.sweep, .point, .mode, .pipeline, (.ops_per_sec | floor), (.p50_us | floor),
    (.p99_us | floor), (.p99_9_us | floor), .errors] | @tsv' "$OUT/$STAMP-latency-study.json" |
    while IFS=$'\t' read -r a b c d e f g h i; do
        printf '%-10s %-18s %-6s %4s %12s %10s %10s %10s %6s\n' "$a" "$b" "$c" "$d" "$e" "$f" "$g" "$h" "$i"
    done
for sweep in $(jq -r '[.[].sweep] | unique | .[]' -s "$ROWS"); do
    files=$(jq -r --arg s "$sweep" 'select(.sweep == $s) | .file' "$ROWS")
    svg=$OUT/$STAMP-latency-study-${sweep//[:\/ ]/_}.svg
    # shellcheck disable=SC2086
    "$BENCH" compare $files --svg "$svg" --title "percore latency study: $sweep ($STAMP)" >/dev/null
    echo "plot: $svg"
done
echo "wrote $OUT/$STAMP-latency-study.json"
