"""The drill file's sections as models: stack, load, objectives, analysis, and `DrillSpec`.

`DrillSpec` is the top level; its sections are the other models here, and the timeline
(`drills.spec.timeline.Timeline`) holds `drills.spec.faults.FaultSpec`s. Every field carries its
documentation (`doc_field`). Cross-field invariants that need no stack are validators here
(``fails_on`` naming an objective of the drill, ``settle`` long enough to show recovery) and in
the timeline; the errors they raise are located relative to the model (see
`drills.spec._base.invalid`).

Validation context: ``DrillSpec.model_validate(raw, context={BUGS_CONTEXT: names})`` also
checks ``stack.config.bugs`` against the target's known bug names (`drills.catalog` passes
ClipStream's ``BUGS``; this package never imports a target). Without it, bug names are only
checked for shape and duplicates.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Literal

import yaml
from pydantic import PrivateAttr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from drills.duration import Duration, PositiveDuration, format_duration
from drills.model import OP_CLASSES, Verdict
from drills.spec._base import SpecModel, invalid, unknown
from drills.spec._base import doc_field as _f
from drills.spec.timeline import Timeline

STACK_KNOBS: tuple[str, ...] = (
    "replication", "fsync", "detection", "pull_interval", "check_interval", "check_timeout",
    "write_retry", "request_timeout", "bugs",
)
#: The validation-context key holding the target's known bug names (a collection of str).
BUGS_CONTEXT = "bugs"
_FSYNC = re.compile(r"^(always|never|interval:[1-9]\d*)$")
_BUG_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")

KnobValue = str | float | tuple[str, ...]


class StackConfig(SpecModel):
    """ClipStream knobs; a knob left out keeps the service's own default."""

    replication: Literal["sync", "async"] | None = _f(
        None, typ="sync|async", doc="sync: the primary acks after the replica has the write; "
        "async: the replica pulls (acked writes can be lost on failover).")
    fsync: str | None = _f(None, typ="always|never|interval:<ms>",
                          doc="When a store fsyncs its log: every write, never, or every <ms>.")
    detection: PositiveDuration | None = _f(
        None, typ="duration > 0", doc="How long the primary must be unreachable before promotion.")
    pull_interval: PositiveDuration | None = _f(
        None, typ="duration > 0", doc="async replication: how often the replica pulls.")
    check_interval: PositiveDuration | None = _f(
        None, typ="duration > 0", doc="How often the coordinator health-checks each store.")
    check_timeout: PositiveDuration | None = _f(
        None, typ="duration > 0", doc="Timeout of one coordinator health check.")
    write_retry: PositiveDuration | None = _f(
        None, typ="duration > 0", doc="How long the api keeps retrying a write across a failover.")
    request_timeout: PositiveDuration | None = _f(
        None, typ="duration > 0", doc="Timeout of one api -> store request.")
    bugs: tuple[str, ...] = _f(
        (), typ="list of bug names", doc="Known disaster-recovery bugs to plant in ClipStream "
        "(below), to show a drill catches them; default none (the correct system). A text is "
        "read as comma-separated names.")

    @field_validator("bugs", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @model_validator(mode="after")
    def _fsync_policy(self, info: ValidationInfo) -> StackConfig:
        if self.fsync is not None and not _FSYNC.match(self.fsync):
            raise invalid("fsync", f"expected always, never or interval:<ms> (ms an integer "
                                   f">= 1), got {self.fsync!r}")
        known = (info.context or {}).get(BUGS_CONTEXT) if info else None
        _check_bugs(self.bugs, None if known is None else list(known))
        return self

    # Read-only mapping of the knobs the drill sets (durations as float seconds, bugs as a tuple
    # of names, only when some are planted), so stacks take ``spec.stack.config`` as a
    # ``Mapping[str, str | float | tuple[str, ...]]``: ``dict(config)``, ``.items()``.
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k in STACK_KNOBS if getattr(self, k) not in (None, ()))

    def items(self) -> tuple[tuple[str, KnobValue], ...]:
        return tuple((k, self[k]) for k in self.keys())

    def __getitem__(self, key: str) -> KnobValue:
        value: KnobValue | None = getattr(self, key, None) if key in STACK_KNOBS else None
        if value is None or value == ():
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: object) -> bool:
        return key in self.keys()


def _check_bugs(bugs: tuple[str, ...], known: Collection[str] | None) -> None:
    """Each bug name well formed, known (when ``known`` is given) and listed once."""
    first: dict[str, int] = {}
    for i, name in enumerate(bugs):
        if known is not None and name not in known:
            raise invalid(f"bugs[{i}]", unknown("bug", name, list(known), listing="known"))
        if known is None and not _BUG_NAME.match(name):
            raise invalid(f"bugs[{i}]", f"expected a bug name (lowercase letters, digits and "
                                        f"dashes), got {name!r}")
        if name in first:
            raise invalid(f"bugs[{i}]", f"{name!r} is listed twice (bugs[{first[name]}] and "
                                        f"bugs[{i}])")
        first[name] = i


class StackSpec(SpecModel):
    """Where the system under test runs."""

    provider: Literal["local", "docker"] = _f(
        "local", typ="local|docker", doc="local: each node a child process; docker: Compose.")
    compose: str | None = _f(None, typ="path", doc="docker only: the Compose file (relative to "
                            "the drill file); default: the project's docker-compose.yml.")
    config: StackConfig = _f(StackConfig(), typ="mapping", doc="ClipStream knobs (below).")

    @model_validator(mode="after")
    def _compose_needs_docker(self) -> StackSpec:
        if self.compose is not None and self.provider != "docker":
            raise invalid("compose", f"compose applies only to provider docker (provider is "
                                     f"{self.provider})")
        return self


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
    """Hot videos: counter writes and reads concentrated on a few keys."""

    videos: int = _f(4, typ="0 <= int <= 1000", strict=True, ge=0, le=1000,
                     doc="How many videos (the first the load learns) are hot.")
    share: float = _f(0.5, typ="0 <= float <= 1", strict=True, ge=0, le=1, allow_inf_nan=False,
                      doc="Share of view/like increments and counter reads that go to a hot "
                          "video.")


class LoadSpec(SpecModel):
    """The load: Locust users pacing toward a total request rate."""

    locustfile: str = _f("clipstream", typ="name|path", min_length=1,
                        doc="'clipstream' (built-in) or a path to a locustfile (relative to the "
                            "drill file).")
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
    hot: HotSpec = _f(HotSpec(), typ="mapping", doc="Hot videos (below).")


class RtoObjectives(SpecModel):
    """Per operation class: the longest acceptable recovery time, for every fault window."""

    upload: Duration | None = _f(None, typ="duration", doc="POST /videos.")
    feed: Duration | None = _f(None, typ="duration", doc="GET /feed.")
    view: Duration | None = _f(None, typ="duration", doc="POST /videos/{id}/views.")
    like: Duration | None = _f(None, typ="duration", doc="POST /videos/{id}/likes.")
    search: Duration | None = _f(None, typ="duration", doc="GET /search.")
    stats: Duration | None = _f(None, typ="duration", doc="GET /videos/{id}/stats.")

    def as_mapping(self) -> Mapping[str, float]:
        """The classes that have an objective, class -> seconds, in `OP_CLASSES` order."""
        return MappingProxyType({c: v for c in OP_CLASSES if (v := getattr(self, c)) is not None})


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
    def _one_condition(self) -> Guardrail:
        if (self.op is None) == (self.probe is None):
            raise invalid("", "a guardrail needs exactly one of op (a class and its success "
                              "rate) or probe (a URL)")
        if self.op is not None and self.op not in OP_CLASSES:
            raise invalid("op", unknown("class", self.op, list(OP_CLASSES), listing="classes"))
        if self.probe is not None and not re.match(r"^https?://[^\s/]+", self.probe):
            raise invalid("probe", f"expected an http:// or https:// URL, got {self.probe!r}")
        if self.for_ > 3600:
            raise invalid("for", f"expected at most 1h, got {format_duration(self.for_)}")
        return self

    def describe(self) -> str:
        """``search below 50% for 5s`` / ``probe http://.. failing for 5s``."""
        what = (f"{self.op} below {self.below:.0%}" if self.op is not None
                else f"probe {self.probe} failing")
        return f"{what} for {format_duration(self.for_)}"


class Objectives(SpecModel):
    """What a passing run shows."""

    rto: RtoObjectives = _f(RtoObjectives(), typ="mapping",
                           doc="Op class -> max recovery time (below); unlisted classes unjudged.")
    lost_acked_writes: int = _f(0, typ="int >= 0", strict=True, ge=0,
                               doc="Most acknowledged uploads that may be missing at the end.")
    counters: Literal["exact", "ignore"] = _f(
        "exact", typ="exact|ignore", doc="exact: every final view/like count lies within "
        "[acked, acked + indeterminate] increments (zero reads are judged by zero_reads).")
    zero_reads: Literal["forbid", "fresh", "ignore"] = _f(
        "forbid", typ="forbid|fresh|ignore", doc="forbid: no read during the drill shows a "
        "counter at 0 after increments to it were acknowledged; fresh: only reads not marked "
        "degraded (stale) are judged.")
    split_brain: Literal["forbid", "ignore"] = _f(
        "forbid", typ="forbid|ignore", doc="forbid: no two stores acked under one epoch, no "
        "stale-epoch ack, replicas equal after quiesce.")
    recovery: Literal["required", "ignore"] = _f(
        "required", typ="required|ignore", doc="required: every class came back by itself "
        "after the faults were lifted.")
    exposure: ExposureObjective | None = _f(
        None, typ="mapping", doc="Judge exposure (below); left out, it is measured and "
        "reported only.")

    def names(self, *, faults: bool = True) -> tuple[str, ...]:
        """The objectives this drill judges: ``rto.<class>``..., ``lost_acked_writes``,
        then ``counters``, ``zero_reads``, ``split_brain``, ``recovery`` unless ignored, and
        ``exposure`` last when set. Without ``faults`` (a drill with no fault) there is no
        recovery to measure: the ``rto.*`` and ``recovery`` objectives are not judged."""
        names = [f"rto.{c}" for c in self.rto.as_mapping()] if faults else []
        names.append("lost_acked_writes")
        names += [n for n, on in (("counters", self.counters == "exact"),
                                  ("zero_reads", self.zero_reads != "ignore"),
                                  ("split_brain", self.split_brain == "forbid"),
                                  ("recovery", self.recovery == "required" and faults),
                                  ("exposure", self.exposure is not None)) if on]
        return tuple(names)


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

    @model_validator(mode="after")
    def _catches_known_bugs(self, info: ValidationInfo) -> DrillSpec:
        known = (info.context or {}).get(BUGS_CONTEXT) if info else None
        try:
            _check_bugs(self.catches, None if known is None else list(known))
        except PydanticCustomError as exc:  # located at catches[i], not bugs[i]
            path = str((exc.context or {}).get("path", "")).replace("bugs", "catches", 1)
            raise invalid(path, str((exc.context or {}).get("message", exc))) from None
        return self

    @model_validator(mode="after")
    def _cross_section(self) -> DrillSpec:
        names = self.objectives.names()
        if self.fails_on and self.expect != "fail":
            raise invalid("fails_on", "fails_on applies only with expect: fail")
        for i, name in enumerate(self.fails_on):
            if name not in names:
                raise invalid(f"fails_on[{i}]", f"{name!r} is not an objective of this drill; "
                                                f"objectives: {', '.join(names)}")
        if self.timeline.all_faults and self.timeline.settle < self.analysis.hold:
            raise invalid("timeline.settle", f"settle ({format_duration(self.timeline.settle)}) "
                          f"is shorter than analysis.hold ({format_duration(self.analysis.hold)})"
                          f": recovery after the last fault could never be shown")
        return self

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
