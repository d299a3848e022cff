"""The drill-file reference (Markdown), rendered from the models' own field documentation.

One table per section (key, type, default, meaning), from each field's `doc_field`. What
belongs to a target - its knobs (``stack.config``), its bug names and its operation classes -
is rendered from the `TargetInfo` given (`drills.catalog.reference_markdown` gives the default
target's), so the reference never goes stale against the code.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from drills.duration import format_duration
from drills.spec.context import TargetInfo
from drills.spec.faults import FaultSpec, FaultTemplate
from drills.spec.models import AnalysisSpec, BurstSpec, DrillSpec, HotSpec, LoadSpec
from drills.spec.objectives import ExposureObjective, Guardrail, Objectives, RtoObjectives
from drills.spec.schema import expected, fields_of
from drills.spec.stack import (
    PLACEHOLDERS,
    DataSpec,
    ImageSpec,
    LinkSpec,
    NodeSpec,
    ReadySpec,
    StackSpec,
)
from drills.spec.timeline import NemesisSpec, Timeline

_INTRO = (
    "Durations: `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds. Fault offsets "
    "(`at`) count from the start of the load; the load runs until the last fault window "
    "ends, plus `settle`. A fault with `repeat: n` and `every: p` has n windows "
    "[at + k*p, at + k*p + for). The drill's faults are the fixed `timeline.faults` "
    "followed by those `timeline.nemesis` generates (a fault's id is its index in that "
    "list); faults may overlap, except two that stop the same node (they could not be "
    "reverted) or two of one kind on one target. Objective names (for `fails_on`): "
    "`rto.<class>`, `lost_acked_writes`, `counters`, `zero_reads`, `split_brain`, "
    "`recovery`, `exposure`. The data objectives (`lost_acked_writes`, `counters`, "
    "`zero_reads`, `split_brain`, `exposure`) need a final-read contract (the target's, or "
    "your system's `stack.data`): without one they are not measured, may not be set, and are "
    "never reported as passed.")


def reference_markdown(target: TargetInfo | None = None) -> str:
    """The drill-file reference; ``target``'s knobs, bugs and classes included when given."""
    sections: list[tuple[str, type[BaseModel]]] = [
        ("Top level", DrillSpec), ("stack", StackSpec), ("stack.nodes[]", NodeSpec),
        ("stack.nodes[].ready", ReadySpec), ("stack.links[]", LinkSpec),
        ("stack.data", DataSpec), ("stack.images.<tag>", ImageSpec),
    ]
    if target is not None and target.config is not None:
        sections.append(("stack.config", target.config))
    sections += [
        ("load", LoadSpec), ("load.burst", BurstSpec), ("load.hot", HotSpec),
        ("timeline", Timeline), ("timeline.faults[]", FaultSpec),
        ("timeline.nemesis", NemesisSpec), ("timeline.nemesis.faults[]", FaultTemplate),
        ("objectives", Objectives), ("objectives.rto", RtoObjectives),
        ("objectives.exposure", ExposureObjective), ("analysis", AnalysisSpec),
        ("guardrails[]", Guardrail),
    ]
    lines = [_INTRO, ""]
    for title, model in sections:
        lines += [f"### {title}", "", _summary(model, title, target), ""]
        if model is RtoObjectives:
            lines += _classes_table(target)
            continue
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key, field in fields_of(model).items():
            lines.append(_row((f"`{key}`", expected(field), _default(field),
                               field.description or "")))
        lines.append("")
        if model is NodeSpec:
            lines += [f"Placeholders in `command` and `env`: {', '.join(PLACEHOLDERS)} (this "
                      "node's port, a node's host:port, the host:port a client dials to go "
                      "through a link, this node's data directory, the stack's directory).", ""]
        if target is not None and model is target.config and target.bugs:
            lines += _bugs_table(target)
    return "\n".join(lines)


def _summary(model: type[BaseModel], title: str, target: TargetInfo | None) -> str:
    first = (model.__doc__ or "").strip().splitlines()[0]
    if title == "stack.config" and target is not None:
        return f"The knobs of the {target.name} target. {first}"
    return first


def _classes_table(target: TargetInfo | None) -> list[str]:
    """The operation classes the target knows (any name goes without a class list)."""
    if target is None or target.classes is None:
        return ["Any class name: the Locust request names, or `load.classes`' values.", ""]
    lines = [f"The classes of the {target.name} target:", "", "| class | what it covers |",
             "|---|---|"]
    lines += [_row((f"`{c}`", target.class_docs.get(c, "-"))) for c in target.classes]
    return [*lines, ""]


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _bugs_table(target: TargetInfo) -> list[str]:
    """The names ``stack.config.bugs`` (and ``catches``) accept, from the target."""
    lines = ["#### stack.config.bugs", "", f"The bugs the {target.name} target can plant "
             "(each off unless named).", "", "| bug | what goes wrong |", "|---|---|"]
    lines += [_row((f"`{name}`", what)) for name, what in target.bugs.items()]
    return [*lines, ""]


def _default(field: FieldInfo) -> str:
    value = field.default
    if field.default_factory is not None:
        return "drawn at load"
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "-"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, float) and "duration" in expected(field):
        return f"`{format_duration(value)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{list(value) if isinstance(value, tuple) else value}`"
