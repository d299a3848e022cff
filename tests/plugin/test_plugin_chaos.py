"""`drills.chaos.Chaos` on the in-memory stack (no processes): every fault kind really changes
the stack's state inside its block and is undone after it, whatever leaves the block; the
ledger has it before the injection; bad targets and parameters are refused before anything."""

from __future__ import annotations

import pytest

from drills.chaos import Chaos
from drills.errors import FaultError, RevertError, SpecError
from drills.faults import rollback
from drills.ledger import Ledger
from drills.stack.memory import MemoryStack
from drills.targets.clipstream import TOPOLOGY


@pytest.fixture
def stack() -> MemoryStack:
    return MemoryStack(TOPOLOGY)


def test_each_kind_breaks_the_stack_inside_and_is_undone_after(stack, tmp_path):
    with Chaos(stack, Ledger(tmp_path), prefix="t") as chaos:
        with chaos.power_down("dc-east") as outage:
            assert stack.state["store-east"] == "stopped"
            assert [e.id for e in Ledger(tmp_path).pending()] == [outage.id]
            assert not outage.reverted and outage.record.reverted_at is None
        assert stack.clean and Ledger(tmp_path).pending() == []
        assert outage.reverted and outage.record.reverted_at >= outage.record.injected_at
        with chaos.crash("coordinator"):
            assert stack.state["coordinator"] == "stopped"
        with chaos.freeze("api"):
            assert stack.state["api"] == "paused"
        with chaos.partition("api->store-east"):
            assert not stack.links["api->store-east"].enabled
        with chaos.partition("api->store-west", mode="blackhole"):
            assert stack.links["api->store-west"].toxics == {"blackhole_up", "blackhole_down"}
        with chaos.latency("store-east->store-west", ms=50, jitter=5):
            assert stack.links["store-east->store-west"].toxics
        with chaos.bandwidth("store-west->store-east", kbps=64):
            assert stack.links["store-west->store-east"].toxics
        assert stack.clean
    assert [r.kind for r in chaos.records] == [
        "power_down", "crash", "freeze", "partition", "partition", "latency", "bandwidth"]
    assert chaos.records[4].detail["mode"] == "blackhole"
    assert chaos.records[5].detail["jitter"] == 5


def test_an_exception_inside_the_block_still_reverts(stack, tmp_path):
    with Chaos(stack, Ledger(tmp_path)) as chaos:
        with pytest.raises(ZeroDivisionError), chaos.power_down("dc-west"):
            assert stack.state["store-west"] == "stopped"
            1 / 0  # noqa: B018
        assert stack.clean and chaos.active == ()


def test_interrupt_inside_nested_faults_reverts_both(stack, tmp_path):
    with pytest.raises(KeyboardInterrupt), Chaos(stack, Ledger(tmp_path)) as chaos, \
            chaos.crash("api"), chaos.partition("coordinator->store-east", mode="reset"):
        assert not stack.clean
        raise KeyboardInterrupt
    assert stack.clean and Ledger(tmp_path).pending() == []


def test_leaving_chaos_reverts_what_is_still_in_force(stack, tmp_path):
    """A fault entered by hand and never left is reverted when the Chaos itself ends."""
    with Chaos(stack, Ledger(tmp_path)) as chaos:
        frozen = chaos.freeze("store-east")
        frozen.__enter__()
        assert stack.state["store-east"] == "paused" and len(chaos.active) == 1
    assert stack.clean and Ledger(tmp_path).pending() == []


def test_a_revert_that_fails_is_raised_and_left_in_the_ledger(stack, tmp_path):
    with pytest.raises(RevertError, match="still in force"), \
            Chaos(stack, Ledger(tmp_path)) as chaos:
        with pytest.raises(RevertError, match="power_down dc-east"), \
                chaos.power_down("dc-east"):
            stack.broken.add("start")
        assert chaos.active  # still in force: the Chaos retries when it ends, and fails again
    assert [e.kind for e in Ledger(tmp_path).pending()] == ["power_down"]
    stack.broken.clear()  # repaired: the ledger alone is enough to bring the zone back
    assert rollback(stack, Ledger(tmp_path))[1] == [] and stack.clean


def test_a_failed_injection_is_undone_and_raised(stack, tmp_path):
    stack.broken.add("kill")
    with Chaos(stack, Ledger(tmp_path)) as chaos, pytest.raises(FaultError):  # noqa: SIM117
        with chaos.crash("store-west"):
            pytest.fail("the block must not run when the injection failed")
    assert Ledger(tmp_path).pending() == []


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: c.power_down("dc-eats"), "unknown zone 'dc-eats'; did you mean 'dc-east'?"),
    (lambda c: c.crash("dc-east"), "unknown node 'dc-east'"),
    (lambda c: c.partition("api->store-middle"), "unknown link 'api->store-middle'"),
    (lambda c: c.partition("api->store-east", mode="sideways"), "mode"),
    (lambda c: c.latency("api->store-east", ms=10, jitter=50), "must not exceed ms"),
    (lambda c: c.bandwidth("api->store-east", kbps=0), "kbps"),
    (lambda c: c.fault("earthquake", "dc-east"), "unknown fault kind 'earthquake'"),
])
def test_bad_targets_and_parameters_are_refused_before_anything(stack, tmp_path, call, message):
    with Chaos(stack, Ledger(tmp_path)) as chaos:
        with pytest.raises(SpecError, match="chaos") as err, call(chaos):
            pytest.fail("the block must not run")
        assert message in str(err.value)
    assert stack.clean and not Ledger(tmp_path).path.exists()  # nothing recorded, nothing done
