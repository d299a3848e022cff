"""ClipStream load: a mix of feed, view, like, upload, search and stats requests, recorded.

Runs inside Locust only (``locust -f``, started by `drills.load.runner`). Configured by the
environment (`drills.load.records.LoadSettings`; unset variables take the defaults in
brackets): ``DRILLS_RECORD_DIR`` (required), ``DRILLS_RATE`` total req/s [150],
``DRILLS_USERS`` [30], ``DRILLS_TIMEOUT_S`` connect and read timeout [1.5],
``DRILLS_PARENT_PID`` the harness to outlive not [none]; and, to put data at risk:
``DRILLS_BURSTS`` comma-separated offsets (s) from ``t0`` [none], ``DRILLS_BURST_MULTIPLIER``
[1], ``DRILLS_BURST_WIDTH_S`` [2], ``DRILLS_RETRIES`` [0], ``DRILLS_HOT_VIDEOS`` [0],
``DRILLS_HOT_SHARE`` [0].

Each user paces itself at constant throughput, ``rate / users`` task runs per second
(`drills.load.pacing.wait_s`), and does one operation class only; users are split between the
classes (``fixed_count``, at least one each): feed 50 %, view 20 %, like 10 %, upload 8 %,
search 6 %, stats 6 %. One class per user keeps the classes independent, as real clients are:
a user stuck on a timed-out upload does not stop the feed traffic of others, so each class's
RTO and throughput reflect that class's availability alone (a single mixed user would let
write timeouts starve the reads and read as a read outage).

- **Bursts**: write users (upload, view, like) pace ``DRILLS_BURST_MULTIPLIER`` times faster
  while the time is within ``DRILLS_BURST_WIDTH_S / 2`` of ``t0 + b`` for an offset ``b``;
  ``t0`` is the time passed to ``mark_started`` (the first user's start), which the harness
  reads as the load's start. Reads keep their pace.
- **Retries**: a write whose answer is indeterminate (``info``: timeout, reset, 5xx) is sent
  again, identical (same video id, ``client_id`` or ``op_id``: an idempotency key), after
  0.1 s x attempt (at most 0.5 s), up to ``DRILLS_RETRIES`` more times, until ``ok`` or
  ``fail``, and not once Locust is stopping.
- **Known and hot videos**: views, likes and stats target videos known to this load process
  (acknowledged uploads and ids seen in feeds; with none known yet they wait). The first
  ``DRILLS_HOT_VIDEOS`` learned are never forgotten and are picked with probability
  ``DRILLS_HOT_SHARE`` (`drills.load.videos.KnownVideos`).

Recorded (classified by `drills.load.outcome`): every request, each retry included, becomes a
`Request` line (via the ``request`` event). Every write attempt an ``invoke`` then
``ok|fail|info`` `Op` with ``attempt`` 1, 2, ... (the same ``id`` for all attempts). Every read
(``f="read"``) an ``invoke`` then ``ok`` or ``fail``, with ``degraded`` True iff the answer
carried ``X-ClipStream-Degraded``: a stats read with ``video`` and views/likes, a feed or
search read with ``video`` None and ``items`` = (id, views, likes) per item shown.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from locust import HttpUser, events, task
from locust.env import Environment
from locust.exception import StopUser

from drills.load.mix import users_per_class
from drills.load.outcome import Outcome, outcome
from drills.load.pacing import Bursts, backoff_s, wait_s
from drills.load.records import LoadSettings, Recorder
from drills.load.videos import KnownVideos
from drills.model import Op, OpF, Request

WORDS = (
    "sunset", "harbor", "kitten", "mountain", "river", "guitar", "skate", "recipe", "garden",
    "robot", "ocean", "desert", "forest", "piano", "soccer", "dance", "bridge", "winter",
    "summer", "comet", "island", "puzzle", "rocket", "violin", "canyon", "meadow", "glacier",
    "festival", "lantern", "marathon",
)
KNOWN_MAX = 500
MIN_UPLOAD, MAX_UPLOAD = 1024, 16 * 1024

Validator = Callable[[Any], str | None]


@dataclass(frozen=True, slots=True)
class LoadContext:
    """Built once per Locust process at ``init``: the settings, the recorder, and the flag
    set when Locust starts stopping users (from then on no user sends a new request)."""

    settings: LoadSettings
    recorder: Recorder
    stopping: threading.Event
    videos: KnownVideos  # video ids known to this process (bounded) and its hot set
    rng: random.Random


@dataclass(frozen=True, slots=True)
class Reply:
    """One answered (or failed) exchange: its outcome, parsed JSON body and response headers."""

    out: Outcome
    body: Any
    headers: dict[str, str]

    def epoch(self) -> int | None:
        value = self.headers.get("x-clipstream-epoch")
        return int(value) if value is not None and value.lstrip("-").isdigit() else None

    def store(self) -> str | None:
        return self.headers.get("x-clipstream-store")

    def degraded(self) -> bool:
        return "x-clipstream-degraded" in self.headers


@events.init.add_listener
def _on_init(environment: Environment, **_kw: Any) -> None:
    """Open the recorder, route every request event to it, close it after the users stopped.

    Locust stops a user that is between tasks by killing its greenlet, which can land just
    after the user woke up and sent a request; the ``stopping`` flag (set by ``test_stopping``,
    before any user is stopped) makes such a user stop instead of sending.
    """
    settings = LoadSettings.from_env(os.environ)
    recorder = Recorder(settings.record_dir).__enter__()
    ctx = LoadContext(settings=settings, recorder=recorder, stopping=threading.Event(),
                      videos=KnownVideos(limit=KNOWN_MAX, hot=settings.hot_videos),
                      rng=random.Random())
    environment.drills_load = ctx  # type: ignore[attr-defined]
    counts = users_per_class(settings.users)
    for cls in USER_CLASSES:
        cls.fixed_count = counts[cls.op]
    environment.events.request.add_listener(_request_listener(recorder))
    environment.events.test_stopping.add_listener(lambda **_: ctx.stopping.set())
    environment.events.quit.add_listener(lambda **_: recorder.close())
    if settings.parent_pid is not None:
        gevent.spawn(_watch_parent, environment, settings.parent_pid)


def _request_listener(recorder: Recorder) -> Callable[..., None]:
    def on_request(name: str, response_time: float, response: Any, exception: Any,
                   start_time: float, **_kw: Any) -> None:
        status = int(getattr(response, "status_code", 0) or 0)
        failure = str(exception)[:200] if exception is not None and 200 <= status < 300 else None
        out = outcome(status, getattr(response, "error", None), failure)
        recorder.request(Request(t=start_time, duration=response_time / 1000.0, op=name,
                                 ok=out.ok, status=out.status, error=out.error))
    return on_request


def _watch_parent(environment: Environment, parent_pid: int) -> None:
    """Quit the run when the harness that started us is gone (we were reparented)."""
    while os.getppid() == parent_pid:
        gevent.sleep(0.5)
    logging.warning("harness pid %s is gone: stopping the load", parent_pid)
    if environment.runner is not None:
        environment.runner.quit()


def _has_items(body: Any) -> str | None:
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) and "id" in i for i in items):
        return "body without items"
    if not all(isinstance(i.get(k), int) for i in items for k in ("views", "likes")):
        return "items without views/likes"
    return None


def _items(body: Any) -> tuple[tuple[str, int, int], ...]:
    """(id, views, likes) of every item of a feed or search answer that passed `_has_items`."""
    return tuple((str(i["id"]), i["views"], i["likes"]) for i in body["items"])


def _has_counters(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body not an object"
    if not all(isinstance(body.get(k), int) for k in ("views", "likes")):
        return "body without views/likes"
    return None


class ClipStreamUser(HttpUser):
    """One client of ClipStream; each concrete subclass does one operation class."""

    abstract = True
    op = ""  # the operation class (a key of drills.load.mix.MIX); user counts fixed at init
    writes = False  # True for the write classes: they speed up in bursts and retry

    def on_start(self) -> None:
        self.ctx: LoadContext = self.environment.drills_load
        self.process = self.ctx.recorder.new_process()
        self.videos = self.ctx.videos
        self.bursts = self.ctx.settings.burst_plan if self.writes else Bursts()
        now = time.time()
        self.ctx.recorder.mark_started(now)
        self.t0 = self.ctx.recorder.started_at or now
        self.last_start = now  # the first task runs right after on_start

    def wait_time(self) -> float:
        now = time.time()
        wait = wait_s(last_start=self.last_start, now=now, rate=self.ctx.settings.per_user_rate,
                      t0=self.t0, bursts=self.bursts)
        self.last_start = now + wait
        return wait

    # -- tasks ---------------------------------------------------------------------------------

    def feed(self) -> None:
        reply = self.read(None, lambda: self.call("GET", "/feed", "feed", params={"limit": 20},
                                                  check=_has_items))
        if reply.out.ok:
            for vid, _views, _likes in _items(reply.body):
                self.videos.remember(vid)

    def view(self) -> None:
        self.increment("view", "views")

    def like(self) -> None:
        self.increment("like", "likes")

    def upload(self) -> None:
        vid = uuid.uuid4().hex
        title = " ".join(self.ctx.rng.sample(WORDS, 3))
        body = self.ctx.rng.randbytes(self.ctx.rng.randint(MIN_UPLOAD, MAX_UPLOAD))

        def same_id(b: Any) -> str | None:
            return None if isinstance(b, dict) and b.get("id") == vid else "wrong id in answer"

        reply = self.write("upload", vid, vid, lambda: self.call(
            "POST", "/videos", "upload", params={"title": title, "client_id": vid},
            data=body, check=same_id))
        if reply.out.ok:
            self.videos.remember(vid)

    def search(self) -> None:
        query = self.ctx.rng.choice(WORDS)
        self.read(None, lambda: self.call("GET", "/search", "search", params={"q": query},
                                          check=_has_items))

    def stats(self) -> None:
        vid = self.pick()
        if vid is None:
            return
        path = self.ctx.rng.choice((f"/videos/{vid}/stats", f"/videos/{vid}"))
        self.read(vid, lambda: self.call("GET", path, "stats", check=_has_counters))

    # -- operations ----------------------------------------------------------------------------

    def increment(self, f: OpF, counter: str) -> None:
        vid = self.pick()
        if vid is None:
            return
        op_id = uuid.uuid4().hex
        self.write(f, op_id, vid, lambda: self.call(
            "POST", f"/videos/{vid}/{counter}", f, params={"op_id": op_id}, check=_has_counters))

    def halt_if_stopping(self) -> None:
        """Stop this user instead of starting a request once Locust is stopping users."""
        if self.ctx.stopping.is_set():
            raise StopUser()

    def write(self, f: OpF, op_id: str, vid: str, send: Callable[[], Reply]) -> Reply:
        """Send a write, and again (same ``send``, so the same ids) after an indeterminate
        answer, up to ``retries`` more times; return the last attempt's reply."""
        attempt = 1
        while True:
            reply = self.write_once(f, op_id, vid, send, attempt)
            if (reply.out.write_type() != "info" or attempt > self.ctx.settings.retries
                    or self.ctx.stopping.is_set()):
                return reply
            gevent.sleep(backoff_s(attempt))
            attempt += 1

    def write_once(self, f: OpF, op_id: str, vid: str, send: Callable[[], Reply],
                   attempt: int) -> Reply:
        """Record ``invoke``, send, record the completion (``info`` if interrupted)."""
        self.halt_if_stopping()
        rec = self.ctx.recorder
        rec.op(Op(process=self.process, type="invoke", f=f, id=op_id, time=time.time(),
                  video=vid, attempt=attempt))
        try:
            reply = send()
        except BaseException as exc:  # GreenletExit: the user was stopped mid-request
            rec.op(Op(process=self.process, type="info", f=f, id=op_id, time=time.time(),
                      video=vid, error=f"interrupted: {type(exc).__name__}", attempt=attempt))
            raise
        kind = reply.out.write_type()
        rec.op(Op(process=self.process, type=kind, f=f, id=op_id, time=time.time(), video=vid,
                  epoch=reply.epoch() if kind == "ok" else None,
                  store=reply.store() if kind == "ok" else None, error=reply.out.error,
                  attempt=attempt))
        return reply

    def read(self, vid: str | None, send: Callable[[], Reply]) -> Reply:
        """Record a read: ``invoke``, then ``ok`` with what it saw (views/likes of ``vid``, or
        the items of a feed or search when ``vid`` is None) and ``degraded``, or ``fail``."""
        self.halt_if_stopping()
        rec = self.ctx.recorder
        op_id = uuid.uuid4().hex
        rec.op(Op(process=self.process, type="invoke", f="read", id=op_id, time=time.time(),
                  video=vid))
        try:
            reply = send()
        except BaseException as exc:
            rec.op(Op(process=self.process, type="fail", f="read", id=op_id, time=time.time(),
                      video=vid, error=f"interrupted: {type(exc).__name__}"))
            raise
        ok = reply.out.read_type() == "ok"
        counters = ok and vid is not None
        rec.op(Op(process=self.process, type="ok" if ok else "fail", f="read", id=op_id,
                  time=time.time(), video=vid,
                  views=reply.body["views"] if counters else None,
                  likes=reply.body["likes"] if counters else None,
                  items=_items(reply.body) if ok and vid is None else None,
                  epoch=reply.epoch() if ok else None, store=reply.store() if ok else None,
                  error=reply.out.error, degraded=reply.degraded()))
        return reply

    def call(self, method: str, path: str, name: str, *, check: Validator,
             params: dict[str, Any] | None = None, data: bytes | None = None) -> Reply:
        """One request under class ``name``; a 2xx body failing ``check`` counts as failed."""
        timeout = self.ctx.settings.timeout_s
        headers = {"Content-Type": "application/octet-stream"} if data is not None else None
        with self.client.request(method, path, name=name, params=params, data=data,
                                 headers=headers, timeout=(timeout, timeout),
                                 catch_response=True) as resp:
            status = int(resp.status_code or 0)
            body: Any = None
            failure: str | None = None
            if resp.error is None and 200 <= status < 300:
                try:
                    body = resp.json()
                except ValueError:
                    failure = "body not JSON"
                else:
                    failure = check(body)
                if failure:
                    resp.failure(failure)
            seen = {k.lower(): v for k, v in resp.headers.items()}
            return Reply(out=outcome(status, resp.error, failure), body=body, headers=seen)

    def pick(self) -> str | None:
        """A known video to view, like or read (the hot set first, by ``hot_share``)."""
        return self.videos.pick(self.ctx.rng, self.ctx.settings.hot_share)


class FeedUser(ClipStreamUser):
    op = "feed"

    @task
    def act(self) -> None:
        self.feed()


class ViewUser(ClipStreamUser):
    writes = True
    op = "view"

    @task
    def act(self) -> None:
        self.view()


class LikeUser(ClipStreamUser):
    writes = True
    op = "like"

    @task
    def act(self) -> None:
        self.like()


class UploadUser(ClipStreamUser):
    writes = True
    op = "upload"

    @task
    def act(self) -> None:
        self.upload()


class SearchUser(ClipStreamUser):
    op = "search"

    @task
    def act(self) -> None:
        self.search()


class StatsUser(ClipStreamUser):
    op = "stats"

    @task
    def act(self) -> None:
        self.stats()


USER_CLASSES = (FeedUser, ViewUser, LikeUser, UploadUser, SearchUser, StatsUser)
