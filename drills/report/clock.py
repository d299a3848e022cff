"""Times in the reports: wall-clock (Unix seconds) shown relative to load start.

`Clock` is shared by ``report.html`` and ``report.md`` so that both show one time the same way:
``t+9.700s`` from load start, and the wall-clock times the checks print inside their findings
(`drills.checks.findings.at`, ``1700000009.700``) rewritten alike. Pure: no I/O, no clock read.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

#: Wall-clock times as the checks print them (`drills.checks.findings.at`).
CLOCK = re.compile(r"(?<![\w.])(\d{9,10}\.\d{3})(?![\w.])")
#: Rewrite a clock time only if it lies within this many seconds of load start.
CLOCK_SPAN_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Clock:
    """Formats wall-clock times relative to load start ``t0`` (absolute when t0 is None)."""

    t0: float | None

    def at(self, t: float | None) -> str:
        if t is None:
            return "—"
        if self.t0 is None:
            return time.strftime("%H:%M:%S", time.localtime(t))
        return f"t{t - self.t0:+.3f}s"

    def rewrite(self, line: str) -> str:
        """``line`` with every wall-clock time near t0 shown as ``t+<s>s``."""
        if self.t0 is None:
            return line

        def sub(m: re.Match[str]) -> str:
            t = float(m.group(1))
            return self.at(t) if abs(t - (self.t0 or 0.0)) <= CLOCK_SPAN_S else m.group(0)

        return CLOCK.sub(sub, line)
