#!/usr/bin/env python3
"""Tests of the fault-testing harness without craftkv.

The end-to-end tests run ``run.py`` against ``fake_server.py``: the
linearizable server must pass under kill -9 and pause faults (whatever the
timing: a correct server gives a linearizable history however operations
interleave), and the ``--buggy`` server must be caught (one client, a fixed
seed and a server that is stale on a fixed schedule: the history is the same
on every run, and every stale read in it is a violation).

The partition module is tested for real where network namespaces can be made
(root), and skipped with the reason otherwise.
"""

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cluster as cluster_mod  # noqa: E402
import driver  # noqa: E402
import fake_server  # noqa: E402
import nemesis  # noqa: E402
import report  # noqa: E402

RUN_TIMEOUT = 120  # seconds; a bound on each end-to-end run, not a pass criterion


def run_harness(out, *args):
    argv = [sys.executable, os.path.join(HERE, "run.py"), "--out", out] + list(args)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as stream:
        return done, json.load(stream)


class EndToEnd(unittest.TestCase):
    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="craft-faults-")

    def tearDown(self):
        shutil.rmtree(self.out, ignore_errors=True)

    def test_a_linearizable_server_passes_under_kill_and_pause(self):
        done, summary = run_harness(
            self.out, "--fake", "--seed", "7", "--ops", "1500", "--clients", "4",
            "--keys", "5", "--faults", "kill,pause", "--quiet", "0.05", "0.2",
            "--hold", "0.1", "0.4", "--timeout", "0.3")
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertEqual(summary["verdict"], "PASS")
        self.assertTrue(summary["checks"]["linearizable"]["ok"])
        self.assertTrue(summary["checks"]["final_reads"]["ok"])
        self.assertTrue(summary["checks"]["convergence"]["ok"])
        self.assertGreaterEqual(summary["stats"]["ops"], 1500)
        for name in ("history.jsonl", "faults.jsonl", "report.txt", "check.txt"):
            self.assertTrue(os.path.exists(os.path.join(self.out, name)), name)
        if shutil.which("gnuplot"):
            self.assertTrue(os.path.exists(os.path.join(self.out, "latency.png")))

    def test_stale_reads_are_caught(self):
        done, summary = run_harness(
            self.out, "--fake-buggy", "--seed", "3", "--ops", "300", "--clients", "1",
            "--keys", "3", "--faults", "none")
        self.assertEqual(done.returncode, 1, done.stdout + done.stderr)
        self.assertEqual(summary["verdict"], "FAIL")
        self.assertIs(summary["checks"]["linearizable"]["ok"], False)
        self.assertIn("no linearization exists", done.stdout)


class InProcessServer:
    """fake_server's Store served on a free port in this process."""

    def __init__(self, **store_args):
        self.server = fake_server.Server(("127.0.0.1", 0), fake_server.Handler)
        self.server.store = fake_server.Store(**store_args)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Driver(unittest.TestCase):
    def test_resp_client_against_the_fake_server(self):
        server = InProcessServer()
        try:
            client = driver.RespClient("127.0.0.1", server.port, timeout=2.0)
            self.assertEqual(client.call("PING"), "PONG")
            self.assertIsNone(client.call("GET", "k"))
            self.assertEqual(client.call("SET", "k", "v1"), "OK")
            self.assertEqual(client.call("GET", "k"), "v1")
            self.assertEqual(client.call("CAS", "k", "nope", "v2"), 0)
            self.assertEqual(client.call("CAS", "k", "v1", "v2"), 1)
            self.assertEqual(client.call("GET", "k"), "v2")
            self.assertIsInstance(client.call("BOGUS"), driver.ReplyError)
            client.close()
        finally:
            server.close()

    def test_connection_refused_is_a_definite_failure(self):
        port = cluster_mod.free_ports(1)[0]
        client = driver.RespClient("127.0.0.1", port, timeout=1.0)
        with self.assertRaises(driver.ConnectFailed):
            client.call("GET", "k")

    def test_classification(self):
        c = driver.classify
        self.assertEqual(c("write", "OK")[0], "ok")
        self.assertEqual(c("read", None)[:2], ("ok", None))
        self.assertEqual(c("read", "v")[:2], ("ok", "v"))
        self.assertEqual(c("cas", 1)[0], "ok")
        self.assertEqual(c("cas", 0)[:3:2], ("fail", "mismatch"))
        self.assertEqual(c("write", driver.ReplyError("NOTLEADER the leader is node 2"))[0],
                         "fail")
        self.assertEqual(c("write", driver.ReplyError("NOTLEADER 10.0.0.1:7000"))[0], "fail")
        # CLUSTERDOWN: never proposed (a proposal that entered a log and then
        # timed out is TIMEOUT), so definitely not applied.
        self.assertEqual(c("write", driver.ReplyError(
            "CLUSTERDOWN no leader: the cluster has no leader right now, retry later"))[0], "fail")
        self.assertEqual(c("write", driver.ReplyError(
            "TIMEOUT the request timed out: it may or may not have been applied"))[0], "info")
        self.assertEqual(c("cas", driver.ReplyError("BUSY the cluster is overloaded"))[0], "info")
        self.assertEqual(c("write", driver.ReplyError("ERR disk full"))[0], "info")
        self.assertEqual(c("write", error=driver.ConnectFailed("refused"))[0], "fail")
        self.assertEqual(c("write", error=socket.timeout("timed out"))[0], "info")
        self.assertEqual(c("write", error=EOFError("closed"))[0], "info")

    def test_leader_hint(self):
        self.assertEqual(driver.leader_hint("NOTLEADER 10.0.0.2:7001"), ("10.0.0.2", 7001))
        self.assertEqual(driver.leader_hint("NOTLEADER the leader is node 3"), 3)
        self.assertIsNone(driver.leader_hint("NOTLEADER"))
        self.assertIsNone(driver.leader_hint("CLUSTERDOWN no leader: node 3"))

    def test_a_workload_against_a_linearizable_server_is_linearizable(self):
        import checker
        server = InProcessServer()
        try:
            history = driver.History()
            workload = driver.Workload(keys=3, max_ops=600, timeout=2.0)
            d = driver.Driver([("127.0.0.1", server.port)], history, workload, clients=4, seed=5)
            d.start()
            self.assertTrue(d.wait(RUN_TIMEOUT))
            self.assertEqual(len(d.final_reads(10.0)), 3)
        finally:
            server.close()
        values = [e["value"] for e in history.events if e["f"] == "write" and e["type"] == "invoke"]
        self.assertEqual(len(values), len(set(values)), "written values are unique")
        self.assertEqual(checker.check(history.events).verdict, checker.LINEARIZABLE)


class Report(unittest.TestCase):
    def test_percentiles(self):
        values = list(range(1, 101))
        self.assertEqual(report.percentile(values, 50), 50)
        self.assertEqual(report.percentile(values, 99), 99)
        self.assertEqual(report.percentile(values, 100), 100)
        self.assertIsNone(report.percentile([], 50))

    def test_statistics_count_outcomes(self):
        events = [
            {"process": 0, "type": "invoke", "f": "write", "key": "k", "value": "a", "time": 0},
            {"process": 0, "type": "ok", "f": "write", "key": "k", "value": "a", "time": 2_000_000},
            {"process": 1, "type": "invoke", "f": "read", "key": "k", "value": None, "time": 0},
            {"process": 1, "type": "info", "f": "read", "key": "k", "value": None, "time": 9},
        ]
        stats = report.statistics(events)
        self.assertEqual(stats["by_outcome"], {"ok": 1, "fail": 0, "info": 1})
        self.assertEqual(stats["latency_ms"]["write"]["p50"], 2.0)


class Flavors(unittest.TestCase):
    def test_craftkv_command_line_and_help_check(self):
        with tempfile.TemporaryDirectory() as tmp:
            binary = os.path.join(tmp, "craftkv")
            with open(binary, "w", encoding="utf-8") as stream:
                stream.write("#!/bin/sh\necho 'usage: craftkv --id N --resp A --data D'\n")
            os.chmod(binary, 0o755)
            flavor = cluster_mod.CraftkvFlavor(binary, reads="lease")
            self.assertIn("--raft", flavor.notes()[0])
            self.assertNotIn("--resp", flavor.notes()[0])
            c = cluster_mod.Cluster(flavor, 3, tmp)
            node = c.nodes[1]
            argv = flavor.argv(node, c)
            self.assertEqual(argv[0], binary)
            self.assertEqual(argv[argv.index("--id") + 1], "2")
            self.assertEqual(argv[argv.index("--data") + 1], node.data_dir)
            self.assertEqual(argv[argv.index("--resp") + 1], "127.0.0.1:%d" % node.client_port)
            self.assertEqual(argv[argv.index("--http") + 1], "127.0.0.1:%d" % node.http_port)
            self.assertEqual(argv[argv.index("--raft") + 1], "127.0.0.1:%d" % node.peer_port)
            self.assertIn("--lease-reads", argv)
            peers = argv[argv.index("--peers") + 1].split(",")
            self.assertEqual(peers, ["%d=127.0.0.1:%d" % (n.id, n.peer_port) for n in c.nodes])
            # The first start bootstraps; every later one passes --join, so
            # a wiped node waits to be added instead of bootstrapping anew.
            self.assertNotIn("--join", argv)
            node.starts = 1
            self.assertIn("--join", flavor.argv(node, c))
            index = cluster_mod.CraftkvFlavor(binary).argv(c.nodes[0], c)
            self.assertNotIn("--lease-reads", index)

    def test_the_real_craftkv_help_mentions_every_flag(self):
        binary = os.path.join(os.path.dirname(os.path.dirname(HERE)), "build", "craftkv")
        if not os.path.exists(binary):
            self.skipTest("craftkv not built at %s" % binary)
        self.assertEqual(cluster_mod.CraftkvFlavor(binary).notes(), [])

    def test_a_missing_binary_is_a_note(self):
        flavor = cluster_mod.CraftkvFlavor("/nonexistent/craftkv")
        self.assertIn("not found", flavor.notes()[0])


class FakeCluster:
    """Enough of a Cluster for the nemesis: records what was done to it."""

    def __init__(self, size=3):
        self.nodes = [cluster_mod.Node(i, "127.0.0.1", 0, 0, 0, "/nonexistent", "/dev/null")
                      for i in range(size)]
        self.log = []

    def leader(self):
        return 0

    def pause(self, i):
        self.log.append(("pause", i))

    def resume(self, i):
        self.log.append(("resume", i))


class Nemesis(unittest.TestCase):
    def test_partition_sides(self):
        grudge = nemesis.grudge_between([0], [1, 2])
        self.assertEqual(grudge, {0: {1, 2}, 1: {0}, 2: {0}})

    def test_faults_without_their_hooks_are_unsupported(self):
        c = FakeCluster()
        faults = [nemesis.PartitionFault(None), nemesis.LeaderTransferFault(),
                  nemesis.MembershipFault(), nemesis.WipeFault()]
        n = nemesis.Nemesis(c, faults, random.Random(1), lambda: 0)
        self.assertEqual(sorted(n.unsupported), ["membership", "partition", "transfer", "wipe"])
        self.assertEqual(n.faults, [])

    def test_pausing_the_leader_and_healing(self):
        c = FakeCluster()
        fault = nemesis.PauseFault(leader_bias=1.0)
        # Node.alive polls the process; give the fake one a live-looking proc.
        for node in c.nodes:
            node.proc = type("P", (), {"poll": lambda self: None, "pid": -1})()
        self.assertEqual(fault.start(c, random.Random(1)), "pause n1 (leader)")
        fault.heal(c)
        fault.heal(c)
        self.assertEqual(c.log, [("pause", 0), ("resume", 0)])


    def test_a_node_is_wiped_only_after_its_removal_is_confirmed(self):
        c = FakeCluster()
        for node in c.nodes:
            node.proc = type("P", (), {"poll": lambda self: None, "pid": -1})()
        c.kill = lambda i: c.log.append(("kill", i))
        c.wipe = lambda i: c.log.append(("wipe", i))
        c.start = lambda i: c.log.append(("start", i))
        c.wait_ready = lambda i, timeout: True
        added = []

        def refuse(cluster, i):
            raise RuntimeError("still a voter")

        fault = nemesis.WipeFault(refuse, lambda cluster, i: added.append(i), leader_bias=1.0)
        with self.assertRaises(RuntimeError):
            fault.start(c, random.Random(1))
        fault.heal(c)
        self.assertEqual(c.log, [("kill", 0)])      # killed, never wiped
        self.assertEqual(added, [0])                # re-added (no-op if still a voter)

        c.log, added[:] = [], []
        fault = nemesis.MembershipFault(lambda cluster, i: c.log.append(("remove", i)),
                                        lambda cluster, i: added.append(i))
        self.assertIn("remove n", fault.start(c, random.Random(2)))
        victim = c.log[0][1]
        self.assertNotEqual(victim, 0)              # never the leader
        self.assertEqual(c.log, [("remove", victim), ("kill", victim), ("wipe", victim)])
        self.assertEqual(added, [])


@unittest.skipUnless(nemesis.Network.probe()[0], "network namespaces unavailable: %s"
                     % nemesis.Network.probe()[1])
class Partition(unittest.TestCase):
    """Real namespaces and blackhole routes between three fake servers."""

    def can_connect(self, network, src, dst, node):
        code = ("import socket,sys\n"
                "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)\n"
                "except OSError: sys.exit(1)\n")
        done = subprocess.run(["ip", "netns", "exec", network.namespaces[src], sys.executable,
                               "-c", code, node.host, str(node.client_port)], timeout=20)
        return done.returncode == 0

    def test_partition_and_heal(self):
        out = tempfile.mkdtemp(prefix="craft-partition-")
        c = cluster_mod.Cluster(cluster_mod.FakeFlavor(), 3, out)
        network = nemesis.Network(3)
        try:
            network.setup(c)
            c.start_all()
            self.assertTrue(c.wait_all_ready(20.0))
            self.assertTrue(self.can_connect(network, 0, 1, c.nodes[1]))
            network.apply(nemesis.grudge_between([0], [1, 2]))
            self.assertFalse(self.can_connect(network, 0, 1, c.nodes[1]))
            self.assertFalse(self.can_connect(network, 2, 0, c.nodes[0]))
            self.assertTrue(self.can_connect(network, 1, 2, c.nodes[2]))
            # Clients in the root namespace still reach every node.
            self.assertTrue(c.wait_ready(0, 5.0))
            network.heal()
            self.assertTrue(self.can_connect(network, 0, 1, c.nodes[1]))
            # Every kind of partition the nemesis makes installs routes and heals.
            fault = nemesis.PartitionFault(network)
            self.assertEqual(fault.supported(c), (True, ""))
            for kind in nemesis.PartitionFault.KINDS:
                fault.kinds = (kind,)
                self.assertTrue(fault.start(c, random.Random(1)))
                self.assertTrue(network.routes, kind)
                fault.heal(c)
                self.assertEqual(network.routes, [])
                self.assertTrue(self.can_connect(network, 1, 0, c.nodes[0]))
        finally:
            c.stop_all()
            network.teardown()
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
