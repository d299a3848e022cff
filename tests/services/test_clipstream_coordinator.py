"""Unit tests of the coordinator's pure decision rule, and of its persistence (real file)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpx
from clipstream.config import CoordinatorConfig
from clipstream.coordinator import Coordinator, CoordState, Observation, Report, decide

DETECT = 1.5


def report(role: str, epoch: int = 1, **over: object) -> Report:
    base: dict[str, object] = dict(role=role, epoch=epoch, reconciled=True, replication="async",
                                   waiting_for_peer=False, sync_gen=None, sync_ready=False,
                                   peer_silent_ms=0, last_index=10, last_epoch=epoch)
    base.update(over)
    return Report(**base)  # type: ignore[arg-type]


def obs(east: Observation, west: Observation) -> dict[str, Observation]:
    return {"store-east": east, "store-west": west}


UP_REPLICA = Observation(True, 10.0, report("replica"))
START = CoordState(epoch=1, primary="store-east")


def test_no_promotion_before_the_detection_time() -> None:
    o = obs(Observation(False, 9.0, report("primary")), UP_REPLICA)
    state, why = decide(START, o, now=10.0, started=0.0, detection_s=DETECT)
    assert state == START and why is None


def test_promotion_after_the_detection_time_bumps_the_epoch() -> None:
    o = obs(Observation(False, 8.4, report("primary")), UP_REPLICA)
    state, why = decide(START, o, now=10.0, started=0.0, detection_s=DETECT)
    assert (state.epoch, state.primary, state.failovers, state.in_sync) == (2, "store-west", 1,
                                                                             False)
    assert why is not None and "promoted store-west" in why


def test_a_primary_that_never_answered_counts_from_start() -> None:
    o = obs(Observation(False, None, None), UP_REPLICA)
    assert decide(START, o, now=1.0, started=0.0, detection_s=DETECT)[0] == START
    assert decide(START, o, now=1.6, started=0.0, detection_s=DETECT)[0].primary == "store-west"


def test_ineligible_replicas_are_never_promoted() -> None:
    down = Observation(False, 0.0, report("primary"))
    for west in (
        Observation(False, 0.0, report("replica")),  # unreachable
        Observation(True, 10.0, report("replica", reconciled=False)),  # rejoining, diverged
        Observation(True, 10.0, report("replica", epoch=0)),  # not told this epoch yet
        Observation(True, 10.0, report("unassigned")),
        Observation(True, 10.0, report("replica", replication="sync")),  # sync, not in sync
    ):
        state, _ = decide(START, obs(down, west), now=10.0, started=0.0, detection_s=DETECT)
        assert state == START, west
    in_sync = replace(START, in_sync=True, sync_gen=1)
    west = Observation(True, 10.0, report("replica", replication="sync", reconciled=False))
    state, _ = decide(in_sync, obs(down, west), now=10.0, started=0.0, detection_s=DETECT)
    assert state.primary == "store-west"  # in sync: eligible even before reconciling again


def test_sync_generation_is_confirmed_then_dropped_when_the_replica_goes_silent() -> None:
    p = Observation(True, 10.0, report("primary", replication="sync", sync_gen=1,
                                       sync_ready=True, waiting_for_peer=True))
    state, why = decide(START, obs(p, UP_REPLICA), now=10.0, started=0.0, detection_s=DETECT)
    assert (state.in_sync, state.sync_gen) == (True, 1) and "in sync" in str(why)
    not_ready = Observation(True, 10.0, report("primary", sync_gen=1, waiting_for_peer=True))
    assert decide(START, obs(not_ready, UP_REPLICA), now=10.0, started=0.0,
                  detection_s=DETECT)[0] == START
    silent = Observation(True, 10.0, report("primary", sync_gen=1, peer_silent_ms=1600,
                                            waiting_for_peer=True))
    dropped, _ = decide(state, obs(silent, UP_REPLICA), now=10.0, started=0.0,
                        detection_s=DETECT)
    assert (dropped.in_sync, dropped.sync_gen) == (False, 1)
    gone = obs(p, Observation(False, 8.0, report("replica")))
    assert not decide(state, gone, now=10.0, started=0.0, detection_s=DETECT)[0].in_sync
    # a generation the coordinator never confirmed is dropped too, so the primary stops waiting
    pending = Observation(True, 10.0, report("primary", sync_gen=2, waiting_for_peer=True,
                                             peer_silent_ms=2000))
    state2, _ = decide(dropped, obs(pending, UP_REPLICA), now=10.0, started=0.0,
                       detection_s=DETECT)
    assert (state2.in_sync, state2.sync_gen) == (False, 2)


def test_a_newer_epoch_reported_by_a_store_is_adopted() -> None:
    o = obs(Observation(True, 10.0, report("replica", epoch=5)),
            Observation(True, 10.0, report("primary", epoch=5)))
    state, _ = decide(START, o, now=10.0, started=0.0, detection_s=DETECT)
    assert (state.epoch, state.primary) == (6, "store-west")


def test_state_persists_across_a_restart(tmp_path: Path) -> None:
    cfg = CoordinatorConfig(host="127.0.0.1", port=1, data_dir=tmp_path,
                            stores={"store-east": "http://127.0.0.1:9",
                                    "store-west": "http://127.0.0.1:9"}, primary="store-east")

    async def body() -> None:
        async with httpx.AsyncClient() as client:
            c = Coordinator(cfg, client)
            assert c.state == START
            c._persist(CoordState(epoch=4, primary="store-west", failovers=3))
            again = Coordinator(cfg, client)
            assert (again.state.epoch, again.state.primary) == (4, "store-west")
            (tmp_path / "coordinator.json").write_text("{torn")
            assert Coordinator(cfg, client).state == START

    asyncio.run(body())


def test_a_restarted_primary_gets_a_new_epoch() -> None:
    known = replace(START, primary_boot="boot-1", in_sync=True, sync_gen=3)
    same = obs(Observation(True, 10.0, report("primary", boot_id="boot-1")), UP_REPLICA)
    assert decide(known, same, now=10.0, started=0.0, detection_s=DETECT)[0] == known
    restarted = obs(Observation(True, 10.0, report("unassigned", boot_id="boot-2")), UP_REPLICA)
    state, why = decide(known, restarted, now=10.0, started=0.0, detection_s=DETECT)
    assert (state.epoch, state.primary, state.primary_boot, state.in_sync) == (
        2, "store-east", "boot-2", False)
    assert "restarted" in str(why)
    first = obs(Observation(True, 10.0, report("primary", boot_id="boot-9")), UP_REPLICA)
    state, _ = decide(START, first, now=10.0, started=0.0, detection_s=DETECT)
    assert (state.epoch, state.primary_boot) == (1, "boot-9")  # first sight: no bump
