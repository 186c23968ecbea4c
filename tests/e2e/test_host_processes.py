#!/usr/bin/env python3
"""Three craft hosts as separate processes on loopback (issue 4).

Each host is a craft-host-node process (tests/e2e/host_node.c) with its own
data directory, driven line by line on stdin. The steps check, end to end
through real processes, what tests/unit/test_host.c checks inside one
process:

  1. elect and replicate: a leader is elected; proposals through every node
     apply; every node's linearizable read returns the same count and hash;
  2. restart from disk: all three stop cleanly and start again without
     --bootstrap; counts and hashes survive, and the cluster takes new
     entries (Raft thesis 3.8: persisted state survives restarts);
  3. crash of the leader: kill -9; another node is elected and serves
     proposals (Raft thesis 3.4); the crashed node restarts from disk and
     catches up;
  4. a new member after compaction: 300 more proposals with snapshots every
     50 entries and 10 kept behind, so the log no longer starts at 1; a
     fourth node joins and catches up through a snapshot (Raft thesis 5.3:
     InstallSnapshot), which its metrics show;
  5. remove a member and transfer leadership: the removed node is gone from
     every member list (Raft thesis 4.1); leadership moves to a chosen node
     (Raft thesis 3.10);
  6. 64 groups at once: a fresh cluster of three processes runs 64 groups;
     one proposal per group through different nodes; reads agree.

Waits poll with a deadline; a deadline is only a safety bound (generous), a
step fails when one passes. Only processes this test started are killed,
by pid; processes and temporary directories are always cleaned up.

Usage: test_host_processes.py PATH/TO/craft-host-node
"""

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "faults"))
from cluster import free_ports  # noqa: E402  (the fault harness's: ports free a moment ago)

DEADLINE = 20.0  # seconds: the safety bound of one wait
ANSWER_DEADLINE = 30.0  # seconds: one command's answer (requests time out at 5 s)
TOTAL_DEADLINE = 85.0  # seconds: the whole test; every wait also ends here
TEST_END = time.monotonic() + TOTAL_DEADLINE
SNAPSHOT_ENTRIES = 50
COMPACTION_OVERHEAD = 10


class StepFailed(Exception):
    pass


def bounded(seconds):
    """seconds, or less so that no wait outlives the whole test's bound."""
    left = TEST_END - time.monotonic()
    if left <= 0:
        raise StepFailed("the whole test ran past its %.0f s bound" % TOTAL_DEADLINE)
    return min(seconds, left)


def until(what, fn, deadline=DEADLINE):
    """Calls fn until it returns something true; fails the step if the
    deadline passes first. Returns what fn returned."""
    deadline = bounded(deadline)
    end = time.monotonic() + deadline
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > end:
            raise StepFailed("%s: not within %.0f s" % (what, deadline))
        time.sleep(0.05)


def parse_kv(answer):
    """'ok a=1 b=x' -> {'a': '1', 'b': 'x'}"""
    out = {}
    for tok in answer.split()[1:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            out[k] = v
    return out


def ids(field):
    return sorted(int(x) for x in field.split(",") if x)


class Node:
    def __init__(self, cluster, node_id, port):
        self.cluster = cluster
        self.id = node_id
        self.port = port
        self.address = "127.0.0.1:%d" % port
        self.data = os.path.join(cluster.tmp, "node%d" % node_id)
        self.log_path = os.path.join(cluster.tmp, "node%d.log" % node_id)
        self.proc = None
        self.lines = None

    def start(self, mode, peers):
        os.makedirs(self.data, exist_ok=True)
        args = [self.cluster.binary, "--id", str(self.id), "--listen", self.address,
                "--data", self.data, "--peers", peers, "--groups", str(self.cluster.groups),
                "--tick-ms", "10", "--snapshot-entries", str(SNAPSHOT_ENTRIES),
                "--compaction-overhead", str(COMPACTION_OVERHEAD)]
        if mode == "bootstrap":
            args.append("--bootstrap")
        elif mode == "join":
            args.append("--join")
        log = open(self.log_path, "a")
        log.write("---- start %s\n" % mode)
        log.flush()
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=log, text=True, bufsize=1)
        finally:
            log.close()
        self.lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc, self.lines), daemon=True).start()
        first = self._answer("start")
        if not first.startswith("ready "):
            raise StepFailed("node %d did not start: %r" % (self.id, first))

    @staticmethod
    def _read(proc, lines):
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def _answer(self, what):
        try:
            line = self.lines.get(timeout=bounded(ANSWER_DEADLINE))
        except queue.Empty:
            raise StepFailed("node %d: no answer to %r in time" % (self.id, what))
        if line is None:
            raise StepFailed("node %d exited (%s) during %r; log tail:\n%s"
                             % (self.id, self.proc.poll(), what, self.log_tail()))
        return line

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._answer(line)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self):
        """Clean stop through SIGTERM."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=bounded(DEADLINE))
        if rc != 0:
            raise StepFailed("node %d: exit status %d after SIGTERM" % (self.id, rc))
        self.proc = None

    def quit(self):
        """Clean stop through the command interface."""
        answer = self.cmd("quit")
        if answer != "ok":
            raise StepFailed("node %d: quit answered %r" % (self.id, answer))
        rc = self.proc.wait(timeout=bounded(DEADLINE))
        if rc != 0:
            raise StepFailed("node %d: exit status %d after quit" % (self.id, rc))
        self.proc = None

    def kill9(self):
        """A crash: SIGKILL to the pid this test started."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=bounded(DEADLINE))
        self.proc = None

    def cleanup(self):
        """Stops the process if it still runs: SIGTERM (a clean stop), then
        SIGKILL if it does not go."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self.proc = None

    def log_tail(self, n=15):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    # ---- requests ----

    def status(self, group=1):
        answer = self.cmd("status %d" % group)
        if not answer.startswith("ok "):
            raise StepFailed("node %d: status %d: %r" % (self.id, group, answer))
        return parse_kv(answer)

    def metrics(self):
        answer = self.cmd("metrics")
        if not answer.startswith("ok "):
            raise StepFailed("node %d: metrics: %r" % (self.id, answer))
        return {k: int(v) for k, v in parse_kv(answer).items()}

    def propose(self, group, text):
        """Proposes until accepted (there may be no leader yet, or it may be
        moving); returns the state machine's value."""
        answers = []

        def attempt():
            answer = self.cmd("propose %d %s" % (group, text))
            answers.append(answer)
            return int(answer.split()[1]) if answer.startswith("ok ") else None

        try:
            return until("propose %d %r through node %d" % (group, text, self.id), attempt)
        except StepFailed as e:
            raise StepFailed("%s (last answers %r)" % (e, answers[-3:]))

    def stale(self, group):
        """A stale read of what this node has applied: (count, hash)."""
        answer = self.cmd("stale %d" % group)
        if not answer.startswith("ok "):
            raise StepFailed("node %d: stale %d: %r" % (self.id, group, answer))
        _, count, h, _index = answer.split()
        return (int(count), int(h))

    def read(self, group):
        """A linearizable read, retried until served: (count, hash)."""
        answers = []

        def attempt():
            answer = self.cmd("read %d" % group)
            answers.append(answer)
            if answer.startswith("ok "):
                _, count, h = answer.split()
                return (int(count), int(h))
            return None

        try:
            return until("read %d on node %d" % (group, self.id), attempt)
        except StepFailed as e:
            raise StepFailed("%s (last answers %r)" % (e, answers[-3:]))


class Cluster:
    def __init__(self, binary, tmp, n, groups=1):
        self.binary = binary
        self.tmp = tmp
        self.groups = groups
        ports = free_ports(n)
        self.nodes = {i + 1: Node(self, i + 1, ports[i]) for i in range(n)}
        self.members = list(self.nodes)  # ids in the bootstrap configuration

    def peers(self, ids_=None):
        ids_ = ids_ or sorted(self.nodes)
        return ",".join("%d=%s" % (i, self.nodes[i].address) for i in ids_)

    def running(self):
        return [n for _, n in sorted(self.nodes.items()) if n.running()]

    def start_all(self, mode):
        for i in self.members:
            self.nodes[i].start(mode, self.peers(self.members))

    def add_node(self):
        node_id = max(self.nodes) + 1
        port = free_ports(1)[0]
        self.nodes[node_id] = Node(self, node_id, port)
        return self.nodes[node_id]

    def cleanup(self):
        for n in self.nodes.values():
            n.cleanup()

    def leader(self, group=1, exclude=()):
        """The id of a node that says it leads group (and whose followers
        agree), polling until there is one."""
        def find():
            for n in self.running():
                if n.id in exclude:
                    continue
                st = n.status(group)
                if st["role"] == "leader":
                    return n.id
            return None
        return until("group %d elects a leader" % group, find)

    def converged(self, group=1, count=None):
        """Every running node's linearizable read agrees (count and hash),
        and matches count if given. Returns (count, hash)."""
        reads = {n.id: n.read(group) for n in self.running()}
        values = set(reads.values())
        if len(values) != 1:
            raise StepFailed("group %d: reads disagree: %r" % (group, reads))
        got = values.pop()
        if count is not None and got[0] != count:
            raise StepFailed("group %d: count %d, want %d (%r)" % (group, got[0], count, reads))
        return got

    def caught_up(self, node, group, want):
        """node's linearizable read reaches want (count, hash)."""
        def check():
            return node.read(group) == want
        until("node %d catches up in group %d to %r" % (node.id, group, want), check)


def admin(c, line, group=1):
    """Sends an admin command (add, remove, transfer) to the current leader
    until it answers ok (the leader may move meanwhile)."""
    answers = []

    def attempt():
        answer = c.nodes[c.leader(group)].cmd(line)
        answers.append(answer)
        return answer == "ok"

    try:
        until(line, attempt)
    except StepFailed as e:
        raise StepFailed("%s (last answers %r)" % (e, answers[-3:]))


def expect(cond, message):
    if not cond:
        raise StepFailed(message)


# ---- the steps ----

def step_elect_and_replicate(c, state):
    c.start_all("bootstrap")
    leader = c.leader()
    print("  leader: node %d" % leader)
    for k in range(30):
        node = c.nodes[c.members[k % 3]]
        value = node.propose(1, "entry-%d" % k)
        expect(value == k + 1, "proposal %d through node %d applied as %d" % (k, node.id, value))
    state["want"] = c.converged(1, 30)
    print("  30 proposals through nodes 1, 2, 3 in turn; every read: count %d hash %d"
          % state["want"])
    for n in c.running():
        until("node %d's stale read reaches the linearizable one" % n.id,
              lambda: n.stale(1) == state["want"])
    m = c.nodes[leader].metrics()
    expect(m["wal_fsyncs"] > 0 and m["messages_sent"] > 0,
           "leader metrics show no WAL syncs or messages: %r" % m)


def step_restart_from_disk(c, state):
    for n in c.running():
        if n.id == 3:
            n.terminate()
        else:
            n.quit()
    print("  nodes 1 and 2 stopped by quit, node 3 by SIGTERM: each exited with status 0")
    c.start_all("restart")
    for n in c.running():
        got = n.read(1)
        expect(got == state["want"],
               "node %d after restart reads %r, want %r" % (n.id, got, state["want"]))
    print("  after a clean restart every node reads count %d hash %d" % state["want"])
    value = c.nodes[2].propose(1, "after-restart")
    expect(value == 31, "first proposal after restart applied as %d, want 31" % value)
    state["want"] = c.converged(1, 31)


def step_kill_leader(c, state):
    old = c.leader()
    victim = c.nodes[old]
    old_term = int(victim.status(1)["term"])
    victim.kill9()
    print("  killed leader node %d (term %d) with SIGKILL" % (old, old_term))
    new = c.leader(exclude=(old,))
    new_term = int(c.nodes[new].status(1)["term"])
    expect(new_term > old_term,
           "node %d leads in term %d, not after %d" % (new, new_term, old_term))
    print("  node %d leads now (term %d)" % (new, new_term))
    survivors = [n for n in c.running()]
    for k, n in enumerate(survivors):
        n.propose(1, "failover-%d" % k)
    count = state["want"][0] + len(survivors)
    state["want"] = c.converged(1, count)
    victim.start("restart", c.peers(c.members))
    c.caught_up(victim, 1, state["want"])
    state["want"] = c.converged(1, count)
    print("  node %d restarted from disk and reads count %d hash %d" % ((old,) + state["want"]))


def step_join_through_snapshot(c, state):
    count = state["want"][0]
    nodes = c.running()
    for k in range(300):
        nodes[k % len(nodes)].propose(1, "fill-%d" % k)
    count += 300
    state["want"] = c.converged(1, count)
    leader = c.nodes[c.leader()]
    st = leader.status(1)
    first = int(st["first"])
    print("  after 300 more proposals: leader's log starts at %s, snapshot at %s, last %s"
          % (st["first"], st["snapshot"], st["last"]))
    expect(first > 2, "leader's log was not compacted (first index %d)" % first)
    new = c.add_node()
    new.start("join", c.peers())
    admin(c, "add 1 %d %s" % (new.id, new.address))
    c.caught_up(new, 1, state["want"])
    st = c.nodes[c.leader()].status(1)
    expect(new.id in ids(st["members"]),
           "node %d is not a voter after add: %r" % (new.id, st["members"]))
    m = new.metrics()
    print("  node %d joined; members %s; its snapshots_received=%d"
          % (new.id, st["members"], m["snapshots_received"]))
    expect(m["snapshots_received"] >= 1,
           "node %d caught up without receiving a snapshot: %r" % (new.id, m))
    sent = sum(n.metrics()["snapshots_sent"] for n in c.running() if n.id != new.id)
    expect(sent >= 1, "no node reports a snapshot sent")
    new_st = new.status(1)
    expect(int(new_st["snapshot"]) >= first - 1,
           "node %d's newest snapshot %s is older than the leader's compacted log (first %d)"
           % (new.id, new_st["snapshot"], first))
    value = new.propose(1, "from-the-new-node")
    expect(value == count + 1, "proposal through the new node applied as %d" % value)
    state["want"] = c.converged(1, count + 1)
    # What it installed is on its disk: a crash and restart keeps it.
    new.kill9()
    new.start("restart", c.peers())
    c.caught_up(new, 1, state["want"])
    print("  node %d killed with SIGKILL and restarted: reads count %d hash %d again"
          % ((new.id,) + state["want"]))


def step_remove_and_transfer(c, state):
    victim = max(c.nodes)  # the node that joined
    admin(c, "remove 1 %d" % victim)
    leader = c.nodes[c.leader()]

    def gone():
        return all(victim not in ids(n.status(1)["members"])
                   for n in c.running() if n.id != victim)
    until("node %d gone from every member list" % victim, gone)
    print("  node %d removed; members now %s" % (victim, leader.status(1)["members"]))
    c.nodes[victim].quit()
    leader_id = c.leader()
    target = next(i for i in c.members if i != leader_id)
    admin(c, "transfer 1 %d" % target)
    until("node %d says it leads" % target,
          lambda: c.nodes[target].status(1)["role"] == "leader")
    print("  leadership moved from node %d to node %d" % (leader_id, target))
    value = c.nodes[target].propose(1, "after-transfer")
    expect(value == state["want"][0] + 1, "proposal after transfer applied as %d" % value)
    state["want"] = c.converged(1, value)


def step_64_groups(main_cluster, state, binary, tmp):
    main_cluster.cleanup()
    c = Cluster(binary, tmp, 3, groups=64)
    state["current"] = c
    os.makedirs(tmp)
    try:
        c.start_all("bootstrap")
        for g in range(1, 65):
            node = c.nodes[g % 3 + 1]
            value = node.propose(g, "group-%d" % g)
            expect(value == 1, "group %d: first proposal applied as %d" % (g, value))
        hashes = set()
        for g in range(1, 65):
            hashes.add(c.converged(g, 1)[1])
        print("  64 groups, one proposal each through nodes 1-3; every node's read of every "
              "group agrees (%d distinct hashes)" % len(hashes))
        expect(len(hashes) == 64, "different texts should give 64 different hashes")
    finally:
        c.cleanup()
        state.pop("current", None)


def sanitizer_reports(tmp):
    """Lines where a node's log (its stderr) has an ASan, UBSan or TSan
    report, in a sanitizer build: a node must not have one even if every
    step passed (a crash at exit, a leak, a race)."""
    found = []
    for root, _, files in os.walk(tmp):
        for name in files:
            if not name.endswith(".log"):
                continue
            with open(os.path.join(root, name), errors="replace") as f:
                for line in f:
                    if "Sanitizer" in line or "runtime error:" in line:
                        found.append("%s: %s" % (name, line.rstrip()))
    return found[:40]


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="craft-e2e-")
    failed = []
    total = time.monotonic()
    cluster = None
    state = {}
    try:
        cluster = Cluster(binary, os.path.join(tmp, "main"), 3)
        os.makedirs(cluster.tmp)
        steps = [
            ("elect and replicate", lambda: step_elect_and_replicate(cluster, state)),
            ("restart all three from disk", lambda: step_restart_from_disk(cluster, state)),
            ("kill -9 the leader, restart it", lambda: step_kill_leader(cluster, state)),
            ("fourth node joins through a snapshot",
             lambda: step_join_through_snapshot(cluster, state)),
            ("remove a node, transfer leadership",
             lambda: step_remove_and_transfer(cluster, state)),
            ("64 groups at once",
             lambda: step_64_groups(cluster, state, binary, os.path.join(tmp, "groups64"))),
        ]
        for name, fn in steps:
            if failed and name != "64 groups at once":
                print("SKIP %s (an earlier step failed)" % name)
                continue
            t0 = time.monotonic()
            print("step: %s" % name, flush=True)
            try:
                fn()
                print("PASS %s (%.2f s)" % (name, time.monotonic() - t0), flush=True)
            except (StepFailed, OSError, subprocess.SubprocessError) as e:
                failed.append(name)
                print("FAIL %s (%.2f s): %s" % (name, time.monotonic() - t0, e), flush=True)
                for n in state.get("current", cluster).nodes.values():
                    print("  node %d log tail:\n%s" % (n.id, n.log_tail()), flush=True)
    finally:
        if cluster is not None:
            cluster.cleanup()
        reports = sanitizer_reports(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    if reports:
        failed.append("sanitizer reports")
        print("FAIL sanitizer reports in node logs:\n%s" % "\n".join(reports))
    print("%d steps failed%s; total %.2f s" % (len(failed), (": " + ", ".join(failed))
                                                 if failed else "", time.monotonic() - total))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
