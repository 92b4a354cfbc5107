#!/usr/bin/env bash
# Server CPU time per request at a fixed request rate, percore vs redis-server.
#
# A closed loop on this 2-CPU machine saturates the client's CPU as much as the
# server's (both do loopback TCP work for each other), so its ops/s cannot show
# what a server costs per request. Here the client sends an open-loop rate both
# servers sustain (--rate) and the server CPU's busy time (user + system + irq +
# softirq jiffies of /proc/stat, sampled over --window seconds in the middle of
# the run) is divided by the requests served: CPU microseconds per request, the
# figure that decides how much load a core takes. percore runs with
# spin-before-park-us 0 (it would otherwise spin its idle time away, by design).
# Runs alternate between the servers.
#
# Usage: perf/cpu-per-op.sh [--rate R] [--pipeline P] [--conns N] [--keys N] [--runs N]
#          [--window S] [--servers "redis percore"] [--server-cpu C] [--client-cpu C]
#          [--out DIR]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

RATE=50000
PIPELINE=1
CONNS=50
KEYS=100000
RUNS=2
WINDOW=3
SERVERS="redis percore"
SERVER_CPU=0
CLIENT_CPU=1
OUT=$ROOT/perf/results
while [ $# -gt 0 ]; do
    case $1 in
    --rate) RATE=$2; shift 2 ;;
    --pipeline) PIPELINE=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    --server-cpu) SERVER_CPU=$2; shift 2 ;;
    --client-cpu) CLIENT_CPU=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done
build_release
mkdir -p "$OUT"
JSON=$OUT/$(free_stamp cpu-per-op.json)-cpu-per-op.json
ROWS=$TMPD/rows
: >"$ROWS"

# cpu_line: the /proc/stat line of the server CPU.
cpu_line() { grep "^cpu$SERVER_CPU " /proc/stat; }

for run in $(seq "$RUNS"); do
    for server in $SERVERS; do
        if [ "$server" = percore ]; then
            start_server percore "$SERVER_CPU" --spin-before-park-us 0
        else
            start_server redis "$SERVER_CPU"
        fi
        bench "$CLIENT_CPU" -c "$CONNS" -P 16 --keyspace "$KEYS" --load "$KEYS" --load-only \
            -s 32 -q >/dev/null
        duration=$((WINDOW + 3))
        (
            sleep 2
            cpu_line
            sleep "$WINDOW"
            cpu_line
        ) >"$TMPD/stat" &
        sampler=$!
        result=$(bench "$CLIENT_CPU" -c "$CONNS" -P "$PIPELINE" --rate "$RATE" --ratio 1:10 \
            --keyspace "$KEYS" --assume-loaded "$KEYS" -s 32 --warmup 1 --duration "$duration" -q |
            awk '$1=="ALL"{print $3, $4, $6, $7, $10}')
        wait "$sampler"
        stop_server
        echo "$server $run $result $(tr '\n' ' ' <"$TMPD/stat")" >>"$ROWS"
    done
done

python3 - "$ROWS" "$JSON" "$WINDOW" "$RATE" "$PIPELINE" "$CONNS" "$KEYS" "$(git_rev)" "$(machine)" <<'EOF'
import json, os, sys
rows, out, window, rate, pipeline, conns, keys, rev, machine = sys.argv[1:]
window = float(window)
hz = os.sysconf('SC_CLK_TCK')
runs = []
print(f"{'server':<8} {'run':>3} {'ops/s':>8} {'busy':>5} {'cpu us/op':>9} {'user':>6} {'sys':>6} {'softirq':>7} {'p99':>10}")
for line in open(rows):
    f = line.split()
    server, run, ops, p50, p99, p999, errors = f[0], int(f[1]), float(f[2]), f[3], f[4], f[5], int(f[6])
    a = [int(x) for x in f[8:18]]
    b = [int(x) for x in f[19:29]]
    d = [y - x for x, y in zip(a, b)]
    # user nice system idle iowait irq softirq steal
    busy = d[0] + d[1] + d[2] + d[5] + d[6]
    per = lambda j: j / hz / window / ops * 1e6
    r = dict(server=server, run=run, ops_per_sec=ops, errors=errors, p50=p50, p99=p99, p999=p999,
             busy_pct=round(100 * busy / hz / window, 1), cpu_us_per_op=round(per(busy), 2),
             user_us_per_op=round(per(d[0] + d[1]), 2), sys_us_per_op=round(per(d[2] + d[5]), 2),
             softirq_us_per_op=round(per(d[6]), 2))
    runs.append(r)
    print(f"{server:<8} {run:>3} {ops:>8.0f} {r['busy_pct']:>4}% {r['cpu_us_per_op']:>9} "
          f"{r['user_us_per_op']:>6} {r['sys_us_per_op']:>6} {r['softirq_us_per_op']:>7} {p99:>10}")
by = {}
for r in runs:
    by.setdefault(r['server'], []).append(r['cpu_us_per_op'])
mean = {s: sum(v) / len(v) for s, v in by.items()}
if 'redis' in mean and 'percore' in mean:
    print(f"percore/redis CPU per request (mean of runs): {mean['percore'] / mean['redis']:.2f}")
json.dump(dict(kind='cpu-per-op', rev=rev, machine=machine, rate=int(rate), pipeline=int(pipeline),
               conns=int(conns), keys=int(keys), window_s=window, runs=runs, mean_cpu_us_per_op=mean),
          open(out, 'w'), indent=2)
print(f"wrote {out}")
EOF
