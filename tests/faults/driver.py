"""Workload driver: concurrent RESP clients that record a history.

N client threads each issue random GET / SET / CAS commands over a small set
of keys against the cluster's nodes, and record every operation twice in a
:class:`History`: an ``invoke`` event before the command is sent and a
completion (``ok``, ``fail`` or ``info``) when its outcome is known.  The
format is the one :mod:`checker` reads.

How an outcome is classified (:func:`classify`):

* ``ok``: ``+OK`` for SET, a bulk string or nil for GET, ``:1`` for CAS.
* ``fail`` (certainly not applied): the connection could not be opened, so
  nothing was sent; an error reply listed in ``DEFINITE_ERRORS`` (the server
  guarantees such a command was not applied: only ``-NOTLEADER``); ``:0`` for
  CAS (it did not swap; recorded with ``"error": "mismatch"``).
* ``info`` (unknown): a timeout or lost connection after the command was
  sent, or any other reply.  The command may or may not have been applied.

Every SET and CAS writes a value no other operation writes (``"<process>-<n>"``),
which is what makes "no acknowledged write was lost" a consequence of the
final reads being linearizable.

Nothing here blocks without a bound: every socket has a timeout.
"""

import json
import random
import socket
import threading
import time

# Error replies after which the command was certainly not applied, as
# prefixes.  This list decides what the checker may assume, so it holds only
# what craftkv guarantees (src/kv/server.c host_error_text, src/host/group.c):
#
# * ``-NOTLEADER the leader is node N`` is only ever the answer to a proposal
#   or read that the raft core refused on the spot (CRAFT_ENOTLEADER /
#   CRAFT_EDROPPED from craft_raft_propose with a leader known): the command
#   entered no log.  Definite.
# * ``-CLUSTERDOWN no leader: ...`` is returned for a refusal with no leader
#   known, and for a request that waited for a leader until its timeout
#   without ever being proposed (CRAFT_ENOLEADER: the host tells it apart
#   from a proposal that entered a log and then timed out, which is
#   ``-TIMEOUT``).  Definite.
# * ``-TIMEOUT ...`` (the server's own request timeout): unknown.
# * ``-BUSY``, ``-SHUTDOWN``, ``-ERR <host error>``: unknown (not needed to be
#   definite, and "unknown" is always sound for the checker).
#
# The fake server (fake_server.py) never answers an error to GET/SET/CAS.
DEFINITE_ERRORS = ("NOTLEADER", "CLUSTERDOWN")

DEFAULT_TIMEOUT = 1.0


class ConnectFailed(Exception):
    """The connection could not be opened: nothing was sent."""


class ReplyError(str):
    """An error reply (``-ERR ...``), returned rather than raised."""


class RespClient:
    """A minimal RESP client over one socket, every call bounded by ``timeout``.

    :meth:`call` sends one command and returns the reply: ``str`` for simple
    strings and bulk strings (decoded as UTF-8), ``int``, ``None`` for nil,
    ``list`` for arrays, :class:`ReplyError` for errors.  It raises
    :class:`ConnectFailed` if it could not connect (nothing sent), or
    ``OSError``/``EOFError`` if the connection failed after sending.
    """

    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT):
        self.address = (host, port)
        self.timeout = timeout
        self.sock = None
        self.buffer = b""

    def connect(self):
        if self.sock is not None:
            return
        try:
            self.sock = socket.create_connection(self.address, timeout=self.timeout)
        except OSError as error:
            raise ConnectFailed(str(error)) from None
        self.sock.settimeout(self.timeout)
        self.buffer = b""

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
                self.buffer = b""

    @staticmethod
    def encode(args):
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(parts)

    def call(self, *args):
        """Send one command and wait for its reply (see the class doc)."""
        self.connect()
        try:
            self.sock.sendall(self.encode(args))
            return self._read_reply()
        except BaseException:
            # The reply may still arrive later; never reuse this connection.
            self.close()
            raise

    def _read_line(self):
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
                return line
            self._fill()

    def _read_exact(self, n):
        while len(self.buffer) < n + 2:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n + 2:]
        return data

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server")
        self.buffer += chunk

    def _read_reply(self):
        line = self._read_line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return ReplyError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._read_exact(n).decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read_reply() for _ in range(n)]
        raise EOFError("malformed reply %r" % line[:80])


class History:
    """A thread-safe, append-only history written as JSON lines.

    Times are nanoseconds since the history was created (monotonic clock),
    taken under the same lock that appends, so file order is time order.
    """

    def __init__(self, path=None):
        self.t0 = time.monotonic_ns()
        self.lock = threading.Lock()
        self.events = []
        self.stream = open(path, "w", encoding="utf-8") if path else None

    def now(self):
        return time.monotonic_ns() - self.t0

    def record(self, event):
        """Stamp ``event`` with the current time, store it and return it."""
        with self.lock:
            event["time"] = self.now()
            self.events.append(event)
            if self.stream is not None:
                self.stream.write(json.dumps(event) + "\n")
        return event

    def close(self):
        with self.lock:
            if self.stream is not None:
                self.stream.close()
                self.stream = None


def classify(f, reply=None, error=None):
    """Map a reply (or the exception raised instead) to (type, value, error text).

    ``value`` is the read value for an ``ok`` read and ``None`` otherwise.
    """
    if error is not None:
        if isinstance(error, ConnectFailed):
            return "fail", None, "connect: %s" % error
        return "info", None, "%s: %s" % (type(error).__name__, error)
    if isinstance(reply, ReplyError):
        if reply.startswith(DEFINITE_ERRORS):
            return "fail", None, str(reply)
        return "info", None, str(reply)
    if f == "read":
        if reply is None or isinstance(reply, str):
            return "ok", reply, None
    elif f == "write":
        if reply == "OK":
            return "ok", None, None
    elif f == "cas":
        if reply == 1:
            return "ok", None, None
        if reply == 0:
            return "fail", None, "mismatch"
    return "info", None, "unexpected reply %r" % (reply,)


def leader_hint(reply):
    """Where a ``-NOTLEADER`` reply points: the node id of craftkv's
    ``NOTLEADER the leader is node N`` (an int), ``(host, port)`` for the
    ``NOTLEADER host:port`` form, or ``None``."""
    parts = str(reply).split()
    if not parts or parts[0] != "NOTLEADER":
        return None
    if len(parts) >= 2 and ":" in parts[1]:
        host, _, port = parts[1].rpartition(":")
        if port.isdigit():
            return host, int(port)
    if len(parts) >= 2 and parts[-2] == "node" and parts[-1].isdigit():
        return int(parts[-1])
    return None


class Workload:
    """What the clients do: keys, the mix of operations, timeouts."""

    def __init__(self, keys=10, read=0.5, write=0.3, cas=0.2, timeout=DEFAULT_TIMEOUT,
                 max_ops=None, stagger=0.0):
        self.keys = ["k%d" % i for i in range(keys)]
        total = read + write + cas
        self.weights = (read / total, write / total, cas / total)
        self.timeout = timeout
        self.max_ops = max_ops          # across all clients; None: until stopped
        self.stagger = stagger          # max seconds of random pause between ops


class Driver:
    """Run a :class:`Workload` with ``clients`` threads against ``nodes``.

    ``nodes`` is a list of (host, port) for the clients' RESP connections.
    Each client sticks to a node until an operation there fails or is unknown
    (or, rarely, at random), then moves to the node a ``NOTLEADER`` reply
    named or to a random one.
    """

    def __init__(self, nodes, history, workload, clients=5, seed=0):
        self.nodes = list(nodes)
        self.history = history
        self.workload = workload
        self.clients = clients
        self.seed = seed
        self.stop_event = threading.Event()
        self.threads = []
        self.count_lock = threading.Lock()
        self.issued = 0

    # -- client threads --------------------------------------------------

    def start(self):
        for process in range(self.clients):
            thread = threading.Thread(target=self._client, args=(process,),
                                      name="client-%d" % process, daemon=True)
            self.threads.append(thread)
            thread.start()

    def stop(self, timeout=None):
        """Ask the clients to stop and wait for them (each op is bounded)."""
        self.stop_event.set()
        bound = timeout if timeout is not None else 5 * self.workload.timeout + 5
        deadline = time.monotonic() + bound
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return all(not t.is_alive() for t in self.threads)

    def wait(self, timeout):
        """Wait until the clients finished (``max_ops`` reached) or ``timeout``."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return all(not t.is_alive() for t in self.threads)

    def _take_ticket(self):
        with self.count_lock:
            if self.workload.max_ops is not None and self.issued >= self.workload.max_ops:
                return False
            self.issued += 1
            return True

    def _client(self, process):
        rng = random.Random(self.seed * 1_000_003 + process)
        workload = self.workload
        node = rng.randrange(len(self.nodes))
        conns = {}
        known = {}                       # key -> last value this client saw or wrote
        counter = 0
        try:
            while not self.stop_event.is_set() and self._take_ticket():
                key = rng.choice(workload.keys)
                f = rng.choices(("read", "write", "cas"), workload.weights)[0]
                if f == "cas" and known.get(key) is None:
                    f = "read"
                counter += 1
                new = "%d-%d" % (process, counter)
                if f == "read":
                    args, value = ("GET", key), None
                elif f == "write":
                    args, value = ("SET", key, new), new
                else:
                    args, value = ("CAS", key, known[key], new), [known[key], new]
                if node not in conns:
                    conns[node] = RespClient(*self.nodes[node], timeout=workload.timeout)
                outcome, reply = self.invoke(conns[node], process, f, key, value, args)
                if outcome["type"] == "ok":
                    known[key] = outcome["value"] if f == "read" else new
                elif outcome.get("error") != "mismatch":
                    hint = leader_hint(reply) if isinstance(reply, ReplyError) else None
                    if isinstance(hint, int) and 1 <= hint <= len(self.nodes):
                        node = hint - 1         # node ids are 1..N in list order
                    elif hint in self.nodes:
                        node = self.nodes.index(hint)
                    else:
                        node = rng.randrange(len(self.nodes))
                    # Back off a little so that a dead node is not hammered.
                    self.stop_event.wait(rng.uniform(0.01, 0.05))
                if rng.random() < 0.05:
                    node = rng.randrange(len(self.nodes))
                if workload.stagger:
                    self.stop_event.wait(rng.random() * workload.stagger)
        finally:
            for conn in conns.values():
                conn.close()

    def invoke(self, conn, process, f, key, value, args):
        """Run one operation on ``conn`` and record it; return (completion, reply)."""
        self.history.record({"process": process, "type": "invoke", "f": f, "key": key,
                             "value": value, "node": "%s:%d" % conn.address})
        reply = error = None
        try:
            reply = conn.call(*args)
        except (ConnectFailed, OSError, EOFError, ValueError) as caught:
            error = caught
        type_, read_value, text = classify(f, reply, error)
        event = {"process": process, "type": type_, "f": f, "key": key,
                 "value": read_value if f == "read" else value}
        if text:
            event["error"] = text
        return self.history.record(event), reply

    # -- final reads -----------------------------------------------------

    def final_reads(self, timeout):
        """Read every key once successfully (trying every node) within ``timeout``.

        Each attempt is recorded (process ``"final"``), so the checker judges
        the final values with the rest of the history: an acknowledged write
        that was lost makes the final read of its key non-linearizable.
        Returns {key: value} for the keys that were read.
        """
        deadline = time.monotonic() + timeout
        values = {}
        attempt = 0
        conns = [RespClient(host, port, timeout=self.workload.timeout)
                 for host, port in self.nodes]
        try:
            for key in self.workload.keys:
                while key not in values and time.monotonic() < deadline:
                    conn = conns[attempt % len(conns)]
                    attempt += 1
                    done, _ = self.invoke(conn, "final", "read", key, None, ("GET", key))
                    if done["type"] == "ok":
                        values[key] = done["value"]
                    elif attempt % len(conns) == 0:
                        time.sleep(0.1)
        finally:
            for conn in conns:
                conn.close()
        return values
