"""ClipStream, the demonstration target shipped with drills (``stack.target: clipstream``).

`ClipStream` implements `drills.targets.base.Target`: its topology (`target.TOPOLOGY`), knobs
(`config.ClipStreamConfig` -> ``CLIPSTREAM_*``), the six operation classes, its locustfile, the
local processes (the ``clipstream`` console script) and the Compose file shipped in this package,
readiness (the api knows a primary), and its data contract (each store's ``/dump``).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import httpx

from drills.errors import StackError
from drills.model import FinalRead
from drills.spec.context import TargetInfo
from drills.stack.base import Stack, Topology
from drills.stack.process import wait_http
from drills.targets.base import ComposePlan, LinkDecl, LocalNode, LocalPlan, Ready
from drills.targets.clipstream import readback
from drills.targets.clipstream.config import ClipStreamConfig
from drills.targets.clipstream.target import BUGS, STORES, TOPOLOGY, knob_env

HERE = Path(__file__).parent
NAME = "clipstream"
#: Operation classes in report order -> the requests they are (one RTO per class).
CLASSES: Mapping[str, str] = MappingProxyType({
    "upload": "POST /videos", "feed": "GET /feed", "view": "POST /videos/{id}/views",
    "like": "POST /videos/{id}/likes", "search": "GET /search", "stats": "GET /videos/{id}/stats",
})
#: Host-port variables of the Compose file, one per published service.
PORT_VARS: tuple[str, ...] = ("DRILLS_API_PORT", "DRILLS_COORDINATOR_PORT",
                              "DRILLS_STORE_EAST_PORT", "DRILLS_STORE_WEST_PORT",
                              "DRILLS_TOXIPROXY_PORT")

__all__ = ["BUGS", "CLASSES", "NAME", "STORES", "TOPOLOGY", "ClipStream", "ClipStreamConfig"]


def clipstream_command() -> list[str]:
    """How to run the ``clipstream`` console script of the Python running the harness."""
    beside = Path(sys.executable).parent / "clipstream"
    found = str(beside) if beside.exists() else shutil.which("clipstream")
    if not found:
        raise StackError("the 'clipstream' command is not installed (pip install drills)")
    return [found]


def _local_node(node: str) -> LocalNode:
    """``node``'s command line, every peer dialled through its link."""
    common = ("--host", "127.0.0.1", "--port", "{port}")
    if node == "api":
        args: tuple[str, ...] = (
            "api", *common, "--coordinator-url", "http://{link:api->coordinator}",
            "--store", "store-east=http://{link:api->store-east}",
            "--store", "store-west=http://{link:api->store-west}")
    elif node == "coordinator":
        args = ("coordinator", *common, "--data-dir", "{data_dir}", "--primary", "store-east",
                "--store", "store-east=http://{link:coordinator->store-east}",
                "--store", "store-west=http://{link:coordinator->store-west}")
    else:
        peer = STORES[1 - STORES.index(node)]
        args = ("store", *common, "--name", node, "--data-dir", "{data_dir}",
                "--peer-url", f"http://{{link:{node}->{peer}}}")
    return LocalNode(name=node, zone=TOPOLOGY.zone_of(node),
                     command=(*clipstream_command(), *args), ready=Ready(http="/healthz"))


def _knows_primary(resp: httpx.Response) -> bool:
    """The api's ``/healthz`` is 200 and names a primary."""
    try:
        return resp.status_code == 200 and bool(resp.json().get("primary"))
    except ValueError:
        return False


class ClipStream:
    """The ClipStream target (see the module docstring)."""

    info = TargetInfo(name=NAME, classes=tuple(CLASSES), config=ClipStreamConfig, bugs=BUGS,
                      data=True, class_docs=CLASSES)
    topology: Topology = TOPOLOGY

    def locustfile(self) -> Path:
        return HERE / "locustfile.py"

    def local_plan(self, config: Mapping[str, object]) -> LocalPlan:
        links = tuple(LinkDecl(name=name, upstream=name.split("->", 1)[1])
                      for name in TOPOLOGY.links)
        return LocalPlan(nodes=tuple(_local_node(n) for n in TOPOLOGY.nodes), links=links,
                         env=knob_env(config))

    def compose_plan(self, config: Mapping[str, object]) -> ComposePlan:
        # the links are declared by the labels of the file's own toxiproxy service
        return ComposePlan(file=HERE / "docker-compose.yml", env=knob_env(config),
                           ports=PORT_VARS, needs_app_image=True)

    def entry_url(self, stack: Stack) -> str:
        return f"http://{stack.address('api')}"

    def ready(self, stack: Stack, timeout: float) -> None:
        wait_http(f"{self.entry_url(stack)}/healthz", timeout=timeout, interval=0.25,
                  ok=_knows_primary, logs=lambda: stack.logs("api"))

    def final_read(self, stack: Stack, *, timeout: float = 10.0) -> FinalRead:
        return readback.final_read(self._stores(stack), timeout=timeout)

    def wait_converged(self, stack: Stack, *, timeout: float) -> tuple[bool, float]:
        return readback.wait_converged(self._stores(stack), timeout=timeout)

    @staticmethod
    def _stores(stack: Stack) -> dict[str, str]:
        return {n: f"http://{stack.address(n)}" for n in STORES}

