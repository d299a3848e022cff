"""The fixtures clean up, end to end: pytest runs in a subprocess on a test file using
``drill_stack`` (a real ClipStream as local processes) and ``chaos``. The first test blackholes
a real link and raises inside the block: the link carries traffic again afterwards. The second
powers dc-east down and sleeps; this test sends the session Ctrl-C (SIGINT) mid-fault, as a
user or a cancelled CI job would. The session must end interrupted with every fault reverted in
the ledger and every process of the stack gone. The same holds for a drill file run as a test:
Ctrl-C mid-fault reverts it, tears its stack down and ends the session (the next drill never
starts). About 20-40 s in all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drills.ledger import Ledger

pytestmark = pytest.mark.slow

USER_TESTS = '''
import json, time
from pathlib import Path

import httpx
import pytest

MARK = Path({mark!r})


def test_a_blackhole_is_lifted_even_when_the_block_raises(drill_stack, chaos):
    url = f"http://{{drill_stack.link('api->store-east').listen}}/healthz"
    assert httpx.get(url, timeout=5).status_code == 200
    with pytest.raises(RuntimeError), chaos.partition("api->store-east", mode="blackhole"):
        with pytest.raises(httpx.TimeoutException):
            httpx.get(url, timeout=1)
        raise RuntimeError("the test failed inside the fault")
    assert httpx.get(url, timeout=5).status_code == 200


def test_interrupted_during_a_power_down(drill_stack, chaos):
    with chaos.power_down("dc-east"):
        state = {{n: drill_stack.status(n) for n in drill_stack.topology.nodes}}
        MARK.write_text(json.dumps(state))
        time.sleep(120)
'''


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _left_running(pids: dict[str, int], grace: float = 10.0) -> list[str]:
    """The nodes still alive after ``grace`` seconds (processes may take a moment to be reaped)."""
    deadline = time.monotonic() + grace
    while any(_alive(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [n for n, p in pids.items() if _alive(p)]


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the inner session never reached the fault:\n"
                                 f"{proc.communicate()[0]}")
        time.sleep(0.2)


def test_ctrl_c_mid_fault_reverts_it_and_stops_the_stack(tmp_path):
    mark, out = tmp_path / "in-fault.json", tmp_path / "runs"
    (tmp_path / "test_user.py").write_text(USER_TESTS.format(mark=str(mark)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:locust",
         "-p", "no:benchmark", "-p", "no:hypothesispytest", "-v", "--drills-out", str(out)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait_for(mark, proc, timeout=120)
        (session,) = out.glob("pytest-*")
        pids = json.loads((session / "stack" / "stack.json").read_text())["pids"]
        assert json.loads(mark.read_text())["store-east"] == "stopped"  # the fault was real
        assert [e.kind for e in Ledger(session).pending()] == ["power_down"]
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "test_a_blackhole_is_lifted_even_when_the_block_raises PASSED" in output
    assert "KeyboardInterrupt" in output
    assert Ledger(session).pending() == []
    events = [json.loads(line)["event"] for line in (session / "ledger.jsonl").open()]
    assert events.count("reverted") == 2  # the blackhole and the power-down
    assert _left_running(pids) == [], "stack processes left running"
    assert json.loads((session / "stack" / "stack.json").read_text())["pids"] == {}


LONG = """\
drill: {name}
description: The api is down for a minute (this test interrupts it long before).
load: {{users: 8, rate: 40}}
timeline:
  baseline: 3s
  faults:
    - {{at: 3s, crash: api, for: 60s}}
  settle: 4s
"""


def test_ctrl_c_during_a_drill_item_reverts_it_and_ends_the_session(tmp_path):
    out = tmp_path / "runs"
    (tmp_path / "a-first.yaml").write_text(LONG.format(name="first"))
    (tmp_path / "b-second.yaml").write_text(LONG.format(name="second"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:locust",
         "-p", "no:benchmark", "-p", "no:hypothesispytest", "-v", "--drills-out", str(out)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(Ledger(d).pending() for d in out.glob("first-*")):
            assert proc.poll() is None and time.monotonic() < deadline, "never reached the fault"
            time.sleep(0.2)
        (run_dir,) = out.glob("first-*")
        pids = json.loads((run_dir / "stack" / "stack.json").read_text())["pids"]
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert Ledger(run_dir).pending() == []
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["verdict"] == "error" and "interrupted" in journal["error"]
    assert not list(out.glob("second-*")), "the session went on after Ctrl-C"
    assert _left_running(pids) == [], "stack processes left running"
