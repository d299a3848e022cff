"""The JSON of the store's most read answers, feed and search pages, from cached fragments.

Half the load reads the feed: twenty items a page, each ``{"id","title","views","likes",
"created_at"}``. Building the dicts and encoding them cost ~70 us a page; a video's id, title
and creation time never change, so `ItemsJson` keeps each video's encoded head and tail and
only writes its two counters per answer. The bytes are exactly those of Starlette's
``JSONResponse`` for the same dicts (compact separators, UTF-8, ``ensure_ascii=False``).

A fragment belongs to one `Video` object: when the index is rebuilt (a rejoining store discards
records) new objects replace the old, and the fragments are made again.
"""

from __future__ import annotations

import json

from clipstream.state import Index, Video


def _text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


class ItemsJson:
    """Renders feed and search pages of one store's `Index` (use from one event loop)."""

    def __init__(self) -> None:
        self._parts: dict[str, tuple[Video, str, str]] = {}

    def item(self, index: Index, video_id: str) -> str:
        """One item, as in a feed or search answer."""
        video = index.videos[video_id]
        parts = self._parts.get(video_id)
        if parts is None or parts[0] is not video:
            head = f'{{"id":{_text(video.id)},"title":{_text(video.title)},"views":'
            tail = f',"created_at":{json.dumps(video.created_at, allow_nan=False)}}}'
            parts = self._parts[video_id] = (video, head, tail)
        return f"{parts[1]}{index.views[video_id]},\"likes\":{index.likes[video_id]}{parts[2]}"

    def feed(self, index: Index, *, limit: int, cursor: int | None) -> bytes:
        """``{"items": [...], "next": ...}`` of `Index.feed`."""
        ids, nxt = index.feed_ids(limit=limit, cursor=cursor)
        items = ",".join(self.item(index, i) for i in ids)
        return f'{{"items":[{items}],"next":{"null" if nxt is None else _text(nxt)}}}'.encode()

    def search(self, index: Index, query: str, *, limit: int) -> bytes:
        """``{"items": [...]}`` of `Index.search`."""
        items = ",".join(self.item(index, i) for i in index.search_ids(query, limit=limit))
        return f'{{"items":[{items}]}}'.encode()
