"""The public api against a real ClipStream (four processes on 127.0.0.1, module-scoped)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from clipstream.launch import Knobs, LocalCluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MAX_UPLOAD = 64 * 1024


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base: Path = tmp_path_factory.mktemp("clipstream-api")
    with LocalCluster(base, knobs=Knobs(max_upload_bytes=MAX_UPLOAD)) as cluster:
        yield cluster.api_url


@pytest.fixture(scope="module")
def client(api: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, timeout=10) as c:
        yield c


def test_upload_feed_like_stats(client: httpx.Client) -> None:
    r = client.post("/videos", params={"title": "Funny cat", "client_id": "cat-1"},
                    content=b"\x00meow" * 100)
    assert r.status_code == 201
    video = r.json()
    assert (video["id"], video["title"], video["size"]) == ("cat-1", "Funny cat", 500)
    assert r.headers["X-ClipStream-Store"] == "store-east"
    assert r.headers["X-ClipStream-Epoch"] == "1"
    again = client.post("/videos", params={"title": "Funny cat", "client_id": "cat-1"},
                        content=b"\x00meow" * 100)
    assert again.status_code == 200 and again.json() == video
    client.post("/videos", params={"title": "Dog", "client_id": "dog-1"}, content=b"woof")

    feed = client.get("/feed", params={"limit": 1})
    assert feed.status_code == 200 and "X-ClipStream-Degraded" not in feed.headers
    assert feed.headers["X-ClipStream-Store"] == "store-east"
    page = feed.json()
    assert [i["id"] for i in page["items"]] == ["dog-1"] and page["next"]
    page2 = client.get("/feed", params={"limit": 1, "cursor": page["next"]}).json()
    assert [i["id"] for i in page2["items"]] == ["cat-1"]

    for op in ("l1", "l2", "l1"):
        r = client.post("/videos/cat-1/likes", params={"op_id": op})
        assert r.status_code == 200 and r.headers["X-ClipStream-Epoch"] == "1"
    r = client.post("/videos/cat-1/views", params={"op_id": "v1"})
    assert r.json() == {"id": "cat-1", "views": 1, "likes": 2}
    assert client.get("/videos/cat-1/stats").json() == {"id": "cat-1", "views": 1, "likes": 2}
    meta = client.get("/videos/cat-1").json()
    assert (meta["views"], meta["likes"], meta["sha256"]) == (1, 2, video["sha256"])
    assert client.get("/videos/cat-1/blob").content == b"\x00meow" * 100
    items = client.get("/search", params={"q": "CAT"}).json()["items"]
    assert [(i["id"], i["likes"]) for i in items] == [("cat-1", 2)]
    assert {"cat-1", "dog-1"} <= set(client.get("/videos").json()["ids"])


def test_upload_without_client_id_gets_a_fresh_id(client: httpx.Client) -> None:
    a = client.post("/videos", params={"title": "anon"}, content=b"same")
    b = client.post("/videos", params={"title": "anon"}, content=b"same")
    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]


@pytest.mark.parametrize(("method", "path", "params", "body", "status", "field"), [
    ("POST", "/videos", {"title": "big"}, b"x" * (MAX_UPLOAD + 1), 413, "body"),
    ("POST", "/videos", {"title": "empty"}, b"", 422, "body"),
    ("POST", "/videos", {}, b"x", 422, "title"),
    ("POST", "/videos", {"title": ""}, b"x", 422, "title"),
    ("POST", "/videos", {"title": "t" * 201}, b"x", 422, "title"),
    ("POST", "/videos", {"title": "t", "client_id": "bad id"}, b"x", 422, "client_id"),
    ("POST", "/videos", {"title": "t", "client_id": "x" * 65}, b"x", 422, "client_id"),
    ("GET", "/videos/a.b", {}, None, 422, "video_id"),
    ("GET", "/videos/nope", {}, None, 404, "id"),
    ("GET", "/videos/nope/blob", {}, None, 404, "id"),
    ("GET", "/videos/nope/stats", {}, None, 404, "id"),
    ("POST", "/videos/nope/likes", {"op_id": "o"}, None, 404, "id"),
    ("POST", "/videos/nope/views", {"op_id": "o"}, None, 404, "id"),
    ("POST", "/videos/cat-1/likes", {"op_id": "bad op"}, None, 422, "op_id"),
    ("GET", "/feed", {"limit": "0"}, None, 422, "limit"),
    ("GET", "/feed", {"limit": "abc"}, None, 422, "limit"),
    ("GET", "/feed", {"cursor": "-4"}, None, 422, "cursor"),
    ("GET", "/search", {}, None, 422, "q"),
    ("GET", "/search", {"q": ""}, None, 422, "q"),
])
def test_bad_input_gets_a_4xx_naming_the_field(client: httpx.Client, method: str, path: str,
                                               params: dict[str, str], body: bytes | None,
                                               status: int, field: str) -> None:
    r = client.request(method, path, params=params, content=body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and r.json()["error"]


def test_a_client_id_reused_for_other_content_is_a_conflict(client: httpx.Client) -> None:
    client.post("/videos", params={"title": "one", "client_id": "dup"}, content=b"1")
    r = client.post("/videos", params={"title": "one", "client_id": "dup"}, content=b"2")
    assert r.status_code == 409 and r.json()["field"] == "client_id"
    assert client.get("/videos/dup/blob").content == b"1"  # nothing was overwritten


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=st.text(max_size=250), cid=st.text(max_size=70), op=st.text(max_size=70),
       q=st.text(max_size=250), cursor=st.text(max_size=25), body=st.binary(max_size=64))
def test_no_input_produces_a_5xx(client: httpx.Client, title: str, cid: str, op: str, q: str,
                                 cursor: str, body: bytes) -> None:
    answers = [
        client.post("/videos", params={"title": title, "client_id": cid}, content=body),
        client.post("/videos/cat-1/likes", params={"op_id": op}),
        client.get("/search", params={"q": q}),
        client.get("/feed", params={"cursor": cursor}),
        client.get(f"/videos/{quote(cid, safe='')}"),
    ]
    for r in answers:
        assert r.status_code < 500, (r.request.url, r.status_code, r.text)
        if r.status_code >= 400:
            assert "error" in r.json() and "field" in r.json()


def test_openapi_schema_lists_the_routes(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/videos", "/videos/{video_id}", "/videos/{video_id}/blob", "/feed",
                 "/search", "/videos/{video_id}/views", "/videos/{video_id}/likes",
                 "/videos/{video_id}/stats", "/healthz", "/metrics"):
        assert path in schema["paths"], path


def test_healthz_and_metrics(client: httpx.Client) -> None:
    h = client.get("/healthz").json()
    assert (h["status"], h["primary"], h["epoch"]) == ("ok", "store-east", 1)
    assert isinstance(h["pid"], int)  # the worker that answered
    text = client.get("/metrics").text
    for name in ("clipstream_api_requests_total", "clipstream_api_errors_total",
                 "clipstream_api_failovers_total", "clipstream_replication_lag_records"):
        assert name in text, name
