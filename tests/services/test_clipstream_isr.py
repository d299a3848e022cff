"""The in-sync set end to end: a sync primary's bounded wait for a slow replica, the
coordinator's drop on request, and a real cluster whose replica freezes under write load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from clipstream.coordinator import CoordState, Observation, decide
from clipstream.engine import Assignment, StoreEngine
from clipstream.errors import Unavailable
from clipstream.launch import LocalCluster
from clipstream_support import WriteLoop, dump, state, wait_for
from test_clipstream_coordinator import DETECT, UP_REPLICA, obs, report
from test_clipstream_engine import config, engine_at, run

TIMEOUT_MS = 200
IN_SYNC = Assignment(role="primary", epoch=1, primary="store-east", in_sync=True, sync_gen=1)
DROPPED = replace(IN_SYNC, in_sync=False)


async def pending_upload(e: StoreEngine, vid: str) -> asyncio.Task[object]:
    return asyncio.create_task(e.upload(video_id=vid, title="t", data=vid.encode(), epoch=1))


# ---------------------------------------------------------------- engine (real files)
def test_a_silent_replica_makes_the_primary_ask_for_a_drop_and_ack_only_after_it(
        tmp_path: Path) -> None:
    async def body() -> None:
        cfg = config(tmp_path, replication="sync", replication_timeout_ms=TIMEOUT_MS)
        async with engine_at(cfg) as e:
            await e.assign(IN_SYNC)
            t0 = time.monotonic()
            write = await pending_upload(e, "v")
            # nobody pulls: after the timeout the primary asks to drop generation 1 ...
            while e.status().shrink_gen is None and time.monotonic() - t0 < 5:
                await e.wait_report_change(100)  # the coordinator's long poll
            asked = time.monotonic() - t0
            assert e.status().shrink_gen == 1 and asked >= TIMEOUT_MS / 1000
            await asyncio.sleep(0.05)
            assert not write.done()  # ... but does not acknowledge before the drop is confirmed
            await e.assign(DROPPED)
            upload = await asyncio.wait_for(write, 2)
            assert upload.created and e.sync.peer_acked == 0  # acked alone, after the drop
            # from now on writes do not wait for the dropped replica (nobody pulls: a write
            # that waited would fail)
            assert not e.waiting_for_peer
            await e.increment(video_id="v", field="likes", op="o", epoch=1)
    run(body)


def test_without_the_coordinators_confirmation_the_write_fails_unacknowledged(
        tmp_path: Path) -> None:
    async def body() -> None:
        cfg = config(tmp_path, replication="sync", replication_timeout_ms=TIMEOUT_MS)
        async with engine_at(cfg) as e:
            await e.assign(IN_SYNC)
            t0 = time.monotonic()
            with pytest.raises(Unavailable):
                await e.upload(video_id="v", title="t", data=b"v", epoch=1)
            took = time.monotonic() - t0
            assert 2 * TIMEOUT_MS / 1000 <= took < 5.0  # bounded: 2x timeout, generous slack
            assert e.status().shrink_gen == 1 and e.waiting_for_peer
            # a late, older assignment (in sync, generation 1) does not end the wait either
            await e.assign(IN_SYNC)
            with pytest.raises(Unavailable):
                await e.increment(video_id="v", field="likes", op="o", epoch=1)
    run(body)


def test_a_replica_digesting_a_batch_is_not_waited_for_until_it_keeps_up(
        tmp_path: Path) -> None:
    timeout_ms = 2000  # "quick" = a turnaround under 1 s: a loaded machine cannot fake a slow one

    async def body() -> None:
        cfg = config(tmp_path, replication="sync", replication_timeout_ms=timeout_ms)
        async with engine_at(cfg) as e:
            await e.assign(replace(IN_SYNC, in_sync=False, sync_gen=0))
            for k in range(100):
                await e.upload(video_id=f"v{k}", title="t", data=b"x", epoch=1)
            await e.serve_pull(epoch=1, after=0, after_epoch=0, wait_ms=0)  # 100 behind
            assert not e.waiting_for_peer
            await asyncio.sleep(timeout_ms / 1000 / 2 + 0.1)  # digesting the batch, slowly
            await e.serve_pull(epoch=1, after=90, after_epoch=1, wait_ms=0)  # close, but slow
            assert not e.waiting_for_peer and e.status().keepup_streak == 0
            # not waited for: with nobody pulling, a write that waited would fail
            await e.upload(video_id="alone", title="t", data=b"y", epoch=1)
            for after in (100, 101, 101, 101):  # keeping up: quick pulls, nothing much missing
                await e.serve_pull(epoch=1, after=after, after_epoch=1, wait_ms=0)
            assert e.waiting_for_peer and e.status().sync_gen == 1
    run(body)


# ---------------------------------------------------------------- coordinator (pure)
def test_a_requested_drop_is_granted_at_once_and_before_any_in_sync_mark() -> None:
    in_sync = CoordState(epoch=1, primary="store-east", in_sync=True, sync_gen=1)
    ask = Observation(True, 10.0, report("primary", replication="sync", sync_gen=1,
                                         sync_ready=True, waiting_for_peer=True, shrink_gen=1))
    state, why = decide(in_sync, obs(ask, UP_REPLICA), now=10.0, started=0.0,
                        detection_s=DETECT)
    assert (state.in_sync, state.sync_gen) == (False, 1) and "timed out" in str(why)
    # the same request again (the primary has not heard yet) changes nothing more
    assert decide(state, obs(ask, UP_REPLICA), now=10.0, started=0.0,
                  detection_s=DETECT) == (state, None)
    # a pending generation the primary gave up on is dropped, never marked in sync
    ready_but_asked = Observation(True, 10.0, report(
        "primary", replication="sync", sync_gen=2, sync_ready=True, waiting_for_peer=True,
        shrink_gen=2))
    state2, _ = decide(state, obs(ready_but_asked, UP_REPLICA), now=10.0, started=0.0,
                       detection_s=DETECT)
    assert (state2.in_sync, state2.sync_gen) == (False, 2)
    # and the dropped replica is not promoted when the primary dies
    dead = Observation(False, 5.0, ready_but_asked.report)
    sync_replica = Observation(True, 10.0, report("replica", replication="sync"))
    assert decide(state2, obs(dead, sync_replica), now=10.0, started=0.0,
                  detection_s=DETECT)[0].primary == "store-east"


# ---------------------------------------------------------------- real cluster
MakeCluster = Callable[..., LocalCluster]


def coordinator(cluster: LocalCluster) -> dict[str, object]:
    return httpx.get(f"{cluster.url('coordinator')}/state", timeout=5).json()  # type: ignore[no-any-return]


@pytest.mark.slow
def test_a_frozen_replica_costs_writes_about_the_timeout_and_is_never_promoted(
        make_cluster: MakeCluster) -> None:
    """SIGSTOP the replica under writes: no write takes more than 1.2 s (timeout 300 ms; before
    the in-sync set shrank on request, writes stalled for the 3 s detection time), nothing
    acknowledged is lost, and the out-of-sync replica is not promoted when the primary dies."""
    cluster = make_cluster(fsync="always", replication="sync", replication_timeout_ms=300,
                           detection_ms=3000)
    west, east = cluster.nodes["store-west"], cluster.nodes["store-east"]
    with WriteLoop(cluster.api_url) as loop:
        wait_for(lambda: len(loop.acked) >= 20 and coordinator(cluster)["in_sync"], 20,
                 what="20 acked uploads with the replica in sync")
        west.pause()
        t_freeze = time.time()
        try:
            wait_for(lambda: len(loop.acked_since(t_freeze + 2.5)) >= 5, 20,
                     what="writes acked well after the freeze")
            during = [w for w in loop.writes if w.t >= t_freeze - 1.0]
            print(f"slowest of {len(during)} writes around the freeze: "
                  f"{max(w.took for w in during):.3f} s")
            slow = [w for w in during if w.took > 1.2]
            assert not slow, f"writes slower than 1.2 s: {slow}"
            c = coordinator(cluster)
            assert c["in_sync"] is False and c["epoch"] == 1
            assert state(east.url)["shrink_gen"] is not None  # dropped on request
            east.kill()  # the primary dies while the replica is out of sync
        finally:
            west.resume()
    acked = {a.id for a in loop.acked}
    time.sleep(3.0 + 1.5)  # detection time and more: the replica is up, and not eligible
    c = coordinator(cluster)
    assert (c["primary"], c["epoch"], c["failovers"]) == ("store-east", 1, 0)
    assert state(west.url)["role"] == "replica"
    # the old primary returns (fenced by a new epoch), the replica catches up, nothing is lost
    east.start()
    east.wait_healthy()
    wait_for(lambda: coordinator(cluster)["in_sync"], 20, what="replica back in sync")
    wait_for(lambda: dump(west.url)["videos"] == dump(east.url)["videos"], 15, 0.2,
             "convergence")
    for url in (east.url, west.url):
        kept = {v["id"] for v in dump(url)["videos"]}
        assert acked <= kept, f"lost acked uploads on {url}: {sorted(acked - kept)[:10]}"
