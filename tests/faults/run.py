#!/usr/bin/env python3
"""Run one fault test: cluster + workload + nemesis, then judge the history.

    # bounded CI run against craftkv (fixed seed)
    python3 tests/faults/run.py --mode ci --binary build/craftkv
    # soak for an hour with a random seed (printed first, for replay)
    python3 tests/faults/run.py --mode soak --duration 3600 --binary build/craftkv
    # the harness against the fake server (no craftkv needed)
    python3 tests/faults/run.py --fake --ops 2000

Steps: start the cluster and wait for a leader; run the clients and the
nemesis until ``--duration`` seconds pass or ``--ops`` operations were issued;
stop the clients, heal every fault and measure how long the cluster takes to
have a leader again; read every key once more (the final reads); compare the
nodes' state hashes; stop the cluster; check the history for
linearizability; write the report.

Output directory (``--out``, default ``build/faults/<mode>-seed<seed>``):
``history.jsonl``, ``faults.jsonl``, ``check.txt``, ``report.txt``,
``summary.json``, ``latency.png`` and one ``n<i>/`` per node (data and log).

Exit status: 0 every check passed, 1 a check failed, 2 the result is
unknown (checker budget) or the run could not be set up.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checker  # noqa: E402
from cluster import Cluster, CraftkvFlavor, FakeFlavor  # noqa: E402
from driver import Driver, History, Workload  # noqa: E402
from nemesis import (KillFault, LeaderTransferFault, MembershipFault, Nemesis,  # noqa: E402
                     Network, PartitionFault, PauseFault, WipeFault)
from report import write_report  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALL_FAULTS = ("kill", "pause", "partition", "transfer", "membership", "wipe")
SKIP = 77   # exit status with --skip-missing when the binary is absent (CTest SKIP_RETURN_CODE)
MODES = {
    # Bounded, fixed seed: what CI (the faults_craftkv CTest) runs.
    "ci": {"seed": 1, "duration": 120.0},
    # As long as asked, random seed (printed for replay).
    "soak": {"seed": None, "duration": 3600.0},
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--mode", choices=sorted(MODES), default="ci")
    parser.add_argument("--seed", type=int, help="default: 1 in ci mode, random in soak mode")
    parser.add_argument("--duration", type=float, help="seconds of workload (upper bound)")
    parser.add_argument("--ops", type=int, help="stop after this many operations")
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--reads", choices=("index", "lease"), default="index",
                        help="craftkv's read mode (ReadIndex or leader lease)")
    parser.add_argument("--faults", default=",".join(ALL_FAULTS),
                        help="comma-separated from %s, or 'none' (default: all; partition "
                        "needs root, and is skipped with the reason otherwise)"
                        % ",".join(ALL_FAULTS))
    parser.add_argument("--quiet", type=float, nargs=2, default=(2.0, 5.0), metavar=("MIN", "MAX"),
                        help="seconds between faults")
    parser.add_argument("--hold", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"),
                        help="seconds a fault lasts")
    parser.add_argument("--timeout", type=float, default=1.0, help="per-operation timeout (s)")
    parser.add_argument("--stagger", type=float, default=0.0,
                        help="max random pause between a client's operations (s)")
    parser.add_argument("--recovery-bound", type=float, default=30.0,
                        help="seconds allowed for a leader after the last heal")
    parser.add_argument("--budget", type=int, default=checker.DEFAULT_BUDGET,
                        help="checker search steps per key")
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "craftkv"))
    parser.add_argument("--fake", action="store_true", help="run fake_server.py (1 node)")
    parser.add_argument("--fake-buggy", action="store_true",
                        help="run fake_server.py --buggy (stale reads)")
    parser.add_argument("--out", help="output directory")
    parser.add_argument("--skip-missing", action="store_true",
                        help="exit %d (skip) with a reason if --binary does not exist" % SKIP)
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="extra craftkv argument (repeatable), e.g. --server-arg=--tick-ms=50")
    args = parser.parse_args(argv)
    mode = MODES[args.mode]
    if args.seed is None:
        args.seed = mode["seed"] if mode["seed"] is not None else random.SystemRandom().randrange(2**31)
    if args.duration is None:
        args.duration = mode["duration"]
    if args.fake or args.fake_buggy:
        args.nodes = 1
    args.faults = [] if args.faults == "none" else [f for f in args.faults.split(",") if f]
    unknown = [f for f in args.faults if f not in ALL_FAULTS]
    if unknown:
        parser.error("unknown faults: %s" % ",".join(unknown))
    if args.out is None:
        args.out = os.path.join(ROOT, "build", "faults", "%s-seed%d" % (args.mode, args.seed))
    return args


def make_faults(names, network, network_reason, flavor=None):
    """The fault objects for ``names``; the admin faults get ``flavor``'s hooks
    (craftkv's HTTP API) when it has them, and are unsupported otherwise."""
    transfer = getattr(flavor, "transfer", None)
    remove = getattr(flavor, "remove_member", None)
    add = getattr(flavor, "add_member", None)
    faults = []
    for name in names:
        if name == "kill":
            faults.append(KillFault())
        elif name == "pause":
            faults.append(PauseFault())
        elif name == "partition":
            fault = PartitionFault(network)
            if network is None:
                fault.reason = network_reason
            faults.append(fault)
        elif name == "transfer":
            faults.append(LeaderTransferFault(transfer))
        elif name == "membership":
            faults.append(MembershipFault(remove, add))
        elif name == "wipe":
            faults.append(WipeFault(remove, add))
    return faults


def wait_converged(cluster, timeout):
    """After healing: do a linearizable read on every node (so each has applied
    everything committed before it), then poll the state hashes until every
    node reports the same applied index twice in a row and the same hash.
    Hashes are compared only between nodes at the same applied index.
    Returns (True / False / None if unsupported, detail)."""
    running = [n for n in cluster.nodes if n.alive]
    for node in running:
        cluster.flavor.sync_read(node)
    deadline = time.monotonic() + timeout
    previous = None
    while True:
        hashes = cluster.state_hashes()
        if not hashes or any(h is None for h in hashes.values()):
            if time.monotonic() >= deadline:
                return None, "state hash unsupported or a node did not answer: %s" % hashes
        else:
            applied = {h[1] for h in hashes.values()}
            values = {h[0] for h in hashes.values()}
            stable = hashes == previous
            if len(applied) == 1 and stable:
                index = applied.pop()
                if len(values) == 1:
                    return True, "%d nodes agree: hash %s at applied index %s" % (
                        len(hashes), values.pop(), index)
                return False, "DIVERGED at the same applied index %s: %s" % (index, hashes)
            if time.monotonic() >= deadline:
                return False, "applied indexes did not converge within %.0f s: %s" % (
                    timeout, hashes)
            previous = hashes
        time.sleep(0.3)


def nodes_running(cluster):
    """Every node must be running after the heal: one that exited on its own
    (a failed restart, a crash) fails the run, with the tail of its log."""
    dead = []
    for node in cluster.nodes:
        if not node.alive:
            code = node.proc.poll() if node.proc is not None else None
            tail = ""
            try:
                with open(node.log_path, "rb") as log:
                    lines = log.read().decode(errors="replace").strip().splitlines()
                tail = lines[-1] if lines else ""
            except OSError:
                pass
            dead.append("%s exited (status %s): %s" % (node.name, code, tail[:200]))
    if dead:
        return {"ok": False, "detail": "; ".join(dead)}
    return {"ok": True, "detail": "%d/%d running" % (len(cluster.nodes), len(cluster.nodes))}


def run(args):
    """One run; returns the exit status (see the module doc)."""
    print("seed %d (replay: --mode %s --seed %d)" % (args.seed, args.mode, args.seed), flush=True)
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    if args.fake or args.fake_buggy:
        flavor = FakeFlavor(buggy=args.fake_buggy)
    else:
        if not os.path.exists(args.binary):
            print("%s: %s not found (craftkv is not built yet? use --fake to test "
                  "the harness)" % ("SKIP" if args.skip_missing else "error", args.binary),
                  file=sys.stderr)
            return SKIP if args.skip_missing else 2
        # Every start and restart of the run uses one copy of the binary: a
        # rebuild of the original during a long run (a shared checkout) would
        # otherwise restart some nodes with another version.
        binary = os.path.join(args.out, "craftkv.bin")
        shutil.copy2(args.binary, binary)
        with open(binary, "rb") as stream:
            binary_sha = hashlib.sha256(stream.read()).hexdigest()[:16]
        print("binary %s (sha256 %s) copied to %s" % (args.binary, binary_sha, binary), flush=True)
        flavor = CraftkvFlavor(binary, reads=args.reads,
                               extra_args=[a for arg in args.server_arg for a in arg.split("=", 1)])
    for note in flavor.notes():
        print("note: %s" % note, flush=True)

    cluster = Cluster(flavor, args.nodes, args.out)
    network, network_reason = None, ""
    checks = {}
    windows = []
    driver = nemesis = None
    history = History(os.path.join(args.out, "history.jsonl"))
    info = {"mode": args.mode, "seed": args.seed, "server": flavor.name, "nodes": args.nodes,
            "command": " ".join([os.path.relpath(sys.argv[0], ROOT) if sys.argv[0] else "run.py"]
                                + sys.argv[1:]),
            "clients": args.clients, "keys": args.keys, "reads": args.reads,
            "duration_limit_s": args.duration, "ops_limit": args.ops,
            "faults": ",".join(args.faults) or "none", "out": args.out}
    if not (args.fake or args.fake_buggy):
        info["binary"] = "%s (sha256 %s)" % (args.binary, binary_sha)
    try:
        if "partition" in args.faults:
            supported, network_reason = Network.probe()
            if supported and args.nodes >= 3:
                network = Network(args.nodes)
                try:
                    network.setup(cluster)
                except RuntimeError as error:
                    network.teardown()
                    network, network_reason = None, str(error)
        cluster.start_all()
        if not cluster.wait_all_ready(20.0):
            print("error: the cluster did not start (see %s/n*/log)" % args.out, file=sys.stderr)
            return 2
        leader, waited = cluster.wait_leader(30.0)
        if leader is None:
            print("error: no leader within 30 s of start", file=sys.stderr)
            return 2
        print("leader %s after %.2f s" % (cluster.nodes[leader].name, waited), flush=True)

        workload = Workload(keys=args.keys, timeout=args.timeout, max_ops=args.ops,
                            stagger=args.stagger)
        driver = Driver(cluster.client_addresses(), history, workload, args.clients, args.seed)
        nemesis = Nemesis(cluster, make_faults(args.faults, network, network_reason, flavor),
                          random.Random(rng.getrandbits(64)), history.now,
                          quiet=tuple(args.quiet), hold=tuple(args.hold))
        for name, reason in nemesis.unsupported.items():
            print("fault %s unsupported: %s" % (name, reason), flush=True)
        info["faults_unsupported"] = nemesis.unsupported

        driver.start()
        nemesis.start()
        driver.wait(args.duration)
        driver.stop()
        nemesis.stop()
        windows = nemesis.windows
        if nemesis.errors:
            checks["nemesis"] = {"ok": False, "detail": "; ".join(nemesis.errors[:5])}

        leader, waited = cluster.wait_leader(args.recovery_bound)
        checks["leader_recovery"] = {
            "ok": leader is not None,
            "detail": ("leader %s %.2f s after the last heal" % (cluster.nodes[leader].name, waited)
                       if leader is not None else
                       "no leader within %.0f s of the last heal" % args.recovery_bound)}
        finals = driver.final_reads(args.recovery_bound)
        checks["final_reads"] = {"ok": len(finals) == len(workload.keys),
                                 "detail": "%d/%d keys read after healing"
                                 % (len(finals), len(workload.keys))}
        ok, detail = wait_converged(cluster, 20.0)
        checks["convergence"] = {"ok": ok, "detail": detail}
        checks["nodes_running"] = nodes_running(cluster)
    except KeyboardInterrupt:
        print("interrupted: stopping the cluster, checking what was recorded", file=sys.stderr)
        checks["interrupted"] = {"ok": None, "detail": "run interrupted"}
    finally:
        # On an interrupt, stop the clients and heal before anything else, so
        # that the history is complete (pending operations count as unknown).
        if driver is not None:
            driver.stop()
        if nemesis is not None:
            nemesis.stop()
            windows = nemesis.windows
        cluster.stop_all()
        if network is not None:
            network.teardown()
        history.close()

    with open(os.path.join(args.out, "faults.jsonl"), "w", encoding="utf-8") as stream:
        for window in windows:
            stream.write(json.dumps(window) + "\n")
    try:
        result = checker.check(history.events, budget=args.budget)
    except checker.HistoryError as error:
        checks["linearizable"] = {"ok": None, "detail": "malformed history: %s" % error}
    else:
        with open(os.path.join(args.out, "check.txt"), "w", encoding="utf-8") as stream:
            stream.write(result.explain() + "\n")
        ok = {checker.LINEARIZABLE: True, checker.NOT_LINEARIZABLE: False}.get(result.verdict)
        checks["linearizable"] = {"ok": ok, "detail": result.summary()}
        if result.verdict == checker.NOT_LINEARIZABLE:
            print(result.explain(), flush=True)
    summary = write_report(args.out, history.events, windows, checks, info)
    with open(os.path.join(args.out, "report.txt"), encoding="utf-8") as stream:
        print(stream.read(), end="")
    return {"PASS": 0, "FAIL": 1}.get(summary["verdict"], 2)


def main(argv=None):
    args = parse_args(argv)

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
