"""Reports of a run, all rendered from its `Journal` (and, for the plots of ``report.html``, its
request record): ``journal.json``, ``report.md``, ``junit.xml`` (one test case per objective)
and ``report.html`` (self-contained page with timeline plots)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from drills.checks.frame import RequestFrame
from drills.journal import Journal
from drills.model import Request
from drills.report.html import write_html
from drills.report.junit import write_junit
from drills.report.load import HTML_FILE, load_frame
from drills.report.markdown import write_markdown


def write_reports(run_dir: Path, journal: Journal, *,
                  requests: RequestFrame | Sequence[Request] | None = None) -> None:
    """Write every report of ``journal`` into ``run_dir`` (overwriting earlier ones).

    ``report.html`` plots ``requests`` (the run's request record, already in memory), else
    ``run_dir/requests.jsonl`` when the run has one; without either the page says so.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    journal.write(run_dir)
    write_markdown(run_dir / "report.md", journal)
    write_junit(run_dir / "junit.xml", [journal])
    write_html(run_dir / HTML_FILE, journal,
               requests if requests is not None else load_frame(run_dir))


__all__ = ["write_reports"]
