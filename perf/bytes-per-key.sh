#!/usr/bin/env bash
# Bytes per key, percore vs redis-server: RSS and INFO used_memory deltas over the
# empty server after loading N string keys with `redis-cli --pipe`, divided by N.
#
# Workloads (each on a fresh server, redis-server then percore, --shards 1):
#   d32      SET key:%012d <32 bytes>          (the RESULTS.md bytes-per-key figure)
#   d3       SET key:%012d <3 bytes>           (redis-benchmark -d 3 sized values)
#   d32-ttl  SET key:%012d <32 bytes> EX 100000 (every key in the expiry index)
# Memory is not timed, so this may run while other work uses the CPUs.
#
# Usage: perf/bytes-per-key.sh [--keys N] [--workloads "d32 d3 d32-ttl"]
# Env: PERCORE, REDIS_SERVER, NO_BUILD=1 (see perf/lib.sh).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

KEYS=1000000
WORKLOADS="d32 d3 d32-ttl"
while [ $# -gt 0 ]; do
    case $1 in
    --keys) KEYS=$2; shift 2 ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done
if [ "${NO_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release -p percore) >&2 || die "cargo build --release failed"
fi
[ -x "$PERCORE" ] || die "no percore binary at $PERCORE"
command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install redis-tools)"

# gen WORKLOAD FILE: the RESP commands of a workload.
gen() {
    python3 - "$1" "$KEYS" >"$2" <<'EOF'
import sys
w, n = sys.argv[1], int(sys.argv[2])
size = 3 if w == "d3" else 32
val = b"x" * size
ttl = w.endswith("-ttl")
out = sys.stdout.buffer
buf = []
for i in range(n):
    k = b"key:%012d" % i
    if ttl:
        buf.append(b"*5\r\n$3\r\nSET\r\n$16\r\n%s\r\n$%d\r\n%s\r\n$2\r\nEX\r\n$6\r\n100000\r\n" % (k, size, val))
    else:
        buf.append(b"*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$%d\r\n%s\r\n" % (k, size, val))
    if len(buf) == 10000:
        out.write(b"".join(buf)); buf = []
out.write(b"".join(buf))
EOF
}

printf '%-8s %-8s %12s %12s\n' workload server "RSS B/key" "used B/key"
for w in $WORKLOADS; do
    gen "$w" "$TMPD/$w.resp"
    declare -A R=() U=()
    for server in redis percore; do
        start_server "$server" 0
        pid=$(server_pid)
        sleep 0.5
        rss0=$(rss_bytes "$pid")
        used0=$(used_memory)
        redis-cli -p "$SERVER_PORT" --pipe <"$TMPD/$w.resp" >/dev/null
        n=$(redis-cli -p "$SERVER_PORT" dbsize)
        [ "$n" = "$KEYS" ] || die "$server holds $n keys, not $KEYS"
        sleep 1
        rss1=$(rss_bytes "$pid")
        used1=$(used_memory)
        stop_server
        R[$server]=$(((rss1 - rss0) * 10 / KEYS))
        U[$server]=$(((used1 - used0) * 10 / KEYS))
        printf '%-8s %-8s %10d.%d %10d.%d\n' "$w" "$server" \
            $((R[$server] / 10)) $((R[$server] % 10)) $((U[$server] / 10)) $((U[$server] % 10))
    done
    printf '%-8s %-8s %12s %12s\n' "$w" ratio \
        "$(awk -v a="${R[percore]}" -v b="${R[redis]}" 'BEGIN{printf "%.2f", a/b}')" \
        "$(awk -v a="${U[percore]}" -v b="${U[redis]}" 'BEGIN{printf "%.2f", a/b}')"
    rm -f "$TMPD/$w.resp"
done
echo "keys $KEYS, rev $(git_rev), $(date -u +%Y-%m-%d), $(machine)"
