"""One proxied TCP connection: the client's socket, the upstream socket, and a pipe each way.

A ``Pipe`` carries one direction (``upstream``: client -> server, ``downstream``: server ->
client). With no toxic on its direction it is on the *fast path*: ``data_received`` writes
straight to the other socket, and flow control is asyncio's own (the reader pauses while the
writer's buffer is full); no task, no copy, no per-chunk allocation. As soon as a toxic is added
it switches to the *toxic path*: chunks are queued with their arrival time and one task per
pipe pushes them through the stages in order; when the last toxic goes and the queue is empty,
it returns to the fast path. The queue is bounded (the source pauses above ``QUEUE_HIGH``).

Both sockets get TCP_NODELAY, as every Go TCP connection (so Toxiproxy's) has; asyncio skips
sockets whose ``proto`` is 0, and with Nagle on, a write's short tail waited for the ACK of an
earlier short segment, which the client delays: +40 ms on multi-segment responses.

There is no half-close, as in Toxiproxy: the end of one direction closes the other socket, and
the other direction then ends too. Disabling or deleting the proxy aborts both sockets;
``reset`` aborts them with SO_LINGER 0, which sends a TCP RST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from drills.toxiproxy.metrics import Traffic
from drills.toxiproxy.toxics import Stage, ToxicSpec, make_stage

if TYPE_CHECKING:
    import random

    from drills.toxiproxy.resolve import Resolver

log = logging.getLogger("drills.toxiproxy")

QUEUE_HIGH = 1 << 20  # bytes queued on the toxic path before the source is paused
QUEUE_LOW = 1 << 18  # ... and resumed
WRITE_HIGH = 1 << 19  # a socket's write buffer above which its writer pauses the source


class Chunk:
    """Bytes read from a socket and the loop time they arrived (``ts``)."""

    __slots__ = ("data", "ts")

    def __init__(self, data: bytes, ts: float):
        self.data = data
        self.ts = ts


class Pipe:
    """One direction of a connection: reads ``src``, applies the stages, writes ``dst``."""

    __slots__ = (
        "_drain",
        "_wake",
        "closed",
        "conn",
        "counts",
        "dst",
        "dst_paused",
        "fast",
        "loop",
        "other",
        "queue",
        "queued",
        "src",
        "src_paused",
        "stages",
        "task",
        "upstream",
    )

    def __init__(
        self, conn: Connection, *, upstream: bool, src: asyncio.Transport, dst: asyncio.Transport,
        counts: list[int] | None = None,
    ):
        self.conn = conn
        self.counts = counts if counts is not None else [0, 0]  # bytes [received, sent]
        self.loop = conn.loop
        self.upstream = upstream
        self.src = src
        self.dst = dst
        self.other: Pipe = self
        self.stages: list[Stage] = []
        self.fast = True
        self.closed = False
        self.queue: deque[Chunk | None] = deque()  # None marks the end of the stream
        self.queued = 0
        self.src_paused = False
        self.dst_paused = False
        self.task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None

    # -- input, from the source socket ---------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.counts[0] += len(data)
        if self.fast:
            if not self.closed:
                self.dst.write(data)
                self.counts[1] += len(data)
            return
        if self.closed:
            return
        self.queue.append(Chunk(data, self.loop.time()))
        self.queued += len(data)
        if self.queued > QUEUE_HIGH and not self.src_paused:
            self._update_src()
        self._poke()

    def feed_eof(self) -> None:
        """The source ended (FIN, error or close): pass the end on, after queued data."""
        if self.closed:
            return
        if self.fast:
            self.close()
        elif not self.queue or self.queue[-1] is not None:
            self.queue.append(None)
            self._poke()

    # -- output flow control, from the destination socket ---------------------------------------
    def dst_pause(self) -> None:
        self.dst_paused = True
        if self.fast:
            self._update_src()

    def dst_resume(self) -> None:
        self.dst_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._update_src()

    def _update_src(self) -> None:
        if self.fast:
            want = self.dst_paused
        else:
            want = self.queued > (QUEUE_LOW if self.src_paused else QUEUE_HIGH)
        if want != self.src_paused:
            self.src_paused = want
            if want:
                self.src.pause_reading()
            else:
                self.src.resume_reading()

    # -- ending --------------------------------------------------------------------------------
    def close(self) -> None:
        """This direction is over: close the destination (after its buffer) and end the other."""
        if self.closed:
            return
        self._halt()
        self.dst.close()
        self.other.feed_eof()

    def dst_gone(self) -> None:
        """The destination socket is gone: nothing more can be delivered this way."""
        if not self.closed:
            self._halt()

    def _halt(self) -> None:
        self.closed = True
        self.queue.clear()
        self.queued = 0
        for stage in self.stages:
            stage.stop()
        for fut in (self._wake, self._drain):
            if fut is not None and not fut.done():
                fut.set_result(None)
        task = self.task
        if task is not None and task is not asyncio.current_task(self.loop):
            task.cancel()

    # -- toxics --------------------------------------------------------------------------------
    def add_stage(self, spec: ToxicSpec, seq: int, rng: random.Random) -> None:
        if self.closed:
            return
        self.stages = [*self.stages, make_stage(spec, seq, self, rng)]
        if self.fast:
            self.fast = False
            self._update_src()
            self.task = self.loop.create_task(self._run())

    def update_stage(self, seq: int, spec: ToxicSpec) -> None:
        for stage in self.stages:
            if stage.seq == seq:
                stage.update(spec)

    def remove_stage(self, seq: int) -> None:
        kept = [s for s in self.stages if s.seq != seq]
        gone = [s for s in self.stages if s.seq == seq]
        self.stages = kept
        for stage in gone:
            stage.remove()
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    # -- the toxic path ------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while not self.closed:
                if not self.queue:
                    if not self.stages:
                        self.fast = True
                        self._update_src()
                        return
                    self._wake = self.loop.create_future()
                    await self._wake
                    continue
                item = self.queue.popleft()
                if item is None:
                    await self._push_eof(-1)
                    return
                self.queued -= len(item.data)
                if self.src_paused and self.queued <= QUEUE_LOW:
                    self._update_src()
                await self._push(item, -1)
        except Exception:
            log.exception("connection %s: toxic pipe failed", self.conn.label)
            self.conn.abort()
        finally:
            if self.task is asyncio.current_task(self.loop):
                self.task = None

    async def _push(self, chunk: Chunk, after: int) -> None:
        for stage in self.stages:
            if stage.seq > after and stage.active:
                stage.interrupted = False
                await stage.process(chunk)
                return
        await self._write(chunk.data)

    async def _push_eof(self, after: int) -> None:
        for stage in self.stages:
            if stage.seq > after and stage.active:
                stage.interrupted = False
                await stage.finish()
                return
        self.close()

    async def emit(self, stage: Stage, chunk: Chunk) -> None:
        """``stage`` passes ``chunk`` on to the stages after it, then to the socket."""
        await self._push(chunk, stage.seq)

    async def emit_bytes(self, stage: Stage, data: bytes, ts: float) -> None:
        if data:
            await self._push(Chunk(data, ts), stage.seq)

    async def emit_eof(self, stage: Stage) -> None:
        await self._push_eof(stage.seq)

    async def _write(self, data: bytes) -> None:
        if self.closed or not data:
            return
        self.dst.write(data)
        self.counts[1] += len(data)
        while self.dst_paused and not self.closed:
            self._drain = self.loop.create_future()
            await self._drain


class _Side(asyncio.Protocol):
    """One socket of a connection; hands its events to the pipes on either side of it."""

    __slots__ = ("conn", "early", "early_eof", "inbound", "outbound", "transport")

    def __init__(self, conn: Connection):
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.inbound: Pipe | None = None  # the pipe this socket feeds
        self.outbound: Pipe | None = None  # the pipe that writes to this socket
        # Data (and EOF) that arrived before the pipes existed. ``pause_reading`` in
        # ``connection_made`` is ignored by CPython < 3.11.4 (gh-103607; Debian 12 ships 3.11.2),
        # so a client that speaks first can be heard before the upstream is connected.
        self.early: list[bytes] = []
        self.early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.pause_reading()  # until both sockets and both pipes exist
        _no_delay(transport)
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        self.conn.side_made(self)

    def data_received(self, data: bytes) -> None:
        if self.inbound is None:
            self.early.append(data)
            if self.transport is not None:
                self.transport.pause_reading()
            return
        self.inbound.feed(data)

    def eof_received(self) -> bool:
        if self.inbound is not None:
            self.inbound.feed_eof()
        else:
            self.early_eof = True
        return True  # keep the socket: the pipe decides when it closes

    def flush_early(self) -> None:
        """Feed what arrived before the pipes existed into this socket's pipe, in order."""
        assert self.inbound is not None
        early, self.early = self.early, []
        for chunk in early:
            self.inbound.feed(chunk)
        if self.early_eof:
            self.inbound.feed_eof()

    def pause_writing(self) -> None:
        if self.outbound is not None:
            self.outbound.dst_pause()

    def resume_writing(self) -> None:
        if self.outbound is not None:
            self.outbound.dst_resume()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.outbound is not None:
            self.outbound.dst_gone()
        if self.inbound is not None:
            self.inbound.feed_eof()
        self.conn.side_lost(self)


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on ``transport``'s TCP socket (see the module docstring)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _linger_zero(transport: asyncio.BaseTransport | None) -> None:
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class Connection:
    """A client accepted by a proxy, its upstream connection, and the two pipes between them.

    ``toxics`` returns the proxy's current toxics (spec, sequence number) when the pipes are
    built; ``forget`` is called once both sockets are closed.
    """

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        upstream: str,
        toxics: Callable[[], Iterable[tuple[ToxicSpec, int]]],
        rng: random.Random,
        resolver: Resolver,
        forget: Callable[[Connection], None],
        proxy_name: str,
        traffic: Traffic | None = None,
    ):
        self.loop = loop
        self.traffic = traffic if traffic is not None else Traffic()
        self.upstream_addr = upstream
        self._toxics = toxics
        self._rng = rng
        self._resolver = resolver
        self._forget = forget
        self.label = proxy_name
        self.client = _Side(self)
        self.server = _Side(self)
        self.up: Pipe | None = None
        self.down: Pipe | None = None
        self.dead = False
        self._open = 0
        self._dial: asyncio.Task[None] | None = None

    def side_made(self, side: _Side) -> None:
        self._open += 1
        if side is self.client:
            peer = side.transport.get_extra_info("peername")  # type: ignore[union-attr]
            self.label = f"{self.label} client {peer}"
            self._dial = self.loop.create_task(self._connect())
        elif self.dead:
            side.transport.abort()  # type: ignore[union-attr]

    def side_lost(self, side: _Side) -> None:
        self._open -= 1
        if side is self.client and self._dial is not None and not self._dial.done():
            self._dial.cancel()
        if self._open <= 0:
            self.dead = True
            self._forget(self)

    async def _connect(self) -> None:
        host, _, port = self.upstream_addr.rpartition(":")
        try:
            addresses = await self._resolver.resolve(host.strip("[]"), int(port))
            for i, (ip, number) in enumerate(addresses):
                try:  # a numeric address: asyncio dials it without a lookup of its own
                    await self.loop.create_connection(lambda: self.server, ip, number)
                    break
                except OSError:
                    if i == len(addresses) - 1:
                        raise
        except (OSError, ValueError) as exc:
            log.debug(
                "%s: unable to open connection to upstream %s: %s",
                self.label,
                self.upstream_addr,
                exc,
            )
            if self.client.transport is not None:
                self.client.transport.close()
            return
        if self.dead:
            self.abort()
            return
        client, server = self.client.transport, self.server.transport
        assert client is not None and server is not None
        self.up = Pipe(self, upstream=True, src=client, dst=server, counts=self.traffic.up)
        self.down = Pipe(self, upstream=False, src=server, dst=client,
                         counts=self.traffic.down)
        self.up.other, self.down.other = self.down, self.up
        self.client.inbound = self.server.outbound = self.up
        self.server.inbound = self.client.outbound = self.down
        for spec, seq in self._toxics():
            self.pipe(spec.upstream).add_stage(spec, seq, self._rng)
        self.client.flush_early()
        self.server.flush_early()
        client.resume_reading()
        server.resume_reading()

    def pipe(self, upstream: bool) -> Pipe:
        pipe = self.up if upstream else self.down
        assert pipe is not None
        return pipe

    @property
    def ready(self) -> bool:
        return self.up is not None and not self.dead

    def abort(self, *, rst: bool = False) -> None:
        """Close both sockets now, dropping buffered data; with ``rst``, send a TCP RST."""
        self.dead = True
        if self._dial is not None and not self._dial.done():
            self._dial.cancel()
        for pipe in (self.up, self.down):
            if pipe is not None:
                pipe.dst_gone()
        for side in (self.client, self.server):
            if side.transport is not None:
                if rst:
                    _linger_zero(side.transport)
                side.transport.abort()

    def reset(self) -> None:
        """Reset both sockets (RST), as Toxiproxy's ``reset_peer``."""
        self.abort(rst=True)
