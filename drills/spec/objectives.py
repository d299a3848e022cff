"""What a passing run shows (``objectives``) and when a run must stop (``guardrails``).

Objectives come in two families. Request objectives (``rto.<class>``, ``recovery``) need only
the load's requests, so every target measures them. Data objectives (`DATA_OBJECTIVES`: lost
acknowledged writes, counter bounds, zero reads, split brain, exposure) need a history of
writes and a final read of every store: a target without a final-read contract cannot measure
them, so they may not be set in its drills, `Objectives.names` leaves them out and they are
never judged, let alone passed (`DrillSpec` decides, see ``DrillSpec.data_measured``).

Operation classes (``rto`` keys, ``guardrails[].op``) are any names unless the target lists
its classes (`TargetInfo.classes`, from the validation context); then they must be among them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    PrivateAttr,
    RootModel,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    model_serializer,
    model_validator,
)

from drills.duration import Duration, PositiveDuration, format_duration
from drills.spec._base import SpecModel, invalid, unknown
from drills.spec._base import doc_field as _f
from drills.spec.context import target_of

#: The objectives a final-read contract is needed for, in judging order.
DATA_OBJECTIVES: tuple[str, ...] = ("lost_acked_writes", "counters", "zero_reads",
                                    "split_brain", "exposure")


def check_class(name: str, classes: tuple[str, ...] | None) -> str | None:
    """Why ``name`` is not an operation class of the target (None: it is, or any goes)."""
    if not name:
        return "expected a class name, got ''"
    if classes is not None and name not in classes:
        return unknown("class", name, list(classes), listing="classes")
    return None


class RtoObjectives(RootModel[dict[str, Duration]]):
    """Operation class -> the longest acceptable recovery time, for every fault window; a
    class left out is not judged."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _target_classes(cls, data: Any, info: ValidationInfo) -> Any:
        """Keys among the target's classes, then in its (report) order."""
        target = target_of(info)
        if not isinstance(data, dict):
            return data
        for name in data:
            problem = check_class(name, target.classes if target else None) \
                if isinstance(name, str) else None
            if problem is not None:
                raise invalid(name if re.match(r"^[\w-]+$", name) else "", problem)
        if target is not None and target.classes is not None:
            data = {c: data[c] for c in target.classes if c in data}
        return data

    def as_mapping(self) -> Mapping[str, float]:
        """The classes that have an objective, class -> seconds (the target's class order when
        it lists them, else the drill file's)."""
        return MappingProxyType(dict(self.root))


class ExposureObjective(SpecModel):
    """How much a drill must put at risk for its data objectives to mean something."""

    min_writes_at_risk: int = _f(typ="int >= 0", strict=True, ge=0, doc="Fewest writes at risk "
                                 "(acked within analysis.exposure_window before a fault, in "
                                 "flight at it, acked during it, retried); fewer makes the run "
                                 "inconclusive.")


class Guardrail(SpecModel):
    """A stop condition: the run is aborted (every fault reverted, verdict ``aborted``, exit 1)
    when it trips - the blast radius of a drill run against something that matters."""

    op: str | None = _f(None, typ="op class", doc="Trip when this class (best: one no fault "
                        "targets) succeeds less than `below` over the last `for`.")
    below: float = _f(0.5, typ="0 < float <= 1", strict=False, gt=0, le=1,
                      doc="op only: the success rate under which it trips.")
    probe: str | None = _f(None, typ="http(s) URL", doc="Trip when this URL (a health check of "
                           "something the drill must not break) fails for all of the last "
                           "`for` (GET, 1 s timeout, polled every second).")
    for_: PositiveDuration = _f(5.0, typ="duration > 0", alias="for",
                                doc="How long the condition must hold before it trips.")

    @model_validator(mode="after")
    def _one_condition(self, info: ValidationInfo) -> Guardrail:
        if (self.op is None) == (self.probe is None):
            raise invalid("", "a guardrail needs exactly one of op (a class and its success "
                              "rate) or probe (a URL)")
        target = target_of(info)
        problem = None if self.op is None else check_class(
            self.op, target.classes if target else None)
        if problem is not None:
            raise invalid("op", problem)
        if self.probe is not None and not re.match(r"^https?://[^\s/]+", self.probe):
            raise invalid("probe", f"expected an http:// or https:// URL, got {self.probe!r}")
        if self.for_ > 3600:
            raise invalid("for", f"expected at most 1h, got {format_duration(self.for_)}")
        return self

    def describe(self) -> str:
        """``reads below 50% for 5s`` / ``probe http://.. failing for 5s``."""
        what = (f"{self.op} below {self.below:.0%}" if self.op is not None
                else f"probe {self.probe} failing")
        return f"{what} for {format_duration(self.for_)}"


class Objectives(SpecModel):
    """What a passing run shows."""

    rto: RtoObjectives = _f(RtoObjectives({}), typ="mapping class -> duration",
                            doc="Operation class -> max recovery time (below); unlisted "
                                "classes unjudged.")
    lost_acked_writes: int = _f(0, typ="int >= 0", strict=True, ge=0, doc="Data: most "
                                "acknowledged writes (and increments) that may be missing at "
                                "the end.")
    counters: Literal["exact", "ignore"] = _f(
        "exact", typ="exact|ignore", doc="Data: exact: every final counter lies within "
        "[acked, acked + indeterminate] increments (zero reads are judged by zero_reads).")
    zero_reads: Literal["forbid", "fresh", "ignore"] = _f(
        "forbid", typ="forbid|fresh|ignore", doc="Data: forbid: no read during the drill shows "
        "a counter at 0 after increments to it were acknowledged; fresh: only reads not marked "
        "degraded (stale) are judged.")
    split_brain: Literal["forbid", "ignore"] = _f(
        "forbid", typ="forbid|ignore", doc="Data: forbid: no two stores acked under one epoch, "
        "no stale-epoch ack, replicas equal after quiesce.")
    recovery: Literal["required", "ignore"] = _f(
        "required", typ="required|ignore", doc="required: every class came back by itself "
        "after the faults were lifted.")
    exposure: ExposureObjective | None = _f(
        None, typ="mapping", doc="Data: judge exposure (below); left out, it is measured and "
        "reported only.")

    _data: bool = PrivateAttr(default=True)

    @property
    def data_measured(self) -> bool:
        """Are the data objectives measured (the target has a final-read contract)?"""
        return self._data

    @model_serializer(mode="wrap")
    def _measured_only(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Dumped without the data objectives when they are not measured (so the effective
        drill, ``to_yaml``, reads back valid)."""
        data = handler(self)
        if not self._data and isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in DATA_OBJECTIVES}
        return data

    def without_data(self) -> Objectives:
        """A copy whose data objectives are not measured (left out of `names`)."""
        copy = self.model_copy()
        copy._data = False
        return copy

    def names(self, *, faults: bool = True) -> tuple[str, ...]:
        """The objectives this drill judges: ``rto.<class>``..., ``lost_acked_writes``,
        then ``counters``, ``zero_reads``, ``split_brain``, ``recovery`` unless ignored, and
        ``exposure`` last when set. Without ``faults`` (a drill with no fault) there is no
        recovery to measure: the ``rto.*`` and ``recovery`` objectives are not judged. When the
        data is not measured (`data_measured`), only ``rto.*`` and ``recovery`` remain."""
        names = [f"rto.{c}" for c in self.rto.as_mapping()] if faults else []
        data = self._data
        names += [n for n, on in (("lost_acked_writes", data),
                                  ("counters", data and self.counters == "exact"),
                                  ("zero_reads", data and self.zero_reads != "ignore"),
                                  ("split_brain", data and self.split_brain == "forbid"),
                                  ("recovery", self.recovery == "required" and faults),
                                  ("exposure", data and self.exposure is not None)) if on]
        return tuple(names)
