"""``drill selftest``: the plan, the rules for "caught", the matrix, the files and the exit code.

The unit tests replace `run_drill` with a fake that returns hand-made journals, so every rule is
shown both ways without starting anything: a data objective failing is a catch, an RTO miss alone
or an inconclusive exposure is not, an error is not, the correct ClipStream failing any drill
is a false alarm. The end-to-end test (slow) runs the real thing on local processes for one
drill and one bug: the correct ClipStream passes it and the planted bug is caught.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drills import selftest
from drills.catalog import builtin_drills, load_drill
from drills.engine import RunResult
from drills.errors import EnvironmentError_, SpecError
from drills.journal import Journal, Objective
from drills.targets.clipstream import BUGS

DRILL = [sys.executable, "-m", "drills.cli"]


def _journal(spec, missed: tuple[str, ...]) -> Journal:  # type: ignore[no-untyped-def]
    j = Journal.start(spec, provider="local")
    j.objectives = [Objective(n, "t", "m", n not in missed) for n in spec.objectives.names()]
    j.verdict = "fail" if missed else "pass"
    j.as_expected = spec.judge({o.name: o.passed for o in j.objectives})
    j.metrics = {"writes_at_risk": 123}
    return j


def fake_runs(monkeypatch: pytest.MonkeyPatch, outcomes: dict[tuple[str, str], object]) -> list:
    """``run_drill`` answering from ``outcomes[(drill, bug)]``: a tuple of missed objectives,
    or an exception instance for a run that ended in an error."""
    calls: list[tuple[str, tuple[str, ...]]] = []

    def run(spec, options):  # type: ignore[no-untyped-def]
        bug = spec.stack.config.bugs[0] if spec.stack.config.bugs else "correct"
        calls.append((spec.drill, spec.stack.config.bugs))
        out = outcomes.get((spec.drill, bug), ())
        if isinstance(out, Exception):
            j = _journal(spec, ())
            j.fail(out)  # type: ignore[arg-type]
            return RunResult(options.out, j, out)  # type: ignore[arg-type]
        return RunResult(options.out, _journal(spec, out), None)  # type: ignore[arg-type]

    monkeypatch.setattr(selftest, "run_drill", run)
    return calls


def test_the_default_plan_is_a_small_set_of_drills_that_covers_every_bug() -> None:
    plan = selftest.make_plan()
    assert set(plan.bugs) == set(BUGS)
    declared = [load_drill(d.path) for d in builtin_drills() if load_drill(d.path).catches]
    assert {s.drill for s in plan.drills} <= {d.drill for d in declared}
    assert len(plan.drills) < len(declared)  # smaller than every declaring drill
    for bug, drills in plan.targets.items():  # every bug has a drill that says it catches it
        assert drills and all(bug in load_drill(d).catches for d in drills)
    # dropping any drill of the cover leaves some bug uncovered: nothing is run for nothing
    for spec in plan.drills:
        rest = {b for s in plan.drills if s is not spec for b in s.catches}
        assert not set(BUGS) <= rest, spec.drill


def test_bad_plans_are_refused_with_the_reason() -> None:
    with pytest.raises(SpecError, match="unknown bug 'nope'"):
        selftest.make_plan(bugs=["nope"])
    with pytest.raises(SpecError, match="no selected drill declares it catches 'ack-before-fsync'"):
        selftest.make_plan(drills=["deposed-primary"], bugs=["ack-before-fsync"])
    with pytest.raises(SpecError, match=r"--runs must be within 1\.\.100"):
        selftest.make_plan(runs=0)
    full = selftest.make_plan(drills=["deposed-primary"], bugs=["ack-before-fsync"], full=True)
    assert full.targets == {"ack-before-fsync": ("deposed-primary",)}
    with pytest.raises(SpecError, match=r"timeline\.setle"):
        selftest.make_plan(drills=["deposed-primary"], sets=["timeline.setle=5s"])


def test_sets_apply_to_every_drill_of_the_plan() -> None:
    plan = selftest.make_plan(sets=["timeline.settle=5s", "stack.config.fsync=never"])
    assert plan.drills and all(s.timeline.settle == 5.0 for s in plan.drills)
    assert all(s.stack.config.fsync == "never" for s in plan.drills)
    assert selftest.with_bug(plan.drills[0], "no-fencing").timeline.settle == 5.0


def test_a_data_objective_failing_is_a_catch_and_the_matrix_says_which(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = fake_runs(monkeypatch, {("deposed-primary", "no-fencing"):
                                    ("lost_acked_writes", "split_brain", "rto.upload")})
    plan = selftest.make_plan(drills=["deposed-primary"], bugs=["no-fencing"], runs=2)
    result = selftest.run_selftest(plan, out=tmp_path)
    assert calls == [("deposed-primary", ()), ("deposed-primary", ("no-fencing",))] * 2
    assert result.exit_code == 0
    assert selftest.matrix(result) == {"deposed-primary": {
        "correct": "2/2 passed", "no-fencing": "2/2 caught (lost_acked_writes, split_brain)"}}
    data = json.loads((tmp_path / "selftest.json").read_text())
    assert data["exit_code"] == 0 and data["uncaught"] == {"no-fencing": []}
    assert len(data["cells"]) == 4 and "2/2 caught" in (tmp_path / "selftest.html").read_text()


@pytest.mark.parametrize("missed", [("rto.upload", "rto.like", "recovery"), ("exposure",), ()])
def test_an_rto_miss_an_inconclusive_exposure_or_a_pass_is_not_a_catch(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, missed: tuple[str, ...]) -> None:
    fake_runs(monkeypatch, {("deposed-primary", "no-fencing"): missed})
    plan = selftest.make_plan(drills=["deposed-primary"], bugs=["no-fencing"])
    result = selftest.run_selftest(plan, out=tmp_path)
    assert result.uncaught_rounds("no-fencing") == [1]
    assert result.exit_code == 1
    assert selftest.matrix(result)["deposed-primary"]["no-fencing"] == "0/1 caught"


def test_the_correct_clipstream_failing_a_drill_is_a_false_alarm(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_runs(monkeypatch, {("deposed-primary", "correct"): ("counters",),
                            ("deposed-primary", "no-fencing"): ("lost_acked_writes",)})
    result = selftest.run_selftest(
        selftest.make_plan(drills=["deposed-primary"], bugs=["no-fencing"]), out=tmp_path)
    assert [c.drill for c in result.false_alarms] == ["deposed-primary"]
    assert result.exit_code == 1
    assert "False alarms" in (tmp_path / "selftest.html").read_text()


def test_a_run_that_errs_catches_nothing_and_exits_3(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_runs(monkeypatch, {("deposed-primary", "no-fencing"): EnvironmentError_("no stack")})
    result = selftest.run_selftest(
        selftest.make_plan(drills=["deposed-primary"], bugs=["no-fencing"]), out=tmp_path)
    (cell,) = [c for c in result.cells if c.bug == "no-fencing"]
    assert not cell.caught and cell.error == "no stack"
    assert result.exit_code == 3


def test_a_bug_run_replays_the_drill_as_resolved_with_only_the_bug_added() -> None:
    storm = load_drill("power-storm", sets=["timeline.nemesis.seed=99"])
    buggy = selftest.with_bug(storm, "no-fencing")
    assert buggy.stack.config.bugs == ("no-fencing",)
    assert buggy.timeline.all_faults == storm.timeline.all_faults
    assert selftest.with_bug(storm, "correct") is storm


@pytest.mark.slow
def test_selftest_on_local_processes_passes_the_correct_clipstream_and_catches_the_bug(
        tmp_path: Path) -> None:
    """Two real drill runs (~30 s each): deposed-primary on the correct ClipStream and with the
    no-fencing bug planted; ``--set`` shortens the settle of both (the deposed primary acks
    during the 12 s partition, and the old epoch's writes are judged at the end)."""
    out = tmp_path / "st"
    proc = subprocess.run([*DRILL, "selftest", "--drills", "deposed-primary", "--bugs",
                           "no-fencing", "--set", "timeline.settle=5s", "--out", str(out)],
                          capture_output=True, text=True, timeout=400, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "200"})
    data = json.loads((out / "selftest.json").read_text())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = data["matrix"]["deposed-primary"]
    assert row["correct"] == "1/1 passed"
    assert row["no-fencing"].startswith("1/1 caught (") and "lost_acked_writes" in row["no-fencing"]
    assert "detection matrix" in proc.stdout
