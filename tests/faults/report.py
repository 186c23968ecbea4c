"""A run's report: operation counts, latency percentiles, faults, verdict, plot.

:func:`write_report` takes the history (the driver's events), the nemesis'
fault windows and the checks' results, and writes beside the history:

* ``report.txt`` -- human-readable summary;
* ``summary.json`` -- the same, for machines;
* ``latency.png`` -- latency of every operation over time, by kind and
  outcome, with the fault windows shaded (gnuplot; skipped with a note if
  gnuplot is missing or fails).

Times in the history are nanoseconds; the report uses seconds and
milliseconds.
"""

import json
import math
import os
import shutil
import subprocess

OUTCOMES = ("ok", "fail", "info")
SERIES = (("read", "ok", "#1f77b4"), ("write", "ok", "#2ca02c"), ("cas", "ok", "#9467bd"),
          (None, "fail", "#ff7f0e"), (None, "info", "#d62728"))


def completed_ops(events):
    """[(process, f, key, type, invoke ns, complete ns)] in completion order."""
    pending, ops = {}, []
    for event in events:
        if event.get("f") not in ("read", "write", "cas"):
            continue
        if event["type"] == "invoke":
            pending[event["process"]] = event
        elif event["process"] in pending:
            call = pending.pop(event["process"])
            ops.append((event["process"], event["f"], event.get("key"), event["type"],
                        call["time"], event["time"]))
    return ops


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list (``None`` if empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values) - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def statistics(events):
    """Counts by kind and outcome, and latency percentiles (ms) of ok operations."""
    ops = completed_ops(events)
    counts = {f: {t: 0 for t in OUTCOMES} for f in ("read", "write", "cas")}
    latencies = {"read": [], "write": [], "cas": [], "all": []}
    for _, f, _, type_, call, ret in ops:
        counts[f][type_] = counts[f].get(type_, 0) + 1
        if type_ == "ok":
            ms = (ret - call) / 1e6
            latencies[f].append(ms)
            latencies["all"].append(ms)
    table = {}
    for name, values in latencies.items():
        values.sort()
        table[name] = {"count": len(values)}
        for p in (50, 90, 99, 99.9, 100):
            v = percentile(values, p)
            table[name]["p%s" % p if p != 100 else "max"] = None if v is None else round(v, 3)
    totals = {t: sum(c[t] for c in counts.values()) for t in OUTCOMES}
    return {"ops": len(ops), "by_outcome": totals, "by_kind": counts, "latency_ms": table}


def plot(events, windows, png_path, title="latency"):
    """Write ``png_path`` with gnuplot; return None or a note on why not."""
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        return "gnuplot not found: no plot"
    base = os.path.splitext(png_path)[0]
    data_path, script_path = base + ".dat", base + ".gp"
    ops = completed_ops(events)
    blocks = []
    with open(data_path, "w", encoding="utf-8") as data:
        for f, type_, _ in SERIES:
            rows = [(call / 1e9, max((ret - call) / 1e6, 0.001)) for _, of, _, ot, call, ret in ops
                    if ot == type_ and (f is None or of == f)]
            blocks.append(bool(rows))
            data.write("# %s %s\n" % (f or "any", type_))
            for x, y in rows:
                data.write("%.6f %.3f\n" % (x, y))
            if not rows:
                data.write("0 NaN\n")
            data.write("\n\n")
    lines = ['set terminal pngcairo size 1400,600 enhanced font "sans,10"',
             'set output "%s"' % png_path,
             'set title "%s"' % title.replace('"', "'"),
             'set xlabel "time since start (s)"', 'set ylabel "latency (ms)"',
             "set logscale y", "set grid", "set key outside right top",
             "set style fill transparent solid 0.15 noborder"]
    for number, window in enumerate(windows, 1):
        start = window["start"] / 1e9
        end = (window["end"] if window["end"] is not None else window["start"]) / 1e9
        lines.append('set object %d rect from %.6f, graph 0 to %.6f, graph 1 '
                     'fc rgb "#7f7f7f" fs transparent solid 0.2 noborder behind' % (number, start, max(end, start + 0.01)))
        lines.append('set label %d "%s" at %.6f, graph 0.98 rotate by 90 right font ",8"'
                     % (number, window["fault"], start))
    plots = []
    for index, (f, type_, color) in enumerate(SERIES):
        if blocks[index]:
            plots.append('"%s" index %d using 1:2 with points pt 7 ps 0.3 lc rgb "%s" '
                         'title "%s %s"' % (data_path, index, color, f or "any", type_))
    if not plots:
        return "no completed operations: no plot"
    lines.append("plot " + ", \\\n     ".join(plots))
    with open(script_path, "w", encoding="utf-8") as script:
        script.write("\n".join(lines) + "\n")
    try:
        done = subprocess.run([gnuplot, script_path], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return "gnuplot failed: %s" % error
    if done.returncode != 0:
        return "gnuplot failed: %s" % done.stderr.strip()[:500]
    return None


def write_report(out_dir, events, windows, checks, info):
    """Write report.txt, summary.json and latency.png into ``out_dir``.

    ``checks`` maps a check's name to {"ok": bool or None, "detail": str};
    ``info`` holds the run's parameters (seed, mode, ...).  Returns the
    summary dict.
    """
    stats = statistics(events)
    note = plot(events, windows, os.path.join(out_dir, "latency.png"),
                title="%s seed %s" % (info.get("mode", ""), info.get("seed", "")))
    failed = [name for name, c in checks.items() if c["ok"] is False]
    unknown = [name for name, c in checks.items() if c["ok"] is None]
    verdict = "FAIL" if failed else ("UNKNOWN" if "linearizable" in unknown else "PASS")
    summary = {"verdict": verdict, "run": info, "checks": checks, "stats": stats,
               "faults": windows, "plot": note or "latency.png"}
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as stream:
        json.dump(summary, stream, indent=1, default=str)

    lines = ["verdict: %s" % verdict, ""]
    lines += ["%s: %s" % (k, v) for k, v in info.items()]
    lines += ["", "checks:"]
    for name, c in checks.items():
        state = {True: "ok", False: "FAILED", None: "skipped/unknown"}[c["ok"]]
        lines.append("  %-22s %-16s %s" % (name, state, c.get("detail", "")))
    lines += ["", "operations: %d (%s)" % (stats["ops"], ", ".join(
        "%s %d" % (t, n) for t, n in stats["by_outcome"].items()))]
    for f, c in stats["by_kind"].items():
        lines.append("  %-6s %s" % (f, "  ".join("%s %d" % (t, n) for t, n in c.items())))
    lines += ["", "latency of ok operations (ms):"]
    for name, row in stats["latency_ms"].items():
        lines.append("  %-6s n=%-7d %s" % (name, row["count"], "  ".join(
            "%s=%s" % (k, row[k]) for k in ("p50", "p90", "p99", "p99.9", "max"))))
    lines += ["", "faults (%d):" % len(windows)]
    for w in windows:
        end = "open" if w["end"] is None else "%.3f" % (w["end"] / 1e9)
        lines.append("  %8.3f .. %8s s  %-10s %s" % (w["start"] / 1e9, end, w["fault"],
                                                    w["description"]))
    lines += ["", "plot: %s" % (note or os.path.join(out_dir, "latency.png"))]
    with open(os.path.join(out_dir, "report.txt"), "w", encoding="utf-8") as stream:
        stream.write("\n".join(lines) + "\n")
    return summary
