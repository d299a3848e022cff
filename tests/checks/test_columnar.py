"""The streaming, columnar path gives exactly the results of the list path (the reference).

The engine judges a run from a `RequestFrame` (requests as numpy columns) and a trimmed
`HistoryDigest` built in one pass over the merged history (`drills.runstore.merge_records`);
the checks' definitions are the list functions. Here both judge the same records - hand-made
histories with every kind of evidence, and random ones - and must agree on every
`CheckResult`, evidence included.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from drills.checks import (
    AnalysisParams,
    check_acked_writes,
    check_counters,
    check_exposure,
    check_rpo,
    check_split_brain,
    check_zero_reads,
    measure_rtos,
    series_by_class,
)
from drills.checks.columns import frame_series
from drills.checks.digest import DigestBuilder, HistoryDigest, validate_op
from drills.checks.frame import RequestFrame
from drills.errors import SpecError
from drills.model import FaultRecord, FinalRead, Op, Request
from drills.runstore import merge_records, read_frame
from tests.checks._build import T0, fault, feed_read, final, flatten, snap, stats_read, write


def _all_checks(history: list[Op] | HistoryDigest, fin: FinalRead,
                faults: list[FaultRecord]) -> list[dict[str, object]]:
    results = [
        check_acked_writes(history, final=fin, preexisting=frozenset({"pre"})),
        check_rpo(history, final=fin, faults=faults),
        check_counters(history, final=fin),
        check_zero_reads(history),
        check_zero_reads(history, include_degraded=False),
        check_split_brain(history, final=fin),
        check_exposure(history, faults=faults, window_s=1.0, end=T0 + 60,
                       min_writes_at_risk=3),
    ]
    return [r.to_dict() for r in results]


def _streamed(history: list[Op], fin: FinalRead) -> HistoryDigest:
    """The digest the engine builds: ops in time order (stable), reads trimmed."""
    b = DigestBuilder(trim=True, winner=fin.authoritative)
    for op in sorted(history, key=lambda o: o.time):
        b.add(op)
    return b.build()


def _same(history: list[Op], fin: FinalRead, faults: list[FaultRecord]) -> None:
    ordered = sorted(history, key=lambda o: o.time)
    reference = _all_checks(ordered, fin, faults)
    assert _all_checks(_streamed(history, fin), fin, faults) == reference
    untrimmed = DigestBuilder()
    for op in ordered:
        untrimmed.add(op)
    assert _all_checks(untrimmed.build(), fin, faults) == reference


def _deposed_primary() -> tuple[list[Op], FinalRead, list[FaultRecord]]:
    """Every kind of evidence at once: lost and unexpected writes, retries, a counter below
    its bound, zero reads (of a key and of list items, degraded or not), overlapping acks,
    vanished reads, stale epochs, orphans and writes that never completed."""
    h = flatten([
        write("upload", "v1", T0 + 1, T0 + 1.1, store="east", epoch=1),
        write("upload", "v2", T0 + 2, T0 + 2.1, store="east", epoch=1),
        write("upload", "lost", T0 + 9.5, T0 + 9.7, store="east", epoch=1),
        write("view", "i1", T0 + 3, T0 + 3.1, key="v1", store="east", epoch=1),
        write("view", "i2", T0 + 4, T0 + 4.1, key="v1", store="east", epoch=1),
        write("like", "i3", T0 + 5, T0 + 5.1, key="v2", store="east", epoch=1),
        write("like", "i4", T0 + 9.8, None, key="v2"),
        stats_read("r1", "v1", T0 + 6, T0 + 6.1, store="east", views=0, likes=0),
        stats_read("r2", "v2", T0 + 6.5, T0 + 6.6, store="east", views=0, likes=0,
                   degraded=True),
        feed_read("r3", [("v1", 2, 0), ("v2", 0, 1), ("gone", 0, 0)], T0 + 7, T0 + 7.2,
                  store="east"),
        # failover at t+10: west takes over, east keeps acking for a while (deposed)
        write("upload", "w1", T0 + 10.5, T0 + 10.6, store="west", epoch=2),
        write("upload", "w1b", T0 + 10.85, T0 + 10.95, store="west", epoch=2),
        write("upload", "w2", T0 + 10.8, T0 + 11.2, store="west", epoch=2),
        write("upload", "e1", T0 + 10.9, T0 + 11.0, store="east", epoch=1),
        write("view", "i5", T0 + 10.95, T0 + 11.05, key="v2", store="east", epoch=1),
        feed_read("r4", [("v1", 2, 0), ("e1", 0, 0)], T0 + 11.0, T0 + 11.1, store="east"),
        feed_read("r5", [("w1", 0, 0)], T0 + 11.3, T0 + 11.4, store="west", degraded=True),
        write("upload", "w3", T0 + 11.5, T0 + 11.9, store="west", epoch=2),
        [Op(process="p1", type="ok", f="write", id="orphan", time=T0 + 12, key="orphan",
            store="west", epoch=2)],
        [Op(process="p1", type="invoke", f="write", id="retry", time=T0 + 12.5, key="retry",
            attempt=1),
         Op(process="p1", type="info", f="write", id="retry", time=T0 + 13, key="retry",
            attempt=1),
         Op(process="p1", type="invoke", f="write", id="retry", time=T0 + 13.5, key="retry",
            attempt=2),
         Op(process="p1", type="ok", f="write", id="retry", time=T0 + 13.6, key="retry",
            attempt=2, store="west", epoch=2),
         Op(process="p2", type="invoke", f="read", id="twice", time=T0 + 14),
         Op(process="p2", type="invoke", f="read", id="twice", time=T0 + 14.2),
         Op(process="p2", type="ok", f="read", id="twice", time=T0 + 14.3, key="v1",
            counts={"views": 0}, store="west"),
         Op(process="p2", type="ok", f="read", id="orphan-read", time=T0 + 14.4,
            items=(("e1", {"views": 0}),), store="east")],
        write("view", "i6", T0 + 15, T0 + 15.1, key="w1", store="east", epoch=1),
    ])
    west = snap("west", ["v1", "v2", "w1", "w1b", "w2", "w3", "orphan", "retry", "pre", "extra"],
                views={"v1": 2, "v2": 0}, likes={"v2": 1})
    east = snap("east", ["v1", "v2", "lost", "e1"], views={"v1": 2, "v2": 1}, likes={"v2": 1})
    return h, final(west, east), [fault("f1", T0 + 10, reverted=T0 + 20)]


def test_a_deposed_primary_is_judged_the_same_streamed_and_trimmed() -> None:
    history, fin, faults = _deposed_primary()
    results = _all_checks(history, fin, faults)
    assert [r["passed"] for r in results] == [False, False, False, False, False, False, True]
    assert "2 acks (1 suspect increments) by east" in str(results[5]["summary"])
    _same(history, fin, faults)


def test_trimming_keeps_only_the_reads_a_check_can_use() -> None:
    history, fin, _ = _deposed_primary()
    kept = {c.id for c in _streamed(history, fin).attempts if c.f == "read"}
    # r1: zero for v1 views after i1 acked; r2, r5: degraded; r3, r4, orphan-read: east (not
    # the final primary) showed keys west lacks; twice: zero views of v1, acked earlier
    assert kept == {"r1", "r2", "r3", "r4", "r5", "twice", "orphan-read"}
    digest = _streamed(history, fin)
    r3 = next(c for c in digest.attempts if c.id == "r3")
    assert r3.items == (("gone", {"views": 0, "likes": 0}),)  # v1, v2: west has them
    # a read west served with zeros nobody acked is dropped
    plain = flatten([history, feed_read("r9", [("w2", 0, 0)], T0 + 30, T0 + 30.1)])
    assert "r9" not in {c.id for c in _streamed(plain, fin).attempts}


def test_a_trimmed_digest_refuses_another_final_read_and_disorder() -> None:
    history, fin, _ = _deposed_primary()
    digest = _streamed(history, fin)
    other = final(snap("east", ["v1"]), snap("west", ["v1"]))
    with pytest.raises(ValueError, match="another final read"):
        check_split_brain(digest, final=other)
    b = DigestBuilder(trim=True)
    b.add(history[2])
    with pytest.raises(ValueError, match="time order"):
        b.add(history[0])


def _random_history(rng: random.Random) -> tuple[list[Op], FinalRead, list[FaultRecord]]:
    ops: list[Op] = []
    keys: list[str] = []
    t = T0
    for n in range(rng.randint(20, 120)):
        t += rng.random() * 0.5
        done = None if rng.random() < 0.05 else t + rng.random() * 0.8
        store = rng.choice(["east", "west", None])
        epoch = rng.choice([1, 2, 3, None])
        outcome = rng.choice(["ok", "ok", "ok", "info", "fail"])
        kind = rng.random()
        if kind < 0.25 or not keys:
            key = f"k{n}"
            keys.append(key)
            ops += write("upload", key, t, done, outcome, store=store, epoch=epoch)
        elif kind < 0.5:
            ops += write(rng.choice(["view", "like"]), f"i{n}", t, done, outcome,
                         key=rng.choice(keys), store=store, epoch=epoch)
        elif kind < 0.7:
            ops += stats_read(f"r{n}", rng.choice(keys), t, done or t + 0.1, store=store or "west",
                              views=rng.choice([0, 0, 1, 3]), likes=rng.choice([0, 2]),
                              degraded=rng.choice([True, False, None]))
        else:
            shown = [(k, rng.choice([0, 1, 4]), rng.choice([0, 2]))
                     for k in rng.sample(keys, min(len(keys), rng.randint(1, 5)))]
            ops += feed_read(f"r{n}", shown + [("ghost", 0, 0)] * (rng.random() < 0.2),
                             t, done or t + 0.1, store=store or "east",
                             degraded=rng.choice([True, None]))
        if rng.random() < 0.05 and ops:  # drop an entry: orphans and unpaired invokes
            ops.pop(rng.randrange(len(ops)))
    held = {k for k in keys if rng.random() < 0.8}
    west = snap("west", held, views={k: rng.randint(0, 3) for k in held},
                likes={k: rng.randint(0, 2) for k in held})
    east = snap("east", held | {"pre"}, views={k: 1 for k in held})
    at = T0 + rng.random() * (t - T0)
    faults = [fault("f1", at, reverted=at + 3), fault("f2", at + 5, reverted=None)]
    return ops, final(west, east, primary=rng.choice(["west", "east"])), faults


@pytest.mark.parametrize("seed", range(40))
def test_random_histories_are_judged_the_same_streamed_and_trimmed(seed: int) -> None:
    history, fin, faults = _random_history(random.Random(seed))
    _same(history, fin, faults)


def _random_requests(rng: random.Random) -> tuple[list[Request], list[FaultRecord]]:
    reqs: list[Request] = []
    outages = [(T0 + 20, T0 + 20 + rng.uniform(0.5, 6)), (T0 + 40, T0 + 40 + rng.uniform(0, 4))]
    for op, rate in (("a", 40.0), ("b", 6.0), ("c", 1.5)):
        t = T0 + rng.random() / rate
        while t < T0 + 70:
            down = any(lo <= t < hi for lo, hi in outages) and rng.random() < 0.9
            status = 404 if rng.random() < 0.02 else (503 if down else 200)
            ok = not down and status != 404
            reqs.append(Request(t=t, duration=rng.choice([0.01, 0.2, 1.5 if down else 0.05]),
                                op=op, ok=ok, status=status, error=None if ok else "x"))
            t += rng.expovariate(rate) if rng.random() < 0.9 else 2.0 / rate
    rng.shuffle(reqs)  # any order: both sort by start time, stably
    faults = [FaultRecord("f1", "power_down", "z", 20.0, T0 + 20, T0 + 30),
              FaultRecord("f2", "partition", "z", 40.0, T0 + 40, None)]
    return reqs, faults


@pytest.mark.parametrize("seed", range(25))
def test_rto_on_columns_equals_rto_on_requests(seed: int) -> None:
    rng = random.Random(seed)
    reqs, faults = _random_requests(rng)
    params = AnalysisParams(min_bucket_requests=rng.choice([0.0, 5.0, 20.0]),
                            stragglers=rng.choice([0, 1]))
    kw = dict(faults=faults, baseline_start=T0, baseline_end=T0 + 20, params=params,
              end=rng.choice([None, T0 + 65]))
    frame = RequestFrame.of(reqs)
    # without classes, both take them in first-seen order by start time
    in_order = sorted(reqs, key=lambda r: r.t)
    assert measure_rtos(frame, **kw) == measure_rtos(in_order, **kw)  # type: ignore[arg-type]
    kw["classes"] = ("c", "a", "b", "none")
    assert measure_rtos(frame, **kw) == measure_rtos(reqs, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(10))
def test_bucket_series_on_columns_equal_the_list_series(seed: int) -> None:
    reqs, _ = _random_requests(random.Random(seed))
    frame = RequestFrame.of(reqs)
    for bucket in (0.25, 1.0):
        expected = series_by_class(reqs, bucket_s=bucket, origin=T0, end=T0 + 66)
        got = tuple(frame_series(frame, op=s.op, bucket_s=bucket, origin=T0, end=T0 + 66)
                    for s in expected)
        assert got == expected
    assert frame.classes == tuple(dict.fromkeys(r.op for r in sorted(reqs, key=lambda r: r.t)))
    assert list(frame.rows()) == sorted(reqs, key=lambda r: r.t)


@pytest.mark.parametrize("decoder", ["default", "json"])
def test_merge_records_writes_what_the_list_readers_read_and_judges_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decoder: str) -> None:
    """Two processes' files, out of start order (requests) and slightly out of time order
    (a read recorded with its send time): one pass writes the run files as the list readers
    give them, and the digest judges like the list (with msgspec's decoder when installed,
    and with the standard library's)."""
    from drills import runstore
    from drills.load.records import read_history, read_requests

    if decoder == "json":
        monkeypatch.setattr(runstore, "_decoder", lambda: json.loads)
        monkeypatch.setattr(runstore, "_history_decoder",
                            lambda: (json.loads, validate_op))

    history, fin, faults = _deposed_primary()
    load = tmp_path / "load"
    load.mkdir()
    rng = random.Random(3)
    reqs, _ = _random_requests(rng)
    for pid in (11, 12):
        mine = [r for i, r in enumerate(reqs) if i % 2 == pid - 11]
        (load / f"requests-{pid}.jsonl").write_text(
            "".join(json.dumps(r.to_dict(), separators=(",", ":")) + "\n"
                    for r in sorted(mine, key=lambda r: r.t + r.duration)))
        ops = [o for i, o in enumerate(history) if (o.process == "p2") == (pid == 12)]
        ops = sorted(ops, key=lambda o: o.time)
        ops[0], ops[1] = ops[1], ops[0]  # within the reorder window
        (load / f"history-{pid}.jsonl").write_text(
            "".join(json.dumps(o.to_dict(), separators=(",", ":")) + "\n" for o in ops)
            + '{"process":"torn')
    run = tmp_path / "run"
    merged = merge_records(load, run, winner=fin.authoritative)
    # the lines as the processes recorded them, one file after the other; read back, the
    # same records in start order as the list reader gives
    assert (run / "requests.jsonl").read_text() == "".join(
        (load / f"requests-{pid}.jsonl").read_text() for pid in (11, 12))
    assert list(read_frame([run / "requests.jsonl"]).rows()) == read_requests(load)
    assert list(merged.requests.rows()) == read_requests(load)
    assert [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()] \
        == [o.to_dict() for o in read_history(load)]
    assert merged.history is not None
    assert _all_checks(merged.history, fin, faults) == _all_checks(read_history(load), fin,
                                                                   faults)


_GOOD_OP = {"process": "p1", "type": "ok", "f": "read", "id": "r1", "time": 1.5}


@pytest.mark.parametrize("decoder", ["default", "json"])
@pytest.mark.parametrize(("bad", "says"), [
    ({"counts": {"views": True}}, "views|int"),
    ({"counts": {"views": "3"}}, "views|int"),
    ({"counts": [1, 2]}, "counts|object"),
    ({"items": [["v1", {"likes": 1.5}]]}, "likes|int"),
    ({"items": [["v1", 7]]}, "object"),
    ({"type": "done"}, "type|done"),
    ({"f": "delete"}, "delete|f"),
    ({"time": "noon"}, "time|float|number"),
    ({"f": "incr", "type": "invoke"}, "counter"),
])
def test_a_malformed_history_line_is_an_error_naming_file_and_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decoder: str, bad: dict[str, object],
        says: str) -> None:
    """Typed decoding (msgspec) and the standard library's path refuse the same lines, each
    with the file and line: a counter that is not an integer, an unknown type or f, a time
    that is no number, an incr invoke without its counter."""
    from drills import runstore

    if decoder == "json":
        monkeypatch.setattr(runstore, "_history_decoder",
                            lambda: (json.loads, validate_op))
    load = tmp_path / "load"
    load.mkdir()
    good = json.dumps(_GOOD_OP)
    path = load / "history-7.jsonl"
    path.write_text(f"{good}\n{json.dumps({**_GOOD_OP, **bad})}\n{good}\n")
    with pytest.raises(SpecError) as info:
        merge_records(load, tmp_path / "run")
    assert info.value.source == str(path) and "line 2" in str(info.value), info.value
    assert re.search(says, str(info.value), re.I), info.value


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 4096])
def test_the_batched_merge_keeps_the_stable_time_order_ties_included(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """Several processes' files, each in time order, with many equal times within and across
    files, merged in batches of ``chunk`` lines: the same order as the list reader's stable
    sort (file order, then line order, for equal times), whatever the chunk boundaries."""
    from drills import runstore
    from drills.load.records import read_history

    monkeypatch.setattr(runstore, "CHUNK", chunk)
    rng = random.Random(chunk)
    for trial in range(20):
        load = tmp_path / f"load{trial}"
        load.mkdir()
        for pid in range(rng.randint(1, 4)):
            t, lines = T0, []
            for k in range(rng.randint(0, 40)):
                t += rng.choice((0.0, 0.0, 0.0, 0.5, 1.0))
                lines.append(json.dumps({"process": f"p{pid}", "type": "invoke", "f": "read",
                                         "id": f"{pid}-{k}", "time": t}) + "\n")
            (load / f"history-{pid}.jsonl").write_text("".join(lines))
        run = tmp_path / f"run{trial}"
        merge_records(load, run)
        assert [json.loads(line)["id"] for line in (run / "history.jsonl").read_text()
                .splitlines()] == [o.id for o in read_history(load)], trial


def test_what_checks_share_is_computed_once_per_snapshot_and_preexisting() -> None:
    """The write sets and counter bounds several checks read are memoised on the digest: the
    same snapshot object and an equal ``preexisting`` get the same object back; another
    snapshot (even an equal one) or another ``preexisting`` is computed for itself."""
    from drills.checks import counter_bounds, write_sets

    history, fin, _ = _deposed_primary()
    digest = HistoryDigest.of(history)
    west = fin.authoritative
    assert west is not None
    sets = write_sets(digest, final=west, preexisting=frozenset({"pre"}))
    assert write_sets(digest, final=west, preexisting=frozenset({"pre"})) is sets
    other = write_sets(digest, final=west, preexisting=frozenset())
    assert other is not sets and "pre" in other.unexpected and "pre" not in sets.unexpected
    twin = snap(west.name, sorted(west.keys), counters=west.counters)
    assert write_sets(digest, final=twin, preexisting=frozenset({"pre"})) is not sets
    bounds = counter_bounds(digest, final=west)
    assert counter_bounds(digest, final=west) is bounds
    assert counter_bounds(digest, final=twin) == bounds
    assert counter_bounds(digest, final=twin) is not bounds
    assert bounds == counter_bounds(history, final=west)  # a plain history: no memo, same


def test_request_lines_in_other_json_types_read_as_request_from_dict_reads_them(
        tmp_path: Path) -> None:
    """The typed fast path takes the recorder's types; a line in other types (a status as
    text, ok as 1, a class as a number, no status) is read as `Request.from_dict` reads it,
    a blank line is skipped, a last line without its newline is kept (and written with one),
    and a line that is no request names its file and line."""
    from drills.load.records import read_requests

    lines = [
        '{"t": 3.0, "duration": 0.1, "op": "feed", "ok": true, "status": 200, "error": null}',
        '{"t": 1.0, "duration": 0.2, "op": 7, "ok": 1, "status": "503", "error": "http 503"}',
        "",
        '{"t": 2, "duration": 1, "op": "view", "ok": false}',
        '{"t": 2.0, "duration": 0.5, "op": "like", "ok": true, "status": 200.0}',
    ]
    load = tmp_path / "load"
    load.mkdir()
    (load / "requests-1.jsonl").write_text("\n".join(lines))  # no newline at the end
    run = tmp_path / "run"
    merged = merge_records(load, run)
    assert list(merged.requests.rows()) == read_requests(load)
    assert [r.op for r in merged.requests.rows()] == ["7", "view", "like", "feed"]
    assert (run / "requests.jsonl").read_text() == "".join(f"{x}\n" for x in lines if x)
    (load / "requests-1.jsonl").write_text(lines[0] + '\n{"t": 1.0, "op": "feed"}\n')
    with pytest.raises(SpecError) as info:
        merge_records(load, tmp_path / "run2")
    assert "line 2" in str(info.value) and info.value.source == str(load / "requests-1.jsonl")


def test_a_write_error_in_the_writer_thread_is_raised_and_the_merge_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run files are written by a thread of their own: an `OSError` it meets (a full disk)
    is raised to the merge, never lost."""
    from drills import runstore

    class Full:
        def __init__(self, real: object) -> None:
            self.real = real

        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        def __getattr__(self, name: str) -> object:
            return getattr(self.real, name)

    opened = runstore._Writer.__init__

    def full_disk(self: runstore._Writer, path: Path) -> None:
        opened(self, path)
        self._fh = Full(self._fh)  # type: ignore[assignment]

    monkeypatch.setattr(runstore._Writer, "__init__", full_disk)
    load = tmp_path / "load"
    load.mkdir()
    (load / "requests-1.jsonl").write_text(
        '{"t": 1.0, "duration": 0.1, "op": "feed", "ok": true, "status": 200}\n')
    with pytest.raises(OSError, match="No space left"):
        merge_records(load, tmp_path / "run")
    records = None
    with pytest.raises(OSError, match="No space left"):
        records = merge_records(load, tmp_path / "run", wait=False)
        records.durable()
    assert records is not None  # the error came at durable(), once the thread had met it


def test_a_snapshots_counters_are_rows_that_read_back_as_given() -> None:
    """`StoreSnapshot` holds its counters as a `CounterTable`: equal to the dicts it was given,
    in their key order, `count` without a dict, a missing counter reads 0; values that do
    not fit a 64-bit row (or are no integers) are kept as given."""
    from drills.model import CounterTable, StoreSnapshot

    given = {"b": {"views": 3, "likes": 0}, "a": {"likes": 2}, "c": {},
             "big": {"views": 2 ** 70}, "edge": {"views": -(2 ** 63)}}
    s = StoreSnapshot(name="east", reachable=True, keys=frozenset(given), counters=given)
    assert isinstance(s.counters, CounterTable)
    assert s.counters == given and list(s.counters) == list(given)
    assert dict(s.counters["a"]) == {"likes": 2} and s.counters["c"] == {}
    assert (s.count("b", "views"), s.count("a", "views"), s.count("zz", "views")) == (3, 0, 0)
    assert (s.count("big", "views"), s.count("edge", "views")) == (2 ** 70, -(2 ** 63))
    assert s.count("b", "shares") == 0 and "b" in s.counters and "zz" not in s.counters
    assert StoreSnapshot.from_dict(s.to_dict()) == s
    assert s.counter_names() == {"views", "likes"}
