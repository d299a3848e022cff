"""Exposure and the data objectives as the verdict, the journal, the reports and the CLI show
them: "0 lost of N at risk", an inconclusive drill, lost increments counted as lost writes, zero
reads as their own objective. Hand-made runs (`._runs`), judged by the real `drills.verdict`."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from drills.commands import print_summary
from drills.report.html import render_html
from drills.report.markdown import render

from ._runs import build_journal, build_run


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
    assert lost.measured.startswith("5 lost (2 uploads, 3 increments) of ")
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
