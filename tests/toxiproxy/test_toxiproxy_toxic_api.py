"""Conformance: the toxic endpoints, their defaults, their order and their errors, in order."""

from __future__ import annotations

import httpx
import pytest
from tp_support import unique

ATTRIBUTES = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 0},
    "slow_close": {"delay": 0},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
    "limit_data": {"bytes": 0},
    "noop": {},
}


@pytest.fixture
def proxy(make_proxy) -> str:
    return make_proxy("127.0.0.1:1")["name"]


def error_of(resp: httpx.Response) -> tuple[int, str]:
    body = resp.json()
    assert body["status"] == resp.status_code
    return resp.status_code, body["error"]


@pytest.mark.parametrize("kind", sorted(ATTRIBUTES))
def test_every_type_has_defaults_and_every_attribute(http: httpx.Client, proxy: str, kind: str):
    resp = http.post(f"/proxies/{proxy}/toxics", json={"type": kind})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "name": f"{kind}_downstream",
        "type": kind,
        "stream": "downstream",
        "toxicity": 1,
        "attributes": ATTRIBUTES[kind],
    }
    shown = http.get(f"/proxies/{proxy}/toxics/{kind}_downstream").json()
    assert shown == resp.json()


def test_create_echoes_what_was_given(http: httpx.Client, proxy: str) -> None:
    body = {
        "name": "slow",
        "type": "latency",
        "stream": "upstream",
        "toxicity": 0.25,
        "attributes": {"latency": 120, "jitter": 7},
    }
    resp = http.post(f"/proxies/{proxy}/toxics", json=body)
    assert resp.status_code == 200 and resp.json() == body
    assert http.get(f"/proxies/{proxy}").json()["toxics"] == [body]


def test_list_is_upstream_first_then_downstream_in_added_order(
    http: httpx.Client, proxy: str, add_toxic
) -> None:
    add_toxic(proxy, "latency", name="d1")
    add_toxic(proxy, "latency", name="u1", stream="upstream")
    add_toxic(proxy, "noop", name="d2")
    add_toxic(proxy, "noop", name="u2", stream="upstream")
    names = [t["name"] for t in http.get(f"/proxies/{proxy}/toxics").json()]
    assert names == ["u1", "u2", "d1", "d2"]
    assert (
        http.get(f"/proxies/{proxy}/toxics").json()
        == http.get(f"/proxies/{proxy}").json()["toxics"]
    )


def test_create_errors_come_in_toxiproxy_order(http: httpx.Client, proxy: str, add_toxic) -> None:
    def post(body: object) -> tuple[int, str]:
        return error_of(http.post(f"/proxies/{proxy}/toxics", json=body))

    add_toxic(proxy, "latency", name="taken", stream="upstream")
    code, msg = error_of(http.post(f"/proxies/{proxy}/toxics", content=b'{"type": '))
    assert code == 400 and msg.startswith("bad request body")
    stream_error = (400, "stream was invalid, can be either upstream or downstream")
    assert post({"type": "nope", "stream": "sideways", "name": "taken"}) == stream_error
    assert post({"type": "nope", "name": "taken"}) == (400, "invalid toxic type")
    assert post({"type": "bandwidth", "name": "taken", "attributes": {"rate": "x"}}) == (
        409,
        "toxic already exists",
    )
    code, msg = post({"type": "latency", "attributes": {"latency": "slow"}})
    assert code == 400 and msg.startswith("bad request body")
    code, _ = post({"type": "latency", "attributes": {"latency": 1.5}})
    assert code == 400
    code, _ = post({"type": "latency", "toxicity": "all"})
    assert code == 400
    assert post({"type": ""}) == (400, "invalid toxic type")
    names = [t["name"] for t in http.get(f"/proxies/{proxy}/toxics").json()]
    assert names == ["taken"]


def test_default_name_collides_across_streams_only_by_name(
    http: httpx.Client, proxy: str, add_toxic
) -> None:
    add_toxic(proxy, "latency", stream="upstream")
    add_toxic(proxy, "latency", stream="downstream")
    assert {t["name"] for t in http.get(f"/proxies/{proxy}/toxics").json()} == {
        "latency_upstream",
        "latency_downstream",
    }
    resp = http.post(f"/proxies/{proxy}/toxics", json={"type": "latency", "stream": "upstream"})
    assert error_of(resp) == (409, "toxic already exists")


def test_update_merges_attributes_and_changes_toxicity_only(
    http: httpx.Client, proxy: str, add_toxic
) -> None:
    add_toxic(proxy, "latency", name="lat", latency=100, jitter=10)
    path = f"/proxies/{proxy}/toxics/lat"
    resp = http.post(path, json={"attributes": {"jitter": 5}})
    assert resp.status_code == 200
    assert resp.json()["attributes"] == {"latency": 100, "jitter": 5}
    resp = http.patch(
        path, json={"toxicity": 0.5, "type": "bandwidth", "stream": "upstream", "name": "renamed"}
    )
    assert resp.status_code == 200
    assert resp.json() == {
        "name": "lat",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 0.5,
        "attributes": {"latency": 100, "jitter": 5},
    }
    assert http.get(path).json() == resp.json()
    code, _ = error_of(http.post(path, json={"attributes": {"latency": "x"}}))
    assert code == 400
    assert http.get(path).json()["attributes"]["latency"] == 100


def test_delete_and_missing_toxic_or_proxy(http: httpx.Client, proxy: str, add_toxic) -> None:
    add_toxic(proxy, "noop", name="n")
    path = f"/proxies/{proxy}/toxics/n"
    deleted = http.delete(path)
    assert deleted.status_code == 204 and deleted.content == b""
    assert http.get(f"/proxies/{proxy}/toxics").json() == []
    for resp in (http.get(path), http.delete(path), http.post(path, json={"toxicity": 1})):
        assert error_of(resp) == (404, "toxic not found")
    ghost = unique()
    for resp in (
        http.get(f"/proxies/{ghost}/toxics"),
        http.post(f"/proxies/{ghost}/toxics", json={"type": "noop"}),
        http.get(f"/proxies/{ghost}/toxics/n"),
        http.delete(f"/proxies/{ghost}/toxics/n"),
    ):
        assert error_of(resp) == (404, "proxy not found")


def test_toxics_survive_disable_and_enable(http: httpx.Client, proxy: str, add_toxic) -> None:
    add_toxic(proxy, "latency", latency=5)
    http.post(f"/proxies/{proxy}", json={"enabled": False})
    http.post(f"/proxies/{proxy}", json={"enabled": True})
    assert [t["name"] for t in http.get(f"/proxies/{proxy}/toxics").json()] == [
        "latency_downstream"
    ]


def test_unknown_proxy_name_in_path_with_odd_characters(http: httpx.Client) -> None:
    assert error_of(http.get(f"/proxies/{unique()}%20x/toxics")) == (404, "proxy not found")
