"""The store engine: role and epoch fencing, idempotent writes, durability and replication waits.

One `StoreEngine` per store process, used from one event loop. It owns the `Log`, the `Index`
derived from it and the `BlobStore`. Only the coordinator assigns roles (`assign`); a restarted
store is ``unassigned`` and refuses writes. Every write names the epoch its sender believes in; a
store refuses writes under an epoch other than its own, and never goes back to an older epoch (the
newest one seen is persisted in ``<data-dir>/epoch``).

A write is acknowledged only when its record is durable (``fsync=always``) and, while the primary
is *waiting for its peer* (sync replication with the replica in the in-sync set), when the replica
has durably appended it. Replication is pulled by the replica (`serve_pull`); the replica's next
pull acknowledges what it has. `clipstream.syncset.SyncSet` decides when the primary starts
waiting (the replica keeps up: a new *sync generation*) and when a write that waited
``replication_timeout_ms`` asks the coordinator to drop the replica from the set; the write is
acknowledged alone only after the coordinator confirmed the drop (it never promotes a replica
outside the set), and fails with 503 if the confirmation does not come within another
``replication_timeout_ms``. So no acknowledged write is lost with sync replication, and a slow
or frozen replica stalls writes for about the replication timeout, not the detection time.

Planted bugs (``--bugs``, `clipstream.bugs`; off by default, for DR drills only) bend exactly
these rules: ``ack-before-fsync`` (`_durable_enough`, `run_flusher`), ``ack-before-replication``
(`_peer_has`), ``no-fencing`` (`_commit`) and ``count-retries-twice`` (`_dedup_op`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
from typing import Literal

from clipstream.blobs import BlobStore
from clipstream.bugs import Bug
from clipstream.config import NEVER_WRITEBACK_BYTES, NEVER_WRITEBACK_S, StoreConfig
from clipstream.errors import Refused, Unavailable
from clipstream.log import Log
from clipstream.records import IncrRecord, Record, VideoRecord
from clipstream.state import Index, Stats
from clipstream.store_types import Assignment, PullAnswer, Role, StoreStatus, Upload
from clipstream.syncset import SyncSet

__all__ = ["Assignment", "PullAnswer", "StoreEngine", "StoreStatus", "Upload"]

DURABLE_TIMEOUT_S = 5.0
LAZY_FLUSH_S = 0.2  # bug ack-before-fsync: the flusher's delay, PostgreSQL's default 200 ms
#                     wal_writer_delay with synchronous_commit=off
LOG = logging.getLogger("clipstream.store")


class StoreEngine:
    """State machine of one store; see the module docstring for the contract."""

    def __init__(self, cfg: StoreConfig, log: Log, blobs: BlobStore):
        self.cfg = cfg
        self.log = log
        self.blobs = blobs
        self.index = Index.replay(log.records)
        self.epoch = max(self._read_epoch_file(), log.last_epoch)
        self.boot_id = uuid.uuid4().hex
        self.role: Role = "unassigned"
        self.primary: str | None = None
        self.sync = SyncSet(cfg.replication_timeout_ms / 1000)
        self.sync.reset(time.monotonic())
        self.reconciled_epoch = 0
        self.primary_last_index = 0
        self.discarded_records = 0
        self._tick = asyncio.Event()
        self._grew = asyncio.Event()
        self.dirty = asyncio.Event()
        self.io_lock = asyncio.Lock()

    def has_bug(self, bug: Bug) -> bool:
        """True when the planted ``bug`` is on (``--bugs``); always False by default."""
        return bug in self.cfg.bugs

    # ----------------------------------------------------------------- change notification
    def bump(self) -> None:
        """Wake every waiter: something (log, durability, peer, role) changed."""
        self._tick.set()
        self._tick = asyncio.Event()

    async def wait_change(self, timeout: float, *, growth: bool = False) -> None:
        """Sleep until the next `bump` (or, with ``growth``, the next append) or ``timeout``.

        Appends do not `bump`: waiters for durability or acknowledgement only wake on progress.
        """
        ev = self._grew if growth else self._tick
        if ev.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0.0)):  # no task per wait, as wait_for has
                await ev.wait()

    def _signal_growth(self) -> None:
        self._grew.set()
        self._grew = asyncio.Event()

    # ----------------------------------------------------------------- epochs and roles
    def _epoch_path(self) -> str:
        return os.path.join(self.cfg.data_dir, "epoch")

    def _read_epoch_file(self) -> int:
        try:
            with open(self._epoch_path()) as fh:
                return int(json.load(fh)["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def _write_epoch_file(self, epoch: int) -> None:
        tmp = self._epoch_path() + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"epoch": epoch}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._epoch_path())

    async def observe_epoch(self, epoch: int) -> None:
        """Adopt a newer epoch (persisted); a primary of an older epoch is thereby deposed."""
        if epoch <= self.epoch:
            return
        self.epoch = epoch
        if self.role == "primary":
            LOG.warning("%s deposed: epoch %d seen", self.cfg.name, epoch)
            self.role = "unassigned"
        self.bump()
        await asyncio.to_thread(self._write_epoch_file, epoch)

    async def assign(self, a: Assignment) -> StoreStatus:
        """Take the role the coordinator gives; refuse an assignment from an older epoch."""
        if a.epoch < self.epoch:
            raise Refused(f"assignment under epoch {a.epoch} < {self.epoch}", status=409,
                          code="stale_epoch", field="epoch")
        if a.role == "primary" and a.primary != self.cfg.name:
            raise Refused("a primary assignment must name this store", status=422,
                          code="invalid", field="primary")
        if a.role == "primary" and a.boot_id is not None and a.boot_id != self.boot_id:
            # this store restarted since it was made primary: it may have lost a tail the
            # replica holds; the coordinator must bump the epoch before it writes again
            raise Refused("restarted since assigned", status=409, code="boot_mismatch",
                          field="boot_id")
        before = (self.role, self.epoch)
        await self.observe_epoch(a.epoch)
        if (a.role, a.epoch) != before:
            LOG.info("%s is now %s at epoch %d", self.cfg.name, a.role, a.epoch)
            self.sync.reset(time.monotonic())
        self.role, self.primary = a.role, a.primary
        if a.role == "primary":
            self.sync.assigned(in_sync=a.in_sync, sync_gen=a.sync_gen)
        self.bump()
        return self.status()

    def report_key(self) -> tuple[object, ...]:
        """What the coordinator decides on; `assign` long polls return early when it changes."""
        s = self.status()
        return (s.role, s.epoch, s.sync_gen, s.sync_ready, s.waiting_for_peer, s.shrink_gen,
                s.reconciled)

    async def wait_report_change(self, wait_ms: int) -> None:
        """Hold until `report_key` changes or ``wait_ms`` passes (the coordinator's long poll)."""
        key, deadline = self.report_key(), time.monotonic() + wait_ms / 1000
        while self.report_key() == key and time.monotonic() < deadline:
            await self.wait_change(deadline - time.monotonic())

    @property
    def waiting_for_peer(self) -> bool:
        """True while acks must wait for the replica (sync, replica in or entering sync)."""
        if self.role != "primary" or self.cfg.replication != "sync":
            return False
        return self.sync.waiting

    def status(self) -> StoreStatus:
        lag = max(0, self.primary_last_index - self.log.last_index) if self.role == "replica" else 0
        return StoreStatus(
            name=self.cfg.name, role=self.role, epoch=self.epoch, primary=self.primary,
            last_index=self.log.last_index, last_epoch=self.log.last_epoch,
            durable_index=self.log.durable_index, replication=self.cfg.replication,
            fsync=str(self.cfg.fsync), replication_lag=lag,
            reconciled=self.role == "replica" and self.reconciled_epoch == self.epoch,
            waiting_for_peer=self.waiting_for_peer, sync_gen=self.sync.self_gen,
            sync_ready=self.sync.ready, shrink_gen=self.sync.shrink_gen,
            keepup_streak=self.sync.streak, peer_acked=self.sync.peer_acked,
            peer_silent_ms=int((time.monotonic() - self.sync.last_contact) * 1000),
            truncated_records=self.log.truncated_records,
            truncated_bytes=self.log.truncated_bytes,
            discarded_records=self.discarded_records, videos=len(self.index.videos),
            boot_id=self.boot_id, bugs=tuple(sorted(str(b) for b in self.cfg.bugs)),
        )

    # ----------------------------------------------------------------- writes
    def _check_writable(self, epoch: int) -> None:
        if self.role != "primary":
            raise Refused(f"{self.cfg.name} is not the primary ({self.role})", status=409,
                          code="not_primary", field="epoch")
        if epoch != self.epoch:
            code = "stale_epoch" if epoch < self.epoch else "unknown_epoch"
            raise Refused(f"write under epoch {epoch}, store is at {self.epoch}", status=409,
                          code=code, field="epoch")

    def _append(self, rec: Record) -> None:
        self.log.append(rec)
        self.index.apply(rec)
        self.dirty.set()
        self._signal_growth()

    async def upload(self, *, video_id: str, title: str, data: bytes, epoch: int) -> Upload:
        """Create video ``video_id`` (idempotent: same id + same content = same video)."""
        self._check_writable(epoch)
        if len(data) > self.cfg.max_blob_bytes:
            raise Refused("video too large", status=413, code="too_large", field="body")
        if len(data) > 65536:
            sha = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        else:
            sha = hashlib.sha256(data).hexdigest()
        created = False
        if video_id not in self.index.videos:
            await asyncio.to_thread(self.blobs.put, data, expect_sha256=sha)
            self._check_writable(epoch)
            if video_id not in self.index.videos:  # a twin request may have won meanwhile
                self._append(VideoRecord(index=self.log.last_index + 1, epoch=self.epoch,
                                         id=video_id, title=title, size=len(data), sha256=sha,
                                         created_at=time.time()))
                created = True
        video = self.index.videos[video_id]
        if video.sha256 != sha or video.title != title:
            raise Refused(f"id {video_id} already holds a different video", status=409,
                          code="conflict", field="client_id")
        await self._commit(self.index.video_at[video_id], epoch)
        return Upload(video, created, epoch)

    async def increment(self, *, video_id: str, field: Literal["views", "likes"], op: str,
                        epoch: int) -> Stats:
        """Count one view or like of ``video_id`` for client operation ``op`` (once per op)."""
        self._check_writable(epoch)
        if video_id not in self.index.videos:
            raise Refused(f"no video {video_id}", status=404, code="not_found", field="id")
        op = self._dedup_op(video_id, field, op)
        at = self.index.ops.get((video_id, field, op))
        if at is None:
            at = self.log.last_index + 1
            self._append(IncrRecord(index=at, epoch=self.epoch, video=video_id, field=field, op=op))
        await self._commit(at, epoch)
        stats = self.index.stats(video_id)
        assert stats is not None
        return stats

    def _dedup_op(self, video_id: str, field: str, op: str) -> str:
        """The op key an increment is deduplicated (and logged) under: ``op`` itself.

        Bug ``count-retries-twice``: dedup only within one epoch, as if the table lived with
        the primary and was rebuilt empty on failover. An op already recorded under an older
        epoch gets the key ``op@e<epoch>``: a new op for the log, replication and replay alike.
        """
        if not self.has_bug(Bug.COUNT_RETRIES_TWICE):
            return op
        at = self.index.ops.get((video_id, field, op))
        if at is None or self.log.epoch_at(at) >= self.epoch:
            return op
        return f"{op}@e{self.epoch}"

    def _durable_enough(self, at: int) -> bool:
        """Record ``at`` may be acknowledged as far as this store's disk is concerned.

        Bug ``ack-before-fsync``: in the write-back buffer (the OS page cache) is enough.
        """
        if self.cfg.fsync.mode != "always" or self.has_bug(Bug.ACK_BEFORE_FSYNC):
            return True
        return self.log.durable_index >= at

    def _peer_has(self, at: int) -> bool:
        """Record ``at`` may be acknowledged as far as the replica is concerned.

        Bug ``ack-before-replication``: never wait for the replica (it stays in sync, promotable).
        """
        if not self.waiting_for_peer or self.has_bug(Bug.ACK_BEFORE_REPLICATION):
            return True
        return self.sync.peer_acked >= at

    async def _commit(self, at: int, epoch: int) -> None:
        """Wait until record ``at`` may be acknowledged; raise `Unavailable` if it may not.

        Waiting for the replica is bounded: after the replication timeout the in-sync set is
        asked to shrink (see `SyncSet`); after twice the timeout the write fails unacknowledged.
        Bug ``no-fencing``: after the timeout the write is acknowledged alone at once, without
        waiting for the coordinator to confirm the shrink (that wait is the fence).
        """
        start, timeout = time.monotonic(), self.cfg.replication_timeout_ms / 1000
        while True:
            if self.role != "primary" or self.epoch != epoch:
                raise Unavailable(f"{self.cfg.name} was deposed before the write committed")
            durable = self._durable_enough(at)
            peer = self._peer_has(at)
            if durable and peer:
                return
            waited = time.monotonic() - start
            if not peer and waited >= timeout:
                if self.sync.request_shrink():
                    LOG.warning("%s: replica silent for %d ms, asking to drop sync generation "
                                "%d", self.cfg.name, round(waited * 1000), self.sync.shrink_gen)
                    self.bump()  # wakes the coordinator's long poll
                if self.has_bug(Bug.NO_FENCING):
                    peer = True  # the bug: acknowledged alone, the drop never confirmed
                    if durable:
                        return
            limit = 2 * timeout if not peer else DURABLE_TIMEOUT_S
            if waited >= limit:
                raise Unavailable("the replica did not acknowledge in time and its removal "
                                  "from the in-sync set was not confirmed" if not peer
                                  else "the log did not become durable in time")
            await self.wait_change((timeout if waited < timeout else limit) - waited)

    # ----------------------------------------------------------------- durability
    async def flush(self, *, fsync: bool) -> None:
        """Move the write-back buffer to the file (and the disk when ``fsync``)."""
        async with self.io_lock:
            data, upto = self.log.take_pending()
            if data:
                await asyncio.to_thread(self.log.write_out, data, fsync=fsync)
            self.log.mark_durable(upto)
        self.bump()

    async def run_flusher(self) -> None:
        """Apply the fsync policy forever: group commit, fixed interval, or OS-like write-back."""
        policy = self.cfg.fsync
        next_at = time.monotonic()
        while True:
            if policy.mode == "always":
                await self.dirty.wait()
                if self.has_bug(Bug.ACK_BEFORE_FSYNC):
                    await asyncio.sleep(LAZY_FLUSH_S)  # acks did not wait: flush in groups
                self.dirty.clear()
                await self.flush(fsync=True)
            elif policy.mode == "interval":
                next_at += policy.interval_ms / 1000
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at, time.monotonic() - policy.interval_ms / 1000)
                if self.log.pending_bytes:
                    await self.flush(fsync=True)
            else:
                await asyncio.sleep(0.1)
                due = time.monotonic() - next_at >= NEVER_WRITEBACK_S
                if self.log.pending_bytes >= NEVER_WRITEBACK_BYTES or (due and
                                                                       self.log.pending_bytes):
                    await self.flush(fsync=False)
                    next_at = time.monotonic()

    # ----------------------------------------------------------------- replication
    async def serve_pull(self, *, epoch: int, after: int, after_epoch: int,
                         wait_ms: int) -> PullAnswer:
        """Answer a replica positioned at (``after``, ``after_epoch``) under ``epoch``.

        The position doubles as the replica's acknowledgement of everything up to ``after``.
        A position that does not match this log answers ``diverged`` with the epoch runs.
        """
        await self.observe_epoch(epoch)
        self._check_writable(epoch)
        if after > self.log.last_index or self.log.epoch_at(after) != after_epoch:
            self.sync.last_contact = time.monotonic()
            self.sync.on_diverged()
            return PullAnswer(self.epoch, self.log.last_index, True,
                              runs=tuple(self.log.epoch_runs()))
        if self.sync.on_pull(after=after, last_index=self.log.last_index, now=time.monotonic(),
                             propose=self.cfg.replication == "sync"):
            # from now on acks wait for the replica; it is *ready* (may be promoted) once it
            # also holds everything acknowledged before this point
            LOG.info("%s: replica keeps up, sync generation %d", self.cfg.name,
                     self.sync.self_gen)
        self.bump()
        deadline = time.monotonic() + wait_ms / 1000
        while after == self.log.last_index and time.monotonic() < deadline:
            await self.wait_change(deadline - time.monotonic(), growth=True)
            self._check_writable(epoch)
        recs = tuple(self.log.records[after : after + self.cfg.pull_batch])
        self.sync.on_answer(time.monotonic())
        return PullAnswer(self.epoch, self.log.last_index, False, records=recs)

    def apply_pulled(self, answer: PullAnswer, *, epoch: int) -> int:
        """Append records pulled under ``epoch`` (a replica only); return how many were taken."""
        if self.role != "replica" or self.epoch != epoch or answer.epoch != epoch:
            return 0
        taken = 0
        for rec in answer.records:
            if rec.index != self.log.last_index + 1:
                break
            self.log.append(rec)
            self.index.apply(rec)
            taken += 1
        self.primary_last_index = answer.last_index
        if self.reconciled_epoch != epoch:
            self.reconciled_epoch = epoch
            self.bump()
        if taken:
            self.dirty.set()
            self._signal_growth()
        return taken

    async def truncate_to(self, index: int, *, epoch: int) -> int:
        """Discard records after ``index`` (a replica rejoining); return how many were dropped."""
        if self.role != "replica" or self.epoch != epoch:
            return 0
        async with self.io_lock:
            dropped = self.log.truncate_to(index)
        if dropped:
            LOG.warning("%s discards %d records after index %d (never on the primary)",
                        self.cfg.name, len(dropped), index)
            self.index = Index.replay(self.log.records)
            self.discarded_records += len(dropped)
            self.bump()
        return len(dropped)

    async def wait_durable(self, index: int, timeout: float) -> bool:
        """Wait until records up to ``index`` are durable under this store's policy."""
        deadline = time.monotonic() + timeout
        while self.cfg.fsync.mode == "always" and self.log.durable_index < index:
            if time.monotonic() >= deadline:
                return False
            await self.wait_change(deadline - time.monotonic())
        return True
