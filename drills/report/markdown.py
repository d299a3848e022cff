"""``report.md``: the verdict, the objectives table, the metrics with what each means, the
faults with their effective times, and every check's evidence.

Times are shown from load start (``t+9.700s``) as in ``report.html``, the wall-clock times
inside the checks' findings included (`drills.report.clock.Clock`); as clock times of day when
the run has no load start."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from drills.journal import Journal
from drills.report.clock import Clock

#: What each metric means, printed under the metrics table (kept in sync with README.md).
METRIC_HELP = {
    "rto_s": "seconds from fault start until the class held its baseline success rate and half "
    "its baseline throughput for the hold time; for an outage that began only after the fault "
    "was reverted (failback), from the revert; the longer of the two (per class; 'not "
    "recovered' if never)",
    "lost_acked_writes": "written keys the system acknowledged that the final read does not "
    "have",
    "lost_increments": "acknowledged counter increments missing from the final counters "
    "(counted in the lost_acked_writes objective)",
    "writes_at_risk": "writes the drill put at risk: acknowledged within analysis.exposure_window "
    "before a fault, in flight at its instant, or acknowledged during it (until the revert + "
    "the window); 0 lost of few at risk proves little",
    "keys_at_risk": "the key writes among writes_at_risk",
    "increments_at_risk": "the counter increments among writes_at_risk",
    "acked_before_fault": "writes acknowledged within exposure_window before a fault",
    "in_flight_at_fault": "writes sent before a fault and answered after it (or never)",
    "acked_during_fault": "writes acknowledged while a fault was in force (failover, failback)",
    "retried_writes": "writes the client sent more than once with the same idempotency key "
    "around a fault",
    "degraded_reads": "reads answered by a replica (marked stale) while a fault was in force",
    "split_brain_sources": "which evidence found split brain: history (acks by a store after "
    "another took over, then lost), epochs (the stores' own epoch headers), divergence",
    "rpo_s": "how far back before the fault the oldest lost acknowledged write was (0 = none)",
    "unexpected_writes": "keys in the final read that no client ever attempted to write",
    "attempted_writes": "keys the load attempted to write",
    "acked_writes": "keys whose write the system acknowledged",
    "counters_out_of_bounds": "counters outside [acked increments, acked + indeterminate]",
    "zero_reads": "reads (of one key, or items of a list read) that showed a counter at 0 "
    "while acknowledged increments of it were already > 0",
    "split_brain": "two stores accepted writes at once: the history shows acks by a store after "
    "another had taken over (then lost), or two stores acked under one epoch, or a stale "
    "epoch acked a write",
    "divergent_keys": "keys on which the stores still differ after quiesce",
}


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) or "—"
    return str(value)


def render(j: Journal) -> str:
    clock = Clock(j.load_started_at)
    out = [f"# Drill `{j.drill}` — {j.verdict.upper()}", "", j.description, ""]
    out.append(f"Provider `{j.provider}`, ran {j.duration_s:.1f} s, "
               f"started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(j.started_at))}.")
    if j.expect != "pass":
        out.append(f"This drill is expected to **{j.expect}** (it rehearses a known weakness).")
    if j.error:
        out += ["", f"**Error:** {clock.rewrite(j.error)}"]
    out += ["", "## Objectives", "", "| objective | target | measured | result |"]
    out.append("|---|---|---|---|")
    for o in j.objectives:
        res = {True: "pass", False: "**FAIL**", None: "unknown"}[o.passed]
        out.append(f"| {o.name} | {o.target} | {o.measured} | {res} |")
    out += ["", "## Metrics", "", "| metric | value | meaning |", "|---|---|---|"]
    for key, value in j.metrics.items():
        out.append(f"| {key} | {_fmt(value)} | {METRIC_HELP.get(key, '')} |")
    times = "times from load start" if clock.t0 is not None else "clock times; no load start"
    out += ["", f"## Faults ({times})", "",
            "| id | kind | target | scheduled | injected | reverted |", "|---|---|---|---|---|---|"]
    for f in j.faults:
        out.append(f"| {f.id} | {f.kind} | {f.target} | t+{f.scheduled_at:g}s | "
                   f"{clock.at(f.injected_at)} | {clock.at(f.reverted_at)} |")
    out += ["", "## Phases", ""]
    out += [f"- {p.name}: {clock.at(p.started_at)} → {clock.at(p.ended_at)}" for p in j.phases]
    out += ["", "## Checks", ""]
    for c in j.checks:
        res = {True: "pass", False: "FAIL", None: "unknown"}[c.passed]
        out.append(f"### {c.name}: {res}")
        out += ["", clock.rewrite(c.summary), ""]
        out += [f"- {clock.rewrite(line)}" for line in c.findings]
        out.append("")
    return "\n".join(out) + "\n"


def write_markdown(path: Path, journal: Journal) -> None:
    Path(path).write_text(render(journal), encoding="utf-8")
