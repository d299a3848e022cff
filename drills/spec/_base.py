"""What every drill-file model shares: the strict frozen base, documented fields, field errors,
and the "did you mean" helpers for names that must come from a closed set.

Private to `drills.spec`: the sibling modules build their models from these names
(`did_you_mean` and `unknown` are re-exported by the package).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError


def doc_field(default: Any = ..., *, typ: str, doc: str, **kw: Any) -> Any:
    """A documented field: ``typ`` is the human type shown in the drill-file reference,
    ``doc`` its meaning (both rendered by `drills.catalog.reference_markdown`). Give
    ``default_factory=`` instead of ``default`` for a value drawn at validation time."""
    if "default_factory" in kw:
        return Field(description=doc, json_schema_extra={"type": typ}, **kw)
    return Field(default, description=doc, json_schema_extra={"type": typ}, **kw)


def invalid(path: str, message: str) -> PydanticCustomError:
    """A cross-field error at ``path`` (relative to the model raising it; see drills.catalog)."""
    return PydanticCustomError("drill_spec", "{message}", {"message": message, "path": path})


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` (difflib), or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown(what: str, word: str, choices: Sequence[str], *, where: str = "",
            listing: str = "allowed") -> str:
    """``unknown zone 'dc-eats'; did you mean 'dc-east'? (zones: edge, dc-east, ...)``."""
    place = f" in {where}" if where else ""
    return (f"unknown {what} {word!r}{place}{did_you_mean(word, choices)} "
            f"({listing}: {', '.join(choices)})")


class SpecModel(BaseModel):
    """Base of every drill-file model: frozen, unknown keys refused, fields by name or alias."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )
