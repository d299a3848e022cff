"""The in-memory index of a store, derived only from its log (rebuilt by replaying it).

Applying a record is idempotent by key: a video id is created once; an increment counts once per
``(video, field, op)``. The index also remembers at which log index each key was written, so a
retried write can wait for *that* record's durability and replication before it is acknowledged.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from clipstream.records import IncrRecord, Record, VideoRecord


@dataclass(frozen=True, slots=True)
class Video:
    """Metadata of one uploaded video."""

    id: str
    title: str
    size: int
    sha256: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Stats:
    """The counters of one video."""

    id: str
    views: int
    likes: int


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One entry of the feed or of search results."""

    id: str
    title: str
    views: int
    likes: int
    created_at: float


@dataclass(frozen=True, slots=True)
class FeedPage:
    """A page of the feed, newest first; ``next`` is the cursor of the following page."""

    items: tuple[FeedItem, ...]
    next: str | None


class Index:
    """Videos, counters and dedup keys of one store, kept in log order."""

    def __init__(self) -> None:
        self.videos: dict[str, Video] = {}
        self.video_at: dict[str, int] = {}
        self.views: dict[str, int] = {}
        self.likes: dict[str, int] = {}
        self.ops: dict[tuple[str, str, str], int] = {}
        self._order: list[int] = []  # log index of each video record, ascending
        self._order_ids: list[str] = []

    @classmethod
    def replay(cls, records: Iterable[Record]) -> Index:
        """Build an index from scratch by applying ``records`` in order."""
        index = cls()
        for rec in records:
            index.apply(rec)
        return index

    def apply(self, rec: Record) -> None:
        """Apply one record; a duplicate key or an increment of an unknown video is a no-op."""
        if isinstance(rec, VideoRecord):
            if rec.id in self.videos:
                return
            self.videos[rec.id] = Video(rec.id, rec.title, rec.size, rec.sha256, rec.created_at)
            self.video_at[rec.id] = rec.index
            self.views[rec.id] = 0
            self.likes[rec.id] = 0
            self._order.append(rec.index)
            self._order_ids.append(rec.id)
            return
        assert isinstance(rec, IncrRecord)
        key = (rec.video, rec.field, rec.op)
        if key in self.ops or rec.video not in self.videos:
            return
        self.ops[key] = rec.index
        counters = self.views if rec.field == "views" else self.likes
        counters[rec.video] += 1

    def stats(self, video_id: str) -> Stats | None:
        if video_id not in self.videos:
            return None
        return Stats(video_id, self.views[video_id], self.likes[video_id])

    def _item(self, video_id: str) -> FeedItem:
        v = self.videos[video_id]
        return FeedItem(v.id, v.title, self.views[v.id], self.likes[v.id], v.created_at)

    def feed(self, *, limit: int, cursor: int | None) -> FeedPage:
        """Newest first; ``cursor`` is the log index of the last item of the previous page."""
        ids, nxt = self.feed_ids(limit=limit, cursor=cursor)
        return FeedPage(tuple(self._item(i) for i in ids), nxt)

    def feed_ids(self, *, limit: int, cursor: int | None) -> tuple[list[str], str | None]:
        """The ids of `feed`'s page, newest first, and its ``next`` cursor."""
        end = len(self._order) if cursor is None else bisect.bisect_left(self._order, cursor)
        start = max(0, end - limit)
        ids = self._order_ids[start:end][::-1]
        return ids, (str(self._order[start]) if start > 0 and ids else None)

    def search(self, query: str, *, limit: int) -> tuple[FeedItem, ...]:
        """Videos whose title contains ``query`` (case-insensitive), newest first."""
        return tuple(self._item(i) for i in self.search_ids(query, limit=limit))

    def search_ids(self, query: str, *, limit: int) -> list[str]:
        """The ids of `search`'s answer, newest first."""
        needle = query.casefold()
        found: list[str] = []
        for vid in reversed(self._order_ids):
            if needle in self.videos[vid].title.casefold():
                found.append(vid)
                if len(found) >= limit:
                    break
        return found

    def ids(self) -> list[str]:
        """Every video id, oldest first."""
        return list(self._order_ids)
