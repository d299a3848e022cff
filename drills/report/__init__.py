"""Reports of a run, all rendered from its `Journal` alone: ``journal.json``, ``report.md`` and
``junit.xml`` (one test case per objective)."""

from __future__ import annotations

from pathlib import Path

from drills.journal import Journal
from drills.report.junit import write_junit
from drills.report.markdown import write_markdown


def write_reports(run_dir: Path, journal: Journal) -> None:
    """Write every report of ``journal`` into ``run_dir`` (overwriting earlier ones)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    journal.write(run_dir)
    write_markdown(run_dir / "report.md", journal)
    write_junit(run_dir / "junit.xml", [journal])


__all__ = ["write_reports"]
