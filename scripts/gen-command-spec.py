#!/usr/bin/env python3
"""Regenerate src/commands/redis-7.0-commands.resp from a real redis-server.

Starts redis-server on a free port, speaks RESP3 (HELLO 3) over a raw socket,
asks for COMMAND INFO and COMMAND DOCS of every command, and writes the two
replies byte for byte after a short '#'-comment header. percore embeds the file
with include_bytes!, so the build never runs this script.

The same server process also answers the test fixtures under tests/fixtures/
(COMMAND replies in RESP2 and RESP3, COMMAND GETKEYSANDFLAGS over a corpus of
command lines). Redis lists commands in hash order, randomized per process, so
data and fixtures must come from one run: regenerate them together.

Usage: scripts/gen-command-spec.py [--server redis-server] [--out PATH]
                                   [--fixtures DIR | --no-fixtures]
Standard library only.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "src", "commands", "redis-7.0-commands.resp")
DEFAULT_FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")


class RespReader:
    """Reads whole RESP3 replies from a socket and returns their raw bytes."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.pos = 0

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buf += chunk

    def _line(self):
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = self.buf[self.pos:end]
                self.pos = end + 2
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) - self.pos < n + 2:
            self._fill()
        self.pos += n + 2

    def _skip_value(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-", b":", b",", b"#", b"_", b"("):
            return
        if kind in (b"$", b"=", b"!"):
            n = int(rest)
            if n >= 0:
                self._exact(n)
            return
        if kind in (b"*", b"~", b">"):
            n = int(rest)
            for _ in range(max(n, 0)):
                self._skip_value()
            return
        if kind in (b"%", b"|"):
            n = int(rest)
            for _ in range(2 * n):
                self._skip_value()
            return
        raise ValueError("unexpected RESP type byte %r" % kind)

    def reply(self):
        """Returns the exact bytes of the next complete reply."""
        start = self.pos
        self._skip_value()
        raw = self.buf[start:self.pos]
        self.buf = self.buf[self.pos:]
        self.pos = 0
        return raw


def command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port, deadline):
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def decode(raw):
    """Decodes one RESP3 reply into Python values (maps become lists of pairs)."""
    pos = 0

    def value():
        nonlocal pos
        end = raw.index(b"\r\n", pos)
        kind, rest = raw[pos:pos + 1], raw[pos + 1:end]
        pos = end + 2
        if kind in (b"+", b"-"):
            return rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"_":
            return None
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            s = raw[pos:pos + n].decode()
            pos += n + 2
            return s
        if kind in (b"*", b"~"):
            return [value() for _ in range(int(rest))]
        if kind == b"%":
            return [(value(), value()) for _ in range(int(rest))]
        raise ValueError("unexpected RESP type byte %r" % kind)

    return value()


# Hand-picked command lines for the commands whose keys move around or need
# Redis's getkeys procs (numkeys fallbacks via atoi, SORT, MIGRATE, XREAD ...).
GETKEYS_EXTRA = [
    "SET k v", "SET k v GET", "SET k v get", "SET k v EX 10 GET", "SET k v GETX",
    "MSET a 1 b 2 c 3", "MGET a b c", "DEL a b", "EXISTS a", "RENAME a b",
    "ZUNIONSTORE dest 2 a b", "ZUNIONSTORE dest 2 a b WEIGHTS 1 2",
    "ZUNIONSTORE dest 0 a", "ZUNIONSTORE dest -1 a", "ZUNIONSTORE dest 3 a b",
    "ZUNIONSTORE dest 2x a b", "ZUNIONSTORE dest +2 a b", "ZUNIONSTORE dest 02 a b",
    "ZINTERSTORE dest 1 a", "ZDIFFSTORE dest 2 a b", "ZUNION 2 a b", "ZINTER 1 a WITHSCORES",
    "ZDIFF 3 a b c", "ZINTERCARD 2 a b", "ZINTERCARD +1 a", "SINTERCARD 2 a b LIMIT 1",
    "SINTERCARD 3 a b", "SINTERCARD x a",
    "EVAL script 2 k1 k2 arg", "EVAL script 0", "EVAL script 0 arg", "EVAL script -1 k",
    "EVAL script 1x k", "EVAL script +1 k", "EVAL script 4294967297 k", "EVAL script 3 k",
    "EVALSHA sha 1 k a", "EVAL_RO script 1 k", "EVALSHA_RO sha +1 k", "FCALL f 2 a b c",
    "FCALL_RO f 0", "FCALL f 9 a",
    "LMPOP 2 a b LEFT", "LMPOP 1 a RIGHT COUNT 2", "LMPOP 0 a LEFT", "LMPOP +1 a LEFT",
    "BLMPOP 0 2 a b LEFT", "BLMPOP 0 x a LEFT", "ZMPOP 1 a MIN", "ZMPOP 2x a b MAX",
    "BZMPOP 1 2 a b MIN", "BZMPOP 1 1abc a MIN",
    "XREAD STREAMS s 0", "XREAD COUNT 2 STREAMS s1 s2 0 0", "XREAD BLOCK 0 STREAMS a b c 0 0 0",
    "XREAD STREAMS a b c", "XREAD COUNT streams STREAMS a 0", "XREAD STREAMS STREAMS 0",
    "XREAD STREAMS a b 0", "XREAD FOO STREAMS a 0",
    "XREADGROUP GROUP g c STREAMS a 0", "XREADGROUP GROUP g c COUNT 1 NOACK STREAMS a b 0 0",
    "XREADGROUP GROUP streams c STREAMS a 0", "XREADGROUP GROUP g c STREAMS a",
    "MIGRATE h p k 0 5", "MIGRATE h p k 0 5 COPY REPLACE", "MIGRATE h p  0 5 KEYS a b",
    "MIGRATE h p k 0 5 KEYS a b", "MIGRATE h p  0 5 AUTH KEYS KEYS a",
    "MIGRATE h p  0 5 AUTH2 u KEYS KEYS a", "MIGRATE h p  0 5 COPY KEYS", "MIGRATE h p  0 5",
    "SORT k", "SORT k STORE d", "SORT k BY w GET x STORE d", "SORT k STORE d STORE e",
    "SORT k LIMIT 0 10 STORE d", "SORT k LIMIT STORE d x", "SORT k STORE", "SORT k GET STORE d",
    "SORT k STORE limit 1 2", "SORT_RO k BY x", "SORT_RO k STORE d",
    "GEORADIUS k 1 2 3 m", "GEORADIUS k 1 2 3 m STORE", "GEORADIUS k 1 2 3 m STORE a",
    "GEORADIUS k 1 2 3 m STOREDIST a", "GEORADIUS k 1 2 3 m STORE a STOREDIST b",
    "GEORADIUS k 1 2 3 m STORE STORE", "GEORADIUSBYMEMBER k m 3 km STORE a",
    "GEORADIUSBYMEMBER k m 3 km STORE", "GEORADIUS_RO k 1 2 3 m", "GEOSEARCHSTORE d s FROMMEMBER m BYRADIUS 1 m",
    "BITFIELD k", "BITFIELD k GET u8 0", "BITFIELD k SET u8 0 1", "BITFIELD k INCRBY u8 0 1",
    "BITFIELD k OVERFLOW SAT GET u8 0", "BITFIELD k GET u8", "BITFIELD k FOO", "BITFIELD_RO k GET u8 0",
    "LMOVE a b LEFT RIGHT", "BLMOVE a b LEFT RIGHT 0", "RPOPLPUSH a b", "SMOVE a b m",
    "BLPOP a b 0", "BZPOPMIN a 0", "OBJECT ENCODING k", "OBJECT HELP", "MEMORY USAGE k",
    "MEMORY USAGE k SAMPLES 5", "XINFO STREAM s FULL", "XINFO GROUPS s", "XGROUP CREATE s g $",
    "CONFIG GET x", "CONFIG NOSUCH x", "CONFIG", "OBJECT", "NOSUCH a", "PING x", "ECHO a b",
    "SUBSCRIBE a", "SPUBLISH a b", "SSUBSCRIBE a b", "SUNSUBSCRIBE", "PUBLISH a b",
    "LCS a b", "COPY a b DB 1", "PFCOUNT a b", "PFMERGE d a b", "SDIFFSTORE d a b",
    "BITOP AND d a b", "GETEX k EX 1", "WATCH a b", "TOUCH a", "UNLINK a b", "DUMP k",
    "RESTORE k 0 x", "SINTERSTORE d a", "SMEMBERS k", "HSET h f v f2 v2", "XADD s * f v",
    "LPOS k e RANK 1", "SETRANGE k 0 v", "GET k\x00x", "SET k v G\x00ET", "SORT k ST\x00ORE d",
    "COMMAND GETKEYS GET k", "COMMAND INFO get", "CLIENT KILL ID 1", "FUNCTION LOAD x",
    "SCRIPT LOAD x", "CLUSTER KEYSLOT k", "KEYS *", "SCAN 0", "RANDOMKEY", "DBSIZE",
]


def command_entries(info):
    """(argv prefix, arity, has keys, movable keys) for every command and subcommand."""
    out = []

    def walk(entry):
        name, arity, flags = entry[0], entry[1], entry[2]
        specs = entry[8]
        movable = "movablekeys" in flags
        keyed = movable or any("not_key" not in dict(spec)["flags"] for spec in specs)
        out.append((name.split("|"), arity, keyed, movable))
        for sub in entry[9]:
            walk(sub)

    for e in info:
        walk(e)
    return out


def getkeys_corpus(info):
    """Command lines (argument lists) to ask COMMAND GETKEYSANDFLAGS about."""
    cases = []
    for prefix, arity, keyed, movable in command_entries(info):
        if not keyed:
            cases.append(prefix + ["a%d" % i for i in range(max(abs(arity) - len(prefix), 0))])
            continue
        # Too few, exactly enough, and more arguments than the arity asks for;
        # numeric arguments exercise numkeys for the movable-keys commands.
        m = abs(arity)
        counts = [m - 1, m, m + 1] if arity > 0 else [m - 1, m, m + 1, m + 4]
        for n in counts:
            extra = n - len(prefix)
            if extra < 0:
                continue
            cases.append(prefix + ["a%d" % i for i in range(extra)])
            if movable and extra > 1:
                cases.append(prefix + [str(i + 1) for i in range(extra)])
    for line in GETKEYS_EXTRA:
        cases.append(line.split(" "))
    return cases


# Introspection requests answered in both protocols. LIST PATTERN needs the
# glob matcher; everything else only the command table.
INTROSPECT_CASES = [
    ["COMMAND", "COUNT"], ["command", "count"], ["COMMAND", "LIST"],
    ["COMMAND", "LIST", "FILTERBY", "ACLCAT", "read"],
    ["COMMAND", "LIST", "FILTERBY", "aclcat", "SortedSet"],
    ["COMMAND", "LIST", "FILTERBY", "ACLCAT", "@read"],
    ["COMMAND", "LIST", "FILTERBY", "ACLCAT", "nosuch"],
    ["COMMAND", "LIST", "FILTERBY", "MODULE", "x"],
    ["COMMAND", "LIST", "FILTERBY", "PATTERN", "conf*"],
    ["COMMAND", "LIST", "FILTERBY", "PATTERN", "*|*"],
    ["COMMAND", "LIST", "FILTERBY", "PATTERN", "X[A-C]*"],
    ["COMMAND", "LIST", "FILTERBY", "ACLCAT"], ["COMMAND", "LIST", "FILTERBY"],
    ["COMMAND", "LIST", "x"], ["COMMAND", "LIST", "FILTERBY", "foo", "x"],
    ["COMMAND", "LIST", "FILTERBY", "pattern", "x", "y"],
    ["COMMAND", "INFO", "get"], ["Command", "Info", "GET", "Object|Encoding"],
    ["COMMAND", "INFO", "get", "nosuch", "CONFIG|GET", "config|nosuch", "get|", "",
     "a|b|c", "|get", "config|", "|"],
    ["COMMAND", "INFO", "config"], ["COMMAND", "INFO", "sort", "xread", "migrate", "set"],
    ["COMMAND", "DOCS", "get"], ["COMMAND", "DOCS", "get", "GET", "config|get", "nosuch"],
    ["COMMAND", "DOCS", "config"], ["COMMAND", "DOCS", "nosuch"], ["COMMAND", "DOCS", "set", "xadd"],
    ["COMMAND", "HELP"], ["COMMAND", "help"], ["COMMAND", "HELP", "x"], ["COMMAND", "FOO"],
    ["COMMAND", "x" * 200], ["COMMAND", "a\r\nb"], ["COMMAND", "COUNT", "x"],
    ["COMMAND", "GETKEYS"], ["COMMAND", "GETKEYS", "GET"], ["COMMAND", "GETKEYS", "GET", "k"],
    ["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"], ["COMMAND", "GETKEYS", "NOSUCH", "a"],
    ["COMMAND", "GETKEYS", "CONFIG", "GET", "x"], ["COMMAND", "GETKEYS", "EVAL", "s", "0"],
    ["COMMAND", "GETKEYS", "ZUNIONSTORE", "d", "0", "a"], ["COMMAND", "GETKEYS", "PING", "x"],
    ["COMMAND", "GETKEYSANDFLAGS"], ["COMMAND", "GETKEYSANDFLAGS", "LMOVE", "a", "b", "left", "right"],
]


def cases_file(title, requests, c2, c3):
    """Header, then (request, RESP2 reply, RESP3 reply) triples, all raw RESP."""
    out = [("# %s\n" % title).encode(),
           b"# Generated by scripts/gen-command-spec.py with the command table; do not edit.\n",
           b"# Records: request (array of bulk strings), RESP2 reply, RESP3 reply.\n"]
    for args in requests:
        req = command(*args)
        c2.sock.sendall(req)
        c3.sock.sendall(req)
        out += [req, c2.reply(), c3.reply()]
    return b"".join(out)


def write_fixtures(fixtures, sock2, reader2, reader3, info_tree):
    os.makedirs(fixtures, exist_ok=True)

    def write(name, data):
        with open(os.path.join(fixtures, name), "wb") as f:
            f.write(data)

    for proto, reader, sock in ((2, reader2, sock2), (3, reader3, reader3.sock)):
        sock.sendall(command("COMMAND", "INFO", "get"))
        write("command-info-get.resp%d" % proto, reader.reply())
        sock.sendall(command("COMMAND", "DOCS", "get"))
        write("command-docs-get.resp%d" % proto, reader.reply())
    getkeys = [["COMMAND", "GETKEYSANDFLAGS"] + args for args in getkeys_corpus(info_tree)]
    write("getkeys-cases.resp",
          cases_file("COMMAND GETKEYSANDFLAGS answers of redis-server", getkeys, reader2, reader3))
    write("introspect-cases.resp",
          cases_file("COMMAND subcommand answers of redis-server", INTROSPECT_CASES, reader2, reader3))
    return len(getkeys)


def settle_command_order(sock, reader):
    """Finishes the incremental rehashing of Redis's command dicts.

    Commands are listed in dict order, and a dict still rehashing after startup
    moves a bucket on every lookup, so subcommand order would differ between
    the data and later fixture replies. Lookups of every container (and the
    top-level table) until the order stops changing make the order final.
    """
    sock.sendall(command("COMMAND", "LIST"))
    names = decode(reader.reply())
    containers = sorted({n.split("|")[0] for n in names if "|" in n})
    probe = ["%s|%s" % (c, sub) for c in containers for sub in ("x", "help")] * 60
    previous = None
    for _ in range(20):
        sock.sendall(command("COMMAND", "INFO", *probe))
        reader.reply()
        sock.sendall(command("COMMAND", "LIST"))
        order = reader.reply()
        if order == previous:
            return
        previous = order
    raise RuntimeError("command order did not settle")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="redis-server")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--fixtures", default=DEFAULT_FIXTURES,
                    help="directory for the test fixtures (default: tests/fixtures)")
    ap.add_argument("--no-fixtures", action="store_true",
                    help="only write the data file (tests will then disagree with it)")
    args = ap.parse_args()

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="gen-command-spec-")
    proc = subprocess.Popen(
        [args.server, "--save", "", "--appendonly", "no", "--port", str(port),
         "--bind", "127.0.0.1", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = connect(port, time.time() + 10)
        reader = RespReader(sock)
        sock.sendall(command("HELLO", "3"))
        hello = reader.reply()
        version = "unknown"
        marker = b"$7\r\nversion\r\n$"
        at = hello.find(marker)
        if at >= 0:
            rest = hello[at + len(marker):]
            n, rest = rest.split(b"\r\n", 1)
            version = rest[:int(n)].decode()
        settle_command_order(sock, reader)
        sock.sendall(command("COMMAND", "INFO"))
        info = reader.reply()
        sock.sendall(command("COMMAND", "DOCS"))
        docs = reader.reply()
        ncases = None
        if not args.no_fixtures:
            sock2 = connect(port, time.time() + 10)
            ncases = write_fixtures(args.fixtures, sock2, RespReader(sock2), reader,
                                    decode(info))
            sock2.close()
        sock.sendall(command("SHUTDOWN", "NOSAVE"))
        sock.close()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    header = (
        "# Redis %s command table, as published by the server itself.\n"
        "# Generated by scripts/gen-command-spec.py; do not edit by hand.\n"
        "# Format: '#' comment lines, then two raw RESP3 replies back to back:\n"
        "# COMMAND INFO (all commands), then COMMAND DOCS (all commands).\n"
        % version
    ).encode()
    with open(args.out, "wb") as f:
        f.write(header + info + docs)
    print("wrote %s: redis %s, info %d bytes, docs %d bytes"
          % (os.path.normpath(args.out), version, len(info), len(docs)))
    if ncases is not None:
        print("wrote fixtures to %s (%d getkeys cases)"
              % (os.path.normpath(args.fixtures), ncases))


if __name__ == "__main__":
    sys.exit(main())
