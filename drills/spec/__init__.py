"""The drill model: a drill file validated into typed, frozen pydantic models.

A drill names its stack (a target, and for your own system its nodes, links and data
contract), the load, a timeline of faults and the objectives it must meet. `drills.catalog`
reads the YAML, applies ``--set`` overrides, resolves the target and validates it into a
`DrillSpec` (``drills.catalog.load_drill``); nothing downstream ever sees the raw mapping.
Validation errors surface as `drills.errors.SpecError` with the file, the dotted field
(``timeline.faults[0].power_down``) and what was expected. Every field carries its documentation
(``reference_markdown()`` in `drills.catalog` renders it as the README's drill-file reference).

Times: every duration is float seconds (`drills.duration`); fault offsets (``at``) count from
the moment the load starts. The faults of a drill are `Timeline.all_faults`: the fixed
``timeline.faults``, then those a seeded nemesis schedule (``timeline.nemesis``) generates; a
fault's id is its index there. The load runs for `Timeline.load_duration` seconds:
``max(baseline, end of the last fault window) + settle``.

Cross-field invariants that need no stack are checked by the models; fault targets, and
schedules that stop one node twice at once (they could not be reverted), are checked against a
stack's topology by `validate_targets`. What only the target knows - its operation classes,
its knobs (``stack.config``, a `KnobsModel` of its own), its bug names, whether it has a
final-read contract - comes in the validation context as a `TargetInfo` (`TARGET_CONTEXT`),
which `drills.catalog` fills in; without it names are checked for shape only.

Layout: `models` (`DrillSpec`, load, analysis), `stack` (`StackSpec`, nodes, links, data
contract, placeholders), `knobs` (`KnobsModel`), `objectives` (`Objectives`, `Guardrail`),
`timeline` (`Timeline`, `NemesisSpec`), `faults` (`FaultSpec`, `FaultTemplate`,
`FaultWindow`, the kind tables), `targets` (`TopologyLike`, `validate_targets`), `context`
(`TargetInfo`), `_base` ("did you mean" helpers). Import the names from here. The package
imports neither `drills.stack`, `drills.targets` nor `drills.catalog`.
"""

from drills.spec._base import did_you_mean, doc_field, invalid, unknown
from drills.spec.context import CUSTOM, TARGET_CONTEXT, TargetInfo, target_of
from drills.spec.faults import (
    FAULT_KINDS,
    FAULT_PARAMS,
    TARGET_TYPE,
    FaultSpec,
    FaultTemplate,
    FaultWindow,
    first_overlap,
)
from drills.spec.knobs import AnyKnobs, KnobsModel, KnobValue, check_names
from drills.spec.models import AnalysisSpec, BurstSpec, DrillSpec, HotSpec, LoadSpec
from drills.spec.objectives import (
    DATA_OBJECTIVES,
    ExposureObjective,
    Guardrail,
    Objectives,
    RtoObjectives,
)
from drills.spec.stack import (
    PLACEHOLDERS,
    DataSpec,
    ImageSpec,
    LinkSpec,
    NodeSpec,
    ReadySpec,
    StackSpec,
    expand,
    placeholders,
)
from drills.spec.targets import TopologyLike, validate_targets
from drills.spec.timeline import NemesisSpec, Timeline

__all__ = [
    "CUSTOM",
    "DATA_OBJECTIVES",
    "FAULT_KINDS",
    "FAULT_PARAMS",
    "PLACEHOLDERS",
    "TARGET_CONTEXT",
    "TARGET_TYPE",
    "AnalysisSpec",
    "AnyKnobs",
    "BurstSpec",
    "DataSpec",
    "DrillSpec",
    "ExposureObjective",
    "FaultSpec",
    "FaultTemplate",
    "FaultWindow",
    "Guardrail",
    "HotSpec",
    "ImageSpec",
    "KnobValue",
    "KnobsModel",
    "LinkSpec",
    "LoadSpec",
    "NemesisSpec",
    "NodeSpec",
    "Objectives",
    "ReadySpec",
    "RtoObjectives",
    "StackSpec",
    "TargetInfo",
    "Timeline",
    "TopologyLike",
    "check_names",
    "did_you_mean",
    "doc_field",
    "expand",
    "first_overlap",
    "invalid",
    "placeholders",
    "target_of",
    "unknown",
    "validate_targets",
]
