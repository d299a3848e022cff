"""A drill file run as a test, end to end: pytester runs pytest in a subprocess on a directory
holding a short drill (a real ClipStream as local processes, real Locust load, a 4 s crash of
the api) and a docker-compose.yml. The drill misses its 1 s feed objective by construction, so
the item fails, and what the user sees is the objectives table and the report's path, not a
traceback; ``--junitxml`` records it as usual. About 20-30 s."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
QUIET = ("-p", "no:locust", "-p", "no:benchmark", "-p", "no:hypothesispytest",
         "-p", "no:cacheprovider")
MISSED = """\
drill: api-blip
description: The api crashes for 4 s; a 1 s feed objective cannot be met.
load: {users: 8, rate: 40}
timeline:
  baseline: 4s
  faults:
    - {at: 4s, crash: api, for: 4s}
  settle: 4s
  quiesce: 5s
objectives:
  rto: {feed: 1s}
analysis: {hold: 1s}
"""


def test_a_missed_objective_fails_with_the_table_and_the_report(pytester: pytest.Pytester):
    (pytester.path / "api-blip.yaml").write_text(MISSED)
    (pytester.path / "docker-compose.yml").write_text((REPO / "docker-compose.yml").read_text())
    out, junit = pytester.path / "runs", pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(*QUIET, "--drills-out", str(out),
                                           f"--junitxml={junit}", timeout=240)
    text = result.stdout.str()
    result.assert_outcomes(failed=1)
    assert "drill api-blip: FAIL" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("rto.feed"))
    assert row.split()[:3] == ["rto.feed", "≤", "1s"] and row.split()[-1] == "FAIL"
    assert "lost_acked_writes" in text and "Traceback" not in text and "engine.py" not in text

    (run_dir,) = out.glob("api-blip-*")
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["verdict"] == "fail"
    report = next(line.split("report: ", 1)[1] for line in text.splitlines()
                  if line.startswith("report: "))
    assert Path(report).is_file() and Path(report).parent == run_dir

    case = ET.parse(junit).getroot().find(".//testcase")
    assert case is not None and case.get("name") == "api-blip"
    failure = case.find("failure")
    assert failure is not None and "rto.feed" in (failure.text or "")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["drill_run_dir"] == str(run_dir) and props["drill_verdict"] == "fail"
