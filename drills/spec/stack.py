"""The ``stack`` section: which target runs, where, and - for your own system - its shape.

A drill drills a **target**: a registered one (``stack.target``, e.g. the built-in
demonstration system, the default) that brings its own nodes, links and data contract, or the
drill file's own system (`CUSTOM`): processes listed as ``stack.nodes`` (provider local) or the
services of a Compose file (``stack.compose``, provider docker), with ``links`` (TCP paths
through Toxiproxy that link faults cut), an ``entry`` the load targets, the ``stores`` a final
read asks and, optionally, how to read them (``data``). `StackSpec` checks that shape with
located errors; ``stack.config`` is validated by the target's own `KnobsModel`
(`TargetInfo.config`, from the validation context).

Local node commands and environment values may hold placeholders (`PLACEHOLDERS`), filled in
by the local provider with `expand`: ``{port}`` (this node's port), ``{addr:NODE}`` (host:port
of a node), ``{link:NAME}`` (host:port a client dials to go through that link),
``{data_dir}`` (this node's data directory), ``{work_dir}`` (the run's stack directory) and
``{python}`` (the Python interpreter running the harness).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import SerializeAsAny, ValidationInfo, field_validator, model_validator

from drills.spec._base import SpecModel, invalid, unknown
from drills.spec._base import doc_field as _f
from drills.spec.context import CUSTOM, TargetInfo, target_of
from drills.spec.knobs import AnyKnobs, KnobsModel

#: The placeholders a local node's command and environment may use, as the errors list them.
PLACEHOLDERS: tuple[str, ...] = ("{port}", "{addr:NODE}", "{link:NAME}", "{data_dir}",
                                 "{work_dir}", "{python}")
_KINDS = {"port": False, "addr": True, "link": True, "data_dir": False, "work_dir": False,
          "python": False}
_PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::([^{}]*))?\}")
_NAME = r"^[a-z0-9][a-z0-9-]*$"
_LINK = r"^[a-z0-9][a-z0-9._>-]*$"
_HOST_PORT = re.compile(r"^([A-Za-z0-9_.-]+):(\d{1,5})$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PY_REF = re.compile(r"^(?:[^:]+\.py|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):[A-Za-z_]\w*$")
_DEBIAN = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_OWN_SHAPE = ("nodes", "links", "entry", "stores", "data")


def _empty(value: object) -> bool:
    """Left out of dumps when empty: a registered target's drills never show these."""
    return not value


def placeholders(text: str) -> list[tuple[str, str | None, str]]:
    """The ``{...}`` placeholders in ``text`` as (kind, argument or None, the token)."""
    return [(m[1], m[2], m[0]) for m in _PLACEHOLDER.finditer(text)]


def expand(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every placeholder replaced from ``values``, keyed ``port``, ``data_dir``,
    ``work_dir``, ``python``, ``addr:<node>``, ``link:<name>``. Raises `KeyError` for one
    missing from ``values`` (a validated drill names only its own nodes and links)."""
    def one(match: re.Match[str]) -> str:
        return values[match[1] if match[2] is None else f"{match[1]}:{match[2]}"]
    return _PLACEHOLDER.sub(one, text)


class ReadySpec(SpecModel):
    """How the harness knows a node is up (exactly one key)."""

    http: str | None = _f(None, typ="path", doc="GET http://<the node's address><path> "
                          "answers 2xx.")
    tcp: bool | None = _f(None, typ="true", strict=True, doc="The node's {port} accepts a "
                          "TCP connection.")

    @model_validator(mode="after")
    def _one_probe(self) -> ReadySpec:
        if (self.http is None) == (self.tcp is None):
            raise invalid("", "ready needs exactly one of http (a path, e.g. /healthz) or "
                              "tcp: true")
        if self.tcp is False:
            raise invalid("tcp", "expected true (leave ready out for no probe)")
        if self.http is not None and not self.http.startswith("/"):
            raise invalid("http", f"expected a path starting with /, got {self.http!r}")
        return self


class NodeSpec(SpecModel):
    """One process of your own system (provider local)."""

    name: str = _f(typ="[a-z0-9-]+", pattern=_NAME, doc="The node's name: a fault target "
                   "(crash, freeze), a link upstream, {addr:NAME}.")
    zone: str = _f(typ="text", min_length=1, doc="Its zone (a power_down target); nodes "
                   "sharing a zone go down together.")
    command: tuple[str, ...] = _f(typ="list of text", min_length=1, doc="The program and its "
                                  "arguments (no shell), placeholders allowed; run in the "
                                  "drill file's directory.")
    env: dict[str, str] = _f({}, typ="mapping name -> text", doc="Extra environment "
                             "variables, placeholders allowed (numbers are read as text).")
    ready: ReadySpec | None = _f(None, typ="mapping", doc="Readiness probe (below); left "
                                 "out, the node counts as up once started.")

    @field_validator("env", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                    for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _env_names(self) -> NodeSpec:
        for key in self.env:
            if not _ENV_NAME.match(key):
                raise invalid("env", f"expected environment variable names (letters, digits, "
                                     f"_; not starting with a digit), got {key!r}")
        return self


class LinkSpec(SpecModel):
    """A TCP path through Toxiproxy: what partition, latency and bandwidth faults act on."""

    name: str = _f(typ="[a-z0-9._>-]+", pattern=_LINK, doc="The link's name, e.g. app->db "
                   "(a link fault target, {link:NAME}).")
    upstream: str = _f(typ="node | service:port", min_length=1, doc="Where it leads: local, a "
                       "node name (its {port}); docker, service:port in your compose file.")
    listen: str | None = _f(None, typ="host:port", doc="Where the proxy listens: docker "
                            "(required), inside its container, e.g. 0.0.0.0:16379 (point the "
                            "client service at toxiproxy:<port>); local, on this host "
                            "(default: a free port).")


class DataSpec(SpecModel):
    """The final-read contract of your own system: how to read what each store holds (one key)."""

    http: str | None = _f(None, typ="path", doc="GET http://<store address><path> on every "
                          "store: JSON {role, epoch, keys, counters}.")
    python: str | None = _f(None, typ="file.py:function | module:function", doc="Called as "
                            "function(stores) with store -> host:port; returns {store: {role, "
                            "epoch, keys, counters}} or a FinalRead. A file is relative to "
                            "the drill file.")

    @model_validator(mode="after")
    def _one_reader(self) -> DataSpec:
        if (self.http is None) == (self.python is None):
            raise invalid("", "data needs exactly one of http (a path, e.g. /drills/state) or "
                              "python (file.py:function or module:function)")
        if self.http is not None and not self.http.startswith("/"):
            raise invalid("http", f"expected a path starting with /, got {self.http!r}")
        if self.python is not None and not _PY_REF.match(self.python):
            raise invalid("python", f"expected file.py:function or module:function, got "
                                    f"{self.python!r}")
        return self


class ImageSpec(SpecModel):
    """An image your compose file uses, built offline from Debian packages when missing."""

    debian: tuple[str, ...] = _f(typ="list of package names", min_length=1, doc="The Debian "
                                 "packages to install on the harness's Debian base image.")

    @model_validator(mode="after")
    def _package_names(self) -> ImageSpec:
        for i, name in enumerate(self.debian):
            if not _DEBIAN.match(name):
                raise invalid(f"debian[{i}]", f"expected a Debian package name, got {name!r}")
        return self


class StackSpec(SpecModel):
    """Where the system under test runs, and what it is."""

    provider: Literal["local", "docker"] = _f(
        "local", typ="local|docker", doc="local: each node a child process; docker: Compose.")
    target: str | None = _f(None, typ="name", min_length=1, validate_default=True,
                            doc="A registered target (entry point group drills.targets), or "
                            "custom: your own system. Default: custom when nodes or compose is "
                            "given, else the built-in one.")
    compose: str | None = _f(None, typ="path", doc="docker only: the Compose file (relative to "
                             "the drill file); your own system's services, zones from "
                             "drills.zone labels, opt-in drills.target=true.")
    nodes: tuple[NodeSpec, ...] = _f(
        (), exclude_if=_empty, typ="list of nodes",
        doc="local, your own system: the processes to run (below).")
    links: tuple[LinkSpec, ...] = _f(
        (), exclude_if=_empty, typ="list of links",
        doc="Your own system: the TCP paths link faults act on (below).")
    entry: str | None = _f(None, typ="node | service:port", doc="Your own system: where the "
                           "load goes (its host is http://<address>); local, a node; docker, "
                           "service:port.")
    stores: tuple[str, ...] = _f(
        (), exclude_if=_empty, typ="list of nodes | service:port",
        doc="Your own system: what the final read asks (local, nodes; docker, service:port).")
    data: DataSpec | None = _f(None, typ="mapping", doc="Your own system's final-read "
                               "contract (below); without it the data objectives are not "
                               "measured. Needs stores.")
    images: dict[str, ImageSpec] = _f(
        {}, exclude_if=_empty, typ="mapping tag -> image",
        doc="docker only: images to build offline from Debian packages when missing (below).")
    config: SerializeAsAny[KnobsModel] = _f(KnobsModel(), typ="mapping", validate_default=True,
                            doc="The target's knobs, validated by the target (below).")

    @field_validator("config", mode="plain")
    @classmethod
    def _target_knobs(cls, value: Any, info: ValidationInfo) -> KnobsModel:
        """Validated by the target's model; without a target, kept as given (`AnyKnobs`)."""
        target = target_of(info)
        model: type[KnobsModel] = AnyKnobs if target is None else target.config or KnobsModel
        if isinstance(value, model):
            return value
        if isinstance(value, KnobsModel):
            value = value.model_dump(exclude_defaults=True)
        if target is not None and target.config is None and value:
            raise invalid("", f"the {target.name} target takes no knobs: leave stack.config "
                              f"out")
        return model.model_validate(value, context=info.context)

    @field_validator("target")
    @classmethod
    def _resolved(cls, value: str | None, info: ValidationInfo) -> str | None:
        """The target validation resolved (recorded, so the effective drill names it)."""
        target = target_of(info)
        return target.name if value is None and target is not None else value

    @field_validator("images")
    @classmethod
    def _image_tags(cls, value: dict[str, ImageSpec]) -> dict[str, ImageSpec]:
        for tag in value:
            if not tag or any(c.isspace() for c in tag):
                raise invalid("", f"expected image tags such as example/app:latest, got "
                                  f"{tag!r}")
        return value

    @model_validator(mode="after")
    def _shape(self, info: ValidationInfo) -> StackSpec:
        target = target_of(info)
        if self.compose is not None and self.provider != "docker":
            raise invalid("compose", f"compose applies only to provider docker (provider is "
                                     f"{self.provider})")
        if self.nodes and self.provider != "local":
            raise invalid("nodes", f"nodes applies only to provider local (provider is "
                                   f"{self.provider}): with docker, your services come from "
                                   f"stack.compose")
        if self.images and self.provider != "docker":
            raise invalid("images", f"images applies only to provider docker (provider is "
                                    f"{self.provider})")
        if not self.custom(target):
            self._refuse_own_shape(target)
        elif self.provider == "local":
            _check_local(self)
        else:
            _check_docker(self)
        if self.data is not None and not self.stores:
            raise invalid("data", "data needs stores: the nodes (local) or service:port "
                                  "(docker) the final read asks")
        return self

    @property
    def target_name(self) -> str:
        """The drill's target: ``target`` (filled in by validation with a target); without
        one, `CUSTOM` for nodes or compose, else ``""`` (the default, unknown to the spec)."""
        if self.target is not None:
            return self.target
        return CUSTOM if self.custom() else ""

    def custom(self, target: TargetInfo | None = None) -> bool:
        """Is this the drill file's own system? ``target`` decides when given; otherwise: an
        explicit ``target: custom``, or no target and nodes or compose given."""
        if target is not None:
            return target.custom
        if self.target is not None:
            return self.target == CUSTOM
        return self.compose is not None or bool(self.nodes)

    def _refuse_own_shape(self, target: TargetInfo | None) -> None:
        for name in _OWN_SHAPE:
            if getattr(self, name) not in (None, ()):
                who = (f"the {target.name} target" if target is not None else
                       f"the {self.target} target" if self.target else "the default target")
                raise invalid(name, f"{name} describes your own system, but {who} brings its "
                                    f"own nodes, links, entry, stores and data contract: drop "
                                    f"{name}, or drill your own system (nodes with provider "
                                    f"local, compose with provider docker, no stack.target)")


def _check_local(stack: StackSpec) -> None:
    """Nodes, links, placeholders, entry and stores of your own local processes."""
    if not stack.nodes:
        raise invalid("nodes", "your own system on provider local needs nodes: the processes "
                               "to run (name, zone, command)")
    nodes = [n.name for n in stack.nodes]
    _unique("nodes", "name", nodes)
    links = [link.name for link in stack.links]
    _unique("links", "name", links)
    for i, link in enumerate(stack.links):
        if link.upstream not in nodes:
            raise invalid(f"links[{i}].upstream", unknown("node", link.upstream, nodes,
                                                          listing="nodes"))
    _listen_ports(stack.links, required=False)
    for i, node in enumerate(stack.nodes):
        for j, arg in enumerate(node.command):
            _check_placeholders(f"nodes[{i}].command[{j}]", arg, nodes, links)
        for key, value in node.env.items():
            _check_placeholders(f"nodes[{i}].env.{key}", value, nodes, links)
    if stack.entry is not None and stack.entry not in nodes:
        raise invalid("entry", unknown("node", stack.entry, nodes, listing="nodes"))
    for i, store in enumerate(stack.stores):
        if store not in nodes:
            raise invalid(f"stores[{i}]", unknown("node", store, nodes, listing="nodes"))
    _unique("stores", None, list(stack.stores))


def _check_docker(stack: StackSpec) -> None:
    """Links, entry and stores of your own Compose services (service:port each)."""
    if stack.compose is None:
        raise invalid("compose", "your own system on provider docker needs compose: your "
                                 "Compose file")
    _unique("links", "name", [link.name for link in stack.links])
    _listen_ports(stack.links, required=True)
    for i, link in enumerate(stack.links):
        _host_port(f"links[{i}].upstream", link.upstream, "service:port")
    if stack.entry is not None:
        _host_port("entry", stack.entry, "service:port")
    for i, store in enumerate(stack.stores):
        _host_port(f"stores[{i}]", store, "service:port")
    _unique("stores", None, list(stack.stores))


def _listen_ports(links: Sequence[LinkSpec], *, required: bool) -> None:
    """Each link's ``listen`` is host:port (``required``: given) and no two share a port."""
    ports: dict[str, int] = {}
    for i, link in enumerate(links):
        if link.listen is None:
            if required:
                raise invalid(f"links[{i}].listen", "a docker link needs listen: host:port "
                                                    "inside the proxy container, e.g. "
                                                    "0.0.0.0:16379")
            continue
        port = _host_port(f"links[{i}].listen", link.listen, "host:port")
        if port in ports:
            raise invalid(f"links[{i}].listen", f"port {port} is also where "
                                                f"links[{ports[port]}] listens")
        ports[port] = i


def _host_port(path: str, text: str, what: str) -> str:
    """The port of ``host:port`` text (1-65535), or a field error at ``path``."""
    match = _HOST_PORT.match(text)
    if match is None or not 1 <= int(match[2]) <= 65535:
        raise invalid(path, f"expected {what} (port 1-65535), got {text!r}")
    return match[2]


def _unique(field: str, key: str | None, names: Sequence[str]) -> None:
    """Each name once; the second use is the error (``nodes[2].name``)."""
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            where = f"{field}[{i}]" + (f".{key}" if key else "")
            raise invalid(where, f"{name!r} is used twice ({field}[{first[name]}] and "
                                 f"{field}[{i}])")
        first[name] = i


def _check_placeholders(path: str, text: str, nodes: Sequence[str],
                        links: Sequence[str]) -> None:
    for kind, arg, token in placeholders(text):
        takes_arg = _KINDS.get(kind)
        if takes_arg is None or takes_arg != (arg is not None):
            close = difflib.get_close_matches(kind, list(_KINDS), n=1, cutoff=0.6)
            hint = ""
            if close:
                hint = f"; did you mean {PLACEHOLDERS[list(_KINDS).index(close[0])]!r}?"
            raise invalid(path, f"unknown placeholder {token!r}{hint} (placeholders: "
                                f"{', '.join(PLACEHOLDERS)})")
        names = {"addr": nodes, "link": links}.get(kind)
        if names is not None and arg not in names:
            what = "node" if kind == "addr" else "link"
            raise invalid(path, f"{token}: " + (
                unknown(what, str(arg), names, listing=f"{what}s") if names else
                f"unknown {what} {arg!r} (stack.{what}s declares none)"))
