"""An in-memory `Stack` for tests of the fault machinery: nodes are flags, links record calls.

It really changes state (a killed node is stopped until started), so tests of the injector,
the ledger and rollback can see whether every fault was undone. It is not a target for drills.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Literal

from drills.errors import StackError
from drills.stack.base import NodeState, Topology


class MemoryLink:
    """Records the state a real link would have: enabled, and the set of toxics."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.listen = "127.0.0.1:0"
        self.enabled = True
        self.toxics: set[str] = set()

    def down(self) -> None:
        self.enabled = False

    def up(self) -> None:
        self.enabled = True

    def _add(self, *names: str) -> list[str]:
        self.toxics.update(names)
        return list(names)

    def blackhole(self) -> list[str]:
        return self._add("blackhole_up", "blackhole_down")

    def reset_peer(self) -> list[str]:
        return self._add("reset_peer_down")

    def latency(self, ms: float, jitter: float = 0,
                direction: Literal["both", "upstream", "downstream"] = "both") -> list[str]:
        names = {"both": ("latency_up", "latency_down"), "upstream": ("latency_up",),
                 "downstream": ("latency_down",)}[direction]
        return self._add(*names)

    def bandwidth(self, kbps: float) -> list[str]:
        return self._add("bandwidth_up", "bandwidth_down")

    def remove_toxic(self, name: str) -> bool:
        present = name in self.toxics
        self.toxics.discard(name)
        return present

    def heal(self) -> None:
        self.toxics.clear()
        self.enabled = True


class MemoryStack:
    """A target's topology with no processes behind it. ``broken`` makes a verb raise."""

    provider = "memory"

    def __init__(self, topology: Topology, broken: Sequence[str] = ()) -> None:
        self.topology = topology
        self.keep = False
        self.state: dict[str, NodeState] = dict.fromkeys(self.topology.nodes, "running")
        self.links = {n: MemoryLink(n) for n in self.topology.links}
        self.broken = set(broken)

    def __enter__(self) -> MemoryStack:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.keep:
            self.down()

    def _verb(self, verb: str) -> None:
        if verb in self.broken:
            raise StackError(f"{verb} is broken in this test")

    def address(self, endpoint: str) -> str:
        return "127.0.0.1:9"  # the discard port: nothing answers

    def kill(self, nodes: Sequence[str]) -> Mapping[str, float]:
        self._verb("kill")
        self.state.update(dict.fromkeys(nodes, "stopped"))
        return {n: time.time() for n in nodes}

    def start(self, nodes: Sequence[str]) -> Mapping[str, float]:
        self._verb("start")
        self.state.update(dict.fromkeys(nodes, "running"))
        return {n: time.time() for n in nodes}

    def pause(self, node: str) -> float:
        self.state[node] = "paused"
        return time.time()

    def resume(self, node: str) -> float:
        self.state[node] = "running"
        return time.time()

    def status(self, node: str) -> NodeState:
        return self.state[node]

    def link(self, name: str) -> MemoryLink:
        return self.links[name]

    def logs(self, node: str, lines: int = 40) -> str:
        return ""

    def wait_healthy(self, timeout: float = 30.0) -> None:
        pass

    def down(self) -> None:
        self.state = dict.fromkeys(self.topology.nodes, "stopped")

    @property
    def clean(self) -> bool:
        """Every node running, every link enabled with no toxics."""
        return all(s == "running" for s in self.state.values()) and all(
            link.enabled and not link.toxics for link in self.links.values()
        )
