#!/usr/bin/env python3
"""Unit tests of the linearizability checker (tests/faults/checker.py).

Every history here is hand-made (or generated from a fixed seed by a
simulated linearizable register), so the verdicts are exact: nothing depends
on a clock.  Run with ``python3 tests/faults/test_checker.py``.
"""

import io
import json
import os
import random
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checker  # noqa: E402
from checker import LINEARIZABLE, NOT_LINEARIZABLE, UNKNOWN  # noqa: E402


class H:
    """A tiny builder of histories: ``h.inv(p, f, value)`` then ``h.ok(p, value)``.

    Each event gets the next integer time, so the order in which the builder
    is called is real-time order.
    """

    def __init__(self, key="x"):
        self.events = []
        self.key = key
        self.pending = {}

    def _add(self, process, type_, f, value, key):
        self.events.append({"process": process, "type": type_, "f": f, "key": key,
                            "value": value, "time": len(self.events)})

    def inv(self, process, f, value=None, key=None):
        key = key if key is not None else self.key
        self.pending[process] = (f, value, key)
        self._add(process, "invoke", f, value, key)
        return self

    def _complete(self, process, type_, value):
        f, call_value, key = self.pending.pop(process)
        self._add(process, type_, f, call_value if f != "read" else value, key)
        return self

    def ok(self, process, value=None):
        return self._complete(process, "ok", value)

    def fail(self, process):
        return self._complete(process, "fail", None)

    def info(self, process):
        return self._complete(process, "info", None)

    # Sequential shorthands: the operation is invoked and completes at once.
    def write(self, process, value, key=None):
        return self.inv(process, "write", value, key).ok(process)

    def read(self, process, value, key=None):
        return self.inv(process, "read", None, key).ok(process, value)

    def cas(self, process, expected, new, key=None):
        return self.inv(process, "cas", [expected, new], key).ok(process)

    def verdict(self, **kwargs):
        return checker.check(self.events, **kwargs).verdict


class Sequential(unittest.TestCase):
    """Histories without concurrency: the register's plain semantics."""

    def test_empty_history_is_linearizable(self):
        self.assertEqual(H().verdict(), LINEARIZABLE)

    def test_a_missing_key_reads_as_nil(self):
        self.assertEqual(H().read(1, None).verdict(), LINEARIZABLE)
        self.assertEqual(H().read(1, "a").verdict(), NOT_LINEARIZABLE)

    def test_a_read_returns_the_last_write(self):
        h = H().write(1, "a").write(2, "b").read(3, "b")
        self.assertEqual(h.verdict(), LINEARIZABLE)

    def test_a_stale_read_is_a_violation(self):
        h = H().write(1, "a").write(2, "b").read(3, "a")
        self.assertEqual(h.verdict(), NOT_LINEARIZABLE)

    def test_a_read_of_a_value_never_written_is_a_violation(self):
        self.assertEqual(H().write(1, "a").read(2, "z").verdict(), NOT_LINEARIZABLE)

    def test_a_successful_cas_needs_the_expected_value(self):
        self.assertEqual(H().write(1, "a").cas(2, "a", "b").read(1, "b").verdict(),
                         LINEARIZABLE)
        self.assertEqual(H().write(1, "a").cas(2, "z", "b").verdict(), NOT_LINEARIZABLE)

    def test_a_failed_cas_changes_nothing(self):
        h = H().write(1, "a").inv(2, "cas", ["z", "b"]).fail(2).read(1, "a")
        self.assertEqual(h.verdict(), LINEARIZABLE)


class Concurrent(unittest.TestCase):
    """Overlapping operations may be linearized in either order."""

    def test_a_read_concurrent_with_a_write_may_see_either_value(self):
        for seen in ("a", "b"):
            h = H().write(1, "a").inv(1, "write", "b").read(2, seen).ok(1)
            self.assertEqual(h.verdict(), LINEARIZABLE, seen)

    def test_reads_may_not_go_back_in_time(self):
        # Both reads overlap the write, but once a read has seen the new value
        # a later read (starting after it ended) cannot see the old one.
        h = H().write(1, "a").inv(1, "write", "b").read(2, "b").read(3, "a").ok(1)
        self.assertEqual(h.verdict(), NOT_LINEARIZABLE)

    def test_a_stale_read_after_the_write_completed_is_a_violation(self):
        h = H().write(1, "a").inv(1, "write", "b").inv(2, "read").ok(1).ok(2, "a")
        # The read overlapped the write: fine.
        self.assertEqual(h.verdict(), LINEARIZABLE)
        h = H().write(1, "a").write(1, "b").inv(2, "read").ok(2, "a")
        self.assertEqual(h.verdict(), NOT_LINEARIZABLE)

    def test_a_concurrent_cas_chain_is_linearizable_only_in_chain_order(self):
        h = (H().write(0, 0)
             .inv(3, "cas", [2, 3]).inv(1, "cas", [0, 1]).inv(2, "cas", [1, 2])
             .ok(3).ok(1).ok(2).read(0, 3))
        self.assertEqual(h.verdict(), LINEARIZABLE)

    def test_two_cas_cannot_both_swap_the_same_value(self):
        h = H().write(0, 0).inv(1, "cas", [0, 1]).inv(2, "cas", [0, 2]).ok(1).ok(2)
        self.assertEqual(h.verdict(), NOT_LINEARIZABLE)

    def test_two_cas_on_the_same_value_need_a_write_between_them(self):
        h = (H().write(0, 0).inv(1, "cas", [0, 1]).inv(2, "cas", [0, 2])
             .inv(3, "write", 0).ok(1).ok(2).ok(3))
        self.assertEqual(h.verdict(), LINEARIZABLE)

    def test_a_cas_chain_broken_by_a_stale_read(self):
        h = (H().write(0, 0).cas(1, 0, 1).inv(2, "cas", [1, 2]).inv(3, "read")
             .ok(2).ok(3, 1).read(4, 0))
        self.assertEqual(h.verdict(), NOT_LINEARIZABLE)


class Unknown(unittest.TestCase):
    """``info`` operations may take effect after their invocation, or never."""

    def test_an_unknown_write_that_was_read_must_have_happened(self):
        h = H().write(1, "a").inv(2, "write", "b").info(2).read(3, "b")
        self.assertEqual(h.verdict(), LINEARIZABLE)

    def test_an_unknown_write_may_never_happen(self):
        h = H().write(1, "a").inv(2, "write", "b").info(2).read(3, "a").read(3, "a")
        self.assertEqual(h.verdict(), LINEARIZABLE)

    def test_an_unknown_write_cannot_be_undone(self):
        # Once "b" was seen, the register cannot hold "a" again: the only
        # write of "a" happened before.
        h = (H().write(1, "a").inv(2, "write", "b").info(2)
             .read(3, "a").read(3, "b").read(3, "a"))
        self.assertEqual(h.verdict(), NOT_LINEARIZABLE)

    def test_an_unknown_write_cannot_happen_before_its_invocation(self):
        h = H().write(1, "a").read(3, "b").inv(2, "write", "b").info(2)
        self.assertEqual(h.verdict(), NOT_LINEARIZABLE)

    def test_an_unknown_write_may_take_effect_long_after_it_timed_out(self):
        h = (H().write(1, "a").inv(2, "write", "b").info(2)
             .read(3, "a").write(1, "c").read(3, "c").read(3, "b"))
        self.assertEqual(h.verdict(), LINEARIZABLE)

    def test_a_failed_write_must_not_have_happened(self):
        h = H().write(1, "a").inv(2, "write", "b").fail(2).read(3, "b")
        self.assertEqual(h.verdict(), NOT_LINEARIZABLE)
        h = H().write(1, "a").inv(2, "write", "b").fail(2).read(3, "a")
        self.assertEqual(h.verdict(), LINEARIZABLE)

    def test_an_unknown_cas_explains_a_later_successful_cas(self):
        h = H().write(1, 0).inv(2, "cas", [0, 1]).info(2).cas(3, 1, 2).read(1, 2)
        self.assertEqual(h.verdict(), LINEARIZABLE)

    def test_an_unknown_cas_needs_its_expected_value(self):
        h = H().write(1, 5).inv(2, "cas", [0, 1]).info(2).read(3, 1)
        self.assertEqual(h.verdict(), NOT_LINEARIZABLE)

    def test_an_invocation_without_completion_is_unknown(self):
        h = H().write(1, "a").inv(2, "write", "b").read(3, "b").read(3, "b")
        self.assertEqual(h.verdict(), LINEARIZABLE)

    def test_unknown_reads_constrain_nothing(self):
        h = H().write(1, "a").inv(2, "read").info(2).read(3, "a")
        self.assertEqual(h.verdict(), LINEARIZABLE)

    def test_many_unknown_writes_that_nobody_read(self):
        h = H().write(0, "a")
        for p in range(1, 200):
            h.inv(p, "write", "w%d" % p).info(p)
        h.read(0, "a").write(0, "b").read(0, "b")
        self.assertEqual(h.verdict(), LINEARIZABLE)
        h.read(0, "w7").read(0, "b")
        self.assertEqual(h.verdict(), NOT_LINEARIZABLE)


class Keys(unittest.TestCase):
    """Each key is its own register; a report names the guilty key."""

    def test_keys_are_independent(self):
        h = H().write(1, "a", key="x").write(1, "b", key="y").read(2, "a", key="x")
        self.assertEqual(h.verdict(), LINEARIZABLE)

    def test_the_report_names_the_key_and_the_stuck_operation(self):
        h = (H().write(1, "a", key="x").write(1, "a", key="y").write(1, "b", key="y")
             .read(2, "a", key="x").read(2, "a", key="y"))
        result = checker.check(h.events)
        self.assertEqual(result.verdict, NOT_LINEARIZABLE)
        self.assertEqual(result.keys["x"].verdict, LINEARIZABLE)
        self.assertEqual(result.keys["y"].verdict, NOT_LINEARIZABLE)
        stuck = result.keys["y"].stuck
        self.assertEqual((stuck.f, stuck.value), ("read", "a"))
        self.assertEqual(result.keys["y"].state, "b")
        text = result.explain()
        self.assertIn("key 'y'", text)
        self.assertIn("read 'a'", text)
        self.assertEqual(result.exit_code, 1)


class Input(unittest.TestCase):
    """Malformed histories are errors, not verdicts."""

    def test_a_completion_without_invocation(self):
        events = [{"process": 1, "type": "ok", "f": "write", "key": "x", "value": 1, "time": 0}]
        with self.assertRaises(checker.HistoryError):
            checker.check(events)

    def test_two_pending_invocations_of_one_process(self):
        h = H().inv(1, "write", 1).inv(1, "write", 2)
        with self.assertRaises(checker.HistoryError):
            checker.check(h.events)

    def test_nemesis_events_are_ignored(self):
        h = H().write(1, "a")
        h.events.append({"process": "nemesis", "type": "info", "f": "kill", "value": "n1",
                         "time": 99})
        self.assertEqual(h.verdict(), LINEARIZABLE)


def simulate(seed, processes=6, keys=4, ops=2000, info_rate=0.05):
    """A history of a linearizable register with unknown operations.

    Each process issues operations one after another; each operation takes
    effect at a random instant inside its interval (an unknown one takes
    effect with probability 1/2, or never).  Outputs are computed by applying
    the operations in the order of those instants, so the history is
    linearizable by construction.  Returns the list of events.
    """
    rng = random.Random(seed)
    planned = []                # (call, point, ret, process, f, key, args, applies, type)
    clock = [0] * processes
    counter = 0
    for _ in range(ops):
        p = rng.randrange(processes)
        call = clock[p] + rng.randint(1, 20)
        point = call + rng.randint(0, 30)
        ret = point + rng.randint(0, 30)
        f = rng.choice(("read", "read", "write", "cas"))
        key = "k%d" % rng.randrange(keys)
        counter += 1
        type_ = "info" if rng.random() < info_rate else "ok"
        applies = type_ == "ok" or rng.random() < 0.5
        planned.append([call, point, ret, p, f, key, "v%d" % counter, applies, type_])
        clock[p] = ret
    state = {}
    events = []
    for op in sorted(planned, key=lambda o: o[1]):
        call, point, ret, p, f, key, new, applies, type_ = op
        current = state.get(key)
        if f == "read":
            invoke_value, done_value = None, current
        elif f == "write":
            invoke_value = done_value = new
            if applies:
                state[key] = new
        else:
            expected = current if rng.random() < 0.6 else "v%d" % rng.randrange(counter + 1)
            invoke_value = done_value = [expected, new]
            if expected != current and type_ == "ok":
                type_ = "fail"
            elif expected == current and applies:
                state[key] = new
        if not applies and type_ == "ok":
            type_ = "fail"
        events.append((call, 0, {"process": p, "type": "invoke", "f": f, "key": key,
                                 "value": invoke_value, "time": call}))
        events.append((ret, 1, {"process": p, "type": type_, "f": f, "key": key,
                                "value": done_value if type_ == "ok" else invoke_value,
                                "time": ret}))
    events.sort(key=lambda e: (e[0], e[1]))
    return [e[2] for e in events]


class Generated(unittest.TestCase):
    """Larger seeded histories from a simulated linearizable register."""

    def test_simulated_histories_are_linearizable(self):
        for seed in range(20):
            events = simulate(seed)
            result = checker.check(events)
            self.assertEqual(result.verdict, LINEARIZABLE, "seed %d\n%s" % (seed, result.explain()))

    def test_a_large_history_is_checked(self):
        events = simulate(7, processes=10, keys=10, ops=30000)
        self.assertEqual(checker.check(events).verdict, LINEARIZABLE)

    def test_a_stale_read_planted_in_a_simulated_history_is_found(self):
        found = 0
        for seed in range(20):
            events = simulate(seed, processes=4, keys=2, ops=600, info_rate=0.0)
            # Make one late read return a value from long before.
            reads = [i for i, e in enumerate(events)
                     if e["f"] == "read" and e["type"] == "ok" and e["value"] is not None]
            writes = [e for e in events if e["f"] == "write" and e["type"] == "ok"]
            victim = events[reads[-1]]
            old = next(w["value"] for w in writes if w["key"] == victim["key"])
            if old == victim["value"]:
                continue
            victim["value"] = old
            result = checker.check(events)
            self.assertEqual(result.verdict, NOT_LINEARIZABLE, "seed %d" % seed)
            found += 1
        self.assertGreater(found, 10)

    def test_a_small_budget_gives_unknown_not_a_hang(self):
        events = simulate(3, processes=10, keys=1, ops=3000)
        result = checker.check(events, budget=50)
        self.assertEqual(result.verdict, UNKNOWN)
        self.assertEqual(result.exit_code, 2)
        self.assertIn("search too large", result.summary())


def brute_force(ops, initial=None):
    """Linearizable? by trying every order that respects real time (tiny histories).

    ``ops`` are :class:`checker.Op` (fail ones already removed).  An unknown
    operation may be placed anywhere after its invocation, or left out.
    """
    required = [op for op in ops if op.ret != checker.INFINITY]

    def search(remaining, state):
        if not any(op.ret != checker.INFINITY for op in remaining):
            return True
        for op in remaining:
            if any(other.ret < op.call for other in remaining if other is not op):
                continue
            allowed, new_state = checker._step(state, op)
            if allowed and search([o for o in remaining if o is not op], new_state):
                return True
        return False

    return search(list(ops), initial) if required else True


def random_small_history(rng):
    """A few overlapping operations on one key over a tiny set of values."""
    values = ["a", "b", "c", "d", "e", "f"][:rng.randint(2, 6)]
    events, pending, time = [], {}, 0
    for _ in range(rng.randint(2, 7)):
        process = rng.randrange(3)
        if process in pending:
            f, value = pending.pop(process)
            type_ = rng.choice(("ok", "ok", "ok", "info", "fail"))
            out = rng.choice(values + [None]) if f == "read" else value
            events.append({"process": process, "type": type_, "f": f, "key": "x",
                           "value": out if type_ == "ok" or f != "read" else None,
                           "time": time})
        else:
            f = rng.choice(("read", "write", "cas"))
            value = (None if f == "read" else rng.choice(values) if f == "write"
                     else [rng.choice(values), rng.choice(values)])
            pending[process] = (f, value)
            events.append({"process": process, "type": "invoke", "f": f, "key": "x",
                           "value": value, "time": time})
        time += rng.choice((0, 1))  # equal times happen too
    for process, (f, value) in pending.items():
        type_ = rng.choice(("ok", "info"))
        out = rng.choice(values + [None]) if f == "read" else value
        events.append({"process": process, "type": type_, "f": f, "key": "x",
                       "value": out if type_ == "ok" else value, "time": time})
    return events


class AgainstBruteForce(unittest.TestCase):
    """The search (and its pruning) agrees with exhaustive enumeration.

    Values often repeat here (two to six of them), so the pruning rules that
    rely on a value being written once must switch themselves off correctly.
    """

    def test_random_small_histories(self):
        rng = random.Random(2024)
        seen = {True: 0, False: 0}
        for case in range(5000):
            events = random_small_history(rng)
            ops = [op for op in checker.pair_operations(events) if op.type != "fail"]
            expected = brute_force(ops)
            got = checker.check(events).verdict
            self.assertEqual(got, LINEARIZABLE if expected else NOT_LINEARIZABLE,
                             "case %d: %s" % (case, json.dumps(events)))
            seen[expected] += 1
        self.assertGreater(seen[True], 300)
        self.assertGreater(seen[False], 300)


class CommandLine(unittest.TestCase):
    """``checker.py history.jsonl`` prints the verdict and exits 0/1/2."""

    def run_main(self, events, *args):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "history.jsonl")
            with open(path, "w", encoding="utf-8") as stream:
                for event in events:
                    stream.write(json.dumps(event) + "\n")
            out = io.StringIO()
            with redirect_stdout(out):
                code = checker.main([path] + list(args))
            return code, out.getvalue()

    def test_exit_codes(self):
        code, out = self.run_main(H().write(1, "a").read(2, "a").events)
        self.assertEqual((code, out.split()[0]), (0, LINEARIZABLE))
        code, out = self.run_main(H().write(1, "a").read(2, "b").events)
        self.assertEqual(code, 1)
        self.assertIn("not linearizable", out)
        code, out = self.run_main(simulate(3, processes=10, keys=1, ops=3000), "--budget", "50")
        self.assertEqual(code, 2)

    def test_json_output(self):
        code, out = self.run_main(H().write(1, "a").read(2, "b").events, "--json")
        self.assertEqual(code, 1)
        data = json.loads(out)
        self.assertEqual(data["verdict"], NOT_LINEARIZABLE)
        self.assertEqual(data["keys"]["x"]["stuck"]["value"], "b")


if __name__ == "__main__":
    unittest.main()
