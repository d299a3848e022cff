"""Leases (our server's extension, `drills.toxiproxy.lease`): a proxy whose lease holder stops
renewing is healed when the lease lapses; a renewed or released lease heals nothing. Over HTTP
against our server (a real Toxiproxy answers ``/drills/lease`` with 404: skipped there)."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import pytest

from drills.toxiproxy.lease import LeaseKeeper, Leases

ours_only = pytest.mark.skipif(bool(os.environ.get("TOXIPROXY_URL")),
                               reason="leases are an extension of our server only")


def _broken(http: httpx.Client, make_proxy: Any) -> str:
    """A proxy with a latency toxic, disabled: broken both ways."""
    name = make_proxy("127.0.0.1:9")["name"]
    http.post(f"/proxies/{name}/toxics", json={"type": "latency", "attributes": {"latency": 50}})
    http.post(f"/proxies/{name}", json={"enabled": False})
    return name


def _healed(http: httpx.Client, name: str) -> bool:
    proxy = http.get(f"/proxies/{name}").json()
    return bool(proxy["enabled"]) and proxy["toxics"] == []


@ours_only
def test_a_lapsed_lease_heals_its_proxies_and_only_those(http: httpx.Client, make_proxy) -> None:
    covered, other = _broken(http, make_proxy), _broken(http, make_proxy)
    resp = http.post("/drills/lease", json={"holder": "h1", "ttl_ms": 300, "proxies": [covered]})
    assert resp.status_code == 200 and resp.json()["proxies"] == [covered]
    assert [lease["holder"] for lease in http.get("/drills/lease").json()] == ["h1"]
    deadline = time.monotonic() + 5
    while not _healed(http, covered):
        assert time.monotonic() < deadline, "the lapsed lease did not heal its proxy"
        time.sleep(0.05)
    assert not _healed(http, other)
    assert http.get("/drills/lease").json() == []


@ours_only
def test_a_renewed_or_released_lease_heals_nothing(http: httpx.Client, make_proxy) -> None:
    name = _broken(http, make_proxy)
    for _ in range(6):  # renewed every 0.1 s for 0.6 s, twice its TTL
        http.post("/drills/lease", json={"holder": "h2", "ttl_ms": 300, "proxies": [name]})
        time.sleep(0.1)
    assert not _healed(http, name)
    assert http.delete("/drills/lease/h2").status_code == 204
    time.sleep(0.6)
    assert not _healed(http, name)
    assert http.delete("/drills/lease/h2").status_code == 404


@ours_only
@pytest.mark.parametrize("body", [[], {"holder": "", "ttl_ms": 300, "proxies": []},
                                  {"holder": "h", "ttl_ms": 10, "proxies": []},
                                  {"holder": "h", "ttl_ms": "1s", "proxies": []},
                                  {"holder": "h", "ttl_ms": 300, "proxies": [1]}])
def test_bad_leases_are_refused(http: httpx.Client, body: object) -> None:
    resp = http.post("/drills/lease", json=body)
    assert resp.status_code == 400 and "lease" in resp.json()["error"]


def test_lease_bookkeeping_grants_renews_releases_and_expires() -> None:
    leases = Leases()
    leases.grant("a", ttl_ms=1000, proxies=["p", "q", "p"], now=0.0)
    leases.grant("b", ttl_ms=3000, proxies=[], now=0.0)
    assert leases.expired(0.5) == []
    leases.grant("a", ttl_ms=1000, proxies=["p"], now=0.9)  # renewed
    assert leases.expired(1.5) == []
    (gone,) = leases.expired(1.9)
    assert (gone.holder, gone.proxies) == ("a", ("p",))
    assert leases.release("b") and not leases.release("b")
    with pytest.raises(ValueError, match="ttl_ms"):
        leases.grant("c", ttl_ms=0, proxies=[], now=0.0)


def test_the_keeper_renews_until_stopped_then_releases() -> None:
    renewals: list[float] = []
    released: list[bool] = []
    keeper = LeaseKeeper(lambda: renewals.append(time.monotonic()) or True,
                         lambda: released.append(True), ttl_s=0.3)
    time.sleep(0.45)
    keeper.stop()
    assert len(renewals) >= 3 and released == [True]
    quiet = LeaseKeeper(lambda: False, lambda: released.append(False), ttl_s=0.3)
    quiet.stop()
    assert not quiet.supported and released == [True]  # a server without leases: no release
