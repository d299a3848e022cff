"""Targets: which system a drill runs against, found by name.

A drill file's ``stack.target`` names a registered target; a drill file that describes its own
system (``stack.compose`` or ``stack.nodes``) is the ``custom`` target (`drills.targets.custom`);
with neither, the default target (`default_name`: the demonstration system this package
ships). Targets are registered through the entry-point group ``drills.targets`` (``name =
"package.module:TargetClass"``): a package ships a target by declaring one, and ``drills``
finds it once installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from drills.errors import SpecError
from drills.spec._base import unknown
from drills.spec.context import TargetInfo

if TYPE_CHECKING:
    from drills.spec import DrillSpec
    from drills.targets.base import Target

GROUP = "drills.targets"
#: The entry-point group naming the default target (one entry, ``target``, whose value is the
#: same object reference as a target of `GROUP`): configuration in the package metadata, so
#: no module here names the system it ships.
DEFAULT_GROUP = "drills.default_target"
CUSTOM = "custom"


def default_name() -> str:
    """The target of a drill file that names none and describes no system of its own."""
    wanted = {ep.value for ep in entry_points(group=DEFAULT_GROUP)}
    found = [name for name, ep in registered().items() if ep.value in wanted]
    if len(found) != 1:
        raise SpecError("no default target is installed (name one with stack.target; "
                        f"installed: {', '.join(sorted(registered())) or 'none'})",
                        field="stack.target")
    return found[0]


def registered() -> dict[str, Any]:
    """Name -> entry point of every installed target."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load(name: str) -> Target:
    """The registered target ``name``, instantiated. `SpecError` (field ``stack.target``)
    naming the installed ones when there is none by that name."""
    found = registered()
    if name not in found:
        raise SpecError(unknown("target", name, sorted(found), listing="installed targets"),
                        field="stack.target")
    try:
        target: Target = found[name].load()()
    except Exception as exc:  # a broken plug-in: say which, never a traceback
        raise SpecError(f"target {name!r} ({found[name].value}) could not be loaded: "
                        f"{type(exc).__name__}: {exc}", field="stack.target") from exc
    return target


def target_name(stack: Mapping[str, Any]) -> str:
    """The target a raw ``stack:`` mapping names (see the module docstring)."""
    name = stack.get("target")
    if name is not None:
        return str(name)
    return CUSTOM if stack.get("compose") is not None or stack.get("nodes") else default_name()


def target_info(stack: Mapping[str, Any]) -> TargetInfo:
    """What validating a drill file needs of its target, from its raw ``stack:`` mapping."""
    name = target_name(stack)
    if name == CUSTOM:
        return TargetInfo(name=CUSTOM, classes=None, config=None,
                          data=stack.get("data") is not None)
    return load(name).info


def for_spec(spec: DrillSpec, provider: str | None = None) -> Target:
    """The target of a validated drill (a custom one as run on ``provider``, default the
    drill file's)."""
    if spec.stack.target_name == CUSTOM:
        from drills.targets.custom import Custom

        return Custom.from_spec(spec, provider=provider)
    return load(spec.stack.target_name)
