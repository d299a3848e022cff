"""The Compose side of the ``docker`` provider: which engine, which project, and ``up``/``down``.

Compose only brings a project up and takes it down; every node verb goes through the Docker SDK
(`drills.stack.docker_nodes`). Both ``docker compose`` and ``docker-compose`` are driven with the
same arguments (``-p PROJECT -f FILE up -d`` / ``down -v``), and both are given an explicit
``DOCKER_HOST`` so that the CLI and the SDK talk to the same engine whatever Docker *context* the
user has selected (a context could otherwise point Compose at another machine).

Safety: `check_docker_host` refuses any engine that is not on this machine (a unix socket, a named
pipe, or TCP to a loopback address) unless the caller allows remote engines explicitly
(``drill run --allow-remote-docker``, threaded as ``$DRILLS_ALLOW_REMOTE_DOCKER``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors

from drills.errors import StackError
from drills.stack.process import tail

#: Set to ``1`` by ``drill ... --allow-remote-docker``: the provider may drive a remote engine.
ALLOW_REMOTE_ENV = "DRILLS_ALLOW_REMOTE_DOCKER"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
#: The label every container of ours carries (``true`` on targets, ``false`` on the proxy);
#: only ``true`` opts a container in to faults (`drills.stack.docker_nodes`).
TARGET_LABEL = "drills.target"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
#: The host-port variable of the Toxiproxy API (published on 127.0.0.1), in every stack.
TOXIPROXY_PORT_VAR = "DRILLS_TOXIPROXY_PORT"
#: What a Compose failure says when a host port chosen free was taken in the meantime.
_PORT_CLASH = ("port is already allocated", "address already in use")


def allow_remote_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``$DRILLS_ALLOW_REMOTE_DOCKER`` is ``1``/``true``/``yes``."""
    value = (os.environ if environ is None else environ).get(ALLOW_REMOTE_ENV, "")
    return value.strip().lower() in ("1", "true", "yes")


def remote_problem(docker_host: str | None) -> str | None:
    """Why ``docker_host`` (a ``DOCKER_HOST`` value; None: the default socket) is not an engine
    on this machine, or None when it is: ``unix://`` and ``npipe://`` are local, ``tcp://``/
    ``http(s)://`` only to a loopback address or ``localhost``; anything else (ssh, other hosts)
    is remote."""
    if not docker_host:
        return None
    parts = urlsplit(docker_host if "://" in docker_host else f"tcp://{docker_host}")
    if parts.scheme in ("unix", "npipe"):
        return None
    if parts.scheme not in ("tcp", "http", "https"):
        return f"DOCKER_HOST={docker_host} is a {parts.scheme}:// engine, not a local one"
    host = parts.hostname or ""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return f"DOCKER_HOST={docker_host} is not on this machine (not a loopback address)"


def check_docker_host(docker_host: str | None, *, allow_remote: bool) -> str:
    """The engine to use (``docker_host``, or the default unix socket when None).

    Raises `StackError` for a remote engine unless ``allow_remote``: drills kill containers, and
    the wrong engine is somebody else's machine.
    """
    problem = remote_problem(docker_host)
    if problem and not allow_remote:
        raise StackError(f"refusing a remote Docker Engine: {problem}; pass "
                         "--allow-remote-docker to drive it anyway")
    return docker_host or DEFAULT_DOCKER_HOST


def engine_environ(docker_host: str) -> dict[str, str]:
    """This process's environment pointed at ``docker_host`` (no Docker context may redirect
    it): what both the SDK and the Compose CLI are given."""
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONTEXT"}
    env["DOCKER_HOST"] = docker_host
    return env


def open_client(docker_host: str, timeout: float = 60.0) -> docker.DockerClient:
    """An SDK client for ``docker_host`` that has answered a ping (`StackError` otherwise)."""
    try:
        client = docker.from_env(environment=engine_environ(docker_host), timeout=int(timeout))
    except docker.errors.DockerException as exc:
        raise StackError(f"no Docker Engine reachable at {docker_host}: {exc}") from exc
    try:
        client.ping()
    except docker.errors.DockerException as exc:
        client.close()
        raise StackError(f"no Docker Engine reachable at {docker_host}: {exc}") from exc
    return client


def project_name(work_dir: Path) -> str:
    """The Compose project of a stack work directory: ``drills-<12 hex of its path>``, so that
    stacks of different runs never share containers, volumes or networks."""
    digest = hashlib.sha256(str(Path(work_dir).resolve()).encode()).hexdigest()[:12]
    return f"drills-{digest}"


def is_port_clash(output: str) -> bool:
    """True when Compose failed because a host port was taken (then retry with other ports)."""
    low = output.lower()
    return any(text in low for text in _PORT_CLASH)


@dataclass(frozen=True, slots=True)
class Compose:
    """One Compose project: the command (``docker compose`` or ``docker-compose``), the file,
    the project name, the engine, and the variables the file is run with (ports, images,
    knobs). Every run appends its output to ``log``."""

    command: tuple[str, ...]
    file: Path
    project: str
    docker_host: str
    env: Mapping[str, str] = field(default_factory=dict)
    log: Path | None = None
    extra: tuple[Path, ...] = ()  # more files merged over ``file`` (the harness's own service)

    def argv(self, *args: str) -> list[str]:
        """The full command line for ``args`` (the same for both Compose flavours)."""
        files = [a for f in (self.file, *self.extra) for a in ("-f", str(f))]
        return [*self.command, "-p", self.project,
                "--project-directory", str(self.file.parent), *files, *args]

    def run(self, *args: str, timeout: float = 300.0) -> str:
        """Run ``compose args``; its output, or `StackError` with the output's tail."""
        argv = self.argv(*args)
        env = {**engine_environ(self.docker_host), **self.env}
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True,
                                  timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StackError(f"{' '.join(argv)}: {exc}") from exc
        output = (done.stdout or "") + (done.stderr or "")
        self._append(argv, output, done.returncode)
        if done.returncode != 0:
            short = "\n".join(output.strip().splitlines()[-20:])
            raise StackError(f"{' '.join(argv[:len(self.command)])} {' '.join(args)} failed "
                             f"(exit {done.returncode}) for project {self.project}",
                             logs=short)
        return output

    def _append(self, argv: Sequence[str], output: str, code: int) -> None:
        if self.log is None:
            return
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a", encoding="utf-8") as out:
            out.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(argv)} (exit {code})\n")
            out.write(output if output.endswith("\n") or not output else output + "\n")

    def up(self) -> None:
        """``up -d``: create what is missing, recreate what changed, start everything."""
        self.run("up", "-d", "--remove-orphans")

    def down(self) -> None:
        """``down -v``: remove the containers of the file's services, the network and the named
        volumes of the project. No ``--remove-orphans``: a container that merely carries the
        project's label (a lookalike the run did not create) is not ours to delete."""
        self.run("down", "-v", "--timeout", "5", timeout=180.0)

    def log_tail(self, lines: int = 30) -> str:
        return tail(str(self.log), lines) if self.log else ""


def sweep_project(client: docker.DockerClient, project: str) -> list[str]:
    """Remove every container of Compose project ``project`` that the harness labelled (it
    carries ``drills.target``, as every service of ours does), then the project's networks and
    volumes (what is left when Compose itself failed or the harness died). A container with the
    project's label but not ours is left alone (and, if it holds the network, reported).
    Returns what could not be removed ([] when the project is gone)."""
    flt = {"label": f"{PROJECT_LABEL}={project}"}
    left: list[str] = []
    # (kind, the SDK's collection of it, extra arguments to its ``list``)
    kinds: tuple[tuple[str, Any, dict[str, bool]], ...] = (
        ("container", client.containers, {"all": True}), ("network", client.networks, {}),
        ("volume", client.volumes, {}))  # fmt: skip
    for kind, collection, extra in kinds:
        try:
            found = collection.list(filters=flt, **extra)
        except docker.errors.DockerException as exc:
            left.append(f"{kind}s: {exc}")
            continue
        for item in found:
            if kind == "container" and TARGET_LABEL not in (item.labels or {}):
                continue  # not created by a run: never ours to remove
            try:
                if kind == "container":
                    item.remove(force=True, v=True)
                else:
                    item.remove()
            except docker.errors.NotFound:
                continue
            except docker.errors.DockerException as exc:
                left.append(f"{kind} {item.name}: {exc}")
    return left


def leftovers(client: docker.DockerClient, project: str) -> list[str]:
    """Names of the containers, networks and volumes of ``project`` that still exist."""
    flt = {"label": f"{PROJECT_LABEL}={project}"}
    try:
        return ([f"container {c.name}" for c in client.containers.list(all=True, filters=flt)]
                + [f"network {n.name}" for n in client.networks.list(filters=flt)]
                + [f"volume {v.name}" for v in client.volumes.list(filters=flt)])
    except docker.errors.DockerException as exc:
        raise StackError(f"cannot list what is left of project {project}: {exc}") from exc
