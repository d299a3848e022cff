"""The journal: the whole truth of one run, written as ``journal.json``.

Top-level keys: ``drill``, ``description``, ``verdict`` (``pass``/``fail``/``inconclusive``/
``aborted``/``error``; inconclusive: every objective but ``exposure`` held, too little was at
risk; aborted: a guardrail tripped),
``expect``, ``as_expected`` (the verdict is what ``expect`` says: for ``expect: fail`` drills,
only the objectives named in ``fails_on`` missed), ``started_at``, ``finished_at``,
``provider``, ``load_started_at``, ``phases`` (name, started_at, ended_at), ``faults`` (id,
kind, target, scheduled offset, effective injected/reverted times), ``baseline`` (success rate
per class before any fault), ``objectives`` (list of {name, target, measured, passed}),
``metrics`` (``rto_s`` per class, ``lost_acked_writes``, ``lost_increments``, ``rpo_s``,
``counters_out_of_bounds``, ``zero_reads``, ``split_brain``, ``split_brain_sources``,
``divergent_keys``, ``writes_at_risk`` and the rest of the exposure, ...), ``checks``
(every check's summary and findings), ``spec`` (the drill file as run), ``environment`` and
``error``. The engine fills a `Journal` as the run goes; reports are rendered from it alone.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from drills import __version__
from drills.errors import Aborted, DrillsError
from drills.model import CheckResult, FaultRecord, jsonable

JOURNAL_FILE = "journal.json"


@dataclass(slots=True)
class PhaseRecord:
    name: str
    started_at: float
    ended_at: float | None = None


@dataclass(frozen=True, slots=True)
class Objective:
    """One objective of the drill file: what was asked, what was measured, and the outcome."""

    name: str
    target: str
    measured: str
    passed: bool | None


@dataclass(frozen=True, slots=True)
class Judgement:
    """What the checks concluded: objectives, the metrics block and every check's evidence."""

    objectives: tuple[Objective, ...]
    metrics: dict[str, Any]
    checks: tuple[CheckResult, ...]
    as_expected: bool | None  # the run turned out as the drill's ``expect`` says
    crashed: tuple[str, ...] = ()  # checks that raised instead of judging (their verdict: None)

    @property
    def passed(self) -> bool:
        return all(o.passed is True for o in self.objectives)

    @property
    def inconclusive(self) -> bool:
        """Nothing failed but the exposure objective: the drill put too little at risk for its
        data objectives to mean anything (a pass must be earned)."""
        missed = [o.name for o in self.objectives if o.passed is not True]
        return missed == ["exposure"]

    @property
    def verdict(self) -> str:
        """``pass``, ``inconclusive`` (see `inconclusive`) or ``fail``."""
        return "pass" if self.passed else "inconclusive" if self.inconclusive else "fail"


@dataclass
class Journal:
    drill: str
    description: str
    provider: str
    expect: str
    spec: dict[str, Any]
    started_at: float
    verdict: str = "error"
    as_expected: bool | None = None
    finished_at: float | None = None
    load_started_at: float | None = None
    phases: list[PhaseRecord] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    baseline: dict[str, float] = field(default_factory=dict)
    objectives: list[Objective] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    target: str = ""
    classes: tuple[str, ...] = ()  # the run's operation classes, in report order

    @classmethod
    def start(cls, spec: Any, *, provider: str) -> Journal:
        return cls(
            drill=spec.drill, description=spec.description, provider=provider,
            expect=spec.expect, spec=spec.model_dump(mode="json", by_alias=True),
            started_at=time.time(), environment=environment(),
            target=spec.stack.target_name,
        )

    def enter(self, phase: PhaseRecord) -> None:
        if self.phases and self.phases[-1].ended_at is None:
            self.phases[-1].ended_at = phase.started_at
        self.phases.append(phase)

    def judge(self, judgement: Judgement) -> None:
        self.objectives = list(judgement.objectives)
        self.metrics = dict(judgement.metrics)
        self.checks = list(judgement.checks)
        self.verdict = judgement.verdict
        self.as_expected = judgement.as_expected

    def fail(self, error: DrillsError) -> None:
        """The run ended in ``error``: verdict ``aborted`` for a guardrail that tripped (the
        drill failed: it hurt what it must not), ``error`` otherwise."""
        self.verdict = "aborted" if isinstance(error, Aborted) else "error"
        self.error = f"{type(error).__name__}: {error}"
        self.finish()

    def finish(self) -> None:
        now = time.time()
        if self.phases and self.phases[-1].ended_at is None:
            self.phases[-1].ended_at = now
        self.finished_at = now

    @property
    def duration_s(self) -> float:
        return (self.finished_at or time.time()) - self.started_at

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["faults"] = [f.to_dict() for f in self.faults]
        d["checks"] = [c.to_dict() for c in self.checks]
        d["classes"] = list(self.classes)
        d["metrics"] = jsonable(self.metrics)
        return d

    def write(self, run_dir: Path) -> Path:
        path = Path(run_dir) / JOURNAL_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False))
        tmp.replace(path)
        return path


def environment() -> dict[str, str]:
    return {
        "drills": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpus": str(os.cpu_count()),
    }
