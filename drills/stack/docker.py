"""The ``docker`` provider: a target's Compose project, its nodes driven by the Docker SDK.

Compose (``docker compose`` or ``docker-compose``) only brings the project up and takes it down;
node verbs act on containers through the SDK (`drills.stack.docker_nodes`) and refuse any
container not labelled ``drills.target=true`` or not of this stack's project. A zone's power-down
SIGKILLs all its containers at once; data in named volumes survives it.

``with DockerStack(work_dir=..., plan=..., topology=...) as stack`` (the plan is the target's
`drills.targets.base.ComposePlan`):

- refuses a Docker Engine not on this machine unless ``allow_remote`` (``--allow-remote-docker``);
- project ``drills-<hash of work_dir>`` (runs never collide), host ports chosen free (the plan's
  port variables and ``DRILLS_TOXIPROXY_PORT``, on 127.0.0.1), the plan's environment (knobs),
  images present or built offline (ours from the installed packages, the plan's Debian images);
  the Toxiproxy image is logged and recorded in ``stack.json``;
- a file with no service labelled ``drills.role=toxiproxy`` gets one (``toxiproxy``, in a
  second file merged over it): services dial ``toxiproxy:<port>`` for a link;
- ``up -d``, then the proxies (the plan's links and the toxiproxy service's ``drills.proxy.*``
  labels) are created through its published API, then every node runs (and is healthy, if it
  has a healthcheck), then the target's readiness;
- a project of this work directory found running is reused as it is and left running on exit;
  otherwise the stack is taken down on exit unless ``keep``;
- ``down``: every container's log to ``logs/<service>.log``, then ``compose down -v`` (the
  volumes belong to the stack, fresh per run: they must not pile up), then whatever still
  carries the project's label is removed.

``stack.json`` records project, engine, ports, images and links, so that `DockerStack.attach`
(``drill rollback``, ``drill stack down|status --dir``) finds the stack again after the harness
that started it is gone.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any

import docker
import docker.errors
import yaml

from drills.errors import DrillsError, StackError
from drills.stack.base import NodeState, Topology
from drills.stack.docker_compose import (
    SERVICE_LABEL,
    TOXIPROXY_PORT_VAR,
    Compose,
    allow_remote_from_env,
    check_docker_host,
    is_port_clash,
    open_client,
    project_name,
    sweep_project,
)
from drills.stack.docker_images import StackImages, ensure_debian_images, resolve_images
from drills.stack.docker_nodes import Nodes, is_running
from drills.stack.images import compose_command, compose_proxies
from drills.stack.local import STATE_FILE
from drills.stack.process import wait_http
from drills.targets.base import ComposePlan
from drills.toxiproxy.client import Link, LinkSpec, ToxiproxyClient, free_port

LOG = logging.getLogger(__name__)
UP_TIMEOUT_S = 180.0
PORT_ATTEMPTS = 3


#: The Toxiproxy service the harness adds to a Compose file that has none (image and port from
#: the environment it is run with).
TOXIPROXY_SERVICE = """\
services:
  toxiproxy:
    image: ${TOXIPROXY_IMAGE}
    command: ["--host=0.0.0.0", "--port=8474"]
    init: true
    restart: "no"
    ports:
      - "127.0.0.1:${DRILLS_TOXIPROXY_PORT}:8474"
    labels:
      drills.role: toxiproxy
      drills.target: "false"
"""


def has_toxiproxy(file: Path) -> bool:
    """The Compose file has a service labelled ``drills.role=toxiproxy``."""
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise StackError(f"cannot read {file}: {exc}") from exc
    for service in (doc.get("services") or {}).values():
        labels = (service or {}).get("labels") or {}
        items = labels.items() if isinstance(labels, dict) else (
            str(x).split("=", 1) for x in labels if "=" in str(x))
        if any(k == "drills.role" and v == "toxiproxy" for k, v in items):
            return True
    return False


def _read_state(work_dir: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((work_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("provider") == "docker" else None


class DockerStack:
    """A target's Compose project (see the module docstring). A context manager.

    ``plan`` is the target's `ComposePlan` and ``topology`` its zones and links; ``ready``
    (optional) waits for the system as a whole; ``images`` defaults to `resolve_images`;
    ``allow_remote`` to ``$DRILLS_ALLOW_REMOTE_DOCKER``. Every failure is a `StackError`
    (Toxiproxy's: `ProxyError`).
    """

    provider = "docker"

    def __init__(self, *, work_dir: Path, plan: ComposePlan | None = None,
                 topology: Topology | None = None,
                 ready: Callable[[DockerStack, float], None] | None = None,
                 keep: bool = False, images: StackImages | None = None,
                 allow_remote: bool | None = None, namespace: str = "drills") -> None:
        self.work_dir = Path(work_dir).resolve()
        self.plan = plan
        self.topology = topology or Topology(zones={}, links=())
        self._ready = ready
        self.config = dict(plan.env) if plan else {}
        self.keep = keep
        self.allow_remote = allow_remote_from_env() if allow_remote is None else allow_remote
        self.compose_file = Path(plan.file).resolve() if plan else None
        self.project = project_name(self.work_dir)
        self.images = images
        self.namespace = namespace
        self.found_up = False  # the project was running before we entered: leave it running
        self._docker_host: str | None = None
        self._client: docker.DockerClient | None = None
        self._compose: Compose | None = None
        self._direct: dict[str, str] = {}
        self._toxiproxy_url: str | None = None
        self._tp: ToxiproxyClient | None = None
        self._links: dict[str, Link] = {}
        self._link_names: tuple[str, ...] = ()
        self._owner = os.getpid()

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> DockerStack:
        try:
            self.up()
        except BaseException as exc:
            try:
                if not self.found_up and self._compose is not None:  # else nothing was made
                    self.down()
            except DrillsError as cleanup:
                exc.add_note(f"and the stack could not be removed: {cleanup}")
            finally:
                self.close()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if not self.keep and not self.found_up:
                self.down()
        finally:
            self.close()

    def up(self, timeout: float = UP_TIMEOUT_S) -> None:
        """Bring the project up, or find it running as an earlier run left it (same knobs: it
        is used as it is, not recreated); create every link; wait until healthy."""
        deadline = time.monotonic() + timeout
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._docker_host = check_docker_host(os.environ.get("DOCKER_HOST"),
                                              allow_remote=self.allow_remote)
        nodes = self._nodes()
        self.found_up = all(nodes.status(n) == "running" for n in self.topology.nodes)
        prior = _read_state(self.work_dir) if self.found_up else None
        if prior and prior.get("config") == self.config and prior.get("images") \
                and prior.get("compose_file"):
            self.images = StackImages(**prior["images"])
            self._compose = self._compose_from(prior)
            self._note("found the stack running with the same knobs: using it as it is")
        else:
            self._compose_up(ports=dict(prior["ports"]) if prior and prior.get("ports") else None)
        self._discover()
        self._create_links(timeout=max(5.0, deadline - time.monotonic()))
        self._save()
        self.wait_healthy(timeout=max(5.0, deadline - time.monotonic()))

    def _port_vars(self) -> tuple[str, ...]:
        declared = tuple(self.plan.ports) if self.plan else ()
        return declared + ((TOXIPROXY_PORT_VAR,) if TOXIPROXY_PORT_VAR not in declared else ())

    def _compose_up(self, ports: dict[str, str] | None) -> None:
        """``compose up -d`` with free host ports (chosen again if one was taken meanwhile)."""
        if self.plan is None or self.compose_file is None:
            raise StackError("a stack found again with attach cannot be started anew")
        if self.images is None:
            self.images = resolve_images(self._docker(), namespace=self.namespace,
                                         app=self.plan.needs_app_image, log=self._note)
        ensure_debian_images(self._docker(), self.plan.images, namespace=self.namespace,
                             log=self._note)
        self._note(f"toxiproxy image: {self.images.toxiproxy} ({self.images.toxiproxy_reason})")
        file = self.compose_file
        extra: tuple[Path, ...] = ()
        if not has_toxiproxy(file):
            extra = (self.work_dir / "toxiproxy.compose.yml",)
            extra[0].write_text(TOXIPROXY_SERVICE, encoding="utf-8")
        command = compose_command()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            ports = ports or {var: str(free_port()) for var in self._port_vars()}
            env = {**ports, **self.images.compose_env(), **self.plan.env}
            self._compose = Compose(command=command, file=file, project=self.project,
                                    docker_host=str(self._docker_host), env=env,
                                    log=self.work_dir / "logs" / "compose.log", extra=extra)
            self._save()  # before anything starts: `drill stack down` can always find it
            try:
                self._compose.up()
                return
            except StackError as exc:
                if attempt == PORT_ATTEMPTS or self.found_up or not is_port_clash(str(exc)):
                    raise
                ports = None  # a port chosen free was taken meanwhile: choose again

    def _compose_from(self, state: Mapping[str, Any]) -> Compose:
        """The Compose project as ``stack.json`` recorded it."""
        return Compose(command=tuple(state["compose_command"]), file=Path(state["compose_file"]),
                       project=self.project, docker_host=str(self._docker_host),
                       env=dict(state.get("env") or {}),
                       log=self.work_dir / "logs" / "compose.log",
                       extra=tuple(Path(f) for f in state.get("compose_extra") or ()))

    def _discover(self) -> None:
        """Every topology node's container (labels checked, zone as the topology says) and
        published address, and the Toxiproxy API's."""
        nodes = self._nodes()
        for node in self.topology.nodes:
            if nodes.find(node) is None:
                raise StackError(f"{self._compose_file()} started no container for node {node}")
            zone, expected = nodes.zone(node), self.topology.zone_of(node)
            if zone != expected:
                raise StackError(f"container of {node} is labelled drills.zone={zone!r}; "
                                 f"expected {expected!r}")
            published = nodes.published_ports(node)
            if len(published) == 1:
                self._direct[node] = published[0]
        proxy = nodes.by_role("toxiproxy")
        self._toxiproxy_url = f"http://{nodes.published(proxy.labels[SERVICE_LABEL])}"

    def _create_links(self, timeout: float) -> None:
        """Create the proxies the toxiproxy service's labels declare (idempotent: /populate)."""
        nodes = self._nodes()
        proxy = nodes.by_role("toxiproxy")
        declared = [LinkSpec(name=p.link, upstream=p.upstream, listen=p.listen)
                    for p in compose_proxies(proxy.labels)]
        declared += [LinkSpec(name=lk.name, upstream=lk.upstream, listen=lk.listen or "")
                     for lk in (self.plan.links if self.plan else ())]
        missing = set(self.topology.links) - {p.name for p in declared}
        if missing:
            raise StackError(f"no proxy is declared for link(s) {sorted(missing)}")
        service = proxy.labels[SERVICE_LABEL]
        wait_http(f"{self._toxiproxy_url}/version", timeout=timeout, interval=0.25,
                  alive=lambda: is_running(proxy), logs=lambda: nodes.logs(service))
        tp = self._toxiproxy()
        if declared:
            tp.populate(declared)
        self._link_names = tuple(sorted(p.name for p in declared))
        self._links = {name: tp.link(name) for name in self._link_names}

    def down(self) -> None:
        """Remove the project: keep every container's log in ``logs/<service>.log``, then
        ``compose down -v``, then anything left with its label."""
        problem = None
        try:
            self._nodes().save_logs(self.work_dir / "logs")
        except StackError as exc:  # diagnosis only: never stands in the way of removal
            self._note(f"container logs not saved: {exc}")
        if self._compose is not None:
            try:
                self._compose.down()
            except StackError as exc:
                problem = exc  # the sweep below removes what Compose could not
        left = sweep_project(self._docker(), self.project)
        if self._tp is not None:
            self._tp.close()
        self._tp, self._links = None, {}
        self._save(up=False)
        if left:
            raise StackError(f"could not remove all of project {self.project}: "
                             + "; ".join(left)) from problem

    def close(self) -> None:
        """Release the clients (the containers are not touched); idempotent."""
        if self._tp is not None:
            self._tp.close()
            self._tp = None
        self._links = {}
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- engine and state ----------------------------------------------------------------------
    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            if self._docker_host is None:
                self._docker_host = check_docker_host(os.environ.get("DOCKER_HOST"),
                                                      allow_remote=self.allow_remote)
            self._client = open_client(self._docker_host)
        return self._client

    def _nodes(self) -> Nodes:
        return Nodes(self._docker(), self.project)

    def _toxiproxy(self) -> ToxiproxyClient:
        if self._tp is None:
            if not self._toxiproxy_url:
                raise StackError("the stack has no Toxiproxy address (it never came up)")
            self._tp = ToxiproxyClient.connect(self._toxiproxy_url)
        return self._tp

    def _compose_file(self) -> Path:
        return self._compose.file if self._compose else Path("docker-compose.yml")

    def _note(self, line: str) -> None:
        """Log ``line`` and append it to the stack's log (``logs/stack.log``)."""
        LOG.info("%s: %s", self.project, line)
        path = self.work_dir / "logs" / "stack.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    def _save(self, *, up: bool = True) -> None:
        compose = self._compose
        env = dict(compose.env) if compose else {}
        state = {
            "provider": self.provider, "owner_pid": self._owner,
            "keep": self.keep or self.found_up, "found_up": self.found_up, "up": up,
            "project": self.project, "docker_host": self._docker_host,
            "allow_remote": self.allow_remote,
            "compose_command": list(compose.command) if compose else None,
            "compose_file": str(compose.file) if compose else None,
            "compose_extra": [str(f) for f in compose.extra] if compose else [],
            "zones": {z: list(ns) for z, ns in self.topology.zones.items()},
            "ports": {k: v for k, v in env.items() if k in self._port_vars()},
            "env": env, "config": self.config,
            "images": asdict(self.images) if self.images else None,
            "direct": self._direct, "toxiproxy_url": self._toxiproxy_url,
            "links": list(self._link_names),
        }
        tmp = self.work_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.work_dir / STATE_FILE)

    @classmethod
    def attach(cls, work_dir: Path) -> DockerStack:
        """Find a stack again from its ``stack.json`` (the harness that started it may be dead).
        Touches nothing until a verb is called; `StackError` if there is no docker state."""
        path = Path(work_dir) / STATE_FILE
        state = _read_state(Path(work_dir))
        if state is None:
            raise StackError(f"{path}: no readable docker stack state")
        images = state.get("images")
        stack = cls(work_dir=Path(work_dir), keep=bool(state.get("keep")),
                    images=StackImages(**images) if images else None,
                    allow_remote=bool(state.get("allow_remote")) or allow_remote_from_env())
        stack.project = str(state["project"])  # as recorded, even if the directory moved
        stack._docker_host = check_docker_host(state.get("docker_host"),
                                               allow_remote=stack.allow_remote)
        if state.get("compose_command") and state.get("compose_file"):
            stack._compose = stack._compose_from(state)
        stack.config = dict(state.get("config") or {})
        stack.topology = Topology(
            zones={z: tuple(ns) for z, ns in (state.get("zones") or {}).items()},
            links=tuple(state.get("links") or ()))
        stack._direct = dict(state.get("direct") or {})
        stack._toxiproxy_url = state.get("toxiproxy_url")
        stack._link_names = tuple(state.get("links") or ())
        stack._owner = int(state.get("owner_pid") or 0)
        return stack

    # -- the Stack protocol --------------------------------------------------------------------
    def address(self, endpoint: str) -> str:
        """A node's one published port, or ``service:port``: that container port where it is
        published on loopback, else the container's address on its network (Linux engines
        route the host to container networks)."""
        if ":" not in endpoint:
            return self._address(endpoint)
        service, _, port = endpoint.rpartition(":")
        return self._nodes().address(service, int(port))

    @property
    def toxiproxy_url(self) -> str | None:
        return self._toxiproxy_url

    def _address(self, node: str) -> str:
        if node not in self._direct:
            raise StackError(f"node {node} has no known address (the stack is not up)")
        return self._direct[node]

    def _check(self, nodes: Sequence[str]) -> None:
        for node in nodes:
            if node not in self.topology.nodes:
                raise StackError(f"unknown node {node!r}; nodes: {', '.join(self.topology.nodes)}")

    def kill(self, nodes: Sequence[str]) -> Mapping[str, float]:
        """SIGKILL every node's container at once (no graceful stop); when each was seen dead."""
        self._check(nodes)
        return self._nodes().kill(nodes)

    def start(self, nodes: Sequence[str]) -> Mapping[str, float]:
        self._check(nodes)
        return self._nodes().start(nodes)

    def pause(self, node: str) -> float:
        self._check([node])
        return self._nodes().pause(node)

    def resume(self, node: str) -> float:
        self._check([node])
        return self._nodes().resume(node)

    def status(self, node: str) -> NodeState:
        self._check([node])
        return self._nodes().status(node)

    def link(self, name: str) -> Link:
        if name not in self._link_names:
            raise StackError(f"unknown link {name!r}; links: {', '.join(self._link_names)}")
        if name not in self._links:
            self._links[name] = self._toxiproxy().link(name)
        return self._links[name]

    def logs(self, node: str, lines: int = 40) -> str:
        self._check([node])
        return self._nodes().logs(node, lines)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every node's container runs (and is healthy, if it has a healthcheck), then the
        target's readiness (if given)."""
        deadline = time.monotonic() + timeout
        nodes = self._nodes()
        for node in self.topology.nodes:
            nodes.wait_healthy(node, timeout=max(1.0, deadline - time.monotonic()))
        if self._ready is not None:
            self._ready(self, max(1.0, deadline - time.monotonic()))
