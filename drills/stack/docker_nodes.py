"""The nodes of the ``docker`` provider: a Compose project's containers, found by their labels,
and the node verbs on them through the Docker SDK.

A node is the container of Compose service ``<node>`` in project ``<project>`` (labels
``com.docker.compose.project`` / ``com.docker.compose.service``). Before any verb acts, every
container it would touch must carry ``drills.target=true`` and belong to the project
(`target_problem`); one that does not makes the whole verb refuse with `StackError`, before any
container is touched. ``kill`` sends SIGKILL to every container at once (one thread each, released
together) and returns, per node, when the engine saw it stop (``State.FinishedAt``, bounded by
when the kill was sent and when it was seen). Docker SDK errors become `StackError` here.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import docker
import docker.errors
import requests
from docker.models.containers import Container

from drills.errors import StackError
from drills.stack.base import NodeState
from drills.stack.docker_compose import PROJECT_LABEL, SERVICE_LABEL, TARGET_LABEL

ZONE_LABEL = "drills.zone"
ROLE_LABEL = "drills.role"
KILL_WAIT_S = 20.0
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")
_FOREIGN = (docker.errors.DockerException, requests.RequestException)
T = TypeVar("T")


def target_problem(labels: Mapping[str, str], *, project: str, node: str) -> str | None:
    """Why the container with ``labels`` must not be touched as node ``node`` of ``project``,
    or None when it may: it must belong to the project and service and carry
    ``drills.target=true``."""
    if labels.get(PROJECT_LABEL) != project:
        return f"it belongs to Compose project {labels.get(PROJECT_LABEL)!r}, not {project!r}"
    if labels.get(SERVICE_LABEL) != node:
        return f"it is service {labels.get(SERVICE_LABEL)!r}, not {node!r}"
    if labels.get(TARGET_LABEL) != "true":
        return (f"it is not labelled {TARGET_LABEL}=true "
                f"({TARGET_LABEL}={labels.get(TARGET_LABEL)!r}): drills never touch it")
    return None


def node_state(status: str) -> NodeState:
    """A container's ``status`` as a node state (``created``/``exited``/``dead``: stopped)."""
    if status in ("running", "restarting"):
        return "running"
    return "paused" if status == "paused" else "stopped"


def parse_docker_time(text: str | None) -> float | None:
    """Docker's RFC 3339 time with nanoseconds (``State.FinishedAt``) as Unix seconds; None for
    Docker's zero time (``0001-01-01T00:00:00Z``: never) or anything unparsable."""
    match = _TIME.match(text or "")
    if not match or match.group(1).startswith("0001-"):
        return None
    whole, frac, zone = match.groups()
    stamp = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return stamp.timestamp() + (float(f"0.{frac}") if frac else 0.0)


def effective_stop(sent: float, seen: float, finished: float | None) -> float:
    """When a killed container stopped: the engine's ``FinishedAt`` if it lies between the kill
    and the moment it was seen stopped (one clock: a local engine), else when it was seen."""
    if finished is not None and sent - 1.0 <= finished <= seen:
        return finished
    return seen


def is_running(container: Container) -> bool:
    """True while ``container`` runs (False once it stopped or vanished)."""
    try:
        container.reload()
    except _FOREIGN:
        return False
    return container.status == "running"


def _guard(what: str, call: Callable[[], T]) -> T:
    """Run an SDK call, translating its errors into `StackError` naming ``what``."""
    try:
        return call()
    except _FOREIGN as exc:
        raise StackError(f"{what}: {exc}") from exc


def _kill_one(container: Container, start: threading.Barrier) -> float:
    """SIGKILL one container once every thread is ready; when it was seen stopped."""
    with contextlib.suppress(threading.BrokenBarrierError):  # a slow thread: kill anyway
        start.wait(timeout=30)
    sent = time.time()
    try:
        container.kill(signal="SIGKILL")
    except docker.errors.APIError as exc:
        container.reload()
        if exc.status_code == 409 and node_state(container.status) == "stopped":
            return time.time()  # it was not running: killing it again is a no-op
        raise
    container.wait(condition="not-running", timeout=KILL_WAIT_S)
    seen = time.time()
    container.reload()
    if node_state(container.status) != "stopped":
        raise StackError(f"{container.name} is still {container.status} after SIGKILL")
    return effective_stop(sent, seen, parse_docker_time(container.attrs["State"]["FinishedAt"]))


def _start_one(container: Container) -> float:
    container.reload()
    state = node_state(container.status)
    if state == "stopped":
        container.start()
    elif state == "paused":
        container.unpause()
    return time.time()


class Nodes:
    """The containers of Compose project ``project`` on one engine, by node (service) name."""

    def __init__(self, client: docker.DockerClient, project: str) -> None:
        self.client = client
        self.project = project

    def _find(self, node: str) -> list[Container]:
        labels = [f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={node}"]
        return _guard(f"cannot list the containers of {node}",
                      lambda: self.client.containers.list(all=True, filters={"label": labels}))

    def find(self, node: str) -> Container | None:
        """The container of ``node`` (None if there is none), after checking every container of
        that service has opted in; `StackError` if one has not, or if there are several."""
        found = self._find(node)
        for container in found:
            problem = target_problem(container.labels, project=self.project, node=node)
            if problem:
                raise StackError(f"refusing to touch container {container.name} as node "
                                 f"{node}: {problem}")
        if len(found) > 1:
            names = ", ".join(sorted(c.name for c in found))
            raise StackError(f"node {node} has {len(found)} containers ({names}): refusing")
        return found[0] if found else None

    def targets(self, nodes: Sequence[str]) -> dict[str, Container]:
        """The container of every node, all checked before any is touched (`StackError` if one
        is missing or may not be touched)."""
        out: dict[str, Container] = {}
        for node in nodes:
            container = self.find(node)
            if container is None:
                raise StackError(f"node {node} has no container in project {self.project} "
                                 "(is the stack up?)")
            out[node] = container
        return out

    def _each(self, what: str, work: Callable[[Container], float],
              targets: Mapping[str, Container]) -> dict[str, float]:
        """``work`` on every container concurrently (one thread each); time per node."""
        if not targets:
            return {}
        with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix=what) as pool:
            futures = {n: pool.submit(_guard, f"cannot {what} {n}", lambda c=c: work(c))
                       for n, c in targets.items()}
            return {n: f.result() for n, f in futures.items()}

    def kill(self, nodes: Sequence[str]) -> dict[str, float]:
        """SIGKILL every node's container at once; when each was seen stopped."""
        targets = self.targets(nodes)
        start = threading.Barrier(len(targets)) if targets else None
        return self._each("kill", lambda c: _kill_one(c, start), targets)  # type: ignore[arg-type]

    def start(self, nodes: Sequence[str]) -> dict[str, float]:
        """Start every stopped container (unpause a paused one); when each was started."""
        return self._each("start", _start_one, self.targets(nodes))

    def pause(self, node: str) -> float:
        container = self.targets([node])[node]
        if self.status(node) == "running":
            _guard(f"cannot pause {node}", container.pause)
        return time.time()

    def resume(self, node: str) -> float:
        container = self.targets([node])[node]
        if self.status(node) == "paused":
            _guard(f"cannot resume {node}", container.unpause)
        return time.time()

    def status(self, node: str) -> NodeState:
        """running, paused or stopped (also when the container does not exist)."""
        container = self.find(node)
        if container is None:
            return "stopped"
        _guard(f"cannot inspect {node}", container.reload)
        return node_state(container.status)

    def logs(self, node: str, lines: int = 40) -> str:
        """The last ``lines`` lines the node's container wrote ('' without a container)."""
        found = self._find(node)
        if not found:
            return ""
        out = _guard(f"cannot read the logs of {node}", lambda: found[0].logs(tail=lines))
        return bytes(out).decode(errors="replace")

    def save_logs(self, directory: Path) -> list[Path]:
        """Write everything each container of the project logged, with the engine's
        timestamps, to ``directory/<service>.log`` (the logs go with the containers on
        ``down``). Reads only: works on any container of the project, opted in or not."""
        labels = [f"{PROJECT_LABEL}={self.project}"]
        found = _guard("cannot list the project's containers",
                       lambda: self.client.containers.list(all=True, filters={"label": labels}))
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for container in found:
            service = container.labels.get(SERVICE_LABEL) or container.name
            out = _guard(f"cannot read the logs of {service}",
                         lambda c=container: c.logs(timestamps=True))  # type: ignore[misc]
            path = directory / f"{service}.log"
            path.write_bytes(bytes(out))
            written.append(path)
        return written

    def published(self, node: str) -> str:
        """``127.0.0.1:<port>``: the one port ``node`` publishes, fixed and on loopback
        (`StackError` otherwise: a port that moves on restart would lose the node mid-drill)."""
        found = self._find(node)
        if not found:
            raise StackError(f"node {node} has no container in project {self.project}")
        bindings = found[0].attrs.get("HostConfig", {}).get("PortBindings") or {}
        pairs = [(port, b) for port, bs in sorted(bindings.items()) for b in bs or ()]
        if len(pairs) != 1:
            raise StackError(f"{node} must publish exactly one port (found {bindings})")
        port, binding = pairs[0]
        host_ip, host_port = binding.get("HostIp") or "", binding.get("HostPort") or ""
        if host_ip not in ("127.0.0.1", "::1") or not host_port:
            raise StackError(f"{node} publishes {port} on {host_ip or '0.0.0.0'}:"
                             f"{host_port or '<random>'}; publish a fixed port on 127.0.0.1")
        return f"{'[::1]' if host_ip == '::1' else host_ip}:{host_port}"

    def published_ports(self, node: str) -> list[str]:
        """Every ``127.0.0.1:<port>`` (or ``[::1]``) ``node`` publishes with a fixed port."""
        found = self._find(node)
        if not found:
            return []
        bindings = found[0].attrs.get("HostConfig", {}).get("PortBindings") or {}
        out = []
        for _port, binds in sorted(bindings.items()):
            for b in binds or ():
                host_ip, host_port = b.get("HostIp") or "", b.get("HostPort") or ""
                if host_ip in ("127.0.0.1", "::1") and host_port:
                    out.append(f"{'[::1]' if host_ip == '::1' else host_ip}:{host_port}")
        return out

    def address(self, service: str, port: int) -> str:
        """Where the harness reaches ``service``'s container port ``port``: its loopback
        binding if published, else the container's IP on its (first) network."""
        found = self._find(service)
        if not found:
            raise StackError(f"service {service} has no container in project {self.project}")
        container = found[0]
        _guard(f"cannot inspect {service}", container.reload)
        for b in (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(
                f"{port}/tcp") or ():
            if b.get("HostIp") in ("127.0.0.1", "::1") and b.get("HostPort"):
                return f"{b['HostIp'] if b['HostIp'] == '127.0.0.1' else '[::1]'}:{b['HostPort']}"
        networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
        for net in networks.values():
            if net.get("IPAddress"):
                return f"{net['IPAddress']}:{port}"
        raise StackError(f"service {service} has no address on any network (is it running?)")

    def wait_healthy(self, node: str, *, timeout: float, interval: float = 0.25) -> None:
        """Until ``node``'s container runs and, if it has a healthcheck, reports healthy;
        `StackError` with its log tail when it stopped or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while True:
            container = self.find(node)
            if container is None:
                raise StackError(f"node {node} has no container in project {self.project}")
            _guard(f"cannot inspect {node}", container.reload)
            state = container.attrs.get("State", {})
            health = (state.get("Health") or {}).get("Status")
            if state.get("Running") and health in (None, "healthy"):
                return
            if not state.get("Running") and state.get("Status") in ("exited", "dead"):
                raise StackError(f"node {node} exited (code {state.get('ExitCode')})",
                                 logs=self.logs(node))
            if time.monotonic() >= deadline:
                raise StackError(f"node {node} not healthy after {timeout:.0f} s "
                                 f"(health: {health})", logs=self.logs(node))
            time.sleep(interval)

    def zone(self, node: str) -> str | None:
        """The ``drills.zone`` label of ``node``'s container (None without container or label)."""
        found = self._find(node)
        return found[0].labels.get(ZONE_LABEL) if found else None

    def by_role(self, role: str) -> Container:
        """The one container of the project labelled ``drills.role=<role>`` (the toxiproxy)."""
        labels = [f"{PROJECT_LABEL}={self.project}", f"{ROLE_LABEL}={role}"]
        found = _guard(f"cannot list the {role} container",
                       lambda: self.client.containers.list(all=True, filters={"label": labels}))
        if len(found) != 1:
            raise StackError(f"project {self.project} has {len(found)} containers labelled "
                             f"{ROLE_LABEL}={role}; expected one")
        return found[0]
