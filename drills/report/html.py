"""``report.html``: one self-contained page per run (inline CSS, plots as PNG data URIs, no
script), readable offline in any browser.

Top to bottom: the verdict, the objectives table, one timeline plot per operation class
(`drills.report.plots`), faults and phases, the evidence (lost acknowledged writes with their
keys and ack times, counter anomalies, zero reads, split-brain findings, RTO and RPO detail),
the metrics, the drill as run with the stack's configuration, and the environment.

Rendered from the `Journal` and the request record alone (no stack, no network): `build_page`
turns them into a typed `Page`, the jinja2 template ``drills/templates/report.html.j2`` lays it
out. The lost-writes table comes from the acked-writes check's typed evidence
(`drills.model.LostWrite`), never from its prose. Wall-clock times inside findings are
rewritten as ``t+<s>s`` from load start.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml
from pydantic import ValidationError

from drills import __version__
from drills.checks.findings import MAX_FINDINGS
from drills.checks.frame import RequestFrame, as_frame
from drills.duration import parse_duration
from drills.errors import EnvironmentError_
from drills.journal import Journal
from drills.model import CheckResult, FaultRecord, LostWrite, Request
from drills.report.classes import journal_classes, ordered
from drills.report.clock import Clock
from drills.report.markdown import METRIC_HELP
from drills.report.plots import class_plots, plot_bucket_s
from drills.spec import DrillSpec

TEMPLATE = "report.html.j2"
RESULT = {True: ("pass", "pass"), False: ("fail", "FAIL"), None: ("unknown", "unknown")}
#: How many lost writes the table shows (the journal holds every one).
MAX_LOST_ROWS = 200


@dataclass(frozen=True, slots=True)
class Row:
    """One objective: its name, target, measured value and result (css class, text)."""

    name: str
    target: str
    measured: str
    result: str
    result_text: str


@dataclass(frozen=True, slots=True)
class PlotView:
    op: str
    caption: str
    b64: str


@dataclass(frozen=True, slots=True)
class FaultRow:
    id: str
    kind: str
    target: str
    scheduled: str
    injected: str
    reverted: str
    lasted: str


@dataclass(frozen=True, slots=True)
class PhaseRow:
    name: str
    start: str
    end: str


@dataclass(frozen=True, slots=True)
class LostRow:
    """One lost acknowledged write, times already formatted."""

    key: str
    acked: str
    by: str
    invoked: str


@dataclass(frozen=True, slots=True)
class Evidence:
    """One check shown as evidence: title, anchor, result and its findings."""

    title: str
    anchor: str
    result: str
    result_text: str
    summary: str
    findings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MetricRow:
    name: str
    value: str
    meaning: str


@dataclass(frozen=True, slots=True)
class Page:
    """Everything the template shows, formatted."""

    version: str
    drill: str
    description: str
    provider: str
    started: str
    duration: str
    load_started: str
    error: str | None
    verdict_text: str
    verdict_class: str
    expect_note: str
    objectives: tuple[Row, ...]
    plots: tuple[PlotView, ...]
    no_plots_reason: str
    faults: tuple[FaultRow, ...]
    phases: tuple[PhaseRow, ...]
    lost: Evidence
    lost_writes: tuple[LostRow, ...]
    lost_more: int
    evidence: tuple[Evidence, ...]
    metrics: tuple[MetricRow, ...]
    stack: tuple[tuple[str, str], ...]
    drill_yaml: str
    environment: tuple[tuple[str, str], ...]


def _stamp(t: float | None) -> str:
    return "—" if t is None else time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(t))


def _value(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.2f}"
    if isinstance(v, Mapping):
        return ", ".join(f"{k}: {_value(x)}" for k, x in v.items()) or "—"
    if isinstance(v, list | tuple):
        return ", ".join(_value(x) for x in v) or "—"
    return str(v)


def _evidence(check: CheckResult | None, *, title: str, anchor: str, clock: Clock,
              undecided: str = "unknown") -> Evidence:
    """One evidence section; ``undecided`` is the result text when the check did not judge
    (``measured`` for a check that only measures unless an objective asks it to judge)."""
    if check is None:
        return Evidence(title, anchor, "unknown", "not checked", "the run ended before the "
                        "checks ran", ())
    result, text = RESULT[check.passed]
    text = undecided if check.passed is None else text
    return Evidence(title, anchor, result, text, clock.rewrite(check.summary),
                    tuple(clock.rewrite(f) for f in check.findings))


def _lost_writes(
    check: CheckResult | None, *, clock: Clock, faults: Sequence[FaultRecord]
) -> tuple[tuple[LostRow, ...], int, Evidence]:
    """The lost-writes table from the check's `LostWrite` evidence (at most `MAX_LOST_ROWS`
    rows, and how many more there were); the findings that are not one of those writes
    (their `LostWrite.describe` line) stay findings."""
    ev = _evidence(check, title="Lost acknowledged writes", anchor="lost", clock=clock)
    if check is None:
        return (), 0, ev
    lost = check.of(LostWrite)
    rows = tuple(
        LostRow(key=w.key, acked=_ack_text(w.acked_at, clock, faults),
                by="—" if w.store is None else f"{w.store} (epoch {w.epoch})",
                invoked=clock.at(w.invoked_at))
        for w in lost[:MAX_LOST_ROWS])
    shown = {w.describe() for w in lost}
    rest = [line for line in check.findings if line not in shown]
    if lost and rest and rest[-1] == _more_line(check.findings):
        # the findings were bounded (`drills.checks.findings.bounded`) and the count left off
        # includes lost writes, which the table shows: count only the other lines left off
        rest.pop()
        others = sum(int(check.metrics.get(k) or 0)
                     for k in ("unexpected_writes", "failed_but_present"))
        if others > len(rest):
            rest.append(f"... {others - len(rest)} more")
    return rows, max(0, len(lost) - MAX_LOST_ROWS), Evidence(
        ev.title, ev.anchor, ev.result, ev.result_text, ev.summary,
        tuple(clock.rewrite(line) for line in rest))


def _more_line(findings: Sequence[str]) -> str | None:
    """The ``... N more`` line `drills.checks.findings.bounded` ended ``findings`` with, if
    it did (it keeps `MAX_FINDINGS` lines, then adds that one)."""
    if len(findings) == MAX_FINDINGS + 1 and findings[-1].startswith("... "):
        return findings[-1]
    return None


def _ack_text(acked: float | None, clock: Clock, faults: Sequence[FaultRecord]) -> str:
    """The ack time, and how long before the next fault's injection it was (as the RPO sees it)."""
    if acked is None:
        return "—"
    nxt = min((f for f in faults if f.injected_at >= acked), key=lambda f: f.injected_at,
              default=None)
    when = "" if nxt is None else f" ({nxt.injected_at - acked:.3f} s before {nxt.id})"
    return clock.at(acked) + when


def _faults(j: Journal, clock: Clock) -> tuple[FaultRow, ...]:
    return tuple(
        FaultRow(id=f.id, kind=f.kind, target=f.target, scheduled=f"t+{f.scheduled_at:g}s",
                 injected=clock.at(f.injected_at), reverted=clock.at(f.reverted_at),
                 lasted="never reverted" if f.reverted_at is None else
                 f"{f.reverted_at - f.injected_at:.2f} s")
        for f in j.faults
    )


def _plots(j: Journal, records: Sequence[Request] | RequestFrame | None
           ) -> tuple[tuple[PlotView, ...], str]:
    if records is None:
        return (), "No request record (requests.jsonl): the run ended before the load."
    requests = as_frame(records)
    if not len(requests):
        return (), "The request record is empty: the load made no request."
    rto = next((c for c in j.checks if c.name == "rto"), None)
    by_fault = rto.metrics.get("rto_by_fault") if rto is not None else None
    if not isinstance(by_fault, Mapping):
        by_fault = {}
    origin = j.load_started_at if j.load_started_at is not None else float(requests.t[0])
    classes = ordered(journal_classes(j), requests.classes)
    plots = class_plots(requests, origin=origin, faults=j.faults, rto_by_fault=by_fault,
                        classes=classes,
                        baseline=j.baseline, bucket_s=plot_bucket_s(_analysis_bucket(j.spec)))
    return tuple(PlotView(p.op, p.caption, base64.b64encode(p.png).decode("ascii"))
                 for p in plots), ""


def _analysis_bucket(spec: Mapping[str, Any]) -> float:
    raw = spec.get("analysis", {}).get("bucket", 0.25) if isinstance(spec, Mapping) else 0.25
    try:
        return parse_duration(raw) or 0.25
    except ValueError:
        return 0.25


def _drill_yaml(spec: Mapping[str, Any]) -> str:
    """The drill as run: the validated model's YAML, else the raw record without nulls."""
    if not spec:
        return "(not recorded)"
    try:
        return DrillSpec.model_validate(dict(spec)).to_yaml()
    except ValidationError:
        pruned = {k: v for k, v in spec.items() if v is not None}
        return yaml.safe_dump(pruned, sort_keys=False, allow_unicode=True, width=100)


def _stack(j: Journal) -> tuple[tuple[str, str], ...]:
    """The stack as run: provider, target, compose file, then every knob of ``stack.config``
    as the drill record holds it (a knob left unset: the target's default)."""
    stack = j.spec.get("stack", {}) if isinstance(j.spec, Mapping) else {}
    stack = stack if isinstance(stack, Mapping) else {}
    config = stack.get("config") or {}
    rows = [("provider (as run)", j.provider)]
    rows += [(label, str(stack[k])) for k, label in (("target", "target"),
                                                     ("compose", "compose file"))
             if stack.get(k)]
    if isinstance(config, Mapping):
        rows += [(str(k), "target default" if v is None else
                  (", ".join(map(str, v)) or "none") if isinstance(v, list | tuple) else str(v))
                 for k, v in config.items()]
    return tuple(rows)


def _verdict(j: Journal) -> tuple[str, str, str]:
    cls = j.verdict if j.verdict in ("pass", "fail", "error") else \
        "unknown" if j.verdict == "inconclusive" else "error"
    note = ""
    if j.expect != "pass":
        outcome = {True: "as expected", False: "NOT as expected", None: "undecided"}
        note = f"this drill is expected to {j.expect}: {outcome[j.as_expected]}"
    return j.verdict.upper(), cls, note


def build_page(j: Journal, requests: Sequence[Request] | RequestFrame | None) -> Page:
    """The formatted page of one run (``requests`` None when the run has no record)."""
    clock = Clock(j.load_started_at)
    checks = {c.name: c for c in j.checks}
    lost_rows, lost_more, lost = _lost_writes(checks.get("acked_writes"), clock=clock,
                                              faults=j.faults)
    plots, no_plots = _plots(j, requests)
    text, cls, note = _verdict(j)
    evidence = (
        _evidence(checks.get("exposure"), title="Exposure: what the drill put at risk",
                  anchor="exposure", clock=clock, undecided="measured"),
        _evidence(checks.get("counters"), title="Counter anomalies", anchor="counters",
                  clock=clock),
        _evidence(checks.get("zero_reads"), title="Zero reads", anchor="zero-reads",
                  clock=clock),
        _evidence(checks.get("split_brain"), title="Split brain", anchor="split-brain",
                  clock=clock),
        _evidence(checks.get("rto"), title="Recovery (RTO)", anchor="rto", clock=clock),
        _evidence(checks.get("rpo"), title="Recovery point (RPO)", anchor="rpo", clock=clock),
    )
    return Page(
        version=__version__, drill=j.drill, description=j.description, provider=j.provider,
        started=_stamp(j.started_at), duration=f"{j.duration_s:.1f} s",
        load_started=_stamp(j.load_started_at), error=j.error,
        verdict_text=text, verdict_class=cls, expect_note=note,
        objectives=tuple(Row(o.name, o.target, o.measured, *RESULT[o.passed])
                         for o in j.objectives),
        plots=plots, no_plots_reason=no_plots, faults=_faults(j, clock),
        phases=tuple(PhaseRow(p.name, clock.at(p.started_at), clock.at(p.ended_at))
                     for p in j.phases),
        lost=lost, lost_writes=lost_rows, lost_more=lost_more, evidence=evidence,
        metrics=tuple(MetricRow(k, _value(v), METRIC_HELP.get(k, ""))
                      for k, v in j.metrics.items()),
        stack=_stack(j), drill_yaml=_drill_yaml(j.spec),
        environment=(("run started", _stamp(j.started_at)),
                     ("run finished", _stamp(j.finished_at)),
                     *((k, str(v)) for k, v in j.environment.items())),
    )


def render_html(journal: Journal, requests: Sequence[Request] | RequestFrame | None
                ) -> str:
    """The report page as one HTML string (see the module docstring).

    Raises `EnvironmentError_` if the template is missing or broken (an installation fault).
    """
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("drills", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    try:
        return env.get_template(TEMPLATE).render(page=build_page(journal, requests))
    except jinja2.TemplateError as exc:
        raise EnvironmentError_(f"cannot render {TEMPLATE}: {exc}") from exc


def write_html(path: Path, journal: Journal,
               requests: Sequence[Request] | RequestFrame | None) -> Path:
    """Write `render_html` to ``path`` atomically (a reader never sees half a page)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(journal, requests), encoding="utf-8")
    tmp.replace(path)
    return path
