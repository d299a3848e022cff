"""A target's knobs (``stack.config``): typed attributes that also read as a mapping.

A target validates its drill file's ``stack.config`` with its own model, a subclass of
`KnobsModel` naming only its fields and validators (it is given as `TargetInfo.config`). The
stacks take the result as a read-only ``Mapping[str, KnobValue]`` of the knobs the drill sets
(``dict(spec.stack.config)``, ``.items()``), and code that knows the target reads attributes
(``config.bugs``). Validated without a target (a test, a journal's spec read back), the config is
an `AnyKnobs`: any knob, kept as given.

`check_names` is the one rule for lists of names from a closed set (planted bugs): well formed,
known when the set is known, listed once; a target's model uses it for its ``bugs`` knob.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from pydantic import ConfigDict

from drills.spec._base import SpecModel, invalid, unknown

#: A knob's value as the stacks see it: text, seconds (durations are parsed), or names.
KnobValue = str | float | tuple[str, ...]
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class KnobsModel(SpecModel, Mapping[str, KnobValue]):
    """Base of a target's ``stack.config`` model: frozen, unknown knobs refused, and a read-only
    `Mapping` of the knobs set (a knob left out, None or an empty tuple, is not in it):
    ``dict(config)``, ``config.items()``, ``config.get(k)``, ``k in config``.

    Subclass it with fields (each a `drills.spec._base.doc_field`, typed so the value is a
    `KnobValue`: durations as ``PositiveDuration``, lists as ``tuple[str, ...]``) and
    validators only. Mapping order: field order, then any extra knobs (`AnyKnobs`)."""

    def _set(self) -> tuple[str, ...]:
        """The knobs the drill sets, in declaration order (then any extra knobs)."""
        names = [*type(self).model_fields, *(self.model_extra or {})]
        return tuple(k for k in names if _is_set(getattr(self, k, None)))

    def __getitem__(self, key: str) -> KnobValue:
        if key not in self._set():
            raise KeyError(key)
        value: KnobValue = getattr(self, key)
        return value

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(self._set())

    def __len__(self) -> int:
        return len(self._set())

    def __contains__(self, key: object) -> bool:
        return key in self._set()


class AnyKnobs(KnobsModel):
    """``stack.config`` validated without a target: any knob name, its value kept as given
    (text, a number, or a list of text)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, str | float | tuple[str, ...]]


def _is_set(value: Any) -> bool:
    return value is not None and value != ()


def check_names(names: tuple[str, ...], known: Collection[str] | None, *, field: str,
                what: str = "bug") -> None:
    """Each name well formed (``[a-z0-9][a-z0-9-]*``), among ``known`` when it is given, and
    listed once. Raises a field error at ``<field>[i]`` (relative to the validating model)."""
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if known is not None and name not in known:
            raise invalid(f"{field}[{i}]", unknown(what, name, list(known), listing="known"))
        if known is None and not _NAME.match(name):
            raise invalid(f"{field}[{i}]", f"expected a {what} name (lowercase letters, digits "
                                           f"and dashes), got {name!r}")
        if name in first:
            raise invalid(f"{field}[{i}]", f"{name!r} is listed twice ({field}[{first[name]}] "
                                           f"and {field}[{i}])")
        first[name] = i
