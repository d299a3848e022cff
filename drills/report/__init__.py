"""Reports of a run, all rendered from its `Journal` (and, for the plots of ``report.html``, its
request record): ``journal.json``, ``report.md``, ``junit.xml`` (one test case per objective)
and ``report.html`` (self-contained page with timeline plots)."""

from __future__ import annotations

from pathlib import Path

from drills.journal import Journal
from drills.report.html import write_html
from drills.report.junit import write_junit
from drills.report.load import HTML_FILE, load_requests
from drills.report.markdown import write_markdown


def write_reports(run_dir: Path, journal: Journal) -> None:
    """Write every report of ``journal`` into ``run_dir`` (overwriting earlier ones).

    ``report.html`` plots ``run_dir/requests.jsonl`` when the run has one (written by the load
    before the verdict); without it the page says so.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    journal.write(run_dir)
    write_markdown(run_dir / "report.md", journal)
    write_junit(run_dir / "junit.xml", [journal])
    write_html(run_dir / HTML_FILE, journal, load_requests(run_dir))


__all__ = ["write_reports"]
