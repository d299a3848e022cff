"""Interrupts (Ctrl-C, SIGTERM) during a run: when they raise, and when they must wait.

A run turns SIGTERM into KeyboardInterrupt (`sigterm_as_interrupt`) so that both take the path
Ctrl-C takes: every fault reverted, the stack torn down. That teardown itself must not be cut
short by an impatient second Ctrl-C (it once left three nodes up): `Teardown` wraps a resource
so that its exit runs with interrupts noted, not raised (`deferred_interrupts`), and raises the
noted one afterwards. Main thread only: signal handlers can be installed nowhere else.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[list[int]]:
    """Within the block, Ctrl-C and SIGTERM are noted (in the yielded list) instead of raised:
    teardown - reverting faults, stopping the stack - is never cut short by a second interrupt
    (main thread only; elsewhere nothing is installed)."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda signum, _frame: got.append(signum))
    try:
        yield got
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Teardown(contextlib.AbstractContextManager[T]):
    """Wraps a resource so that its exit (teardown) runs to the end whatever interrupts come;
    an interrupt that came meanwhile is raised afterwards, unless an error already is."""

    def __init__(self, cm: contextlib.AbstractContextManager[T]) -> None:
        self.cm = cm

    def __enter__(self) -> T:
        return self.cm.__enter__()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> bool | None:
        with deferred_interrupts() as got:
            handled = self.cm.__exit__(t, e, tb)
        if got and t is None:
            raise KeyboardInterrupt
        return handled
