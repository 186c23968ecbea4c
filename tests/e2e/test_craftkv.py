#!/usr/bin/env python3
"""craftkv end to end, with the real clients (issue 5).

Every scenario starts its own cluster of craftkv processes on loopback, with
ports picked free (bind port 0, close, reuse) so a developer's demo cluster
(7379...) is never touched, and data in a temporary directory. Clients are
the real ones: redis-cli, redis-benchmark and curl; raw sockets only where a
client cannot send what is wanted (malformed input, a writer thread that
records exactly which writes were acknowledged).

  test_1_commands      every RESP command through redis-cli on a 3-node
                       cluster (replies checked, errors' texts, writes sent
                       to followers), HTTP /kv, /status, /metrics with curl
  test_2_benchmark     redis-benchmark (set,get,incr,mset; -c 64 -P 16
                       -n 100000; and -r 1000 -t set) without errors; the
                       SET keys, sampled by SCAN, read the same on every node
  test_3_restart_crash a node restarts (SIGTERM, same flags) and reads
                       everything back; kill -9 of the leader under a write
                       load sent through a follower: every acknowledged
                       write is on every node afterwards; the killed node
                       restarts and converges (same /hash)
  test_4_membership    a 4th node joins (--join, POST /members/4 on the
                       leader) after compaction, catches up through a
                       snapshot, serves linearizable reads, is removed
                       (DELETE /members/4) and leaves every member list
  test_5_bad_input     malformed RESP and HTTP get an error or a closed
                       connection; the node keeps serving (PING, GET); the
                       default 1 MiB value limit (redis-cli -x)
  test_6_configured_limits  --max-key-size / --max-value-size below the
                       store's own: every key and value of a command, the
                       right error for each, APPEND growth, HTTP

Waits poll with a deadline that is only a safety bound (generous); no
assertion depends on timing. Only processes this test started are stopped
(SIGTERM, then SIGKILL after a bound), by pid; temporary directories are
always removed (kept when CRAFTKV_E2E_KEEP=1).

Usage: test_craftkv.py PATH/TO/craftkv [unittest options]
"""

import json
import linecache
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.dont_write_bytecode = True

CRAFTKV = None  # set from argv in main
WAIT = 30.0  # seconds: the safety bound of one wait
CMD_TIMEOUT = 60.0  # seconds: one client process (redis-cli, curl)
BENCH_TIMEOUT = 300.0  # seconds: one redis-benchmark run
STOP_BOUND = 20.0  # seconds between SIGTERM and SIGKILL


def log(msg):
    sys.stderr.write("  %s\n" % msg)
    sys.stderr.flush()


class Step:
    """with Step("name"): prints how long the step took."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.t0 = time.monotonic()
        log("step: %s ..." % self.name)
        return self

    def __exit__(self, et, ev, tb):
        log("step: %s %s in %.2f s" % (self.name, "done" if et is None else "FAILED",
                                       time.monotonic() - self.t0))
        return False


def free_ports(n):
    """n distinct ports that were free a moment ago (bind port 0, close)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
            socks.append(s)
            if p not in ports:
                ports.append(p)
    finally:
        for s in socks:
            s.close()
    return ports


def wait_until(what, fn, timeout=WAIT, interval=0.05):
    """Calls fn until it returns something true and returns that; fails when
    the (generous) bound passes first."""
    end = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # a node may be starting or electing
            last_exc = e
        if time.monotonic() > end:
            raise AssertionError("%s: not within %.0f s (last error: %r)" % (what, timeout, last_exc))
        time.sleep(interval)


# ---- a minimal RESP client (for the writer thread and raw checks) ----


class RespError(Exception):
    pass


def resp_encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Resp:
    def __init__(self, port, timeout=30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionError("closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _n(self, n):
        while len(self.buf) < n + 2:
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionError("closed")
            self.buf += d
        v, self.buf = self.buf[:n], self.buf[n + 2:]
        return v

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._n(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        if t == b"_":
            return None
        raise ConnectionError("bad reply type %r" % line)

    def call(self, *args):
        self.sock.sendall(resp_encode(*args))
        return self.read()


# ---- the cluster ----


class Node:
    def __init__(self, cluster, nid):
        self.cluster = cluster
        self.id = nid
        self.resp, self.http, self.raft = free_ports(3)
        self.data = os.path.join(cluster.tmp, "node%d" % nid)
        self.logpath = os.path.join(cluster.tmp, "node%d.log" % nid)
        self.proc = None
        self.args = None

    @property
    def raft_addr(self):
        return "127.0.0.1:%d" % self.raft

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    def __init__(self, n=3, extra=()):
        self.tmp = tempfile.mkdtemp(prefix="craftkv_e2e_")
        self.extra = list(extra)
        self.nodes = {}
        self.procs = []  # every process started, for cleanup
        for i in range(1, n + 1):
            self.nodes[i] = Node(self, i)
        try:
            t0 = time.monotonic()
            for i in self.nodes:
                self.start(i)
            self.wait_leader()
            log("cluster of %d up (leader %d) in %.2f s, data in %s"
                % (n, self.leader(), time.monotonic() - t0, self.tmp))
        except BaseException:
            self.close()
            raise

    def peers(self, ids=None):
        ids = ids if ids is not None else sorted(self.nodes)
        return ",".join("%d=%s" % (i, self.nodes[i].raft_addr) for i in ids)

    def add_node(self, nid):
        self.nodes[nid] = Node(self, nid)
        return self.nodes[nid]

    def start(self, nid, join=False, extra=None):
        n = self.nodes[nid]
        if n.args is None:
            n.args = [CRAFTKV, "--id", str(nid), "--data", n.data,
                      "--peers", self.peers(),
                      "--resp", "127.0.0.1:%d" % n.resp,
                      "--http", "127.0.0.1:%d" % n.http,
                      "--raft", n.raft_addr] + (["--join"] if join else []) + \
                (list(extra) if extra is not None else self.extra)
        with open(n.logpath, "ab") as lf:
            n.proc = subprocess.Popen(n.args, stdout=lf, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        self.procs.append(n.proc)
        wait_until("node %d listens" % nid, lambda: self._listens(n))
        return n

    def _listens(self, n):
        if n.proc.poll() is not None:
            raise AssertionError("node %d exited with %s; log:\n%s"
                                 % (n.id, n.proc.returncode, self.tail(n.id)))
        for port in (n.resp, n.http):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
        return True

    def tail(self, nid, lines=30):
        try:
            with open(self.nodes[nid].logpath, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""

    def stop(self, nid):
        """SIGTERM, wait (bounded), SIGKILL only past the bound. Returns the
        exit status (None if it had to be killed)."""
        n = self.nodes[nid]
        if not n.alive():
            return n.proc.returncode if n.proc else None
        n.proc.send_signal(signal.SIGTERM)
        try:
            return n.proc.wait(STOP_BOUND)
        except subprocess.TimeoutExpired:
            n.proc.kill()
            n.proc.wait()
            return None

    def kill(self, nid):
        n = self.nodes[nid]
        if n.alive():
            n.proc.kill()
            n.proc.wait()

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        end = time.monotonic() + STOP_BOUND
        for p in self.procs:
            try:
                p.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if os.environ.get("CRAFTKV_E2E_KEEP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- HTTP --

    def http(self, nid, method, path, body=None, timeout=30.0):
        """(status, body bytes) of one request."""
        url = "http://127.0.0.1:%d%s" % (self.nodes[nid].http, path)
        req = urllib.request.Request(url, data=body, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def status(self, nid):
        code, body = self.http(nid, "GET", "/status", timeout=5)
        if code != 200:
            raise AssertionError("GET /status on %d: %d %r" % (nid, code, body))
        return json.loads(body)

    def leader(self, among=None):
        """The id of the node whose /status says role "leader" (None if none)."""
        for i in (among if among is not None else sorted(self.nodes)):
            if not self.nodes[i].alive():
                continue
            try:
                if self.status(i)["role"] == "leader":
                    return i
            except (OSError, AssertionError, ValueError):
                continue
        return None

    def wait_leader(self, among=None):
        return wait_until("a leader", lambda: self.leader(among))

    def hash(self, nid):
        code, body = self.http(nid, "GET", "/hash", timeout=10)
        assert code == 200, (code, body)
        return json.loads(body)

    def metric(self, nid, name):
        code, body = self.http(nid, "GET", "/metrics", timeout=10)
        assert code == 200
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    # -- clients --

    def cli(self, nid, *args, proto3=False, raw=True, stdin=None):
        """redis-cli against node nid; returns stdout without the final newline."""
        argv = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.nodes[nid].resp)]
        if proto3:
            argv.append("-3")
        argv.append("--raw" if raw else "--no-raw")
        argv += [str(a) for a in args]
        r = subprocess.run(argv, input=stdin, capture_output=True, timeout=CMD_TIMEOUT)
        # raw mode ends a reply with a newline, an error with two
        return r.stdout.decode(errors="replace").rstrip("\n")

    def curl(self, nid, method, path, data=None, extra=()):
        """(status code, body) through curl."""
        argv = ["curl", "-s", "-S", "--max-time", "30", "-X", method, "-o", "-",
                "-w", "\n%{http_code}"] + list(extra)
        if data is not None:
            argv += ["--data-binary", data]
        argv.append("http://127.0.0.1:%d%s" % (self.nodes[nid].http, path))
        r = subprocess.run(argv, capture_output=True, timeout=CMD_TIMEOUT)
        out = r.stdout.decode(errors="replace")
        body, _, code = out.rpartition("\n")
        return int(code), body


class CraftkvTest(unittest.TestCase):
    cluster = None

    def tearDown(self):
        if self.cluster is not None:
            c = self.cluster
            self.cluster = None
            res = getattr(self._outcome, "result", None)
            failed = res is not None and any(
                t is self for t, _ in list(res.failures) + list(res.errors))
            if failed or not getattr(self._outcome, "success", True):
                for i in c.nodes:
                    log("node %d log tail:\n%s" % (i, c.tail(i)))
            c.close()

    def followers(self, c, leader):
        return [i for i in sorted(c.nodes) if i != leader and c.nodes[i].alive()]

    # ---------------------------------------------------------------
    def test_1_commands(self):
        c = self.cluster = Cluster(3, ["--max-value-size", "1000", "--quiet"])
        L = c.leader()
        F = self.followers(c, L)[0]
        cli = c.cli
        problems = []

        def eq(got, want, msg=None):
            """A soft assertEqual: every mismatch is reported at the end, so
            one wrong reply does not hide the checks after it."""
            if got != want:
                where = sys._getframe(1).f_lineno
                src = linecache.getline(__file__, where).strip()[:100]
                problems.append("line %d [%s]: got %.120r, want %r%s" % (
                    where, src, got, want, " (%s)" % msg if msg else ""))
                log("MISMATCH line %d: got %.120r, want %r" % (where, got, want))

        with Step("connection commands"):
            eq(cli(L, "PING"), "PONG")
            eq(cli(F, "PING", "hi"), "hi")
            eq(cli(F, "ECHO", "hello world"), "hello world")
            eq(cli(L, "PING", raw=False), "PONG")
            hello = cli(L, "HELLO", "3", proto3=True, raw=False)
            self.assertIn('"proto" => (integer) 3', hello)
            self.assertIn('"server" => "craftkv"', hello)
            # RESP3: a null is "_" on the wire, printed (nil) by redis-cli -3.
            eq(cli(L, "GET", "absent-key", proto3=True, raw=False), "(nil)")
            eq(cli(L, "CLIENT", "SETNAME", "e2e-client"), "OK")
            # SETNAME then GETNAME on one connection (redis-cli reads commands from stdin)
            out = cli(L, stdin=b"CLIENT SETNAME e2e\nCLIENT GETNAME\n")
            eq(out.split("\n"), ["OK", "e2e"])

        with Step("strings: SET NX XX GET DEL EXISTS"):
            eq(cli(F, "SET", "k1", "v1"), "OK")  # a write sent to a follower
            eq(cli(L, "GET", "k1"), "v1")
            eq(cli(F, "GET", "k1"), "v1")
            eq(cli(L, "SET", "k1", "other", "NX", raw=False), "(nil)")
            eq(cli(L, "GET", "k1"), "v1")
            eq(cli(L, "SET", "k2", "v2", "NX"), "OK")
            eq(cli(L, "SET", "k3", "v3", "XX", raw=False), "(nil)")
            eq(cli(L, "EXISTS", "k3", raw=False), "(integer) 0")
            eq(cli(F, "SET", "k2", "v2b", "XX"), "OK")
            eq(cli(L, "GET", "k2"), "v2b")
            eq(cli(L, "EXISTS", "k1", "k2", "k3", "k1", raw=False), "(integer) 3")
            eq(cli(F, "DEL", "k1", "k3", raw=False), "(integer) 1")
            eq(cli(L, "GET", "k1", raw=False), "(nil)")
            eq(cli(L, "SET", "k1", "v", "EX", "10"),
               "ERR SET options EX, PX, EXAT, PXAT, KEEPTTL and GET are not supported "
               "(craftkv keys never expire)")

        with Step("counters: INCR INCRBY DECR DECRBY"):
            eq(cli(F, "INCR", "ctr", raw=False), "(integer) 1")
            eq(cli(L, "INCRBY", "ctr", "41", raw=False), "(integer) 42")
            eq(cli(F, "DECR", "ctr", raw=False), "(integer) 41")
            eq(cli(L, "DECRBY", "ctr", "50", raw=False), "(integer) -9")
            eq(cli(F, "GET", "ctr"), "-9")
            eq(cli(L, "INCR", "k2"), "ERR value is not an integer or out of range")
            eq(cli(L, "INCRBY", "ctr", "abc"), "ERR value is not an integer or out of range")
            eq(cli(L, "SET", "big", str(2 ** 63 - 1)), "OK")
            eq(cli(L, "INCR", "big"), "ERR increment or decrement would overflow")

        with Step("MSET MGET APPEND STRLEN CAS"):
            eq(cli(F, "MSET", "m1", "a", "m2", "b", "m3", "c"), "OK")
            eq(cli(L, "MGET", "m1", "nope", "m3", raw=False),
               '1) "a"\n2) (nil)\n3) "c"')
            eq(cli(F, "APPEND", "m1", "bcd", raw=False), "(integer) 4")
            eq(cli(L, "APPEND", "fresh", "xyz", raw=False), "(integer) 3")
            eq(cli(L, "GET", "m1"), "abcd")
            eq(cli(F, "STRLEN", "m1", raw=False), "(integer) 4")
            eq(cli(F, "STRLEN", "nope", raw=False), "(integer) 0")
            eq(cli(F, "CAS", "m2", "b", "B", raw=False), "(integer) 1")
            eq(cli(L, "GET", "m2"), "B")
            eq(cli(F, "CAS", "m2", "b", "C", raw=False), "(integer) 0")
            eq(cli(L, "GET", "m2"), "B")
            eq(cli(L, "CAS", "absent", "", "x", raw=False), "(integer) 0")
            eq(cli(L, "EXISTS", "absent", raw=False), "(integer) 0")
            eq(cli(L, "MSET", "m1", "a", "m2"), "ERR wrong number of arguments for 'mset' command")

        with Step("SCAN KEYS DBSIZE"):
            keys = ["scan:%03d" % i for i in range(150)]
            args = []
            for k in keys:
                args += [k, k.upper()]
            eq(cli(F, "MSET", *args), "OK")
            eq(cli(L, "SET", "other:1", "x"), "OK")
            for node in (L, F):
                seen = []
                cursor = "0"
                rounds = 0
                while True:
                    out = cli(node, "SCAN", cursor, "MATCH", "scan:*", "COUNT", "17").split("\n")
                    cursor, got = out[0], [k for k in out[1:] if k]
                    seen += got
                    rounds += 1
                    self.assertLess(rounds, 1000, "SCAN does not end")
                    if cursor == "0":
                        break
                eq(len(seen), len(set(seen)), "SCAN returned a key twice")
                eq(sorted(seen), keys)
                self.assertGreater(rounds, 2)
            eq(sorted(cli(L, "KEYS", "scan:1?5").split("\n")),
               ["scan:105", "scan:115", "scan:125", "scan:135", "scan:145"])
            eq(cli(L, "KEYS", "nomatch*"), "")
            total = len(cli(L, "KEYS", "*").split("\n"))
            eq(cli(F, "DBSIZE"), str(total))
            eq(cli(L, "DBSIZE"), str(total))
            eq(cli(L, "SCAN", "123456789"), "ERR invalid cursor")

        with Step("INFO, READONLY"):
            info = cli(F, "INFO")
            self.assertIn("# Raft", info)
            raft = info.split("# Raft", 1)[1]
            for field in ("role:", "term:", "leader:%d" % L, "commit:", "applied:", "members:"):
                self.assertIn(field, raft)
            members = re.search(r"members:([^\r\n]*)", raft).group(1)
            eq(sorted(members.split(",")), ["1", "2", "3"])
            self.assertIn("role:follower", raft)
            self.assertIn("role:leader", cli(L, "INFO", "raft"))
            # READONLY then GET on a follower: served at once, from its store.
            eq(cli(F, stdin=b"READONLY\nGET m2\nREADWRITE\nGET m2\n").split("\n"),
               ["OK", "B", "OK", "B"])

        with Step("errors: unknown command, arity, limits"):
            eq(cli(L, "x", "a", "b"),
               "ERR unknown command 'x', with args beginning with: 'a' 'b' ")
            eq(cli(L, "NOSUCH"), "ERR unknown command 'NOSUCH', with args beginning with: ")
            eq(cli(L, "GET"), "ERR wrong number of arguments for 'get' command")
            eq(cli(L, "GET", "a", "b"), "ERR wrong number of arguments for 'get' command")
            eq(cli(F, "SET", "a"), "ERR wrong number of arguments for 'set' command")
            eq(cli(F, "INCR"), "ERR wrong number of arguments for 'incr' command")
            eq(cli(F, "CAS", "a", "b"), "ERR wrong number of arguments for 'cas' command")
            eq(cli(L, "ECHO"), "ERR wrong number of arguments for 'echo' command")
            eq(cli(L, "SET", "k", "v", "BOGUS"), "ERR syntax error")
            eq(cli(F, "SET", "K" * 501, "v"), "ERR key too large (max 500 bytes)")
            # a read of a key that cannot exist: nil or the same error
            self.assertIn(cli(F, "GET", "K" * 501), ("", "ERR key too large (max 500 bytes)"))
            eq(cli(F, "MSET", "a", "1", "K" * 501, "v"), "ERR key too large (max 500 bytes)")
            eq(cli(F, "EXISTS", "a", raw=False), "(integer) 0")  # MSET is all or nothing
            eq(cli(F, "SET", "K" * 500, "v"), "OK")
            # --max-value-size 1000 on every node
            eq(cli(F, "SET", "bigval", "v" * 1001), "ERR value too large (max 1000 bytes)")
            eq(cli(L, "MSET", "a", "1", "bigval", "v" * 1001), "ERR value too large (max 1000 bytes)")
            eq(cli(L, "SET", "casbig", "B"), "OK")
            eq(cli(L, "CAS", "casbig", "B", "v" * 1001), "ERR value too large (max 1000 bytes)")
            eq(cli(L, "GET", "casbig"), "B")
            eq(cli(L, "APPEND", "bigval", "v" * 1001), "ERR value too large (max 1000 bytes)")
            eq(cli(L, "EXISTS", "bigval", "a"), "0")
            eq(cli(F, "SET", "okv", "v" * 1000), "OK")
            eq(cli(L, "APPEND", "okv", "x"), "ERR value too large (max 1000 bytes)")
            eq(cli(L, "STRLEN", "okv"), "1000")
            eq(c.curl(L, "PUT", "/kv/okv", "y" * 1001)[0], 413)
            eq(cli(L, "PING"), "PONG")

        with Step("HTTP /kv with curl"):
            eq(c.curl(F, "PUT", "/kv/h1", "hello http"), (204, ""))
            eq(c.curl(L, "GET", "/kv/h1"), (200, "hello http"))
            eq(c.curl(F, "GET", "/kv/h1"), (200, "hello http"))
            eq(cli(F, "GET", "h1"), "hello http")
            eq(c.curl(L, "GET", "/kv/m2"), (200, "B"))  # RESP writes, HTTP reads
            code, _ = c.curl(F, "GET", "/kv/h1?stale=1")
            eq(code, 200)  # a stale read of a key written before: present or not
            wait_until("stale read on the follower sees h1",
                       lambda: c.curl(F, "GET", "/kv/h1?stale=1") == (200, "hello http"))
            eq(c.curl(L, "DELETE", "/kv/h1")[0], 204)
            eq(c.curl(L, "GET", "/kv/h1")[0], 404)
            eq(c.curl(F, "GET", "/kv/h1")[0], 404)
            eq(c.curl(F, "GET", "/kv/never-there?stale=1")[0], 404)
            eq(c.curl(L, "PUT", "/kv/hbig", "x" * 1001)[0], 413)
            eq(c.curl(L, "PUT", "/kv/" + "k" * 501, "x")[0], 400)

        with Step("HTTP /status /metrics"):
            for node in c.nodes:
                code, body = c.curl(node, "GET", "/status")
                eq(code, 200)
                st = json.loads(body)
                eq(st["node_id"], node)
                eq(sorted(m["id"] for m in st["members"]), [1, 2, 3])
                eq(st["role"], "leader" if node == L else "follower")
                eq(st["leader"], L)
            code, body = c.curl(L, "GET", "/metrics")
            eq(code, 200)
            self.assertRegex(body, r"(?m)^craft_proposals_total \d+$")
            self.assertGreater(c.metric(L, "craft_proposals_total"), 10)
            self.assertIn("# TYPE craft_wal_fsync_seconds histogram", body)
            self.assertRegex(body, r'(?m)^craft_wal_fsync_seconds_bucket\{le="\+Inf"\} \d+$')
            self.assertRegex(body, r"(?m)^craft_wal_fsync_seconds_count \d+$")
            self.assertGreater(c.metric(L, "craft_wal_fsync_seconds_count"), 0)
        self.assertEqual(problems, [], "wrong replies:\n" + "\n".join(problems))

    # ---------------------------------------------------------------
    def test_2_benchmark(self):
        c = self.cluster = Cluster(3, ["--quiet"])
        L = c.leader()
        target = self.followers(c, L)[0]  # followers forward to the leader

        def bench(*args):
            argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(c.nodes[target].resp),
                    "-q"] + list(args)
            t0 = time.monotonic()
            r = subprocess.run(argv, capture_output=True, timeout=BENCH_TIMEOUT)
            out = (r.stdout + r.stderr).decode(errors="replace")
            # -q prints progress with \r; keep the final lines
            lines = [seg.strip() for ln in out.splitlines() for seg in ln.split("\r")]
            log("redis-benchmark %s (%.1f s):\n    %s" % (
                " ".join(args), time.monotonic() - t0,
                "\n    ".join(l for l in lines if "requests per second" in l)))
            self.assertEqual(r.returncode, 0, out)
            self.assertNotIn("ERR", out)
            self.assertNotRegex(out.lower(), r"error|refused|reset|closed")
            return out

        with Step("redis-benchmark -t set,get,incr,mset -c 64 -P 16 -n 100000"):
            out = bench("-t", "set,get,incr,mset", "-c", "64", "-P", "16", "-n", "100000")
            for t in ("SET", "GET", "INCR", "MSET"):
                self.assertRegex(out, r"(?m)^\s*%s.*: [\d.]+ requests per second" % t)
        with Step("redis-benchmark -r 1000 -t set"):
            out = bench("-r", "1000", "-t", "set", "-c", "64", "-P", "16", "-n", "100000")
            self.assertRegex(out, r"SET: [\d.]+ requests per second")

        with Step("benchmark keys read the same on every node"):
            keys, cursor, rounds = [], "0", 0
            while True:
                out = c.cli(L, "SCAN", cursor, "MATCH", "key:0*", "COUNT", "200").split("\n")
                cursor = out[0]
                keys += [k for k in out[1:] if k]
                rounds += 1
                self.assertLess(rounds, 10000)
                if cursor == "0":
                    break
            self.assertEqual(len(keys), len(set(keys)))
            for k in keys:
                self.assertRegex(k, r"^key:\d{12}$")
            self.assertGreater(len(keys), 500)  # 100000 random draws of 1000
            self.assertLessEqual(len(keys), 1000)
            sample = random.Random(5).sample(sorted(keys), 50)
            want = c.cli(L, "MGET", *sample).split("\n")
            # redis-benchmark's payload: -d 3 bytes (its filler, e.g. "VXK")
            self.assertTrue(all(len(v) == 3 for v in want), want)
            for node in sorted(c.nodes):
                self.assertEqual([c.cli(node, "GET", k) for k in sample[:15]], want[:15],
                                 "node %d" % node)
                self.assertEqual(c.cli(node, "MGET", *sample).split("\n"), want)
            # the -r-less runs' literal key and the INCR counter, everywhere
            ctr = c.cli(L, "GET", "counter:__rand_int__")
            self.assertEqual(ctr, "100000")
            for node in sorted(c.nodes):
                self.assertEqual(c.cli(node, "GET", "key:__rand_int__"), want[0])
                self.assertEqual(c.cli(node, "GET", "counter:__rand_int__"), ctr)
                self.assertEqual(c.cli(node, "DBSIZE"), c.cli(L, "DBSIZE"))

    # ---------------------------------------------------------------
    def test_3_restart_crash(self):
        c = self.cluster = Cluster(3, ["--quiet"])
        L = c.leader()

        with Step("writes, then a follower restarts (SIGTERM, same flags)"):
            F = self.followers(c, L)[0]
            args = []
            for i in range(300):
                args += ["r:%03d" % i, "v%d" % i]
            self.assertEqual(c.cli(L, "MSET", *args), "OK")
            for i in range(20):
                self.assertEqual(c.cli(F, "SET", "s:%d" % i, "w%d" % i), "OK")
            self.assertEqual(c.stop(F), 0, "a clean SIGTERM exits 0")
            self.assertEqual(c.cli(L, "SET", "while-down", "yes"), "OK")
            c.start(F)
            keys = ["r:%03d" % i for i in range(300)]
            vals = wait_until("restarted node answers MGET",
                              lambda: _mget_ok(c.cli(F, "MGET", *keys)))
            self.assertEqual(vals.split("\n"), ["v%d" % i for i in range(300)])
            for i in range(20):
                self.assertEqual(c.cli(F, "GET", "s:%d" % i), "w%d" % i)
            self.assertEqual(c.cli(F, "GET", "while-down"), "yes")

        with Step("the leader restarts (SIGTERM): everything reads back"):
            L = c.leader()
            self.assertEqual(c.stop(L), 0)
            c.start(L)
            c.wait_leader()
            for node in sorted(c.nodes):
                vals = wait_until("node %d answers MGET" % node,
                                  lambda: _mget_ok(c.cli(node, "MGET", *keys)))
                self.assertEqual(vals.split("\n"), ["v%d" % i for i in range(300)])

        L = c.wait_leader()
        F = self.followers(c, L)[0]
        acked, attempted, errors = [], [0], []
        stop = threading.Event()

        def writer():
            conn = None
            i = 0
            while not stop.is_set():
                key = "w:%06d" % i
                try:
                    if conn is None:
                        conn = Resp(c.nodes[F].resp, timeout=30)
                    attempted[0] += 1
                    r = conn.call("SET", key, "val-%d" % i)
                    if r == "OK":
                        acked.append(key)
                    else:
                        errors.append(str(r))
                except (OSError, ConnectionError) as e:
                    errors.append(repr(e))
                    if conn is not None:
                        conn.close()
                    conn = None
                    time.sleep(0.05)
                i += 1
            if conn is not None:
                conn.close()

        with Step("kill -9 the leader under load through follower %d" % F):
            t = threading.Thread(target=writer, daemon=True)
            t.start()
            try:
                wait_until("200 writes acknowledged", lambda: len(acked) >= 200, timeout=60)
                n_before = len(acked)
                c.kill(L)
                log("killed leader %d after %d acknowledged writes" % (L, n_before))
                new_leader = c.wait_leader(among=[i for i in c.nodes if i != L])
                log("new leader: %d" % new_leader)
                wait_until("writes acknowledged after the failover",
                           lambda: len(acked) >= n_before + 200, timeout=60)
            finally:
                stop.set()
                t.join(60)
            self.assertFalse(t.is_alive())
            log("writer: %d attempted, %d acknowledged, %d errors (first: %s)"
                % (attempted[0], len(acked), len(errors), errors[:3]))
            for e in errors:
                self.assertRegex(e, r"CLUSTERDOWN|TIMEOUT|NOTLEADER|BUSY|Connection|closed",
                                 "an unexpected error during the failover")

        def check_acked(node):
            for i in range(0, len(acked), 200):
                chunk = acked[i:i + 200]
                vals = wait_until("node %d answers MGET" % node,
                                  lambda: _mget_ok(c.cli(node, "MGET", *chunk)))
                want = ["val-%d" % int(k[2:]) for k in chunk]
                got = vals.split("\n")
                missing = [k for k, v, w in zip(chunk, got, want) if v != w]
                self.assertEqual(missing, [], "acknowledged writes missing on node %d" % node)

        with Step("every acknowledged write is on the survivors"):
            for node in sorted(c.nodes):
                if node != L:
                    check_acked(node)

        with Step("the killed node restarts and converges"):
            c.start(L)
            check_acked(L)

            def hashes():
                hs = {}
                for node in sorted(c.nodes):
                    # a linearizable read first: the node applied up to the commit
                    if c.cli(node, "GET", acked[-1]) != "val-%d" % int(acked[-1][2:]):
                        return None
                    hs[node] = c.hash(node)
                return hs if len(set(h["hash"] for h in hs.values())) == 1 else None

            hs = wait_until("the same /hash on every node", hashes)
            log("hashes: %s" % hs)
            self.assertEqual(len(set(h["applied"] for h in hs.values())), 1, hs)

    # ---------------------------------------------------------------
    def test_4_membership(self):
        c = self.cluster = Cluster(3, ["--quiet", "--snapshot-entries", "200",
                                       "--compaction-overhead", "50"])
        L = c.leader()

        with Step("1200 separate proposals, so the log is compacted"):
            # several connections, one write at a time each: one entry per write
            def w(tid):
                conn = Resp(c.nodes[1 + tid % 3].resp)
                try:
                    for i in range(300):
                        r = conn.call("SET", "m:%d:%d" % (tid, i), "v%d" % i)
                        assert r == "OK", r
                finally:
                    conn.close()
            ths = [threading.Thread(target=w, args=(t,)) for t in range(4)]
            for t in ths:
                t.start()
            for t in ths:
                t.join(120)
            self.assertEqual(c.cli(L, "DBSIZE"), "1200")
            self.assertEqual(c.cli(L, "SET", "latest", "before-join"), "OK")
            st = wait_until("the leader's log compacted",
                            lambda: (lambda s: s if s["first_index"] > 60 and
                                     s["snapshot_index"] > 0 else None)(c.status(L)))
            log("leader: snapshot_index %d first_index %d last_index %d"
                % (st["snapshot_index"], st["first_index"], st["last_index"]))
            self.assertGreater(c.metric(L, "craft_snapshots_taken_total"), 0)

        with Step("node 4 joins through POST /members/4"):
            n4 = c.add_node(4)
            c.start(4, join=True, extra=["--quiet"])
            # its --peers lists the others (and itself)
            self.assertIn("--join", n4.args)
            leader = c.leader()
            code, body = c.http(leader, "POST", "/members/4", n4.raft_addr.encode())
            if code == 503 and b"NOTLEADER" in body:
                named = int(re.search(rb"node (\d+)", body).group(1))
                code, body = c.http(named, "POST", "/members/4", n4.raft_addr.encode())
            self.assertEqual(code, 200, body)
            self.assertIn(b"ok", body)
            for node in (1, 2, 3, 4):
                wait_until("node %d lists 4 members" % node,
                           lambda: sorted(m["id"] for m in c.status(node)["members"]) == [1, 2, 3, 4])

        with Step("node 4 catches up through a snapshot and serves reads"):
            self.assertEqual(c.cli(1, "SET", "latest", "after-join"), "OK")
            self.assertEqual(c.cli(4, "GET", "latest"), "after-join")
            self.assertEqual(c.cli(4, "DBSIZE"), "1201")
            self.assertEqual(c.cli(4, "GET", "m:3:299"), "v299")
            self.assertEqual(c.cli(4, "SET", "from4", "yes"), "OK")
            self.assertEqual(c.cli(2, "GET", "from4"), "yes")
            got = c.metric(4, "craft_snapshots_received_total")
            log("node 4 craft_snapshots_received_total = %s" % got)
            self.assertIsNotNone(got)
            self.assertGreaterEqual(got, 1)

            def same_hash():
                # a linearizable read on each node first: each applied up to the commit
                if not all(c.cli(i, "GET", "from4") == "yes" for i in (1, 2, 3, 4)):
                    return None
                hs = {i: c.hash(i)["hash"] for i in (1, 2, 3, 4)}
                return hs if len(set(hs.values())) == 1 else None
            wait_until("the same /hash on the four nodes", same_hash)

        with Step("DELETE /members/4"):
            leader = c.wait_leader()
            code, body = c.http(leader, "DELETE", "/members/4")
            if code == 503 and b"NOTLEADER" in body:
                named = int(re.search(rb"node (\d+)", body).group(1))
                code, body = c.http(named, "DELETE", "/members/4")
            self.assertEqual(code, 200, body)
            for node in (1, 2, 3):
                wait_until("node %d lists 3 members" % node,
                           lambda: sorted(m["id"] for m in c.status(node)["members"]) == [1, 2, 3])
            info = c.cli(leader, "INFO", "raft")
            self.assertEqual(sorted(re.search(r"members:([^\r\n]*)", info).group(1).split(",")),
                             ["1", "2", "3"])
            self.assertEqual(c.cli(1, "SET", "after-remove", "ok"), "OK")
            self.assertEqual(c.cli(3, "GET", "after-remove"), "ok")
            c.stop(4)

    # ---------------------------------------------------------------
    def test_5_bad_input(self):
        c = self.cluster = Cluster(3, ["--quiet"])
        L = c.leader()
        node = self.followers(c, L)[0]
        port = c.nodes[node].resp
        hport = c.nodes[node].http
        self.assertEqual(c.cli(node, "SET", "good", "still-here"), "OK")

        # a bystander connection that must keep working throughout
        bystander = Resp(port)
        self.addCleanup(bystander.close)
        self.assertEqual(bystander.call("PING"), "PONG")

        def exchange(p, data, close_write=False, stop_at=None):
            """Sends data; returns what came back until the server closed (or
            the bound passed: then '<open>' is appended)."""
            s = socket.create_connection(("127.0.0.1", p), timeout=5)
            got = b""
            try:
                try:
                    s.sendall(data)
                    if close_write:
                        s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # the server may close while we send
                end = time.monotonic() + 5
                while time.monotonic() < end:
                    try:
                        d = s.recv(65536)
                    except socket.timeout:
                        return got + b"<open>"
                    except OSError:
                        return got
                    if not d:
                        return got
                    got += d
                    if stop_at is not None and got == stop_at:
                        return got + b"<open>"
                return got + b"<open>"
            finally:
                s.close()

        def still_serving():
            self.assertEqual(c.cli(node, "PING"), "PONG")
            self.assertEqual(bystander.call("GET", "good"), b"still-here")

        cases = [
            ("huge bulk length", b"*1\r\n$99999999999\r\n", b"-ERR Protocol error: invalid bulk length"),
            ("negative bulk length", b"*2\r\n$3\r\nGET\r\n$-9\r\n",
             b"-ERR Protocol error: invalid bulk length"),
            ("huge multibulk", b"*99999999999\r\n", b"-ERR Protocol error: invalid multibulk length"),
            ("not a bulk", b"*1\r\n:3\r\n", b"-ERR Protocol error: expected '$', got ':'"),
            ("bulk without CRLF", b"*1\r\n$4\r\nPINGxx", b"-ERR Protocol error"),
            ("unbalanced quotes", b'SET "a b\r\n', b"-ERR Protocol error: unbalanced quotes"),
        ]
        with Step("malformed RESP"):
            for name, data, want in cases:
                got = exchange(port, data)
                log("%-28s -> %r" % (name, got[:120]))
                self.assertNotIn(b"<open>", got, name + ": neither a reply nor a close")
                if want is not None:
                    self.assertTrue(got.startswith(want), (name, got))
                still_serving()
            # *-5: Redis skips a multibulk length <= 0 (no reply, the connection
            # goes on); an error and a close would do too. Never a hang.
            got = exchange(port, b"*-5\r\n*1\r\n$4\r\nPING\r\n", stop_at=b"+PONG\r\n")
            log("%-28s -> %r" % ("*-5 then PING", got[:120]))
            self.assertTrue(got == b"+PONG\r\n<open>" or got.startswith(b"-ERR Protocol error")
                            and not got.endswith(b"<open>"), got)
            still_serving()
            # a truncated frame, then close
            for data in (b"*3\r\n$3\r\nSET\r\n$1\r\nk", b"*2\r\n$3\r\nGE", b"*5\r\n"):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(data)
                s.close()
                still_serving()
            got = exchange(port, b"*3\r\n$3\r\nSET\r\n$1\r\nk", close_write=True)
            self.assertNotIn(b"<open>", got)
            # binary garbage
            rnd = random.Random(42)
            for i in range(20):
                garbage = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 4096)))
                got = exchange(port, garbage, close_write=True)
                self.assertNotIn(b"<open>", got)
            still_serving()
            # a whole 1 MiB of garbage without a newline, then a big inline line
            got = exchange(port, b"x" * (1 << 20))
            self.assertTrue(got.startswith(b"-ERR Protocol error: too big inline request"), got[:80])
            still_serving()

        def hx(name, data):
            got = exchange(hport, data)
            log("%-28s -> %r" % (name, got.split(b"\r\n", 1)[0][:100]))
            return got

        with Step("a value over the default 1 MiB limit"):
            big = b"v" * (1024 * 1024 + 1)
            self.assertEqual(c.cli(node, "-x", "SET", "toobig", stdin=big),
                             "ERR value too large (max 1048576 bytes)")
            self.assertEqual(c.cli(node, "-x", "SET", "justfits", stdin=big[:-1]), "OK")
            self.assertEqual(c.cli(L, "STRLEN", "justfits"), str(1024 * 1024))
            self.assertEqual(c.cli(L, "APPEND", "justfits", "x"),
                             "ERR value too large (max 1048576 bytes)")
            self.assertEqual(c.cli(L, "EXISTS", "toobig"), "0")
            still_serving()

        with Step("malformed HTTP"):
            got = hx("garbage request line", b"GARBAGE\x00\x01 nonsense\r\n\r\n")
            self.assertRegex(got, rb"^(HTTP/1\.1 400|)$|^HTTP/1\.1 400")
            still_serving()
            got = hx("20 KB header", b"GET /status HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
            self.assertTrue(got == b"" or got.startswith(b"HTTP/1.1 431"), got[:80])
            still_serving()
            got = hx("Content-Length 99999999999", b"PUT /kv/x HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n")
            self.assertTrue(got == b"" or got.startswith(b"HTTP/1.1 413"), got[:80])
            still_serving()
            got = hx("Content-Length 2000000", b"PUT /kv/x HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n")
            self.assertTrue(got == b"" or got.startswith(b"HTTP/1.1 413"), got[:80])
            got = hx("Content-Length -1", b"GET /status HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
            self.assertTrue(got == b"" or got.startswith(b"HTTP/1.1 400"), got[:80])
            got = hx("TLS hello on HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64)
            self.assertNotIn(b"<open>", got)
            still_serving()
            self.assertEqual(c.curl(node, "GET", "/kv/good"), (200, "still-here"))
            self.assertEqual(c.status(node)["node_id"], node)
            for n in c.nodes:
                self.assertTrue(c.nodes[n].alive(), "node %d died" % n)


class CraftkvLimitsTest(unittest.TestCase):
    """test_6: --max-key-size and --max-value-size, set below the store's
    own limits, apply to every key and every value of RESP commands (not
    only the first argument), with the right error for each, and to HTTP."""

    def test_6_configured_limits(self):
        c = Cluster(1, ["--quiet", "--max-key-size", "100", "--max-value-size", "50"])
        self.addCleanup(c.close)
        cli = c.cli
        problems = []

        def eq(got, want):
            if got != want:
                where = sys._getframe(1).f_lineno
                src = linecache.getline(__file__, where).strip()[:100]
                problems.append("line %d [%s]: got %.120r, want %r" % (where, src, got, want))

        with Step("configured key and value limits"):
            k60, k100, k101 = "k" * 60, "k" * 100, "k" * 101
            # a key longer than --max-value-size but within --max-key-size
            eq(cli(1, "SET", k60, "v"), "OK")
            eq(cli(1, "SET", k100, "v" * 50), "OK")
            eq(cli(1, "GET", k60), "v")
            eq(cli(1, "EXISTS", k60, k100), "2")
            eq(cli(1, "SET", k101, "v"), "ERR key too large (max 100 bytes)")
            # every key of a multi-key write, not only the first argument
            eq(cli(1, "MSET", "a", "1", k101, "v"), "ERR key too large (max 100 bytes)")
            eq(cli(1, "EXISTS", "a", k101), "0")
            eq(cli(1, "SET", "val", "v" * 51), "ERR value too large (max 50 bytes)")
            eq(cli(1, "MSET", "a", "1", "b", "v" * 51), "ERR value too large (max 50 bytes)")
            eq(cli(1, "EXISTS", "a", "b", "val"), "0")
            # APPEND may not grow a value past the limit
            eq(cli(1, "SET", "app", "v" * 50), "OK")
            eq(cli(1, "APPEND", "app", "x"), "ERR value too large (max 50 bytes)")
            eq(cli(1, "STRLEN", "app"), "50")
            eq(c.curl(1, "PUT", "/kv/" + k101, "v")[0], 400)
            eq(c.curl(1, "PUT", "/kv/val", "v" * 51)[0], 413)
            eq(c.curl(1, "PUT", "/kv/" + k60, "w")[0], 204)
            eq(cli(1, "KEYS", "*").split("\n").count(k101), 0)
        self.assertEqual(problems, [], "wrong replies:\n" + "\n".join(problems))


def _mget_ok(out):
    """MGET output if it is not an error (the node may be electing)."""
    if out.startswith(("CLUSTERDOWN", "TIMEOUT", "NOTLEADER", "ERR", "BUSY", "Could not connect")):
        return None
    return out


def main():
    global CRAFTKV
    if len(sys.argv) < 2 or not os.access(sys.argv[1], os.X_OK):
        sys.stderr.write("usage: test_craftkv.py PATH/TO/craftkv [unittest args]\n")
        return 2
    CRAFTKV = os.path.abspath(sys.argv[1])
    for tool in ("redis-cli", "redis-benchmark", "curl"):
        if shutil.which(tool) is None:
            sys.stderr.write("test_craftkv.py: %s is not installed (apt-get install "
                             "redis-tools curl)\n" % tool)
            return 1
    t0 = time.monotonic()
    prog = unittest.main(argv=[sys.argv[0]] + sys.argv[2:], exit=False, verbosity=2)
    log("total %.1f s" % (time.monotonic() - t0))
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
