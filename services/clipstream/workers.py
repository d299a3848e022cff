"""Several api worker processes on one port (``--api-workers``), all in the node's process group.

The api is stateless (its only state, the route, each worker learns and refreshes itself), so it
scales out across cores: `serve_workers` forks ``workers`` processes from the node's process. Each
binds its own socket to the same ``host:port`` with ``SO_REUSEPORT`` and starts listening only
once its lifespan has started (it asked the coordinator for the route), so the kernel hands new
connections to ready workers only, spread by connection hash. One shared socket would let a
worker that wakes first accept a whole burst of keep-alive connections and keep them.

Life and death, as the harness needs them:

- the workers stay in the parent's process group (the node runs in a session of its own), so
  SIGKILL to the group - a power cut - takes every worker at once; SIGSTOP/SIGCONT to the group
  pause and resume them all;
- a worker is SIGKILLed by the kernel if the parent dies alone (``PR_SET_PDEATHSIG``, Linux);
- SIGTERM/SIGINT to the parent is passed on to every worker (each stops gracefully, twice
  signalled or not), and the parent exits 0 once all have;
- a worker that exits by itself (a crash, the port taken) stops the node: the parent
  terminates the others and exits 1 (fail-stop: a node serving with fewer workers than asked
  would hide the failure).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

from starlette.types import ASGIApp

from clipstream.web import serve

LOG = logging.getLogger("clipstream.workers")
PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 10.0  # a worker still alive this long after SIGTERM is SIGKILLed


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, not listening yet."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
    except BaseException:
        sock.close()
        raise
    return sock


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _run_worker(build: Callable[[], ASGIApp], *, host: str, port: int, parent: int) -> NoReturn:
    """A forked worker's whole life: bind, serve until SIGTERM, exit (never returns)."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _die_with_parent(parent)
        sock = reuseport_socket(host, port)
        serve(build(), host=host, port=port, sockets=[sock])
        code = 0
    except SystemExit as exc:  # uvicorn exits so when the lifespan fails to start
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        LOG.exception("api worker %d failed", os.getpid())
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve_workers(build: Callable[[], ASGIApp], *, host: str, port: int, workers: int) -> int:
    """Serve ``build()`` from ``workers`` forked processes on ``host:port``; the exit status.

    Returns 0 after a SIGTERM/SIGINT stopped every worker, 1 if a worker exited by itself.
    Call it before any thread or event loop exists in this process (it forks).
    """
    parent = os.getpid()
    children: set[int] = set()
    stop_at: float | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_at
        if stop_at is None:
            stop_at = time.monotonic()
        _signal_all(children, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            _run_worker(build, host=host, port=port, parent=parent)
        children.add(pid)
    if stop_at is not None:  # a signal came while forking: the late ones have not seen it
        _signal_all(children, signal.SIGTERM)
    LOG.warning("api: %d workers on %s:%d, pids %s", workers, host, port, sorted(children))
    failed = False
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            if stop_at is not None and time.monotonic() - stop_at > STOP_GRACE_S:
                _signal_all(children, signal.SIGKILL)
            time.sleep(0.1)
            continue
        children.discard(pid)
        if stop_at is None:
            LOG.error("api worker %d exited (%s): stopping the node", pid, _describe(status))
            failed = True
            stop(signal.SIGTERM, None)
    return 1 if failed else 0


def _signal_all(pids: set[int], sig: signal.Signals) -> None:
    for pid in list(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"status {os.waitstatus_to_exitcode(status)}"
