"""Reading a run directory back: `journal_from_dict`, `load_journal`, `regenerate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drills.errors import SpecError
from drills.journal import Journal
from drills.report.load import journal_from_dict, load_journal, load_requests, regenerate

from ._runs import BuiltRun, build_journal
from .conftest import fresh_copy


def _dict(j: Journal) -> dict:
    return json.loads(json.dumps(j.to_dict()))


@pytest.fixture(scope="module")
def base_dict() -> dict:
    return _dict(build_journal(broken=True, outage_s=6.0)[0])


@pytest.mark.parametrize("broken", [False, True])
def test_journal_round_trips_exactly(broken: bool) -> None:
    journal, _, _ = build_journal(broken=broken, outage_s=6.0 if broken else 3.0)
    d = _dict(journal)
    back = journal_from_dict(d)
    assert back.to_dict() == d
    assert back.faults == journal.faults
    assert back.objectives == journal.objectives
    assert [c.findings for c in back.checks] == [c.findings for c in journal.checks]


def test_errored_journal_round_trips() -> None:
    """A run that failed before the verdict: no checks, no objectives, an error string."""
    journal, _, _ = build_journal()
    journal.objectives, journal.checks, journal.metrics = [], [], {}
    journal.verdict, journal.error, journal.finished_at = "error", "StackError: boom", None
    journal.phases[-1].ended_at = None
    d = _dict(journal)
    assert journal_from_dict(d).to_dict() == d


def test_numbers_keep_their_json_type() -> None:
    d = _dict(build_journal()[0])
    d["faults"][0]["scheduled_at"] = 10  # an int stays an int (md shows +10s either way)
    d["baseline"]["feed"] = 1
    back = journal_from_dict(d)
    assert back.to_dict() == d
    assert json.dumps(back.to_dict()) == json.dumps(d)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("drill"), "drill"),
        (lambda d: d.__setitem__("started_at", "yesterday"), "started_at"),
        (lambda d: d["faults"][0].__setitem__("injected_at", None), "faults[0].injected_at"),
        (lambda d: d["objectives"][2].__setitem__("passed", "yes"), "objectives[2].passed"),
        (lambda d: d["checks"][1].__setitem__("findings", "lost"), "checks[1].findings"),
        (lambda d: d["phases"][0].pop("name"), "phases[0].name"),
        (lambda d: d.__setitem__("faults", {"f0": 1}), "faults"),
        (lambda d: d["baseline"].__setitem__("feed", True), "baseline.feed"),
    ],
)
def test_malformed_journal_names_file_and_field(mutate, field: str) -> None:
    d = _dict(build_journal()[0])
    mutate(d)
    with pytest.raises(SpecError) as err:
        journal_from_dict(d, source="/runs/x/journal.json")
    assert err.value.field == field
    assert err.value.source == "/runs/x/journal.json"


def test_load_journal_refuses_what_is_not_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not a run directory") as err:
        load_journal(tmp_path)
    assert str(tmp_path) in str(err.value)
    (tmp_path / "journal.json").write_text("{not json")
    with pytest.raises(SpecError, match="not JSON"):
        load_journal(tmp_path)
    (tmp_path / "journal.json").write_text("[1, 2]")
    with pytest.raises(SpecError, match="expected a JSON object"):
        load_journal(tmp_path)


def test_load_requests_absent_and_present(good_run: BuiltRun, tmp_path: Path) -> None:
    assert load_requests(tmp_path) is None
    assert load_requests(good_run.run_dir) == sorted(good_run.requests, key=lambda r: r.t)


@pytest.mark.parametrize("which", ["good_run", "bad_run"])
def test_regenerate_reproduces_identical_md_and_junit(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run: BuiltRun = request.getfixturevalue(which)
    run_dir = fresh_copy(run, tmp_path / "run")
    before = {n: (run_dir / n).read_bytes() for n in ("report.md", "junit.xml", "journal.json")}
    for name in ("report.md", "junit.xml", "report.html"):
        (run_dir / name).unlink()
    paths = regenerate(run_dir)
    assert [p.name for p in paths] == ["report.md", "junit.xml", "report.html"]
    for name, content in before.items():
        assert (run_dir / name).read_bytes() == content, name
    html = (run_dir / "report.html").read_text()
    assert html.count('<img class="timeline"') == 6


def test_regenerate_shows_a_changed_journal(good_run: BuiltRun, tmp_path: Path) -> None:
    """The reports really come from journal.json: edit it and they follow."""
    run_dir = fresh_copy(good_run, tmp_path / "run")
    d = json.loads((run_dir / "journal.json").read_text())
    d["verdict"] = "fail"
    d["objectives"][0]["passed"] = False
    (run_dir / "journal.json").write_text(json.dumps(d))
    regenerate(run_dir)
    md = (run_dir / "report.md").read_text()
    assert md.startswith("# Drill `dc-east-power-loss` — FAIL")
    assert "| rto.upload | ≤ 10s | 5.50s | **FAIL** |" in md
    assert 'failures="1"' in (run_dir / "junit.xml").read_text()


def test_regenerate_without_request_record(good_run: BuiltRun, tmp_path: Path) -> None:
    run_dir = fresh_copy(good_run, tmp_path / "run")
    (run_dir / "requests.jsonl").unlink()
    regenerate(run_dir)
    html = (run_dir / "report.html").read_text()
    assert "<img" not in html
    assert "No request record" in html


def test_regenerate_refuses_an_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not a run directory"):
        regenerate(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_regenerate_reports_a_torn_request_record(good_run: BuiltRun, tmp_path: Path) -> None:
    run_dir = fresh_copy(good_run, tmp_path / "run")
    lines = (run_dir / "requests.jsonl").read_text().splitlines(keepends=True)
    lines.insert(3, "{garbage\n")
    (run_dir / "requests.jsonl").write_text("".join(lines))
    with pytest.raises(SpecError, match="line 4"):
        regenerate(run_dir)


JSON_LEAF = st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.text(max_size=8) | \
    st.floats(allow_nan=False, allow_infinity=False)
JSON = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=3) |
                    st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)
TIME = st.floats(min_value=0, max_value=4e9, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(metrics=st.dictionaries(st.text(max_size=10), JSON, max_size=5),
       injected=TIME, reverted=st.none() | TIME, passed=st.sampled_from([True, False, None]),
       findings=st.lists(st.text(max_size=20), max_size=3))
def test_any_journal_values_round_trip(
    base_dict: dict, metrics, injected, reverted, passed, findings
) -> None:
    base = json.loads(json.dumps(base_dict))
    base["metrics"] = metrics
    base["faults"][0].update(injected_at=injected, reverted_at=reverted)
    base["objectives"][0]["passed"] = passed
    base["checks"][0].update(passed=passed, findings=findings, metrics=metrics)
    back = journal_from_dict(base).to_dict()
    assert json.dumps(back) == json.dumps(base)
