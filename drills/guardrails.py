"""Guardrails: stop conditions that abort a drill before it does more harm than it should.

A drill file may list ``guardrails`` (`drills.spec.Guardrail`): a class (best: one no fault
targets) whose success rate stays under ``below`` for ``for`` seconds, or a probe URL (a health
check of something the drill must not break) failing for ``for`` seconds. The engine feeds the
requests it reads to a `Guard` and asks it, on every tick after the baseline, whether one
tripped; if so the run is aborted: every fault reverted on the way out, verdict ``aborted``,
exit 1, the reason in the journal and the reports.

`class_tripped` is pure (requests in, reason out); probes run on a thread of their own so that a
slow probe never delays a fault's injection.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

import httpx

from drills.model import Request
from drills.spec import Guardrail

#: A class's rate is judged only on at least this many answered requests in the window.
MIN_REQUESTS = 5
#: Requests are kept this much longer than the longest window (answers arrive late).
KEEP_SLACK_S = 30.0
PROBE_EVERY_S = 1.0


def class_tripped(rail: Guardrail, requests: Sequence[Request], *, now: float,
                  since: float) -> str | None:
    """Why ``rail`` (an ``op`` guardrail) trips at ``now``, or None: over the requests of its
    class that started in ``[now - for, now)`` - judged only once the window lies after
    ``since`` (the baseline's end) - the success rate is under ``below`` (with at least
    `MIN_REQUESTS` answered), or none was answered at all (the class is blocked)."""
    if rail.op is None or now - rail.for_ < since:
        return None
    window = [r for r in requests if r.op == rail.op and now - rail.for_ <= r.t < now]
    if not window:
        return f"guardrail {rail.describe()}: no {rail.op} request answered for {rail.for_:g} s"
    ok = sum(r.ok for r in window) / len(window)
    if len(window) >= MIN_REQUESTS and ok < rail.below:
        return (f"guardrail {rail.describe()}: {rail.op} succeeded {ok:.0%} of {len(window)} "
                f"requests over the last {rail.for_:g} s")
    return None


class Probe:
    """Polls one URL every `PROBE_EVERY_S` on a daemon thread; remembers when it last answered
    2xx (or when polling began)."""

    def __init__(self, url: str, *, get: Callable[[str], int] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self._get = get or _status
        self._clock = clock
        self.last_ok = clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"probe {url}", daemon=True)

    def start(self) -> Probe:
        self._thread.start()
        return self

    def poll(self) -> None:
        """One probe: a 2xx moves `last_ok` to now."""
        try:
            ok = 200 <= self._get(self.url) < 300
        except httpx.HTTPError:
            ok = False
        if ok:
            self.last_ok = self._clock()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(PROBE_EVERY_S)

    def stop(self) -> None:
        self._stop.set()


def _status(url: str) -> int:
    return httpx.get(url, timeout=1.0).status_code


class Guard:
    """The drill's guardrails, evaluated live (a context manager: probes stop on exit)."""

    def __init__(self, rails: Iterable[Guardrail], *, since: float,
                 probe: Callable[[str], Probe] = lambda url: Probe(url).start()) -> None:
        self.rails = tuple(rails)
        self.since = since
        self.probes = {r.probe: probe(r.probe) for r in self.rails if r.probe is not None}
        self.recent: deque[Request] = deque()
        self._keep_s = max((r.for_ for r in self.rails), default=0.0) + KEEP_SLACK_S

    def observe(self, batch: Iterable[Request], *, now: float) -> None:
        """Take the requests answered since the last call; forget those too old to matter (in
        answer order, so memory stays bounded on a long game day)."""
        if not self.rails:
            return
        self.recent.extend(batch)
        while self.recent and self.recent[0].t < now - self._keep_s:
            self.recent.popleft()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *_exc: object) -> None:
        for p in self.probes.values():
            p.stop()

    def check(self, *, now: float) -> str | None:
        """The first guardrail that trips at ``now``, as a reason; None while all hold."""
        for rail in self.rails:
            if rail.op is not None:
                reason = class_tripped(rail, self.recent, now=now, since=self.since)
            elif rail.probe is not None:
                p = self.probes[rail.probe]
                down = now - max(p.last_ok, self.since)
                reason = (f"guardrail {rail.describe()}: no answer from {rail.probe} for "
                          f"{down:.1f} s") if down >= rail.for_ else None
            else:  # pragma: no cover - the model requires op or probe
                reason = None
            if reason is not None:
                return reason
        return None
