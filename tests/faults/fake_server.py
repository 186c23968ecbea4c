#!/usr/bin/env python3
"""A tiny single-process RESP key-value server for testing the harness.

It speaks the subset of craftkv's protocol the workload uses -- ``PING``,
``GET``, ``SET``, ``CAS key expected new`` (``:1`` swapped, ``:0`` not),
``STATEHASH`` (a hash of the whole state, the convergence hook's stand-in)
and ``QUIT`` -- and is linearizable: every command runs under one lock, and
with ``--data FILE`` the state is written to FILE (a new file renamed over the
old one) before a write is acknowledged, so a ``kill -9`` and restart lose no
acknowledged write.

``--buggy`` makes it serve stale reads, deterministically: every
``--stale-every``-th GET of a key that has been written at least twice
returns the key's previous value.  A history with one client is then
certainly not linearizable, whatever the timing.
"""

import argparse
import hashlib
import json
import os
import socketserver
import sys
import threading


class Store:
    """The state, its persistence and the (optionally buggy) commands."""

    def __init__(self, path=None, buggy=False, stale_every=3):
        self.lock = threading.Lock()
        self.path = path
        self.buggy = buggy
        self.stale_every = stale_every
        self.values = {}
        self.previous = {}          # key -> value before the last write
        self.reads = 0
        if path and os.path.exists(path):
            with open(path, "r", encoding="utf-8") as stream:
                saved = json.load(stream)
            self.values, self.previous = saved["values"], saved["previous"]

    def _save(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as stream:
            json.dump({"values": self.values, "previous": self.previous}, stream)
        os.replace(tmp, self.path)

    def _set(self, key, value):
        if key in self.values:
            self.previous[key] = self.values[key]
        self.values[key] = value
        self._save()

    def execute(self, args):
        """Run one command (a list of str); return a RESP-encoded reply."""
        if not args:
            return b"-ERR empty command\r\n"
        name = args[0].upper()
        with self.lock:
            if name == "PING":
                return b"+PONG\r\n"
            if name == "GET" and len(args) == 2:
                self.reads += 1
                value = self.values.get(args[1])
                if (self.buggy and args[1] in self.previous
                        and self.reads % self.stale_every == 0):
                    value = self.previous[args[1]]
                return bulk(value)
            if name == "SET" and len(args) == 3:
                self._set(args[1], args[2])
                return b"+OK\r\n"
            if name == "CAS" and len(args) == 4:
                if self.values.get(args[1]) != args[2]:
                    return b":0\r\n"
                self._set(args[1], args[3])
                return b":1\r\n"
            if name == "STATEHASH":
                data = json.dumps(self.values, sort_keys=True).encode()
                return bulk(hashlib.sha256(data).hexdigest())
        return b"-ERR unknown command or wrong number of arguments\r\n"


def bulk(value):
    if value is None:
        return b"$-1\r\n"
    data = value.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


class Handler(socketserver.StreamRequestHandler):
    """One connection: RESP arrays of bulk strings, or inline commands."""

    timeout = 300  # an idle connection is dropped, so no thread lives forever

    def read_command(self):
        line = self.rfile.readline()
        if not line:
            return None
        line = line.rstrip(b"\r\n")
        if not line.startswith(b"*"):
            return line.decode(errors="replace").split()
        args = []
        for _ in range(int(line[1:])):
            header = self.rfile.readline()
            if not header.startswith(b"$"):
                return None
            n = int(header[1:])
            data = self.rfile.read(n + 2)
            if len(data) != n + 2:
                return None
            args.append(data[:n].decode(errors="replace"))
        return args

    def handle(self):
        try:
            while True:
                args = self.read_command()
                if args is None:
                    return
                if args and args[0].upper() == "QUIT":
                    self.wfile.write(b"+OK\r\n")
                    return
                self.wfile.write(self.server.store.execute(args))
                self.wfile.flush()
        except (OSError, ValueError):
            return


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", help="file that holds the state across restarts")
    parser.add_argument("--buggy", action="store_true", help="serve stale reads sometimes")
    parser.add_argument("--stale-every", type=int, default=3)
    args = parser.parse_args(argv)
    server = Server((args.host, args.port), Handler)
    server.store = Store(args.data, args.buggy, args.stale_every)
    print("fake_server listening on %s:%d%s" % (args.host, args.port,
                                                " (buggy)" if args.buggy else ""),
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
