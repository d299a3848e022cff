"""README.md stays true: the drill-file reference is the one the code generates, and the CI entry
point runs the test command the README gives."""

from __future__ import annotations

import re
from pathlib import Path

from drills.catalog import builtin_drills, reference_markdown

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_drill_file_reference_is_current():
    block = re.search(r"<!-- reference:start -->\n(.*)\n<!-- reference:end -->", README, re.S)
    assert block, "README lost its reference markers"
    assert block.group(1).strip() == reference_markdown().strip()


def test_every_builtin_drill_is_in_the_readme():
    for drill in builtin_drills():
        assert f"`{drill.name}`" in README


def test_ci_runs_the_readme_test_command():
    assert "make test" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
