"""The ``custom`` target: a system the drill file describes itself.

- **docker**: ``stack.compose`` names any Compose file. Its nodes are the services labelled
  ``drills.target=true``, zoned by their ``drills.zone`` label (read from the file, so fault
  targets are checked before anything starts). Links (``stack.links``: name, ``listen`` inside
  the proxy container, ``upstream`` ``service:port``) are proxies on a Toxiproxy service the
  harness adds as ``toxiproxy`` (unless the file has a service labelled
  ``drills.role=toxiproxy``): services dial ``toxiproxy:<listen port>`` instead of the upstream,
  as Toxiproxy's own documentation teaches.
- **local**: ``stack.nodes`` lists the processes (name, zone, command, env, ready probe) and
  ``stack.links`` the proxied paths between them (``upstream``: a node name).

The load targets ``stack.entry`` (``http://<its address>``); the data contract, when given, is
``stack.data`` over ``stack.stores`` (`drills.targets.data`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drills.errors import SpecError, StackError
from drills.model import FinalRead
from drills.spec import DrillSpec
from drills.spec.context import TargetInfo
from drills.stack.base import Stack, Topology
from drills.targets import data
from drills.targets.base import ComposePlan, LinkDecl, LocalNode, LocalPlan, Ready

ZONE_LABEL = "drills.zone"
TARGET_LABEL = "drills.target"


def _labels(service: Mapping[str, Any]) -> dict[str, str]:
    """A Compose service's labels, from the mapping or the ``KEY=VALUE`` list form."""
    raw = service.get("labels") or {}
    if isinstance(raw, list):
        return {k: v for k, _, v in (str(item).partition("=") for item in raw)}
    return {str(k): str(v) for k, v in dict(raw).items()}


def compose_zones(file: Path) -> dict[str, tuple[str, ...]]:
    """Zone -> services of a Compose file's opted-in services (``drills.target=true``), in file
    order. `SpecError` naming the file when it cannot be read or a target has no zone."""
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read the Compose file: {exc}", source=str(file)) from exc
    services = doc.get("services") if isinstance(doc, dict) else None
    if not isinstance(services, dict):
        raise SpecError("a Compose file needs a services: mapping", source=str(file))
    zones: dict[str, list[str]] = {}
    for name, service in services.items():
        labels = _labels(service or {})
        if labels.get(TARGET_LABEL, "").lower() != "true":
            continue
        zone = labels.get(ZONE_LABEL)
        if not zone:
            raise SpecError(f"service {name} is labelled {TARGET_LABEL}=true but has no "
                            f"{ZONE_LABEL} label (which zone it is in)", source=str(file),
                            field=f"services.{name}.labels")
        zones.setdefault(zone, []).append(str(name))
    if not zones:
        raise SpecError(f"no service is labelled {TARGET_LABEL}=true (opt in the services "
                        f"faults may touch, each with a {ZONE_LABEL} label)", source=str(file))
    return {z: tuple(ns) for z, ns in zones.items()}


@dataclass(frozen=True)
class Custom:
    """A drill file's own system (see the module docstring)."""

    provider: str
    base_dir: Path
    topology: Topology
    entry: str | None
    stores: tuple[str, ...]
    nodes: tuple[LocalNode, ...] = ()
    links: tuple[LinkDecl, ...] = ()
    compose_file: Path | None = None
    images: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    data_http: str | None = None
    data_python: str | None = None
    custom_locustfile: Path | None = None

    @classmethod
    def from_spec(cls, spec: DrillSpec, *, provider: str | None = None) -> Custom:
        st = spec.stack
        provider = provider or st.provider
        base = Path(spec.source).parent if spec.source and spec.source != "<string>" \
            else Path.cwd()
        links = tuple(LinkDecl(name=lk.name, upstream=lk.upstream, listen=lk.listen)
                      for lk in st.links)
        data_spec = st.data
        common: dict[str, Any] = dict(
            provider=provider, base_dir=base, entry=st.entry, stores=tuple(st.stores),
            links=links, data_http=data_spec.http if data_spec else None,
            data_python=data_spec.python if data_spec else None,
            images={tag: tuple(img.debian) for tag, img in (st.images or {}).items()})
        if provider == "docker":
            if st.compose is None:
                raise SpecError("a custom stack on docker needs stack.compose (its Compose "
                                "file)", source=spec.source, field="stack.compose")
            file = (base / st.compose).resolve()
            return cls(topology=Topology(zones=compose_zones(file),
                                         links=tuple(lk.name for lk in links)),
                       compose_file=file, **common)
        if not st.nodes:
            raise SpecError("a custom stack on local processes needs stack.nodes (the "
                            "processes to run)", source=spec.source, field="stack.nodes")
        nodes = tuple(LocalNode(name=n.name, zone=n.zone, command=tuple(n.command),
                                env=dict(n.env or {}),
                                ready=Ready(http=n.ready.http if n.ready else None,
                                            tcp=bool(n.ready.tcp) if n.ready else False))
                      for n in st.nodes)
        members: dict[str, list[str]] = {}
        for node in nodes:
            members.setdefault(node.zone, []).append(node.name)
        return cls(topology=Topology(zones={z: tuple(ns) for z, ns in members.items()},
                                     links=tuple(lk.name for lk in links)),
                   nodes=nodes, **common)

    @property
    def info(self) -> TargetInfo:
        return TargetInfo(name="custom", data=self.has_data)

    @property
    def has_data(self) -> bool:
        return bool(self.stores) and (self.data_http is not None or self.data_python is not None)

    def locustfile(self) -> Path | None:
        return None

    def local_plan(self, config: Mapping[str, object]) -> LocalPlan:
        if not self.nodes:
            raise SpecError("provider local needs stack.nodes (the processes to run)",
                            field="stack.nodes")
        return LocalPlan(nodes=self.nodes, links=self.links, cwd=self.base_dir)

    def compose_plan(self, config: Mapping[str, object]) -> ComposePlan:
        if self.compose_file is None:
            raise SpecError("provider docker needs stack.compose (the Compose file)",
                            field="stack.compose")
        return ComposePlan(file=self.compose_file, links=self.links, images=self.images)

    def entry_url(self, stack: Stack) -> str:
        if self.entry is None:
            raise StackError("the drill names no stack.entry (the address the load targets)")
        return f"http://{stack.address(self.entry)}"

    def ready(self, stack: Stack, timeout: float) -> None:
        """Nothing beyond every node's own probe: the system's readiness is its nodes'."""

    def _store_addresses(self, stack: Stack) -> dict[str, str]:
        """Store name (a node, or the service of ``service:port``) -> its direct address."""
        return {s.partition(":")[0]: stack.address(s) for s in self.stores}

    def _reader(self) -> data.Reader | None:
        if self.data_http is not None:
            return data.http_reader(self.data_http)
        if self.data_python is not None:
            return data.python_reader(self.data_python, base_dir=self.base_dir)
        return None

    def final_read(self, stack: Stack, *, timeout: float = 10.0) -> FinalRead | None:
        reader = self._reader()
        if reader is None or not self.stores:
            return None
        return data.read_all(reader, self._store_addresses(stack))

    def wait_converged(self, stack: Stack, *, timeout: float) -> tuple[bool, float]:
        reader = self._reader()
        if reader is None or not self.stores:
            return True, 0.0
        stores = self._store_addresses(stack)
        return data.wait_same(lambda: data.read_all(reader, stores), timeout=timeout)
