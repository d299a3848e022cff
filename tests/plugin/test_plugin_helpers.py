"""The plugin's pure parts on hand-made records: what a failed drill item shows, and the
checks a hand-written drill asserts with (each shown to pass on a good record and to fail, with
its evidence, on a bad one). No process is started."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from drills.catalog import parse_drill
from drills.errors import EnvironmentError_, RevertError, SpecError
from drills.fixtures import (
    History,
    LoadOptions,
    RequestTimeline,
    StackOptions,
    assert_counters_exact,
    assert_no_lost_writes,
    assert_no_split_brain,
    assert_recovered,
    load_stats,
    rto,
)
from drills.gameday import DrillOutcome
from drills.journal import Journal, Objective
from drills.model import FaultRecord, FinalRead, Op, Request, StoreSnapshot
from drills.pytest_plugin import describe_failure, looks_like_drill, report_path

T0 = 1_700_000_000.0
WEAK = """\
drill: known-weakness
description: The api is down for 4 s; the feed cannot recover within 1 s.
expect: fail
fails_on: [rto.feed]
timeline:
  baseline: 4s
  faults: [{at: 4s, crash: api, for: 4s}]
  settle: 4s
objectives: {rto: {feed: 1s}, recovery: ignore}
analysis: {hold: 1s}
"""
OBJECTIVES = [
    Objective("rto.feed", "≤ 1s", "5.25s", False),
    Objective("lost_acked_writes", "≤ 0", "0", True),
    Objective("split_brain", "none", "no split brain evidence", True),
]


def outcome(tmp_path: Path, *, expect: str = "pass", error=None, as_expected=False,
            objectives=OBJECTIVES) -> DrillOutcome:
    text = WEAK if expect == "fail" else WEAK.replace("expect: fail\nfails_on: [rto.feed]\n", "")
    spec = parse_drill(text)
    journal = Journal(drill=spec.drill, description=spec.description, provider="local",
                      expect=spec.expect, spec={}, started_at=T0, finished_at=T0 + 20,
                      verdict="error" if error else "fail", as_expected=as_expected,
                      objectives=list(objectives), error=f"{type(error).__name__}: {error}"
                      if error else None)
    return DrillOutcome(spec, tmp_path, journal, error, interrupted=False)


def test_a_missed_objective_shows_the_table_and_the_report(tmp_path):
    (tmp_path / "report.md").write_text("# report")
    text = describe_failure(outcome(tmp_path))
    assert text.splitlines()[0] == "drill known-weakness: FAIL, 1 of 3 objectives missed"
    row = next(line for line in text.splitlines() if "rto.feed" in line)
    assert row.split() == ["rto.feed", "≤", "1s", "5.25s", "FAIL"]
    assert f"report: {tmp_path / 'report.md'}" in text
    assert "Traceback" not in text


def test_the_html_report_is_preferred_and_a_missing_one_points_at_the_run(tmp_path):
    assert report_path(tmp_path) == tmp_path
    (tmp_path / "report.md").write_text("md")
    assert report_path(tmp_path) == tmp_path / "report.md"
    (tmp_path / "report.html").write_text("html")
    assert report_path(tmp_path) == tmp_path / "report.html"


def test_expect_fail_passes_only_as_expected(tmp_path):
    assert outcome(tmp_path, expect="fail", as_expected=True).exit_code == 0
    missed_nothing = outcome(tmp_path, expect="fail", as_expected=False,
                             objectives=[Objective("rto.feed", "≤ 1s", "0.00s", True)])
    assert missed_nothing.exit_code == 1
    text = describe_failure(missed_nothing)
    assert "expected to fail on rto.feed" in text and "it did not" in text


def test_errors_say_so_and_a_stuck_fault_says_how_to_roll_back(tmp_path):
    env = outcome(tmp_path, error=EnvironmentError_("the stack would not start"), objectives=[])
    assert env.exit_code == 3
    assert "did not complete: EnvironmentError_: the stack would not start" in \
        describe_failure(env)
    stuck = outcome(tmp_path, error=RevertError("f0: could not revert"), objectives=[])
    assert stuck.exit_code == 4
    assert f"drill rollback {tmp_path}" in describe_failure(stuck)


@pytest.mark.parametrize(("text", "is_drill"), [
    ("drill: x\ntimeline:\n  baseline: 1s\n", True),
    ("# a comment\ndrill: x   \ndescription: y\ntimeline: {baseline: 1s}\n", True),
    ("services:\n  drill:\n    image: x\n  timeline:\n    image: y\n", False),
    ("drill: x\ndescription: no timeline\n", False),
    ("timeline: []\n", False),
    ("drills: x\ntimelines: y\n", False),
])
def test_what_counts_as_a_drill_file(tmp_path, text, is_drill):
    path = tmp_path / "f.yaml"
    path.write_text(text)
    assert looks_like_drill(path) is is_drill


# -- the checks of hand-written drills ----------------------------------------------------------

def steady(op: str, start: float, end: float, per_s: float, *, down: tuple[float, float] = (0, 0)
           ) -> list[Request]:
    """``per_s`` requests/s of ``op`` over [start, end); those starting in ``down`` fail."""
    n = int((end - start) * per_s)
    out = []
    for i in range(n):
        t = start + (i + 0.37) / per_s
        ok = not (down[0] <= t < down[1])
        out.append(Request(t=t, duration=0.01, op=op, ok=ok, status=200 if ok else 503))
    return out


FAULT = FaultRecord(id="t/1", kind="power_down", target="dc-east", scheduled_at=10.0,
                    injected_at=T0 + 10, reverted_at=T0 + 15)


def timeline(upload_down_until: float) -> RequestTimeline:
    reqs = (steady("upload", T0, T0 + 30, 40, down=(T0 + 10, T0 + upload_down_until))
            + steady("feed", T0, T0 + 30, 80))
    return RequestTimeline(tuple(sorted(reqs, key=lambda r: r.t)), T0, T0 + 30)


def test_rto_measures_the_outage_and_assert_recovered_judges_it():
    measured = rto(timeline(upload_down_until=14), FAULT)
    assert measured["feed"] == 0
    assert 3.5 <= measured["upload"] <= 5.0  # 4 s down, to within the (widened) bucket
    assert assert_recovered(timeline(14), FAULT, within={"upload": 6, "feed": 1}) == measured
    with pytest.raises(AssertionError, match=r"upload: RTO 4\.\d\d s > 2 s"):
        assert_recovered(timeline(14), FAULT, within=2)


def test_a_class_that_never_comes_back_is_infinite_and_fails():
    measured = rto(timeline(upload_down_until=40), FAULT)
    assert math.isinf(measured["upload"])
    with pytest.raises(AssertionError, match="upload: never recovered > 60 s"):
        assert_recovered(timeline(40), FAULT, within={"upload": 60})


def test_an_unmeasured_class_or_a_fault_before_the_load_cannot_pass():
    with pytest.raises(AssertionError, match="search: not measured"):
        assert_recovered(timeline(14), FAULT, within={"search": 5})
    early = FaultRecord(id="e", kind="crash", target="api", scheduled_at=0, injected_at=T0 - 1)
    with pytest.raises(SpecError, match="no baseline"):
        rto(timeline(14), early)


def upload(vid: str, t: float, outcome: str = "ok", **extra: object) -> list[Op]:
    """A ClipStream upload: a write of key ``vid``."""
    return [Op("p0", "invoke", "write", vid, t, key=vid),
            Op("p0", outcome, "write", vid, t + 0.1, key=vid, **extra)]  # type: ignore[arg-type]


def view(op_id: str, vid: str, t: float, outcome: str = "ok", **extra: object) -> list[Op]:
    """A ClipStream view: an increment of counter ``views`` of ``vid``."""
    return [Op("p0", "invoke", "incr", op_id, t, key=vid, counter="views"),
            Op("p0", outcome, "incr", op_id, t + 0.1, key=vid, counter="views",  # type: ignore[arg-type]
               **extra)]  # type: ignore[arg-type]


def read(snapshots: list[StoreSnapshot]) -> FinalRead:
    return FinalRead(primary=snapshots[0].name, stores=tuple(snapshots))


def store(name: str, videos: set[str], views: dict[str, int] | None = None) -> StoreSnapshot:
    return StoreSnapshot(name, True, role="primary", epoch=1, keys=frozenset(videos),
                         counters={v: {"views": n} for v, n in (views or {}).items()})


def test_lost_acked_writes_are_named():
    history = History(tuple(upload("v1", T0) + upload("v2", T0 + 1)))
    assert assert_no_lost_writes(history, read([store("s", {"v1", "v2"})])).passed
    with pytest.raises(AssertionError, match="lost acked write v2"):
        assert_no_lost_writes(history, read([store("s", {"v1"})]))
    with pytest.raises(AssertionError, match="could not decide"):
        assert_no_lost_writes(history, FinalRead(primary=None, stores=()))


def test_counters_use_what_the_store_held_before_the_load():
    ops = tuple(view("i1", "v1", T0) + view("i2", "v1", T0 + 1))
    before = store("s", {"v0"}, views={"v0": 5})
    history = History(ops, preexisting=frozenset({"v0"}), initial=before)
    assert assert_counters_exact(history, read([store("s", {"v0", "v1"},
                                                      views={"v0": 5, "v1": 2})])).passed
    with pytest.raises(AssertionError, match="counter views of v1: final 1 outside"):
        assert_counters_exact(history, read([store("s", {"v0", "v1"}, views={"v0": 5, "v1": 1})]))
    with pytest.raises(AssertionError, match="counter views of v0: final 7 outside"):  # double
        assert_counters_exact(history, read([store("s", {"v0", "v1"}, views={"v0": 7, "v1": 2})]))


def test_two_stores_acking_one_epoch_is_split_brain():
    one = store("east", {"a", "b"})
    healthy = History(tuple(upload("a", T0, epoch=1, store="east")
                            + upload("b", T0 + 1, epoch=1, store="east")))
    assert assert_no_split_brain(healthy, read([one])).passed
    split = History(tuple(upload("a", T0, epoch=1, store="east")
                          + upload("b", T0 + 1, epoch=1, store="west")))
    with pytest.raises(AssertionError, match="split_brain failed"):
        assert_no_split_brain(split, read([one]))


def test_load_stats_per_class():
    reqs = steady("feed", T0, T0 + 1, 10) + steady("upload", T0, T0 + 1, 4, down=(T0, T0 + 0.5))
    stats = load_stats(reqs)
    assert (stats.requests, stats.ok, stats.errors) == (14, 12, 2)
    assert stats.by_class["upload"].success_rate == 0.5 and stats.by_class["feed"].ok == 10
    assert load_stats([]).success_rate is None


def test_bad_load_and_stack_options_are_refused():
    with pytest.raises(SpecError, match="users"):
        LoadOptions(users=0)
    with pytest.raises(SpecError, match="rate"):
        LoadOptions(rate="fast")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="fsync"):
        StackOptions(config={"fsync": "sometimes"}).as_spec()
    with pytest.raises(SpecError, match="no-such-drill"):
        StackOptions(drill=Path("no-such-drill.yaml")).as_spec()
    assert StackOptions(config={"detection": 2.0}).as_spec().stack.config["detection"] == 2.0
