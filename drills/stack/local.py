"""The ``local`` provider: every node a child process in its own process group, every link a
proxy on a Toxiproxy server (ours, started here, unless ``TOXIPROXY_URL`` names one).

What runs is the target's `drills.targets.base.LocalPlan`: each node's command with its
placeholders filled in (`render`: ``{port}``, ``{addr:NODE}``, ``{link:NAME}``, ``{data_dir}``,
``{work_dir}``), each link a proxy to its upstream node. ``kill`` is SIGKILL to the node's
process group (what a power cut does to a process: no goodbye, un-fsync'd data gone); ``start``
runs the same command again with the same data directory. The stack writes ``stack.json`` into
its work directory (pids and full launch specs) so that ``drill rollback`` and ``drill stack
down`` can act on it after the harness process is gone (`LocalStack.attach`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from drills.errors import ProxyError, StackError
from drills.stack.base import NodeState, Topology
from drills.stack.process import (
    LABEL_ENV,
    ProcessSpec,
    proc_state,
    signal_group,
    spawn,
    stop_group,
    sweep,
    tail,
    wait_dead,
    wait_http,
)
from drills.targets.base import LocalPlan
from drills.toxiproxy.client import Link, ToxiproxyClient, free_port
from drills.toxiproxy.embedded import reserved_ports
from drills.toxiproxy.lease import LeaseKeeper

STATE_FILE = "stack.json"
#: Links are healed by our Toxiproxy this long after the harness stops renewing its lease.
LEASE_TTL_S = 5.0
TOXIPROXY = "toxiproxy"


_PLACEHOLDER = re.compile(r"\{(port|data_dir|work_dir|python|addr:[^{}]+|link:[^{}]+)\}")


def render(text: str, *, node: str, direct: Mapping[str, str], via: Mapping[str, str],
           data_dir: str, work_dir: str) -> str:
    """``text`` with its placeholders filled in for ``node`` (see `drills.targets.base.LocalNode`);
    `StackError` for a node or link that does not exist (the drill file's validation refuses
    those first)."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "port":
            return direct[node].rsplit(":", 1)[1]
        if key == "data_dir":
            return data_dir
        if key == "work_dir":
            return work_dir
        if key == "python":
            return sys.executable
        kind, _, name = key.partition(":")
        table = direct if kind == "addr" else via
        if name not in table:
            what = "node" if kind == "addr" else "link"
            raise StackError(f"node {node}: {{{key}}} names no {what} (known: {', '.join(table)})")
        return table[name]

    return _PLACEHOLDER.sub(fill, text)


class LocalStack:
    """A target's local processes. Use as a context manager: ``with LocalStack(...) as s:``.

    ``plan`` is what to run (`drills.targets.base.LocalPlan`) and ``topology`` its zones and
    links; ``ready`` (optional) waits for the system as a whole once every node's own probe
    passed. ``work_dir`` receives data directories, node logs and ``stack.json``. With
    ``keep=True`` the processes outlive the context (``drill run --keep``, ``drill stack up``);
    `LocalStack.attach` finds them again (it needs neither plan nor target).
    """

    provider = "local"

    def __init__(
        self,
        *,
        work_dir: Path,
        plan: LocalPlan | None = None,
        topology: Topology | None = None,
        ready: Callable[[LocalStack, float], None] | None = None,
        toxiproxy_url: str | None = None,
        keep: bool = False,
    ) -> None:
        self.work_dir = Path(work_dir).resolve()
        self.plan = plan
        self.topology = topology or Topology(zones={}, links=())
        self._ready = ready
        self.keep = keep
        self._toxiproxy_url = toxiproxy_url or os.environ.get("TOXIPROXY_URL")
        self._specs: dict[str, ProcessSpec] = {}
        self._pids: dict[str, int] = {}
        self._direct: dict[str, str] = {}
        self._tp: ToxiproxyClient | None = None
        self._links: dict[str, Link] = {}
        self._proxy_error: str | None = None
        self._owner = os.getpid()
        self._external = False  # links live on a Toxiproxy we did not start
        self._lease: LeaseKeeper | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.keep:
            self.down()

    def up(self, timeout: float = 30.0) -> None:
        """Start the proxy server, create every link, start every node, wait until healthy."""
        if self.plan is None:
            raise StackError("a stack found again with attach cannot be started anew")
        plan = self.plan
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._start_toxiproxy()
        assert self._tp is not None
        via = {}
        names = [n.name for n in plan.nodes]
        with reserved_ports(len(names)) as ports:  # no proxy may get one
            self._direct = {n: f"127.0.0.1:{p}" for n, p in zip(names, ports, strict=True)}
            for decl in plan.links:
                if decl.upstream not in self._direct:
                    raise StackError(f"link {decl.name}: upstream {decl.upstream!r} is no node")
                link = self._tp.create_link(decl.name, upstream=self._direct[decl.upstream],
                                            listen=decl.listen or "127.0.0.1:0")
                self._links[decl.name] = link
                via[decl.name] = link.listen
        self._lease = self._hold_lease()
        for node in plan.nodes:
            data = self.work_dir / "data" / node.name
            data.mkdir(parents=True, exist_ok=True)

            def fill(text: str, node: str = node.name, data: Path = data) -> str:
                return render(text, node=node, direct=self._direct, via=via,
                              data_dir=str(data), work_dir=str(self.work_dir))

            env = {**plan.env, **{k: fill(v) for k, v in node.env.items()},
                   LABEL_ENV: str(self.work_dir)}
            probe = (f"http://{self._direct[node.name]}{node.ready.http}" if node.ready.http
                     else f"tcp://{self._direct[node.name]}" if node.ready.tcp else None)
            self._specs[node.name] = ProcessSpec(
                name=node.name, argv=tuple(fill(a) for a in node.command), env=env,
                log=str(self.work_dir / "logs" / f"{node.name}.log"), health_url=probe,
                cwd=str(plan.cwd) if plan.cwd else None,
            )
        self._save()  # every spec on disk before any node starts
        for name in names:
            self._pids[name] = spawn(self._specs[name]).pid
            self._save()
        self.wait_healthy(timeout)

    def down(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL) and the proxy server if we started it; on
        an external Toxiproxy (``TOXIPROXY_URL``) delete the links this stack created. Then
        sweep: any process still labelled with this stack (one whose pid was never saved) is
        killed. Only this stack's own processes and links are touched."""
        if self._lease is not None:
            with contextlib.suppress(Exception):
                self._lease.stop()
            self._lease = None
        for name, pid in list(self._pids.items()):
            stop_group(pid)
            del self._pids[name]
        if self._tp is not None:
            if self._external:
                for link in self._links.values():
                    with contextlib.suppress(Exception):
                        link.delete()
            self._tp.close()
            self._tp = None
        self._links = {}
        sweep(str(self.work_dir))
        self._save()

    def _hold_lease(self) -> LeaseKeeper | None:
        """Hold a lease on every link (our Toxiproxy's dead-man switch, `drills.toxiproxy.lease`):
        if this harness dies, the server heals them within `LEASE_TTL_S`. None on a server
        without leases (a real Toxiproxy: the watchdog still reverts the faults)."""
        tp, holder, names = self._tp, f"drills-{os.getpid()}-{self.work_dir.name}", list(
            self._links)
        if tp is None:
            return None

        def renew() -> bool:
            try:
                tp.lease(holder, ttl_ms=round(LEASE_TTL_S * 1000), links=names)
            except ProxyError:
                return False
            return True

        keeper = LeaseKeeper(renew, lambda: tp.release_lease(holder), ttl_s=LEASE_TTL_S)
        return keeper if keeper.supported else None

    def _start_toxiproxy(self) -> None:
        if self._toxiproxy_url:
            self._external = True
            self._save()
            self._tp = ToxiproxyClient.connect(self._toxiproxy_url).__enter__()
            return
        port = free_port()
        spec = ProcessSpec(
            name=TOXIPROXY,
            argv=(sys.executable, "-m", "drills.toxiproxy",
                  "--host", "127.0.0.1", "--port", str(port)),
            env={LABEL_ENV: str(self.work_dir)}, log=str(self.work_dir / "logs" / "toxiproxy.log"),
            health_url=f"http://127.0.0.1:{port}/version",
        )
        self._specs[TOXIPROXY] = spec
        self._save()  # recorded before it starts: a harness killed now leaves it findable
        self._pids[TOXIPROXY] = spawn(spec).pid
        self._save()
        self._toxiproxy_url = f"http://127.0.0.1:{port}"
        self._wait_node(TOXIPROXY, timeout=15.0)
        self._tp = ToxiproxyClient.connect(self._toxiproxy_url).__enter__()

    # -- state file (rollback after the harness died) -----------------------------------------
    def _save(self) -> None:
        state = {
            "provider": self.provider,
            "owner_pid": self._owner,
            "zones": {z: list(ns) for z, ns in self.topology.zones.items()},
            "keep": self.keep,
            "toxiproxy_url": self._toxiproxy_url,
            "external_toxiproxy": self._external,
            "direct": self._direct,
            "pids": self._pids,
            "specs": {n: s.to_dict() for n, s in self._specs.items()},
            "links": {n: link.listen for n, link in self._links.items()},
        }
        self.work_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.work_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.work_dir / STATE_FILE)

    @classmethod
    def attach(cls, work_dir: Path) -> LocalStack:
        """Find a stack again from its ``stack.json`` (the harness that started it may be dead)."""
        path = Path(work_dir) / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StackError(f"{path}: no readable local stack state ({exc})") from exc
        stack = cls(work_dir=Path(work_dir), toxiproxy_url=state["toxiproxy_url"],
                    keep=bool(state.get("keep")))
        stack._specs = {n: ProcessSpec.from_dict(s) for n, s in state["specs"].items()}
        stack._pids = {n: int(p) for n, p in state["pids"].items()}
        stack._direct = dict(state["direct"])
        stack.topology = Topology(
            zones={z: tuple(ns) for z, ns in (state.get("zones") or {}).items()},
            links=tuple(state.get("links") or ()))
        stack._owner = int(state.get("owner_pid") or 0)
        stack._external = bool(state.get("external_toxiproxy"))
        try:
            if not state.get("toxiproxy_url"):  # killed before its proxy server was up
                raise StackError("no Toxiproxy server was recorded")
            stack._tp = ToxiproxyClient.connect(state["toxiproxy_url"]).__enter__()
            stack._links = {n: stack._tp.link(n) for n in state["links"]}
        except Exception as exc:
            stack._tp = None
            stack._links = {}
            stack._proxy_error = str(exc)
        return stack

    # -- the Stack protocol --------------------------------------------------------------------
    def address(self, endpoint: str) -> str:
        """``127.0.0.1:<port>`` of a node (``node`` or ``node:<anything>``: one port each)."""
        node = endpoint.split(":", 1)[0]
        if node not in self._direct:
            raise StackError(f"unknown node {node!r}; nodes: {', '.join(self._direct)}")
        return self._direct[node]

    @property
    def toxiproxy_url(self) -> str | None:
        return self._toxiproxy_url

    def _check(self, nodes: Sequence[str]) -> None:
        for node in nodes:
            if node not in self._specs or node == TOXIPROXY:
                raise StackError(f"unknown node {node!r}; nodes: {', '.join(self.topology.nodes)}")

    def kill(self, nodes: Sequence[str]) -> Mapping[str, float]:
        self._check(nodes)
        live = {n: self._pids[n] for n in nodes if n in self._pids}
        for pid in live.values():
            signal_group(pid, signal.SIGKILL)
        dead = wait_dead(list(live.values()))
        now = time.time()
        self._save()
        return {n: dead.get(live[n], now) if n in live else now for n in nodes}

    def start(self, nodes: Sequence[str]) -> Mapping[str, float]:
        self._check(nodes)
        started: dict[str, float] = {}
        for node in nodes:
            if self.status(node) == "stopped":
                self._pids[node] = spawn(self._specs[node]).pid
            elif self.status(node) == "paused":
                signal_group(self._pids[node], signal.SIGCONT)
            started[node] = time.time()
        self._save()
        return started

    def pause(self, node: str) -> float:
        self._check([node])
        if self.status(node) == "running":
            signal_group(self._pids[node], signal.SIGSTOP)
        return time.time()

    def resume(self, node: str) -> float:
        self._check([node])
        if self.status(node) == "paused":
            signal_group(self._pids[node], signal.SIGCONT)
        return time.time()

    def status(self, node: str) -> NodeState:
        pid = self._pids.get(node)
        return "stopped" if pid is None else proc_state(pid)  # type: ignore[return-value]

    def link(self, name: str) -> Link:
        if name not in self._links:
            why = f" ({self._proxy_error})" if self._proxy_error else ""
            raise StackError(f"unknown link {name!r}{why}")
        return self._links[name]

    def logs(self, node: str, lines: int = 40) -> str:
        spec = self._specs.get(node)
        return tail(spec.log, lines) if spec else ""

    def _wait_node(self, node: str, timeout: float) -> None:
        spec = self._specs[node]
        if spec.health_url is None:
            return
        if spec.health_url.startswith("tcp://"):
            wait_tcp(spec.health_url.removeprefix("tcp://"), timeout=timeout,
                     alive=lambda: self.status(node) != "stopped", logs=lambda: self.logs(node))
            return
        wait_http(
            spec.health_url, timeout=timeout,
            alive=lambda: self.status(node) != "stopped",
            logs=lambda: self.logs(node),
        )

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every node passes its own probe, then the target's readiness (if given)."""
        deadline = time.monotonic() + timeout
        for node in self._specs:
            if node != TOXIPROXY:
                self._wait_node(node, timeout=max(1.0, deadline - time.monotonic()))
        if self._ready is not None:
            self._ready(self, max(1.0, deadline - time.monotonic()))


def wait_tcp(addr: str, *, timeout: float, alive: Callable[[], bool],
             logs: Callable[[], str]) -> None:
    """Until ``addr`` (host:port) accepts a TCP connection; `StackError` with the node's log
    tail when it died or ``timeout`` passed."""
    host, _, port = addr.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                return
        except OSError as exc:
            if not alive():
                raise StackError(f"{addr}: the process died before it listened\n{logs()}") from exc
            if time.monotonic() >= deadline:
                raise StackError(f"{addr}: not listening after {timeout:.0f} s\n{logs()}") from exc
        time.sleep(0.1)
