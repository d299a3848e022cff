"""drills.load.records: per-line flushing, tailing, torn tails, merging, settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from drills.errors import LoadError, SpecError
from drills.load.records import (
    LoadSettings,
    Recorder,
    RecordTail,
    class_of,
    read_history,
    read_requests,
    read_started,
)
from drills.model import Op, Request


def _req(t: float, op: str = "feed", ok: bool = True) -> Request:
    return Request(t=t, duration=0.01, op=op, ok=ok, status=200 if ok else 0,
                   error=None if ok else "refused")


def test_lines_are_visible_to_a_tail_before_close(tmp_path: Path) -> None:
    tail = RecordTail(tmp_path, "requests-*.jsonl", Request)
    with Recorder(tmp_path, pid=11) as rec:
        rec.request(_req(1.0))
        assert tail.poll() == [_req(1.0)]  # flushed per line: readable while the file is open
        assert tail.poll() == []  # nothing new
        rec.request(_req(2.0, "view"))
        rec.request(_req(3.0, "like", ok=False))
        assert tail.poll() == [_req(2.0, "view"), _req(3.0, "like", ok=False)]


def test_tail_leaves_a_partial_line_for_later_and_finds_new_files(tmp_path: Path) -> None:
    tail = RecordTail(tmp_path, "requests-*.jsonl", Request)
    path = tmp_path / "requests-1.jsonl"
    line = json.dumps(_req(5.0).to_dict()) + "\n"
    path.write_text(line[:10])
    assert tail.poll() == []
    with path.open("a") as fh:
        fh.write(line[10:])
    (tmp_path / "requests-2.jsonl").write_text(json.dumps(_req(6.0).to_dict()) + "\n")
    assert tail.poll() == [_req(5.0), _req(6.0)]


def test_tail_rejects_a_complete_malformed_line(tmp_path: Path) -> None:
    (tmp_path / "requests-1.jsonl").write_text('{"t": 1}\n')
    with pytest.raises(LoadError, match="malformed"):
        RecordTail(tmp_path, "requests-*.jsonl", Request).poll()


def test_history_merges_processes_and_keeps_invoke_before_completion(tmp_path: Path) -> None:
    with Recorder(tmp_path, pid=1) as a, Recorder(tmp_path, pid=2) as b:
        pa, pb = a.new_process(), b.new_process()
        assert (pa, pb, a.new_process()) == ("1-1", "2-1", "1-2")
        a.op(Op(process=pa, type="invoke", f="write", id="x", time=10.0, key="x"))
        b.op(Op(process=pb, type="invoke", f="incr", id="y", time=9.0, key="x",
                counter="views"))
        a.op(Op(process=pa, type="ok", f="write", id="x", time=10.0, key="x", epoch=1,
                store="store-east"))
        b.op(Op(process=pb, type="info", f="incr", id="y", time=11.0, key="x",
                counter="views", error="timeout"))
    ops = read_history(tmp_path)
    assert [(o.id, o.type) for o in ops] == [("y", "invoke"), ("x", "invoke"), ("x", "ok"),
                                            ("y", "info")]
    assert ops[2].epoch == 1 and ops[2].store == "store-east"


def test_a_killed_writer_leaves_only_a_readable_prefix(tmp_path: Path) -> None:
    """A real process writing as fast as it can is SIGKILLed; everything before it reads."""
    code = (
        "import sys, time\nfrom pathlib import Path\n"
        "from drills.load.records import Recorder\nfrom drills.model import Request\n"
        "with Recorder(Path(sys.argv[1])) as r:\n"
        "    n = 0\n"
        "    while True:\n"
        "        n += 1\n"
        "        r.request(Request(t=float(n), duration=0.001, op='feed', ok=True, status=200,"
        " error='x' * (n % 500)))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)])
    try:
        deadline = time.monotonic() + 30
        path = tmp_path / f"requests-{proc.pid}.jsonl"
        while (not path.exists() or path.stat().st_size < 200_000) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    recs = read_requests(tmp_path)
    assert len(recs) > 100
    assert [r.t for r in recs] == [float(i) for i in range(1, len(recs) + 1)]


def test_read_jsonl_still_rejects_corruption_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "requests-1.jsonl"
    good = json.dumps(_req(1.0).to_dict())
    path.write_text(f"{good}\n{{not json\n{good}\n")
    with pytest.raises(SpecError):
        read_requests(tmp_path)


def test_start_marker_is_written_once_and_earliest_wins(tmp_path: Path) -> None:
    assert read_started(tmp_path) is None
    with Recorder(tmp_path, pid=1) as a, Recorder(tmp_path, pid=2) as b:
        a.mark_started(100.0)
        a.mark_started(50.0)  # ignored: only the first user's start counts
        b.mark_started(90.0)
    assert read_started(tmp_path) == 90.0
    (tmp_path / "started-3.json").write_text("{")
    with pytest.raises(LoadError):
        read_started(tmp_path)


def test_closed_recorder_refuses_writes(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, pid=1)
    with rec:
        pass
    with pytest.raises(LoadError):
        rec.request(_req(1.0))


def test_settings_round_trip_through_the_environment(tmp_path: Path) -> None:
    s = LoadSettings(record_dir=tmp_path, rate=60.0, users=12, timeout_s=0.8, parent_pid=42,
                     classes={"GET /feed": "feed", "put": "write"})
    assert LoadSettings.from_env(s.to_env()) == s
    assert s.to_env()["DRILLS_CLASSES"] == '{"GET /feed":"feed","put":"write"}'
    assert s.per_user_rate == 5.0
    assert LoadSettings.from_env({"DRILLS_RECORD_DIR": "x"}).parent_pid is None


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({}, "DRILLS_RECORD_DIR"),
        ({"DRILLS_RECORD_DIR": "d", "DRILLS_RATE": "0"}, "DRILLS_RATE"),
        ({"DRILLS_RECORD_DIR": "d", "DRILLS_USERS": "-1"}, "DRILLS_USERS"),
        ({"DRILLS_RECORD_DIR": "d", "DRILLS_TIMEOUT_S": "soon"}, "DRILLS_TIMEOUT_S"),
        ({"DRILLS_RECORD_DIR": "d", "DRILLS_CLASSES": "{"}, "DRILLS_CLASSES"),
        ({"DRILLS_RECORD_DIR": "d", "DRILLS_CLASSES": '["feed"]'}, "DRILLS_CLASSES"),
        ({"DRILLS_RECORD_DIR": "d", "DRILLS_CLASSES": '{"a": 1}'}, "DRILLS_CLASSES"),
    ],
)
def test_settings_reject_bad_values(env: dict[str, str], field: str | None) -> None:
    with pytest.raises(SpecError) as info:
        LoadSettings.from_env(env)
    assert info.value.field == field


def test_data_at_risk_settings_round_trip_and_default_when_unset(tmp_path: Path) -> None:
    s = LoadSettings(record_dir=tmp_path, bursts=(5.0, 12.5), burst_multiplier=3.0,
                     burst_width_s=1.5, retries=4, hot_keys=8, hot_share=0.25)
    env = s.to_env()
    assert env["DRILLS_BURSTS"] == "5.0,12.5"
    assert (env["DRILLS_BURST_MULTIPLIER"], env["DRILLS_BURST_WIDTH_S"]) == ("3.0", "1.5")
    assert (env["DRILLS_RETRIES"], env["DRILLS_HOT_KEYS"], env["DRILLS_HOT_SHARE"]) == \
        ("4", "8", "0.25")
    assert LoadSettings.from_env(env) == s
    assert s.burst_plan.active(100.0 + 13.0, 100.0)
    # an older harness sets none of them: everything off
    old = LoadSettings.from_env({"DRILLS_RECORD_DIR": "d", "DRILLS_RATE": "10"})
    assert (old.bursts, old.burst_multiplier, old.burst_width_s, old.retries, old.hot_keys,
            old.hot_share) == ((), 1.0, 2.0, 0, 0, 0.0)
    assert old.burst_plan.inert
    assert LoadSettings.from_env({**env, "DRILLS_BURSTS": ""}).bursts == ()
    assert LoadSettings.from_env({**env, "DRILLS_BURSTS": " 3, 4 ,"}).bursts == (3.0, 4.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DRILLS_BURSTS", "5,soon"), ("DRILLS_BURSTS", "-1"), ("DRILLS_BURSTS", "nan"),
        ("DRILLS_BURST_MULTIPLIER", "0.5"), ("DRILLS_BURST_MULTIPLIER", "inf"),
        ("DRILLS_BURST_MULTIPLIER", "x"), ("DRILLS_BURST_WIDTH_S", "0"),
        ("DRILLS_BURST_WIDTH_S", "inf"), ("DRILLS_RETRIES", "11"), ("DRILLS_RETRIES", "-1"),
        ("DRILLS_RETRIES", "1.5"), ("DRILLS_HOT_KEYS", "1001"), ("DRILLS_HOT_SHARE", "1.2"),
        ("DRILLS_HOT_SHARE", "-0.1"), ("DRILLS_HOT_SHARE", "nan"),
    ],
)
def test_data_at_risk_settings_reject_bad_values(name: str, value: str) -> None:
    with pytest.raises(SpecError) as info:
        LoadSettings.from_env({"DRILLS_RECORD_DIR": "d", name: value})
    assert info.value.field == name


def test_recorder_remembers_its_start_as_t0(tmp_path: Path) -> None:
    with Recorder(tmp_path, pid=1) as rec:
        assert rec.started_at is None
        rec.mark_started(100.0)
        rec.mark_started(150.0)
        assert rec.started_at == 100.0 == read_started(tmp_path)


def test_a_request_takes_the_class_its_name_maps_to() -> None:
    classes = {"GET /feed": "feed", "/videos": "upload"}
    assert class_of(classes, name="/feed", method="GET") == "feed"
    assert class_of(classes, name="/feed", method="POST") == "/feed"
    assert class_of(classes, name="/videos", method="POST") == "upload"
    assert class_of({}, name="stats") == "stats"


def test_the_recorder_is_safe_across_threads(tmp_path: Path) -> None:
    """Threads writing at once never interleave inside a line."""
    with Recorder(tmp_path, pid=1) as rec:
        def burst(n: int) -> None:
            for i in range(300):
                rec.op(Op(process=f"t{n}", type="invoke", f="write", id=f"{n}-{i}",
                          time=float(i), key="k" * 500))

        threads = [threading.Thread(target=burst, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(read_history(tmp_path)) == 8 * 300
