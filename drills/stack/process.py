"""Child processes for the local provider: start one in its own process group, signal the group,
tell whether it is running, stopped or paused, and wait for an HTTP health endpoint.

Each process gets its own session (``start_new_session``) so that a SIGKILL to its group takes
every thread and child with it, and so that it survives the harness: a harness killed with SIGKILL
leaves the stack as it was, and ``drill rollback`` can act on it by pid.

Every process also carries a label in its environment, ``DRILLS_STACK=<stack work dir>``, set
before it starts (the way testcontainers' Ryuk sweeps by session label): `sweep` finds and kills
every process of a stack by that label alone, even one whose pid never reached ``stack.json``
(a harness killed between starting it and writing its pid). Linux only: it reads ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from drills.errors import StackError


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """Everything needed to (re)start one process, also after the harness itself died."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    log: str
    health_url: str | None = None  # http://... (2xx), tcp://host:port (accepts), None
    cwd: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "argv": list(self.argv), "env": dict(self.env),
                "log": self.log, "health_url": self.health_url, "cwd": self.cwd}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> ProcessSpec:
        return cls(
            name=str(d["name"]),
            argv=tuple(d["argv"]),  # type: ignore[arg-type]
            env=dict(d["env"]),  # type: ignore[call-overload]
            log=str(d["log"]),
            health_url=d.get("health_url"),  # type: ignore[arg-type]
            cwd=d.get("cwd"),  # type: ignore[arg-type]
        )


#: The environment variable that labels a process with the stack (work dir) it belongs to.
LABEL_ENV = "DRILLS_STACK"


def labelled(label: str) -> list[int]:
    """Pids of live processes whose environment has ``DRILLS_STACK=<label>`` (from /proc;
    processes that vanish or cannot be read are skipped)."""
    want = f"{LABEL_ENV}={label}".encode()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if want in env and proc_state(int(entry.name)) != "stopped":
            found.append(int(entry.name))
    return sorted(found)


def sweep(label: str, *, timeout: float = 10.0) -> list[int]:
    """SIGKILL every process labelled ``label`` (with its process group); return their pids."""
    pids = labelled(label)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(pid), signal.SIGCONT)
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if pids:
        wait_dead(pids, timeout=timeout)
    return pids


def spawn(spec: ProcessSpec) -> subprocess.Popen[bytes]:
    """Start ``spec`` in a new session with its output appended to its log file."""
    Path(spec.log).parent.mkdir(parents=True, exist_ok=True)
    with open(spec.log, "ab") as log:
        log.write(f"--- {time.strftime('%H:%M:%S')} start {' '.join(spec.argv)}\n".encode())
        log.flush()
        try:
            return subprocess.Popen(
                list(spec.argv),
                env={**os.environ, **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=spec.cwd,
            )
        except OSError as exc:
            raise StackError(f"cannot start {spec.name} ({' '.join(spec.argv)}): {exc}") from exc


def proc_state(pid: int) -> str:
    """'running', 'paused' (SIGSTOP'd) or 'stopped' (gone or a zombie), read from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "stopped"
    state = stat.rsplit(")", 1)[1].split()[0]
    if state in ("Z", "X"):
        return "stopped"
    return "paused" if state in ("T", "t") else "running"


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, or a pid <= 0, counts as gone)."""
    return pid > 0 and proc_state(pid) != "stopped"


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid``; a group already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def reap(pid: int) -> None:
    """Collect ``pid`` if it is our child and has exited (so it stops being a zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_dead(pids: Sequence[int], timeout: float = 10.0) -> dict[int, float]:
    """Wait until every pid is gone; return the time each was first seen dead.

    Raises `StackError` if one survives ``timeout`` seconds (a SIGKILL that did not kill).
    """
    seen: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(pids):
        for pid in pids:
            if pid not in seen:
                reap(pid)
                if proc_state(pid) == "stopped":
                    seen[pid] = time.time()
        if len(seen) < len(pids):
            if time.monotonic() > deadline:
                raise StackError(f"processes {sorted(set(pids) - set(seen))} did not die")
            time.sleep(0.005)
    return seen


def stop_group(pid: int, grace: float = 5.0) -> None:
    """SIGTERM the group, wait ``grace`` seconds, then SIGKILL it (a paused group is resumed
    first so it can act on SIGTERM)."""
    if proc_state(pid) == "stopped":
        reap(pid)
        return
    signal_group(pid, signal.SIGCONT)
    signal_group(pid, signal.SIGTERM)
    try:
        wait_dead([pid], timeout=grace)
    except StackError:
        signal_group(pid, signal.SIGKILL)
        wait_dead([pid], timeout=grace)


def tail(path: str, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            return b"\n".join(fh.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""


def wait_http(
    url: str,
    *,
    timeout: float,
    interval: float = 0.1,
    ok: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
    alive: Callable[[], bool] = lambda: True,
    logs: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``url`` until ``ok(response)``; connection errors are transient.

    Gives up after ``timeout`` seconds, or at once when ``alive()`` turns false (the process
    died), raising `StackError` with the last error and ``logs()``.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=max(0.5, interval * 5)) as client:
        while True:
            try:
                resp = client.get(url)
                if ok(resp):
                    return
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if not alive():
                raise StackError(f"{url}: process exited while waiting ({last})", logs=logs())
            if time.monotonic() > deadline:
                raise StackError(f"{url}: not ready after {timeout:g}s ({last})", logs=logs())
            time.sleep(interval)
