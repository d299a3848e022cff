"""What every drill-file model shares: the strict frozen base, documented fields, field errors.

Private to `drills.spec`: the sibling modules build their models from these three names.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError


def doc_field(default: Any = ..., *, typ: str, doc: str, **kw: Any) -> Any:
    """A documented field: ``typ`` is the human type shown in the drill-file reference,
    ``doc`` its meaning (both rendered by `drills.catalog.reference_markdown`)."""
    return Field(default, description=doc, json_schema_extra={"type": typ}, **kw)


def invalid(path: str, message: str) -> PydanticCustomError:
    """A cross-field error at ``path`` (relative to the model raising it; see drills.catalog)."""
    return PydanticCustomError("drill_spec", "{message}", {"message": message, "path": path})


class SpecModel(BaseModel):
    """Base of every drill-file model: frozen, unknown keys refused, fields by name or alias."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )
