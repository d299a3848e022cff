"""``drill compare RUN_A RUN_B``: what got better or worse between two runs of one drill.

Run A is the reference (before), run B the candidate (after): "better" means B is better.
Compared, from each run's journal (and request record, when both have one):

- **verdict** (for ``expect: fail`` drills, whether the run went as expected) and each
  objective's result;
- **RTO** per class (worst over faults; "not recovered" is worse than any time), and the seconds
  each class spent below its threshold; a difference of at most one bucket of the width the
  class was measured with (its resolution, from the rto check's typed `Rto` evidence; see
  `resolution`) is "same";
- **loss**: lost acknowledged writes, observed RPO, unexpected writes;
- **counters**: counters out of bounds, zero reads; **split brain** and divergent keys;
- **errors**: the error rate of all requests and of each class, better or worse only when the
  difference is significant and large enough (`rate_trend`: noise between two identical
  passing runs must not fail a CI job).

Classes are listed in the runs' recorded order (their journals' ``classes``), then any other
class in first-seen order. Values missing from one run (a class not measured, a run that
ended in error) are "changed",
never better or worse. The drill files are diffed too (``stack.config.fsync: always -> never``),
since comparing configurations is what game days do. Two runs of different drills raise
`SpecError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from rich.markup import escape
from rich.table import Table

from drills.checks.frame import RequestFrame, as_frame
from drills.duration import parse_duration
from drills.errors import SpecError
from drills.journal import Journal
from drills.model import Request, Rto
from drills.report.classes import journal_classes, ordered
from drills.report.load import load_frame, load_journal

Trend = Literal["better", "worse", "same", "changed"]
INF = math.inf
#: Rank of a verdict, and of "went as expected" for ``expect: fail`` drills.
VERDICT_RANK = {"error": 0, "fail": 1, "inconclusive": 2, "pass": 3}
EXPECTED_RANK = {False: 0, None: 1, True: 2}
RESULT_RANK = {False: 0, None: 1, True: 2}
RESULT_TEXT = {True: "pass", False: "FAIL", None: "unknown"}


@dataclass(frozen=True, slots=True)
class Change:
    """One compared quantity: its group and name, both runs' values as text, and the trend."""

    group: str
    metric: str
    a: str
    b: str
    trend: Trend
    note: str = ""


@dataclass(frozen=True, slots=True)
class SpecDiff:
    """One drill-file field that differs between the runs (dotted path, values as text)."""

    path: str
    a: str
    b: str


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two runs of one drill side by side (A the reference, B the candidate)."""

    drill: str
    run_a: str
    run_b: str
    verdict_a: str
    verdict_b: str
    changes: tuple[Change, ...]
    spec_diffs: tuple[SpecDiff, ...]

    def having(self, trend: Trend) -> tuple[Change, ...]:
        """The changes with ``trend`` (``better``, ``worse``, ``same``, ``changed``)."""
        return tuple(c for c in self.changes if c.trend == trend)


def _order(a: float, b: float, *, tol: float = 0.0, lower_better: bool = True) -> Trend:
    if a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tol):
        return "same"
    return "better" if (b < a) == lower_better else "worse"


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _count(
    group: str, metric: str, a: Any, b: Any, *, unit: str = "", tol: float = 0.0
) -> Change:
    """A lower-is-better quantity; None (unknown) on either side makes it 'changed'."""
    x, y = _num(a), _num(b)

    def show(v: float | None) -> str:
        return "unknown" if v is None else (f"{v:g}{unit}")

    if x is None or y is None:
        return Change(group, metric, show(x), show(y), "same" if x == y else "changed")
    return Change(group, metric, show(x), show(y), _order(x, y, tol=tol))


def _flag(group: str, metric: str, a: Any, b: Any) -> Change:
    """A yes/no finding where yes is bad (split brain); None is unknown."""
    def show(v: Any) -> str:
        return "unknown" if v is None else ("yes" if v else "no")

    if a is None or b is None:
        return Change(group, metric, show(a), show(b), "same" if a is b else "changed")
    return Change(group, metric, show(a), show(b), _order(float(bool(a)), float(bool(b))))


def _rto_value(m: Mapping[str, Any], op: str) -> float | None:
    """RTO of ``op``: seconds, INF for not recovered, None when not measured."""
    if op not in m:
        return None
    v = _num(m[op])
    return INF if v is None else v


def _rto_text(v: float | None) -> str:
    return "not measured" if v is None else ("not recovered" if v == INF else f"{v:.2f} s")


def _check_metrics(j: Journal, check: str) -> Mapping[str, Any]:
    found = next((c for c in j.checks if c.name == check), None)
    return {} if found is None else found.metrics


def _class_map(metrics: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``metrics[key]`` when it is a class -> value mapping, else empty."""
    m = metrics.get(key)
    return m if isinstance(m, Mapping) else {}


def resolution(j: Journal) -> dict[str, float]:
    """Class -> the bucket width (s) its RTO was measured with: the widest ``bucket_s`` of the
    rto check's `Rto` evidence for that class (over faults), and the drill's analysis bucket
    under ``""`` for classes without evidence."""
    out: dict[str, float] = {"": _bucket(j)}
    rto = next((c for c in j.checks if c.name == "rto"), None)
    for r in () if rto is None else rto.of(Rto):
        out[r.op] = max(out.get(r.op, 0.0), r.bucket_s)
    return out


def _rto_changes(a: Journal, b: Journal) -> list[Change]:
    rto_a, rto_b = _class_map(a.metrics, "rto_s"), _class_map(b.metrics, "rto_s")
    below_a = _class_map(_check_metrics(a, "rto"), "below_s")
    below_b = _class_map(_check_metrics(b, "rto"), "below_s")
    res_a, res_b = resolution(a), resolution(b)

    def tol(op: str) -> float:
        return max(res_a.get(op, res_a[""]), res_b.get(op, res_b[""]))

    known = _known(a, b)
    out: list[Change] = []
    for op in ordered(known, rto_a, rto_b):
        x, y = _rto_value(rto_a, op), _rto_value(rto_b, op)
        trend: Trend = "changed" if x is None or y is None else _order(x, y, tol=tol(op))
        if x is None and y is None:
            trend = "same"
        out.append(_noted(Change("rto", op, _rto_text(x), _rto_text(y), trend), x, y, tol(op)))
    for op in ordered(known, below_a, below_b):
        x, y = _num(below_a.get(op)), _num(below_b.get(op))
        out.append(_noted(_count("outage", f"{op} seconds below threshold", x, y, unit=" s",
                                 tol=tol(op)), x, y, tol(op)))
    return out


def _noted(change: Change, x: float | None, y: float | None, tol: float) -> Change:
    """Say so when a 'same' hides a difference within the measurement's resolution."""
    if change.trend != "same" or x is None or y is None or x == y:
        return change
    return replace(change, note=f"within one {tol:g} s bucket (the resolution)")


def _known(a: Journal, b: Journal) -> list[str]:
    """The classes both journals recorded, A's order first."""
    return list(dict.fromkeys([*journal_classes(a), *journal_classes(b)]))


def _verdict_change(a: Journal, b: Journal) -> Change:
    if a.expect == "fail" or b.expect == "fail":
        text = {True: "as expected", False: "NOT as expected", None: "undecided"}
        return Change("verdict", "went as expected", f"{a.verdict} ({text[a.as_expected]})",
                      f"{b.verdict} ({text[b.as_expected]})",
                      _order(EXPECTED_RANK[a.as_expected], EXPECTED_RANK[b.as_expected],
                             lower_better=False))
    return Change("verdict", "verdict", a.verdict.upper(), b.verdict.upper(),
                  _order(VERDICT_RANK.get(a.verdict, 0), VERDICT_RANK.get(b.verdict, 0),
                         lower_better=False))


def _objective_changes(a: Journal, b: Journal) -> list[Change]:
    oa = {o.name: o for o in a.objectives}
    ob = {o.name: o for o in b.objectives}
    out = []
    for name in [*oa, *(n for n in ob if n not in oa)]:
        x, y = oa.get(name), ob.get(name)
        if x is None or y is None:
            out.append(Change("objectives", name, "absent" if x is None else
                              RESULT_TEXT[x.passed], "absent" if y is None else
                              RESULT_TEXT[y.passed], "changed"))
            continue
        out.append(Change("objectives", name, f"{RESULT_TEXT[x.passed]} ({x.measured})",
                          f"{RESULT_TEXT[y.passed]} ({y.measured})",
                          _order(RESULT_RANK[x.passed], RESULT_RANK[y.passed],
                                 lower_better=False)))
    return out


def _metric_changes(a: Journal, b: Journal) -> list[Change]:
    ma, mb = a.metrics, b.metrics
    rows = [("loss", "lost_acked_writes", ""), ("loss", "rpo_s", " s"),
            ("loss", "unexpected_writes", ""), ("counters", "counters_out_of_bounds", ""),
            ("counters", "zero_reads", "")]
    return [
        *(_count(g, k, ma.get(k), mb.get(k), unit=u) for g, k, u in rows),
        _flag("split brain", "split_brain", ma.get("split_brain"), mb.get("split_brain")),
        _count("split brain", "divergent_keys", ma.get("divergent_keys"),
               mb.get("divergent_keys")),
    ]


def _rate_text(errors: int, total: int) -> str:
    return f"{100 * errors / total:.2f}% ({errors}/{total})" if total else "no requests"


#: Error rates differ only when a two-proportion z-test says so at this level (two-sided) ...
RATE_ALPHA = 0.01
#: ... and by at least this much (absolute): 0.04 % vs 0.20 % of errors in two identical
#: passing runs is noise, not a regression, however many requests back it.
RATE_MIN_EFFECT = 0.005


def rate_trend(a: tuple[int, int], b: tuple[int, int], *, alpha: float = RATE_ALPHA,
               min_effect: float = RATE_MIN_EFFECT) -> Trend:
    """Is error rate ``b`` (errors, total) better or worse than ``a``? Only when the difference
    is both significant (pooled two-proportion z-test, two-sided p < ``alpha``) and at least
    ``min_effect`` in absolute rate; otherwise ``same``. Totals must be > 0."""
    (ea, na), (eb, nb) = a, b
    pa, pb = ea / na, eb / nb
    pooled = (ea + eb) / (na + nb)
    se = math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    if se == 0 or abs(pb - pa) < min_effect:
        return "same"
    p_value = math.erfc(abs(pb - pa) / se / math.sqrt(2))
    if p_value >= alpha:
        return "same"
    return "better" if pb < pa else "worse"


def _rate_change(metric: str, a: tuple[int, int] | None, b: tuple[int, int] | None) -> Change:
    """Error rates, judged by `rate_trend` (noise is 'same')."""
    if a is None or b is None or not a[1] or not b[1]:
        ta = "unknown" if a is None else _rate_text(*a)
        tb = "unknown" if b is None else _rate_text(*b)
        return Change("errors", metric, ta, tb, "same" if ta == tb else "changed")
    return Change("errors", metric, _rate_text(*a), _rate_text(*b), rate_trend(a, b))


Records = Sequence[Request] | RequestFrame


def _errors_by_class(requests: Records) -> dict[str, tuple[int, int]]:
    """Class -> (failed, requests), classes in first-seen order."""
    return {op: (failed, total) for op, (total, failed) in as_frame(requests).per_class().items()}


def _error_changes(
    a: Journal, b: Journal, req_a: Records | None, req_b: Records | None
) -> list[Change]:
    def overall(j: Journal) -> tuple[int, int] | None:
        e, n = _num(j.metrics.get("errors")), _num(j.metrics.get("requests"))
        return None if e is None or n is None else (int(e), int(n))

    out = [_rate_change("all requests", overall(a), overall(b))]
    if req_a is not None and req_b is not None:
        ca, cb = _errors_by_class(req_a), _errors_by_class(req_b)
        out += [_rate_change(op, ca.get(op), cb.get(op))
                for op in ordered(_known(a, b), ca, cb)]
    return out


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list | tuple):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def spec_diffs(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[SpecDiff, ...]:
    """Fields of two drill records (``Journal.spec``) that differ; an absent field reads as
    unset. Ordered as in ``a``, then fields only ``b`` has."""
    fa, fb = _flatten(a), _flatten(b)

    def show(v: Any) -> str:
        return "unset" if v is None else str(v)

    keys = [*fa, *(k for k in fb if k not in fa)]
    return tuple(SpecDiff(k, show(fa.get(k)), show(fb.get(k)))
                 for k in keys if fa.get(k) != fb.get(k))


def _bucket(j: Journal) -> float:
    raw = j.spec.get("analysis", {}).get("bucket", 0.25) if isinstance(j.spec, Mapping) else 0.25
    try:
        return parse_duration(raw)
    except ValueError:
        return 0.25


def compare_journals(
    a: Journal,
    b: Journal,
    *,
    labels: tuple[str, str] = ("A", "B"),
    requests_a: Records | None = None,
    requests_b: Records | None = None,
) -> Comparison:
    """Compare two journals (module docstring); ``labels`` name the runs in messages.

    Per-class error rates need both request records. Raises `SpecError` naming both runs and
    both drills when the drills differ.
    """
    if a.drill != b.drill:
        raise SpecError(f"cannot compare runs of different drills: {labels[0]} ran "
                        f"{a.drill!r}, {labels[1]} ran {b.drill!r}", source="drill compare")
    changes = [
        _verdict_change(a, b),
        *_objective_changes(a, b),
        *_rto_changes(a, b),
        *_metric_changes(a, b),
        *_error_changes(a, b, requests_a, requests_b),
    ]
    return Comparison(drill=a.drill, run_a=labels[0], run_b=labels[1], verdict_a=a.verdict,
                      verdict_b=b.verdict, changes=tuple(changes),
                      spec_diffs=spec_diffs(a.spec, b.spec))


def compare(run_a: Path, run_b: Path) -> Comparison:
    """Compare two run directories (``drill compare RUN_A RUN_B``): A before, B after.

    Raises `SpecError` if either is not a run directory or they ran different drills.
    """
    a, b = load_journal(run_a), load_journal(run_b)
    return compare_journals(a, b, labels=(str(run_a), str(run_b)),
                            requests_a=load_frame(run_a), requests_b=load_frame(run_b))


def _headline(c: Comparison) -> str:
    counts = " · ".join(f"{t}: {len(c.having(t))}" for t in ("better", "worse", "changed"))
    return (f"drill {c.drill}: A {c.run_a} ({c.verdict_a.upper()}) vs B {c.run_b} "
            f"({c.verdict_b.upper()})\n{counts} (B compared with A)")


def render_text(c: Comparison, *, only_changes: bool = False) -> str:
    """The comparison as a plain-text table (no markup), then the drill-file differences.

    ``only_changes`` leaves out the rows that are the same.
    """
    rows = [ch for ch in c.changes if not (only_changes and ch.trend == "same")]
    head = ("group", "metric", "A", "B", "change", "note")
    cells = [head, *((ch.group, ch.metric, ch.a, ch.b, ch.trend, ch.note) for ch in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = [_headline(c), ""]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
              for r in cells]
    lines += ["", "drill file differences (A -> B):" if c.spec_diffs else
              "drill files identical"]
    lines += [f"  {d.path}: {d.a} -> {d.b}" for d in c.spec_diffs]
    return "\n".join(lines) + "\n"


def to_table(c: Comparison, *, only_changes: bool = False) -> Table:
    """The comparison as a rich `Table` (better green, worse red) for ``console.print``."""
    style = {"better": "green", "worse": "bold red", "changed": "yellow", "same": "dim"}
    table = Table(title=escape(_headline(c)), title_justify="left")
    for col in ("group", "metric", "A", "B", "change", "note"):
        table.add_column(col, overflow="fold")
    for ch in c.changes:
        if only_changes and ch.trend == "same":
            continue
        table.add_row(*(escape(v) for v in (ch.group, ch.metric, ch.a, ch.b)),
                      f"[{style[ch.trend]}]{ch.trend}[/]", escape(ch.note))
    if c.spec_diffs:
        table.caption = "drill file differences (A -> B): " + "; ".join(
            escape(f"{d.path}: {d.a} -> {d.b}") for d in c.spec_diffs)
    return table
