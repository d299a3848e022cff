"""The live terminal display of a running drill (rich): phase, elapsed time, faults in force,
and requests/s and errors per operation class over the last second.

The classes shown are the run's (the target's, given to `LiveView`), or, when none are given,
the classes of the requests seen so far in first-seen order.

On a terminal it redraws in place; elsewhere (CI logs, pipes) it prints one line per phase and
fault change and a rate line every few seconds.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table

from drills.model import Request

WINDOW_S = 1.0


class LiveView:
    """An `Observer` that draws the run. Use as a context manager around the run.

    ``classes``: the operation classes to show, in order; None or empty: every class seen.
    """

    def __init__(self, drill: str, console: Console | None = None, *,
                 classes: Sequence[str] | None = None) -> None:
        self.drill = drill
        self.classes: dict[str, None] = dict.fromkeys(classes or ())
        self.console = console or Console()
        self.started = time.time()
        self.phase_name = "starting"
        self.active: dict[str, str] = {}
        self.recent: deque[Request] = deque()
        self._live: Live | None = None
        self._last_line = 0.0

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(t, e, tb)

    def _say(self, text: str) -> None:
        stamp = f"[{time.time() - self.started:6.1f}s]"
        if self._live is not None:
            self._live.console.print(f"{stamp} {text}")
        else:
            self.console.print(f"{stamp} {text}", highlight=False)

    def phase(self, name: str, t: float) -> None:
        self.phase_name = name
        self._say(f"phase: {name}")
        self._refresh()

    def fault(self, fault_id: str, description: str, active: bool, t: float) -> None:
        if active:
            self.active[fault_id] = description
        else:
            self.active.pop(fault_id, None)
        self._say(f"fault {fault_id} {description}: {'INJECTED' if active else 'reverted'}")
        self._refresh()

    def requests(self, batch: Sequence[Request], t: float) -> None:
        self.recent.extend(batch)
        for r in batch:
            self.classes.setdefault(r.op, None)
        while self.recent and self.recent[0].t < t - WINDOW_S - 2.0:
            self.recent.popleft()
        if self._live is None and t - self._last_line >= 5.0:
            self._last_line = t
            rates = self._rates(t)
            self._say("  ".join(f"{op} {n:.0f}/s err {e:.0f}" for op, (n, e) in rates.items()))
        self._refresh()

    def message(self, text: str) -> None:
        self._say(text)

    def _rates(self, now: float) -> dict[str, tuple[float, float]]:
        # requests are logged when they end, so measure the window that ended a moment ago
        lo, hi = now - WINDOW_S - 1.0, now - 1.0
        out: dict[str, tuple[float, float]] = {}
        for op in self.classes:
            sel = [r for r in self.recent if r.op == op and lo <= r.t < hi]
            out[op] = (len(sel) / WINDOW_S, sum(not r.ok for r in sel) / WINDOW_S)
        return out

    def _render(self) -> Table:
        now = time.time()
        table = Table(title=f"drill {self.drill} — {self.phase_name} — {now - self.started:.0f}s",
                      caption="faults: " + (", ".join(self.active.values()) or "none"))
        table.add_column("class")
        table.add_column("req/s", justify="right")
        table.add_column("errors/s", justify="right")
        for op, (n, e) in self._rates(now).items():
            table.add_row(op, f"{n:.0f}", f"[red]{e:.0f}[/red]" if e else "0")
        return table

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
