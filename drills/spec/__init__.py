"""The drill model: a drill file validated into typed, frozen pydantic models.

A drill names its stack and knobs, the load, a timeline of faults and the objectives it must meet.
`drills.catalog` reads the YAML, applies ``--set`` overrides and validates it into a `DrillSpec`
(``drills.catalog.load_drill``); nothing downstream ever sees the raw mapping. Validation errors
surface as `drills.errors.SpecError` with the file, the dotted field
(``timeline.faults[0].power_down``) and what was expected. Every field carries its documentation
(``reference_markdown()`` in `drills.catalog` renders it as the README's drill-file reference).

Times: every duration is float seconds (`drills.duration`); fault offsets (``at``) count from
the moment the load starts. The load runs for `Timeline.load_duration` seconds:
``max(baseline, end of the last fault window) + settle``.

Cross-field invariants that need no stack are checked by the models; targets are checked against
a stack's topology by `validate_targets`.

Layout: `models` (the sections and `DrillSpec`), `faults` (`FaultSpec`, `FaultWindow`, the
kind tables), `targets` (`TopologyLike`, `validate_targets`, "did you mean" helpers). Import the
names from here. The package imports neither `drills.stack` nor `drills.catalog`.
"""

from drills.spec._base import invalid
from drills.spec.faults import FAULT_KINDS, FAULT_PARAMS, TARGET_TYPE, FaultSpec, FaultWindow
from drills.spec.models import (
    STACK_KNOBS,
    AnalysisSpec,
    DrillSpec,
    LoadSpec,
    Objectives,
    RtoObjectives,
    StackConfig,
    StackSpec,
    Timeline,
)
from drills.spec.targets import TopologyLike, did_you_mean, unknown, validate_targets

__all__ = [
    "FAULT_KINDS",
    "FAULT_PARAMS",
    "STACK_KNOBS",
    "TARGET_TYPE",
    "AnalysisSpec",
    "DrillSpec",
    "FaultSpec",
    "FaultWindow",
    "LoadSpec",
    "Objectives",
    "RtoObjectives",
    "StackConfig",
    "StackSpec",
    "Timeline",
    "TopologyLike",
    "did_you_mean",
    "invalid",
    "unknown",
    "validate_targets",
]
