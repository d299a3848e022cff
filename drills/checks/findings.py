"""Small helpers shared by the checks: bounded evidence lists and time formatting.

Pure functions, no state. Findings are human-readable lines; a check may find thousands of
items (every lost write of a long drill), so the list a `CheckResult` carries is bounded.
"""

from __future__ import annotations

from collections.abc import Iterable

#: How many findings a check keeps before summarising the rest as "... N more".
MAX_FINDINGS = 50


def bounded(lines: Iterable[str], *, limit: int = MAX_FINDINGS) -> tuple[str, ...]:
    """Return at most ``limit`` lines, then one ``"... N more"`` line if any were left off.

    Order is kept, so callers put the most telling evidence first (e.g. earliest first).
    """
    kept: list[str] = []
    more = 0
    for line in lines:
        if len(kept) < limit:
            kept.append(line)
        else:
            more += 1
    if more:
        kept.append(f"... {more} more")
    return tuple(kept)


def at(t: float | None) -> str:
    """Format a wall-clock time (Unix seconds) with millisecond precision, or ``?``."""
    return "?" if t is None else f"{t:.3f}"
