"""Start, stop, kill, pause and restart the server processes of a test cluster.

A :class:`Cluster` owns N :class:`Node` processes and only ever signals the
processes it started, by pid.  How a server is launched, how the leader is
found and how a node's state hash is read are the business of a *flavor*:

* :class:`CraftkvFlavor` runs the real ``craftkv`` binary.  craftkv's flags
  are not final, so all of them are spelled in one place
  (:attr:`CraftkvFlavor.FLAGS`); if the binary exists its ``--help`` is read
  at start-up and any flag it does not mention is reported.
* :class:`FakeFlavor` runs ``fake_server.py`` (one node, linearizable or
  ``--buggy``) so the harness can be tested without craftkv.

Every wait is bounded: process exits, port polls and probes all have timeouts.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_ports(count, host="127.0.0.1"):
    """``count`` distinct TCP ports that were free a moment ago."""
    sockets, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


class Node:
    """One server process: its addresses, data directory, log and state."""

    def __init__(self, index, host, client_port, peer_port, http_port, data_dir, log_path):
        self.index = index
        self.id = index + 1                 # Raft ids start at 1
        self.host = host
        self.client_port = client_port
        self.peer_port = peer_port
        self.http_port = http_port
        self.data_dir = data_dir
        self.log_path = log_path
        self.netns = None                   # set by a partition network, if any
        self.proc = None
        self.paused = False
        self.starts = 0                     # how many times it was started

    @property
    def name(self):
        return "n%d" % self.id

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def __repr__(self):
        return "%s(%s:%d)" % (self.name, self.host, self.client_port)


class Flavor:
    """How to run one kind of server.  Subclasses override what they support."""

    name = "server"

    def argv(self, node, cluster):
        raise NotImplementedError

    def notes(self):
        """Warnings found while preparing (e.g. flags the binary lacks)."""
        return []

    def leader(self, cluster):
        """The index of the node that is leader now, or ``None`` if unknown."""
        return None

    def state_hash(self, node):
        """(hash, applied index or None) of the node's state, or ``None`` if
        unsupported or unreachable."""
        return None

    def sync_read(self, node):
        """A linearizable read on ``node`` so that it has applied everything
        committed before (used before comparing state hashes)."""
        try:
            resp_command(node.host, node.client_port, "GET", "__converge", timeout=5.0)
        except Exception:  # noqa: BLE001 - the hash poll decides
            pass


def resp_command(host, port, *args, timeout=1.0):
    """Send one RESP command and return the reply (see driver.RespClient)."""
    from driver import RespClient  # local import: driver imports nothing from here
    client = RespClient(host, port, timeout=timeout)
    try:
        return client.call(*args)
    finally:
        client.close()


class AdminError(RuntimeError):
    """An admin call (HTTP) failed or its outcome could not be confirmed."""


class CraftkvFlavor(Flavor):
    """The real craftkv server (``craftkv --help``; docs/craftkv.md).

    Every flag is in :attr:`FLAGS`, a map from meaning to spelling; the
    command line is built only in :meth:`argv`.  If the binary exists its
    ``--help`` is read and any flag it does not mention becomes a note.

    A node is bootstrapped (``--peers`` with every member) only the first time
    it starts; every later start passes ``--join``, which craftkv ignores when
    the data directory holds the group (it restarts from disk) and which makes
    a wiped node wait to be added instead of bootstrapping a second cluster.

    The HTTP API gives the leader probe (``GET /status``), the state hash
    (``GET /hash``) and the admin hooks the nemesis uses: leader transfer
    (``POST /admin/transfer/ID``) and membership (``POST /members/ID`` with
    the raft address as body, ``DELETE /members/ID``), each sent to the
    current leader and confirmed through its ``/status``.
    """

    name = "craftkv"
    FLAGS = {
        "id": "--id",                    # this node's Raft id
        "data": "--data",                # data directory (WAL, snapshots, LMDB)
        "peers": "--peers",              # id=ip:raftport,... (every initial member)
        "resp": "--resp",                # ip:port for RESP clients
        "http": "--http",                # ip:port for the HTTP API
        "raft": "--raft",                # ip:port for raft traffic
        "join": "--join",                # start empty, wait to be added
        "lease": "--lease-reads",        # lease reads instead of ReadIndex
    }
    STATUS_PATH = "/status"
    HASH_PATH = "/hash"

    def __init__(self, binary, reads="index", extra_args=()):
        self.binary = binary
        self.reads = reads
        self.extra_args = list(extra_args)
        self.help_text = None
        self._notes = []
        if os.path.exists(binary):
            try:
                done = subprocess.run([binary, "--help"], capture_output=True, text=True,
                                      timeout=5)
                self.help_text = done.stdout + done.stderr
            except (OSError, subprocess.TimeoutExpired) as error:
                self._notes.append("%s --help failed: %s" % (binary, error))
            if self.help_text is not None:
                missing = [flag for flag in self.FLAGS.values() if flag not in self.help_text]
                if missing:
                    self._notes.append("craftkv --help does not mention: " + " ".join(missing))
        else:
            self._notes.append("craftkv binary not found at %s" % binary)

    def notes(self):
        return list(self._notes)

    def argv(self, node, cluster):
        f = self.FLAGS
        peers = ",".join("%d=%s:%d" % (n.id, n.host, n.peer_port) for n in cluster.nodes)
        argv = [self.binary,
                f["id"], str(node.id),
                f["data"], node.data_dir,
                f["peers"], peers,
                f["resp"], "%s:%d" % (node.host, node.client_port),
                f["http"], "%s:%d" % (node.host, node.http_port),
                f["raft"], "%s:%d" % (node.host, node.peer_port)]
        if node.starts > 0:
            argv.append(f["join"])
        if self.reads == "lease":
            argv.append(f["lease"])
        return argv + self.extra_args

    # -- HTTP ------------------------------------------------------------

    @staticmethod
    def http(node, method, path, body=None, timeout=2.0):
        """(status, body text) of one HTTP request to ``node``; OSError if unreachable."""
        url = "http://%s:%d%s" % (node.host, node.http_port, path)
        data = body.encode() if isinstance(body, str) else body
        request = urllib.request.Request(url, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def status(self, node, timeout=1.0):
        """The node's ``/status`` document (a dict), or ``None``."""
        if not node.alive or node.paused:
            return None
        try:
            code, text = self.http(node, "GET", self.STATUS_PATH, timeout=timeout)
            return json.loads(text) if code == 200 else None
        except (OSError, ValueError):
            return None

    def leader(self, cluster):
        """The node that says it leads; among several (a stale one behind a
        partition), the one with the highest term."""
        best = None
        for node in cluster.nodes:
            status = self.status(node)
            if status and status.get("role") == "leader":
                if best is None or status.get("term", 0) > best[1]:
                    best = (node.index, status.get("term", 0))
        return None if best is None else best[0]

    def state_hash(self, node):
        """(hash, applied index) from ``GET /hash``, or ``None``."""
        if not node.alive or node.paused:
            return None
        try:
            code, text = self.http(node, "GET", self.HASH_PATH, timeout=2.0)
            doc = json.loads(text) if code == 200 else None
        except (OSError, ValueError):
            return None
        return None if not doc else (doc.get("hash"), doc.get("applied"))

    def voters(self, cluster, timeout=1.0):
        """The voter ids in the current leader's configuration, or ``None``."""
        i = self.leader(cluster)
        status = self.status(cluster.nodes[i], timeout) if i is not None else None
        if not status or status.get("role") != "leader":
            return None
        return {m["id"] for m in status.get("members", []) if m.get("voter")}

    def _on_leader(self, cluster, method, path, body=None, deadline=20.0):
        """Send an admin call to the leader, retrying (other leader, none yet)
        until it answers 200 or ``deadline`` seconds pass.  Returns the reply
        text; raises AdminError with the last answer otherwise.  A retry after
        a timeout is safe for the calls used here: they are idempotent in
        effect, and their outcome is confirmed by the caller through /status.
        """
        end = time.monotonic() + deadline
        last = "no leader"
        while time.monotonic() < end:
            i = self.leader(cluster)
            if i is not None:
                try:
                    code, text = self.http(cluster.nodes[i], method, path, body,
                                           timeout=max(1.0, min(8.0, end - time.monotonic())))
                except OSError as error:
                    code, text = None, str(error)
                if code == 200:
                    return text.strip()
                last = "%s %s on %s: %s %s" % (method, path, cluster.nodes[i].name, code,
                                              str(text).strip()[:200])
            time.sleep(0.2)
        raise AdminError(last)

    def _wait_voters(self, cluster, predicate, deadline=10.0):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            voters = self.voters(cluster)
            if voters is not None and predicate(voters):
                return voters
            time.sleep(0.1)
        return None

    # -- the nemesis' admin hooks ------------------------------------------

    def transfer(self, cluster, target):
        """Ask the leader to hand leadership to node ``target`` (an index)."""
        node = cluster.nodes[target]
        return self._on_leader(cluster, "POST", "/admin/transfer/%d" % node.id, deadline=8.0)

    def remove_member(self, cluster, i):
        """Remove node ``i`` from the configuration; confirmed by the leader's
        /status (AdminError if it cannot be confirmed: then the node may still
        be a voter, and its data must not be wiped)."""
        node = cluster.nodes[i]
        try:
            self._on_leader(cluster, "DELETE", "/members/%d" % node.id)
        except AdminError:
            pass            # it may have applied anyway: /status decides
        if self._wait_voters(cluster, lambda v: node.id not in v) is None:
            raise AdminError("%s is still a voter (or no leader) after DELETE /members/%d"
                             % (node.name, node.id))

    def add_member(self, cluster, i):
        """Add node ``i`` back (it must run, started with ``--join`` if wiped)."""
        node = cluster.nodes[i]
        if self._wait_voters(cluster, lambda v: node.id in v, deadline=0.5) is not None:
            return
        last = None
        for _ in range(3):
            try:
                self._on_leader(cluster, "POST", "/members/%d" % node.id,
                                "%s:%d" % (node.host, node.peer_port))
            except AdminError as error:
                last = error
            if self._wait_voters(cluster, lambda v: node.id in v, deadline=5.0) is not None:
                return
        raise AdminError("%s not a voter after POST /members/%d: %s" % (node.name, node.id, last))


class FakeFlavor(Flavor):
    """``fake_server.py``: one node that is always the leader."""

    name = "fake"

    def __init__(self, buggy=False):
        self.buggy = buggy

    def argv(self, node, cluster):
        argv = [sys.executable, os.path.join(HERE, "fake_server.py"),
                "--host", node.host, "--port", str(node.client_port),
                "--data", os.path.join(node.data_dir, "state.json")]
        return argv + (["--buggy"] if self.buggy else [])

    def leader(self, cluster):
        node = cluster.nodes[0]
        return 0 if node.alive and not node.paused else None

    def state_hash(self, node):
        try:
            reply = resp_command(node.host, node.client_port, "STATEHASH")
        except Exception:  # noqa: BLE001 - any failure means "no hash"
            return None
        return (reply, None) if isinstance(reply, str) else None


class Cluster:
    """N server processes under ``workdir`` (one data dir and log per node)."""

    def __init__(self, flavor, size, workdir, host="127.0.0.1"):
        self.flavor = flavor
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        ports = free_ports(3 * size)
        self.nodes = []
        for i in range(size):
            # A run starts from empty nodes: data left by an earlier run in
            # the same directory would restart the old cluster, whose address
            # book names ports that are gone (no leader ever).
            shutil.rmtree(os.path.join(workdir, "n%d" % (i + 1)), ignore_errors=True)
            data_dir = os.path.join(workdir, "n%d" % (i + 1), "data")
            os.makedirs(data_dir, exist_ok=True)
            self.nodes.append(Node(i, host, ports[3 * i], ports[3 * i + 1], ports[3 * i + 2],
                                   data_dir, os.path.join(workdir, "n%d" % (i + 1), "log")))

    def client_addresses(self):
        return [(n.host, n.client_port) for n in self.nodes]

    # -- processes ---------------------------------------------------------

    def start(self, i):
        """Start node ``i`` (no-op if it runs)."""
        node = self.nodes[i]
        if node.alive:
            return
        argv = self.flavor.argv(node, self)
        if node.netns:
            argv = ["ip", "netns", "exec", node.netns] + argv
        os.makedirs(node.data_dir, exist_ok=True)
        with open(node.log_path, "ab") as log:
            log.write(("--- start %d: %s\n" % (node.starts + 1, " ".join(argv))).encode())
            log.flush()
            node.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        node.starts += 1
        node.paused = False

    def start_all(self):
        for i in range(len(self.nodes)):
            self.start(i)

    def wait_ready(self, i, timeout=10.0):
        """Wait until node ``i`` accepts connections; True if it did in time."""
        node = self.nodes[i]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not node.alive:
                return False
            try:
                with socket.create_connection((node.host, node.client_port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def wait_all_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        return all(self.wait_ready(i, max(0.1, deadline - time.monotonic()))
                   for i in range(len(self.nodes)))

    def _signal(self, i, sig):
        node = self.nodes[i]
        if node.alive:
            os.kill(node.pid, sig)

    def kill(self, i, timeout=5.0):
        """``kill -9`` node ``i`` and reap it."""
        node = self.nodes[i]
        if node.proc is None:
            return
        if node.paused:
            self._signal(i, signal.SIGCONT)
        self._signal(i, signal.SIGKILL)
        try:
            node.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        node.paused = False

    def stop(self, i, timeout=5.0):
        """Stop node ``i`` gracefully (SIGTERM), or with SIGKILL after ``timeout``."""
        node = self.nodes[i]
        if node.proc is None:
            return
        if node.paused:
            self.resume(i)
        self._signal(i, signal.SIGTERM)
        try:
            node.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(i)

    def stop_all(self, timeout=5.0):
        for i in range(len(self.nodes)):
            self.stop(i, timeout)

    def pause(self, i):
        """SIGSTOP node ``i``: it keeps its sockets but does nothing."""
        self._signal(i, signal.SIGSTOP)
        self.nodes[i].paused = True

    def resume(self, i):
        self._signal(i, signal.SIGCONT)
        self.nodes[i].paused = False

    def wipe(self, i):
        """Remove node ``i``'s data directory; the node must not be running."""
        node = self.nodes[i]
        if node.alive:
            raise RuntimeError("wipe of running node %s" % node.name)
        shutil.rmtree(node.data_dir, ignore_errors=True)
        os.makedirs(node.data_dir, exist_ok=True)
        with open(node.log_path, "ab") as log:
            log.write(b"--- data directory wiped\n")

    # -- probes --------------------------------------------------------------

    def leader(self):
        return self.flavor.leader(self)

    def wait_leader(self, timeout):
        """Poll for a leader; return (index or None, seconds waited)."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            leader = self.leader()
            now = time.monotonic()
            if leader is not None or now >= deadline:
                return leader, now - start
            time.sleep(0.1)

    def state_hashes(self):
        """{node name: hash or None} for every running node."""
        return {n.name: self.flavor.state_hash(n) for n in self.nodes if n.alive}
