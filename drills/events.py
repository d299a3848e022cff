"""What the engine tells an observer while a drill runs (the live terminal view, a test).

Listeners must not break a run: the engine calls them through `safe`, which logs and swallows any
exception a listener raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from drills.model import Request

log = logging.getLogger("drills")


class Observer(Protocol):
    def phase(self, name: str, t: float) -> None:
        """A phase started (``prepare``, ``baseline``, ``inject``, ``settle``, ...)."""

    def fault(self, fault_id: str, description: str, active: bool, t: float) -> None:
        """A fault window was injected (``active``) or reverted."""

    def requests(self, batch: Sequence[Request], t: float) -> None:
        """New request records since the last call."""

    def message(self, text: str) -> None:
        """A line worth showing (a warning, a rollback)."""


class Quiet:
    """The observer that ignores everything."""

    def phase(self, name: str, t: float) -> None:
        pass

    def fault(self, fault_id: str, description: str, active: bool, t: float) -> None:
        pass

    def requests(self, batch: Sequence[Request], t: float) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class Safe:
    """Wraps an observer so that its exceptions are logged, never raised into the run."""

    def __init__(self, inner: Observer) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Callable[..., None]:
        fn = getattr(self._inner, name)

        def call(*args: object, **kwargs: object) -> None:
            try:
                fn(*args, **kwargs)  # every Observer method returns None
            except Exception:
                log.exception("observer %s.%s failed", type(self._inner).__name__, name)

        return call


def describe(kind: str, target: str) -> str:
    return f"{kind} {target}"


__all__ = ["Observer", "Quiet", "Safe", "describe"]
