"""The `Target` interface: everything specific to one system under test.

A target owns the system's shape and contracts; providers (`drills.stack.local`,
`drills.stack.docker`) only run nodes and links, and the engine asks the target:

- **topology**: zones -> nodes, and link names (known before anything starts, so a drill's
  fault targets are checked first);
- **how to run it**: `LocalPlan` (one command per node, with placeholders the local provider
  fills in) and `ComposePlan` (a Compose file, its environment, the links the harness creates on
  the Toxiproxy service, images to build offline);
- **knobs**: the drill's ``stack.config`` -> environment (`Target.env`), validated by the model
  in `Target.info`;
- **readiness** beyond each node's own probe (`Target.ready`), the load's **entry** URL, the
  **operation classes**, the **default locustfile**;
- the **data contract** (`Target.final_read`, `Target.wait_converged`), optional: without it
  the data objectives are not measured.

The demonstration target this package ships implements it (its own subpackage);
`drills.targets.custom` for a drill file's own Compose stack or local processes. A package
ships one through the entry-point group ``drills.targets`` (see `drills.targets.load`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from drills.model import FinalRead
from drills.spec.context import TargetInfo
from drills.stack.base import Stack, Topology


@dataclass(frozen=True, slots=True)
class Ready:
    """A node's own readiness probe: an HTTP path answering 2xx, a TCP connect, or none."""

    http: str | None = None
    tcp: bool = False


@dataclass(frozen=True, slots=True)
class LocalNode:
    """One process of a local stack. ``command`` and ``env`` values may hold placeholders:
    ``{port}`` (this node's port), ``{addr:NODE}`` (a node's direct host:port), ``{link:NAME}``
    (the host:port a client dials for a link), ``{data_dir}`` (this node's data directory, kept
    across a restart), ``{work_dir}`` (the stack's), ``{python}`` (the Python running drills)."""

    name: str
    zone: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    ready: Ready = Ready()


@dataclass(frozen=True, slots=True)
class LinkDecl:
    """A link: a proxied TCP path. ``upstream`` is a node name (local: its port) or
    ``service:port`` (docker); ``listen`` is where the proxy listens (docker: inside the
    Toxiproxy container, ``host:port``; local: chosen free when None)."""

    name: str
    upstream: str
    listen: str | None = None


@dataclass(frozen=True, slots=True)
class LocalPlan:
    """How the local provider runs a target."""

    nodes: tuple[LocalNode, ...]
    links: tuple[LinkDecl, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None  # where the processes start (a drill file's own: its directory)


@dataclass(frozen=True, slots=True)
class ComposePlan:
    """How the docker provider runs a target: ``file`` with ``env``; ``links`` are created on
    the stack's Toxiproxy service (the file's own service labelled ``drills.role=toxiproxy``,
    or one the harness adds); ``ports`` are environment variables to set to free host ports;
    ``images`` tag -> Debian packages, built offline when missing; ``needs_app_image``: the
    file runs our own image (``DRILLS_IMAGE``, built from the installed packages)."""

    file: Path
    env: Mapping[str, str] = field(default_factory=dict)
    links: tuple[LinkDecl, ...] = ()
    ports: tuple[str, ...] = ()
    images: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    needs_app_image: bool = False


@runtime_checkable
class Target(Protocol):
    """A system under test (see the module docstring)."""

    @property
    def info(self) -> TargetInfo:
        """Name, operation classes, knob model, planted bugs, whether it has a data contract."""
        ...

    @property
    def topology(self) -> Topology: ...

    def locustfile(self) -> Path | None:
        """The load to run when the drill names none (None: the drill must name one)."""
        ...

    def local_plan(self, config: Mapping[str, object]) -> LocalPlan:
        """The processes and links for ``stack.config`` (raises `SpecError` if it cannot run
        on local processes)."""
        ...

    def compose_plan(self, config: Mapping[str, object]) -> ComposePlan:
        """The Compose project for ``stack.config`` (raises `SpecError` if it has none)."""
        ...

    def entry_url(self, stack: Stack) -> str:
        """The base URL the load targets."""
        ...

    def ready(self, stack: Stack, timeout: float) -> None:
        """Wait until the system as a whole can serve (after every node's own probe passed);
        raises `StackError` on timeout. Called at start, at rollback and between drills."""
        ...

    def final_read(self, stack: Stack, *, timeout: float = 10.0) -> FinalRead | None:
        """Every store's keys and counters, read directly (None: no data contract)."""
        ...

    def wait_converged(self, stack: Stack, *, timeout: float) -> tuple[bool, float]:
        """Wait (bounded) until the stores agree; (converged, seconds waited). A target that
        cannot tell waits for nothing and says (True, 0)."""
        ...


def store_addresses(stack: Stack, stores: Sequence[str]) -> dict[str, str]:
    """Store node -> the direct ``host:port`` the harness reads it at."""
    return {name: stack.address(name) for name in stores}
