#!/usr/bin/env python3
"""Linearizability checker for a history of register operations.

The history is JSON lines, one event per line::

    {"process": 3, "type": "invoke", "f": "write", "key": "k1", "value": "3-17", "time": 1200}
    {"process": 3, "type": "ok",     "f": "write", "key": "k1", "value": "3-17", "time": 1450}

``type`` is ``invoke`` for the start of an operation and one of ``ok``,
``fail`` or ``info`` for its completion (matched to the pending invocation of
the same process).  ``f`` is ``read`` (the completion's value is what was read,
``null`` for a missing key), ``write`` (value written) or ``cas`` (value is
``[expected, new]``; ``ok`` means it swapped, a CAS that found a different
value is recorded as ``fail``).  ``time`` is any number that grows with real
time (the harness writes nanoseconds).  Other events (a ``process`` of
``"nemesis"``, or an ``f`` not listed above) are ignored.

What each outcome means to the checker:

* ``ok``: the operation took effect exactly once, at some instant between its
  invocation and its completion.
* ``fail``: it certainly did not take effect; it is dropped.
* ``info``: unknown.  It may have taken effect at any instant after its
  invocation, or never.  An unknown read constrains nothing and is dropped.
  An invocation without a completion is treated as ``info``.

The model is one register per key, starting empty (``None``).  Keys are
independent, so each key is checked on its own (linearizability is local,
Herlihy & Wing 1990).

The search is the Wing & Gong algorithm with Lowe's just-in-time
linearization and memoisation ("Testing for linearizability", Lowe 2017; the
same algorithm as Knossos' ``linear`` and Porcupine): walk the time-ordered
list of invocation and completion events; at an invocation, try to linearize
that operation now (if the model allows it and the pair (set of linearized
operations, register value) has not been seen before); at a completion whose
operation has not been linearized, undo the most recent choice.  The set of
linearized operations is memoised by a 128-bit Zobrist hash (a random 128-bit
word per operation, XORed), so a cache entry costs a few dozen bytes whatever
the history's length; two different sets share a hash with probability about
2**-128 per pair, far below anything a run can reach.

Pruning that is exact (it never changes the verdict), applied per key before
the search:

* failed operations and unknown reads are dropped;
* an unknown write or CAS whose new value no remaining operation ever
  observes (no read returns it, no CAS expects it) is dropped: taking it out
  of any valid linearization leaves a valid one, because nothing between it
  and the next change of the register looks at the register;
* an unknown operation that writes a value no other operation writes, and
  which some successful read or CAS observes, must have taken effect before
  the first such observer completed; its completion is moved there, which
  closes the otherwise unbounded window of an unknown operation.

The search has a budget (steps per key); when it runs out the verdict for
that key is "unknown (search too large)", never a hang.

Command line::

    python3 tests/faults/checker.py history.jsonl [--budget N] [--json]

exits 0 if the history is linearizable, 1 if it is not (the report names the
key and the operations around the point where no linearization exists), 2 if
the search ran out of budget or the input is malformed.
"""

import argparse
import json
import random
import sys

LINEARIZABLE = "linearizable"
NOT_LINEARIZABLE = "not linearizable"
UNKNOWN = "unknown"

FUNCTIONS = ("read", "write", "cas")
INFINITY = float("inf")

# Steps of the search per key before the verdict is "unknown".
DEFAULT_BUDGET = 2_000_000


class HistoryError(ValueError):
    """The history is malformed (a completion without an invocation, ...)."""


class Op:
    """One operation, after its invocation and completion were paired.

    ``call`` and ``ret`` are times (``ret`` is infinite for an unknown
    operation); ``value`` is the read value, the written value, or the
    ``(expected, new)`` pair of a CAS; ``index`` is the position of the
    invocation in the history (a stable identity used in reports).
    """

    __slots__ = ("index", "process", "f", "key", "value", "type", "call", "ret")

    def __init__(self, index, process, f, key, value, type_, call, ret):
        self.index = index
        self.process = process
        self.f = f
        self.key = key
        self.value = value
        self.type = type_
        self.call = call
        self.ret = ret

    def describe(self):
        """A one-line, human-readable rendering of the operation."""
        if self.f == "cas":
            what = "cas %r->%r" % tuple(self.value)
        elif self.f == "write":
            what = "write %r" % (self.value,)
        else:
            what = "read %r" % (self.value,)
        ret = "?" if self.ret == INFINITY else _fmt_time(self.ret)
        return "#%d p%s %s %s [%s .. %s]" % (
            self.index, self.process, self.type, what, _fmt_time(self.call), ret)

    def to_json(self):
        return {"index": self.index, "process": self.process, "type": self.type,
                "f": self.f, "key": self.key, "value": self.value,
                "invoke": self.call, "complete": None if self.ret == INFINITY else self.ret}


def _fmt_time(t):
    if isinstance(t, float) and t.is_integer():
        t = int(t)
    return str(t)


def _hashable(value):
    """JSON arrays become tuples so that values can be compared and hashed."""
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


# ---------------------------------------------------------------------------
# Reading a history.

def read_history(path):
    """Return the list of events (dicts) in a JSON-lines file."""
    events = []
    with open(path, "r", encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            line = line.strip()
            if not line:
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise HistoryError("line %d: %s" % (number, error)) from None
    return events


def pair_operations(events):
    """Pair invocations with completions; return the list of :class:`Op`.

    A completion belongs to the pending invocation of the same process.
    Failed operations are kept here (with type ``fail``) so that reports can
    count them; :func:`check` drops them.
    """
    pending = {}
    ops = []
    for index, event in enumerate(events):
        f = event.get("f")
        process = event.get("process")
        if process == "nemesis" or f not in FUNCTIONS:
            continue
        type_ = event.get("type")
        time = event.get("time", index)
        if type_ == "invoke":
            if process in pending:
                raise HistoryError("event %d: process %r invokes while an operation is pending"
                                   % (index, process))
            pending[process] = (index, event)
        elif type_ in ("ok", "fail", "info"):
            if process not in pending:
                raise HistoryError("event %d: completion of process %r without an invocation"
                                   % (index, process))
            call_index, call = pending.pop(process)
            if call.get("f") != f or call.get("key") != event.get("key"):
                raise HistoryError("event %d: completion does not match invocation %d"
                                   % (index, call_index))
            value = event.get("value") if type_ == "ok" or f != "read" else None
            if f == "cas":
                value = _hashable(call.get("value"))
                if not (isinstance(value, tuple) and len(value) == 2):
                    raise HistoryError("event %d: cas value must be [expected, new]" % call_index)
            elif f == "write":
                value = _hashable(call.get("value"))
            else:
                value = _hashable(value)
            ret = INFINITY if type_ == "info" else time
            ops.append(Op(call_index, process, f, call.get("key"), value, type_,
                          call.get("time", call_index), ret))
        else:
            raise HistoryError("event %d: unknown type %r" % (index, type_))
    for process, (call_index, call) in pending.items():
        value = _hashable(call.get("value"))
        ops.append(Op(call_index, process, call["f"], call.get("key"), value, "info",
                      call.get("time", call_index), INFINITY))
    ops.sort(key=lambda op: op.index)
    return ops


# ---------------------------------------------------------------------------
# The register model.

def _step(state, op):
    """Apply ``op`` to register value ``state``: (allowed, new state)."""
    f = op.f
    if f == "read":
        return state == op.value, state
    if f == "write":
        return True, op.value
    expected, new = op.value
    if state == expected:
        return True, new
    return False, state


def _written(op):
    """The value an operation writes, or a marker if it writes nothing."""
    if op.f == "write":
        return op.value
    if op.f == "cas":
        return op.value[1]
    return _NOTHING


_NOTHING = object()


def prune(ops, initial=None):
    """Exact simplifications of one key's operations (see the module doc).

    Returns a new list; it may hold copies of unknown operations with a
    finite completion time.
    """
    ops = [op for op in ops if op.type != "fail" and not (op.type == "info" and op.f == "read")]

    observed = set()
    for op in ops:
        if op.f == "read":
            observed.add(op.value)
        elif op.f == "cas":
            observed.add(op.value[0])
    ops = [op for op in ops
           if not (op.type == "info" and _written(op) not in observed)]

    writers = {}
    for op in ops:
        value = _written(op)
        if value is not _NOTHING:
            writers[value] = writers.get(value, 0) + 1
    first_observer = {}
    for op in ops:
        if op.type != "ok":
            continue
        if op.f == "read":
            value = op.value
        elif op.f == "cas":
            value = op.value[0]
        else:
            continue
        if value not in first_observer or op.ret < first_observer[value]:
            first_observer[value] = op.ret
    result = []
    for op in ops:
        value = _written(op)
        if (op.type == "info" and value != initial and writers.get(value) == 1
                and value in first_observer and first_observer[value] > op.call):
            op = Op(op.index, op.process, op.f, op.key, op.value, op.type, op.call,
                    first_observer[value])
            # Still unknown in reports, but bounded: it is now required, because
            # the observer could not have seen the value otherwise.
            op.type = "info*"
        result.append(op)
    return result


# ---------------------------------------------------------------------------
# The search.

class KeyResult:
    """The verdict for one key, with the evidence for a violation."""

    def __init__(self, key, verdict, ops, steps, stuck=None, linearized=None, state=None):
        self.key = key
        self.verdict = verdict
        self.ops = ops              # the pruned operations that were searched
        self.steps = steps
        self.stuck = stuck          # the operation whose completion could not be passed
        self.linearized = linearized or []  # the tail of the deepest linearization found
        self.state = state          # register value at that point

    def to_json(self):
        out = {"key": self.key, "verdict": self.verdict, "ops": len(self.ops),
               "steps": self.steps}
        if self.verdict == NOT_LINEARIZABLE:
            out["stuck"] = self.stuck.to_json()
            out["state"] = self.state
            out["linearized_tail"] = [op.to_json() for op in self.linearized]
            out["concurrent"] = [op.to_json() for op in self.concurrent()]
        return out

    def concurrent(self):
        """Operations whose interval overlaps the stuck operation's."""
        if self.stuck is None:
            return []
        s = self.stuck
        return [op for op in self.ops
                if op is not s and op.call <= s.ret and op.ret >= s.call]

    def explain(self, limit=12):
        """A multi-line explanation of the violation (empty otherwise)."""
        if self.verdict != NOT_LINEARIZABLE:
            return ""
        lines = ["key %r: no linearization exists" % (self.key,),
                 "  cannot complete: %s" % self.stuck.describe(),
                 "  register value after the longest linearizable prefix: %r" % (self.state,),
                 "  last operations of that prefix (in linearization order):"]
        lines += ["    " + op.describe() for op in self.linearized[-limit:]]
        concurrent = self.concurrent()
        lines.append("  operations concurrent with it (%d):" % len(concurrent))
        lines += ["    " + op.describe() for op in concurrent[:limit]]
        if len(concurrent) > limit:
            lines.append("    ... %d more" % (len(concurrent) - limit))
        return "\n".join(lines)


def check_key(key, ops, budget=DEFAULT_BUDGET, initial=None, seed=0):
    """Check one key's operations (already paired); return a :class:`KeyResult`."""
    ops = prune(ops, initial)
    n = len(ops)
    required = sum(1 for op in ops if op.ret != INFINITY)
    if required == 0:
        return KeyResult(key, LINEARIZABLE, ops, 0)

    # Events: (time, kind, op number); at equal times invocations come first,
    # so that operations touching at an instant count as concurrent (the
    # conservative choice: it can only add linearizations).
    events = []
    for i, op in enumerate(ops):
        events.append((op.call, 0, op.index, i))
        events.append((op.ret, 1, op.index, i))
    events.sort()

    # A doubly linked list of entries over arrays; entry 0 is the head.
    # Entry e (1-based) is events[e-1]; is_call[e], opof[e], match[e].
    size = 2 * n + 1
    nxt = list(range(1, size + 1))
    nxt[size - 1] = 0           # 0 terminates the list
    prv = list(range(-1, size - 1))
    is_call = [False] * size
    opof = [0] * size
    match = [0] * size
    call_entry = [0] * n
    ret_entry = [0] * n
    for e, (_, kind, _, i) in enumerate(events, 1):
        opof[e] = i
        if kind == 0:
            is_call[e] = True
            call_entry[i] = e
        else:
            ret_entry[i] = e
    for i in range(n):
        match[call_entry[i]] = ret_entry[i]
    unbounded = [op.ret == INFINITY for op in ops]

    rng = random.Random(seed)
    zobrist = [rng.getrandbits(128) for _ in range(n)]

    def lift(e):
        r = match[e]
        nxt[prv[e]] = nxt[e]
        prv[nxt[e]] = prv[e]
        nxt[prv[r]] = nxt[r]
        prv[nxt[r]] = prv[r]

    def unlift(e):
        r = match[e]
        prv[nxt[r]] = r
        nxt[prv[r]] = r
        prv[nxt[e]] = e
        nxt[prv[e]] = e

    state = initial
    linearized = 0              # Zobrist hash of the linearized set
    done_required = 0
    cache = set()
    stack = []                  # (entry, state before it, required?)
    best_depth = -1
    best = None
    steps = 0
    entry = nxt[0]
    while entry != 0:
        steps += 1
        if steps > budget:
            return KeyResult(key, UNKNOWN, ops, steps)
        if is_call[entry]:
            i = opof[entry]
            allowed, new_state = _step(state, ops[i])
            if allowed:
                new_linearized = linearized ^ zobrist[i]
                memo = (new_linearized, new_state)
                if memo not in cache:
                    cache.add(memo)
                    stack.append((entry, state))
                    state = new_state
                    linearized = new_linearized
                    if not unbounded[i]:
                        done_required += 1
                        if done_required == required:
                            return KeyResult(key, LINEARIZABLE, ops, steps)
                    lift(entry)
                    entry = nxt[0]
                    continue
            entry = nxt[entry]
        else:
            # A completion whose operation is not linearized: every remaining
            # completion is an unknown operation's (they sort last), so the
            # required ones are all done -- or this is a dead end.
            if unbounded[opof[entry]]:
                return KeyResult(key, LINEARIZABLE, ops, steps)
            if len(stack) > best_depth:
                best_depth = len(stack)
                best = (ops[opof[entry]], [ops[opof[e]] for e, _ in stack[-16:]], state)
            if not stack:
                break
            top, state = stack.pop()
            i = opof[top]
            linearized ^= zobrist[i]
            if not unbounded[i]:
                done_required -= 1
            unlift(top)
            entry = nxt[top]
    stuck, tail, at_state = best
    return KeyResult(key, NOT_LINEARIZABLE, ops, steps, stuck, tail, at_state)


class Result:
    """The verdict for a whole history: per-key results and a summary."""

    def __init__(self, keys, counts):
        self.keys = keys            # {key: KeyResult}
        self.counts = counts        # {"ok": n, "fail": n, "info": n}
        verdicts = {r.verdict for r in keys.values()}
        if NOT_LINEARIZABLE in verdicts:
            self.verdict = NOT_LINEARIZABLE
        elif UNKNOWN in verdicts:
            self.verdict = UNKNOWN
        else:
            self.verdict = LINEARIZABLE

    @property
    def exit_code(self):
        return {LINEARIZABLE: 0, NOT_LINEARIZABLE: 1}.get(self.verdict, 2)

    def summary(self):
        bad = [k for k, r in self.keys.items() if r.verdict != LINEARIZABLE]
        text = "%s (%d keys, %d ok, %d fail, %d info)" % (
            self.verdict, len(self.keys), self.counts.get("ok", 0),
            self.counts.get("fail", 0), self.counts.get("info", 0))
        if self.verdict == UNKNOWN:
            text = text.replace(UNKNOWN, "unknown (search too large)", 1)
        if bad:
            text += "; keys: " + ", ".join(
                "%s=%s" % (k, self.keys[k].verdict) for k in sorted(bad, key=str))
        return text

    def explain(self):
        parts = [self.summary()]
        for key in sorted(self.keys, key=str):
            text = self.keys[key].explain()
            if text:
                parts.append(text)
        return "\n".join(parts)

    def to_json(self):
        return {"verdict": self.verdict, "counts": self.counts,
                "keys": {str(k): r.to_json() for k, r in self.keys.items()}}


def check_ops(ops, budget=DEFAULT_BUDGET, initial=None):
    """Check paired operations (:func:`pair_operations`); return a :class:`Result`."""
    by_key = {}
    counts = {"ok": 0, "fail": 0, "info": 0}
    for op in ops:
        counts[op.type] = counts.get(op.type, 0) + 1
        by_key.setdefault(op.key, []).append(op)
    results = {key: check_key(key, key_ops, budget, initial)
               for key, key_ops in by_key.items()}
    return Result(results, counts)


def check(events, budget=DEFAULT_BUDGET, initial=None):
    """Check a list of history events (dicts); return a :class:`Result`."""
    return check_ops(pair_operations(events), budget, initial)


def check_file(path, budget=DEFAULT_BUDGET, initial=None):
    """Check a JSON-lines history file; return a :class:`Result`."""
    return check(read_history(path), budget, initial)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("history", help="history file (JSON lines)")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET,
                        help="search steps per key before giving up (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        result = check_file(args.history, args.budget)
    except (OSError, HistoryError) as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_json(), indent=1, default=str))
    else:
        print(result.explain())
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
