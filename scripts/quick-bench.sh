#!/bin/bash
# Quick redis-benchmark GET/SET comparison: redis-server and percore --shards 1 both on CPU 0, client on CPU 1.
P="$(dirname "$0")/../target/release/percore"
taskset -c 0 redis-server --port 16700 --save '' --appendonly no --daemonize yes >/dev/null
taskset -c 0 $P --port 16701 --shards 1 --pin-cores no > /tmp/pbench.log 2>&1 &
sleep 1
for pipe in 16 1; do
  for port in 16700 16701; do
    name=$([ $port = 16700 ] && echo redis || echo percore)
    out=$(taskset -c 1 redis-benchmark -p $port -t set,get -c 50 -P $pipe -n $([ $pipe = 16 ] && echo 2000000 || echo 300000) -r 100000 -q 2>/dev/null | tr '\r' '\n' | grep "requests per second")
    echo "P$pipe $name: $(echo $out | tr '\n' ' ')"
  done
done
redis-cli -p 16700 shutdown nosave >/dev/null 2>&1
redis-cli -p 16701 shutdown >/dev/null 2>&1
