"""Unit tests of the store engine (real log and blob files) and of the pure replication rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from clipstream.blobs import BlobStore
from clipstream.config import FsyncPolicy, StoreConfig
from clipstream.engine import Assignment, StoreEngine
from clipstream.errors import Refused, Unavailable
from clipstream.log import Log
from clipstream.replica import divergence, epoch_of
from clipstream.state import Index


def config(tmp_path: Path, **over: object) -> StoreConfig:
    base: dict[str, object] = dict(
        name="store-east", host="127.0.0.1", port=1, data_dir=tmp_path, peer_url=None,
        fsync=FsyncPolicy("always"), replication="async", replication_timeout_ms=200)
    base.update(over)
    return StoreConfig(**base)  # type: ignore[arg-type]


@asynccontextmanager
async def engine_at(cfg: StoreConfig, *, crash: bool = False) -> AsyncIterator[StoreEngine]:
    """A running engine (flusher on) over real files; ``crash`` closes without flushing."""
    log = Log(cfg.data_dir / "log")
    engine = StoreEngine(cfg, log, BlobStore(cfg.data_dir / "blobs", fsync=True))
    flusher = asyncio.create_task(engine.run_flusher())
    try:
        yield engine
    finally:
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
        log.close(flush=not crash)


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 30))  # type: ignore[arg-type]


PRIMARY = Assignment(role="primary", epoch=1, primary="store-east")


def test_a_retried_increment_counts_once(tmp_path: Path) -> None:
    async def body() -> None:
        async with engine_at(config(tmp_path)) as e:
            await e.assign(PRIMARY)
            await e.upload(video_id="v", title="t", data=b"abc", epoch=1)
            for _ in range(3):
                stats = await e.increment(video_id="v", field="likes", op="op-1", epoch=1)
            assert (stats.views, stats.likes) == (0, 1)
            stats = await e.increment(video_id="v", field="views", op="op-1", epoch=1)
            stats = await e.increment(video_id="v", field="likes", op="op-2", epoch=1)
            assert (stats.views, stats.likes) == (1, 2)
            assert e.log.last_index == 4  # 1 upload + 3 distinct increments, no duplicate record
        async with engine_at(config(tmp_path)) as e:  # and replay agrees
            assert (e.index.views["v"], e.index.likes["v"]) == (1, 2)
    run(body)


def test_concurrent_twins_of_one_increment_count_once(tmp_path: Path) -> None:
    async def body() -> None:
        async with engine_at(config(tmp_path)) as e:
            await e.assign(PRIMARY)
            await e.upload(video_id="v", title="t", data=b"abc", epoch=1)
            await asyncio.gather(*(e.increment(video_id="v", field="likes", op=f"op-{i % 10}",
                                               epoch=1) for i in range(50)))
            assert e.index.likes["v"] == 10
    run(body)


def test_upload_is_idempotent_by_id_and_refuses_other_content(tmp_path: Path) -> None:
    async def body() -> None:
        async with engine_at(config(tmp_path)) as e:
            await e.assign(PRIMARY)
            first = await e.upload(video_id="v", title="t", data=b"abc", epoch=1)
            again = await e.upload(video_id="v", title="t", data=b"abc", epoch=1)
            assert first.created and not again.created and first.video == again.video
            with pytest.raises(Refused) as info:
                await e.upload(video_id="v", title="t", data=b"abd", epoch=1)
            assert (info.value.status, info.value.field) == (409, "client_id")
            assert e.blobs.get(first.video.sha256) == b"abc"
    run(body)


def test_an_acknowledged_write_is_on_disk_with_fsync_always(tmp_path: Path) -> None:
    async def body() -> None:
        async with engine_at(config(tmp_path), crash=True) as e:
            await e.assign(PRIMARY)
            await e.upload(video_id="v", title="t", data=b"abc", epoch=1)
            await e.increment(video_id="v", field="views", op="o", epoch=1)
        async with engine_at(config(tmp_path)) as e:  # after a crash: nothing acked is lost
            assert e.index.views == {"v": 1}
    run(body)


def test_without_fsync_a_crash_loses_the_buffered_tail(tmp_path: Path) -> None:
    """The same sequence with fsync=never really loses the writes: the check above can fail."""
    async def body() -> None:
        cfg = config(tmp_path, fsync=FsyncPolicy("never"))
        async with engine_at(cfg, crash=True) as e:
            await e.assign(PRIMARY)
            await e.upload(video_id="v", title="t", data=b"abc", epoch=1)
        async with engine_at(cfg) as e:
            assert e.index.videos == {}
    run(body)


def test_epoch_fencing_refuses_writes_from_other_epochs(tmp_path: Path) -> None:
    async def body() -> None:
        async with engine_at(config(tmp_path)) as e:
            with pytest.raises(Refused) as info:  # no role yet: never self-promotes
                await e.upload(video_id="v", title="t", data=b"x", epoch=1)
            assert info.value.code == "not_primary"
            await e.assign(Assignment(role="primary", epoch=3, primary="store-east"))
            for epoch, code in ((2, "stale_epoch"), (4, "unknown_epoch")):
                with pytest.raises(Refused) as info:
                    await e.upload(video_id="v", title="t", data=b"x", epoch=epoch)
                assert info.value.code == code
            await e.upload(video_id="v", title="t", data=b"x", epoch=3)
            assert e.log.records[-1].epoch == 3
            with pytest.raises(Refused) as info:  # a coordinator from the past is refused
                await e.assign(Assignment(role="primary", epoch=2, primary="store-east"))
            assert info.value.code == "stale_epoch"
    run(body)


def test_a_pull_from_a_newer_epoch_deposes_the_primary(tmp_path: Path) -> None:
    async def body() -> None:
        async with engine_at(config(tmp_path)) as e:
            await e.assign(PRIMARY)
            await e.upload(video_id="v", title="t", data=b"x", epoch=1)
            with pytest.raises(Refused):
                await e.serve_pull(epoch=2, after=0, after_epoch=0, wait_ms=0)
            assert (e.role, e.epoch) == ("unassigned", 2)
            with pytest.raises(Refused) as info:
                await e.increment(video_id="v", field="likes", op="o", epoch=1)
            assert info.value.code == "not_primary"
        async with engine_at(config(tmp_path)) as e:  # the newest epoch survives a restart
            assert e.epoch == 2 and e.role == "unassigned"
    run(body)


def test_sync_write_waits_for_the_replica_and_fails_without_it(tmp_path: Path) -> None:
    async def body() -> None:
        async with engine_at(config(tmp_path, replication="sync")) as e:
            await e.assign(Assignment(role="primary", epoch=1, primary="store-east",
                                      in_sync=True, sync_gen=1))
            with pytest.raises(Unavailable):
                await e.upload(video_id="v", title="t", data=b"x", epoch=1)
            assert e.log.last_index == 1  # appended, not acknowledged
            ans = await e.serve_pull(epoch=1, after=0, after_epoch=0, wait_ms=0)
            assert [r.index for r in ans.records] == [1]
            retry = asyncio.create_task(e.upload(video_id="v", title="t", data=b"x", epoch=1))
            await asyncio.sleep(0.05)
            assert not retry.done()  # still waiting: the replica has not acknowledged
            await e.serve_pull(epoch=1, after=1, after_epoch=1, wait_ms=0)  # the ack
            assert not (await retry).created
            # the coordinator drops the replica's generation: the primary acks alone
            await e.assign(Assignment(role="primary", epoch=1, primary="store-east",
                                      in_sync=False, sync_gen=1))
            await e.increment(video_id="v", field="likes", op="o", epoch=1)
    run(body)


def test_replica_keeping_up_starts_a_sync_generation(tmp_path: Path) -> None:
    async def body() -> None:  # a long timeout: quick pulls stay quick on a loaded machine
        cfg = config(tmp_path, replication="sync", replication_timeout_ms=5000)
        async with engine_at(cfg) as e:
            await e.assign(PRIMARY)
            assert not e.waiting_for_peer
            await e.upload(video_id="v", title="t", data=b"x", epoch=1)  # acked alone
            await e.serve_pull(epoch=1, after=0, after_epoch=0, wait_ms=0)
            await e.serve_pull(epoch=1, after=0, after_epoch=0, wait_ms=0)
            assert not e.waiting_for_peer  # two quick pulls: not yet shown to keep up
            await e.serve_pull(epoch=1, after=0, after_epoch=0, wait_ms=0)
            s = e.status()
            assert e.waiting_for_peer and s.sync_gen == 1 and not s.sync_ready
            await e.serve_pull(epoch=1, after=1, after_epoch=1, wait_ms=0)
            assert e.status().sync_ready
    run(body)


def test_diverged_position_is_answered_with_epoch_runs(tmp_path: Path) -> None:
    async def body() -> None:
        async with engine_at(config(tmp_path)) as e:
            await e.assign(PRIMARY)
            await e.upload(video_id="v", title="t", data=b"x", epoch=1)
            ans = await e.serve_pull(epoch=1, after=1, after_epoch=7, wait_ms=0)
            assert ans.diverged and ans.runs == ((1, 1),)
            ans = await e.serve_pull(epoch=1, after=5, after_epoch=1, wait_ms=0)
            assert ans.diverged
    run(body)


def test_replica_truncation_discards_and_reindexes(tmp_path: Path) -> None:
    async def body() -> None:
        async with engine_at(config(tmp_path)) as e:
            await e.assign(PRIMARY)
            await e.upload(video_id="a", title="t", data=b"x", epoch=1)
            await e.upload(video_id="b", title="t", data=b"y", epoch=1)
            assert await e.truncate_to(1, epoch=1) == 0  # a primary never truncates
            await e.assign(Assignment(role="replica", epoch=2, primary="store-west"))
            assert await e.truncate_to(1, epoch=2) == 1
            assert list(e.index.videos) == ["a"] and e.status().discarded_records == 1
    run(body)


@pytest.mark.parametrize(("mine", "my_last", "theirs", "their_last", "expected"), [
    ([(1, 1)], 10, [(1, 1)], 10, 10),  # identical
    ([(1, 1)], 10, [(1, 1), (2, 9)], 12, 8),  # old primary's unreplicated tail 9..10
    ([(1, 1)], 5, [(1, 1), (2, 9)], 12, 5),  # simply behind
    ([(1, 1), (2, 4)], 6, [(1, 1), (3, 4)], 9, 3),  # two different successors of epoch 1
    ([(2, 1)], 3, [(1, 1)], 3, 0),  # nothing in common
    ([], 0, [(1, 1)], 4, 0),  # empty replica
    ([(1, 1), (2, 3)], 8, [(1, 1), (2, 3)], 5, 5),  # ahead within the same epoch
])
def test_divergence_point(mine: list[tuple[int, int]], my_last: int,
                          theirs: list[tuple[int, int]], their_last: int, expected: int) -> None:
    assert divergence(mine, my_last, theirs, their_last) == expected


def test_epoch_of() -> None:
    runs = [(1, 1), (3, 5)]
    assert [epoch_of(runs, i) for i in (0, 1, 4, 5, 9)] == [0, 1, 1, 3, 3]


def test_feed_pages_newest_first_and_search_ignores_case() -> None:
    from clipstream.records import VideoRecord

    index = Index.replay(VideoRecord(index=i, epoch=1, id=f"v{i}", title=f"Cat {i}" if i % 2
                                     else f"dog {i}", size=1, sha256="0" * 64, created_at=i)
                         for i in range(1, 8))
    page = index.feed(limit=3, cursor=None)
    assert [i.id for i in page.items] == ["v7", "v6", "v5"] and page.next == "5"
    page = index.feed(limit=3, cursor=int(page.next))
    assert [i.id for i in page.items] == ["v4", "v3", "v2"]
    page = index.feed(limit=3, cursor=int(page.next or 0))
    assert [i.id for i in page.items] == ["v1"] and page.next is None
    assert [i.id for i in index.search("cAT", limit=2)] == ["v7", "v5"]


def oldest_loss(acks: dict[str, float], kept: set[str], t_crash: float) -> float:
    """How long before the crash the oldest lost acknowledged write was acknowledged."""
    return max((t_crash - t for vid, t in acks.items() if vid not in kept), default=0.0)


@pytest.mark.parametrize(("policy", "within_window"), [("interval:300", True), ("never", False)])
def test_crash_window_of_the_fsync_policy(tmp_path: Path, policy: str,
                                          within_window: bool) -> None:
    """In-process twin of the SIGKILL test: with interval:300 a crash loses at most the last
    interval; the same check fails for fsync=never, which loses everything since start."""
    window_s, slack_s = 0.3, 0.25
    cfg = config(tmp_path, fsync=FsyncPolicy.parse(policy))

    async def body() -> tuple[dict[str, float], float]:
        acks: dict[str, float] = {}
        async with engine_at(cfg, crash=True) as e:
            await e.assign(PRIMARY)
            t_end = asyncio.get_running_loop().time() + 1.2
            n = 0
            while asyncio.get_running_loop().time() < t_end:
                n += 1
                await e.upload(video_id=f"v{n}", title="t", data=b"x", epoch=1)
                acks[f"v{n}"] = asyncio.get_running_loop().time()
                await asyncio.sleep(0.01)
            t_crash = asyncio.get_running_loop().time()
        return acks, t_crash

    acks, t_crash = asyncio.run(body())
    with Log(tmp_path / "log") as log:
        kept = {r.id for r in log.records if hasattr(r, "id")}
    assert len(acks) > 50
    assert (oldest_loss(acks, kept, t_crash) <= window_s + slack_s) is within_window


def test_a_restarted_store_refuses_its_old_primary_assignment(tmp_path: Path) -> None:
    async def body() -> None:
        async with engine_at(config(tmp_path)) as e:
            await e.assign(Assignment(role="primary", epoch=1, primary="store-east",
                                      boot_id=e.boot_id))
            old_boot = e.boot_id
        async with engine_at(config(tmp_path)) as e:  # the same store, restarted
            assert e.boot_id != old_boot and e.role == "unassigned"
            with pytest.raises(Refused) as info:
                await e.assign(Assignment(role="primary", epoch=1, primary="store-east",
                                          boot_id=old_boot))
            assert info.value.code == "boot_mismatch" and e.role == "unassigned"
            await e.assign(Assignment(role="primary", epoch=2, primary="store-east",
                                      boot_id=e.boot_id))
            assert (e.role, e.epoch) == ("primary", 2)
    run(body)
