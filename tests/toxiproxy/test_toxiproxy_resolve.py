"""Upstream name resolution: a name whose lookup hangs (a killed container's, in a Docker
network) must not delay dials to any other upstream (drills.toxiproxy.resolve)."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from drills.toxiproxy.proxy import Proxy
from drills.toxiproxy.resolve import SHARE_S, Resolver

DEAD = "dead-zone.invalid"


class HangingLookup:
    """``socket.getaddrinfo`` except that ``DEAD`` hangs until `release` (then fails)."""

    def __init__(self) -> None:
        self.real = socket.getaddrinfo
        self.gate = threading.Event()
        self.calls: list[str] = []

    def __call__(self, host: Any, *args: Any, **kwargs: Any) -> Sequence[tuple[Any, ...]]:
        self.calls.append(str(host))
        if host == DEAD:
            self.gate.wait(30)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.real(host, *args, **kwargs)

    def release(self) -> None:
        self.gate.set()


async def _echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_hanging_lookup_does_not_stall_dials_to_another_upstream(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Forty clients keep a proxy to a dead name busy resolving; a proxy to a live name still
    carries data at once. (With asyncio's own lookups, which share the loop's default executor
    of min(32, CPUs + 4) threads, the live dial waits behind the dead name's lookups.)"""
    lookup = HangingLookup()
    monkeypatch.setattr(socket, "getaddrinfo", lookup)

    async def scenario() -> bytes:
        server, port = await _echo_server()
        rng = random.Random(1)
        dead = Proxy("to_dead", "127.0.0.1:0", f"{DEAD}:7101", rng=rng)
        live = Proxy("to_live", "127.0.0.1:0", f"localhost:{port}", rng=rng)
        await dead.start()
        await live.start()
        writers = []
        try:
            host, _, dead_port = dead.listen.rpartition(":")
            for _ in range(40):
                _, writer = await asyncio.open_connection(host, int(dead_port))
                writer.write(b"GET /feed HTTP/1.1\r\n\r\n")
                writers.append(writer)
            await asyncio.sleep(0.5)  # every dead dial is now waiting on its lookup
            host, _, live_port = live.listen.rpartition(":")
            reader, writer = await asyncio.open_connection(host, int(live_port))
            writers.append(writer)
            writer.write(b"ping")
            return await asyncio.wait_for(reader.readexactly(4), 10)
        finally:
            lookup.release()
            for writer in writers:
                writer.close()
            dead.stop()
            live.stop()
            server.close()

    assert asyncio.run(scenario()) == b"ping"
    assert lookup.calls.count(DEAD) <= 5  # forty dials within SHARE_S share a lookup or two


def test_dials_within_the_share_window_share_one_lookup_and_later_ones_look_again() -> None:
    lookup = HangingLookup()
    now = [100.0]
    resolver = Resolver(lookup=lookup, clock=lambda: now[0])

    async def scenario() -> list[BaseException | list[tuple[str, int]]]:
        first = [asyncio.ensure_future(resolver.resolve(DEAD, 7101)) for _ in range(50)]
        await asyncio.sleep(0.05)
        now[0] += SHARE_S + 0.01
        later = asyncio.ensure_future(resolver.resolve(DEAD, 7101))
        await asyncio.sleep(0.05)
        assert lookup.calls == [DEAD, DEAD]
        lookup.release()
        return await asyncio.gather(*first, later, return_exceptions=True)

    results = asyncio.run(scenario())
    assert len(results) == 51
    assert all(isinstance(r, socket.gaierror) for r in results)


def test_a_name_that_came_back_resolves_at_once_while_an_old_lookup_still_hangs() -> None:
    """After a zone's restore its names resolve again; a lookup begun while it was down must
    not hold new dials back."""
    gate = threading.Event()
    answers = iter(["hang", "ok"])

    def lookup(host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
        if next(answers) == "hang":
            gate.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    now = [0.0]
    resolver = Resolver(lookup=lookup, clock=lambda: now[0])

    async def scenario() -> list[tuple[str, int]]:
        old = asyncio.ensure_future(resolver.resolve("store-east", 7101))
        await asyncio.sleep(0.05)
        now[0] += 1.0
        try:
            return await asyncio.wait_for(resolver.resolve("store-east", 7101), 10)
        finally:
            gate.set()
            with pytest.raises(socket.gaierror):
                await old

    assert asyncio.run(scenario()) == [("10.0.0.7", 7101)]


def test_numeric_addresses_are_not_looked_up_and_ipv4_comes_first() -> None:
    calls: list[str] = []

    def lookup(host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    resolver = Resolver(lookup=lookup)

    async def scenario() -> tuple[list[tuple[str, int]], ...]:
        return (await resolver.resolve("127.0.0.1", 1), await resolver.resolve("::1", 2),
                await resolver.resolve("both.test", 3))

    v4, v6, both = asyncio.run(scenario())
    assert (v4, v6) == ([("127.0.0.1", 1)], [("::1", 2)])
    assert both == [("127.0.0.1", 3), ("::1", 3)]
    assert calls == ["both.test"]


def test_a_lookup_that_breaks_fails_the_dial_with_an_oserror() -> None:
    def lookup(*args: Any) -> list[tuple[Any, ...]]:
        raise UnicodeError("label too long")

    async def scenario() -> None:
        await Resolver(lookup=lookup).resolve("x" * 300, 1)

    with pytest.raises(OSError, match="cannot resolve"):
        asyncio.run(scenario())
