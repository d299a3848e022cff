"""Chaos for hand-written drills: each fault a context manager that always reverts.

The ``chaos`` pytest fixture is a `Chaos` bound to the session's stack::

    with chaos.power_down("dc-east") as outage:      # every dc-east node SIGKILLed
        ...                                          # the zone is down in here
    outage.record                                    # FaultRecord: injected_at, reverted_at

Everything goes through the harness's own machinery: `drills.faults.Injector` and a fsync'd
`drills.ledger.Ledger`, so a fault is on disk before it is injected and reverted on the way out
of its block whatever happens inside (an assertion, an exception, Ctrl-C); leaving the `Chaos`
reverts anything still in force (newest first) and then waits until the stack is healthy again,
so the next test starts on a whole system. A harness killed outright leaves the ledger, and
``drill rollback`` (or the next run under the same root) reverts what it lists.

Targets and parameters are checked before anything happens, with the drill file's own rules
(`drills.spec.FaultSpec`) and the stack's topology; a mistake is a `SpecError` naming the
allowed targets, with a "did you mean".
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Literal

from pydantic import ValidationError

from drills.errors import FaultError, RevertError, SpecError
from drills.faults import Injector, RevertFailure
from drills.ledger import Entry, Ledger
from drills.model import FaultRecord
from drills.spec import TARGET_TYPE, FaultSpec, unknown
from drills.stack.base import Stack

SOURCE = "chaos"


class ActiveFault:
    """A fault `Chaos` injected: its ledger id, kind, target, parameters, when it took effect,
    and (once its block is left) the `FaultRecord` with the time it was reverted."""

    def __init__(self, id: str, kind: str, target: str, params: Mapping[str, object], *,
                 scheduled_at: float, injected_at: float) -> None:
        self.id = id
        self.kind = kind
        self.target = target
        self.params = dict(params)
        self.scheduled_at = scheduled_at
        self.injected_at = injected_at
        self._record: FaultRecord | None = None

    def __repr__(self) -> str:
        state = "in force" if self._record is None else "reverted"
        return f"<ActiveFault {self.id} {self.kind} {self.target} {state}>"

    @property
    def reverted(self) -> bool:
        return self._record is not None

    @property
    def record(self) -> FaultRecord:
        """The fault as the checks want it; ``reverted_at`` is None while it is in force."""
        if self._record is not None:
            return self._record
        return FaultRecord(id=self.id, kind=self.kind, target=self.target,
                           scheduled_at=self.scheduled_at, injected_at=self.injected_at,
                           detail=dict(self.params))


def fault_entry(stack: Stack, fault_id: str, kind: str, target: str,
                params: Mapping[str, object]) -> Entry:
    """Check ``kind``, ``target`` (against the stack's topology) and ``params`` (with the drill
    file's rules) and return the ledger entry to inject. Raises `SpecError`."""
    if kind not in TARGET_TYPE:
        raise SpecError(unknown("fault kind", kind, list(TARGET_TYPE), listing="kinds"),
                        source=SOURCE)
    topo = stack.topology
    what = TARGET_TYPE[kind]
    allowed = {"zone": tuple(topo.zones), "node": topo.nodes, "link": tuple(topo.links)}[what]
    if target not in allowed:
        raise SpecError(unknown(what, target, allowed, listing=f"{what}s"), source=SOURCE,
                        field=kind)
    try:
        spec = FaultSpec.model_validate({kind: target, "at": 0, "for": 1, **params})
    except ValidationError as exc:
        problems = "; ".join(f"{_where(e['loc'], e.get('ctx'))}{e['msg']}" for e in exc.errors())
        raise SpecError(problems, source=SOURCE, field=kind) from None
    return Entry(fault_id, kind, target, dict(spec.params))


def _where(loc: tuple[object, ...], ctx: Mapping[str, object] | None) -> str:
    path = str((ctx or {}).get("path") or ".".join(str(p) for p in loc))
    return f"{path}: " if path else ""


class Chaos:
    """Faults on one stack, through one ledger. Use as a context manager (the ``chaos`` fixture
    does); every fault method returns a context manager yielding an `ActiveFault`.

    ``prefix`` names this user's faults in the shared ledger (``<prefix>/<n>``);
    ``healthy_timeout`` bounds the wait for a healthy stack on the way out (`StackError`).
    """

    def __init__(self, stack: Stack, ledger: Ledger, *, prefix: str = "chaos",
                 healthy_timeout: float = 60.0) -> None:
        self.stack = stack
        self.ledger = ledger
        self.prefix = prefix
        self.healthy_timeout = healthy_timeout
        self._injector = Injector(stack, ledger)
        self._count = 0
        self._t0 = time.time()

    def __enter__(self) -> Chaos:
        self._t0 = time.time()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        failures = self._injector.revert_all()
        if failures and e is None:
            raise RevertError(_describe(failures))
        if e is None:
            self.stack.wait_healthy(timeout=self.healthy_timeout)

    # -- the fault kinds ------------------------------------------------------------------------
    def power_down(self, zone: str) -> contextlib.AbstractContextManager[ActiveFault]:
        """SIGKILL every node of ``zone`` at once; start them again on the way out."""
        return self.fault("power_down", zone)

    def crash(self, node: str) -> contextlib.AbstractContextManager[ActiveFault]:
        """SIGKILL one node; start it again on the way out."""
        return self.fault("crash", node)

    def freeze(self, node: str) -> contextlib.AbstractContextManager[ActiveFault]:
        """Pause one node (SIGSTOP / docker pause); resume it on the way out."""
        return self.fault("freeze", node)

    def partition(self, link: str, *, mode: Literal["down", "blackhole", "reset"] = "down"
                  ) -> contextlib.AbstractContextManager[ActiveFault]:
        """Cut a link: ``down`` refuses connections, ``blackhole`` drops data silently
        (connections hang), ``reset`` resets them (TCP RST)."""
        return self.fault("partition", link, mode=mode)

    def latency(self, link: str, *, ms: int, jitter: int = 0
                ) -> contextlib.AbstractContextManager[ActiveFault]:
        """Delay the link's traffic by ``ms`` (+/- ``jitter``) milliseconds, both ways."""
        return self.fault("latency", link, ms=ms, jitter=jitter)

    def bandwidth(self, link: str, *, kbps: int) -> contextlib.AbstractContextManager[ActiveFault]:
        """Throttle the link to ``kbps`` kilobytes/s, both ways."""
        return self.fault("bandwidth", link, kbps=kbps)

    @contextlib.contextmanager
    def fault(self, kind: str, target: str, **params: object) -> Iterator[ActiveFault]:
        """Inject any fault kind for the duration of the block (the methods above use this).

        Raises `SpecError` before injecting for a bad kind, target or parameter, `FaultError`
        if the injection fails (what it did is reverted), `RevertError` if the revert fails
        (unless an exception is already leaving the block; then the `Chaos` retries on exit).
        """
        self._count += 1
        entry = fault_entry(self.stack, f"{self.prefix}/{self._count}", kind, target, params)
        offset = time.time() - self._t0
        try:
            at = self._injector.inject(entry, scheduled_at=offset)
        except FaultError:
            with contextlib.suppress(RevertError):
                self._revert(entry.id)
            raise
        handle = ActiveFault(entry.id, kind, target, entry.params, scheduled_at=offset,
                             injected_at=at)
        try:
            yield handle
        except BaseException:
            with contextlib.suppress(RevertError):
                handle._record = self._revert(entry.id)
            raise
        handle._record = self._revert(entry.id)

    def _revert(self, fault_id: str) -> FaultRecord | None:
        if fault_id in self._injector.active:
            self._injector.revert(fault_id)
        return next((r for r in self._injector.records if r.id == fault_id), None)

    # -- what happened --------------------------------------------------------------------------
    @property
    def records(self) -> tuple[FaultRecord, ...]:
        """Every fault reverted so far, in the order they were reverted."""
        return tuple(self._injector.records)

    @property
    def active(self) -> tuple[str, ...]:
        """The ids of the faults in force."""
        return tuple(self._injector.active)


def _describe(failures: list[RevertFailure]) -> str:
    return "faults still in force (see the ledger; `drill rollback`): " + "; ".join(
        f.reason for f in failures)
