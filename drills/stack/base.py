"""The `Stack` interface every provider implements, and the topology it exposes.

A stack is made of **nodes** (a process or a container) grouped in **zones**, and **links**: named
TCP paths between services that go through a Toxiproxy proxy. The engine and the faults only ever
talk to a stack through this protocol; providers are siblings (`local.py`, `docker.py`). What a
stack runs is a target's (`drills.targets`); a stack knows nothing of the system inside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

NodeState = Literal["running", "stopped", "paused"]


@dataclass(frozen=True, slots=True)
class Topology:
    """Zones (zone -> its nodes) and link names of a stack, used to validate drill targets."""

    zones: Mapping[str, tuple[str, ...]]
    links: tuple[str, ...]

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(n for members in self.zones.values() for n in members)

    def zone_of(self, node: str) -> str:
        return next(z for z, members in self.zones.items() if node in members)


class Link(Protocol):
    """What a fault needs of a link (`drills.toxiproxy.client.Link` implements it). Every method
    is idempotent; the toxic-adding ones return the names of the toxics they added."""

    @property
    def name(self) -> str:
        """The link's name (``a->b``)."""
        ...

    @property
    def listen(self) -> str:
        """The address services dial instead of the upstream."""
        ...

    def down(self) -> None: ...

    def up(self) -> None: ...

    def blackhole(self) -> list[str]: ...

    def reset_peer(self) -> list[str]: ...

    def latency(self, ms: float, jitter: float = 0,
                direction: Literal["both", "upstream", "downstream"] = "both") -> list[str]:
        """Delay the link by ``ms`` (± ``jitter``) each way, or one way only; the toxics'
        names."""
        ...

    def bandwidth(self, kbps: float) -> list[str]: ...

    def remove_toxic(self, name: str) -> bool:
        """Remove toxic ``name``; False if it was not there (removing twice is fine)."""
        ...

    def heal(self) -> None: ...


@runtime_checkable
class Stack(Protocol):
    """A running system under test.

    A stack is a context manager: entering starts it and waits until healthy, leaving stops it
    unless ``keep`` (a stack found again with ``attach`` is not entered; ``down`` stops it).

    Node verbs return the wall-clock time at which the action took effect (for ``kill``: when the
    process or container was seen dead), so fault records carry effective, not requested, times.
    Every verb is idempotent: killing a stopped node or starting a running one does nothing.
    """

    provider: str
    topology: Topology
    keep: bool  # leave it running when the context exits (``--keep``)

    def __enter__(self) -> Self: ...

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def address(self, endpoint: str) -> str:
        """The direct (un-proxied) ``host:port`` at which the harness reaches ``endpoint``: a
        node (local: its port; docker: its one published port) or ``service:port`` (docker:
        that container port, published or on the container's network)."""
        ...

    def kill(self, nodes: Sequence[str]) -> Mapping[str, float]:
        """SIGKILL every node at once (no goodbye); return when each was seen dead."""
        ...

    def start(self, nodes: Sequence[str]) -> Mapping[str, float]:
        """Start every stopped node; return when each was started (not yet healthy)."""
        ...

    def pause(self, node: str) -> float: ...

    def resume(self, node: str) -> float: ...

    def status(self, node: str) -> NodeState: ...

    def link(self, name: str) -> Link: ...

    def logs(self, node: str, lines: int = 40) -> str: ...

    def wait_healthy(self, timeout: float = 30.0) -> None: ...

    def down(self) -> None:
        """Stop and remove every node (and what the stack started for its links)."""
        ...
