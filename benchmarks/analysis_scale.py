"""Post-load analysis at game-day scale: wall time and peak RSS, old vs new, synthetic records.

Issue 13 asks for a 30-minute game day at 1,000 req/s (1.8M requests) with the post-load work
(merge the load's records into the run directory, judge every check, write every report) under
30 s and the harness under 500 MB RSS. This benchmark writes realistic ClipStream records once
per size (two Locust processes, the six classes at their shares, a history of writes,
increments, reads of one key and list reads of 10 keys, three faults with outages and
failovers, a final read), then runs the post-load path exactly as the engine does, in a fresh
subprocess per size and implementation, measuring wall time (``time.perf_counter``) and peak
RSS (``ru_maxrss`` of that subprocess).

Side by side with the code of a git revision (default ``0967c81``, the last before the streaming
analysis, checked out with
``git worktree add``), in the same run::

    .venv/bin/python benchmarks/analysis_scale.py                   # 100k, 1M, 1.8M vs 0967c81
    .venv/bin/python benchmarks/analysis_scale.py --sizes 100000 --old /tmp/old
    .venv/bin/python benchmarks/analysis_scale.py --rev ed3eb02 --old-impl new   # vs streaming

Records are cached under ``--cache`` (default ``/tmp/drills-analysis-scale``, 2.2 GB for the three
sizes). Prints one table (wall and CPU seconds, MB, ratios, and whether both judged every check
identically) and writes it as JSON with ``--json``.

Measured on the 2-core box (shared; CPU seconds are the steadier figure):

    requests   old s   new s  ratio  old CPU new CPU   old MB  new MB  ratio  same checks
      100000    45.0     6.9   6.5x     35.0     5.5      512     171   3.0x  True
     1000000   447.7    48.8   9.2x    344.7    40.6     4330     516   8.4x  True
     1800000   541.4    67.2   8.1x    533.8    64.9     7706     804   9.6x  True

and against the streaming code of ed3eb02 (``--rev ed3eb02 --old-impl new``), after typed
decoding and cheaper read screening:

    requests   old s   new s  ratio  old CPU new CPU   old MB  new MB  ratio  same checks
      100000     4.2     3.4   1.2x      4.2     3.3      171     163   1.0x  True
     1000000    32.9    25.2   1.3x     32.6    24.9      521     469   1.1x  True
     1800000    53.1    45.5   1.2x     52.6    45.0      823     718   1.1x  True

and against 7d96e23 (``--rev 7d96e23 --old-impl new``, another day: the machine ran slower),
after batched merging, a paused collector and shared write sets / counter bounds:

    requests   old s   new s  ratio  old CPU new CPU   old MB  new MB  ratio  same checks
      100000     4.9     3.9   1.2x      4.7     3.8      163     156   1.0x  True
     1000000    34.2    24.6   1.4x     32.8    23.5      433     447   1.0x  True
     1800000    59.7    45.2   1.3x     57.4    43.3      664     701   0.9x  True

and against f1e3899 (``--rev f1e3899 --old-impl new``, a faster day), after the request lines
kept as recorded (typed decoding, no reformatting), the run files written and fsync'd by a
thread while the records are decoded and the run judged, the final read's keys shared and its
counters held as rows, matplotlib imported only to draw, the digest freed before the reports,
and the checks' large transients gone (merged outcomes without a mapping of every id, ack
times only for pairs read at 0, exposure by bisection, sorts without key pairs):

    requests   old s   new s  ratio  old CPU new CPU   old MB  new MB  ratio  same checks
      100000     2.5     2.7   0.9x      2.4     2.8      150     122   1.2x  True
     1000000    17.7    14.5   1.2x     17.4    15.0      442     301   1.5x  True
     1800000    29.2    25.0   1.2x     28.7    25.6      688     465   1.5x  True

(1.8M, ``--only new``, two more runs: 25.0 s / 468 MB and 25.6 s / 469 MB.)
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GENERATOR_VERSION = 3
RATE = 1000.0
#: ClipStream's mix (drills/targets/clipstream/mix.py), report order of its classes.
MIX = {"feed": 50, "view": 20, "like": 10, "upload": 8, "search": 6, "stats": 6}
CLASSES = ("upload", "feed", "view", "like", "search", "stats")
PIDS = (41001, 41002)
T0 = 1_760_000_000.0
LIST_ITEMS = 10
HOT = 50
#: Faults at these fractions of the load: (kind, target, outage of writes s, of reads s, lasts s)
FAULTS = ((0.25, "power_down", "dc-east", 4.0, 1.0, 15.0),
          (0.50, "partition", "dc-west", 3.0, 0.5, 10.0),
          (0.75, "power_down", "dc-west", 5.0, 1.5, 20.0))
DRILL = """
drill: dc-east-power-loss
description: synthetic game day for benchmarks/analysis_scale.py
stack:
  provider: local
  config: {replication: sync, fsync: always, detection: 1.5s}
load: {users: 200, rate: 1000}
timeline:
  baseline: 30s
  faults:
    - {at: 30s, power_down: dc-east, for: 15s}
  settle: 15s
objectives:
  rto: {upload: 10s, view: 10s, like: 10s, feed: 5s, search: 5s, stats: 5s}
  lost_acked_writes: 0
  counters: exact
  split_brain: forbid
  recovery: required
"""


# -- generation ------------------------------------------------------------------------------

class _Proc:
    """One synthetic Locust process: its two files, written in the order a recorder would."""

    def __init__(self, d: Path, pid: int) -> None:
        self.req = (d / f"requests-{pid}.jsonl").open("w", encoding="utf-8")
        self.hist = (d / f"history-{pid}.jsonl").open("w", encoding="utf-8")
        self.pending_req: list[tuple[float, int, str]] = []
        self.pending_hist: list[tuple[float, int, str]] = []
        self.seq = 0
        (d / f"started-{pid}.json").write_text(json.dumps({"t": T0}))

    def flush_until(self, t: float) -> None:
        for heap, fh in ((self.pending_req, self.req), (self.pending_hist, self.hist)):
            while heap and heap[0][0] <= t:
                fh.write(heapq.heappop(heap)[2])

    def later(self, heap: list[tuple[float, int, str]], t: float, obj: dict[str, Any]) -> None:
        self.seq += 1
        heapq.heappush(heap, (t, self.seq, json.dumps(obj, separators=(",", ":")) + "\n"))

    def close(self) -> None:
        self.flush_until(float("inf"))
        self.req.close()
        self.hist.close()


def _outage(t: float, faults: list[dict[str, Any]], *, writes: bool) -> bool:
    for f in faults:
        span = f["w"] if writes else f["r"]
        if f["at"] <= t < f["at"] + span:
            return True
    return False


def _primary(t: float, faults: list[dict[str, Any]]) -> tuple[str, int]:
    epoch, store = 1, "dc-east"
    for f in faults:
        if t >= f["at"] + f["w"]:
            epoch += 1
            store = "dc-west" if store == "dc-east" else "dc-east"
    return store, epoch


def generate(d: Path, n: int, *, seed: int = 7) -> dict[str, Any]:
    """Write ``n`` requests' records under ``d/load`` and the run's facts to ``d/meta.json``."""
    rng = random.Random(seed)
    load = d / "load"
    load.mkdir(parents=True, exist_ok=True)
    duration = n / RATE
    faults = [{"at": T0 + frac * duration, "kind": kind, "target": target, "w": w, "r": r,
               "lasts": lasts, "id": f"f{i + 1}"}
              for i, (frac, kind, target, w, r, lasts) in enumerate(FAULTS)]
    procs = [_Proc(load, pid) for pid in PIDS]
    classes = list(MIX)
    weights = list(MIX.values())
    videos: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    acked_keys: set[str] = set()
    lost: list[str] = []
    for i in range(n):
        t = T0 + i / RATE + rng.random() * 0.0005
        p = procs[i % len(procs)]
        p.flush_until(t)
        op = rng.choices(classes, weights)[0]
        writes = op in ("upload", "view", "like")
        down = _outage(t, faults, writes=writes)
        store, epoch = _primary(t, faults)
        dur = 1.5 if down and rng.random() < 0.7 else rng.lognormvariate(-4.2, 0.5)
        ok = not down
        status = 200 if ok else (0 if dur >= 1.5 else 503)
        error = None if ok else ("timeout" if status == 0 else "http 503")
        p.later(p.pending_req, t + dur, {"t": t, "duration": dur, "op": op, "ok": ok,
                                         "status": status, "error": error})
        proc = f"{p.req.name.rsplit('-', 1)[-1].split('.')[0]}-{i % 97 + 1}"
        done = t + dur
        if op == "upload" or (op in ("view", "like") and videos):
            if op == "upload":
                vid = uuid.UUID(int=rng.getrandbits(128)).hex
                oid, key, counter = vid, vid, None
                f = "write"
            else:
                key = videos[rng.randrange(min(HOT, len(videos)))] if rng.random() < 0.8 \
                    else rng.choice(videos)
                oid, counter, f = uuid.UUID(int=rng.getrandbits(128)).hex, op + "s", "incr"
            inv: dict[str, Any] = {"process": proc, "type": "invoke", "f": f, "id": oid,
                                   "time": t, "key": key, "attempt": 1}
            if counter:
                inv["counter"] = counter
            p.later(p.pending_hist, t, inv)
            kind = "ok" if ok else ("info" if status == 0 else "fail")
            done_op: dict[str, Any] = {"process": proc, "type": kind, "f": f, "id": oid,
                                       "time": done, "key": key, "attempt": 1}
            if counter:
                done_op["counter"] = counter
            if ok:
                done_op.update(store=store, epoch=epoch)
            else:
                done_op["error"] = error
            p.later(p.pending_hist, done, done_op)
            if ok and f == "write":
                videos.append(key)
                counts[key] = {"views": 0, "likes": 0}
                before = faults[0]["at"]
                if before - 0.4 < t < before and len(lost) < 3:
                    lost.append(key)
                else:
                    acked_keys.add(key)
            elif ok and counter:
                counts[key][counter] += 1
        elif op in ("feed", "search", "stats") and videos:
            rid = uuid.UUID(int=rng.getrandbits(128)).hex
            key = rng.choice(videos) if op == "stats" else None
            p.later(p.pending_hist, t, {"process": proc, "type": "invoke", "f": "read",
                                        "id": rid, "time": t, **({"key": key} if key else {})})
            if ok:
                degraded = any(f["at"] <= t < f["at"] + f["lasts"] for f in faults)
                rec: dict[str, Any] = {"process": proc, "type": "ok", "f": "read", "id": rid,
                                       "time": done, "store": store, "epoch": epoch,
                                       "degraded": degraded}
                if key:
                    rec.update(key=key, counts=dict(counts[key]))
                else:
                    shown = videos[-LIST_ITEMS:] if op == "feed" else \
                        rng.sample(videos, min(LIST_ITEMS, len(videos)))
                    rec["items"] = [[v, dict(counts[v])] for v in shown]
            else:
                rec = {"process": proc, "type": "fail", "f": "read", "id": rid, "time": done,
                       "error": error, **({"key": key} if key else {})}
            p.later(p.pending_hist, done, rec)
    for p in procs:
        p.close()
    t_end = T0 + n / RATE
    final = {"primary": "dc-east", "stores": [
        {"name": s, "reachable": True, "role": "primary" if s == "dc-east" else "replica",
         "epoch": 4, "keys": sorted(acked_keys), "counters": counts}
        for s in ("dc-east", "dc-west")]}
    meta = {"n": n, "t0": T0, "load_end": t_end, "version": GENERATOR_VERSION,
            "faults": [{"id": f["id"], "kind": f["kind"], "target": f["target"],
                        "scheduled_at": f["at"] - T0, "injected_at": f["at"],
                        "reverted_at": f["at"] + f["lasts"], "detail": {}} for f in faults],
            "final": final}
    (d / "meta.json").write_text(json.dumps(meta))
    return meta


def records_for(cache: Path, n: int) -> Path:
    d = cache / f"n{n}"
    meta = d / "meta.json"
    if meta.is_file() and json.loads(meta.read_text()).get("version") == GENERATOR_VERSION:
        return d
    if d.exists():
        subprocess.run(["rm", "-rf", str(d)], check=True)
    started = time.perf_counter()
    generate(d, n)
    print(f"generated {n} requests in {time.perf_counter() - started:.0f} s -> {d}",
          file=sys.stderr)
    return d


# -- one measurement (runs in a fresh subprocess, against whichever drills is importable) ------

def measure(records: Path, impl: str) -> dict[str, Any]:
    from drills.catalog import parse_drill
    from drills.engine import reports
    from drills.journal import Journal, PhaseRecord
    from drills.model import FaultRecord, FinalRead

    meta = json.loads((records / "meta.json").read_text())
    spec = parse_drill(DRILL)
    faults = [FaultRecord(**f) for f in meta["faults"]]
    final = FinalRead.from_dict(meta.pop("final"))  # the engine holds no JSON copy of it
    t0, load_end = meta["t0"], meta["load_end"]
    run_dir = Path(tempfile.mkdtemp(prefix=f"scale-{impl}-"))
    journal = Journal.start(spec, provider="local")
    journal.load_started_at, journal.faults, journal.classes = t0, faults, CLASSES
    journal.enter(PhaseRecord("verify", time.time()))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    if impl == "old":  # the engine at HEAD: merge_into, judge on a second read, reports twice
        from drills.load.runner import LoadConfig, LoadRunner
        from drills.verdict import judge

        load = LoadRunner(LoadConfig(locustfile=Path(__file__), host="http://127.0.0.1:9",
                                     record_dir=records / "load"))
        load.merge_into(run_dir)
        judgement = judge(spec, requests=load.requests(), history=load.history(),
                          faults=faults, final=final, t0=t0, converged=True, quiesce_s=1.0,
                          load_end=load_end, classes=CLASSES)
        journal.judge(judgement)
        reports(run_dir, journal)
        journal.finish()
        reports(run_dir, journal)
    else:  # the engine now: one pass over the records, judge, reports once
        from drills.engine import verify

        merged, _ = verify(run_dir, records / "load", spec=spec, journal=journal,
                           final=final, t0=t0, converged=True, quiesce_s=1.0,
                           load_end=load_end)
        del final  # as the engine: judged, not held while the reports render
        journal.finish()
        reports(run_dir, journal, requests=merged.requests)  # type: ignore[call-arg]
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime - cpu_before
    import drills

    out = {"impl": impl, "n": meta["n"], "drills": drills.__file__, "seconds": elapsed,
           "cpu_s": cpu, "peak_rss_mb": peak / 1024,
           "rss_before_mb": rss_before / 1024, "verdict": journal.verdict,
           "metrics": {k: journal.metrics.get(k) for k in (
               "requests", "errors", "lost_acked_writes", "rto_s", "writes_at_risk",
               "zero_reads", "split_brain", "counters_out_of_bounds")},
           "checks": [c.to_dict() for c in journal.checks]}
    subprocess.run(["rm", "-rf", str(run_dir)], check=False)
    return out


def _run_child(tree: Path, records: Path, impl: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "measure",
                           str(records), impl], env=env, capture_output=True, text=True,
                          cwd=str(tree), check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{impl} on {records} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def _worktree(rev: str) -> Path:
    where = Path(tempfile.gettempdir()) / f"drills-old-{rev.replace('/', '_')}"
    if not where.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), rev],
                       check=True, capture_output=True)
    return where


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd")
    m = sub.add_parser("measure")
    m.add_argument("records", type=Path)
    m.add_argument("impl", choices=("old", "new"))
    ap.add_argument("--sizes", default="100000,1000000,1800000")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir())
                    / "drills-analysis-scale")
    ap.add_argument("--rev", default="0967c81",
                    help="git revision of the old code (default: the last one before streaming)")
    ap.add_argument("--old", type=Path, help="a checkout of the old code (instead of --rev)")
    ap.add_argument("--old-impl", choices=("old", "new"), default="old",
                    help="the post-load path the old revision runs: 'old' (merge, judge on a "
                    "second read, reports twice: revisions before the streaming analysis) or "
                    "'new' (the engine's verify: a revision that has it)")
    ap.add_argument("--only", choices=("old", "new"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "measure":
        print(json.dumps(measure(args.records, args.impl)))
        return 0
    old_tree = args.old or _worktree(args.rev)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        records = records_for(args.cache, n)
        row: dict[str, Any] = {"n": n}
        for impl, tree in (("old", old_tree), ("new", ROOT)):
            if args.only and impl != args.only:
                continue
            r = _run_child(tree, records, args.old_impl if impl == "old" else "new")
            row[impl] = r
            print(f"{n:>9} {impl}: {r['seconds']:7.1f} s ({r['cpu_s']:.1f} s CPU)  "
                  f"peak {r['peak_rss_mb']:7.0f} MB  "
                  f"verdict {r['verdict']}", file=sys.stderr)
        if "old" in row and "new" in row:
            row["same_checks"] = row["old"]["checks"] == row["new"]["checks"]
        rows.append(row)
    print(f"{'requests':>9}  {'old s':>7} {'new s':>7} {'ratio':>6}  {'old CPU':>7} {'new CPU':>7}"
          f"  {'old MB':>7} {'new MB':>7} {'ratio':>6}  same checks")
    for row in rows:
        o, w = row.get("old"), row.get("new")
        if o and w:
            print(f"{row['n']:>9}  {o['seconds']:7.1f} {w['seconds']:7.1f} "
                  f"{o['seconds'] / w['seconds']:5.1f}x  {o['cpu_s']:7.1f} {w['cpu_s']:7.1f}  "
                  f"{o['peak_rss_mb']:7.0f} {w['peak_rss_mb']:7.0f} "
                  f"{o['peak_rss_mb'] / w['peak_rss_mb']:5.1f}x  {row['same_checks']}")
    if args.json:
        for row in rows:
            for impl in ("old", "new"):
                if impl in row:
                    row[impl].pop("checks", None)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
