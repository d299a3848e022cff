"""Conformance: every endpoint of the Toxiproxy HTTP API, its shapes, status codes and errors.

Runs against ours by default, or any server named by TOXIPROXY_URL (see conftest). Each error
path is provoked for real; each success is checked against the state it should leave behind
(a listener that accepts or refuses, a proxy that is there or gone).
"""

from __future__ import annotations

import socket

import httpx
import pytest
from tp_support import (
    TcpServer,
    closed_port_addr,
    connect,
    read_until_end,
    refused,
    round_trip,
    unique,
    wait_for,
)


def error_of(resp: httpx.Response) -> tuple[int, str]:
    body = resp.json()
    assert body["status"] == resp.status_code
    return resp.status_code, body["error"]


# -- server-wide ------------------------------------------------------------------------------
def test_version_answers_a_version_string(http: httpx.Client) -> None:
    resp = http.get("/version")
    assert resp.status_code == 200
    assert isinstance(resp.json()["version"], str) and resp.json()["version"]
    assert resp.headers.get("X-Toxiproxy-Request-Id")


def test_request_ids_differ_and_are_on_errors_too(http: httpx.Client) -> None:
    ids = {http.get("/proxies").headers["X-Toxiproxy-Request-Id"] for _ in range(3)}
    assert len(ids) == 3
    assert http.get(f"/proxies/{unique()}").headers.get("X-Toxiproxy-Request-Id")


def test_browser_user_agent_is_refused(http: httpx.Client) -> None:
    ua = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"}
    resp = http.post("/proxies", json={"name": unique(), "upstream": "127.0.0.1:1"}, headers=ua)
    assert resp.status_code == 403
    assert resp.text.strip() == "User agent not allowed"
    assert http.get("/proxies", headers={"User-Agent": "curl/8"}).status_code == 200


def test_unknown_path_is_404_and_wrong_method_405(http: httpx.Client) -> None:
    assert http.get("/nope").status_code == 404
    assert http.get("/proxies/a/b/c/d").status_code == 404
    assert http.put("/proxies", json={}).status_code == 405
    assert http.delete("/version").status_code == 405
    assert http.get("/reset").status_code == 405
    assert http.request("PUT", "/proxies/x/toxics").status_code == 405


# -- proxies ----------------------------------------------------------------------------------
def test_create_proxy_shape_status_and_listen_rewrite(http: httpx.Client, make_proxy) -> None:
    with TcpServer() as up:
        name = unique()
        proxy = make_proxy(up.addr, name=name, listen="localhost:0")
        fields = {"name", "listen", "upstream", "enabled", "toxics"}
        assert fields <= set(proxy) <= fields | {"Logger"}  # Go 2.12 also leaks "Logger": {}
        assert proxy["name"] == name and proxy["upstream"] == up.addr
        assert proxy["enabled"] is True and proxy["toxics"] == []
        host, port = proxy["listen"].rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        assert round_trip(connect(proxy["listen"])) < 5
        assert http.get("/proxies").json()[name] == proxy
        assert http.get(f"/proxies/{name}").json() == proxy


def test_proxy_list_is_an_object_keyed_by_name(http: httpx.Client, make_proxy) -> None:
    a, b = make_proxy("127.0.0.1:1"), make_proxy("127.0.0.1:2")
    listed = http.get("/proxies").json()
    assert isinstance(listed, dict)
    assert listed[a["name"]]["upstream"] == "127.0.0.1:1"
    assert listed[b["name"]]["upstream"] == "127.0.0.1:2"


def test_upstream_is_not_dialled_until_a_client_connects(make_proxy) -> None:
    with TcpServer() as up:
        proxy = make_proxy(up.addr)
        assert not wait_for(lambda: up.accepted > 0, 0.3)
        with connect(proxy["listen"]):
            assert wait_for(lambda: up.accepted == 1, 5)


def test_unreachable_upstream_closes_the_client(make_proxy) -> None:
    proxy = make_proxy(closed_port_addr())
    with connect(proxy["listen"]) as sock:
        assert read_until_end(sock, 5).end in ("eof", "reset")


def test_create_proxy_errors(http: httpx.Client, make_proxy) -> None:
    def post(body: object) -> httpx.Response:
        return http.post("/proxies", json=body)

    assert error_of(post({"upstream": "127.0.0.1:1"})) == (400, "missing required field: name")
    assert error_of(post({"name": unique()})) == (400, "missing required field: upstream")
    assert error_of(post({})) == (400, "missing required field: name")
    code, msg = error_of(http.post("/proxies", content=b"{not json"))
    assert code == 400 and msg.startswith("bad request body")
    code, msg = error_of(post({"name": 5, "upstream": "127.0.0.1:1"}))
    assert code == 400 and msg.startswith("bad request body")
    existing = make_proxy("127.0.0.1:1")
    dup = {"name": existing["name"], "upstream": "127.0.0.1:2"}
    assert error_of(post(dup)) == (409, "proxy already exists")


def test_listen_failure_is_500_with_the_os_error(http: httpx.Client) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        name = unique()
        code, msg = error_of(
            http.post("/proxies", json={"name": name, "listen": addr, "upstream": "127.0.0.1:1"})
        )
        assert code == 500 and "address already in use" in msg
        assert http.get(f"/proxies/{name}").status_code == 404


def test_create_disabled_does_not_listen(make_proxy) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        addr = f"127.0.0.1:{probe.getsockname()[1]}"
    proxy = make_proxy("127.0.0.1:1", listen=addr, enabled=False)
    assert proxy["enabled"] is False
    assert refused(addr)


def test_unknown_fields_ignored_and_names_matched_case_insensitively(http: httpx.Client) -> None:
    name = unique()
    body = {"NAME": name, "Upstream": "127.0.0.1:1", "Listen": "127.0.0.1:0", "colour": "red"}
    resp = http.post("/proxies", json=body)
    try:
        assert resp.status_code == 201, resp.text
        assert resp.json()["name"] == name and resp.json()["upstream"] == "127.0.0.1:1"
    finally:
        http.delete(f"/proxies/{name}")


def test_show_and_delete(http: httpx.Client, make_proxy) -> None:
    proxy = make_proxy("127.0.0.1:1")
    path = f"/proxies/{proxy['name']}"
    deleted = http.delete(path)
    assert deleted.status_code == 204 and deleted.content == b""
    assert refused(proxy["listen"])
    assert error_of(http.get(path)) == (404, "proxy not found")
    assert error_of(http.delete(path)) == (404, "proxy not found")
    assert error_of(http.post(path, json={"enabled": False})) == (404, "proxy not found")


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_disable_refuses_and_closes_then_enable_rebinds(
    http: httpx.Client, make_proxy, add_toxic, method: str
) -> None:
    with TcpServer() as up:
        proxy = make_proxy(up.addr)
        name, listen = proxy["name"], proxy["listen"]
        add_toxic(name, "latency", latency=1)
        with connect(listen) as open_conn:
            round_trip(open_conn)
            resp = http.request(method, f"/proxies/{name}", json={"enabled": False})
            assert resp.status_code == 200
            got = resp.json()
            assert got["enabled"] is False and got["listen"] == listen
            assert got["upstream"] == up.addr and len(got["toxics"]) == 1
            assert refused(listen)
            assert read_until_end(open_conn, 5).end in ("eof", "reset")
        resp = http.request(method, f"/proxies/{name}", json={"enabled": True})
        assert resp.json()["enabled"] is True and resp.json()["listen"] == listen
        with connect(listen) as again:
            round_trip(again)


def test_update_upstream_drops_connections_and_uses_the_new_one(
    http: httpx.Client, make_proxy
) -> None:
    with TcpServer() as first, TcpServer() as second:
        proxy = make_proxy(first.addr)
        with connect(proxy["listen"]) as conn:
            round_trip(conn)
            resp = http.post(f"/proxies/{proxy['name']}", json={"upstream": second.addr})
            assert resp.status_code == 200 and resp.json()["upstream"] == second.addr
            assert resp.json()["enabled"] is True
            assert read_until_end(conn, 5).end in ("eof", "reset")
        with connect(resp.json()["listen"]) as conn:
            round_trip(conn, b"to-second")
        assert bytes(second.received) == b"to-second"


def test_update_with_bad_body_is_400(http: httpx.Client, make_proxy) -> None:
    proxy = make_proxy("127.0.0.1:1")
    code, msg = error_of(http.post(f"/proxies/{proxy['name']}", content=b"[1,"))
    assert code == 400 and msg.startswith("bad request body")
    code, _ = error_of(http.post(f"/proxies/{proxy['name']}", json={"enabled": "no"}))
    assert code == 400


# -- populate ---------------------------------------------------------------------------------
def test_populate_creates_keeps_equal_and_replaces_different(
    http: httpx.Client, make_proxy, add_toxic
) -> None:
    a, b, c = unique(), unique(), unique()
    try:
        resp = http.post(
            "/populate",
            json=[
                {"name": a, "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
                {"name": b, "listen": "localhost:0", "upstream": "127.0.0.1:2"},
            ],
        )
        assert resp.status_code == 201
        made = {p["name"]: p for p in resp.json()["proxies"]}
        assert set(made) == {a, b} and all(p["enabled"] for p in made.values())
        add_toxic(a, "latency", latency=1)
        add_toxic(b, "latency", latency=1)
        port_b = made[b]["listen"].rsplit(":", 1)[1]
        resp = http.post(
            "/populate",
            json=[
                {"name": a, "listen": made[a]["listen"], "upstream": "127.0.0.1:1"},
                {"name": b, "listen": f"localhost:{port_b}", "upstream": "127.0.0.1:9"},
                {"name": c, "listen": "127.0.0.1:0", "upstream": "127.0.0.1:3", "enabled": False},
            ],
        )
        assert resp.status_code == 201
        again = {p["name"]: p for p in resp.json()["proxies"]}
        assert again[a]["toxics"] and again[a]["listen"] == made[a]["listen"]
        assert again[b]["toxics"] == [] and again[b]["upstream"] == "127.0.0.1:9"
        assert again[c]["enabled"] is False
    finally:
        for name in (a, b, c):
            http.delete(f"/proxies/{name}")


def test_populate_validates_everything_first(http: httpx.Client) -> None:
    a = unique()
    resp = http.post(
        "/populate", json=[{"name": a, "upstream": "127.0.0.1:1"}, {"upstream": "127.0.0.1:2"}]
    )
    assert error_of(resp) == (400, "missing required field: name at proxy 2")
    resp = http.post("/populate", json=[{"name": a, "upstream": "127.0.0.1:1"}, {"name": "x"}])
    assert error_of(resp) == (400, "missing required field: upstream at proxy 2")
    assert http.get(f"/proxies/{a}").status_code == 404
    code, msg = error_of(http.post("/populate", content=b"{"))
    assert code == 400 and msg.startswith("bad request body")


# -- reset ------------------------------------------------------------------------------------
def test_reset_enables_everything_and_removes_every_toxic(
    http: httpx.Client, make_proxy, add_toxic
) -> None:
    with TcpServer() as up:
        off = make_proxy(up.addr)
        toxic = make_proxy(up.addr)
        http.post(f"/proxies/{off['name']}", json={"enabled": False})
        add_toxic(toxic["name"], "timeout", timeout=0)
        resp = http.post("/reset")
        assert resp.status_code == 204 and resp.content == b""
        assert http.get(f"/proxies/{off['name']}").json()["enabled"] is True
        assert http.get(f"/proxies/{toxic['name']}/toxics").json() == []
        for proxy in (off, toxic):
            with connect(proxy["listen"]) as conn:
                round_trip(conn)


# -- HTTP details clients rely on -------------------------------------------------------------
def _raw(tp_url: str, request: bytes, *, reads: int = 1) -> bytes:
    """Send raw bytes to the API and read until ``reads`` responses or EOF."""
    with connect(tp_url.removeprefix("http://")) as sock:
        sock.sendall(request)
        got = b""
        while got.count(b"HTTP/1.1 ") < reads or not got.endswith((b"}", b"\n", b"\r\n\r\n")):
            out = read_until_end(sock, 2, limit=1)
            got += out.data
            if out.end != "limit":
                break
        return got


def test_keep_alive_answers_several_requests_on_one_connection(tp_url: str) -> None:
    req = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
    got = _raw(tp_url, req * 3, reads=3)
    assert got.count(b"HTTP/1.1 200") == 3


def test_chunked_and_expect_continue_bodies(tp_url: str, http: httpx.Client) -> None:
    name = unique()
    body = f'{{"name": "{name}", "upstream": "127.0.0.1:1"}}'.encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = (
        b"POST /proxies HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
    )
    try:
        assert _raw(tp_url, head + chunked).startswith(b"HTTP/1.1 201")
        assert http.get(f"/proxies/{name}").status_code == 200
        http.delete(f"/proxies/{name}")
        head = (
            b"POST /proxies HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        )
        got = _raw(tp_url, head + body, reads=2)
        assert b"HTTP/1.1 201" in got
    finally:
        http.delete(f"/proxies/{name}")


def test_garbage_gets_a_400(tp_url: str) -> None:
    assert _raw(tp_url, b"this is not http\r\n\r\n").startswith(b"HTTP/1.1 400")
