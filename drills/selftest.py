"""The detection-power self-test: what are the drills worth? (``drill selftest``)

A drill's pass is only worth what the drill can catch. A target may know named, realistic
disaster-recovery bugs it can plant (`drills.spec.context.TargetInfo.bugs`, set with the
``stack.config.bugs`` knob: the shipped demonstration target has seven); the self-test runs
drills against the correct system and against each bug, and builds the **detection matrix**:
which drill caught which bug, by which objective, in how many of N runs.

Rules (so that a "caught" means something):

- A bug is **caught** by a run when one of that run's *data-safety* objectives failed
  (`DATA_OBJECTIVES`: lost acknowledged writes, counters, zero reads, split brain / divergence).
  A drill that only missed an RTO objective did not catch a data bug; an ``exposure`` miss
  (too little at risk) is inconclusive, not a catch; a run that ended in an error caught nothing.
- The **correct** system must go as its drill expects (exit 0) in every run.
- Which drills run: by default the smallest set of built-in drills whose ``catches`` cover
  every selected bug (`smallest_cover`), else the ones named with ``--drills``. The correct
  system runs every selected drill; each bug runs on the selected drills whose
  ``catches`` name it; ``--full`` runs every bug on every selected drill (the whole matrix).

Exit code: 0 when the correct system passed every run of every selected drill and every
selected bug was caught by at least one drill in every run; 1 otherwise; 3 if a run ended in a
harness or environment error. The matrix is written as ``selftest.json`` and ``selftest.html``
into the output directory, next to every run's own directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jinja2

from drills.catalog import builtin_drills, load_drill, parse_drill
from drills.cli import EXIT_ENV, EXIT_MISSED, EXIT_OK, exit_code
from drills.engine import RunOptions, RunResult, run_drill
from drills.errors import Interrupted, SpecError
from drills.spec import DrillSpec
from drills.targets import for_spec

#: Objectives whose miss counts as catching a data bug.
DATA_OBJECTIVES: tuple[str, ...] = ("lost_acked_writes", "counters", "zero_reads", "split_brain")
CORRECT = "correct"


@dataclass(frozen=True, slots=True)
class Cell:
    """One run of one drill against the correct system (``bug`` = ``correct``) or a bug."""

    drill: str
    bug: str
    run: int
    verdict: str
    exit_code: int
    caught_by: tuple[str, ...]
    missed: tuple[str, ...]
    writes_at_risk: int | None
    seconds: float
    run_dir: str
    error: str | None = None

    @property
    def caught(self) -> bool:
        return bool(self.caught_by) and self.error is None

    @property
    def ok(self) -> bool:
        """For the correct system: the run went as the drill expects."""
        return self.exit_code == EXIT_OK


@dataclass(frozen=True, slots=True)
class Plan:
    """What to run: drills (in order), bugs, which drills each bug runs on, how many rounds."""

    drills: tuple[DrillSpec, ...]
    bugs: tuple[str, ...]
    targets: dict[str, tuple[str, ...]]
    runs: int
    provider: str | None = None


@dataclass
class SelftestResult:
    """Every cell so far, and the verdict over them."""

    plan: Plan
    out: Path
    started_at: float
    cells: list[Cell] = field(default_factory=list)
    finished_at: float | None = None

    def of(self, drill: str, bug: str) -> list[Cell]:
        return [c for c in self.cells if c.drill == drill and c.bug == bug]

    def uncaught_rounds(self, bug: str) -> list[int]:
        """Rounds in which no drill caught ``bug``."""
        return [r for r in range(1, self.plan.runs + 1)
                if not any(c.caught for c in self.cells if c.bug == bug and c.run == r)]

    @property
    def false_alarms(self) -> list[Cell]:
        return [c for c in self.cells if c.bug == CORRECT and not c.ok]

    @property
    def exit_code(self) -> int:
        if any(c.error is not None for c in self.cells):
            return EXIT_ENV
        if self.false_alarms or any(self.uncaught_rounds(b) for b in self.plan.bugs):
            return EXIT_MISSED
        return EXIT_OK

    def to_dict(self) -> dict[str, object]:
        p = self.plan
        return {
            "runs": p.runs, "provider": p.provider, "drills": [d.drill for d in p.drills],
            "bugs": list(p.bugs), "targets": {b: list(d) for b, d in p.targets.items()},
            "data_objectives": list(DATA_OBJECTIVES), "exit_code": self.exit_code,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "matrix": matrix(self), "cells": [asdict(c) for c in self.cells],
            "uncaught": {b: self.uncaught_rounds(b) for b in p.bugs},
            "false_alarms": [asdict(c) for c in self.false_alarms],
        }


def make_plan(*, drills: Sequence[str] = (), bugs: Sequence[str] = (), runs: int = 1,
              full: bool = False, provider: str | None = None,
              sets: Sequence[str] = ()) -> Plan:
    """Resolve drill names and bug names into a `Plan`; raise `SpecError` for unknown ones,
    for a bug no selected drill declares (without ``full``), or for ``runs`` outside 1..100.
    ``sets`` (``drill run --set`` strings) apply to every selected drill, the correct runs and
    the bug runs alike (e.g. ``stack.config.fsync=never``, or a shorter ``timeline.settle``)."""
    if not 1 <= runs <= 100:
        raise SpecError(f"--runs must be within 1..100, got {runs}", source="arguments")
    candidates = tuple(load_drill(n, sets) for n in drills) if drills else \
        tuple(load_drill(d.path, sets) for d in builtin_drills())
    known = tuple(dict.fromkeys(b for s in candidates for b in for_spec(s).info.bugs))
    for bug in bugs:
        if bug not in known:
            listing = ", ".join(known) or "none (the drills' targets plant no bugs)"
            raise SpecError(f"unknown bug {bug!r}; known: {listing}", source="arguments")
    chosen = tuple(bugs) or known
    specs = candidates if drills else smallest_cover(candidates, chosen)
    targets: dict[str, tuple[str, ...]] = {}
    for bug in chosen:
        on = tuple(s.drill for s in specs if full or bug in s.catches)
        if not on:
            raise SpecError(f"no selected drill declares it catches {bug!r} (use --full to run "
                            f"every bug on every drill)", source="arguments")
        targets[bug] = on
    return Plan(specs, chosen, targets, runs, provider)


def smallest_cover(candidates: Sequence[DrillSpec], bugs: Sequence[str]) -> tuple[DrillSpec, ...]:
    """A small set of drills whose ``catches`` cover ``bugs``: greedy set cover (the drill that
    declares the most still-uncovered bugs first; ties by name), in catalog order. Bugs no
    drill declares are left to `make_plan` to report."""
    left, picked = set(bugs), []
    while left:
        best = max(candidates, key=lambda d: (len(left & set(d.catches)), -candidates.index(d)))
        if not left & set(best.catches):
            break
        picked.append(best)
        left -= set(best.catches)
    return tuple(d for d in candidates if d in picked)


def _cell(spec: DrillSpec, bug: str, run: int, result: RunResult, seconds: float) -> Cell:
    j = result.journal
    missed = tuple(o.name for o in j.objectives if o.passed is False)
    return Cell(
        drill=spec.drill, bug=bug, run=run, verdict=j.verdict,
        exit_code=exit_code(result.error, j.as_expected),
        caught_by=tuple(n for n in missed if n in DATA_OBJECTIVES), missed=missed,
        writes_at_risk=j.metrics.get("writes_at_risk"), seconds=round(seconds, 1),
        run_dir=str(result.run_dir), error=None if result.error is None else str(result.error),
    )


def with_bug(spec: DrillSpec, bug: str) -> DrillSpec:
    """The drill as resolved (its nemesis seed kept, so every cell of a row replays the same
    schedule) with ``stack.config.bugs`` set to ``[bug]``; the correct system: none."""
    if bug == CORRECT:
        return spec
    base = Path(spec.source).parent if spec.source != "<string>" else None
    return parse_drill(spec.to_yaml(), source=spec.source, base_dir=base,
                       sets=[f"stack.config.bugs=[{bug}]"])


def run_selftest(plan: Plan, *, out: Path,
                 log: Callable[[str], None] = lambda _line: None) -> SelftestResult:
    """Run the plan round by round (every cell of round 1, then round 2, ...), rewriting
    ``selftest.json`` / ``selftest.html`` after each run so that an interrupted self-test still
    leaves what it measured. An interrupted drill (Ctrl-C, SIGTERM: its faults reverted by the
    engine) ends the self-test: KeyboardInterrupt propagates after the files are written."""
    out.mkdir(parents=True, exist_ok=True)
    result = SelftestResult(plan, out, time.time())
    jobs = [(s, CORRECT) for s in plan.drills] + [
        (s, bug) for bug in plan.bugs for s in plan.drills if s.drill in plan.targets[bug]]
    try:
        for run in range(1, plan.runs + 1):
            for spec, bug in jobs:
                t = time.monotonic()
                where = out / f"r{run}-{spec.drill}-{bug}"
                res = run_drill(with_bug(spec, bug), RunOptions(
                    out=where, provider=plan.provider, runs_root=out))
                cell = _cell(spec, bug, run, res, time.monotonic() - t)
                result.cells.append(cell)
                log(_line(cell))
                write_files(result)
                if isinstance(res.error, Interrupted):  # Ctrl-C / SIGTERM ends the self-test
                    raise KeyboardInterrupt
    finally:
        result.finished_at = time.time()
        write_files(result)
    return result


def _line(c: Cell) -> str:
    if c.error is not None:
        return f"run {c.run} {c.drill} [{c.bug}]: ERROR after {c.seconds:.0f} s: {c.error}"
    if c.bug == CORRECT:
        what = "passed" if c.ok else f"FALSE ALARM ({c.verdict}; missed {', '.join(c.missed)})"
    else:
        what = (f"caught by {', '.join(c.caught_by)}" if c.caught else
                f"NOT caught ({c.verdict}" + (f"; missed {', '.join(c.missed)}" if c.missed
                                               else "") + ")")
    risk = "" if c.writes_at_risk is None else f", {c.writes_at_risk} writes at risk"
    return f"run {c.run} {c.drill} [{c.bug}]: {what}{risk}, {c.seconds:.0f} s"


def matrix(result: SelftestResult) -> dict[str, dict[str, str]]:
    """drill -> column (``correct`` or a bug) -> ``k/N passed`` or ``k/N caught (objectives)``;
    cells not run are absent."""
    out: dict[str, dict[str, str]] = {}
    for spec in result.plan.drills:
        row: dict[str, str] = {}
        for col in (CORRECT, *result.plan.bugs):
            cells = result.of(spec.drill, col)
            if not cells:
                continue
            if col == CORRECT:
                row[col] = f"{sum(c.ok for c in cells)}/{len(cells)} passed"
            else:
                by = sorted({o for c in cells for o in c.caught_by})
                row[col] = (f"{sum(c.caught for c in cells)}/{len(cells)} caught"
                            + (f" ({', '.join(by)})" if by else ""))
        out[spec.drill] = row
    return out


_HTML = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""\
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>drills self-test — exit {{ code }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.none{color:#999}
</style></head><body>
<h1>Detection matrix: <span class="{{ 'ok' if code == 0 else 'bad' }}">exit {{ code }}</span></h1>
<p>{{ runs }} run(s) per cell · {{ total }} · a bug is caught when a data-safety objective
({{ data|join(', ') }}) fails; an RTO miss alone or an inconclusive exposure is not a catch.</p>
<table><thead><tr><th>drill</th>{% for col in cols %}<th>{{ col }}</th>{% endfor %}</tr></thead>
<tbody>{% for drill, row in rows %}<tr><td><b>{{ drill }}</b></td>
{% for text, css in row %}<td class="{{ css }}">{{ text }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
{% if uncaught %}<p class="bad">Not caught in some run: {{ uncaught|join(', ') }}</p>{% endif %}
{% if alarms %}<p class="bad">False alarms on the correct system: {{ alarms|join('; ') }}</p>
{% endif %}</body></html>
""")


def _css(result: SelftestResult, drill: str, col: str) -> str:
    cells = result.of(drill, col)
    if not cells:
        return "none"
    good = all(c.ok for c in cells) if col == CORRECT else all(c.caught for c in cells)
    return "ok" if good else "bad"


def render_html(result: SelftestResult) -> str:
    """``selftest.html``: the matrix, green where every run went right, red otherwise."""
    cols = [CORRECT, *result.plan.bugs]
    rows = [(drill, [(row.get(c, "—"), _css(result, drill, c)) for c in cols])
            for drill, row in matrix(result).items()]
    end = result.finished_at or time.time()
    return _HTML.render(
        code=result.exit_code, runs=result.plan.runs, total=f"{end - result.started_at:.0f} s",
        data=DATA_OBJECTIVES, cols=cols, rows=rows,
        uncaught=[b for b in result.plan.bugs if result.uncaught_rounds(b)],
        alarms=[f"{c.drill} run {c.run} ({c.verdict})" for c in result.false_alarms])


def write_files(result: SelftestResult) -> None:
    """``selftest.json`` and ``selftest.html`` in the output directory (atomically)."""
    for name, text in (("selftest.json", json.dumps(result.to_dict(), indent=2)),
                       ("selftest.html", render_html(result))):
        tmp = result.out / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(result.out / name)
