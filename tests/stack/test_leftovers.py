"""Nothing left behind: every process a local stack starts carries its label, and whatever the
harness died of, `drill rollback` (or the next run) sweeps the stack by that label.

The fast tests use dummy labelled processes (``sleep``) and hand-written ``stack.json`` files;
the slow ones SIGKILL a real ``drill run`` at several moments - before the stack was healthy,
during the baseline, during a power-down - and interrupt one twice in a row, then show that no
process of the run is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from drills.cli import main
from drills.engine import rollback_stale
from drills.interrupts import Teardown, deferred_interrupts
from drills.ledger import Ledger
from drills.stack.process import LABEL_ENV, ProcessSpec, labelled, spawn, sweep

DRILL = [sys.executable, "-m", "drills.cli"]


def sleeper(tmp_path: Path, label: str, name: str = "sleeper") -> int:
    """A process labelled ``label`` that would live for a minute."""
    spec = ProcessSpec(name=name, argv=(sys.executable, "-c", "import time; time.sleep(60)"),
                       env={LABEL_ENV: label}, log=str(tmp_path / f"{name}.log"))
    return spawn(spec).pid


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_state(stack_dir: Path, *, owner: int, keep: bool = False) -> None:
    stack_dir.mkdir(parents=True, exist_ok=True)
    (stack_dir / "stack.json").write_text(json.dumps({
        "provider": "local", "owner_pid": owner, "keep": keep, "toxiproxy_url": None,
        "external_toxiproxy": False, "direct": {}, "pids": {}, "specs": {}, "links": {}}))


def test_sweep_kills_every_process_of_a_label_and_only_those(tmp_path: Path) -> None:
    mine = [sleeper(tmp_path, "stack-a", f"a{i}") for i in range(2)]
    other = sleeper(tmp_path, "stack-b", "b")
    try:
        assert labelled("stack-a") == sorted(mine)
        assert sorted(sweep("stack-a")) == sorted(mine)
        assert labelled("stack-a") == [] and labelled("stack-b") == [other]
    finally:
        sweep("stack-b")


def test_rollback_stops_a_stack_left_by_a_dead_harness_even_without_a_fault(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    label = str((run_dir / "stack").resolve())
    write_state(run_dir / "stack", owner=dead_pid())  # killed before its first fault: no ledger
    pid = sleeper(tmp_path, label)
    assert main(["rollback", str(run_dir)]) == 0
    assert labelled(label) == [] and pid not in labelled(label)
    assert "nothing was in force; stopped the stack its dead harness left running" in \
        capsys.readouterr().out


def test_rollback_leaves_a_live_harness_and_a_kept_stack_alone(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    label = str((run_dir / "stack").resolve())
    write_state(run_dir / "stack", owner=os.getpid())
    sleeper(tmp_path, label)
    try:
        assert main(["rollback", str(run_dir)]) == 0
        assert len(labelled(label)) == 1  # its harness is alive: it cleans up itself
        assert main(["rollback", str(tmp_path / "nowhere")]) == 2
    finally:
        sweep(label)


def test_the_next_run_sweeps_a_dead_harness_stack_with_no_fault_in_force(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    old, kept = runs / "old", runs / "kept"
    write_state(old / "stack", owner=dead_pid())
    write_state(kept / "stack", owner=dead_pid(), keep=True)
    gone = sleeper(tmp_path, str((old / "stack").resolve()), "old")
    stay = sleeper(tmp_path, str((kept / "stack").resolve()), "kept")
    try:
        lines = rollback_stale(runs, exclude=runs / "new")
        assert lines == [f"stopped the stack left running by {old}"]
        assert gone not in labelled(str((old / "stack").resolve()))
        assert labelled(str((kept / "stack").resolve())) == [stay]  # --keep is on purpose
    finally:
        sweep(str((kept / "stack").resolve()))


def test_a_second_interrupt_during_teardown_does_not_cut_it_short() -> None:
    steps: list[str] = []

    class Slow:
        def __enter__(self) -> Slow:
            return self

        def __exit__(self, *exc: object) -> None:
            os.kill(os.getpid(), signal.SIGINT)  # the impatient second Ctrl-C
            time.sleep(0.05)
            steps.append("torn down")

    with pytest.raises(KeyboardInterrupt), Teardown(Slow()):
        steps.append("running")
    assert steps == ["running", "torn down"]
    with deferred_interrupts() as got:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    assert got == [signal.SIGTERM]


def _wait_for(ready: Callable[[], object], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["starting", "baseline", "power-down"])
def test_a_harness_killed_at_any_moment_leaves_nothing_after_rollback(
        tmp_path: Path, moment: str) -> None:
    """SIGKILL ``drill run`` while the stack starts (the proxy up, nodes starting), during the
    baseline, or while dc-east is powered down; then ``drill rollback`` leaves no process of
    the run (found by label, so also one whose pid never reached stack.json)."""
    out = tmp_path / "run"
    label = str((out / "stack").resolve())
    proc = subprocess.Popen([*DRILL, "run", "dc-east-power-loss", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if moment == "starting":  # the proxy server is up, the nodes not yet all started
            _wait_for(lambda: labelled(label), "the first process")
        elif moment == "baseline":
            _wait_for(lambda: (out / "load").exists(), "the load")
            time.sleep(2)
        else:
            _wait_for(lambda: Ledger(out).pending(), "the power-down")
            time.sleep(1)
        assert labelled(label), "the run had started processes"
    finally:
        proc.kill()
        proc.wait()
    rb = subprocess.run([*DRILL, "rollback", str(out)], capture_output=True, text=True,
                        timeout=120)
    try:
        assert rb.returncode == 0, rb.stdout + rb.stderr
        assert labelled(label) == [], rb.stdout
    finally:
        sweep(label)


@pytest.mark.slow
def test_two_interrupts_in_a_row_leave_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    label = str((out / "stack").resolve())
    proc = subprocess.Popen([*DRILL, "run", "dc-east-power-loss", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        _wait_for(lambda: Ledger(out).pending(), "the power-down")
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 3
        assert labelled(label) == []
    finally:
        proc.kill()
        sweep(label)


@pytest.mark.slow
def test_on_an_external_toxiproxy_teardown_deletes_the_links_it_created(tmp_path: Path) -> None:
    """Against a Toxiproxy the harness did not start (``TOXIPROXY_URL``), a run's links are its
    own to delete: a second stack on the same server must not fail with 409 "proxy already
    exists", and the server keeps nothing of the first."""
    from drills.stack.local import LocalStack
    from drills.targets.clipstream import TOPOLOGY, ClipStream
    from drills.toxiproxy.embedded import EmbeddedServer

    target = ClipStream()
    with EmbeddedServer() as server:
        for attempt in ("first", "second"):
            with LocalStack(work_dir=tmp_path / attempt, plan=target.local_plan({}),
                            topology=TOPOLOGY, ready=target.ready,
                            toxiproxy_url=server.url) as stack:
                assert stack.link("api->store-east").listen
            left = httpx.get(f"{server.url}/proxies", timeout=5).json()
            assert left == {}, f"{attempt} stack left {sorted(left)}"
