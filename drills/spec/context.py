"""What validating a drill file needs to know about its target, without importing it.

`drills.catalog` resolves the drill's target (`drills.targets`) and passes a `TargetInfo` in the
validation context (``DrillSpec.model_validate(raw, context={TARGET_CONTEXT: info})``); the spec
package never imports a target. Without it (a spec built in a test, a journal's spec read back),
names are checked for shape only: any operation class, any knob (kept as given, `AnyKnobs`),
any well-formed bug name, and the data objectives count as measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from pydantic import ValidationInfo

if TYPE_CHECKING:
    from drills.spec.knobs import KnobsModel

#: The validation-context key holding the drill's `TargetInfo`.
TARGET_CONTEXT = "target"
#: The name of the target a drill file describes itself (``stack.nodes`` or ``stack.compose``).
CUSTOM = "custom"


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """A target as the drill-file validation sees it.

    - ``name``: the registered target's name (`CUSTOM` for a drill file's own nodes/compose).
    - ``classes``: its operation classes in report order; None when any class name goes (a
      custom system: the classes are its Locust request names or ``load.classes``' values).
    - ``class_docs``: class -> what it stands for (e.g. the requests it covers), for the
      drill-file reference; may be empty.
    - ``config``: the `KnobsModel` subclass validating ``stack.config`` (None: no knobs, the
      config must be empty).
    - ``bugs``: planted-bug names -> what goes wrong (``stack.config.bugs``, ``catches``).
    - ``data``: it has a final-read contract, so the data objectives can be measured (a custom
      target has one iff its drill file gives ``stack.data``; the spec also accepts
      ``stack.data`` alone as the contract).
    """

    name: str
    classes: tuple[str, ...] | None = None
    class_docs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    config: type[KnobsModel] | None = None
    bugs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    data: bool = False

    @property
    def custom(self) -> bool:
        """True for a drill file's own system (nodes/compose), False for a registered target."""
        return self.name == CUSTOM


def target_of(info: ValidationInfo | None) -> TargetInfo | None:
    """The `TargetInfo` of the validation under way, or None (validated without a target).

    For validators of target models too (a `KnobsModel` subclass checking its bug names)."""
    context = info.context if info is not None else None
    found = context.get(TARGET_CONTEXT) if isinstance(context, Mapping) else None
    return found if isinstance(found, TargetInfo) else None
