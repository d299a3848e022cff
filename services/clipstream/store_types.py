"""Typed records a store exchanges: its assignment, its status, pull answers, upload outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clipstream.records import Record
from clipstream.state import Video

Role = Literal["primary", "replica", "unassigned"]


@dataclass(frozen=True, slots=True)
class Assignment:
    """What the coordinator tells a store: its role, the epoch, the primary, the sync state."""

    role: Literal["primary", "replica"]
    epoch: int
    primary: str
    in_sync: bool = False
    sync_gen: int = 0
    boot_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """A store's view of itself (``GET /state``; also the answer to an assignment)."""

    name: str
    role: Role
    epoch: int
    primary: str | None
    last_index: int
    last_epoch: int
    durable_index: int
    replication: str
    fsync: str
    replication_lag: int
    reconciled: bool
    waiting_for_peer: bool
    sync_gen: int | None
    sync_ready: bool
    shrink_gen: int | None
    keepup_streak: int
    peer_acked: int
    peer_silent_ms: int | None
    truncated_records: int
    truncated_bytes: int
    discarded_records: int
    videos: int
    boot_id: str
    bugs: tuple[str, ...] = ()  # planted DR bugs named by --bugs (clipstream.bugs), sorted


@dataclass(frozen=True, slots=True)
class PullAnswer:
    """The primary's answer to a pull: records after the replica's position, or divergence."""

    epoch: int
    last_index: int
    diverged: bool
    records: tuple[Record, ...] = ()
    runs: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Upload:
    """The outcome of an upload: the video, whether this call created it, the acking epoch."""

    video: Video
    created: bool
    epoch: int
