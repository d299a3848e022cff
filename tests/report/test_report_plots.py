"""Timeline plots: real PNGs whose pixels show the fault windows and the recovery marks."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from PIL import Image

from drills.checks import bucket_series
from drills.model import FaultRecord, Request
from drills.report.plots import (
    DPI,
    FAULT_COLOUR,
    RTO_COLOUR,
    SIZE_IN,
    Mark,
    Window,
    class_plots,
    fault_windows,
    plot_bucket_s,
    rto_marks,
    timeline_png,
)

from ._runs import FAULT_AT, FAULT_END, T0, fault, requests


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _blend(hex_colour: str, alpha: float) -> tuple[float, ...]:
    return tuple(255 * (1 - alpha) + c * alpha for c in _rgb(hex_colour))


def _columns(png: bytes, is_colour: Callable[[tuple[int, int, int]], bool]) -> list[int]:
    """x pixel columns where ``is_colour`` holds over at least 200 px of height: a band or a
    vertical line across the three panels, not a legend patch, a bar or a glyph."""
    im = Image.open(io.BytesIO(png)).convert("RGB")
    w, h = im.size
    px = im.load()
    return [x for x in range(w) if sum(1 for y in range(0, h, 2) if is_colour(px[x, y])) >= 100]


def _near(colour: tuple[float, ...], tol: float = 4.0) -> Callable[[tuple[int, int, int]], bool]:
    return lambda p: all(abs(p[i] - colour[i]) <= tol for i in range(3))


def _greenish(p: tuple[int, int, int]) -> bool:
    return p[1] - max(p[0], p[2]) > 40


@pytest.fixture(scope="module")
def upload_series():
    reqs = requests(6.0, classes=("upload",))
    return bucket_series(reqs, op="upload", bucket_s=1.0, origin=T0, end=max(r.t for r in reqs))


def test_png_is_a_real_image_of_the_declared_size(upload_series) -> None:
    png = timeline_png(upload_series, origin=T0, title="upload")
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG"
    assert im.size == (int(SIZE_IN[0] * DPI), int(SIZE_IN[1] * DPI))
    assert len(im.convert("RGB").getcolors(maxcolors=1 << 24)) > 20  # not a blank canvas


def test_fault_window_is_shaded_exactly_over_its_span(upload_series) -> None:
    shade = _blend(FAULT_COLOUR, 0.13)
    plain = timeline_png(upload_series, origin=T0)
    assert _columns(plain, _near(shade)) == []  # the check finds nothing where nothing is shaded
    shaded = timeline_png(upload_series, origin=T0,
                          windows=[Window(FAULT_AT, FAULT_END, "f0 power_down dc-east")])
    cols = _columns(shaded, _near(shade))
    assert cols, "no shaded band"
    # The x axis runs 0..50 s over the plot area: the band covers 20 of those 50 s, in one
    # piece (only the grid lines crossing it break the colour).
    span = cols[-1] - cols[0] + 1
    assert len(cols) > 0.95 * span
    assert 0.3 < span / int(SIZE_IN[0] * DPI) < 0.45
    late = timeline_png(upload_series, origin=T0, windows=[Window(35.0, 45.0, "later")])
    assert _columns(late, _near(shade))[0] > cols[-1]  # a later window is drawn further right


def test_rto_mark_is_a_green_line_and_not_recovered_is_labelled(upload_series) -> None:
    assert _greenish(_rgb(RTO_COLOUR))
    assert _columns(timeline_png(upload_series, origin=T0), _greenish) == []
    early = _columns(timeline_png(upload_series, origin=T0, marks=[Mark("f0", 12.0, 2.0)]),
                     _greenish)
    late = _columns(timeline_png(upload_series, origin=T0, marks=[Mark("f0", 40.0, 30.0)]),
                    _greenish)
    assert early and late and early[0] < late[0]
    none = timeline_png(upload_series, origin=T0, marks=[Mark("f0", None, None)])
    assert _columns(none, _greenish) == []  # no line for a recovery that never happened


def test_windows_and_marks_from_records() -> None:
    f = fault()
    never = FaultRecord(id="f1", kind="crash", target="api", scheduled_at=40.0,
                        injected_at=T0 + 40.0)
    assert fault_windows([never, f], origin=T0) == (
        Window(pytest.approx(FAULT_AT + 0.02), pytest.approx(FAULT_END + 0.05),
               "f0 power_down dc-east"),
        Window(40.0, None, "f1 crash api"),
    )
    by_fault = {"f0": {"upload": 2.5, "feed": None}}
    assert rto_marks("upload", faults=[f, never], rto_by_fault=by_fault, origin=T0) == (
        Mark("f0", pytest.approx(FAULT_AT + 0.02 + 2.5), 2.5),)
    assert rto_marks("feed", faults=[f], rto_by_fault=by_fault, origin=T0) == (
        Mark("f0", None, None),)
    assert rto_marks("stats", faults=[f], rto_by_fault=by_fault, origin=T0) == ()


@pytest.mark.parametrize(("analysis", "plot"), [(0.25, 1.0), (0.3, 1.2), (2.0, 2.0), (1.0, 1.0)])
def test_plot_bucket_is_a_multiple_of_the_analysis_bucket(analysis: float, plot: float) -> None:
    assert plot_bucket_s(analysis) == pytest.approx(plot)


def test_plot_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        plot_bucket_s(0.0)


def test_class_plots_one_per_class_with_requests() -> None:
    reqs = requests(3.0, classes=("upload", "feed"))
    plots = class_plots(reqs, origin=T0, faults=[fault()],
                        rto_by_fault={"f0": {"upload": 5.5, "feed": 0.0}},
                        classes=("upload", "feed", "search"))
    assert [p.op for p in plots] == ["upload", "feed"]  # the given order; none without requests
    # without classes: those of the requests, in first-seen order
    assert [p.op for p in class_plots(reqs, origin=T0)] == ["feed", "upload"]
    assert plots[0].caption.startswith("upload: 300 requests, 18 failed; f0: RTO 5.50 s")
    assert class_plots([], origin=T0) == ()
    only_stats = [Request(t=T0 + 1, duration=0.1, op="stats", ok=True)]
    assert [p.op for p in class_plots(only_stats, origin=T0)] == ["stats"]
