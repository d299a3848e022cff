"""The operation classes a report shows, and in which order.

A run's classes come from its target (or drill file); the journal records them as
``classes``. A journal without them (written before classes were recorded, or a run that
ended early) falls back to the classes of the records at hand in first-seen order. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def journal_classes(journal: Any) -> tuple[str, ...]:
    """The classes ``journal`` recorded (its ``classes``), empty when it has none."""
    raw = getattr(journal, "classes", None)
    if not isinstance(raw, list | tuple):
        return ()
    return tuple(str(c) for c in raw)


def ordered(known: Sequence[str], *seen: Iterable[str]) -> list[str]:
    """``known`` first (those that appear in ``seen``, or all of them when ``seen`` is empty
    of them), then every other class of ``seen`` in first-seen order."""
    rest: dict[str, None] = {}
    for names in seen:
        rest.update(dict.fromkeys(names))
    head = [c for c in known if c in rest]
    return head + [c for c in rest if c not in head]
