"""Run directories built once per session from hand-made records (see `_runs`).

Tests that change a run directory copy it first (`fresh_copy`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ._runs import BuiltRun, build_run


@pytest.fixture(scope="session")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> BuiltRun:
    """A healthy run: writes down 3 s after the power loss, nothing lost; verdict pass."""
    return build_run(tmp_path_factory.mktemp("good") / "run")


@pytest.fixture(scope="session")
def bad_run(tmp_path_factory: pytest.TempPathFactory) -> BuiltRun:
    """A misbehaving run: lost writes, a counter short, a zero read, split brain; fail."""
    return build_run(tmp_path_factory.mktemp("bad") / "run", broken=True, outage_s=6.0)


def fresh_copy(run: BuiltRun, dest: Path) -> Path:
    """A copy of ``run``'s directory at ``dest`` (for tests that rewrite files)."""
    shutil.copytree(run.run_dir, dest)
    return dest
