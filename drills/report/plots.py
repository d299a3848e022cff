"""Timeline plots of a run: one PNG per operation class (requests/s, success rate, p95 latency).

Each plot has three panels over one time axis, in seconds from load start: requests per second
(all, and failed), success rate (with the baseline rate dashed) and p95 latency. Fault windows
are shaded on every panel and each fault's recovery (RTO) is marked by a vertical line, or
labelled "not recovered". Series come from `drills.checks.series_by_class` (never re-bucketed
here). Rendering uses matplotlib's Agg canvas on `Figure` objects created per call: no pyplot,
no display, no global figure registry. Pure apart from CPU: records in, PNG bytes out.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from drills.checks import Series
from drills.checks.columns import frame_series
from drills.checks.frame import RequestFrame, as_frame
from drills.model import FaultRecord, Request

#: Plots group requests into buckets at least this wide (s): at 250 ms a class doing a few
#: requests per second shows 0 % / 100 % noise, not a trend.
MIN_PLOT_BUCKET_S = 1.0
FAULT_COLOUR = "#d62728"
RTO_COLOUR = "#2ca02c"
DPI = 100
SIZE_IN = (10.0, 5.6)


@dataclass(frozen=True, slots=True)
class Window:
    """A fault window, seconds from the plot origin; ``end`` None = never reverted."""

    start: float
    end: float | None
    label: str


@dataclass(frozen=True, slots=True)
class Mark:
    """A fault's recovery for one class: ``at`` seconds from the origin, None = not recovered."""

    fault_id: str
    at: float | None
    rto_s: float | None


@dataclass(frozen=True, slots=True)
class Plot:
    """One class's timeline: the class, a caption and the PNG bytes."""

    op: str
    caption: str
    png: bytes


def plot_bucket_s(analysis_bucket_s: float) -> float:
    """The plot bucket: the analysis bucket times the least integer reaching `MIN_PLOT_BUCKET_S`,
    so plot buckets are unions of analysis buckets."""
    if not analysis_bucket_s > 0:
        raise ValueError(f"bucket must be positive, got {analysis_bucket_s!r}")
    return analysis_bucket_s * max(1, math.ceil(MIN_PLOT_BUCKET_S / analysis_bucket_s - 1e-9))


def fault_windows(faults: Sequence[FaultRecord], *, origin: float) -> tuple[Window, ...]:
    """Each fault's effective window (injected to reverted) relative to ``origin``."""
    return tuple(
        Window(start=f.injected_at - origin,
               end=None if f.reverted_at is None else f.reverted_at - origin,
               label=f"{f.id} {f.kind} {f.target}")
        for f in sorted(faults, key=lambda f: f.injected_at)
    )


def rto_marks(
    op: str,
    *,
    faults: Sequence[FaultRecord],
    rto_by_fault: Mapping[str, Mapping[str, float | None]],
    origin: float,
) -> tuple[Mark, ...]:
    """The recovery marks of class ``op``: one per fault that has a measurement for it."""
    marks = []
    for f in sorted(faults, key=lambda f: f.injected_at):
        per_class = rto_by_fault.get(f.id, {})
        if op not in per_class:
            continue
        rto = per_class[op]
        at = None if rto is None else f.injected_at - origin + rto
        marks.append(Mark(fault_id=f.id, at=at, rto_s=rto))
    return tuple(marks)


def _columns(series: Series, origin: float) -> tuple[list[float], ...]:
    """x (bucket starts from origin), requests/s, failed/s, success rate, p95 (NaN if empty)."""
    w = series.bucket_s
    nan = float("nan")
    x = [b.t - origin for b in series.buckets]
    rps = [b.count / w for b in series.buckets]
    fps = [(b.count - b.ok) / w for b in series.buckets]
    rate = [nan if b.rate is None else b.rate for b in series.buckets]
    p95 = [nan if b.p95_s is None else b.p95_s for b in series.buckets]
    if series.buckets:  # close the last step so the final bucket is drawn with its width
        x.append(x[-1] + w)
        for col in (rps, fps, rate, p95):
            col.append(col[-1])
    return x, rps, fps, rate, p95


def _shade(axes: Sequence, windows: Sequence[Window], right: float) -> None:
    for ax in axes:
        for win in windows:
            ax.axvspan(win.start, right if win.end is None else win.end, color=FAULT_COLOUR,
                       alpha=0.13, linewidth=0)


def _mark(axes: Sequence, marks: Sequence[Mark], right: float) -> None:
    top = axes[0]
    for i, m in enumerate(marks):
        y = 0.97 - 0.12 * (i % 4)
        if m.at is None:
            top.text(0.995, y, f"{m.fault_id}: NOT RECOVERED", transform=top.transAxes,
                     ha="right", va="top", color=FAULT_COLOUR, fontsize=9, fontweight="bold")
            continue
        for ax in axes:
            ax.axvline(m.at, color=RTO_COLOUR, linestyle="--", linewidth=1.4)
        near_right = m.at > 0.8 * right
        top.text(m.at, y, f" RTO {m.fault_id} {m.rto_s:.2f} s ",
                 transform=top.get_xaxis_transform(), ha="right" if near_right else "left",
                 va="top", color=RTO_COLOUR, fontsize=9, fontweight="bold")


def timeline_png(
    series: Series,
    *,
    origin: float,
    windows: Sequence[Window] = (),
    marks: Sequence[Mark] = (),
    baseline_rate: float | None = None,
    title: str = "",
) -> bytes:
    """Render one class's three-panel timeline as PNG bytes (see the module docstring)."""
    x, rps, fps, rate, p95 = _columns(series, origin)
    # imported here, not with the module: matplotlib is ~30 MB of a harness that otherwise
    # peaks while it judges a long game day, before any plot is drawn
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax_rps, ax_ok, ax_lat = fig.subplots(3, 1, sharex=True)
    ax_rps.step(x, rps, where="post", color="#1f77b4", label="requests/s")
    ax_rps.fill_between(x, fps, step="post", color=FAULT_COLOUR, alpha=0.6, label="failed/s")
    ax_rps.set_ylabel("req/s")
    ax_rps.set_ylim(bottom=0)
    ax_rps.legend(loc="lower left", fontsize=8, framealpha=0.8)
    ax_ok.step(x, rate, where="post", color="#333333")
    if baseline_rate is not None:
        ax_ok.axhline(baseline_rate, color="#7f7f7f", linestyle=":", linewidth=1)
    ax_ok.set_ylim(-0.03, 1.05)
    ax_ok.set_ylabel("success")
    ax_lat.step(x, p95, where="post", color="#9467bd")
    ax_lat.set_ylim(bottom=0)
    ax_lat.set_ylabel("p95 (s)")
    ax_lat.set_xlabel(f"seconds from load start ({series.bucket_s:g} s buckets)")
    right = x[-1] if x else 1.0
    lo = min([0.0, *(w.start for w in windows)])
    ax_lat.set_xlim(lo, max(right, *(w.end or 0.0 for w in windows), lo + 1.0))
    axes = (ax_rps, ax_ok, ax_lat)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    _shade(axes, windows, right)
    _mark(axes, marks, right)
    if title:
        fig.suptitle(title, fontsize=11, fontweight="bold")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def class_plots(
    requests: Sequence[Request] | RequestFrame,
    *,
    origin: float,
    faults: Sequence[FaultRecord] = (),
    rto_by_fault: Mapping[str, Mapping[str, float | None]] | None = None,
    baseline: Mapping[str, float] | None = None,
    bucket_s: float = MIN_PLOT_BUCKET_S,
    classes: Sequence[str] | None = None,
) -> tuple[Plot, ...]:
    """One `Plot` per class of ``classes`` that has at least one request, in that order
    (None or empty: every class of ``requests``, in first-seen order).

    ``origin`` is the load start (x = 0); the grid ends at the last request's start. Returns
    an empty tuple when there are no requests.
    """
    frame = as_frame(requests)
    present = set(frame.classes)
    wanted = [c for c in (classes or frame.classes) if c in present]
    if not wanted:
        return ()
    end = float(frame.t.max())
    windows = fault_windows(faults, origin=origin)
    plots = []
    for op in wanted:
        series = frame_series(frame, op=op, bucket_s=bucket_s, origin=origin, end=end)
        marks = rto_marks(series.op, faults=faults, rto_by_fault=rto_by_fault or {},
                          origin=origin)
        caption = _caption(series, marks)
        png = timeline_png(series, origin=origin, windows=windows, marks=marks,
                           baseline_rate=(baseline or {}).get(series.op), title=series.op)
        plots.append(Plot(op=series.op, caption=caption, png=png))
    return tuple(plots)


def _caption(series: Series, marks: Sequence[Mark]) -> str:
    total = sum(b.count for b in series.buckets)
    failed = total - sum(b.ok for b in series.buckets)
    rtos = "; ".join(
        f"{m.fault_id}: {'not recovered' if m.rto_s is None else f'RTO {m.rto_s:.2f} s'}"
        for m in marks
    ) or "no RTO measured"
    return f"{series.op}: {total} requests, {failed} failed; {rtos}"
