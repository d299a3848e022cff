"""Fixtures of the Toxiproxy conformance suite.

The suite talks to a server only over HTTP and TCP. By default it starts ours as a child
process (``python -m drills.toxiproxy`` on a free loopback port, stopped at the end of the
session); with ``TOXIPROXY_URL=http://host:port`` it runs unchanged against that server, e.g.
the official Go binary.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tp_support import unique

from drills.toxiproxy.embedded import EmbeddedServer

ProxyFactory = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def tp_url() -> Iterator[str]:
    """The server under test: ``$TOXIPROXY_URL``, else ours started as a child process."""
    url = os.environ.get("TOXIPROXY_URL")
    if url:
        yield url.rstrip("/")
        return
    with EmbeddedServer() as server:
        yield server.url


@pytest.fixture
def http(tp_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tp_url, trust_env=False, timeout=10.0) as client:
        yield client


@pytest.fixture
def make_proxy(http: httpx.Client) -> Iterator[ProxyFactory]:
    """``make_proxy(upstream, name=..., listen=..., enabled=...)``: a new proxy (its JSON), with
    a unique name unless given; every proxy made is deleted afterwards."""
    names: list[str] = []

    def make(
        upstream: str, *, name: str | None = None, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> dict[str, Any]:
        name = name or unique()
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        resp = http.post("/proxies", json=body)
        assert resp.status_code == 201, resp.text
        names.append(name)
        return resp.json()

    yield make
    for name in names:
        http.delete(f"/proxies/{name}")


@pytest.fixture
def add_toxic(http: httpx.Client) -> Callable[..., dict[str, Any]]:
    """``add_toxic(proxy, type, stream=..., toxicity=..., name=..., **attributes)`` -> JSON."""

    def add(
        proxy: str,
        type: str,
        *,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: int,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        if name:
            body["name"] = name
        resp = http.post(f"/proxies/{proxy}/toxics", json=body)
        assert resp.status_code == 200, resp.text
        return resp.json()

    return add
