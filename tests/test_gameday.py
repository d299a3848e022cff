"""Game days (`drills.gameday`). The fast tests use hand-made journals for the pure parts (when to
stop, the worst exit code, JUnit for ``expect: fail``, the index) and refuse bad input before
anything starts. The slow one runs a real two-drill game day through ``drill gameday``'s
command function: each drill starts a real ClipStream as local processes under Locust load and
crashes its api for 4 s; one is a known weakness that fails as expected (exit 0), the other
misses an objective (exit 1), so the game day exits 1. About 40-60 s."""

from __future__ import annotations

import argparse
import io
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from drills.catalog import parse_drill
from drills.errors import EnvironmentError_, RevertError, SpecError
from drills.gameday import (
    DrillOutcome,
    GamedayResult,
    GamedayRun,
    add_arguments,
    cmd_gameday,
    drill_suite,
    render_index_html,
    run_gameday,
    stop_reason,
    write_junit,
)
from drills.journal import Journal, Objective

T0 = 1_700_000_000.0
SHORT = """\
drill: {name}
description: {description}
{expect}load: {{users: 8, rate: 40}}
timeline:
  baseline: 4s
  faults:
    - {{at: 4s, crash: api, for: 4s}}
  settle: 4s
  quiesce: 5s
objectives:
  rto: {{feed: 1s}}
  recovery: {recovery}
analysis: {{hold: 1s}}
"""
WEAK = SHORT.format(name="known-weakness", recovery="ignore",
                    description="The api is down 4 s; feed cannot recover in 1 s (known).",
                    expect="expect: fail\nfails_on: [rto.feed]\n")
MISSED = SHORT.format(name="api-blip", recovery="required", expect="",
                      description="The api is down 4 s; a 1 s feed objective is missed.")


def run(spec_text: str, tmp_path: Path, *, verdict: str = "fail", as_expected: bool | None,
        error: Exception | None = None, interrupted: bool = False,
        objectives: tuple[Objective, ...] = (Objective("rto.feed", "≤ 1s", "5.25s", False),
                                             Objective("lost_acked_writes", "≤ 0", "0", True)),
        ) -> GamedayRun:
    spec = parse_drill(spec_text)
    journal = Journal(drill=spec.drill, description=spec.description, provider="local",
                      expect=spec.expect, spec={}, started_at=T0, finished_at=T0 + 20,
                      verdict=verdict, as_expected=as_expected, objectives=list(objectives),
                      error=f"{type(error).__name__}: {error}" if error else None)
    run_dir = tmp_path / spec.drill
    run_dir.mkdir(exist_ok=True)
    (run_dir / "report.md").write_text("report")
    outcome = DrillOutcome(spec, run_dir, journal, error, interrupted)  # type: ignore[arg-type]
    return GamedayRun(spec, run_dir, outcome)


def result(tmp_path: Path, *runs: GamedayRun, interrupted: bool = False) -> GamedayResult:
    return GamedayResult(tuple(runs), tmp_path, tmp_path / "junit.xml", T0, T0 + 60, interrupted)


def test_the_game_day_exit_code_is_the_worst_run(tmp_path):
    ok = run(WEAK, tmp_path, as_expected=True)
    missed = run(MISSED, tmp_path, as_expected=False)
    env = run(MISSED, tmp_path, verdict="error", as_expected=None,
              error=EnvironmentError_("stack would not start"))
    assert [r.exit_code for r in (ok, missed, env)] == [0, 1, 3]
    assert result(tmp_path, ok).exit_code == 0
    assert result(tmp_path, ok, missed).exit_code == 1
    assert result(tmp_path, missed, env, ok).exit_code == 3
    assert result(tmp_path, ok, interrupted=True).exit_code == 3


def test_an_interrupt_or_a_fault_left_in_force_stops_the_game_day(tmp_path):
    assert stop_reason(run(MISSED, tmp_path, as_expected=False).outcome) is None
    stuck = run(MISSED, tmp_path, verdict="error", as_expected=None,
                error=RevertError("f0: could not revert"))
    assert stuck.exit_code == 4 and "left a fault in force" in stop_reason(stuck.outcome)
    halted = run(MISSED, tmp_path, verdict="error", as_expected=None, interrupted=True,
                 error=EnvironmentError_("interrupted (Ctrl-C or SIGTERM)"))
    assert "interrupted" in stop_reason(halted.outcome)


def test_junit_does_not_fail_a_known_weakness_that_showed(tmp_path):
    suite = drill_suite(run(WEAK, tmp_path, as_expected=True))
    feed = suite.find("testcase[@name='rto.feed']")
    assert feed.find("failure") is None and "missed as expected" in feed.find("system-out").text
    assert suite.get("failures") == "0"
    # the same objective missed in a drill expected to pass is a failure
    plain = drill_suite(run(MISSED, tmp_path, as_expected=False))
    assert plain.find("testcase[@name='rto.feed']/failure") is not None
    assert plain.get("failures") == "1"


def test_junit_fails_a_known_weakness_that_did_not_show(tmp_path):
    met = (Objective("rto.feed", "≤ 1s", "0.00s", True),)
    suite = drill_suite(run(WEAK, tmp_path, verdict="pass", as_expected=False, objectives=met))
    failure = suite.find("testcase[@name='expectation']/failure")
    assert failure is not None and "expected to miss rto.feed" in failure.get("message")
    assert suite.get("failures") == "1"


def test_junit_lists_skipped_drills_and_totals(tmp_path):
    skipped = GamedayRun(parse_drill(MISSED), tmp_path / "02-api-blip", skipped="not run: x")
    path = tmp_path / "out" / "junit.xml"
    write_junit(path, [run(MISSED, tmp_path, as_expected=False), skipped])
    root = ET.parse(path).getroot()
    assert [s.get("name") for s in root] == ["drill.api-blip", "drill.api-blip"]
    assert root.find("testsuite/testcase/skipped").get("message") == "not run: x"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("3", "1", "1")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [v for k, v in attrs if tag == "a" and k == "href" and v]
        self.scripts += tag == "script"


def test_the_index_links_every_report_and_escapes_text(tmp_path):
    evil = MISSED.replace("description: The api", "description: <script>x()</script> The api")
    page = render_index_html(result(tmp_path, run(WEAK, tmp_path, as_expected=True),
                                    run(evil, tmp_path, as_expected=False)))
    links = _Links()
    links.feed(page)
    assert links.scripts == 0 and "&lt;script&gt;" in page
    assert links.hrefs == ["known-weakness/report.md", "api-blip/report.md"]
    assert all((tmp_path / h).is_file() for h in links.hrefs)
    assert "exit 1" in page and "as expected" in page and "NOT as expected" in page


def test_bad_input_is_refused_before_anything_starts(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SpecError, match="did you mean 'zone-flap'"):
        run_gameday(["zone-flop"], provider="local", junit=out / "j.xml", out=out)
    bad = tmp_path / "bad.yaml"
    bad.write_text(MISSED.replace("crash: api", "crash: dc-east"))
    with pytest.raises(SpecError, match=r"timeline\.faults\[0\]\.crash"):
        run_gameday(["zone-flap", str(bad)], provider="local", junit=out / "j.xml", out=out)
    assert not out.exists()
    (out / "01-zone-flap").mkdir(parents=True)
    (out / "01-zone-flap" / "journal.json").write_text("{}")
    with pytest.raises(SpecError, match="already holds a run"):
        run_gameday(["zone-flap"], provider="local", junit=out / "j.xml", out=out)


@pytest.mark.slow
def test_a_real_game_day_runs_drills_in_sequence_and_exits_with_the_worst(tmp_path):
    (tmp_path / "weak.yaml").write_text(WEAK)
    (tmp_path / "missed.yaml").write_text(MISSED)
    out, junit = tmp_path / "gameday", tmp_path / "reports" / "junit.xml"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "weak.yaml"), str(tmp_path / "missed.yaml"),
                              "--provider", "local", "--junit", str(junit), "--out", str(out)])
    printed = io.StringIO()
    assert cmd_gameday(args, Console(file=printed, width=120)) == 1, printed.getvalue()

    journals = [json.loads((out / d / "journal.json").read_text())
                for d in ("01-known-weakness", "02-api-blip")]
    assert [(j["verdict"], j["as_expected"]) for j in journals] == [("fail", True),
                                                                    ("fail", False)]
    assert journals[0]["started_at"] > 0 and journals[1]["started_at"] > journals[0]["finished_at"]

    suites = {s.get("name"): s for s in ET.parse(junit).getroot()}
    assert list(suites) == ["drill.known-weakness", "drill.api-blip"]
    assert suites["drill.known-weakness"].get("failures") == "0"
    assert {c.get("name") for c in suites["drill.known-weakness"]} == \
        {"rto.feed", "lost_acked_writes", "counters", "zero_reads", "split_brain"}
    assert suites["drill.api-blip"].find("testcase[@name='rto.feed']/failure") is not None

    links = _Links()
    links.feed((out / "index.html").read_text())
    assert len(links.hrefs) >= 6 and all((out / h).is_file() for h in links.hrefs)
    assert {h.split("/")[0] for h in links.hrefs} == {"01-known-weakness", "02-api-blip"}
    assert "exit 1" in (out / "index.md").read_text()
