#!/usr/bin/env bash
# A flame graph of the server (percore or redis-server) under a percore-bench workload.
#
# perf record samples the server's threads on the software cpu-clock event (works in VMs
# without hardware counters) with DWARF call graphs (percore's release profile keeps
# debug=1 line tables and no frame pointers, so frame-pointer stacks would be cut short);
# perf script | inferno-collapse-perf | inferno-flamegraph draws the SVG. inferno is
# installed with `cargo install inferno` the first time (into ~/.cargo/bin).
#
# Usage: perf/flamegraph.sh [--server percore|redis] [--duration S] [--freq HZ]
#          [--call-graph dwarf|fp] [--keys N] [--server-cpu C] [--client-cpu C]
#          [--out FILE.svg] [-- percore-bench workload args]
# The default workload is GET/SET 10:1, 50 connections, pipeline 16; anything after --
# replaces it, e.g.:  perf/flamegraph.sh -- -c 50 -P 1 --ratio 1:0
# SHARDS=N in the environment runs percore with N shards (give --server-cpu a list).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

SERVER=percore
DURATION=10
FREQ=999
CALLGRAPH=dwarf
KEYS=100000
SERVER_CPU=0
CLIENT_CPU=1
OUTFILE=""
WORKLOAD=(-c 50 -P 16 --ratio 1:10)
while [ $# -gt 0 ]; do
    case $1 in
    --server) SERVER=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --freq) FREQ=$2; shift 2 ;;
    --call-graph) CALLGRAPH=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --server-cpu) SERVER_CPU=$2; shift 2 ;;
    --client-cpu) CLIENT_CPU=$2; shift 2 ;;
    --out) OUTFILE=$2; shift 2 ;;
    --) shift; WORKLOAD=("$@"); break ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done
command -v perf >/dev/null || die "perf not installed (apt-get install linux-perf)"
if ! command -v inferno-flamegraph >/dev/null || ! command -v inferno-collapse-perf >/dev/null; then
    export PATH=$HOME/.cargo/bin:$PATH
    if ! command -v inferno-flamegraph >/dev/null; then
        echo "installing inferno (cargo install inferno)..." >&2
        cargo install --quiet inferno >&2 || die "cargo install inferno failed"
    fi
fi
build_release
[ -n "$OUTFILE" ] || OUTFILE=$ROOT/perf/results/$(OUT=$ROOT/perf/results free_stamp "flamegraph-$SERVER.svg")-flamegraph-$SERVER.svg
mkdir -p "$(dirname "$OUTFILE")"
case $CALLGRAPH in
dwarf) CG=(--call-graph "dwarf,16384") ;;
fp) CG=(-g) ;;
*) die "--call-graph must be dwarf or fp" ;;
esac

start_server "$SERVER" "$SERVER_CPU"
pid=$(server_pid)
bench "$CLIENT_CPU" -c 50 --load "$KEYS" --keyspace "$KEYS" -s 32 --load-only -q >&2
# The load runs a little longer than the recording on both sides, so every sample is under load.
bench "$CLIENT_CPU" "${WORKLOAD[@]}" --keyspace "$KEYS" --assume-loaded "$KEYS" \
    --duration "$(awk -v d="$DURATION" 'BEGIN{print d + 1.5}')" -q >"$TMPD/bench.txt" &
bpid=$!
sleep 0.5
perf record -e cpu-clock -F "$FREQ" "${CG[@]}" -p "$pid" -o "$TMPD/perf.data" -- sleep "$DURATION" \
    2>"$TMPD/record.txt" >/dev/null || { cat "$TMPD/record.txt" >&2; die "perf record failed"; }
wait "$bpid" || { cat "$TMPD/bench.txt" >&2; die "percore-bench failed"; }
stop_server
perf script -i "$TMPD/perf.data" 2>/dev/null >"$TMPD/script.txt"
inferno-collapse-perf <"$TMPD/script.txt" >"$TMPD/folded.txt"
[ -s "$TMPD/folded.txt" ] || die "no samples recorded"
inferno-flamegraph --title "$SERVER: percore-bench ${WORKLOAD[*]} (${DURATION}s, $(git_rev))" \
    <"$TMPD/folded.txt" >"$OUTFILE"
cp "$TMPD/folded.txt" "${OUTFILE%.svg}.folded"
echo "workload: $(grep -E '^ALL|^GET|^SET' "$TMPD/bench.txt" | head -3 | tr -s ' ' | paste -sd';' -)"
echo "samples: $(grep -c 'cpu-clock' "$TMPD/script.txt")"
echo "wrote $OUTFILE (and ${OUTFILE%.svg}.folded, the collapsed stacks)"
