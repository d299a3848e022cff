"""Faults: things with an idempotent ``inject`` and ``revert``, recorded in the ledger first.

Kinds (the keys of a drill file's fault entries):

=============  ========  ===========================================  ==========================
kind           target    inject                                       revert
=============  ========  ===========================================  ==========================
power_down     zone      SIGKILL every node of the zone at once       start them
crash          node      SIGKILL the node                             start it
freeze         node      SIGSTOP / docker pause                       SIGCONT / unpause
partition      link      mode down: refuse; blackhole: data vanishes  enable / remove its toxics
                         (timeout 0); reset: TCP RST (reset_peer)
latency        link      latency toxic (ms, jitter; both ways or one) remove its toxics
bandwidth      link      bandwidth toxic (kbps) both ways             remove its toxics
=============  ========  ===========================================  ==========================

Flapping (``repeat``/``every``) is a schedule of several windows of one fault; each window is
injected and reverted on its own, with id ``<fault>#<n>``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Protocol

from drills.errors import DrillsError, FaultError, RevertError
from drills.ledger import Entry, Ledger
from drills.model import FaultRecord
from drills.stack.base import Stack


class Kind(Protocol):
    """One fault kind: ``inject`` returns what ``revert`` needs to undo exactly that injection."""

    def inject(self, stack: Stack, target: str, params: Mapping[str, Any]) -> dict[str, Any]: ...

    def revert(
        self, stack: Stack, target: str, params: Mapping[str, Any], undo: Mapping[str, Any]
    ) -> None: ...


class PowerDown:
    def inject(self, stack: Stack, target: str, params: Mapping[str, Any]) -> dict[str, Any]:
        nodes = list(stack.topology.zones[target])
        return {"nodes": nodes, "stopped_at": dict(stack.kill(nodes))}

    def revert(self, stack: Stack, target: str, params: Mapping[str, Any], undo: Mapping) -> None:
        stack.start(list(stack.topology.zones[target]))


class Crash:
    def inject(self, stack: Stack, target: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"stopped_at": dict(stack.kill([target]))}

    def revert(self, stack: Stack, target: str, params: Mapping[str, Any], undo: Mapping) -> None:
        stack.start([target])


class Freeze:
    def inject(self, stack: Stack, target: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"paused_at": stack.pause(target)}

    def revert(self, stack: Stack, target: str, params: Mapping[str, Any], undo: Mapping) -> None:
        stack.resume(target)


class Partition:
    def inject(self, stack: Stack, target: str, params: Mapping[str, Any]) -> dict[str, Any]:
        link = stack.link(target)
        mode = params.get("mode", "down")
        if mode == "down":
            link.down()
            return {"disabled": True}
        toxics = link.blackhole() if mode == "blackhole" else link.reset_peer()
        return {"toxics": list(toxics)}

    def revert(self, stack: Stack, target: str, params: Mapping[str, Any], undo: Mapping) -> None:
        _remove(stack, target, undo)
        if params.get("mode", "down") == "down":
            stack.link(target).up()


class Latency:
    def inject(self, stack: Stack, target: str, params: Mapping[str, Any]) -> dict[str, Any]:
        ms = params["ms"]
        toxics = stack.link(target).latency(ms=ms, jitter=params.get("jitter", 0),
                                            direction=params.get("direction", "both"))
        return {"toxics": list(toxics)}

    def revert(self, stack: Stack, target: str, params: Mapping[str, Any], undo: Mapping) -> None:
        _remove(stack, target, undo)


class Bandwidth:
    def inject(self, stack: Stack, target: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"toxics": list(stack.link(target).bandwidth(kbps=params["kbps"]))}

    def revert(self, stack: Stack, target: str, params: Mapping[str, Any], undo: Mapping) -> None:
        _remove(stack, target, undo)


def _remove(stack: Stack, target: str, undo: Mapping[str, Any]) -> None:
    """Remove the toxics an injection added; if the ledger never learnt their names (the harness
    died between injecting and recording), heal the whole link rather than leave it broken."""
    link = stack.link(target)
    if "toxics" in undo:
        for name in undo["toxics"]:
            link.remove_toxic(name)
    elif "disabled" not in undo:
        link.heal()


KINDS: Mapping[str, Kind] = {
    "power_down": PowerDown(),
    "crash": Crash(),
    "freeze": Freeze(),
    "partition": Partition(),
    "latency": Latency(),
    "bandwidth": Bandwidth(),
}


@dataclass(frozen=True, slots=True)
class RevertFailure:
    """A fault the injector could not revert, with the reason (the ledger still lists it)."""

    id: str
    kind: str
    target: str
    reason: str


class Injector:
    """Injects and reverts faults on one stack, through one ledger.

    As a context manager it reverts, on exit, every fault still in force (also after an
    exception or an interrupt). `revert_all` returns failures rather than raising on the first,
    so one stuck fault does not leave the others in place; `__exit__` raises `RevertError` if any.
    """

    def __init__(self, stack: Stack, ledger: Ledger) -> None:
        self.stack = stack
        self.ledger = ledger
        self._active: dict[str, tuple[Entry, float, float]] = {}  # id -> entry, at, injected_at
        self.records: list[FaultRecord] = []
        self.failures: list[RevertFailure] = []

    def __enter__(self) -> Injector:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.failures = self.revert_all()
        if self.failures and e is None:
            raise RevertError(_describe(self.failures))

    def inject(self, entry: Entry, *, scheduled_at: float) -> float:
        """Ledger first, then inject; returns the effective time. Raises `FaultError`."""
        kind = KINDS[entry.kind]
        self.ledger.intend(entry)
        self._active[entry.id] = (entry, scheduled_at, time.time())
        try:
            undo = kind.inject(self.stack, entry.target, entry.params)
        except DrillsError as exc:
            raise FaultError(f"{entry.id}: {entry.kind} {entry.target}: {exc}") from exc
        stopped = undo.get("stopped_at")
        at = max(stopped.values()) if stopped else time.time()
        self.ledger.injected(entry.id, undo)
        self._active[entry.id] = (replace(entry, undo=undo), scheduled_at, at)
        return at

    def revert(self, fault_id: str) -> float:
        """Revert one active fault; returns when the revert began (the fault's ``reverted_at``:
        from then on its effects, a zone booting and rejoining, can show). Raises
        `RevertError`."""
        entry, scheduled_at, injected_at = self._active[fault_id]
        began = time.time()
        try:
            KINDS[entry.kind].revert(self.stack, entry.target, entry.params, entry.undo)
        except Exception as exc:
            raise RevertError(f"{entry.id}: could not revert {entry.kind} {entry.target}: {exc}") \
                from exc
        self.ledger.reverted(fault_id)
        del self._active[fault_id]
        self.records.append(FaultRecord(
            id=entry.id, kind=entry.kind, target=entry.target, scheduled_at=scheduled_at,
            injected_at=injected_at, reverted_at=began, detail={**entry.params, **entry.undo},
        ))
        return began

    @property
    def active(self) -> list[str]:
        return list(self._active)

    def revert_all(self) -> list[RevertFailure]:
        """Revert every active fault, newest first; collect failures instead of stopping."""
        failures = []
        for fid in reversed(list(self._active)):
            entry = self._active[fid][0]
            try:
                self.revert(fid)
            except RevertError as exc:
                failures.append(RevertFailure(fid, entry.kind, entry.target, str(exc)))
        return failures


def _describe(failures: list[RevertFailure]) -> str:
    return "faults still in force: " + "; ".join(f.reason for f in failures)


def rollback(stack: Stack, ledger: Ledger) -> tuple[list[str], list[RevertFailure]]:
    """Revert every fault the ledger lists as pending (after a harness died).

    Returns (reverted ids, failures). Safe to run twice: reverts are idempotent.
    """
    done, failures = [], []
    for entry in reversed(ledger.pending()):
        try:
            KINDS[entry.kind].revert(stack, entry.target, entry.params, entry.undo)
        except Exception as exc:
            failures.append(RevertFailure(entry.id, entry.kind, entry.target, str(exc)))
            continue
        ledger.reverted(entry.id)
        done.append(entry.id)
    return done, failures
