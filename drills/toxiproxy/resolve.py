"""Upstream name resolution for a proxy: off the event loop, and never queued behind another
name's lookup.

asyncio resolves through ``loop.getaddrinfo``, that is the loop's default executor: a few
threads (min(32, CPUs + 4): six on two cores) shared by every proxy of the server. In a Docker
network the name of a container that was just killed can take ten seconds to fail (the engine's
resolver forwards the unknown name and waits), and clients that keep dialling such a proxy fill
every one of those threads with that one name. Dials to every *other* upstream then wait in the
queue behind it, so a power-down of one zone stalled every link of the stack (seen on docker as
every operation of the demonstration target timing out until the dead zone came back).
Toxiproxy (Go) resolves on a goroutine per dial and has no such queue.

`Resolver` keeps that property: each lookup runs on a daemon thread of its own (a lookup that
hangs holds nothing anyone else needs, and never delays the server's exit), and the dials of one
name that arrive within `SHARE_S` of each other share one lookup, so a storm of reconnects to a
dead name costs a few lookups a second, not one each. A dial that comes later starts a fresh
lookup, as Go's would: once the container is back, its name resolves again at once, whatever an
older lookup is still waiting for. Numeric addresses are never looked up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

SHARE_S = 0.25

Lookup = Callable[..., Sequence[tuple[Any, ...]]]
Address = tuple[str, int]


def _numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Resolver:
    """``host:port`` to the addresses to dial, as ``socket.getaddrinfo`` finds them (see the
    module docstring). ``lookup`` replaces ``socket.getaddrinfo`` (tests); ``clock`` is
    ``time.monotonic``."""

    def __init__(self, lookup: Lookup | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup = lookup
        self._clock = clock
        self._inflight: dict[Address, tuple[float, asyncio.Future[list[Address]]]] = {}

    async def resolve(self, host: str, port: int) -> list[Address]:
        """The addresses of ``host`` (IPv4 first), each with ``port``; `OSError` (``gaierror``)
        if the name does not resolve."""
        if _numeric(host):
            return [(host, port)]
        key = (host, port)
        now = self._clock()
        shared = self._inflight.get(key)
        if shared is None or now - shared[0] > SHARE_S:
            shared = (now, self._start(key))
            self._inflight[key] = shared
        return await asyncio.shield(shared[1])

    def _start(self, key: Address) -> asyncio.Future[list[Address]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Address]] = loop.create_future()
        lookup = self._lookup or socket.getaddrinfo

        def settle(result: list[Address] | None, error: BaseException | None) -> None:
            if self._inflight.get(key, (0.0, None))[1] is future:
                del self._inflight[key]
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result or [])  # never empty: see work()

        def work() -> None:
            try:
                infos = lookup(key[0], key[1], 0, socket.SOCK_STREAM)
                found = [(str(i[4][0]), key[1]) for i in
                         sorted(infos, key=lambda i: i[0] != socket.AF_INET)]
                outcome: tuple[list[Address] | None, BaseException | None] = (
                    (found, None) if found else
                    (None, socket.gaierror(socket.EAI_NONAME, f"{key[0]}: no address")))
            except OSError as exc:
                outcome = (None, exc)
            except Exception as exc:  # a broken lookup must still settle the dial
                outcome = (None, OSError(f"cannot resolve {key[0]}: {exc}"))
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                loop.call_soon_threadsafe(settle, *outcome)

        threading.Thread(target=work, name=f"resolve {key[0]}", daemon=True).start()
        return future
