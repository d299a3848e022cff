"""A system drills knows nothing about (tests/targets/kvapp: a stdlib key-value service and its
own locustfile) drilled on local processes from its own drill file: its nodes, link, entry and
final-read contract. The same drill passes on the correct service and catches the planted bug
(acknowledged writes kept in memory only: ``KV_FSYNC=0``), and `drill analyze` re-judges a run
from its files to the same verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drills.catalog import load_drill
from drills.cli import main
from drills.engine import RunOptions, run_drill
from drills.runstore import analyze

DRILL = Path(__file__).parent / "kvapp" / "drill.yaml"

pytestmark = pytest.mark.slow


def _objectives(journal) -> dict[str, bool | None]:
    return {o.name: o.passed for o in journal.objectives}


def test_the_correct_service_passes_and_a_rerun_from_disk_agrees(tmp_path):
    result = run_drill(load_drill(DRILL), RunOptions(out=tmp_path / "run",
                                                     runs_root=tmp_path))
    assert result.error is None, result.error
    j = result.journal
    assert j.classes == ("write", "increment", "read")
    got = _objectives(j)
    assert got["lost_acked_writes"] is True and got["counters"] is True, j.objectives
    assert got["rto.write"] is True, j.objectives
    assert j.verdict == "pass"
    assert j.metrics["writes_at_risk"] > 0
    # judged again from the run directory alone: the same objectives, the same verdict
    _run, again = analyze(tmp_path / "run")
    assert again.verdict == j.verdict
    assert [(o.name, o.passed) for o in again.objectives] == \
        [(o.name, o.passed) for o in j.objectives]
    assert main(["analyze", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "analysis.json").read_text())["verdict"] == "pass"


def test_the_planted_bug_loses_acknowledged_writes_and_the_drill_says_so(tmp_path):
    spec = load_drill(DRILL, sets=['stack.nodes[0].env={"KV_FSYNC": "0"}'])
    result = run_drill(spec, RunOptions(out=tmp_path / "run", runs_root=tmp_path))
    assert result.error is None, result.error
    got = _objectives(result.journal)
    assert got["lost_acked_writes"] is False, result.journal.objectives
    assert result.journal.verdict == "fail"
