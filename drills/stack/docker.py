"""The ``docker`` provider: ClipStream as a Compose project, its nodes driven by the Docker SDK.

Compose (``docker compose`` or ``docker-compose``) only brings the project up and takes it down;
node verbs act on containers through the SDK (`drills.stack.docker_nodes`) and refuse any
container not labelled ``drills.target=true`` or not of this stack's project. A zone's power-down
SIGKILLs all its containers at once; store data lives in named volumes, which survive it.

``with DockerStack(work_dir=..., config=...) as stack`` (or `DockerStack.for_spec`):

- refuses a Docker Engine not on this machine unless ``allow_remote`` (``--allow-remote-docker``);
- project ``drills-<hash of work_dir>`` (runs never collide), host ports chosen free
  (``DRILLS_*_PORT``, on 127.0.0.1), knobs as ``CLIPSTREAM_*``, images as `resolve_images` finds
  or builds them; the Toxiproxy image is logged and recorded in ``stack.json``;
- ``up -d`` (Compose waits for Toxiproxy's healthcheck), then the proxies declared by the
  toxiproxy service's ``drills.proxy.*`` labels are created through its published API, then
  every node answers ``/healthz`` and the api knows a primary;
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
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any

import docker
import docker.errors
import httpx

from drills.errors import DrillsError, StackError
from drills.spec import DrillSpec
from drills.stack import clipstream
from drills.stack.base import NodeState, Topology
from drills.stack.docker_compose import (
    PORT_VARS,
    SERVICE_LABEL,
    Compose,
    allow_remote_from_env,
    check_docker_host,
    is_port_clash,
    open_client,
    project_name,
    sweep_project,
)
from drills.stack.docker_images import StackImages, resolve_images
from drills.stack.docker_nodes import Nodes, is_running
from drills.stack.images import compose_command, compose_proxies, default_project_root
from drills.stack.local import STATE_FILE
from drills.stack.process import wait_http
from drills.toxiproxy.client import Link, LinkSpec, ToxiproxyClient, free_port

LOG = logging.getLogger(__name__)
UP_TIMEOUT_S = 180.0
PORT_ATTEMPTS = 3


def _knows_primary(resp: httpx.Response) -> bool:
    """The api's ``/healthz`` is 200 and names a primary."""
    try:
        return resp.status_code == 200 and bool(resp.json().get("primary"))
    except ValueError:
        return False


def _read_state(work_dir: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((work_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("provider") == "docker" else None


class DockerStack:
    """ClipStream as a Compose project (see the module docstring). A context manager.

    ``config`` is the drill's ``stack.config``; ``compose_file`` defaults to the project's
    ``docker-compose.yml``; ``images`` to `resolve_images`; ``allow_remote`` to
    ``$DRILLS_ALLOW_REMOTE_DOCKER``. Every failure is a `StackError` (Toxiproxy's: `ProxyError`).
    """

    provider = "docker"
    topology: Topology = clipstream.TOPOLOGY

    def __init__(self, *, work_dir: Path, config: Mapping[str, object] | None = None,
                 keep: bool = False, compose_file: Path | None = None,
                 images: StackImages | None = None, allow_remote: bool | None = None,
                 namespace: str = "drills") -> None:
        self.work_dir = Path(work_dir).resolve()
        self.config = dict(config or {})
        self.keep = keep
        self.allow_remote = allow_remote_from_env() if allow_remote is None else allow_remote
        self.compose_file = Path(compose_file).resolve() if compose_file else None
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

    @classmethod
    def for_spec(cls, spec: DrillSpec, *, work_dir: Path, keep: bool) -> DockerStack:
        """The stack a drill file describes (its knobs and, if given, its Compose file)."""
        config = spec.stack.config.model_dump(exclude_none=True)
        compose = Path(spec.stack.compose) if spec.stack.compose else None
        return cls(work_dir=work_dir, config=config, keep=keep, compose_file=compose)

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

    def _compose_up(self, ports: dict[str, str] | None) -> None:
        """``compose up -d`` with free host ports (chosen again if one was taken meanwhile)."""
        if self.images is None:
            self.images = resolve_images(self._docker(), namespace=self.namespace,
                                         log=self._note)
        self._note(f"toxiproxy image: {self.images.toxiproxy} ({self.images.toxiproxy_reason})")
        file = self.compose_file or default_project_root() / "docker-compose.yml"
        command = compose_command()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            ports = ports or {var: str(free_port()) for var in PORT_VARS.values()}
            env = {**ports, **self.images.compose_env(), **clipstream.knob_env(self.config)}
            self._compose = Compose(command=command, file=file, project=self.project,
                                    docker_host=str(self._docker_host), env=env,
                                    log=self.work_dir / "logs" / "compose.log")
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
                       log=self.work_dir / "logs" / "compose.log")

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
            self._direct[node] = nodes.published(node)
        proxy = nodes.by_role("toxiproxy")
        self._toxiproxy_url = f"http://{nodes.published(proxy.labels[SERVICE_LABEL])}"

    def _create_links(self, timeout: float) -> None:
        """Create the proxies the toxiproxy service's labels declare (idempotent: /populate)."""
        nodes = self._nodes()
        proxy = nodes.by_role("toxiproxy")
        declared = compose_proxies(proxy.labels)
        missing = set(self.topology.links) - {p.link for p in declared}
        if missing:
            raise StackError(f"the toxiproxy service declares no proxy for {sorted(missing)}")
        service = proxy.labels[SERVICE_LABEL]
        wait_http(f"{self._toxiproxy_url}/version", timeout=timeout, interval=0.25,
                  alive=lambda: is_running(proxy), logs=lambda: nodes.logs(service))
        tp = self._toxiproxy()
        tp.populate([LinkSpec(name=p.link, upstream=p.upstream, listen=p.listen)
                     for p in declared])
        self._link_names = tuple(sorted(p.link for p in declared))
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
            "ports": {k: v for k, v in env.items() if k in PORT_VARS.values()},
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
        stack = cls(work_dir=Path(work_dir), config=state.get("config") or {},
                    keep=bool(state.get("keep")),
                    images=StackImages(**images) if images else None,
                    allow_remote=bool(state.get("allow_remote")) or allow_remote_from_env())
        stack.project = str(state["project"])  # as recorded, even if the directory moved
        stack._docker_host = check_docker_host(state.get("docker_host"),
                                               allow_remote=stack.allow_remote)
        if state.get("compose_command") and state.get("compose_file"):
            stack._compose = stack._compose_from(state)
        stack._direct = dict(state.get("direct") or {})
        stack._toxiproxy_url = state.get("toxiproxy_url")
        stack._link_names = tuple(state.get("links") or ())
        stack._owner = int(state.get("owner_pid") or 0)
        return stack

    # -- the Stack protocol --------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://{self._address('api')}"

    @property
    def store_urls(self) -> Mapping[str, str]:
        return {n: f"http://{self._address(n)}" for n in clipstream.STORES}

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
        """Every node answers its health check, and the api knows a primary."""
        deadline = time.monotonic() + timeout
        nodes = self._nodes()
        for node in self.topology.nodes:
            wait_http(f"http://{self._address(node)}/healthz",
                      timeout=max(1.0, deadline - time.monotonic()), interval=0.25,
                      alive=lambda n=node: nodes.status(n) != "stopped",  # type: ignore[misc]
                      logs=lambda n=node: nodes.logs(n))  # type: ignore[misc]
        wait_http(f"{self.api_url}/healthz", timeout=max(1.0, deadline - time.monotonic()),
                  interval=0.25, ok=_knows_primary,
                  logs=lambda: nodes.logs("api"))
