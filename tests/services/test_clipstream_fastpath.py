"""The fast path answers exactly as FastAPI does, and the pooled client behaves over real sockets.

No node processes: the store app runs in-process over real files in ``tmp_path`` (twice: with
and without the fast path, fed the same requests), the api app against a mock network, and the
pooled client against a small HTTP/1.1 server started here with asyncio.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from clipstream.api_app import create_api_app
from clipstream.client import PooledHostClient
from clipstream.config import ApiConfig
from clipstream.errors import Unreachable
from clipstream.fastpath import FastRoute, Reply, digits_in, length_in, matches
from clipstream.store_app import create_store_app
from fastapi import FastAPI
from test_clipstream_engine import config

Call = tuple[str, str, bytes | None]


# ---------------------------------------------------------------- predicates and matching
def test_digits_in_accepts_only_plain_digits_in_range() -> None:
    accept = digits_in(1, 100)
    assert all(accept(v) for v in ("1", "20", "100"))
    for odd in ("0", "01", "+1", " 1", "1 ", "1.0", "101", "", "1e2", "\u0661", "-1"):
        assert not accept(odd), odd
    assert digits_in(0, 5)("0") and not digits_in(0, 5)("00")


def test_matches_is_a_full_match_without_the_final_newline_of_dollar() -> None:
    accept = matches(r"^[A-Za-z0-9_-]{1,64}$")
    assert accept("cat-1") and accept("x" * 64)
    for odd in ("cat\n", "a.b", "", "x" * 65, "caf\u00e9"):
        assert not accept(odd), odd


def test_a_fast_route_leaves_anything_unsure_to_fastapi() -> None:
    async def handler(*_: object) -> Reply:  # pragma: no cover - never called here
        return Reply(200, b"")

    route = FastRoute("GET", "/videos/{video_id}", handler,
                      params={"video_id": matches(r"^[a-z]+$"), "limit": digits_in(1, 9)},
                      required=frozenset({"limit"}))

    def accept(path: str, query: bytes) -> dict[str, str] | None:
        return route.accept({"path": path, "query_string": query})

    assert accept("/videos/cat", b"limit=3&other=x") == {"video_id": "cat", "limit": "3"}
    assert accept("/videos/cat", b"limit=3&limit=4") is None  # repeated
    assert accept("/videos/cat", b"") is None  # required missing
    assert accept("/videos/Cat", b"limit=3") is None  # path parameter refused
    assert accept("/videos/cat/stats", b"limit=3") is None  # another route
    assert accept("/videos/cat", b"limit=%33") == {"video_id": "cat", "limit": "3"}


# ---------------------------------------------------------------- store: fast path == FastAPI
def _normalised(r: httpx.Response) -> tuple[object, ...]:
    """What must be equal: status, media type, node headers, body (times removed)."""
    def drop_times(x: object) -> object:
        if isinstance(x, dict):
            return {k: drop_times(v) for k, v in x.items() if k not in ("created_at", "c")}
        if isinstance(x, list):
            return [drop_times(v) for v in x]
        return x

    try:
        parsed = r.json()
    except ValueError:
        return r.status_code, r.headers.get("content-type"), r.content
    body = drop_times(parsed)
    raw = r.content if body == parsed else None  # without times, the very bytes must agree
    headers = {k: v for k, v in r.headers.items() if k.startswith("x-clipstream")}
    return r.status_code, r.headers.get("content-type"), headers, body, raw


async def _answers(app: FastAPI, calls: list[Call]) -> list[tuple[object, ...]]:
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
        answers = []
        for method, url, body in calls:
            json_body = body is not None and body.startswith(b"{")
            r = await client.request(method, url, content=body, headers={
                "content-type": "application/json" if json_body else "application/octet-stream"})
            answers.append(_normalised(r))
        return answers


def _differ(make: Callable[[bool], FastAPI], calls: list[Call], *,
            setup: list[Call] | None = None) -> None:
    """The same ``setup`` then ``calls`` to the app with and without the fast path; the
    answers to ``calls`` must agree."""
    before = setup or []
    fast = asyncio.run(_answers(make(True), before + calls))[len(before):]
    slow = asyncio.run(_answers(make(False), before + calls))[len(before):]
    for call, a, b in zip(calls, fast, slow, strict=True):
        assert a == b, call


STORE_SETUP: list[Call] = [
    ("POST", "/assign", json.dumps({"role": "primary", "epoch": 1,
                                    "primary": "store-east"}).encode()),
    ("POST", "/videos?id=v1&title=Cat%20video&epoch=1", b"meow"),
    ("POST", "/videos?id=v2&title=Dog&epoch=1", b"woof"),
]
STORE_CALLS: list[Call] = [
    ("GET", "/healthz", None),
    ("GET", "/feed", None), ("GET", "/feed?limit=1", None), ("GET", "/feed?limit=1&cursor=2", None),
    ("GET", "/feed?limit=0", None), ("GET", "/feed?limit=01", None), ("GET", "/feed?limit=x", None),
    ("GET", "/feed?cursor=-1", None), ("GET", "/feed?limit=5&limit=6", None),
    ("GET", "/search?q=CAT", None), ("GET", "/search?q=", None), ("GET", "/search", None),
    ("GET", "/search?q=d&limit=101", None),
    ("GET", "/videos/v1", None), ("GET", "/videos/nope", None), ("GET", "/videos/v1/stats", None),
    ("GET", "/videos/nope/stats", None),
    ("POST", "/videos/v1/incr?field=views&op=o1&epoch=1", None),
    ("POST", "/videos/v1/incr?field=views&op=o1&epoch=1", None),
    ("POST", "/videos/v1/incr?field=likes&op=o2&epoch=1", None),
    ("POST", "/videos/v1/incr?field=shares&op=o3&epoch=1", None),
    ("POST", "/videos/v1/incr?field=views&op=o4&epoch=0", None),
    ("POST", "/videos/v1/incr?field=views&op=o5&epoch=7", None),
    ("POST", "/videos/v1/incr?field=views&epoch=1", None),
    ("POST", "/videos/v1/incr?field=views&op=" + "o" * 129 + "&epoch=1", None),
    ("POST", "/videos/nope/incr?field=views&op=o6&epoch=1", None),
    ("GET", "/videos/v1/stats", None),
    ("GET", "/repl/pull?epoch=1&after=0&after_epoch=0", None),
    ("GET", "/repl/pull?epoch=1&after=99&after_epoch=1", None),
    ("GET", "/repl/pull?epoch=1&after=x&after_epoch=0", None),
]


def test_the_store_fast_path_answers_as_fastapi_does(tmp_path: Path) -> None:
    made = iter(("fast", "slow"))
    _differ(lambda on: create_store_app(config(tmp_path / next(made)), fast_path=on),
            STORE_CALLS, setup=STORE_SETUP)
    setup = asyncio.run(_answers(create_store_app(config(tmp_path / "again")), STORE_SETUP))
    assert [a[0] for a in setup] == [200, 201, 201]  # the calls met a primary with videos


# ---------------------------------------------------------------- api: fast path == FastAPI
ITEM = {"id": "v", "title": "Cat", "views": 5, "likes": 3, "created_at": 1.0}


def fake_stores(request: httpx.Request) -> httpx.Response:
    """A coordinator naming store-east primary, two stores answering canned bodies."""
    host, path = request.url.host, request.url.path
    if host == "coordinator":
        return httpx.Response(200, json={"primary": "store-east", "epoch": 1, "stores": {}})
    headers = {"X-ClipStream-Role": "primary" if host == "store-east" else "replica",
               "X-ClipStream-Store": host, "X-ClipStream-Epoch": "1"}
    bodies: dict[str, object] = {
        "/healthz": {"name": host, "role": "primary", "epoch": 1},
        "/videos/v/stats": {"id": "v", "views": 5, "likes": 3},
        "/videos/v": {**ITEM, "size": 3, "sha256": "0" * 64},
        "/videos/v/incr": {"id": "v", "views": 6, "likes": 3},
        "/feed": {"items": [ITEM], "next": request.url.params.get("limit")},
        "/search": {"items": [ITEM], "q": request.url.params.get("q")},
    }
    if path not in bodies:
        return httpx.Response(404, json={"error": "no", "field": "id"}, headers=headers)
    return httpx.Response(200, json=bodies[path], headers=headers)


API_CALLS: list[Call] = [
    ("GET", "/feed", None), ("GET", "/feed?limit=3", None), ("GET", "/feed?cursor=5", None),
    ("GET", "/feed?limit=0", None), ("GET", "/feed?cursor=05", None),
    ("GET", "/search?q=cat", None), ("GET", "/search?q=caf%C3%A9&limit=2", None),
    ("GET", "/search?q=", None), ("GET", "/search?q=" + "q" * 201, None),
    ("GET", "/videos/v", None), ("GET", "/videos/v/stats", None), ("GET", "/videos/a.b", None),
    ("GET", "/videos/nope/stats", None),
    ("POST", "/videos/v/views?op_id=o1", None), ("POST", "/videos/v/likes?op_id=o2", None),
    ("POST", "/videos/v/views?op_id=bad%20op", None), ("POST", "/videos/nope/likes", None),
]


def test_the_api_fast_path_answers_as_fastapi_does() -> None:
    cfg = ApiConfig(host="127.0.0.1", port=1, coordinator_url="http://coordinator",
                    stores={"store-east": "http://store-east", "store-west": "http://store-west"})
    _differ(lambda on: create_api_app(cfg, transport=httpx.MockTransport(fake_stores),
                                      fast_path=on), API_CALLS)


def test_the_api_fast_path_is_counted_under_its_route_template() -> None:
    cfg = ApiConfig(host="127.0.0.1", port=1, coordinator_url="http://coordinator",
                    stores={"store-east": "http://store-east", "store-west": "http://store-west"})
    app = create_api_app(cfg, transport=httpx.MockTransport(fake_stores))

    async def body() -> str:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
            await client.get("/videos/v/stats")
            return (await client.get("/metrics")).text

    text = asyncio.run(body())
    assert 'route="/videos/{video_id}/stats",status="200"' in text


# ---------------------------------------------------------------- the pooled client
@asynccontextmanager
async def http_server() -> AsyncIterator[tuple[str, list[int]]]:
    """An HTTP/1.1 server on 127.0.0.1; yields its URL and a list that grows per connection.

    ``/slow`` answers after 1 s; ``/drop-next`` answers, then drops the connection when the
    next request comes on it (the race of a keep-alive timeout); ``/close-after`` answers, then
    closes the connection (an idle keep-alive timeout).
    """
    conns: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(1)
        drop_next = False
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if drop_next:
                    return
                path = head.split(b" ")[1].decode()
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                data = await reader.readexactly(length)
                if path == "/slow":
                    await asyncio.sleep(1)
                drop_next = path == "/drop-next"
                body = json.dumps({"path": path, "conn": len(conns), "got": len(data)}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nX-Test: Yes\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
                await writer.drain()
                if path == "/close-after":
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", conns
    finally:
        server.close()


def test_the_pooled_client_reuses_one_connection_and_reads_whole_answers() -> None:
    async def body() -> None:
        async with http_server() as (url, conns):
            client = PooledHostClient(url)
            for i in range(3):
                r = await client.request("POST", "/a b", params={"q": "x y"},
                                         content=b"z" * i, timeout=2)
                assert r.status_code == 200 and r.headers["x-test"] == "Yes"
                assert r.json() == {"path": "/a%20b?q=x+y", "conn": 1, "got": i}
            await client.aclose()
            assert len(conns) == 1

    asyncio.run(body())


def test_the_pooled_client_copes_with_connections_the_peer_closes() -> None:
    async def body() -> None:
        async with http_server() as (url, _):
            client = PooledHostClient(url)
            await client.request("GET", "/drop-next", timeout=2)
            r = await client.request("GET", "/after", timeout=2)
            assert r.json() == {"path": "/after", "conn": 2, "got": 0}
            await client.aclose()

            one = PooledHostClient(url, max_connections=1)  # a connection closed while idle
            await one.request("GET", "/close-after", timeout=2)  # frees its slot at once
            await asyncio.sleep(0.05)
            r = await one.request("GET", "/later", timeout=0.5)
            assert r.json() == {"path": "/later", "conn": 4, "got": 0}
            await one.aclose()

    asyncio.run(body())


def test_the_pooled_client_queues_past_its_limit_and_times_out_as_unreachable() -> None:
    async def body() -> None:
        async with http_server() as (url, _):
            client = PooledHostClient(url, max_connections=1)
            answers = await asyncio.gather(*(client.request("GET", f"/{i}", timeout=2)
                                             for i in range(4)))
            assert [a.json()["conn"] for a in answers] == [1, 1, 1, 1]  # type: ignore[index]
            t0 = time.monotonic()
            with pytest.raises(Unreachable, match="timed out"):
                await client.request("GET", "/slow", timeout=0.2)
            assert time.monotonic() - t0 < 0.6
            r = await client.request("GET", "/next", timeout=2)  # a new connection
            assert r.json() == {"path": "/next", "conn": 2, "got": 0}
            await client.aclose()
        with pytest.raises(Unreachable, match="cannot connect"):
            await PooledHostClient(url).request("GET", "/", timeout=1)

    asyncio.run(body())


def test_length_in_counts_characters() -> None:
    assert length_in(1, 3)("caf") and length_in(1, 4)("caf\u00e9") and not length_in(1, 3)("")
