"""The drill model: a drill file validated into typed, frozen pydantic models.

A drill names its stack and knobs, the load, a timeline of faults and the objectives it must meet.
`drills.catalog` reads the YAML, applies ``--set`` overrides and validates it into a `DrillSpec`
(``drills.catalog.load_drill``); nothing downstream ever sees the raw mapping. Validation errors
surface as `drills.errors.SpecError` with the file, the dotted field
(``timeline.faults[0].power_down``) and what was expected. Every field carries its documentation
(``reference_markdown()`` in `drills.catalog` renders it as the README's drill-file reference).

Times: every duration is float seconds (`drills.duration`); fault offsets (``at``) count from
the moment the load starts. The faults of a drill are `Timeline.all_faults`: the fixed
``timeline.faults``, then those a seeded nemesis schedule (``timeline.nemesis``) generates; a
fault's id is its index there. The load runs for `Timeline.load_duration` seconds:
``max(baseline, end of the last fault window) + settle``.

Cross-field invariants that need no stack are checked by the models; targets, and schedules
that stop one node twice at once (they could not be reverted), are checked against a stack's
topology by `validate_targets`. Bug names (``stack.config.bugs``) are checked against the
names given in the validation context (`BUGS_CONTEXT`), which `drills.catalog` fills in.

Layout: `models` (the sections and `DrillSpec`), `timeline` (`Timeline`, `NemesisSpec`),
`faults` (`FaultSpec`, `FaultTemplate`, `FaultWindow`, the kind tables), `targets`
(`TopologyLike`, `validate_targets`), `_base` ("did you mean" helpers). Import the names from
here. The package imports neither `drills.stack` nor `drills.catalog`.
"""

from drills.spec._base import did_you_mean, invalid, unknown
from drills.spec.faults import (
    FAULT_KINDS,
    FAULT_PARAMS,
    TARGET_TYPE,
    FaultSpec,
    FaultTemplate,
    FaultWindow,
    first_overlap,
)
from drills.spec.models import (
    BUGS_CONTEXT,
    STACK_KNOBS,
    AnalysisSpec,
    BurstSpec,
    DrillSpec,
    ExposureObjective,
    Guardrail,
    HotSpec,
    LoadSpec,
    Objectives,
    RtoObjectives,
    StackConfig,
    StackSpec,
)
from drills.spec.targets import TopologyLike, validate_targets
from drills.spec.timeline import NemesisSpec, Timeline

__all__ = [
    "BUGS_CONTEXT",
    "FAULT_KINDS",
    "FAULT_PARAMS",
    "STACK_KNOBS",
    "TARGET_TYPE",
    "AnalysisSpec",
    "BurstSpec",
    "DrillSpec",
    "ExposureObjective",
    "FaultSpec",
    "FaultTemplate",
    "FaultWindow",
    "Guardrail",
    "HotSpec",
    "LoadSpec",
    "NemesisSpec",
    "Objectives",
    "RtoObjectives",
    "StackConfig",
    "StackSpec",
    "Timeline",
    "TopologyLike",
    "did_you_mean",
    "first_overlap",
    "invalid",
    "unknown",
    "validate_targets",
]
