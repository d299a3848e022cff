"""The `drills` pytest plugin (entry point ``pytest11``): drill files as tests, and fixtures for
drills written in Python.

**Drill files as tests.** ``pytest path/`` collects every drill file under ``path`` as one test
item named after the drill: a ``.yaml``/``.yml`` file whose top level (column 0, block style)
has both a ``drill:`` and a ``timeline:`` key. Other YAML (compose files, CI workflows, data) is
left alone. Running the item runs the drill (`drills.gameday.run_one`); it passes when the run
went as its file expects (every objective met; for ``expect: fail``, ``journal.as_expected``),
and fails with the objectives table (target, measured, pass/fail) and the report's path, not a
traceback. A drill file that does not validate fails the same way, naming the field. Items
carry the markers ``drill`` and ``slow`` (and ``docker`` on the docker provider) and their fault
kinds as keywords, so ``-m "not slow"``, ``-k power_down`` and ``--junitxml`` work as usual;
Ctrl-C during a drill reverts its faults, then stops the session.

**Options.** ``--drills-provider local|docker`` (default: each drill file's own provider, which
is local unless it says docker; the fixtures' stack: local), ``--drills-out DIR`` (run and
session directories; default ``<rootdir>/runs``), ``--drills-keep`` (leave stacks running).
Ini options for the fixtures' stack: ``drills_drill`` (a drill file whose ``stack`` section
describes your system: a Compose file or local processes; default: the default target) and
``drills_stack_config`` (the target's knobs, ``KEY=VALUE`` lines).

**Fixtures** (the helpers are in `drills.fixtures` and `drills.chaos`):

- ``drill_stack_options`` (session): a `drills.fixtures.StackOptions`; override it in a
  ``conftest.py`` to set the target's knobs or name a drill file describing your system.
- ``drill_stack`` (session): the running `drills.stack.base.Stack`, torn down at the end.
- ``chaos`` (function): a `drills.chaos.Chaos` (``with chaos.power_down("dc-east"):``); every
  fault is reverted and the stack healthy again after the test.
- ``drill_load`` (function): a running `drills.fixtures.BackgroundLoad` (``.wait(s)``,
  ``.stats()``, ``.timeline()``, ``.history()``, ``.stop()``); size it per test with
  ``@pytest.mark.drill_load(users=8, rate=40)``.

The heavy modules (engine, load, stack) are imported only when a drill or a fixture is used:
this plugin loads in every pytest session of an environment where ``drills`` is installed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from drills.errors import SpecError

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr

    from drills.chaos import Chaos
    from drills.fixtures import BackgroundLoad, StackOptions, StackSession
    from drills.gameday import DrillOutcome
    from drills.spec import DrillSpec
    from drills.stack.base import Stack

MAX_SNIFF_BYTES = 1 << 20
_TOP_KEY = re.compile(r"^(drill|timeline)[ \t]*:", re.MULTILINE)
RESULT_FILES = ("report.html", "report.md")


@dataclass(frozen=True, slots=True)
class Settings:
    """The plugin's options for one pytest session (kept in ``config.stash``)."""

    provider: str | None
    out: Path
    keep: bool

    def run_dir(self, drill: str) -> Path:
        """A fresh run directory ``<out>/<drill>-<time>[-n]`` (not created)."""
        base = f"{drill}-{time.strftime('%Y%m%d-%H%M%S')}"
        n = 1
        while (self.out / (base if n == 1 else f"{base}-{n}")).exists():
            n += 1
        return self.out / (base if n == 1 else f"{base}-{n}")


SETTINGS = pytest.StashKey[Settings]()
OUTCOME = pytest.StashKey["DrillOutcome"]()
#: (drill, verdict, report) of every drill item that ran, for the terminal summary.
RAN = pytest.StashKey[list[tuple[str, str, Path]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--drills-*`` options and the ``drills_*`` ini options (module docstring)."""
    group = parser.getgroup("drills", "disaster-recovery drills")
    group.addoption("--drills-provider", choices=("local", "docker"), default=None,
                    help="stack provider for drills (default: each drill file's own, local "
                         "unless it says docker; local for the drill_stack fixture)")
    group.addoption("--drills-out", default=None, metavar="DIR",
                    help="directory for run and session directories (default: <rootdir>/runs)")
    group.addoption("--drills-keep", action="store_true",
                    help="leave stacks running after drills and sessions")
    parser.addini("drills_drill", type="string", default="",
                  help="drill_stack: a drill file (relative to rootdir) whose stack section "
                       "describes the system (its provider is the default provider)")
    parser.addini("drills_stack_config", type="linelist", default=[],
                  help="drill_stack: the target's knobs, one KEY=VALUE a line (e.g. "
                       "fsync=never)")


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's markers (so ``--strict-markers`` accepts them); keep the options."""
    for line in (
        "drill: a drill file collected by the drills plugin (runs a real drill)",
        "slow: end-to-end tests that start real processes for tens of seconds",
        "docker: needs a reachable Docker Engine",
        "drill_load(users, rate, timeout, locustfile): size the drill_load fixture's load",
    ):
        config.addinivalue_line("markers", line)
    out = Path(config.getoption("drills_out") or config.rootpath / "runs")
    if not out.is_absolute():
        out = config.invocation_params.dir / out
    config.stash[SETTINGS] = Settings(provider=config.getoption("drills_provider"),
                                      out=out.resolve(), keep=config.getoption("drills_keep"))


# -- drill files as test items --------------------------------------------------------------------

def looks_like_drill(path: Path) -> bool:
    """True for a YAML file whose top level has ``drill:`` and ``timeline:`` keys (read as text,
    not parsed: collection must stay cheap and must not fail on other people's YAML)."""
    try:
        if path.stat().st_size > MAX_SNIFF_BYTES:
            return False
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return set(_TOP_KEY.findall(text)) == {"drill", "timeline"}


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> DrillFile | None:
    """A `DrillFile` for a drill file (`looks_like_drill`); nothing for any other file."""
    if file_path.suffix in (".yaml", ".yml") and looks_like_drill(file_path):
        return DrillFile.from_parent(parent, path=file_path)
    return None


class DrillFile(pytest.File):
    """A drill file: one item, named after its ``drill:`` (the file's stem if it is invalid)."""

    def collect(self) -> Iterator[DrillItem]:
        """The drill's one item, validated now; an invalid file still yields an item (which
        fails, naming the field) rather than a collection error that would stop the session."""
        from drills.catalog import load_drill

        try:
            spec, error = load_drill(self.path), None
        except SpecError as exc:
            spec, error = None, exc
        name = spec.drill if spec is not None else self.path.stem
        item = DrillItem.from_parent(self, name=name, spec=spec, error=error)
        item.add_marker("drill")
        item.add_marker("slow")
        if spec is not None:
            provider = self.config.stash[SETTINGS].provider or spec.stack.provider
            if provider == "docker":
                item.add_marker("docker")
            item.extra_keyword_matches.update(f.kind for f in spec.timeline.all_faults)
        yield item


class DrillFailed(Exception):
    """A drill ran but did not go as its file expects (or ended in an error)."""

    def __init__(self, outcome: DrillOutcome) -> None:
        super().__init__(outcome.journal.verdict)
        self.outcome = outcome


class DrillItem(pytest.Item):
    """Runs one drill file (see the module docstring for pass and fail)."""

    def __init__(self, *, spec: DrillSpec | None, error: SpecError | None, **kwargs: object):
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.spec = spec
        self.error = error

    def runtest(self) -> None:
        """Run the drill (`drills.gameday.run_one`) into a fresh ``<out>/<drill>-<time>``.

        Raises `DrillFailed` unless the run went as the file expects, the file's `SpecError`
        if it is invalid, and KeyboardInterrupt when Ctrl-C or SIGTERM ended the run.
        """
        if self.spec is None:
            raise self.error or SpecError("unreadable drill file", source=str(self.path))
        from drills.engine import RunOptions
        from drills.gameday import run_one

        s = self.config.stash[SETTINGS]
        outcome = run_one(self.spec, RunOptions(out=s.run_dir(self.spec.drill),
                                                provider=s.provider, keep=s.keep,
                                                runs_root=s.out))
        self.stash[OUTCOME] = outcome
        self.user_properties.append(("drill_run_dir", str(outcome.run_dir)))
        self.user_properties.append(("drill_verdict", outcome.journal.verdict))
        if outcome.interrupted:
            raise KeyboardInterrupt  # every fault is reverted already; stop the session
        if outcome.exit_code != 0:
            raise DrillFailed(outcome)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: str | None = None) -> str | TerminalRepr:
        """The objectives table for a drill that failed, the field for an invalid file; a
        traceback only for anything else (a harness bug)."""
        if isinstance(excinfo.value, DrillFailed):
            return describe_failure(excinfo.value.outcome)
        if isinstance(excinfo.value, SpecError):
            return f"invalid drill file {self.path}:\n  {excinfo.value}"
        return super().repr_failure(excinfo, style)  # type: ignore[arg-type]

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Where the item comes from, for reports: the drill file."""
        return self.path, None, f"drill {self.name}"


def report_path(run_dir: Path) -> Path:
    """The human report of a run directory: ``report.html`` if there is one, else
    ``report.md`` (the run directory itself if neither was written)."""
    return next((run_dir / f for f in RESULT_FILES if (run_dir / f).is_file()), run_dir)


def describe_failure(outcome: DrillOutcome) -> str:
    """What a failed drill item shows: why, the objectives table, where the report is."""
    j, code = outcome.journal, outcome.exit_code
    missed = sum(o.passed is False for o in j.objectives)
    if outcome.error is not None:
        head = f"drill {j.drill} did not complete: {j.error}"
        if code == 4:
            head += f"\nfaults are still in force: run `drill rollback {outcome.run_dir}`"
    elif j.expect == "fail":
        fails_on = ", ".join(outcome.spec.fails_on) or "any objective"
        head = (f"drill {j.drill} is expected to fail on {fails_on} (a known weakness) and meet "
                f"every other objective; it did not (verdict {j.verdict}, {missed} missed)")
    else:
        head = f"drill {j.drill}: {j.verdict.upper()}, {missed} of {len(j.objectives)} " \
               f"objectives missed"
    lines = [head]
    if j.objectives:
        rows = [("objective", "target", "measured", "result")] + [
            (o.name, o.target, o.measured, {True: "pass", False: "FAIL", None: "unknown"}
             [o.passed]) for o in j.objectives]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines += ["", *("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
                        .rstrip() for r in rows)]
    lines += ["", f"report: {report_path(outcome.run_dir)}", f"run directory: {outcome.run_dir}"]
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List the run directory of every drill that ran (a CI log then points at the reports)."""
    items = terminalreporter.config.stash.get(RAN, [])
    if items:
        terminalreporter.section("drill reports")
        for name, verdict, path in items:
            terminalreporter.write_line(f"{name}: {verdict} — {path}")


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Remember each drill item's report for `pytest_terminal_summary`."""
    outcome = item.stash.get(OUTCOME, None)
    if outcome is not None:
        item.config.stash.setdefault(RAN, []).append(
            (item.name, outcome.journal.verdict, report_path(outcome.run_dir)))


# -- fixtures for drills written in Python ------------------------------------------------------

@pytest.fixture(scope="session")
def drill_stack_options(pytestconfig: pytest.Config) -> StackOptions:
    """The stack the session's tests share: ``--drills-provider`` and the ini options
    ``drills_drill`` and ``drills_stack_config`` (or override this fixture in a conftest.py).
    The drill file's provider is the default; ``--drills-provider`` overrides it."""
    from drills.catalog import parse_stack_config, read_yaml, resolve_target
    from drills.fixtures import StackOptions

    ini = str(pytestconfig.getini("drills_drill") or "")
    drill = pytestconfig.rootpath / ini if ini else None
    stack: dict[str, object] = {}
    if drill is not None:
        try:
            raw = read_yaml(drill.read_text(encoding="utf-8"), source=str(drill))
        except OSError as exc:
            raise SpecError(f"cannot read it: {exc}", source=str(drill)) from exc
        section = raw.get("stack")
        stack = section if isinstance(section, dict) else {}
    provider = pytestconfig.stash[SETTINGS].provider or str(stack.get("provider") or "local")
    # validated now, by the drill's target (a bad knob fails the first test that asks, naming
    # it), and as the target reads them (durations in seconds)
    knobs = parse_stack_config(list(pytestconfig.getini("drills_stack_config")),
                               resolve_target(stack, source=str(drill or "drills_drill")))
    return StackOptions(provider=provider, config=dict(knobs), drill=drill)


@pytest.fixture(scope="session")
def _drill_session(drill_stack_options: StackOptions,
                   pytestconfig: pytest.Config) -> Iterator[StackSession]:
    """The session's stack and directory (`drills.fixtures.open_session`)."""
    from drills.fixtures import open_session

    s = pytestconfig.stash[SETTINGS]
    with open_session(drill_stack_options, root=s.out, keep=s.keep) as session:
        yield session


@pytest.fixture(scope="session")
def drill_stack(_drill_session: StackSession) -> Stack:
    """The session's running stack (the default target's unless ``drills_drill`` names your
    system), torn down after the last test."""
    return _drill_session.stack


@pytest.fixture
def chaos(_drill_session: StackSession, request: pytest.FixtureRequest) -> Iterator[Chaos]:
    """Faults as context managers on ``drill_stack``; all reverted, stack healthy, after."""
    from drills.chaos import Chaos

    with Chaos(_drill_session.stack, _drill_session.ledger, prefix=request.node.name) as c:
        yield c


@pytest.fixture
def drill_load(_drill_session: StackSession,
               request: pytest.FixtureRequest) -> Iterator[BackgroundLoad]:
    """Locust against ``drill_stack`` for the whole test (``@pytest.mark.drill_load(...)``)."""
    from drills.fixtures import BackgroundLoad, LoadOptions, fresh_dir, slug

    marker = request.node.get_closest_marker("drill_load")
    try:
        options = LoadOptions(**marker.kwargs) if marker else LoadOptions()
    except TypeError as exc:
        raise SpecError(f"{exc} (takes users, rate, timeout, locustfile)",
                        source="drill_load") from exc
    record_dir = fresh_dir(_drill_session.dir / "load", slug(request.node.nodeid))
    with BackgroundLoad(_drill_session.stack, record_dir=record_dir, options=options) as load:
        yield load
