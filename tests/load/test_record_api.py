"""`drills.record`, the public recording API, on its own (no Locust): what each call writes."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest

from drills import record
from drills.checks import check_acked_writes, completions
from drills.errors import SpecError
from drills.load.records import Recorder, read_history
from drills.model import FinalRead, StoreSnapshot


def test_each_call_writes_its_entry(tmp_path: Path) -> None:
    ticks = itertools.count(100)
    with Recorder(tmp_path, pid=7) as rec:
        h = record.History(rec, clock=lambda: float(next(ticks)))
        w = h.invoke("write", key="k1")
        h.info(w, error="timeout")
        w2 = h.retry(w)
        h.ok(w2, store="kv-east", epoch=3)
        i = h.invoke("incr", key="c1", counter="hits", id="inc-1")
        h.fail(i, error="http 409")
        h.read("c1", counts={"hits": 0}, started=99.5, degraded=True)
        h.read(items=[("c1", {"hits": 1})])
    ops = read_history(tmp_path)
    assert [(o.type, o.f, o.key, o.counter, o.attempt) for o in ops] == [
        ("invoke", "read", "c1", None, None),  # started=99.5, the earliest
        ("invoke", "write", "k1", None, None), ("info", "write", "k1", None, None),
        ("invoke", "write", "k1", None, 2), ("ok", "write", "k1", None, 2),
        ("invoke", "incr", "c1", "hits", None), ("fail", "incr", "c1", "hits", None),
        ("ok", "read", "c1", None, None),
        ("invoke", "read", None, None, None), ("ok", "read", None, None, None)]
    assert {o.process for o in ops} == {"7-1"}  # one thread: one logical client
    assert ops[4].store == "kv-east" and ops[4].epoch == 3 and ops[6].error == "http 409"
    assert ops[7].counts == {"hits": 0} and ops[7].degraded is True
    assert ops[9].items == (("c1", {"hits": 1}),)
    assert [c.type for c in completions(ops)] == ["ok", "info", "ok", "fail", "ok"]
    final = FinalRead("kv", (StoreSnapshot("kv", True, keys=frozenset({"k1"})),))
    assert check_acked_writes(ops, final=final).passed is True


def test_each_thread_is_its_own_process(tmp_path: Path) -> None:
    with Recorder(tmp_path, pid=7) as rec:
        h = record.History(rec)
        threads = [threading.Thread(target=lambda: h.invoke("write", key="k")) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        h.invoke("write", key="k", process="mine")
    assert sorted(o.process for o in read_history(tmp_path)) == ["7-1", "7-2", "7-3", "mine"]


def test_misuse_is_refused(tmp_path: Path) -> None:
    with Recorder(tmp_path) as rec:
        h = record.History(rec)
        with pytest.raises(SpecError) as info:
            h.invoke("upload", key="k")
        assert info.value.field == "f"
        with pytest.raises(SpecError):
            h.invoke("incr", key="k")  # no counter


def test_history_is_the_process_one_and_needs_the_record_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record, "_PROCESS", record._Process(threading.Lock()))
    monkeypatch.delenv("DRILLS_RECORD_DIR", raising=False)
    with pytest.raises(SpecError) as info:
        record.history()
    assert info.value.field == "DRILLS_RECORD_DIR"
    monkeypatch.setenv("DRILLS_RECORD_DIR", str(tmp_path))
    h = record.history()
    assert record.history() is h and record.started_at() is None
    h.recorder.mark_started(5.0)
    assert record.started_at() == 5.0
    h.recorder.close()
