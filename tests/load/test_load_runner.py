"""drills.load.runner: real Locust subprocesses against loopback targets that misbehave.

Every ``slow`` test starts ``python -m locust`` (the recording shim and a locustfile: ClipStream's
unless the test writes its own) through `LoadRunner` (a few seconds each); targets are a closed
port (dead api), the `misbehaving_api` fixture, or nothing at all (start-up failures).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

import drills
from drills.errors import LoadError, SpecError
from drills.load.records import LoadSettings
from drills.load.runner import RECORDING_SHIM, LoadConfig, LoadRunner, resolve_locustfile
from drills.model import Op

#: ClipStream's locustfile (a target's own, by path; the tests may name ClipStream).
CLIPSTREAM = Path(drills.__file__).parent / "targets" / "clipstream" / "locustfile.py"


def _config(tmp_path: Path, host: str = "", **kw: object) -> LoadConfig:
    base: dict[str, object] = {"locustfile": resolve_locustfile(CLIPSTREAM), "host": host,
                               "record_dir": tmp_path / "load", "users": 5, "rate": 40.0,
                               "timeout_s": 0.5}
    base.update(kw)
    return LoadConfig(**base)  # type: ignore[arg-type]


def _pairs(history: list[Op]) -> dict[str, tuple[Op, Op]]:
    """Invoke and completion per op id; fails the test on any unpaired or doubled entry."""
    invokes: dict[str, Op] = {}
    done: dict[str, Op] = {}
    for op in history:
        table = invokes if op.type == "invoke" else done
        assert op.id not in table, f"duplicate {op.type} for {op.id}"
        table[op.id] = op
    assert invokes.keys() == done.keys(), "every invoke needs exactly one completion"
    for op_id, inv in invokes.items():
        end = done[op_id]
        assert (end.process, end.f, end.key, end.counter) == \
            (inv.process, inv.f, inv.key, inv.counter)
        assert end.time >= inv.time
    return {k: (invokes[k], done[k]) for k in invokes}


def _what(o: Op) -> str:
    """ClipStream's name for an op: ``upload`` (a write), ``views``/``likes`` (an increment of
    that counter), ``read``."""
    return "upload" if o.f == "write" else o.counter or o.f if o.f == "incr" else o.f


def _completion_kinds(history: list[Op]) -> set[tuple[str, str, str | None]]:
    """(what, type, error) of every completion, except those Locust's stop interrupted: a user
    killed mid-request legitimately leaves ``info``/``fail`` with ``interrupted: ...``."""
    return {(_what(o), o.type, o.error) for o in history
            if o.type != "invoke" and not (o.error or "").startswith("interrupted")}


def _interrupted(history: list[Op]) -> int:
    return sum((o.error or "").startswith("interrupted") for o in history)


def _write_locustfile(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "custom_locustfile.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_resolve_locustfile_takes_a_path_only(tmp_path: Path) -> None:
    own = _write_locustfile(tmp_path, "x = 1\n")
    assert resolve_locustfile(str(own)) == own.resolve()
    assert resolve_locustfile(CLIPSTREAM) == CLIPSTREAM.resolve()
    for bad in ("clipstream", tmp_path / "missing.py", tmp_path):
        with pytest.raises(SpecError) as info:
            resolve_locustfile(bad)
        assert info.value.field == "load.locustfile"


def test_the_command_loads_the_recording_shim_beside_the_locustfile(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "http://127.0.0.1:1", classes={"GET /a": "a"})
    cmd = cfg.command()
    assert cmd[cmd.index("-f") + 1] == f"{RECORDING_SHIM},{CLIPSTREAM.resolve()}"
    assert LoadSettings.from_env(cfg.environment()).classes == {"GET /a": "a"}
    with pytest.raises(SpecError) as info:
        _config(tmp_path, "http://127.0.0.1:1", classes={"GET /a": ""})
    assert info.value.field == "load.classes"


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"host": "127.0.0.1:7000"}, "load.host"), ({"users": 0}, "load.users"),
     ({"rate": -1.0}, "load.rate"), ({"timeout_s": 0.0}, "load.timeout_s"),
     ({"spawn_rate": 0.0}, "load.spawn_rate")],
)
def test_config_rejects_values_that_cannot_work(tmp_path: Path, kw: dict[str, object],
                                                field: str) -> None:
    kw = {"host": "http://127.0.0.1:1", **kw}
    with pytest.raises(SpecError) as info:
        _config(tmp_path, **kw)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"burst_multiplier": 0.9}, "load.burst.multiplier"),
     ({"burst_multiplier": float("inf")}, "load.burst.multiplier"),
     ({"burst_width_s": 0.0}, "load.burst.width"),
     ({"burst_width_s": float("nan")}, "load.burst.width"),
     ({"retries": -1}, "load.retries"), ({"retries": 11}, "load.retries"),
     ({"hot_keys": -1}, "load.hot.keys"), ({"hot_keys": 1001}, "load.hot.keys"),
     ({"hot_share": 1.5}, "load.hot.share"), ({"hot_share": -0.5}, "load.hot.share"),
     ({"bursts": (3.0, float("nan"))}, "load.bursts")],
)
def test_config_rejects_data_at_risk_values_that_cannot_work(
        tmp_path: Path, kw: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        _config(tmp_path, "http://127.0.0.1:1", **kw)
    assert info.value.field == field


def test_config_passes_data_at_risk_settings_to_the_locustfile(tmp_path: Path) -> None:
    off = _config(tmp_path, "http://127.0.0.1:1")
    assert (off.bursts, off.burst_multiplier, off.burst_width_s, off.retries, off.hot_keys,
            off.hot_share) == ((), 1.0, 2.0, 0, 0, 0.0)
    edges = _config(tmp_path, "http://127.0.0.1:1", burst_multiplier=1.0, retries=10,
                    hot_keys=1000, hot_share=1.0, bursts=(0.0,))
    cfg = _config(tmp_path, "http://127.0.0.1:1", bursts=[4.0, 9.0], burst_multiplier=3.0,
                  burst_width_s=1.0, retries=2, hot_keys=5, hot_share=0.5)
    assert cfg.bursts == (4.0, 9.0) and edges.retries == 10
    settings = LoadSettings.from_env(cfg.environment())
    assert (settings.bursts, settings.burst_multiplier, settings.burst_width_s,
            settings.retries, settings.hot_keys, settings.hot_share) == \
        ((4.0, 9.0), 3.0, 1.0, 2, 5, 0.5)
    assert settings.parent_pid == os.getpid()


@pytest.mark.slow
def test_dead_api_gives_refused_requests_and_failed_writes(tmp_path: Path, dead_url: str) -> None:
    """Nothing listens on the port: every request is refused, every write a definite fail."""
    with LoadRunner(_config(tmp_path, dead_url, users=12)) as load:
        time.sleep(2.0)
        live = load.poll()
        assert load.alive
    reqs, hist = load.requests(), load.history()
    assert live and set(live) <= set(reqs)
    assert reqs and all((r.ok, r.status, r.error) == (False, 0, "refused") for r in reqs)
    assert min(r.t for r in reqs) >= load.started_at
    pairs = _pairs(hist)
    assert pairs, "uploads are attempted even though nothing answers"
    # Nothing is known, so views, likes and stats wait: uploads are the only writes, feeds
    # and searches the only reads (list reads: without a key).
    assert {inv.f for inv, _ in pairs.values()} == {"write", "read"}
    assert all(inv.key is None for inv, _ in pairs.values() if inv.f == "read")
    assert _completion_kinds(hist) == {("upload", "fail", "refused"), ("read", "fail", "refused")}
    # no answer: whether a store would have answered degraded is unknown (None)
    assert {end.degraded for _, end in pairs.values() if end.f == "read"} == {None}
    uploads = [end for _, end in pairs.values() if end.f == "write"]
    assert Counter(r.op for r in reqs)["upload"] == len(uploads) - _interrupted(uploads)
    assert {end.attempt for end in uploads} == {1}, "retries are off by default"


@pytest.mark.slow
def test_every_bad_answer_is_classified(tmp_path: Path, misbehaving_api: str) -> None:
    """503 upload -> info; 404 view -> fail; hanging like -> timeout, info; bad bodies -> fail."""
    expected = {
        ("upload", "info", "http 503"), ("views", "fail", "http 404"),
        ("likes", "info", "timeout"), ("read", "fail", "body not JSON"),
        ("read", "fail", "body without views/likes"),
        ("read", "ok", None), ("read", "fail", "http 500"),  # feed fine, search 500
    }
    # A timeout is the right verdict for any answer that comes too late, which a starved
    # machine can cause for any route: tolerated, but nothing else.
    slow = {(f, "info", "timeout") for f in ("upload", "views")} | {("read", "fail", "timeout")}
    cfg = _config(tmp_path, misbehaving_api, users=8, rate=80.0, timeout_s=1.0)
    with LoadRunner(cfg) as load:
        # Run until every expected kind has shown up at least once (bounded).
        _wait_until(lambda: expected <= _completion_kinds(load.history()), 30)
    reqs, hist = load.requests(), load.history()
    _pairs(hist)
    assert expected <= _completion_kinds(hist) <= expected | slow
    by_op = {op: [r for r in reqs if r.op == op] for op in ("feed", "search", "like", "stats")}
    timed_out = {r for r in reqs if r.error == "timeout"}
    assert all(r.ok and r.status == 200 for r in set(by_op["feed"]) - timed_out)
    assert all((r.ok, r.status, r.error) == (False, 500, "http 500")
               for r in set(by_op["search"]) - timed_out)
    assert all(not r.ok and r.status == 200 for r in set(by_op["stats"]) - timed_out)
    feeds = [o for o in hist if o.f == "read" and o.type == "ok"]
    assert feeds and all(o.key is None and o.items == (("v1", {"views": 0, "likes": 0}),)
                         and o.degraded is False for o in feeds)
    # The client timeout (1 s) bounds a hanging request, well below the server's 5 s hang.
    assert by_op["like"] and all(r.error == "timeout" and 0.9 < r.duration < 4.0
                                 for r in by_op["like"])


@pytest.mark.slow
def test_locust_dying_at_start_raises_with_its_log(tmp_path: Path) -> None:
    lf = _write_locustfile(tmp_path, "raise RuntimeError('boom-at-import')\n")
    runner = LoadRunner(_config(tmp_path, "http://127.0.0.1:1", locustfile=lf))
    with pytest.raises(LoadError, match="boom-at-import"), runner:
        pass
    assert not runner.alive


@pytest.mark.slow
def test_no_user_ever_starting_times_out_and_leaves_nothing(tmp_path: Path) -> None:
    lf = _write_locustfile(tmp_path, """
        import time
        from locust import User, events, task
        @events.init.add_listener
        def stuck(**kw):
            time.sleep(60)  # the load never gets to start a user
        class Idle(User):
            @task
            def nothing(self):
                self.wait()
    """)
    runner = LoadRunner(_config(tmp_path, "http://127.0.0.1:1", locustfile=lf,
                                start_timeout_s=2.0))
    with pytest.raises(LoadError, match="started no user"), runner:
        pass
    assert not runner.alive and runner.pid is not None
    assert not _running(runner.pid)


@pytest.mark.slow
def test_a_locust_killed_mid_run_is_reported(tmp_path: Path, dead_url: str) -> None:
    with pytest.raises(LoadError, match="exited on its own"), \
            LoadRunner(_config(tmp_path, dead_url)) as load:
        assert load.pid is not None
        _wait_until(load.requests, 10)
        os.kill(load.pid, signal.SIGKILL)
        _wait_until(lambda: not load.alive, 10)
    assert load.requests(), "records written before the kill stay readable"


@pytest.mark.slow
def test_an_internal_locust_error_is_reported_on_exit(tmp_path: Path) -> None:
    lf = _write_locustfile(tmp_path, """
        from locust import User, constant, events, task
        @events.test_start.add_listener
        def broken(**kw):
            raise RuntimeError("listener-bug")
        class U(User):
            wait_time = constant(1)
            @task
            def idle(self):
                self.wait()
    """)
    with pytest.raises(LoadError, match="listener-bug"), \
            LoadRunner(_config(tmp_path, "http://127.0.0.1:1", locustfile=lf)):
        time.sleep(0.5)


def test_a_reused_record_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "load").mkdir()
    (tmp_path / "load" / "requests-1.jsonl").write_text("")
    with pytest.raises(LoadError, match="fresh directory"), \
            LoadRunner(_config(tmp_path, "http://127.0.0.1:1")):
        pass


@pytest.mark.slow
def test_load_stops_itself_when_the_harness_is_killed(tmp_path: Path, dead_url: str) -> None:
    """A harness process is SIGKILLed mid-run; its orphaned Locust must quit on its own."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from drills.load.runner import LoadConfig, LoadRunner, resolve_locustfile
        cfg = LoadConfig(locustfile=resolve_locustfile("{CLIPSTREAM}"),
                         host="{dead_url}", users=2, rate=10.0,
                         record_dir=Path(sys.argv[1]))
        with LoadRunner(cfg) as load:
            print(load.pid, flush=True)
            time.sleep(600)
    """)
    harness = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "load")],
                               stdout=subprocess.PIPE, text=True)
    locust_pid = 0
    try:
        assert harness.stdout is not None
        locust_pid = int(harness.stdout.readline())
        assert _running(locust_pid)
    finally:
        harness.kill()
        harness.wait()
    try:
        _wait_until(lambda: not _running(locust_pid), 15)
    finally:
        if _running(locust_pid):
            os.killpg(locust_pid, signal.SIGKILL)
    log = (tmp_path / "load" / "locust.log").read_text()
    assert "is gone: stopping the load" in log


def _running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_until(cond: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
