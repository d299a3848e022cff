"""``drill compare``: better/worse between two runs of one drill, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from drills.errors import SpecError
from drills.journal import Journal
from drills.model import CheckResult, Rto
from drills.report.compare import (
    Change,
    compare,
    compare_journals,
    rate_trend,
    render_text,
    resolution,
    spec_diffs,
    to_table,
)
from drills.report.load import journal_from_dict

from ._runs import BuiltRun, build_journal, build_run
from .conftest import fresh_copy

TRENDS = {"better": "worse", "worse": "better", "same": "same", "changed": "changed"}


@pytest.fixture(scope="module")
def worse_run(tmp_path_factory: pytest.TempPathFactory) -> BuiltRun:
    """Like ``bad_run`` but writes down for 9 s: the write RTOs miss their objective."""
    return build_run(tmp_path_factory.mktemp("worse") / "run", broken=True, outage_s=9.0)


def _by(changes: tuple[Change, ...]) -> dict[tuple[str, str], Change]:
    return {(c.group, c.metric): c for c in changes}


def test_worse_run_is_worse_on_every_axis(good_run: BuiltRun, worse_run: BuiltRun) -> None:
    c = compare(good_run.run_dir, worse_run.run_dir)
    ch = _by(c.changes)
    assert (c.drill, c.verdict_a, c.verdict_b) == ("dc-east-power-loss", "pass", "fail")
    assert ch["verdict", "verdict"].trend == "worse"
    assert ch["rto", "upload"] == Change("rto", "upload", "5.50 s", "11.00 s", "worse")
    assert ch["objectives", "rto.upload"].trend == "worse"  # pass -> FAIL (11 s > 10 s)
    assert ch["rto", "feed"].trend == "same"  # reads never failed in either run
    for key in [("loss", "lost_acked_writes"), ("loss", "rpo_s"),
                ("counters", "counters_out_of_bounds"), ("counters", "zero_reads"),
                ("split brain", "split_brain"), ("split brain", "divergent_keys"),
                ("errors", "all requests"), ("errors", "upload"),
                ("outage", "upload seconds below threshold")]:
        assert ch[key].trend == "worse", key
    assert (ch["loss", "lost_acked_writes"].a, ch["loss", "lost_acked_writes"].b) == ("0", "2")
    assert (ch["split brain", "split_brain"].a, ch["split brain", "split_brain"].b) == ("no",
                                                                                      "yes")
    assert ch["errors", "feed"] == Change("errors", "feed", "0.00% (0/1000)", "0.00% (0/1000)",
                                          "same")
    assert ch["errors", "upload"].b == "18.00% (54/300)"
    assert c.spec_diffs == ()


def test_error_rates_differ_only_when_significant_and_large_enough() -> None:
    # two identical passing runs (measured): 0.04 % vs 0.20 % errors is noise
    assert rate_trend((2, 5000), (10, 5000)) == "same"
    assert rate_trend((0, 5000), (0, 5000)) == "same"
    # a real regression, and its mirror
    assert rate_trend((10, 5000), (250, 5000)) == "worse"
    assert rate_trend((250, 5000), (10, 5000)) == "better"
    # large but not significant (a handful of requests) is not a verdict either
    assert rate_trend((0, 10), (2, 10)) == "same"
    # significant but tiny (millions of requests): below the minimum effect
    assert rate_trend((1000, 2_000_000), (2000, 2_000_000)) == "same"


def test_swapping_the_runs_mirrors_every_trend(good_run: BuiltRun, worse_run: BuiltRun) -> None:
    ab = compare(good_run.run_dir, worse_run.run_dir)
    ba = compare(worse_run.run_dir, good_run.run_dir)
    assert [(c.metric, TRENDS[c.trend]) for c in ab.changes] == \
        [(c.metric, c.trend) for c in ba.changes]
    assert len(ab.having("worse")) == len(ba.having("better")) > 10


def test_a_run_against_itself_is_all_same(bad_run: BuiltRun) -> None:
    c = compare(bad_run.run_dir, bad_run.run_dir)
    assert {ch.trend for ch in c.changes} == {"same"}
    assert all(ch.note == "" for ch in c.changes)


def test_different_drills_are_refused_naming_both(good_run: BuiltRun, tmp_path: Path) -> None:
    other = fresh_copy(good_run, tmp_path / "other")
    d = json.loads((other / "journal.json").read_text())
    d["drill"] = "zone-flap"
    (other / "journal.json").write_text(json.dumps(d))
    with pytest.raises(SpecError) as err:
        compare(good_run.run_dir, other)
    msg = str(err.value)
    assert "different drills" in msg
    assert str(good_run.run_dir) in msg and str(other) in msg
    assert "'dc-east-power-loss'" in msg and "'zone-flap'" in msg


def test_not_a_run_dir_is_refused(good_run: BuiltRun, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not a run directory"):
        compare(good_run.run_dir, tmp_path)


def test_configuration_differences_are_listed() -> None:
    a, _, _ = build_journal()
    b, _, _ = build_journal(sets=["stack.config.fsync=never", "load.users=40"])
    c = compare_journals(a, b)
    assert [(d.path, d.a, d.b) for d in c.spec_diffs] == [
        ("stack.config.fsync", "always", "never"), ("load.users", "30", "40")]
    text = render_text(c)
    assert "  stack.config.fsync: always -> never" in text
    assert spec_diffs({"a": {"b": 1}}, {"a": {"b": 1, "c": [2]}})[0].path == "a.c[0]"


def _rto_journal(rto: dict[str, float | None], width: float = 0.5) -> Journal:
    """A journal whose rto check measured ``rto`` with buckets of ``width`` seconds (its typed
    `Rto` evidence), read back from JSON as ``drill compare`` reads it."""
    j, _, _ = build_journal()
    j.metrics = {**j.metrics, "rto_s": rto}
    evidence = tuple(Rto(op=op, fault_id="f0", rto_s=v, recovered=v is not None,
                         first_error_s=None, first_success_s=None, below_s=0.0, threshold=0.95,
                         baseline_rate=1.0, baseline_per_bucket=20.0, bucket_s=width)
                     for op, v in rto.items())
    j.checks = [CheckResult("rto", True, "", metrics={"rto_s": rto, "below_s": {}},
                            evidence=evidence)] + [c for c in j.checks if c.name != "rto"]
    return journal_from_dict(json.loads(json.dumps(j.to_dict())))


def test_rto_not_recovered_is_worst_and_unmeasured_is_only_changed() -> None:
    a = _rto_journal({"upload": None, "feed": 2.0, "view": 1.0})
    b = _rto_journal({"upload": 9.0, "feed": None, "like": 1.0})
    ch = _by(compare_journals(a, b).changes)
    assert ch["rto", "upload"] == Change("rto", "upload", "not recovered", "9.00 s", "better")
    assert ch["rto", "feed"] == Change("rto", "feed", "2.00 s", "not recovered", "worse")
    assert ch["rto", "view"] == Change("rto", "view", "1.00 s", "not measured", "changed")
    assert ch["rto", "like"] == Change("rto", "like", "not measured", "1.00 s", "changed")
    same = _by(compare_journals(a, _rto_journal({"upload": None})).changes)
    assert same["rto", "upload"].trend == "same"


def test_rto_differences_within_resolution_are_same() -> None:
    a = _rto_journal({"upload": 3.0}, width=1.0)
    assert _by(compare_journals(a, _rto_journal({"upload": 4.0}, width=1.0)).changes)[
        "rto", "upload"] == Change("rto", "upload", "3.00 s", "4.00 s", "same",
                                   "within one 1 s bucket (the resolution)")
    assert _by(compare_journals(a, _rto_journal({"upload": 4.5}, width=1.0)).changes)[
        "rto", "upload"].trend == "worse"
    # The coarser of the two runs' resolutions decides.
    assert _by(compare_journals(a, _rto_journal({"upload": 4.5}, width=2.0)).changes)[
        "rto", "upload"].trend == "same"


def test_resolution_read_from_the_rto_evidence(good_run: BuiltRun) -> None:
    res = resolution(good_run.journal)
    assert res[""] == 0.25  # the drill's analysis bucket
    assert res["upload"] == 2.75 and res["feed"] == 1.0 and res["view"] == 2.0
    j, _, _ = build_journal()
    j.checks = [c for c in j.checks if c.name != "rto"]
    assert resolution(j) == {"": 0.25}


def test_unknown_values_are_never_better_or_worse() -> None:
    a, _, _ = build_journal()
    b, _, _ = build_journal()
    b.metrics = {}
    b.objectives = []
    b.verdict = "error"
    ch = _by(compare_journals(a, b).changes)
    assert ch["loss", "lost_acked_writes"] == Change("loss", "lost_acked_writes", "0",
                                                     "unknown", "changed")
    assert ch["split brain", "split_brain"].trend == "changed"
    assert ch["errors", "all requests"].trend == "changed"
    assert ch["objectives", "counters"].trend == "changed"
    assert ch["verdict", "verdict"].trend == "worse"  # pass -> error


def test_expected_failure_drills_compare_on_going_as_expected() -> None:
    a, _, _ = build_journal()
    b, _, _ = build_journal()
    for j in (a, b):
        j.expect, j.verdict = "fail", "fail"
    a.as_expected, b.as_expected = False, True
    v = _by(compare_journals(a, b).changes)["verdict", "went as expected"]
    assert (v.a, v.b, v.trend) == ("fail (NOT as expected)", "fail (as expected)", "better")


def test_renderings(good_run: BuiltRun, worse_run: BuiltRun) -> None:
    c = compare(good_run.run_dir, worse_run.run_dir)
    text = render_text(c)
    lines = text.splitlines()
    assert lines[0] == (f"drill dc-east-power-loss: A {good_run.run_dir} (PASS) vs "
                        f"B {worse_run.run_dir} (FAIL)")
    assert lines[1].startswith(f"better: {len(c.having('better'))} · worse: "
                               f"{len(c.having('worse'))}")
    row = next(ln for ln in lines if ln.startswith("loss") and "lost_acked_writes" in ln)
    assert row.split() == ["loss", "lost_acked_writes", "0", "2", "worse"]
    assert text.rstrip().endswith("drill files identical")
    short = render_text(c, only_changes=True)
    assert " same" not in short and len(short.splitlines()) < len(lines)
    console = Console(record=True, width=200)
    a = _rto_journal({"upload": 1.0})
    console.print(to_table(compare_journals(a, _rto_journal({"upload": 9.0}),
                                            labels=("[red]a", "b"))))
    out = console.export_text()
    assert "upload" in out and "worse" in out and "[red]a" in out
