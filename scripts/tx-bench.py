#!/usr/bin/env python3
"""Pipelined throughput of one request shape, counted in requests (a MULTI/EXEC block is one).

redis-benchmark repeats a single command, so it cannot send MULTI ... EXEC
blocks; this sends pre-encoded pipelines of P requests from C connections
(threads, blocking sockets) and counts reply bytes, which are fixed per shape.

usage: tx-bench.py PORT SHAPE [-c 50] [-n 200000] [-P 16]
SHAPE: set | mset2 | mset10 | multi2 (MULTI; SET a; SET b; EXEC) | mget2
"""
import socket
import sys
import threading
import time


def enc(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


KEYS10 = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
SHAPES = {
    "set": (enc("SET", "a", "1"), b"+OK\r\n"),
    "mset2": (enc("MSET", "a", "1", "b", "1"), b"+OK\r\n"),
    "mset10": (enc("MSET", *[x for k in KEYS10 for x in (k, "1")]), b"+OK\r\n"),
    "mget2": (enc("MGET", "a", "b"), b"*2\r\n$1\r\n1\r\n$1\r\n1\r\n"),
    "multi2": (
        enc("MULTI") + enc("SET", "a", "1") + enc("SET", "b", "1") + enc("EXEC"),
        b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n+OK\r\n",
    ),
}


def main():
    port, shape = int(sys.argv[1]), sys.argv[2]
    opts = dict(zip(sys.argv[3::2], sys.argv[4::2]))
    conns, total, pipe = int(opts.get("-c", 50)), int(opts.get("-n", 200000)), int(opts.get("-P", 16))
    req, rep = SHAPES[shape]
    per_conn = total // conns // pipe
    chunk, expect = req * pipe, len(rep) * pipe
    if shape in ("mget2",):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(enc("MSET", "a", "1", "b", "1"))
        s.recv(100)
        s.close()

    def worker():
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(per_conn):
            s.sendall(chunk)
            got = 0
            while got < expect:
                b = s.recv(1 << 16)
                if not b:
                    raise SystemExit("connection closed")
                got += len(b)
        s.close()

    threads = [threading.Thread(target=worker) for _ in range(conns)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    n = per_conn * pipe * conns
    print(f"{shape}: {n} requests in {dt:.2f}s = {n / dt:.0f} req/s")


if __name__ == "__main__":
    main()
