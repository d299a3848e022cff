"""Finding one's way in the drill-file models by the names a drill file uses.

`drills.catalog` checks ``--set`` keys and explains pydantic's errors by walking the models
from `DrillSpec` (`walk`, `descend`); the reference (`drills.spec.reference`) renders their
documented fields (`fields_of`, `expected`). Three shapes of section exist: a model (named
fields), a list of them (``timeline.faults[0]``) and a mapping with free keys (``load.classes``,
``objectives.rto``, ``stack.nodes[0].env``, a knobs model allowing any knob). ``stack.config``
is the target's `KnobsModel`: pass it as ``config`` to walk into the target's own knobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, get_args, get_origin

from pydantic import BaseModel, RootModel
from pydantic.fields import FieldInfo

from drills.spec.knobs import AnyKnobs, KnobsModel


class Place(NamedTuple):
    """Where a walk stands: the model whose fields come next (None: a plain value), whether an
    index comes next (a list), and - for a mapping with free keys - its values' annotation."""

    model: type[BaseModel] | None
    listed: bool = False
    values: Any = None

    @property
    def keyed(self) -> bool:
        """A free key comes next (a mapping, or a model allowing any key)."""
        return self.values is not None


def fields_of(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields keyed as the drill file spells them (by alias)."""
    return {fi.alias or name: fi for name, fi in model.model_fields.items()}


def flatten(annotation: Any) -> Iterable[Any]:
    """The annotation and every type argument inside it (Literal values excepted)."""
    yield annotation
    if get_origin(annotation) is Literal:
        return
    for arg in get_args(annotation):
        yield from flatten(arg)


def descend(annotation: Any, config: type[BaseModel] | None = None) -> Place:
    """Where a field of this annotation leads. ``config`` stands in for `KnobsModel` (the
    target's knobs); without it ``stack.config`` takes any knob."""
    for arg in flatten(annotation):
        if get_origin(arg) in (dict, Mapping):
            return Place(None, values=get_args(arg)[1])
        if isinstance(arg, type) and issubclass(arg, RootModel):
            return descend(arg.model_fields["root"].annotation, config)
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            model = (config or AnyKnobs) if arg is KnobsModel else arg
            if model.model_config.get("extra") == "allow":
                return Place(None, values=Any)
            return Place(model, listed=_is_sequence(annotation))
    return Place(None, listed=_is_sequence(annotation))


def _is_sequence(annotation: Any) -> bool:
    return any(get_origin(a) in (tuple, list) for a in flatten(annotation))


def walk(loc: Sequence[str | int], root: type[BaseModel], *,
         config: type[BaseModel] | None = None) -> tuple[Place, FieldInfo | None]:
    """Where ``loc`` (pydantic's location, from ``root``) leads, and the last field on the way
    (the mapping's own field, for a key inside one). ``(Place(None), None)`` if it leaves the
    schema."""
    place, field = Place(root), None
    for part in loc:
        if isinstance(part, int) or part == "[key]":  # an index, or a mapping's key itself
            continue
        if place.keyed:
            place = descend(place.values, config)
            continue
        field = fields_of(place.model).get(part) if place.model else None
        if field is None:
            return Place(None), None
        place = descend(field.annotation, config)
    return place, field


def expected(field: FieldInfo | None) -> str:
    """The field's human type (``1 <= int <= 5000``), or ``a valid value``."""
    extra = field.json_schema_extra if field else None
    typ = extra.get("type") if isinstance(extra, dict) else None
    return str(typ) if typ else "a valid value"


def literal_choices(field: FieldInfo | None) -> list[Any]:
    """The values a Literal field allows, in order."""
    choices: list[Any] = []
    for arg in flatten(field.annotation if field else None):
        if get_origin(arg) is Literal:
            choices += list(get_args(arg))
    return choices
