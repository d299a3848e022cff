"""Durations as drill files write them: ``500ms``, ``10s``, ``2m``, ``1h`` or bare seconds.

Durations are stored as float seconds everywhere in `drills`; this module is the only place
that reads or writes their text form. `parse_duration` raises `ValueError` (a pure parser: the
pydantic models in `drills.spec` turn it into a field error, and `drills.catalog` into a
`SpecError` naming the file and field). `format_duration` gives the shortest text that parses
back to exactly the same float, so a drill written out by ``DrillSpec.to_yaml()`` reads back
identical.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

from drills.errors import show_value

_UNITS: dict[str, int] = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}  # in milliseconds
_DURATION = re.compile(
    r"^\s*(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>ms|s|m|h)?\s*$"
)
EXAMPLES = "500ms, 10s, 2m or a number of seconds"


def parse_duration(value: object) -> float:
    """Parse a duration into float seconds.

    Accepts an int or float (seconds) or a string ``<number><unit>`` with unit ``ms``, ``s``,
    ``m`` or ``h`` (no unit = seconds). Raises `ValueError` for anything else, including
    booleans (YAML ``yes``/``no``), negative numbers, NaN and infinity.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a duration such as {EXAMPLES}, got {show_value(value)}")
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"expected a duration such as {EXAMPLES}, got {show_value(value)}")
        number = float(match["num"])
        unit_ms = _UNITS[match["unit"] or "s"]
        # Exact for integral counts: x ms -> x / 1000 is one correctly rounded division.
        seconds = number / 1000 if unit_ms == 1 else number * (unit_ms // 1000)
    else:
        seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"expected a finite duration >= 0, got {show_value(value)}")
    return seconds + 0.0  # normalises -0.0


def format_duration(seconds: float) -> str:
    """The shortest of ``<n>m``, ``<n>s``, ``<n>ms``, ``<float>s`` that parses back exactly
    (``1h``, ``2m``, ``90s``, ``1.5s``, ``500ms``); below 1 s, whole milliseconds win.

    Raises `ValueError` for a negative or non-finite number (no duration has that form).
    """
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {seconds!r}")
    candidates: list[str] = []
    if seconds == int(seconds):
        whole = int(seconds)
        if whole and whole % 3600 == 0:
            candidates.append(f"{whole // 3600}h")
        if whole and whole % 60 == 0:
            candidates.append(f"{whole // 60}m")
        candidates.append(f"{whole}s")
    candidates.append(f"{seconds!r}s")
    if seconds < 1e15:  # beyond that, whole milliseconds add nothing (and may overflow)
        millis = f"{round(seconds * 1000)}ms"
        if 0 < seconds < 1 and parse_duration(millis) == seconds:
            return millis  # 500ms reads better than 0.5s
        candidates.append(millis)
    exact = [text for text in candidates if parse_duration(text) == seconds]
    return min(exact, key=len)  # the first of the shortest; repr always round-trips


def parse_positive_duration(value: object) -> float:
    """Like `parse_duration`, but zero is refused too (a phase or a fault that lasts no time)."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"expected a duration > 0 such as {EXAMPLES}, got {show_value(value)}")
    return seconds


_SERIALIZE = PlainSerializer(format_duration, return_type=str, when_used="json")

#: A duration field (float seconds, >= 0); written back as text in JSON/YAML dumps.
Duration = Annotated[float, BeforeValidator(parse_duration), _SERIALIZE]
#: A duration field that must be > 0.
PositiveDuration = Annotated[float, BeforeValidator(parse_positive_duration), _SERIALIZE]
