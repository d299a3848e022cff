"""Guardrails: stop conditions in the drill file abort the run (every fault reverted, verdict
``aborted``, exit 1). Unit tests on hand-made requests and a fake probe; one slow end-to-end run
whose guardrail trips at the power cut."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drills.catalog import parse_drill
from drills.errors import SpecError
from drills.guardrails import Guard, Probe, class_tripped
from drills.ledger import Ledger
from drills.model import Request

T0 = 1_700_000_000.0
BASE = "drill: x\ndescription: y\ntimeline: {baseline: 5s}\n"


def rails(text: str):  # type: ignore[no-untyped-def]
    return parse_drill(BASE + "guardrails:\n" + text, source="g.yaml").guardrails


def reqs(op: str, start: float, stop: float, *, ok: bool, per_s: float = 10) -> list[Request]:
    n = int((stop - start) * per_s)
    return [Request(t=start + i / per_s, duration=0.01, op=op, ok=ok, status=200 if ok else 503)
            for i in range(n)]


def test_a_class_under_its_rate_for_the_window_trips_and_a_healthy_one_does_not() -> None:
    (rail,) = rails("  - {op: search, below: 0.5, for: 2s}\n")
    healthy = reqs("search", T0, T0 + 10, ok=True)
    assert class_tripped(rail, healthy, now=T0 + 10, since=T0 + 5) is None
    sick = healthy + reqs("search", T0 + 10, T0 + 12, ok=False)
    reason = class_tripped(rail, sick, now=T0 + 12, since=T0 + 5)
    assert reason is not None and "search succeeded 0% of 20 requests" in reason
    # judged only once its window lies after the baseline
    assert class_tripped(rail, sick, now=T0 + 12, since=T0 + 11) is None
    # a class nobody answers for the whole window is blocked
    assert "no search request answered" in str(class_tripped(rail, [], now=T0 + 12, since=T0))


def test_a_probe_that_stops_answering_trips_after_its_window() -> None:
    (rail,) = rails("  - {probe: 'http://127.0.0.1:9/health', for: 3s}\n")
    answers = iter([200, 503, 503])
    probe = Probe("http://127.0.0.1:9/health", get=lambda _u: next(answers), clock=lambda: T0)
    probe.poll()
    with Guard([rail], since=T0, probe=lambda _url: probe) as guard:
        assert guard.check(now=T0 + 2) is None
        reason = guard.check(now=T0 + 3.5)
    assert reason is not None and "no answer from http://127.0.0.1:9/health for 3.5 s" in reason


def test_guard_keeps_only_recent_requests() -> None:
    (rail,) = rails("  - {op: feed, for: 2s}\n")
    guard = Guard([rail], since=T0)
    guard.observe(reqs("feed", T0, T0 + 100, ok=True), now=T0 + 100)
    assert len(guard.recent) <= 10 * (2 + 30) + 1
    assert guard.check(now=T0 + 100) is None


@pytest.mark.parametrize(("text", "field", "says"), [
    ("  - {for: 2s}\n", "guardrails[0]", "exactly one of op"),
    ("  - {op: feed, probe: 'http://x'}\n", "guardrails[0]", "exactly one of op"),
    ("  - {op: feeds}\n", "guardrails[0].op", "did you mean 'feed'"),
    ("  - {probe: 'ftp://x'}\n", "guardrails[0].probe", "http:// or https://"),
    ("  - {op: feed, below: 2}\n", "guardrails[0].below", "expected 0 < float <= 1, got 2"),
])
def test_bad_guardrails_are_refused_with_the_field(text: str, field: str, says: str) -> None:
    with pytest.raises(SpecError) as info:
        rails(text)
    assert info.value.field == field and says in str(info.value)


@pytest.mark.slow
def test_a_guardrail_that_trips_aborts_the_run_with_every_fault_reverted(tmp_path: Path) -> None:
    """dc-east-power-loss with a guardrail "uploads must not fail for 1 s": the power cut
    trips it; the run stops, dc-east is powered on again, verdict aborted, exit 1."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "drills.cli", "run", "dc-east-power-loss", "--out", str(out),
         "--set", "guardrails=[{op: upload, below: 0.9, for: 1s}]"],
        capture_output=True, text=True, timeout=240)
    j = json.loads((out / "journal.json").read_text())
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert j["verdict"] == "aborted" and "guardrail upload below 90% for 1s" in j["error"]
    assert Ledger(out).pending() == []  # the power-down was reverted on the way out
    assert "aborted" in (out / "report.md").read_text().lower()
