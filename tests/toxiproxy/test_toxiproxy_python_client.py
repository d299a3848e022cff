"""Conformance: the unmodified toxiproxy-python client drives the server under test.

The library keeps the server address in class attributes of ``APIConsumer``; the fixture sets
them for the test and puts the old values back.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists
from tp_support import TcpServer, connect, read_until_end, refused, round_trip, unique


@pytest.fixture
def lib(tp_url: str) -> Iterator[Toxiproxy]:
    saved = (APIConsumer.host, APIConsumer.port)
    parts = urlsplit(tp_url)
    server = Toxiproxy()
    server.update_api_consumer(parts.hostname, parts.port)
    created: list[str] = []
    server.created = created  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        for name in created:
            proxy = server.get_proxy(name)
            if proxy is not None:
                proxy.destroy()
        APIConsumer.host, APIConsumer.port = saved


def test_running_version_and_listing(lib: Toxiproxy) -> None:
    assert lib.running() is True
    assert b"version" in lib.version()
    assert isinstance(lib.proxies(), dict)


def test_create_break_and_heal_with_the_library(lib: Toxiproxy) -> None:
    with TcpServer() as up:
        name = unique()
        proxy = lib.create(upstream=up.addr, name=name)
        lib.created.append(name)  # type: ignore[attr-defined]
        assert proxy.name == name and proxy.enabled is True
        assert name in lib.proxies() and lib.get_proxy(name).listen == proxy.listen
        with connect(proxy.listen) as sock:
            assert round_trip(sock) < 0.1
            proxy.add_toxic(type="latency", attributes={"latency": 200})
            assert 0.2 <= round_trip(sock) < 1.0
            toxics = proxy.toxics()
            assert list(toxics) == ["latency_downstream"]
            assert toxics["latency_downstream"].attributes == {"latency": 200, "jitter": 0}
            assert proxy.get_toxic("latency_downstream").type == "latency"
            assert proxy.destroy_toxic("latency_downstream") is True
            assert round_trip(sock) < 0.1
        with proxy.down():
            assert refused(proxy.listen)
        with connect(proxy.listen) as sock:
            round_trip(sock)


def test_library_disable_and_reset(lib: Toxiproxy) -> None:
    with TcpServer() as up:
        name = unique()
        proxy = lib.create(upstream=up.addr, name=name, listen="127.0.0.1:0")
        lib.created.append(name)  # type: ignore[attr-defined]
        proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 0})
        proxy.disable()
        assert refused(proxy.listen)
        assert lib.reset() is True
        assert proxy.toxics() == {}
        assert lib.get_proxy(name).enabled is True
        with connect(proxy.listen) as sock:
            round_trip(sock)


def test_library_errors_are_raised_from_statuses(lib: Toxiproxy) -> None:
    name = unique()
    proxy = lib.create(upstream="127.0.0.1:1", name=name)
    lib.created.append(name)  # type: ignore[attr-defined]
    with pytest.raises(ProxyExists):
        lib.create(upstream="127.0.0.1:1", name=name)
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="no_such_type")
    proxy.add_toxic(type="noop")
    with pytest.raises(ProxyExists):  # the library maps every 409 to ProxyExists
        proxy.add_toxic(type="noop")
    with pytest.raises(NotFound):
        proxy.destroy_toxic("missing")
    assert proxy.destroy() is True
    with pytest.raises(NotFound):
        proxy.destroy()


def test_library_populate(lib: Toxiproxy) -> None:
    with TcpServer() as up:
        a, b = unique(), unique()
        lib.created.extend([a, b])  # type: ignore[attr-defined]
        made = lib.populate(
            [
                {"name": a, "upstream": up.addr, "listen": "127.0.0.1:0"},
                {"name": b, "upstream": up.addr, "listen": "127.0.0.1:0"},
            ]
        )
        assert sorted(p.name for p in made) == sorted([a, b])
        for proxy in made:
            with connect(proxy.listen) as sock:
                round_trip(sock)
        made[0].disable()
        with connect(made[1].listen) as sock:
            sock.sendall(b"x")
            assert read_until_end(sock, 5, limit=1).data == b"x"
