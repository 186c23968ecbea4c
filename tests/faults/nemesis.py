"""The nemesis: faults injected into a running cluster, on a schedule.

A fault is a small class with ``supported()``, ``start()`` and ``heal()``
(see :class:`Fault`); the :class:`Nemesis` thread alternates quiet periods and
fault windows, picking a supported fault at random by weight, and records
each window (name, description, start and end times in the history's clock).

Faults available now:

* :class:`KillFault` -- ``kill -9`` a node (the leader more often), restart it
  when the window ends.
* :class:`PauseFault` -- SIGSTOP a node (the leader more often), SIGCONT it
  at the end: the node keeps its sockets but answers nothing, and may wake up
  believing it is still leader.
* :class:`PartitionFault` -- network partitions: majority/minority halves,
  the leader isolated, or a bridge (one node sees both halves, which do not
  see each other).  Each node runs in its own network namespace (see
  :class:`Network`); a partition is a set of ``blackhole`` routes inside the
  namespaces, so only iproute2 is needed.  Where namespaces cannot be created
  the fault reports "unsupported" and is never scheduled.

Faults that need the server's admin interface are pluggable:
:class:`LeaderTransferFault`, :class:`MembershipFault` and :class:`WipeFault`
take callables (craftkv's HTTP API through :class:`cluster.CraftkvFlavor`)
and report "unsupported" without them.
"""

import os
import subprocess
import threading


class Fault:
    """One kind of fault.  ``start`` returns a description, ``heal`` undoes it."""

    name = "fault"

    def __init__(self, weight=1.0):
        self.weight = weight

    def supported(self, cluster):
        """(True, "") or (False, reason)."""
        return True, ""

    def start(self, cluster, rng):
        """Inject the fault; return a description (``None``: nothing to do)."""
        raise NotImplementedError

    def heal(self, cluster):
        """Undo the fault (idempotent)."""


def pick_node(cluster, rng, leader_bias=0.5, want=None):
    """A node index: the leader with probability ``leader_bias`` if known, else random.

    ``want`` filters candidates (e.g. only running nodes).
    """
    candidates = [n.index for n in cluster.nodes if want is None or want(n)]
    if not candidates:
        return None
    if rng.random() < leader_bias:
        leader = cluster.leader()
        if leader in candidates:
            return leader
    return rng.choice(candidates)


class KillFault(Fault):
    """kill -9 a node; restart it when healed."""

    name = "kill"

    def __init__(self, weight=1.0, leader_bias=0.5):
        super().__init__(weight)
        self.leader_bias = leader_bias
        self.victim = None

    def start(self, cluster, rng):
        i = pick_node(cluster, rng, self.leader_bias, want=lambda n: n.alive)
        if i is None:
            return None
        was_leader = cluster.leader() == i
        cluster.kill(i)
        self.victim = i
        return "kill -9 %s%s" % (cluster.nodes[i].name, " (leader)" if was_leader else "")

    def heal(self, cluster):
        if self.victim is not None:
            i, self.victim = self.victim, None
            cluster.start(i)
            if not cluster.wait_ready(i, timeout=10.0):
                raise RuntimeError("%s did not restart (see its log)" % cluster.nodes[i].name)


class PauseFault(Fault):
    """SIGSTOP a node; SIGCONT it when healed."""

    name = "pause"

    def __init__(self, weight=1.0, leader_bias=0.5):
        super().__init__(weight)
        self.leader_bias = leader_bias
        self.victim = None

    def start(self, cluster, rng):
        i = pick_node(cluster, rng, self.leader_bias,
                      want=lambda n: n.alive and not n.paused)
        if i is None:
            return None
        was_leader = cluster.leader() == i
        cluster.pause(i)
        self.victim = i
        return "pause %s%s" % (cluster.nodes[i].name, " (leader)" if was_leader else "")

    def heal(self, cluster):
        if self.victim is not None:
            cluster.resume(self.victim)
            self.victim = None


# ---------------------------------------------------------------------------
# Network partitions.

def _run(argv, timeout=10):
    """Run a command with a bound; raise RuntimeError with its stderr on failure."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RuntimeError("%s: %s" % (" ".join(argv), error)) from None
    if done.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), done.stderr.strip()))
    return done.stdout


class Network:
    """Network namespaces for the nodes, joined by a bridge in the root namespace.

    Node i runs in namespace ``craft<tag>n<i>`` with address 10.77.S.(i+1)/24;
    the bridge holds 10.77.S.254, so clients in the root namespace reach every
    node whatever the partition.  ``apply({a: {b, ...}})`` makes a drop every
    packet to b (and the caller passes both directions); ``heal`` removes it.
    """

    def __init__(self, size, tag=None):
        self.size = size
        self.tag = tag if tag is not None else os.getpid() % 10000
        self.subnet = "10.77.%d" % (20 + os.getpid() % 200)
        self.bridge = "crb%d" % self.tag
        self.namespaces = ["craft%dn%d" % (self.tag, i) for i in range(size)]
        self.routes = []            # (namespace, address) blackholes in place
        self.created = False

    @staticmethod
    def probe():
        """(True, "") if namespaces and bridges can be made here, else (False, reason)."""
        if os.geteuid() != 0:
            return False, "network namespaces need root"
        name = "craftprobe%d" % os.getpid()
        try:
            _run(["ip", "netns", "add", name])
        except RuntimeError as error:
            return False, "cannot create a network namespace (%s)" % error
        try:
            _run(["ip", "netns", "del", name])
            _run(["ip", "link", "add", "crp%d" % (os.getpid() % 10000), "type", "bridge"])
            _run(["ip", "link", "del", "crp%d" % (os.getpid() % 10000)])
        except RuntimeError as error:
            return False, "cannot create a bridge (%s)" % error
        return True, ""

    def address(self, i):
        return "%s.%d" % (self.subnet, i + 1)

    def setup(self, cluster):
        """Create the namespaces and move the cluster's nodes into them.

        Must run before the nodes start: it changes each node's host.
        """
        self.created = True
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", "%s.254/24" % self.subnet, "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])
        for i, ns in enumerate(self.namespaces):
            outer, inner = "crv%dx%d" % (self.tag, i), "crv%dy%d" % (self.tag, i)
            _run(["ip", "netns", "add", ns])
            _run(["ip", "link", "add", outer, "type", "veth", "peer", "name", inner])
            _run(["ip", "link", "set", inner, "netns", ns])
            _run(["ip", "link", "set", outer, "master", self.bridge])
            _run(["ip", "link", "set", outer, "up"])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            _run(["ip", "-n", ns, "addr", "add", "%s/24" % self.address(i), "dev", inner])
            _run(["ip", "-n", ns, "link", "set", inner, "up"])
            node = cluster.nodes[i]
            node.host = self.address(i)
            node.netns = ns

    def apply(self, grudge):
        """``grudge``: {i: set of j} -- node i drops every packet to node j."""
        for i, others in grudge.items():
            for j in others:
                _run(["ip", "-n", self.namespaces[i], "route", "add", "blackhole",
                      "%s/32" % self.address(j)])
                self.routes.append((self.namespaces[i], self.address(j)))

    def heal(self):
        while self.routes:
            ns, address = self.routes.pop()
            try:
                _run(["ip", "-n", ns, "route", "del", "blackhole", "%s/32" % address])
            except RuntimeError:
                pass

    def teardown(self):
        """Remove everything :meth:`setup` made (veth pairs go with their namespace)."""
        if not self.created:
            return
        self.heal()
        for ns in self.namespaces:
            try:
                _run(["ip", "netns", "del", ns])
            except RuntimeError:
                pass
        try:
            _run(["ip", "link", "del", self.bridge])
        except RuntimeError:
            pass
        self.created = False


def grudge_between(side_a, side_b):
    """Both directions: every node of ``side_a`` drops ``side_b`` and vice versa."""
    grudge = {}
    for a in side_a:
        grudge.setdefault(a, set()).update(side_b)
    for b in side_b:
        grudge.setdefault(b, set()).update(side_a)
    return grudge


class PartitionFault(Fault):
    """Split the network: ``halves``, ``isolate-leader`` or ``bridge``."""

    name = "partition"
    KINDS = ("halves", "isolate-leader", "bridge")

    def __init__(self, network, weight=1.0, kinds=KINDS):
        super().__init__(weight)
        self.network = network
        self.kinds = kinds
        self.reason = None if network is not None else "no network namespaces"

    def supported(self, cluster):
        if self.network is None:
            return False, self.reason
        if len(cluster.nodes) < 3:
            return False, "partitions need at least 3 nodes"
        return True, ""

    def start(self, cluster, rng):
        n = len(cluster.nodes)
        names = [node.name for node in cluster.nodes]
        order = list(range(n))
        rng.shuffle(order)
        kind = rng.choice(self.kinds)
        if kind == "isolate-leader":
            leader = cluster.leader()
            if leader is None:
                kind = "halves"
            else:
                rest = [i for i in order if i != leader]
                self.network.apply(grudge_between([leader], rest))
                return "isolate leader %s" % names[leader]
        if kind == "bridge":
            middle, rest = order[0], order[1:]
            half = len(rest) // 2
            self.network.apply(grudge_between(rest[:half], rest[half:]))
            return "bridge via %s: %s | %s" % (
                names[middle], ",".join(names[i] for i in rest[:half]),
                ",".join(names[i] for i in rest[half:]))
        minority = order[: (n - 1) // 2]
        majority = order[(n - 1) // 2:]
        self.network.apply(grudge_between(minority, majority))
        return "partition %s | %s" % (",".join(names[i] for i in minority),
                                      ",".join(names[i] for i in majority))

    def heal(self, cluster):
        if self.network is not None:
            self.network.heal()


# ---------------------------------------------------------------------------
# Faults that need the server's admin interface (craftkv: HTTP, see
# CraftkvFlavor.transfer / remove_member / add_member).  Each takes callables;
# without them it is unsupported.

class LeaderTransferFault(Fault):
    """Ask the leader to hand over to another node: ``transfer(cluster, target)``.

    A refused or timed-out transfer (the target lags, an election intervenes)
    is not an error of the system under test: it is noted in the description.
    """

    name = "transfer"

    def __init__(self, transfer=None, weight=1.0):
        super().__init__(weight)
        self.transfer = transfer

    def supported(self, cluster):
        if self.transfer is None:
            return False, "leader transfer needs the server's admin API"
        return True, ""

    def start(self, cluster, rng):
        leader = cluster.leader()
        targets = [n.index for n in cluster.nodes
                   if n.alive and not n.paused and n.index != leader]
        if leader is None or not targets:
            return None
        target = rng.choice(targets)
        description = "transfer leadership %s -> %s" % (cluster.nodes[leader].name,
                                                         cluster.nodes[target].name)
        try:
            self.transfer(cluster, target)
        except Exception as error:  # noqa: BLE001 - a refusal is an outcome, not a bug
            return "%s (not done: %s)" % (description, str(error)[:120])
        return description


class _Rejoin:
    """Shared by membership and wipe: remove node i (confirmed), wipe its data
    only once the removal is confirmed, restart it with ``--join`` and add it
    back.  If the removal cannot be confirmed the node keeps its data (a voter
    must never come back with an empty disk under its old id) and is restarted
    and re-added as it is."""

    def __init__(self, remove, add):
        self.remove, self.add = remove, add
        self.victim = None
        self.wiped = False

    def supported(self):
        if self.remove is None or self.add is None:
            return False, "membership changes need the server's admin API"
        return True, ""

    def remove_and_wipe(self, cluster, i, kill_first):
        self.victim, self.wiped = i, False
        if kill_first:
            cluster.kill(i)
        self.remove(cluster, i)         # raises if not confirmed: no wipe then
        cluster.kill(i)
        cluster.wipe(i)
        self.wiped = True

    def heal(self, cluster):
        if self.victim is None:
            return
        i, self.victim = self.victim, None
        if not cluster.nodes[i].alive:
            cluster.start(i)            # a restart always passes --join
            if not cluster.wait_ready(i, timeout=10.0):
                raise RuntimeError("%s did not restart" % cluster.nodes[i].name)
        self.add(cluster, i)            # no-op if it is (still) a voter


class MembershipFault(Fault):
    """Remove a running non-leader node from the configuration under load, stop
    it, wipe its data; when healed restart it with ``--join`` and add it back
    (it catches up from the leader, through a snapshot if the log was
    compacted).  ``remove(cluster, i)`` must confirm the removal or raise;
    ``add(cluster, i)`` must confirm the addition or raise."""

    name = "membership"

    def __init__(self, remove=None, add=None, weight=1.0):
        super().__init__(weight)
        self.rejoin = _Rejoin(remove, add)

    def supported(self, cluster):
        return self.rejoin.supported()

    def start(self, cluster, rng):
        leader = cluster.leader()
        if leader is None:
            return None
        i = pick_node(cluster, rng, 0.0,
                      want=lambda n: n.alive and not n.paused and n.index != leader)
        if i is None:
            return None
        self.rejoin.remove_and_wipe(cluster, i, kill_first=False)
        return "remove %s, wipe it, rejoin when healed" % cluster.nodes[i].name

    def heal(self, cluster):
        self.rejoin.heal(cluster)


class WipeFault(Fault):
    """Crash a node (kill -9, the leader sometimes), remove it from the
    configuration, wipe its data; when healed restart it with ``--join`` and
    add it back.  A voter must never restart with an empty disk under its old
    identity (it would forget its vote and its log), hence the membership
    round trip."""

    name = "wipe"

    def __init__(self, remove=None, add=None, weight=1.0, leader_bias=0.3):
        super().__init__(weight)
        self.rejoin = _Rejoin(remove, add)
        self.leader_bias = leader_bias

    def supported(self, cluster):
        ok, reason = self.rejoin.supported()
        return ok, reason.replace("membership changes", "wiping a node") if not ok else ""

    def start(self, cluster, rng):
        i = pick_node(cluster, rng, self.leader_bias, want=lambda n: n.alive and not n.paused)
        if i is None:
            return None
        was_leader = cluster.leader() == i
        self.rejoin.remove_and_wipe(cluster, i, kill_first=True)
        return "kill -9 %s%s, remove, wipe, rejoin when healed" % (
            cluster.nodes[i].name, " (leader)" if was_leader else "")

    def heal(self, cluster):
        self.rejoin.heal(cluster)


# ---------------------------------------------------------------------------

class Nemesis:
    """Alternate quiet periods and fault windows until stopped.

    ``quiet`` and ``hold`` are (min, max) seconds.  ``clock`` returns the
    history's time (ns), so fault windows line up with operations.  Faults
    that are not supported are listed in :attr:`unsupported` and never run.
    """

    def __init__(self, cluster, faults, rng, clock, quiet=(2.0, 5.0), hold=(2.0, 6.0)):
        self.cluster = cluster
        self.rng = rng
        self.clock = clock
        self.quiet, self.hold = quiet, hold
        self.faults, self.unsupported = [], {}
        for fault in faults:
            ok, reason = fault.supported(cluster)
            if ok:
                self.faults.append(fault)
            else:
                self.unsupported[fault.name] = reason
        self.windows = []           # {"fault", "description", "start", "end"}
        self.errors = []
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.thread = None
        self.active = None

    def start(self):
        if self.faults:
            self.thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
            self.thread.start()

    def _run(self):
        while not self.stop_event.wait(self.rng.uniform(*self.quiet)):
            fault = self.rng.choices(self.faults, [f.weight for f in self.faults])[0]
            with self.lock:
                if self.stop_event.is_set():
                    break
                started = self.clock()
                try:
                    description = fault.start(self.cluster, self.rng)
                except Exception as error:  # noqa: BLE001 - recorded, then healed
                    self.errors.append("%s start: %s" % (fault.name, error))
                    description = "failed: %s" % error
                if description is None:
                    continue
                self.active = {"fault": fault.name, "description": description,
                               "start": started, "end": None}
                self.windows.append(self.active)
                active_fault = fault
            self.stop_event.wait(self.rng.uniform(*self.hold))
            self._heal(active_fault)

    def _heal(self, fault):
        with self.lock:
            if self.active is None:
                return
            try:
                fault.heal(self.cluster)
            except Exception as error:  # noqa: BLE001
                self.errors.append("%s heal: %s" % (fault.name, error))
            self.active["end"] = self.clock()
            self.active = None

    def stop(self, timeout=30.0):
        """Stop scheduling, heal what is active; return the time of the last heal."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)
        for fault in self.faults:
            try:
                fault.heal(self.cluster)
            except Exception as error:  # noqa: BLE001
                self.errors.append("%s heal: %s" % (fault.name, error))
        with self.lock:
            if self.active is not None:
                self.active["end"] = self.clock()
                self.active = None
        ends = [w["end"] for w in self.windows if w["end"] is not None]
        return max(ends) if ends else None
