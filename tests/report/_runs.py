"""Build realistic run directories by hand, from typed records, with no network.

A run of `DRILL` (the built-in ``dc-east-power-loss`` with every analysis knob pinned, so the
tests do not move when the built-in defaults do): 50 s of load over six classes, dc-east
powered down from t+10 s to t+30 s, writes failing for ``outage_s`` seconds after the fault.
The records go through the real checks (`drills.verdict.judge`), the real `Journal` and the
real `write_reports`, exactly as the engine does after a run. ``broken`` makes the system
misbehave in every way the report must show: acked uploads lost just before the fault, a view
counter below its bound, a read that saw zero views, two stores acking under one epoch, and
replicas that differ after quiesce.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from drills.catalog import parse_drill
from drills.journal import Journal, PhaseRecord
from drills.model import FaultRecord, FinalRead, Op, Request, StoreSnapshot, write_jsonl
from drills.report import write_reports
from drills.verdict import baseline_health, judge

DRILL = """
drill: dc-east-power-loss
description: The primary data center (dc-east) loses power for 20 s under steady load.
stack:
  provider: local
  config: {replication: sync, fsync: always, detection: 1.5s}
load: {users: 30, rate: 150}
timeline:
  baseline: 10s
  faults:
    - {at: 10s, power_down: dc-east, for: 20s}
  settle: 20s
objectives:
  rto: {upload: 10s, view: 10s, like: 10s, feed: 5s, search: 5s, stats: 5s}
  lost_acked_writes: 0
  counters: exact
  split_brain: forbid
  recovery: required
analysis: {bucket: 250ms, hold: 3s, rho: 0.5, epsilon: 0.02, min_bucket_requests: 16}
"""
T0 = 1_700_000_000.0  # load start
LOAD_S = 50.0
FAULT_AT, FAULT_END = 10.0, 30.0
#: Requests per second per class (every class well above the analysis's 16 per bucket).
RATES = {"upload": 6.0, "feed": 20.0, "view": 8.0, "like": 6.0, "search": 5.0, "stats": 5.0}
WRITES = ("upload", "view", "like")
#: Uploads acked just before the fault that a broken system loses (ack at t+9.70, t+9.85).
LOST = ("lost-a", "lost-b")


@dataclass(frozen=True)
class BuiltRun:
    run_dir: Path
    journal: Journal
    requests: tuple[Request, ...]
    history: tuple[Op, ...]


def requests(outage_s: float, *, classes: Sequence[str] = tuple(RATES)) -> list[Request]:
    """Evenly spaced requests; writes fail during ``[FAULT_AT, FAULT_AT + outage_s)``."""
    out: list[Request] = []
    for op in classes:
        step = 1.0 / RATES[op]
        i = 0
        while (rel := (i + 0.37) * step) < LOAD_S:
            down = op in WRITES and FAULT_AT <= rel < FAULT_AT + outage_s
            out.append(Request(t=T0 + rel, duration=1.5 if down else 0.04, op=op, ok=not down,
                               status=0 if down else 200, error="timeout" if down else None))
            i += 1
    return sorted(out, key=lambda r: r.t)


#: ClipStream's ops in the generic vocabulary: f and counter.
GENERIC = {"upload": ("write", None), "view": ("incr", "views"), "like": ("incr", "likes"),
           "read": ("read", None)}


def _op(type_: str, f: str, id_: str, rel: float, *, video: str | None = None,
        **extra: object) -> Op:
    """One ClipStream op (upload / view / like / read of ``video``, ``views=`` / ``likes=``
    seen) as a generic history entry."""
    generic, counter = GENERIC[f]
    counts = {k: extra.pop(k) for k in ("views", "likes") if k in extra}
    return Op(process="p1", type=type_, f=generic, id=id_, time=T0 + rel,  # type: ignore[arg-type]
              key=video, counter=counter, counts=counts or None, **extra)  # type: ignore[arg-type]


def history(*, broken: bool) -> list[Op]:
    """Uploads (two of them acked just before the fault), view increments of ``v0``, reads."""
    ops: list[Op] = []
    videos = [f"v{i}" for i in range(8)]
    for i, v in enumerate(videos):
        ops += [_op("invoke", "upload", v, 1.0 + i, video=v),
                _op("ok", "upload", v, 1.2 + i, video=v, store="store-east", epoch=1)]
    for v, at in zip(LOST, (9.5, 9.6), strict=True):
        ops += [_op("invoke", "upload", v, at, video=v),
                _op("ok", "upload", v, at + 0.2 + 0.05 * LOST.index(v), video=v,
                    store="store-east", epoch=1)]
    for k in range(10):  # ten acked views of v0, half before and half after the failover
        store, epoch = ("store-east", 1) if k < 5 else ("store-west", 2)
        ops += [_op("invoke", "view", f"view-{k}", 12.0 + k, video="v0"),
                _op("ok", "view", f"view-{k}", 12.1 + k, video="v0", store=store, epoch=epoch)]
    if broken:  # the old primary keeps acking under the new epoch: split brain
        ops += [_op("invoke", "like", "like-x", 20.0, video="v1"),
                _op("ok", "like", "like-x", 20.1, video="v1", store="store-east", epoch=2)]
    seen = 0 if broken else 10
    ops += [_op("invoke", "read", "read-1", 25.0, video="v0"),
            _op("ok", "read", "read-1", 25.1, video="v0", views=seen, likes=0,
                store="store-west")]
    return sorted(ops, key=lambda o: o.time)


def final_read(*, broken: bool) -> FinalRead:
    videos = {f"v{i}" for i in range(8)}
    likes = {"v1": 1} if broken else {}
    if not broken:
        videos |= set(LOST)
    counters = {"v0": {"views": 7 if broken else 10}, **{v: {"likes": n}
                                                         for v, n in likes.items()}}
    primary = StoreSnapshot(name="store-west", reachable=True, role="primary", epoch=2,
                            keys=frozenset(videos), counters=counters)
    replica = StoreSnapshot(name="store-east", reachable=True, role="replica", epoch=2,
                            keys=frozenset(videos | ({"v9"} if broken else set())),
                            counters=counters)
    return FinalRead(primary="store-west", stores=(primary, replica))


def fault() -> FaultRecord:
    return FaultRecord(id="f0", kind="power_down", target="dc-east", scheduled_at=FAULT_AT,
                       injected_at=T0 + FAULT_AT + 0.02, reverted_at=T0 + FAULT_END + 0.05,
                       detail={"nodes": ["store-east"]})


def _phases() -> list[PhaseRecord]:
    marks = [("prepare", -4.0), ("baseline", 0.0), ("inject", FAULT_AT), ("restore", FAULT_END),
             ("settle", FAULT_END + 0.1), ("quiesce", LOAD_S + 0.5), ("final read", LOAD_S + 1),
             ("verify", LOAD_S + 1.2), ("report", LOAD_S + 1.4), ("teardown", LOAD_S + 1.5)]
    ends = [t for _, t in marks[1:]] + [LOAD_S + 3.0]
    return [PhaseRecord(name, T0 + t, T0 + e) for (name, t), e in zip(marks, ends, strict=True)]


def build_journal(
    *,
    outage_s: float = 3.0,
    broken: bool = False,
    sets: Sequence[str] = (),
    reqs: Sequence[Request] | None = None,
) -> tuple[Journal, list[Request], list[Op]]:
    """A judged journal of one hand-made run (see the module docstring)."""
    spec = parse_drill(DRILL, source="tests/report/_runs.py", sets=list(sets))
    reqs = list(reqs) if reqs is not None else requests(outage_s)
    hist = history(broken=broken)
    j = Journal.start(spec, provider="local")
    j.started_at, j.load_started_at = T0 - 4.0, T0
    j.phases = _phases()
    j.faults = [fault()]
    j.baseline = baseline_health(reqs, t0=T0, baseline_s=FAULT_AT)
    j.judge(judge(spec, requests=reqs, history=hist, faults=j.faults,
                  final=final_read(broken=broken), t0=T0, load_end=T0 + LOAD_S,
                  classes=tuple(RATES)))
    j.classes = tuple(RATES)  # the target's classes, as the engine records them
    j.finished_at = T0 + LOAD_S + 3.0
    return j, reqs, hist


def build_run(run_dir: Path, **kwargs: object) -> BuiltRun:
    """Write a complete run directory (records, journal, every report) into ``run_dir``."""
    j, reqs, hist = build_journal(**kwargs)  # type: ignore[arg-type]
    run_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(run_dir / "requests.jsonl", reqs)
    write_jsonl(run_dir / "history.jsonl", hist)
    write_reports(run_dir, j)
    return BuiltRun(run_dir, j, tuple(reqs), tuple(hist))
