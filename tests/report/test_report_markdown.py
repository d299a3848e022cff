"""``report.md`` from hand-made journals (`_runs.build_journal`): times from load start."""

from __future__ import annotations

import re

from drills.report.markdown import render

from ._runs import build_journal

#: A Unix time as a float (what the checks print in findings: 1700000009.700).
EPOCH = re.compile(r"(?<![\d.])\d{10}\.\d+")


def test_times_are_shown_from_load_start_findings_included() -> None:
    j, _, _ = build_journal(broken=True, outage_s=6.0)
    md = render(j)
    assert EPOCH.findall(md) == []
    assert "- lost acked write lost-a: acked at t+9.700s by store-east epoch 1 " \
           "(invoked t+9.500s)" in md
    assert "| f0 | power_down | dc-east | t+10s | t+10.020s | t+30.050s |" in md
    assert "- prepare: t-4.000s → t+0.000s" in md  # before load start: minus, not "+-"


def test_without_a_load_start_times_are_clock_times() -> None:
    j, _, _ = build_journal()
    j.load_started_at = None
    md = render(j)
    assert "## Faults (clock times; no load start)" in md
    assert re.search(r"\| f0 \| power_down \| dc-east \| t\+10s \| \d\d:\d\d:\d\d \| "
                     r"\d\d:\d\d:\d\d \|", md)
