"""A real browser opens ``report.html``: headless Chromium (Debian's ``chromium`` package).

Starts one ``chromium --headless`` process per test (no network: the page is a local file and
loads nothing else). The page under test is a copy of the report with a probe script appended
that, once the page has loaded, writes what the browser sees (each image's natural size, the
verdict's text, box and style) into the DOM, which ``--dump-dom`` then prints.
Skipped, with the reason, where Chromium is absent.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from ._runs import RATES, BuiltRun

pytestmark = pytest.mark.slow

PROBE = """<script>
window.addEventListener("load", () => {
  const v = document.getElementById("verdict");
  const box = v.getBoundingClientRect();
  const style = getComputedStyle(v);
  const out = {
    images: [...document.images].map(i => ({
      figure: i.closest("figure") ? i.closest("figure").id : "",
      width: i.naturalWidth, height: i.naturalHeight, complete: i.complete})),
    verdict: {text: v.textContent.trim(), width: box.width, height: box.height, top: box.top,
              visibility: style.visibility, display: style.display,
              background: style.backgroundColor},
  };
  const pre = document.createElement("pre");
  pre.id = "drills-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""
BADGE_FAIL = (207, 34, 46)  # --fail in the template's CSS
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is absent: `apt-get install -y chromium` (Debian) to run this test")


def run_chromium(binary: str, profile: Path, *args: str) -> str:
    """Run headless Chromium to completion in its own process group; return its stdout.

    The group is killed if it outlives `TIMEOUT_S` (Chromium forks helpers).
    """
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
           f"--user-data-dir={profile}", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True, text=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, f"chromium exited {proc.returncode}"
    return out


def probe(binary: str, page: str, tmp_path: Path) -> dict:
    """What the browser sees of ``page`` (HTML text) once loaded."""
    path = tmp_path / "probed.html"
    path.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = run_chromium(binary, tmp_path / "profile-probe", "--virtual-time-budget=10000",
                       "--dump-dom", path.as_uri())
    found = re.search(r'<pre id="drills-probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run"
    return json.loads(html.unescape(found.group(1)))


def screenshot(binary: str, page: Path, tmp_path: Path, size: str = "1200,1600") -> Image.Image:
    shot = tmp_path / "shot.png"
    run_chromium(binary, tmp_path / "profile-shot", f"--window-size={size}",
                 f"--screenshot={shot}", page.as_uri())
    im = Image.open(io.BytesIO(shot.read_bytes()))
    im.load()
    return im.convert("RGB")


def colours(im: Image.Image) -> dict[tuple[int, int, int], int]:
    return {c: n for n, c in im.getcolors(maxcolors=1 << 24)}


def is_blank(im: Image.Image) -> bool:
    """One colour covers more than 99.5 % of the screenshot."""
    return max(colours(im).values()) > 0.995 * im.width * im.height


def test_chromium_loads_every_plot_and_shows_the_verdict(
    chromium: str, bad_run: BuiltRun, tmp_path: Path
) -> None:
    seen = probe(chromium, (bad_run.run_dir / "report.html").read_text("utf-8"), tmp_path)
    images = seen["images"]
    assert [i["figure"] for i in images] == [f"timeline-{op}" for op in RATES]
    assert all(i["complete"] and i["width"] == 1000 and i["height"] == 560 for i in images)
    v = seen["verdict"]
    assert v["text"] == "FAIL"
    assert (v["visibility"], v["display"]) == ("visible", "inline-block")
    assert v["width"] > 50 and v["height"] > 20 and 0 <= v["top"] < 400
    assert v["background"] == "rgb({}, {}, {})".format(*BADGE_FAIL)


def test_probe_notices_an_image_the_browser_cannot_decode(
    chromium: str, good_run: BuiltRun, tmp_path: Path
) -> None:
    page = (good_run.run_dir / "report.html").read_text("utf-8")
    broken = re.sub(r'(<figure id="timeline-view">\s*<img class="timeline" '
                    r'src="data:image/png;base64,)[^"]{64}', r"\1" + "A" * 64, page, count=1)
    assert broken != page
    widths = {i["figure"]: i["width"] for i in probe(chromium, broken, tmp_path)["images"]}
    assert widths["timeline-view"] == 0
    assert all(w == 1000 for f, w in widths.items() if f != "timeline-view")


def test_screenshot_shows_the_page(chromium: str, bad_run: BuiltRun, tmp_path: Path) -> None:
    im = screenshot(chromium, bad_run.run_dir / "report.html", tmp_path)
    assert im.size == (1200, 1600)
    assert not is_blank(im)
    badge = [(x, y) for x in range(0, 400, 2) for y in range(0, 300, 2)
             if im.getpixel((x, y)) == BADGE_FAIL]
    assert len(badge) > 200, "no red FAIL badge near the top"
    assert len(colours(im)) > 200  # text, tables and a plot: not a flat page


def test_blank_page_screenshot_is_detected(chromium: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.html"
    empty.write_text("<!DOCTYPE html><html><body></body></html>")
    assert is_blank(screenshot(chromium, empty, tmp_path, size="400,300"))
