"""Game days: several drills in sequence, one JUnit file, an index page, the worst exit code.

A game day is what CI runs on a schedule (``drill gameday``, ``.github/workflows/gameday.yml``).
Every drill named (every built-in when none is) is read and validated first, so a typo costs
seconds rather than the first drill's minute; then the drills run one after another, each with
its own stack in its own run directory ``OUT/<nn>-<drill>``. After each run the game day's
``index.html`` (links to every report), ``index.md`` (for a CI job summary) and the JUnit file
are rewritten, so a game day cut short still leaves what it did.

Exit code (DESIGN.md): the worst of the runs (0 < 1 < 2 < 3 < 4). A run that leaves a fault in
force (exit 4) or an interrupt (Ctrl-C, SIGTERM) ends the game day: the drills not run are
listed as skipped, with the reason, in the index and in JUnit.

JUnit: one ``testsuite`` per drill, one ``testcase`` per objective (`drills.report.junit`), with
one difference: in an ``expect: fail`` drill that went as expected, the objectives it was
expected to miss are not failures (the run met its purpose; CI must not go red for it), and one
that did not go as expected gets a failing ``expectation`` case saying why.

`run_one` runs one drill and tells whether it was interrupted; the pytest plugin uses it too.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from drills.cli import EXIT_ENV, EXIT_OK, EXIT_REVERT, exit_code
from drills.errors import DrillsError, Interrupted, SpecError
from drills.events import Observer, Quiet

if TYPE_CHECKING:  # the engine, the reports and pydantic load only when a game day runs, so
    # that `drill gameday --help` answers at once
    from drills.engine import RunOptions
    from drills.journal import Journal
    from drills.spec import DrillSpec

#: Builds the observer that watches one drill (e.g. ``lambda spec: LiveView(spec.drill)``).
Watch = Callable[["DrillSpec"], AbstractContextManager[Observer]]
#: The files of a run directory the index links to, in this order, when present.
REPORT_FILES = ("report.html", "report.md", "journal.json", "junit.xml")


@dataclass(frozen=True, slots=True)
class DrillOutcome:
    """One finished drill run: where it wrote, its journal, the error that ended it (if any), and
    whether an interrupt (Ctrl-C, SIGTERM) ended it. ``exit_code`` is `drills.cli.exit_code`'s."""

    spec: DrillSpec
    run_dir: Path
    journal: Journal
    error: DrillsError | None
    interrupted: bool

    @property
    def exit_code(self) -> int:
        return exit_code(self.error, self.journal.as_expected)


@dataclass(frozen=True, slots=True)
class GamedayRun:
    """One entry of a game day: the drill, and its outcome, or why it was skipped."""

    spec: DrillSpec
    run_dir: Path
    outcome: DrillOutcome | None = None
    skipped: str | None = None

    @property
    def exit_code(self) -> int | None:
        """The run's exit code; None when it did not run."""
        return None if self.outcome is None else self.outcome.exit_code


@dataclass(frozen=True, slots=True)
class GamedayResult:
    """A whole game day: every entry in order, and the files written for it."""

    runs: tuple[GamedayRun, ...]
    out: Path
    junit: Path
    started_at: float
    finished_at: float
    interrupted: bool = False

    @property
    def index(self) -> Path:
        return self.out / "index.html"

    @property
    def exit_code(self) -> int:
        """The worst exit code of the runs; an interrupt is at least an environment error."""
        worst = max((r.exit_code for r in self.runs if r.exit_code is not None), default=EXIT_OK)
        return max(worst, EXIT_ENV) if self.interrupted else worst


# -- running ------------------------------------------------------------------------------------

@contextlib.contextmanager
def watch_interrupts() -> Iterator[threading.Event]:
    """Within the block, note every SIGINT in the yielded event, then raise KeyboardInterrupt as
    Python would. The engine turns an interrupt into a run error after reverting every fault;
    this tells the caller it was an interrupt, so that it stops instead of going on. Main thread
    only (elsewhere, or where SIGINT is ignored, nothing is installed)."""
    seen = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous == signal.SIG_IGN:
        yield seen
        return

    def note(signum: int, frame: FrameType | None) -> None:
        seen.set()
        if callable(previous):
            previous(signum, frame)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, note)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def _says_interrupted(error: DrillsError | None) -> bool:
    # SIGTERM reaches us only as this error: the engine swaps the SIGTERM handler during a run
    # (see `drills.interrupts.sigterm_as_interrupt`), so `watch_interrupts` cannot see it.
    return isinstance(error, Interrupted)


def run_one(spec: DrillSpec, options: RunOptions) -> DrillOutcome:
    """Run one drill (`drills.engine.run_drill`); never raises a `DrillsError`.

    ``interrupted`` is true when Ctrl-C or SIGTERM ended the run (every fault was reverted by
    then); the caller should stop rather than start anything else.
    """
    with watch_interrupts() as seen:
        from drills.engine import run_drill

        result = run_drill(spec, options)
    interrupted = seen.is_set() or _says_interrupted(result.error)
    return DrillOutcome(spec, result.run_dir, result.journal, result.error, interrupted)


def load_drills(names: Sequence[str], *, provider: str | None,
                sets: Sequence[str] = ()) -> list[DrillSpec]:
    """Read and validate every drill, targets included, before anything runs.

    ``names`` are built-in names or paths; none means every built-in drill. Raises `SpecError`
    for the first bad one (nothing has been started).
    """
    from drills.catalog import builtin_drills, load_drill
    from drills.engine import preflight

    chosen = list(names) or [b.name for b in builtin_drills()]
    specs = [load_drill(n, sets=sets) for n in chosen]
    for spec in specs:
        preflight(spec, provider or spec.stack.provider)
    return specs


def plan_runs(specs: Sequence[DrillSpec], out: Path) -> list[GamedayRun]:
    """One entry per drill, run directory ``out/<nn>-<drill>``. Raises `SpecError` if one of
    those already holds files (a game day never writes over an earlier one's records)."""
    runs = [GamedayRun(s, out / f"{i:02d}-{s.drill}") for i, s in enumerate(specs, start=1)]
    for run in runs:
        if run.run_dir.is_dir() and any(run.run_dir.iterdir()):
            raise SpecError(f"{run.run_dir} already holds a run; give the game day a fresh "
                            f"directory", source="--out")
    return runs


def stop_reason(outcome: DrillOutcome) -> str | None:
    """Why the game day must stop after ``outcome``, or None to go on. Pure."""
    if outcome.interrupted:
        return f"not run: the game day was interrupted during {outcome.spec.drill}"
    if outcome.exit_code == EXIT_REVERT:
        return (f"not run: {outcome.spec.drill} left a fault in force (see "
                f"{outcome.run_dir}/ledger.jsonl; `drill rollback {outcome.run_dir}`)")
    return None


def run_gameday(
    drills: Sequence[str],
    *,
    provider: str | None,
    junit: Path,
    out: Path,
    sets: Sequence[str] = (),
    watch: Watch | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> GamedayResult:
    """Run ``drills`` in sequence (module docstring); write the index and the JUnit file.

    ``provider`` overrides every drill file's (None keeps each file's own); ``sets`` are
    ``--set`` overrides applied to every drill; ``watch`` builds an observer per drill (a live
    view); ``log`` gets a line when each drill starts and ends. Raises `SpecError`, before
    anything runs, for a bad drill, override or ``out``; every other failure is in the result.
    """
    out, junit = Path(out).resolve(), Path(junit).resolve()
    runs = plan_runs(load_drills(drills, provider=provider, sets=sets), out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    interrupted, stop = False, None

    def finish() -> GamedayResult:
        result = GamedayResult(tuple(runs), out, junit, started, time.time(), interrupted)
        write_junit(junit, result.runs)
        write_index(result)
        return result

    try:
        for i, run in enumerate(runs):
            if stop is not None:
                runs[i] = replace(run, skipped=stop)
                continue
            log(f"[{i + 1}/{len(runs)}] {run.spec.drill}: running in {run.run_dir}")
            with watch(run.spec) if watch else contextlib.nullcontext(Quiet()) as observer:
                from drills.engine import RunOptions

                outcome = run_one(run.spec, RunOptions(out=run.run_dir, provider=provider,
                                                       observer=observer, runs_root=out))
            runs[i] = replace(run, outcome=outcome)
            log(f"[{i + 1}/{len(runs)}] {run.spec.drill}: {outcome.journal.verdict}, exit "
                f"{outcome.exit_code}")
            interrupted, stop = outcome.interrupted, stop_reason(outcome)
            finish()
    except KeyboardInterrupt:  # between two drills: the current one has nothing in force
        interrupted = True
        runs = [r if r.outcome or r.skipped else replace(r, skipped="not run: interrupted")
                for r in runs]
    return finish()


# -- JUnit ----------------------------------------------------------------------------------------

def expected_misses(spec: DrillSpec) -> frozenset[str]:
    """The objectives an ``expect: fail`` drill may miss (``fails_on``, or any); none otherwise."""
    if spec.expect != "fail":
        return frozenset()
    return frozenset(spec.fails_on or spec.objectives.names())


def drill_suite(run: GamedayRun) -> ET.Element:
    """The ``testsuite`` of one entry (see the module docstring for ``expect: fail``)."""
    if run.outcome is None:
        el = ET.Element("testsuite", name=f"drill.{run.spec.drill}", tests="1", skipped="1",
                        failures="0", errors="0", time="0.000")
        case = ET.SubElement(el, "testcase", classname=f"drill.{run.spec.drill}", name="run")
        ET.SubElement(case, "skipped", message=run.skipped or "not run")
        return el
    journal = run.outcome.journal
    from drills.report.junit import suite

    el = suite(journal)
    if journal.as_expected and journal.expect == "fail":
        excused = expected_misses(run.spec)
        for case in el.findall("testcase"):
            failure = case.find("failure")
            if failure is not None and case.get("name") in excused:
                case.remove(failure)
                ET.SubElement(case, "system-out").text = (
                    f"missed as expected (expect: fail): {failure.get('message')}")
    elif journal.expect == "fail" and run.outcome.error is None:
        case = ET.SubElement(el, "testcase", classname=f"drill.{journal.drill}",
                             name="expectation")
        ET.SubElement(case, "failure", message=(
            "expected to miss " + " or ".join(sorted(expected_misses(run.spec))) + " and meet "
            "every other objective; it did not (the system or the drill changed)"))
    el.set("tests", str(len(el.findall("testcase"))))
    el.set("failures", str(len(el.findall("testcase/failure"))))
    return el


def write_junit(path: Path, runs: Sequence[GamedayRun]) -> None:
    """Write the game day's JUnit XML: one ``testsuite`` per entry, totals on the root."""
    root = ET.Element("testsuites", name="gameday")
    for run in runs:
        root.append(drill_suite(run))
    for attr in ("tests", "failures", "errors", "skipped"):
        root.set(attr, str(sum(int(s.get(attr) or 0) for s in root)))
    root.set("time", f"{sum(float(s.get('time') or 0) for s in root):.3f}")
    ET.indent(root)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


# -- the index page -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class IndexRow:
    """One line of the index: what ran, how it ended, and links relative to the index."""

    drill: str
    description: str
    expect: str
    verdict: str
    outcome: str
    exit_code: int | None
    objectives: str
    duration: str
    links: tuple[tuple[str, str], ...]
    note: str


def index_rows(result: GamedayResult) -> list[IndexRow]:
    """The rows of the index, in run order. Pure apart from checking which files exist."""
    rows = []
    for run in result.runs:
        o = run.outcome
        j = o.journal if o else None
        met = sum(ob.passed is True for ob in j.objectives) if j else 0
        links = tuple((name, f"{run.run_dir.relative_to(result.out)}/{name}")
                      for name in REPORT_FILES if (run.run_dir / name).is_file())
        outcome = ("skipped" if o is None else "as expected" if o.exit_code == EXIT_OK
                   else "NOT as expected" if j and j.error is None else "error")
        rows.append(IndexRow(
            drill=run.spec.drill, description=run.spec.description, expect=run.spec.expect,
            verdict=j.verdict if j else "—", outcome=outcome, exit_code=run.exit_code,
            objectives=f"{met}/{len(j.objectives)}" if j else "—",
            duration=f"{j.duration_s:.0f} s" if j else "—", links=links,
            note=(j.error or "") if j else (run.skipped or ""),
        ))
    return rows


_HTML_SOURCE = """\
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Game day — exit {{ code }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.skip{color:#777}
</style></head><body>
<h1>Game day: <span class="{{ 'ok' if code == 0 else 'bad' }}">exit {{ code }}</span></h1>
<p>{{ started }} · {{ rows|length }} drills · {{ total }} · JUnit: <code>{{ junit }}</code></p>
<table><thead><tr><th>drill</th><th>expect</th><th>verdict</th><th>outcome</th><th>exit</th>
<th>objectives met</th><th>time</th><th>reports</th></tr></thead><tbody>
{% for r in rows %}<tr>
<td><b>{{ r.drill }}</b><br><small>{{ r.description }}</small>
{% if r.note %}<br><small class="bad">{{ r.note }}</small>{% endif %}</td>
<td>{{ r.expect }}</td><td>{{ r.verdict }}</td>
<td class="{{ 'ok' if r.exit_code == 0 else 'skip' if r.exit_code is none else 'bad' }}">
{{ r.outcome }}</td><td>{{ '—' if r.exit_code is none else r.exit_code }}</td>
<td>{{ r.objectives }}</td><td>{{ r.duration }}</td>
<td>{% for name, href in r.links %}<a href="{{ href }}">{{ name }}</a> {% endfor %}</td>
</tr>{% endfor %}
</tbody></table></body></html>
"""


def render_index_html(result: GamedayResult) -> str:
    """``index.html``: the game day's exit code and one row per drill linking its reports."""
    import jinja2

    page = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return page.from_string(_HTML_SOURCE).render(
        code=result.exit_code, rows=index_rows(result), junit=str(result.junit),
        started=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(result.started_at)),
        total=f"{result.finished_at - result.started_at:.0f} s"
        + (" · interrupted" if result.interrupted else ""),
    )


def render_index_md(result: GamedayResult) -> str:
    """``index.md``: the same as a Markdown table (for a CI job summary)."""
    lines = [f"## Game day: exit {result.exit_code}", "",
             "| drill | expect | verdict | outcome | exit | objectives met | reports |",
             "|---|---|---|---|---|---|---|"]
    for r in index_rows(result):
        cells = [f"**{r.drill}**", r.expect, r.verdict, r.outcome,
                 "—" if r.exit_code is None else str(r.exit_code), r.objectives,
                 " ".join(name for name, _ in r.links) or r.note]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_index(result: GamedayResult) -> Path:
    """Write ``index.html`` and ``index.md`` into the game day's directory; return the page."""
    result.index.write_text(render_index_html(result), encoding="utf-8")
    (result.out / "index.md").write_text(render_index_md(result), encoding="utf-8")
    return result.index


def summary_table(result: GamedayResult) -> Table:
    """The game day as a rich table, for the terminal."""
    table = Table(title=f"game day: exit {result.exit_code}")
    for col in ("drill", "expect", "verdict", "outcome", "exit", "objectives met", "time"):
        table.add_column(col)
    for r in index_rows(result):
        table.add_row(r.drill, r.expect, r.verdict, r.outcome,
                      "—" if r.exit_code is None else str(r.exit_code), r.objectives, r.duration)
    return table


# -- the ``drill gameday`` command (registered by drills.cli / drills.commands) -------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``drill gameday``."""
    parser.add_argument("drills", nargs="*", metavar="DRILL",
                        help="built-in names or drill files (default: every built-in drill)")
    parser.add_argument("--provider", choices=("local", "docker"),
                        help="run every drill on this provider (default: each file's own)")
    parser.add_argument("--junit", type=Path, default=None,
                        help="JUnit XML to write, one test case per objective "
                             "(default: OUT/junit.xml)")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for the run directories and index.html "
                             "(default: runs/gameday-<time>)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of every drill (repeatable)")


def cmd_gameday(args: argparse.Namespace, console: Console) -> int:
    """``drill gameday``: run with a live view per drill, print the summary; the exit code."""
    from drills.engine import run_classes
    from drills.live import LiveView

    out = args.out or Path("runs") / f"gameday-{time.strftime('%Y%m%d-%H%M%S')}"
    result = run_gameday(args.drills, provider=args.provider, out=out,
                         junit=args.junit or Path(out) / "junit.xml",
                         sets=args.sets, watch=lambda spec: LiveView(spec.drill, console,
                                                          classes=run_classes(spec)),
                         log=lambda line: console.print(line, highlight=False))
    console.print(summary_table(result))
    console.print(f"game day: exit {result.exit_code} · {result.index} · {result.junit}",
                  highlight=False)
    return result.exit_code
