"""The fault injector, the ledger and rollback, on the in-memory stack (no processes)."""

from __future__ import annotations

import pytest

from drills.errors import FaultError, RevertError
from drills.faults import Injector, rollback
from drills.ledger import Entry, Ledger
from drills.stack.memory import MemoryStack
from drills.targets.clipstream import TOPOLOGY

ALL = [
    Entry("f0", "power_down", "dc-east", {}),
    Entry("f1", "crash", "coordinator", {}),
    Entry("f2", "freeze", "api", {}),
    Entry("f3", "partition", "api->store-east", {"mode": "down"}),
    Entry("f4", "partition", "api->store-west", {"mode": "blackhole"}),
    Entry("f5", "partition", "coordinator->store-east", {"mode": "reset"}),
    Entry("f6", "latency", "store-east->store-west", {"ms": 100, "jitter": 10}),
    Entry("f7", "bandwidth", "store-west->store-east", {"kbps": 10}),
]


def test_every_kind_breaks_something_and_is_undone(tmp_path):
    stack = MemoryStack(TOPOLOGY)
    with Injector(stack, Ledger(tmp_path)) as inj:
        for e in ALL:
            inj.inject(e, scheduled_at=1.0)
        assert stack.state["store-east"] == "stopped"
        assert stack.state["api"] == "paused"
        assert not stack.links["api->store-east"].enabled
        assert stack.links["api->store-west"].toxics
        assert not stack.clean
        assert len(Ledger(tmp_path).pending()) == len(ALL)
    assert stack.clean
    assert Ledger(tmp_path).pending() == []
    assert {r.id for r in inj.records} == {e.id for e in ALL}


def test_a_one_way_latency_fault_adds_one_toxic_and_reverts_it(tmp_path):
    stack = MemoryStack(TOPOLOGY)
    entry = Entry("f0", "latency", "store-west->store-east",
                  {"ms": 60, "jitter": 0, "direction": "upstream"})
    with Injector(stack, Ledger(tmp_path)) as inj:
        inj.inject(entry, scheduled_at=1.0)
        assert stack.links["store-west->store-east"].toxics == {"latency_up"}
    assert stack.clean


def test_exception_inside_still_reverts(tmp_path):
    stack = MemoryStack(TOPOLOGY)
    with pytest.raises(KeyboardInterrupt), Injector(stack, Ledger(tmp_path)) as inj:
        inj.inject(ALL[0], scheduled_at=0)
        raise KeyboardInterrupt
    assert stack.clean and Ledger(tmp_path).pending() == []


def test_revert_failure_is_raised_and_left_in_ledger(tmp_path):
    stack = MemoryStack(TOPOLOGY, broken=["start"])
    with pytest.raises(RevertError, match="f0"), Injector(stack, Ledger(tmp_path)) as inj:
        inj.inject(ALL[0], scheduled_at=0)
    assert [e.id for e in Ledger(tmp_path).pending()] == ["f0"]
    # the stack is fixed, then rollback from the ledger alone brings the zone back
    stack.broken.clear()
    done, failures = rollback(stack, Ledger(tmp_path))
    assert done == ["f0"] and failures == [] and stack.clean


def test_failed_injection_is_recorded_first_and_reverted(tmp_path):
    stack = MemoryStack(TOPOLOGY, broken=["kill"])
    with pytest.raises(FaultError), Injector(stack, Ledger(tmp_path)) as inj:
        inj.inject(ALL[1], scheduled_at=0)
    assert Ledger(tmp_path).pending() == []  # reverted on the way out


def test_rollback_without_undo_details_heals_the_link(tmp_path):
    """The harness died after recording the intent but before recording the toxic names."""
    stack = MemoryStack(TOPOLOGY)
    ledger = Ledger(tmp_path)
    ledger.intend(ALL[4])
    stack.links["api->store-west"].blackhole()
    assert not stack.clean
    done, _ = rollback(stack, ledger)
    assert done == ["f4"] and stack.clean


def test_ledger_ignores_torn_tail(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.intend(ALL[0])
    with ledger.path.open("a") as fh:
        fh.write('{"event":"reverted","id":"f0"')  # killed mid-write
    assert [e.id for e in ledger.pending()] == ["f0"]
