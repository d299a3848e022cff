"""Every Toxiproxy toxic type: its attributes, and the stage that applies it to one direction.

A toxic (``ToxicSpec``) is what the API shows. A ``Stage`` is that toxic acting on one direction
of one connection (Go's ToxicStub): it holds the toxicity decision, taken once when the stage is
created (at connect, or when the toxic is added to an open connection, or again if an update
changes the toxicity), and per-connection state (``limit_data``'s byte count).

Stages run inside their pipe's task. ``process`` receives a chunk and passes data on with
``await pipe.emit(self, chunk)``; ``finish`` receives the end of the stream. A stage that sleeps
uses ``sleep_until``, which returns False when the toxic was updated or removed meanwhile: the
stage then passes on what it holds at once, as Toxiproxy does ("don't drop data on the floor").
Semantics follow Shopify/toxiproxy ``toxics/*.go``; the two places where Go would crash
(``slicer`` with ``average_size`` <= 0 or ``size_variation`` >= ``average_size``) are clamped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from drills.toxiproxy.link import Chunk, Pipe


@dataclass(frozen=True, slots=True)
class Attributes:
    """Base of every toxic's attributes (all integers, as in Go); ``noop`` has none.
    ``go_name`` is the Go struct's name, which Toxiproxy's decode errors mention."""

    go_name: ClassVar[str] = "NoopToxic"


@dataclass(frozen=True, slots=True)
class LatencyAttrs(Attributes):
    go_name: ClassVar[str] = "LatencyToxic"
    latency: int = 0  # ms
    jitter: int = 0  # ms


@dataclass(frozen=True, slots=True)
class BandwidthAttrs(Attributes):
    go_name: ClassVar[str] = "BandwidthToxic"
    rate: int = 0  # KB/s, 1 KB = 1000 bytes


@dataclass(frozen=True, slots=True)
class SlowCloseAttrs(Attributes):
    go_name: ClassVar[str] = "SlowCloseToxic"
    delay: int = 0  # ms


@dataclass(frozen=True, slots=True)
class TimeoutAttrs(Attributes):
    go_name: ClassVar[str] = "TimeoutToxic"
    timeout: int = 0  # ms


@dataclass(frozen=True, slots=True)
class ResetPeerAttrs(Attributes):
    go_name: ClassVar[str] = "ResetToxic"
    timeout: int = 0  # ms


@dataclass(frozen=True, slots=True)
class SlicerAttrs(Attributes):
    go_name: ClassVar[str] = "SlicerToxic"
    average_size: int = field(default=0, metadata={"go": "int"})  # bytes
    size_variation: int = field(default=0, metadata={"go": "int"})  # bytes
    delay: int = field(default=0, metadata={"go": "int"})  # microseconds


@dataclass(frozen=True, slots=True)
class LimitDataAttrs(Attributes):
    go_name: ClassVar[str] = "LimitDataToxic"
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class ToxicSpec:
    """A toxic as the API shows it. ``stream`` is kept as sent (Go keeps its case)."""

    name: str
    type: str
    stream: str
    upstream: bool
    toxicity: float
    attributes: Attributes

    def to_json(self) -> dict[str, object]:
        tox = self.toxicity
        return {
            "attributes": dataclasses.asdict(self.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": int(tox) if tox.is_integer() else tox,
        }


def _set(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


class Stage:
    """A toxic applied to one direction of one connection; the base passes data unchanged."""

    attrs_type: ClassVar[type[Attributes]] = Attributes
    __slots__ = ("_waiter", "active", "interrupted", "pipe", "rng", "seq", "spec")

    def __init__(self, spec: ToxicSpec, seq: int, pipe: Pipe, rng: random.Random):
        self.spec = spec
        self.seq = seq
        self.pipe = pipe
        self.rng = rng
        self.active = rng.random() < spec.toxicity
        self.interrupted = False
        self._waiter: asyncio.Future[bool] | None = None

    # -- lifecycle, called by the pipe ---------------------------------------------------------
    def start(self) -> None:
        """The stage joined its pipe (timers start here)."""

    def update(self, spec: ToxicSpec) -> None:
        """New attributes or toxicity: interrupt what is held, re-decide if toxicity changed."""
        if spec.toxicity != self.spec.toxicity:
            self.active = self.rng.random() < spec.toxicity
        self.spec = spec
        self.interrupt()
        self.start()

    def remove(self) -> None:
        """The toxic was removed: release what it holds (the pipe flushes it onward)."""
        self.interrupt()
        self.stop()

    def stop(self) -> None:
        """The stage is leaving its pipe or the connection closed: cancel timers."""

    def interrupt(self) -> None:
        self.interrupted = True
        if self._waiter is not None:
            _set(self._waiter, False)

    # -- helpers for subclasses ----------------------------------------------------------------
    async def sleep_until(self, deadline: float) -> bool:
        """Sleep until loop time ``deadline`` (inf = until interrupted); False if interrupted."""
        if self.interrupted:
            return False
        loop = self.pipe.loop
        if deadline <= loop.time():
            return True
        fut: asyncio.Future[bool] = loop.create_future()
        handle = loop.call_at(deadline, _set, fut, True) if math.isfinite(deadline) else None
        self._waiter = fut
        try:
            return await fut
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()

    # -- data ----------------------------------------------------------------------------------
    async def process(self, chunk: Chunk) -> None:
        await self.pipe.emit(self, chunk)

    async def finish(self) -> None:
        await self.pipe.emit_eof(self)


class LatencyStage(Stage):
    """Each chunk leaves ``latency`` ± ``jitter`` ms after it was received."""

    attrs_type = LatencyAttrs
    __slots__ = ()

    async def process(self, chunk: Chunk) -> None:
        attrs: LatencyAttrs = self.spec.attributes  # type: ignore[assignment]
        delay = attrs.latency
        if attrs.jitter > 0:
            delay += self.rng.randrange(2 * attrs.jitter) - attrs.jitter
        deadline = chunk.ts + delay / 1000.0
        await self.sleep_until(deadline)
        chunk.ts = max(chunk.ts, min(deadline, self.pipe.loop.time()))
        await self.pipe.emit(self, chunk)


class BandwidthStage(Stage):
    """Data passes at ``rate`` KB/s, in 100 ms slices when a chunk is large; rate 0 stalls."""

    attrs_type = BandwidthAttrs
    __slots__ = ("debt",)

    def start(self) -> None:
        self.debt = 0.0  # seconds owed, Go's `sleep`

    async def process(self, chunk: Chunk) -> None:
        rate: int = self.spec.attributes.rate  # type: ignore[attr-defined]
        loop = self.pipe.loop
        if rate <= 0:
            await self.sleep_until(math.inf)  # held until the toxic changes or goes
            await self.pipe.emit(self, chunk)
            return
        data = chunk.data
        self.debt += len(data) / (rate * 1000.0)
        step = rate * 100
        while len(data) > step:
            if not await self.sleep_until(loop.time() + 0.1):
                break
            await self.pipe.emit_bytes(self, data[:step], chunk.ts)
            data = data[step:]
            self.debt -= 0.1
        else:
            start = loop.time()
            if await self.sleep_until(start + self.debt):
                self.debt -= loop.time() - start
        await self.pipe.emit_bytes(self, data, chunk.ts)


class SlowCloseStage(Stage):
    """Data passes; the end of the stream is passed on ``delay`` ms after it arrives."""

    attrs_type = SlowCloseAttrs
    __slots__ = ()

    async def finish(self) -> None:
        delay: int = self.spec.attributes.delay  # type: ignore[attr-defined]
        await self.sleep_until(self.pipe.loop.time() + delay / 1000.0)
        await self.pipe.emit_eof(self)


class TimeoutStage(Stage):
    """Drops all data; closes the connection after ``timeout`` ms without data (0 = never).

    Removing the toxic closes the connection too (Go's ``Cleanup``), whether or not the
    toxicity roll made it act on this connection.
    """

    attrs_type = TimeoutAttrs
    __slots__ = ("_timer",)
    _timer: asyncio.TimerHandle | None  # unset until the first start

    def start(self) -> None:
        self.stop()
        timeout: int = self.spec.attributes.timeout  # type: ignore[attr-defined]
        if self.active and timeout > 0:
            self._timer = self.pipe.loop.call_later(timeout / 1000.0, self.pipe.close)

    def stop(self) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()
            self._timer = None

    def remove(self) -> None:
        super().remove()
        self.pipe.close()

    async def process(self, chunk: Chunk) -> None:
        self.start()  # data seen: the idle clock starts again; the data itself is dropped

    async def finish(self) -> None:
        self.stop()
        self.pipe.close()


class ResetPeerStage(Stage):
    """On the first data (or the end of stream), waits ``timeout`` ms and resets with a TCP RST."""

    attrs_type = ResetPeerAttrs
    __slots__ = ()

    async def process(self, chunk: Chunk) -> None:
        await self._reset()

    async def finish(self) -> None:
        await self._reset()

    async def _reset(self) -> None:
        timeout: int = self.spec.attributes.timeout  # type: ignore[attr-defined]
        if timeout > 0:
            await asyncio.sleep(timeout / 1000.0)  # not interruptible, as in Go
        self.pipe.conn.reset()


class SlicerStage(Stage):
    """Chunks cut into pieces of about ``average_size`` bytes, ``delay`` µs apart."""

    attrs_type = SlicerAttrs
    __slots__ = ()

    def cuts(self, start: int, end: int) -> list[int]:
        """Boundaries [start, b1, b1, b2, ..., end] in pairs, halving until pieces are small."""
        attrs: SlicerAttrs = self.spec.attributes  # type: ignore[assignment]
        average = max(attrs.average_size, 1)
        variation = min(max(attrs.size_variation, 0), average - 1)
        if (end - start) - average <= variation:
            return [start, end]
        mid = start + (end - start) // 2
        if variation > 0:
            mid += self.rng.randrange(variation * 2) - variation
        mid = min(max(mid, start + 1), end - 1)
        return self.cuts(start, mid) + self.cuts(mid, end)

    async def process(self, chunk: Chunk) -> None:
        data = chunk.data
        bounds = self.cuts(0, len(data))
        delay: int = self.spec.attributes.delay  # type: ignore[attr-defined]
        loop = self.pipe.loop
        for i in range(1, len(bounds), 2):
            await self.pipe.emit_bytes(self, data[bounds[i - 1] : bounds[i]], chunk.ts)
            if not await self.sleep_until(loop.time() + delay / 1e6):
                await self.pipe.emit_bytes(self, data[bounds[i] :], chunk.ts)
                return


class LimitDataStage(Stage):
    """Passes ``bytes`` bytes in this direction of the connection, then closes it."""

    attrs_type = LimitDataAttrs
    __slots__ = ("sent",)

    def __init__(self, spec: ToxicSpec, seq: int, pipe: Pipe, rng: random.Random):
        super().__init__(spec, seq, pipe, rng)
        self.sent = 0

    async def process(self, chunk: Chunk) -> None:
        limit: int = self.spec.attributes.bytes  # type: ignore[attr-defined]
        remaining = max(limit - self.sent, 0)
        data = chunk.data[:remaining] if remaining < len(chunk.data) else chunk.data
        if data:
            self.sent += len(data)
            await self.pipe.emit_bytes(self, data, chunk.ts)
        if limit - self.sent <= 0:
            self.pipe.close()


#: Every toxic type Toxiproxy 2.12 knows, by its API name.
STAGES: MappingProxyType[str, type[Stage]] = MappingProxyType(
    {
        "noop": Stage,
        "latency": LatencyStage,
        "bandwidth": BandwidthStage,
        "slow_close": SlowCloseStage,
        "timeout": TimeoutStage,
        "reset_peer": ResetPeerStage,
        "slicer": SlicerStage,
        "limit_data": LimitDataStage,
    }
)


def make_stage(spec: ToxicSpec, seq: int, pipe: Pipe, rng: random.Random) -> Stage:
    """A started stage of ``spec`` for ``pipe``."""
    stage = STAGES[spec.type](spec, seq, pipe, rng)
    stage.start()
    return stage
