"""The replica side of replication: pull records from the primary, reconcile a diverged log.

The replica dials its peer only through ``--peer-url`` (a proxy may sit there). In ``sync`` mode
it pulls back-to-back with long polls, acknowledging by position once its append is durable; in
``async`` mode it pulls every ``pull_interval_ms``. When the primary answers ``diverged`` (a
rejoining old primary holds records the new primary never had), the replica keeps the longest
prefix on which both logs agree (same epoch at the same index: each epoch has one writer, and
every append checks the previous position, so equal epochs mean equal prefixes) and drops the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import httpx

from clipstream.bugs import Bug
from clipstream.engine import PullAnswer, StoreEngine
from clipstream.errors import ClipStreamError, CorruptRecord
from clipstream.records import Record, VideoRecord, from_wire, to_wire

LONG_POLL_MS = 300
RETRY_S = 0.1
BLOB_FETCHES = 4  # blobs of one pulled batch fetched at once
LOG = logging.getLogger("clipstream.replica")


def epoch_of(runs: Sequence[tuple[int, int]], index: int) -> int:
    """The epoch at ``index`` in a log described by ``runs`` (``(epoch, first_index)``)."""
    epoch = 0
    for run_epoch, first in runs:
        if first > index:
            break
        epoch = run_epoch
    return epoch


def divergence(
    mine: Sequence[tuple[int, int]], my_last: int,
    theirs: Sequence[tuple[int, int]], their_last: int,
) -> int:
    """The last index up to which two logs agree (0 if they agree on nothing).

    Walks the segments where both epochs are constant and stops at the first that differs.
    """
    limit = min(my_last, their_last)
    bounds = sorted({1} | {i for _, i in mine} | {i for _, i in theirs})
    agreed = 0
    for k, start in enumerate(bounds):
        if start > limit:
            break
        if epoch_of(mine, start) != epoch_of(theirs, start):
            break
        agreed = min(bounds[k + 1] - 1, limit) if k + 1 < len(bounds) else limit
    return agreed


def answer_to_wire(a: PullAnswer) -> dict[str, object]:
    """JSON form of a pull answer."""
    return {
        "epoch": a.epoch, "last_index": a.last_index, "diverged": a.diverged,
        "records": [to_wire(r) for r in a.records], "runs": [list(r) for r in a.runs],
    }


def answer_from_wire(d: object) -> PullAnswer:
    """Parse a pull answer; raise `CorruptRecord` if malformed."""
    try:
        assert isinstance(d, dict)
        return PullAnswer(
            epoch=int(d["epoch"]), last_index=int(d["last_index"]),
            diverged=bool(d["diverged"]),
            records=tuple(from_wire(r) for r in d["records"]),
            runs=tuple((int(e), int(i)) for e, i in d["runs"]),
        )
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise CorruptRecord(f"bad pull answer: {exc}") from exc


async def fetch_blobs(engine: StoreEngine, client: httpx.AsyncClient, peer_url: str,
                      records: Sequence[Record]) -> None:
    """Fetch the missing blobs of ``records``' videos, `BLOB_FETCHES` at a time.

    One at a time, a catch-up batch of a few hundred records took seconds (a round trip and an
    fsync per blob), and the primary saw the replica silent meanwhile. Any failure cancels the
    rest and raises (`ClipStreamError` or an httpx error): the records are not appended.
    """
    missing = sorted({r.sha256 for r in records
                      if isinstance(r, VideoRecord) and not engine.blobs.has(r.sha256)})
    gate = asyncio.Semaphore(BLOB_FETCHES)

    async def one(sha: str) -> None:
        async with gate:
            blob = await client.get(f"{peer_url}/repl/blob/{sha}",
                                    timeout=httpx.Timeout(10.0, connect=0.5))
            if blob.status_code != 200:
                raise ClipStreamError(f"blob {sha} answered {blob.status_code}")
            await asyncio.to_thread(engine.blobs.put, blob.content, expect_sha256=sha)

    try:
        async with asyncio.TaskGroup() as group:
            for sha in missing:
                group.create_task(one(sha))
    except BaseExceptionGroup as group_exc:
        raise group_exc.exceptions[0] from group_exc


async def pull_once(engine: StoreEngine, client: httpx.AsyncClient, peer_url: str, *,
                    epoch: int, wait_ms: int) -> PullAnswer:
    """One pull from the peer at our position; blobs of new videos are fetched first."""
    params = {"epoch": epoch, "after": engine.log.last_index,
              "after_epoch": engine.log.last_epoch, "wait_ms": wait_ms}
    resp = await client.get(f"{peer_url}/repl/pull", params=params,
                            timeout=httpx.Timeout(1.0 + wait_ms / 1000, connect=0.5))
    if resp.status_code != 200:
        raise ClipStreamError(f"pull answered {resp.status_code}: {resp.text[:200]}")
    answer = answer_from_wire(resp.json())
    await fetch_blobs(engine, client, peer_url, answer.records)
    return answer


async def durable_before_ack(engine: StoreEngine, timeout: float = 5.0) -> bool:
    """Hold the next pull (the acknowledgement) until what was appended is durable (sync mode).

    Returns whether it is durable under this store's policy. Bug ``ack-before-fsync``: returns
    False at once, so the next pull acknowledges records still in the write-back buffer.
    """
    if engine.has_bug(Bug.ACK_BEFORE_FSYNC):
        return False
    return await engine.wait_durable(engine.log.last_index, timeout=timeout)


async def run_replica(engine: StoreEngine, client: httpx.AsyncClient) -> None:
    """Replicate forever while this store is a replica; idle otherwise."""
    peer_url = engine.cfg.peer_url
    sync = engine.cfg.replication == "sync"
    while True:
        if engine.role != "replica" or not peer_url:
            await engine.wait_change(1.0)
            continue
        epoch = engine.epoch
        try:
            answer = await pull_once(engine, client, peer_url, epoch=epoch,
                                     wait_ms=LONG_POLL_MS if sync else 0)
        except (httpx.HTTPError, ClipStreamError, ValueError, OSError) as exc:
            LOG.debug("pull failed: %s", exc)
            await asyncio.sleep(RETRY_S)
            continue
        if answer.diverged:
            keep = divergence(engine.log.epoch_runs(), engine.log.last_index,
                              answer.runs, answer.last_index)
            if not await engine.truncate_to(keep, epoch=epoch):
                await asyncio.sleep(RETRY_S)
            continue
        taken = engine.apply_pulled(answer, epoch=epoch)
        if sync and taken:
            await durable_before_ack(engine)
        if not sync and answer.last_index <= engine.log.last_index:
            await asyncio.sleep(engine.cfg.pull_interval_ms / 1000)
