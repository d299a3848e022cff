"""ClipStream load: a mix of feed, view, like, upload, search and stats requests, recorded.

Runs inside Locust only, beside the recording shim (``locust -f <shim>,<this>``, started by
`drills.load.runner`): the shim records every request (each is named after its class, so no
``DRILLS_CLASSES`` is needed) and the start marker; this file records ClipStream's history
through the public `drills.record` API, as any user's locustfile would. Configured by the
environment (`drills.load.records.LoadSettings`; unset variables take the defaults in
brackets): ``DRILLS_RECORD_DIR`` (required), ``DRILLS_RATE`` total req/s [150],
``DRILLS_USERS`` [30], ``DRILLS_TIMEOUT_S`` connect and read timeout [1.5]; and, to put data
at risk: ``DRILLS_BURSTS`` comma-separated offsets (s) from ``t0`` [none],
``DRILLS_BURST_MULTIPLIER`` [1], ``DRILLS_BURST_WIDTH_S`` [2], ``DRILLS_RETRIES`` [0],
``DRILLS_HOT_KEYS`` [0], ``DRILLS_HOT_SHARE`` [0].

Each user paces itself at constant throughput, ``rate / users`` task runs per second
(`drills.load.pacing.wait_s`), and does one operation class only; users are split between the
classes (``fixed_count``, at least one each; `mix.MIX`): feed 50 %, view 20 %, like 10 %,
upload 8 %, search 6 %, stats 6 %. One class per user keeps the classes independent, as real
clients are: a user stuck on a timed-out upload does not stop the feed traffic of others, so
each class's RTO and throughput reflect that class's availability alone.

The client is Locust's ``FastHttpUser`` (geventhttpclient, one keep-alive connection per user):
about a third of ``HttpUser``'s CPU per request, which is what lets one Locust process drive
~1,000 req/s of this mix. ``DRILLS_TIMEOUT_S`` is both its ``connection_timeout`` and its
``network_timeout`` (per socket operation, as requests' read timeout is); it never retries on
its own (``max_retries`` 0: our retries are explicit, below). Answers are classified by
`drills.record.outcome_of`, as the shim classifies the request records. In Locust's
distributed mode the master runs this file's ``init`` only to fix the user counts per class
(it dispatches the users to the workers); each worker records its own history.

- **Bursts**: write users (upload, view, like) pace ``DRILLS_BURST_MULTIPLIER`` times faster
  while the time is within ``DRILLS_BURST_WIDTH_S / 2`` of ``t0 + b`` for an offset ``b``;
  ``t0`` is `drills.record.started_at` (the shim's start marker), which the harness reads as
  the load's start. Reads keep their pace.
- **Retries**: a write whose answer is indeterminate (``info``: timeout, reset, 5xx) is sent
  again, identical (same video id, ``client_id`` or ``op_id``: an idempotency key), after
  0.1 s x attempt (at most 0.5 s), up to ``DRILLS_RETRIES`` more times, until ``ok`` or
  ``fail``, and not once Locust is stopping.
- **Known and hot videos**: views, likes and stats target videos known to this load process
  (acknowledged uploads and ids seen in feeds; with none known yet they wait). The first
  ``DRILLS_HOT_KEYS`` learned are never forgotten and are picked with probability
  ``DRILLS_HOT_SHARE`` (`drills.load.keys.KnownKeys`).

History (classified by `drills.load.outcome`), in the generic vocabulary: an upload is a
``write`` of key = the video id; a view or like an ``incr`` of counter ``views``/``likes`` of
the video; every write attempt an ``invoke`` then ``ok|fail|info`` with ``attempt`` 1, 2, ...
(the same id for all attempts), ``store``/``epoch`` from the ``X-ClipStream-*`` headers. A
stats read is a ``read`` of the video with ``counts`` views/likes; a feed or search read a
``read`` with ``items`` = (id, {views, likes}) per item shown; ``degraded`` True iff the
answer carried ``X-ClipStream-Degraded``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import gevent
from locust import FastHttpUser, events, task
from locust.contrib.fasthttp import FAILURE_EXCEPTIONS
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner

from drills import record
from drills.load.keys import KnownKeys
from drills.load.outcome import Outcome
from drills.load.pacing import Bursts, backoff_s, wait_s
from drills.load.records import LoadSettings

WORDS = (
    "sunset", "harbor", "kitten", "mountain", "river", "guitar", "skate", "recipe", "garden",
    "robot", "ocean", "desert", "forest", "piano", "soccer", "dance", "bridge", "winter",
    "summer", "comet", "island", "puzzle", "rocket", "violin", "canyon", "meadow", "glacier",
    "festival", "lantern", "marathon",
)
KNOWN_MAX = 500
MIN_UPLOAD, MAX_UPLOAD = 1024, 16 * 1024
COUNTERS = ("views", "likes")

Validator = Callable[[Any], str | None]


def _sibling(name: str) -> ModuleType:
    """This target's pure module ``name`` (e.g. ``mix``), loaded from its file next to this
    one: importing the package ``drills.targets.clipstream`` would pull the harness side of
    the target (stack, spec) into the Locust process."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"drills_clipstream_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mix = _sibling("mix")


@dataclass(frozen=True, slots=True)
class LoadContext:
    """Built once per Locust process at ``init``: the settings, the history, and the flag
    set when Locust starts stopping users (from then on no user sends a new request)."""

    settings: LoadSettings
    history: record.History
    stopping: threading.Event
    videos: KnownKeys  # video ids known to this process (bounded) and its hot set
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
    """Build the context and fix the user counts per class.

    Locust stops a user that is between tasks by killing its greenlet, which can land just
    after the user woke up and sent a request; the ``stopping`` flag (set by ``test_stopping``,
    before any user is stopped) makes such a user stop instead of sending.
    """
    settings = LoadSettings.from_env(os.environ)
    counts = mix.users_per_class(settings.users)
    for cls in USER_CLASSES:
        cls.fixed_count = counts[cls.op]
    ClipStreamUser.connection_timeout = ClipStreamUser.network_timeout = settings.timeout_s
    if isinstance(environment.runner, MasterRunner):
        return  # the master dispatches users to the workers; it runs and records none
    ctx = LoadContext(settings=settings, history=record.history(), stopping=threading.Event(),
                      videos=KnownKeys(limit=KNOWN_MAX, hot=settings.hot_keys),
                      rng=random.Random())
    environment.drills_load = ctx  # type: ignore[attr-defined]
    environment.events.test_stopping.add_listener(lambda **_: ctx.stopping.set())


def _has_items(body: Any) -> str | None:
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) and "id" in i for i in items):
        return "body without items"
    if not all(isinstance(i.get(k), int) for i in items for k in COUNTERS):
        return "items without views/likes"
    return None


def _items(body: Any) -> tuple[tuple[str, dict[str, int]], ...]:
    """(id, {views, likes}) of every item of a feed or search answer that passed `_has_items`."""
    return tuple((str(i["id"]), {k: i[k] for k in COUNTERS}) for i in body["items"])


def _has_counters(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body not an object"
    if not all(isinstance(body.get(k), int) for k in COUNTERS):
        return "body without views/likes"
    return None


class ClipStreamUser(FastHttpUser):
    """One client of ClipStream; each concrete subclass does one operation class."""

    abstract = True
    max_retries = 0  # never resend on its own: a resent write is a retry of ours, recorded
    op = ""  # the operation class (a key of mix.MIX); user counts fixed at init
    writes = False  # True for the write classes: they speed up in bursts and retry

    def on_start(self) -> None:
        self.ctx: LoadContext = self.environment.drills_load
        self.history = self.ctx.history
        self.videos = self.ctx.videos
        self.bursts = self.ctx.settings.burst_plan if self.writes else Bursts()
        now = time.time()
        self.t0 = record.started_at() or now
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
            for vid, _counts in _items(reply.body):
                self.videos.remember(vid)

    def view(self) -> None:
        self.increment("views")

    def like(self) -> None:
        self.increment("likes")

    def upload(self) -> None:
        vid = uuid.uuid4().hex
        title = " ".join(self.ctx.rng.sample(WORDS, 3))
        body = self.ctx.rng.randbytes(self.ctx.rng.randint(MIN_UPLOAD, MAX_UPLOAD))

        def same_id(b: Any) -> str | None:
            return None if isinstance(b, dict) and b.get("id") == vid else "wrong id in answer"

        reply = self.write("write", vid, vid, None, lambda: self.call(
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

    def increment(self, counter: str) -> None:
        vid = self.pick()
        if vid is None:
            return
        op_id = uuid.uuid4().hex
        name = {"views": "view", "likes": "like"}[counter]
        self.write("incr", op_id, vid, counter, lambda: self.call(
            "POST", f"/videos/{vid}/{counter}", name, params={"op_id": op_id},
            check=_has_counters))

    def halt_if_stopping(self) -> None:
        """Stop this user instead of starting a request once Locust is stopping users."""
        if self.ctx.stopping.is_set():
            raise StopUser()

    def write(self, f: str, op_id: str, vid: str, counter: str | None,
              send: Callable[[], Reply]) -> Reply:
        """Send a write (``write`` of ``vid``, or ``incr`` of its ``counter``), and again (same
        ``send``, so the same ids) after an indeterminate answer, up to ``retries`` more
        times; return the last attempt's reply."""
        self.halt_if_stopping()
        op = self.history.invoke(f, key=vid, counter=counter, id=op_id, attempt=1)
        while True:
            reply = self.complete(op, send)
            if (reply.out.write_type() != "info" or (op.attempt or 1) > self.ctx.settings.retries
                    or self.ctx.stopping.is_set()):
                return reply
            gevent.sleep(backoff_s(op.attempt or 1))
            self.halt_if_stopping()
            op = self.history.retry(op)

    def complete(self, op: record.Pending, send: Callable[[], Reply]) -> Reply:
        """Send one attempt of the invoked ``op`` and record its completion (``info`` if
        interrupted)."""
        try:
            reply = send()
        except BaseException as exc:  # GreenletExit: the user was stopped mid-request
            self.history.info(op, error=f"interrupted: {type(exc).__name__}")
            raise
        kind = reply.out.write_type()
        if kind == "ok":
            self.history.ok(op, store=reply.store(), epoch=reply.epoch())
        elif kind == "fail":
            self.history.fail(op, error=reply.out.error)
        else:
            self.history.info(op, error=reply.out.error)
        return reply

    def read(self, vid: str | None, send: Callable[[], Reply]) -> Reply:
        """Record a read: ``invoke``, then ``ok`` with what it saw (views/likes of ``vid``, or
        the items of a feed or search when ``vid`` is None) and ``degraded``, or ``fail``."""
        self.halt_if_stopping()
        op = self.history.invoke("read", key=vid)
        try:
            reply = send()
        except BaseException as exc:
            self.history.fail(op, error=f"interrupted: {type(exc).__name__}")
            raise
        if reply.out.read_type() != "ok":
            self.history.fail(op, error=reply.out.error)
        elif vid is not None:
            self.history.ok(op, counts={k: reply.body[k] for k in COUNTERS},
                            store=reply.store(), epoch=reply.epoch(),
                            degraded=reply.degraded())
        else:
            self.history.ok(op, items=_items(reply.body), store=reply.store(),
                            epoch=reply.epoch(), degraded=reply.degraded())
        return reply

    def call(self, method: str, path: str, name: str, *, check: Validator,
             params: dict[str, Any] | None = None, data: bytes | None = None) -> Reply:
        """One request under class ``name``; a 2xx body failing ``check`` counts as failed.

        The body is parsed as UTF-8 JSON straight from its bytes (FastResponse's ``.json()``
        would first guess the charset, a cost per request for nothing). ``data`` goes out as
        raw bytes (geventhttpclient sends bytes as they are; Locust's annotation omits them)."""
        headers = {"Content-Type": "application/octet-stream"} if data is not None else None
        with self.client.request(method, path, name=name, params=params,
                                 data=data,  # type: ignore[arg-type]
                                 headers=headers, catch_response=True) as resp:
            body: Any = None
            failure: str | None = None
            if 200 <= resp.status_code < 300:
                try:
                    body = json.loads(resp.content or b"")
                except ValueError:
                    failure = "body not JSON"
                except FAILURE_EXCEPTIONS as exc:  # the body broke off mid-read
                    failure = f"body unreadable: {type(exc).__name__}"
                else:
                    failure = check(body)
                if failure:
                    resp.failure(failure)
            seen = {k.lower(): v for k, v in (resp.headers or {}).items()}
            return Reply(out=record.outcome_of(resp, failure), body=body, headers=seen)

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
