"""The drill file's top level (`DrillSpec`) and its load and analysis sections.

`DrillSpec` is the top level; its sections are the models here and in the siblings: the stack
(`drills.spec.stack.StackSpec`), the objectives and guardrails (`drills.spec.objectives`), the
timeline (`drills.spec.timeline.Timeline`, holding `drills.spec.faults.FaultSpec`s). Every field
carries its documentation (`doc_field`). Cross-field invariants that need no stack are
validators here (``fails_on`` naming an objective of the drill, ``settle`` long enough to show
recovery, data objectives only where a final-read contract measures them) and in the
timeline; the errors they raise are located relative to the model (see
`drills.spec._base.invalid`).

Validation context: ``DrillSpec.model_validate(raw, context={TARGET_CONTEXT: info})`` checks
the names that belong to the target (`drills.spec.context.TargetInfo`: its classes, knobs, bug
names, data contract); `drills.catalog` passes it, this package never imports a target.
Without it, names are checked for shape only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import PrivateAttr, ValidationInfo, field_validator, model_validator

from drills.duration import PositiveDuration, format_duration
from drills.errors import show_value
from drills.model import Verdict
from drills.spec._base import SpecModel, invalid
from drills.spec._base import doc_field as _f
from drills.spec.context import TargetInfo, target_of
from drills.spec.knobs import check_names
from drills.spec.objectives import DATA_OBJECTIVES, Guardrail, Objectives, check_class
from drills.spec.stack import StackSpec
from drills.spec.timeline import Timeline


class BurstSpec(SpecModel):
    """Write bursts at fault injection: more writes in flight exactly when a fault strikes."""

    multiplier: float = _f(1.0, typ="1 <= float <= 100", strict=True, ge=1, le=100,
                           allow_inf_nan=False, doc="Write users pace this many times faster "
                           "around each injection; 1 = no bursts.")
    width: PositiveDuration = _f(2.0, typ="0 < duration <= 60s", le=60, doc="How long each "
                                 "burst lasts, centred on the injection.")
    at_revert: bool = _f(False, typ="bool", strict=True, doc="Also burst when each fault "
                         "window ends (writes in flight while the system fails back).")


class HotSpec(SpecModel):
    """Hot keys: counter writes and reads concentrated on a few keys."""

    keys: int = _f(4, typ="0 <= int <= 1000", strict=True, ge=0, le=1000,
                   doc="How many keys (the first the load learns) are hot.")
    share: float = _f(0.5, typ="0 <= float <= 1", strict=True, ge=0, le=1, allow_inf_nan=False,
                      doc="Share of counter increments and counter reads that go to a hot key.")


#: The most Locust processes ``load.workers`` may ask for.
MAX_LOAD_WORKERS = 64
_WORKERS_TYPE = f"1 <= int <= {MAX_LOAD_WORKERS}, or auto"


class LoadSpec(SpecModel):
    """The load: Locust users pacing toward a total request rate."""

    locustfile: str | None = _f(None, typ="path", min_length=1, doc="A locustfile (relative "
                                "to the drill file); left out, the target's own.")
    classes: dict[str, str] = _f(
        {}, exclude_if=lambda v: not v, typ="mapping request name -> class",
        doc="Locust request name -> operation class (one RTO per class); a request name left "
            "out is a class of its own.")
    users: int = _f(20, typ="1 <= int <= 5000", strict=True, ge=1, le=5000,
                    doc="Concurrent simulated users.")
    rate: float = _f(100.0, typ="0 < float <= 10000", strict=True, gt=0, le=10_000,
                     allow_inf_nan=False,
                     doc="Target total requests/s (each user paces at rate/users).")
    timeout: PositiveDuration = _f(1.5, typ="0 < duration <= 60s", le=60, doc="Client timeout "
                                  "per request (connect + read): an outage shows as errors, not "
                                  "silence.")
    retries: int = _f(2, typ="0 <= int <= 10", strict=True, ge=0, le=10, doc="How many times a "
                      "client resends a write whose answer was indeterminate (timeout, reset, "
                      "502/503/504), with the same idempotency key.")
    burst: BurstSpec = _f(BurstSpec(), typ="mapping", doc="Write bursts at injection (below).")
    hot: HotSpec = _f(HotSpec(), typ="mapping", doc="Hot keys (below).")
    workers: int | Literal["auto"] = _f(
        1, typ=_WORKERS_TYPE, doc="Locust processes generating the load: 1 = one process; more "
        "run Locust's master/worker mode on this machine (users spread over the workers, each "
        "pacing as before); auto = one per CPU core. One process drives ~1,000 req/s of a "
        "recorded FastHttpUser load.")

    @field_validator("workers", mode="before")
    @classmethod
    def _workers_in_range(cls, value: Any) -> Any:
        if value == "auto" or (type(value) is int and 1 <= value <= MAX_LOAD_WORKERS):
            return value
        raise invalid("", f"expected {_WORKERS_TYPE}, got {show_value(value)}")

    @model_validator(mode="after")
    def _target_classes(self, info: ValidationInfo) -> LoadSpec:
        target = target_of(info)
        for name, cls in self.classes.items():
            problem = check_class(cls, target.classes if target else None)
            if problem is not None:
                raise invalid("classes", f"{name!r} -> {problem}")
        return self


class AnalysisSpec(SpecModel):
    """How requests are analysed (see DESIGN.md, Measurements)."""

    bucket: PositiveDuration = _f(0.25, typ="duration > 0", doc="Bucket width for success rates.")
    hold: PositiveDuration = _f(3.0, typ="duration > 0", doc="How long a class must stay healthy "
                               "to count as recovered.")
    rho: float = _f(0.5, typ="0 < float <= 1", strict=True, gt=0, le=1, doc="Recovered buckets "
                   "need >= rho x baseline throughput (a trickle is not recovery).")
    epsilon: float = _f(0.05, typ="0 <= float < 1", strict=True, ge=0, lt=1,
                       doc="Slack under the baseline success rate in the RTO threshold.")
    min_bucket_requests: float = _f(
        20.0, typ="float >= 0", strict=True, ge=0, allow_inf_nan=False, doc="A class with fewer "
        "baseline requests per bucket is measured on wider buckets (a multiple of bucket); "
        "0 = never widen.")
    stragglers: int = _f(0, typ="int >= 0", strict=True, ge=0, doc="A bucket with successes "
                         "is an outage only with more failures than this (1: one straggling "
                         "timeout in a thinned bucket is noise); one where all failed always is.")
    exposure_window: PositiveDuration = _f(
        1.0, typ="duration > 0", doc="A write acknowledged within this long before a fault is "
        "injected counts as at risk (it could still be un-replicated or un-fsync'd).")
    failback: PositiveDuration = _f(
        30.0, typ="duration > 0", doc="An outage that begins after a fault's revert counts as "
        "its failback (measured from the revert) only if it begins within this long of it; a "
        "later dip is not the fault's doing.")

    @model_validator(mode="after")
    def _hold_spans_buckets(self) -> AnalysisSpec:
        if self.hold < self.bucket:
            raise invalid("hold", f"hold ({format_duration(self.hold)}) must be at least one "
                                  f"bucket ({format_duration(self.bucket)})")
        return self


class DrillSpec(SpecModel):
    """The top level of a drill file (build one with `drills.catalog.load_drill`)."""

    drill: str = _f(typ="[a-z0-9-]+", pattern=r"^[a-z0-9][a-z0-9-]*$",
                   doc="The drill's name: lowercase letters, digits and dashes.")
    description: str = _f(typ="text", min_length=1, doc="One or two sentences: what happens.")
    rehearses: str | None = _f(None, typ="text", doc="What real event this rehearses.")
    passing_shows: str | None = _f(None, typ="text", doc="What a passing system shows.")
    expect: Literal["pass", "fail"] = _f(
        "pass", typ="pass|fail", doc="fail: the drill demonstrates a known limit; the "
        "rehearsal succeeds when an objective in fails_on (any, if empty) is missed and every "
        "other objective is met.")
    fails_on: tuple[str, ...] = _f((), typ="list of objective names", doc="expect: fail only: "
                                  "the objectives expected to miss (default: any).")
    catches: tuple[str, ...] = _f(
        (), typ="list of bug names", doc="The planted bugs (stack.config.bugs names) this "
        "drill exists to catch: `drill selftest` runs it against each and expects a "
        "data-safety objective to fail.")
    stack: StackSpec = _f(StackSpec(), typ="mapping", doc="Where the system runs (below).")
    load: LoadSpec = _f(LoadSpec(), typ="mapping", doc="The load (below).")
    timeline: Timeline = _f(typ="mapping", doc="Phases and faults (below).")
    objectives: Objectives = _f(Objectives(), typ="mapping", doc="What must hold (below).")
    analysis: AnalysisSpec = _f(AnalysisSpec(), typ="mapping", doc="Analysis knobs (below).")
    guardrails: tuple[Guardrail, ...] = _f((), typ="list of guardrails", doc="Stop conditions "
                                           "(below): any one tripping aborts the run.")

    _source: str = PrivateAttr(default="<string>")
    _text: str | None = PrivateAttr(default=None)
    _overrides: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="before")
    @classmethod
    def _stack_validated(cls, data: Any) -> Any:
        """A drill without ``stack:`` still has its stack validated (against the target)."""
        if isinstance(data, dict) and "stack" not in data:
            return {**data, "stack": {}}
        return data

    @model_validator(mode="after")
    def _cross_section(self, info: ValidationInfo) -> DrillSpec:
        target = target_of(info)
        self._check_catches(target)
        self._measure_data(target)
        names = self.objectives.names()
        if self.fails_on and self.expect != "fail":
            raise invalid("fails_on", "fails_on applies only with expect: fail")
        for i, name in enumerate(self.fails_on):
            if name not in names:
                why = (" (this target has no final-read contract)"
                       if name in DATA_OBJECTIVES and not self.data_measured else "")
                raise invalid(f"fails_on[{i}]", f"{name!r} is not an objective of this drill"
                                                f"{why}; objectives: {', '.join(names)}")
        if self.timeline.all_faults and self.timeline.settle < self.analysis.hold:
            raise invalid("timeline.settle", f"settle ({format_duration(self.timeline.settle)}) "
                          f"is shorter than analysis.hold ({format_duration(self.analysis.hold)})"
                          f": recovery after the last fault could never be shown")
        return self

    def _check_catches(self, target: TargetInfo | None) -> None:
        """``catches`` names bugs the target can plant (any well-formed name without one)."""
        if target is not None and not target.bugs and self.catches:
            raise invalid("catches", f"the {target.name} target plants no bugs: catches "
                                     f"applies only to a target with planted bugs")
        check_names(self.catches, None if target is None else list(target.bugs),
                    field="catches")

    def _measure_data(self, target: TargetInfo | None) -> None:
        """Without a final-read contract (the target's or ``stack.data``), a data objective
        set in the file is an error, and `Objectives.names` leaves them all out."""
        if target is None or target.data or self.stack.data is not None:
            return
        for name in DATA_OBJECTIVES:
            if name in self.objectives.model_fields_set:
                add = ("add stack.data ({http: <path>} or {python: file.py:function}) and "
                       "stack.stores to measure it, or " if target.custom else "")
                raise invalid(f"objectives.{name}", f"not measured: this target has no "
                              f"final-read contract; {add}leave objectives.{name} out")
        # Validation is still building this (frozen) model: swap in the copy that says so.
        object.__setattr__(self, "objectives", self.objectives.without_data())

    @property
    def data_measured(self) -> bool:
        """Are the data objectives measured? False when the target has no final-read contract
        (then only ``rto.*`` and ``recovery`` are judged)."""
        return self.objectives.data_measured

    def with_provenance(self, *, source: str, text: str | None,
                        overrides: tuple[str, ...] = ()) -> DrillSpec:
        """Attach where the drill came from (file path, raw text, ``--set`` strings)."""
        self._source, self._text, self._overrides = source, text, overrides
        return self

    @property
    def name(self) -> str:
        return self.drill

    @property
    def source(self) -> str:
        """The file the drill was read from (or ``<string>``)."""
        return self._source

    @property
    def text(self) -> str | None:
        """The drill file's raw text as read, before overrides (for the report)."""
        return self._text

    @property
    def overrides(self) -> tuple[str, ...]:
        """The ``--set KEY=VALUE`` strings applied on top of the file."""
        return self._overrides

    def to_yaml(self) -> str:
        """The effective drill (defaults and overrides applied) as YAML that reads back equal."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)

    def judge(self, outcomes: Mapping[str, Verdict]) -> Verdict:
        """Did the rehearsal succeed, given each objective's verdict (name -> True/False/None)?

        Only `Objectives.names` count (without the recovery objectives when the drill has no
        fault: it judges only what it measures); a missing name is unknown (None). ``expect: pass``:
        True iff every objective passed. ``expect: fail``: False if an objective outside
        ``fails_on`` failed; else True iff one in ``fails_on`` (any, when empty) failed; when
        none failed, None if some were unknown, else False (the known limit did not show: the
        drill or the system changed). Unknowns outside ``fails_on`` make the result None.
        """
        names = self.objectives.names(faults=bool(self.timeline.all_faults))
        verdicts = {n: outcomes.get(n) for n in names}
        if self.expect == "pass":
            if any(v is False for v in verdicts.values()):
                return False
            return None if any(v is None for v in verdicts.values()) else True
        expected = set(self.fails_on or names)
        others = [v for n, v in verdicts.items() if n not in expected]
        if any(v is False for v in others):
            return False
        missed = any(verdicts[n] is False for n in expected)
        if missed:
            return None if any(v is None for v in others) else True
        return None if any(verdicts[n] is None for n in expected) else False
