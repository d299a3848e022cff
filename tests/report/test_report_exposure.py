"""The verdict as the journal, the reports and the CLI show it: exposure next to the data
objectives ("0 lost of N at risk"), an inconclusive drill, lost increments counted as lost
writes, zero reads as their own objective, a drill without faults judging only what it
measures, and a check or report that crashes. Hand-made runs (`._runs`), judged by the real
`drills.verdict`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

import drills.report as report_pkg
from drills import engine, verdict
from drills.catalog import parse_drill
from drills.commands import print_summary
from drills.errors import HarnessError
from drills.model import CheckResult, FinalRead
from drills.report.html import render_html
from drills.report.markdown import render

from ._runs import DRILL, build_journal, build_run


def _objective(journal, name: str):  # type: ignore[no-untyped-def]
    return next(o for o in journal.objectives if o.name == name)


def test_a_correct_run_shows_what_it_put_at_risk_next_to_each_data_objective() -> None:
    j, _, _ = build_journal()
    at_risk = j.metrics["writes_at_risk"]
    assert at_risk > 0 and j.metrics["increments_at_risk"] > 0
    assert _objective(j, "lost_acked_writes").measured == f"0 lost of {at_risk} at risk"
    counters = _objective(j, "counters").measured
    assert counters.endswith(f"({j.metrics['increments_at_risk']} increments at risk)")
    assert "exposure" not in [o.name for o in j.objectives]  # measured, not judged
    assert j.verdict == "pass"


def test_too_little_at_risk_is_inconclusive_not_a_pass() -> None:
    j, _, _ = build_journal(sets=["objectives.exposure.min_writes_at_risk=1000"])
    exposure = _objective(j, "exposure")
    assert exposure.passed is False
    assert exposure.measured.startswith("inconclusive: only ")
    assert exposure.target == "≥ 1000 writes at risk"
    assert j.verdict == "inconclusive" and j.as_expected is False  # exit 1: not earned
    enough, _, _ = build_journal(sets=["objectives.exposure.min_writes_at_risk=5"])
    assert _objective(enough, "exposure").passed is True and enough.verdict == "pass"


def test_a_real_failure_is_fail_even_when_exposure_is_short() -> None:
    j, _, _ = build_journal(broken=True, sets=["objectives.exposure.min_writes_at_risk=1000"])
    assert j.verdict == "fail"


def test_lost_increments_are_lost_acknowledged_writes() -> None:
    j, _, _ = build_journal(broken=True, outage_s=6.0)
    lost = _objective(j, "lost_acked_writes")
    # 2 uploads acked just before the fault and 3 acked views of v0 (10 acked, final 7)
    assert lost.measured.startswith("5 lost (2 key writes, 3 increments) of ")
    assert lost.passed is False
    assert j.metrics["lost_increments"] == 3 and j.metrics["lost_acked_writes"] == 2


def test_zero_reads_are_their_own_objective() -> None:
    j, _, _ = build_journal(broken=True, outage_s=6.0)
    zero = _objective(j, "zero_reads")
    assert zero.passed is False and zero.measured.startswith("1 zero reads of ")
    ignored, _, _ = build_journal(broken=True, sets=["objectives.zero_reads=ignore"])
    assert "zero_reads" not in [o.name for o in ignored.objectives]


def test_reports_and_the_cli_summary_show_the_exposure(tmp_path: Path) -> None:
    run = build_run(tmp_path / "run", sets=["objectives.exposure.min_writes_at_risk=1000"])
    md = render(run.journal)
    assert "# Drill `dc-east-power-loss` — INCONCLUSIVE" in md
    assert "| writes_at_risk |" in md and "### exposure: FAIL" in md
    page = render_html(run.journal, run.requests)
    assert 'id="exposure"' in page and "inconclusive: only" in page
    console = Console(record=True, width=200)
    print_summary(console, run.journal, run.run_dir)
    text = console.export_text()
    assert f"exposure: {run.journal.metrics['writes_at_risk']} writes at risk" in text
    assert f"report: {run.run_dir}/report.html" in text


def test_a_drill_without_faults_judges_only_what_it_measures() -> None:
    """No fault, no recovery to measure: the rto.* and recovery objectives are not judged (they
    used to read "not measured" and make the run exit 1)."""
    j, _, _ = build_journal(sets=["timeline.faults=[]"])
    names = [o.name for o in j.objectives]
    assert not [n for n in names if n.startswith("rto.")] and "recovery" not in names
    assert names == ["lost_acked_writes", "counters", "zero_reads", "split_brain"]
    assert j.verdict == "pass" and j.as_expected is True


def test_a_check_that_crashes_judges_nothing_and_the_others_still_judge(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise ZeroDivisionError("a bug in a check")

    monkeypatch.setattr(verdict, "check_counters", boom)
    j, _, _ = build_journal(broken=True, outage_s=6.0)
    counters = next(c for c in j.checks if c.name == "counters")
    assert counters.passed is None and "ZeroDivisionError: a bug in a check" in counters.summary
    assert _objective(j, "counters").passed is None
    assert _objective(j, "split_brain").passed is False  # the other checks still judged
    # the judgement names the crash, so the engine raises a HarnessError (exit 3)
    judged = verdict.judge(
        parse_drill(DRILL, source="t"), requests=[], history=[], faults=[],
        final=FinalRead(primary=None, stores=()), t0=0.0)
    assert judged.crashed == ("counters",)


def test_a_report_that_crashes_is_a_harness_error_with_the_journal_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j, _, _ = build_journal()

    def boom(*_a: object, **_k: object) -> None:
        raise KeyError("a bug in a report")

    monkeypatch.setattr(report_pkg, "write_markdown", boom)
    with pytest.raises(HarnessError, match="a report crashed"):
        engine.reports(tmp_path, j)
    assert json.loads((tmp_path / "journal.json").read_text())["verdict"] == "pass"


def test_losing_more_than_was_at_risk_says_older_writes_were_lost_too() -> None:
    """A replica far behind loses writes acknowledged long before the fault: "431 lost of 140
    at risk" would read as a contradiction, so the objective says what it means."""
    spec = parse_drill(DRILL, source="t")

    def checks(at_risk: int) -> dict[str, CheckResult]:
        return {"acked_writes": CheckResult("acked_writes", False, "", {"lost_acked_writes": 80}),
                "counters": CheckResult("counters", False, "", {"lost_increments": 351}),
                "exposure": CheckResult("exposure", True, "", {"writes_at_risk": at_risk})}

    many = verdict._lost_objective(spec, checks(140))
    assert many.measured == ("431 lost (80 key writes, 351 increments), more than the 140 at "
                             "risk near the faults: older acknowledged writes were lost too")
    assert many.passed is False
    few = verdict._lost_objective(spec, checks(500))
    assert few.measured == "431 lost (80 key writes, 351 increments) of 500 at risk"
