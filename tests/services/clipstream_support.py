"""Helpers for ClipStream integration tests: a write loop that records every acknowledgement."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledged write as the client saw it."""

    id: str
    t: float
    store: str
    epoch: int


@dataclass(frozen=True, slots=True)
class WriteTiming:
    """One write request as the client saw it: start (epoch seconds), duration, outcome."""

    t: float
    took: float
    op: str
    status: int  # 0 when the request failed without an answer


@dataclass
class WriteLoop:
    """Upload (and like) in a background thread until stopped; keep what was acknowledged.

    Each upload uses a fresh client id; a like follows every acknowledged upload with a fresh op
    id. ``attempted`` holds every id tried, ``acked`` the acknowledged uploads, ``likes_acked``
    and ``likes_tried`` per video the like op ids acknowledged / tried, ``writes`` the timing
    of every request.
    """

    api_url: str
    prefix: str = "w"
    pause_s: float = 0.005
    timeout_s: float = 8.0
    attempted: list[str] = field(default_factory=list)
    acked: list[Ack] = field(default_factory=list)
    likes_acked: dict[str, set[str]] = field(default_factory=dict)
    likes_tried: dict[str, set[str]] = field(default_factory=dict)
    writes: list[WriteTiming] = field(default_factory=list)
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> WriteLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def acked_since(self, t: float) -> list[Ack]:
        return [a for a in list(self.acked) if a.t >= t]

    def _run(self) -> None:
        n = 0
        with httpx.Client(timeout=self.timeout_s) as client:
            while not self._stop.is_set():
                n += 1
                vid = f"{self.prefix}{n}"
                self.attempted.append(vid)
                try:
                    r = self._timed(client, "upload", f"{self.api_url}/videos",
                                    params={"title": f"clip {n}", "client_id": vid},
                                    content=vid.encode() * 20)
                except httpx.HTTPError:
                    self.failures += 1
                    continue
                if r.status_code not in (200, 201):
                    self.failures += 1
                    continue
                self.acked.append(Ack(vid, time.time(), r.headers["X-ClipStream-Store"],
                                      int(r.headers["X-ClipStream-Epoch"])))
                self._like(client, vid, f"like-{vid}")
                time.sleep(self.pause_s)

    def _like(self, client: httpx.Client, vid: str, op: str) -> None:
        self.likes_tried.setdefault(vid, set()).add(op)
        try:
            r = self._timed(client, "like", f"{self.api_url}/videos/{vid}/likes",
                            params={"op_id": op})
        except httpx.HTTPError:
            return
        if r.status_code == 200:
            self.likes_acked.setdefault(vid, set()).add(op)

    def _timed(self, client: httpx.Client, op: str, url: str, **kw: Any) -> httpx.Response:
        t, t0 = time.time(), time.monotonic()
        status = 0
        try:
            r = client.post(url, **kw)
            status = r.status_code
            return r
        finally:
            self.writes.append(WriteTiming(t, time.monotonic() - t0, op, status))


def wait_for(predicate: Callable[[], T], timeout: float, poll: float = 0.05,
             what: str = "condition") -> T:
    """Poll ``predicate`` until it returns a truthy value; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(poll)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


def dump(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/dump", timeout=5).json()


def state(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/state", timeout=5).json()
