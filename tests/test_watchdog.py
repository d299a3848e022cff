"""The dead-man switch: a harness that dies mid-fault has its faults reverted without anyone
running a command, once the fault's scheduled end plus the grace period has passed.

The unit tests drive `watch` with a fake clock and liveness; the slow test SIGKILLs a real
``drill run`` while dc-east is powered down and waits: dc-east's store is back and answering,
and the ledger shows the fault reverted, within the fault's end plus the grace period.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from drills.ledger import Entry, Ledger
from drills.stack.process import sweep
from drills.watchdog import DEFAULT_GRACE_S, LOG_FILE, scheduled_end, watch, write_deadline

DRILL = [sys.executable, "-m", "drills.cli"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += max(s, 0.001)


def in_force(run_dir: Path) -> None:
    ledger = Ledger(run_dir)
    ledger.intend(Entry("f0", "power_down", "dc-east", {}))
    ledger.injected("f0", {})


def test_a_dead_harness_with_a_fault_in_force_is_reverted_after_the_end_plus_grace(
        tmp_path: Path) -> None:
    in_force(tmp_path)
    clock, reverted = Clock(), []
    deaths = iter([True, True, False])  # alive for two polls, then gone
    lines = watch(tmp_path, owner=1, until=1010.0, grace=5.0,
                  revert=lambda d: reverted.append(clock.now) or ["reverted f0"],
                  clock=clock, sleep=clock.sleep, is_alive=lambda _pid: next(deaths))
    assert reverted and 1015.0 <= reverted[0] < 1015.3  # not before end + grace, promptly
    assert lines[-1] == "reverted f0" and "faults in force" in lines[0]


def test_the_recorded_schedule_wins_over_the_estimate(tmp_path: Path) -> None:
    in_force(tmp_path)
    write_deadline(tmp_path, 1002.0)
    assert scheduled_end(tmp_path, default=9999.0) == 1002.0
    clock, reverted = Clock(), []
    watch(tmp_path, owner=1, until=9999.0, grace=1.0,
          revert=lambda d: reverted.append(clock.now) or [], clock=clock, sleep=clock.sleep,
          is_alive=lambda _pid: False)
    assert 1003.0 <= reverted[0] < 1003.3


def test_a_harness_that_ended_with_nothing_in_force_is_left_alone(tmp_path: Path) -> None:
    Ledger(tmp_path).intend(Entry("f0", "power_down", "dc-east", {}))
    Ledger(tmp_path).reverted("f0")
    lines = watch(tmp_path, owner=1, until=0.0, grace=0.0,
                  revert=lambda d: pytest.fail("nothing was in force"),
                  is_alive=lambda _pid: False)
    assert "no fault in force" in lines[0]


@pytest.mark.slow
def test_a_harness_killed_mid_fault_gets_its_zone_back_with_no_command(tmp_path: Path) -> None:
    """dc-east-power-loss powers dc-east down from +8 s to +23 s; the harness is SIGKILLed at
    ~+9 s. With nobody running anything, dc-east's store must be answering again by the
    fault's end plus the grace period (plus the time a store takes to start)."""
    out = tmp_path / "run"
    proc = subprocess.Popen([*DRILL, "run", "dc-east-power-loss", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not Ledger(out).pending() or not (out / "deadman.json").exists():
            assert time.monotonic() < deadline, "the power-down never started"
            time.sleep(0.1)
        time.sleep(1)
    finally:
        proc.kill()
        proc.wait()
    killed_at = time.time()
    until = json.loads((out / "deadman.json").read_text())["until"]
    store = json.loads((out / "stack" / "stack.json").read_text())["direct"]["store-east"]
    try:
        limit = max(until, killed_at) + DEFAULT_GRACE_S + 20  # + a store's start-up, loaded
        back = False
        while time.time() < limit and not back:
            try:
                back = httpx.get(f"http://{store}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.5)
        assert back, (out / LOG_FILE).read_text()
        assert time.time() >= until + DEFAULT_GRACE_S - 1  # not before the fault was to end
        assert Ledger(out).pending() == []
        assert "reverted f0" in (out / LOG_FILE).read_text()
    finally:
        subprocess.run([*DRILL, "rollback", str(out)], capture_output=True, timeout=120)
        sweep(str((out / "stack").resolve()))


@pytest.mark.slow
def test_a_harness_killed_mid_partition_has_its_links_healed_by_the_lease(tmp_path: Path) -> None:
    """storage-partition blackholes api->store-east from +10 s to +25 s; the harness is
    SIGKILLed at ~+11 s. Our Toxiproxy heals the link when the harness's lease lapses (5 s),
    long before the fault was to end and the watchdog would step in."""
    out = tmp_path / "run"
    proc = subprocess.Popen([*DRILL, "run", "storage-partition", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not Ledger(out).pending():
            assert time.monotonic() < deadline, "the partition never started"
            time.sleep(0.1)
        time.sleep(1)
    finally:
        proc.kill()
        proc.wait()
    killed_at = time.monotonic()
    state = json.loads((out / "stack" / "stack.json").read_text())
    toxics_url = f"{state['toxiproxy_url']}/proxies/api_to_store-east/toxics"
    until = json.loads((out / "deadman.json").read_text())["until"]
    try:
        assert httpx.get(toxics_url, timeout=2).json() != []  # the blackhole is in force
        while httpx.get(toxics_url, timeout=2).json() != []:
            assert time.monotonic() - killed_at < 5.0 + 5.0, "the lease never lapsed"
            time.sleep(0.2)
        assert time.time() < until  # healed before the fault's scheduled end
    finally:
        subprocess.run([*DRILL, "rollback", str(out)], capture_output=True, timeout=120)
        sweep(str((out / "stack").resolve()))
