"""Feed and search pages rendered from cached fragments are the bytes JSONResponse would send."""

from __future__ import annotations

from dataclasses import asdict

from clipstream.records import IncrRecord, VideoRecord
from clipstream.render import ItemsJson
from clipstream.state import Index
from clipstream.web import json_bytes

TITLES = ("Cat", 'a "quoted" \\ title', "caf\u00e9 \u2603 \U0001f431", "tab\there", "</script>")


def index_of(titles: tuple[str, ...]) -> Index:
    index = Index()
    for n, title in enumerate(titles, start=1):
        index.apply(VideoRecord(n, 1, f"v{n}", title, 3, "0" * 64, 1733355555.123456 + n / 7))
    index.apply(IncrRecord(len(titles) + 1, 1, "v2", "likes", "op"))
    return index


def expected_feed(index: Index, limit: int, cursor: int | None) -> bytes:
    page = index.feed(limit=limit, cursor=cursor)
    return json_bytes({"items": [asdict(i) for i in page.items], "next": page.next})


def test_feed_and_search_pages_are_the_bytes_of_json_response() -> None:
    index, items = index_of(TITLES), ItemsJson()
    for limit, cursor in ((20, None), (2, None), (2, 4), (1, 2), (5, 1)):
        for _ in range(2):  # rendered anew, then from the fragments
            assert items.feed(index, limit=limit, cursor=cursor) == expected_feed(
                index, limit, cursor), (limit, cursor)
    for query in ("a", "CAT", "\u2603", "nothing"):
        want = json_bytes({"items": [asdict(i) for i in index.search(query, limit=20)]})
        assert items.search(index, query, limit=20) == want, query


def test_counters_are_current_and_a_rebuilt_index_gets_new_fragments() -> None:
    index, items = index_of(TITLES), ItemsJson()
    items.feed(index, limit=20, cursor=None)
    index.apply(IncrRecord(99, 1, "v1", "views", "op2"))
    assert items.feed(index, limit=20, cursor=None) == expected_feed(index, 20, None)
    rebuilt = index_of(("other", "titles"))  # same ids, other videos (a rejoin discarded some)
    assert items.feed(rebuilt, limit=20, cursor=None) == expected_feed(rebuilt, 20, None)
