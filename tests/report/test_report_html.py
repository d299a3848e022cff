"""``report.html`` rendered from hand-made run directories: content, evidence, escaping."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from drills.checks.findings import bounded
from drills.journal import Journal
from drills.model import CheckResult, LostWrite
from drills.report.html import MAX_LOST_ROWS, Clock, LostRow, build_page, render_html
from drills.report.load import journal_from_dict

from ._dom import Element, external_refs, parse
from ._runs import RATES, T0, BuiltRun, build_journal


@pytest.fixture(scope="module")
def good(good_run: BuiltRun) -> Element:
    return parse((good_run.run_dir / "report.html").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def bad(bad_run: BuiltRun) -> Element:
    return parse((bad_run.run_dir / "report.html").read_text(encoding="utf-8"))


def _section(root: Element, id_: str) -> Element:
    el = root.by_id(id_)
    assert el is not None, f"no #{id_}"
    return el


def test_verdict_at_the_top(good: Element, bad: Element) -> None:
    for root, text in ((good, "PASS"), (bad, "FAIL")):
        verdict = _section(root, "verdict")
        assert verdict.text == text
        assert verdict.attrs["class"] == f"verdict {text.lower()}"
        first_section = next(root.iter("section"))
        assert first_section.attrs["id"] == "objectives"  # the verdict comes before it
    title = next(good.iter("title")).text
    assert title == "dc-east-power-loss: PASS"


def test_objectives_table(good: Element, bad: Element) -> None:
    rows = _section(bad, "objectives").rows()
    assert rows[0] == ["objective", "target", "measured", "result"]
    by_name = {r[0]: r for r in rows[1:]}
    assert len(by_name) == 11
    assert by_name["rto.upload"] == ["rto.upload", "≤ 10s", "8.25s", "pass"]
    assert by_name["lost_acked_writes"] == [
        "lost_acked_writes", "≤ 0", "5 lost (2 key writes, 3 increments) of 13 at risk", "FAIL"]
    assert by_name["zero_reads"][3] == "FAIL"
    assert by_name["counters"][3] == "FAIL"
    assert all(r[3] == "pass" for r in _section(good, "objectives").rows()[1:])


def test_one_decodable_plot_per_class(good: Element) -> None:
    figures = [f for f in _section(good, "timelines").iter("figure")]
    assert [f.attrs["id"] for f in figures] == [f"timeline-{op}" for op in RATES]
    for fig in figures:
        img = next(fig.iter("img"))
        head, _, data = img.attrs["src"].partition(",")
        assert head == "data:image/png;base64"
        im = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        im.load()
        assert im.format == "PNG" and im.size[0] > 500 and im.size[1] > 300
        assert "requests" in fig.text and "RTO" in fig.text


def test_page_is_self_contained(good: Element, bad: Element) -> None:
    assert external_refs(good) == []
    assert external_refs(bad) == []


def test_self_containment_check_catches_external_resources() -> None:
    page = parse('<p><img src="http://127.0.0.1/x.png"><a href="#ok">x</a>'
                 '<link rel="stylesheet" href="style.css"><script>1</script></p>')
    assert external_refs(page) == ["http://127.0.0.1/x.png", "style.css", "<link>", "<script>"]


def test_faults_and_phases_relative_to_load_start(good: Element) -> None:
    rows = _section(good, "faults").rows()
    assert rows[1] == ["f0", "power_down", "dc-east", "t+10s", "t+10.020s", "t+30.050s",
                       "20.03 s"]
    phases = {r[0]: r for r in rows if r and r[0] in ("baseline", "prepare")}
    assert phases["baseline"] == ["baseline", "t+0.000s", "t+10.000s"]
    assert phases["prepare"][1] == "t-4.000s"


def test_lost_writes_with_ids_and_ack_times(bad: Element, good: Element) -> None:
    rows = _section(bad, "lost-writes-table").rows()
    assert rows[1:] == [
        ["lost-a", "t+9.700s (0.320 s before f0)", "store-east (epoch 1)", "t+9.500s"],
        ["lost-b", "t+9.850s (0.170 s before f0)", "store-east (epoch 1)", "t+9.600s"],
    ]
    assert good.by_id("lost-writes-table") is None
    assert "10 acked writes all present" in _section(good, "evidence").text


def test_counter_zero_read_and_split_brain_evidence(bad: Element) -> None:
    evidence = _section(bad, "evidence").text
    assert "counter views of v0: final 7 outside [10, 10] (10 acked, 0 indeterminate)" \
        in evidence
    assert ("read read-1 of v0 invoked at t+25.000s saw counter views at 0 after 10 acked "
            "increments" in evidence)
    assert "epoch 2 acknowledged by 2 stores: store-east (first ack like-x at t+20.100s)" \
        in evidence
    assert "divergent key:v9: store-west=no, store-east=yes" in evidence
    results = {h.attrs["id"]: h for h in _section(bad, "evidence").iter("h3")}
    assert set(results) >= {"lost-writes", "counters", "zero-reads", "split-brain", "rto", "rpo"}


def test_drill_stack_and_environment(good: Element, good_run: BuiltRun) -> None:
    stack = dict((r[0], r[1]) for r in _section(good, "stack-config").rows()[1:])
    assert stack["provider (as run)"] == "local"
    assert (stack["replication"], stack["fsync"], stack["detection"]) == ("sync", "always",
                                                                          "1.5s")
    assert stack["write_retry"] == "target default"
    drill = _section(good, "drill-file").text
    assert "power_down: dc-east" in drill and "lost_acked_writes: 0" in drill
    env = dict((r[0], r[1]) for r in _section(good, "environment").rows())
    assert env["python"] == good_run.journal.environment["python"]
    assert env["drills"] == good_run.journal.environment["drills"]


def test_overrides_show_in_the_stack_configuration() -> None:
    j, _, _ = build_journal(sets=["stack.config.fsync=never", "stack.config.replication=async"])
    stack = dict((r[0], r[1]) for r in _section(parse(render_html(j, None)),
                                                  "stack-config").rows()[1:])
    assert (stack["fsync"], stack["replication"]) == ("never", "async")


def test_text_from_the_records_is_escaped() -> None:
    j, _, _ = build_journal()
    j.description = "<script>alert('x')</script> & <b>bold</b>"
    j.checks = [*j.checks, CheckResult("zero_reads", False, "<img src=x onerror=alert(1)>",
                                       findings=("<i>evil</i>",))]
    html = render_html(j, None)
    assert "<script>" not in html and "<i>evil</i>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert external_refs(parse(html)) == []


def test_run_that_ended_in_error() -> None:
    j, _, _ = build_journal()
    j.objectives, j.checks, j.metrics, j.faults = [], [], {}, []
    j.verdict, j.error = "error", "StackError: store-east would not start"
    root = parse(render_html(j, None))
    assert _section(root, "verdict").text == "ERROR"
    assert _section(root, "run-error").text == "StackError: store-east would not start"
    assert "No request record" in _section(root, "no-plots").text
    assert list(root.iter("img")) == []
    assert "not checked" in _section(root, "evidence").text
    assert "No fault was injected" in _section(root, "faults").text


def test_expected_failure_is_announced() -> None:
    j, _, _ = build_journal()
    j.expect, j.verdict, j.as_expected = "fail", "fail", True
    page = build_page(j, None)
    assert page.expect_note == "this drill is expected to fail: as expected"
    j.as_expected = False
    assert build_page(j, None).expect_note.endswith("NOT as expected")


def _with_acked_writes(check: CheckResult) -> Journal:
    j, _, _ = build_journal()
    j.checks = [c if c.name != "acked_writes" else check for c in j.checks]
    return j


def test_lost_writes_come_from_the_typed_evidence_never_from_the_lines() -> None:
    """The table is the check's `LostWrite` records; any other finding stays a finding, and a
    reworded line changes nothing."""
    lost = LostWrite(key="k7", id="op-7", acked_at=T0 + 9.5, invoked_at=T0 + 9.4,
                     store="kv-east", epoch=4)
    page = build_page(_with_acked_writes(CheckResult(
        "acked_writes", False, "1 lost",
        findings=(lost.describe(), "unexpected key z: in the final read"), evidence=(lost,))),
        None)
    assert page.lost_writes == (LostRow(key="k7", acked="t+9.500s (0.520 s before f0)",
                                        by="kv-east (epoch 4)", invoked="t+9.400s"),)
    assert page.lost.findings == ("unexpected key z: in the final read",)
    # no evidence: no table, whatever the lines say
    page = build_page(_with_acked_writes(CheckResult(
        "acked_writes", False, "1 lost", findings=("lost acked write k7: acked at 1.0",))), None)
    assert page.lost_writes == () and page.lost.findings == ("lost acked write k7: acked at 1.0",)


def test_many_lost_writes_fill_the_table_not_the_findings() -> None:
    """The findings are bounded (50 and "... N more"); the table shows up to 200 from the
    evidence, and the "more" line counts only the other findings left off."""
    lost = tuple(LostWrite(key=f"k{i:03}", id=f"k{i:03}", acked_at=T0 + i / 100)
                 for i in range(260))
    check = CheckResult("acked_writes", False, "260 lost",
                        metrics={"lost_acked_writes": 260, "unexpected_writes": 2},
                        findings=bounded([*(w.describe() for w in lost), "unexpected key a",
                                          "unexpected key b"]),
                        evidence=lost)
    page = build_page(_with_acked_writes(check), None)
    assert len(page.lost_writes) == MAX_LOST_ROWS and page.lost_more == 60
    assert page.lost_writes[0].key == "k000" and page.lost_writes[-1].key == "k199"
    assert page.lost.findings == ("... 2 more",)
    html = render_html(_with_acked_writes(check), None)
    assert "60 more lost writes" in html


def test_clock_rewrites_only_times_near_load_start() -> None:
    clock = Clock(T0)
    assert clock.rewrite("acked at 1700000009.700 (invoked 1700000009.500)") == \
        "acked at t+9.700s (invoked t+9.500s)"
    assert clock.rewrite("before at 1699999990.000") == "before at t-10.000s"
    far = "id 1600000000.000 and 17000000090.700 and 12.345 and v1700000009.700"
    assert clock.rewrite(far) == far
    assert Clock(None).rewrite("acked at 1700000009.700") == "acked at 1700000009.700"
    assert clock.at(None) == "—"


def test_reloaded_journal_renders_the_same_page(bad_run: BuiltRun) -> None:
    d = json.loads((bad_run.run_dir / "journal.json").read_text())
    again = render_html(journal_from_dict(d), list(bad_run.requests))
    assert again == (bad_run.run_dir / "report.html").read_text(encoding="utf-8")
