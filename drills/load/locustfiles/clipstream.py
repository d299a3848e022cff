"""ClipStream load: a mix of feed, view, like, upload, search and stats requests, recorded.

Runs inside Locust only (``locust -f``, started by `drills.load.runner`). Configured by the
environment (`drills.load.records.LoadSettings`): ``DRILLS_RECORD_DIR`` (required),
``DRILLS_RATE`` total req/s, ``DRILLS_USERS``, ``DRILLS_TIMEOUT_S`` connect and read timeout,
``DRILLS_PARENT_PID`` the harness to outlive not.

Each user paces itself with ``constant_throughput(rate / users)`` and does one operation class
only; users are split between the classes (``fixed_count``, at least one each): feed 50 %,
view 20 %, like 10 %, upload 8 %, search 6 %, stats 6 %. One class per user keeps the classes
independent, as real clients are: a user stuck on a timed-out upload does not stop the feed
traffic of others, so each class's RTO and throughput reflect that class's availability alone
(a single mixed user would let write timeouts starve the reads and read as a read outage).
Views, likes and stats target videos known to this load process (acknowledged uploads and ids
seen in feeds); with none known yet they wait.
Every request becomes a `Request` line (via the ``request`` event); every write an ``invoke``
then ``ok|fail|info`` `Op` in the history, every counter read an ``invoke`` then ``ok`` (with
views/likes) or ``fail`` — classified by `drills.load.outcome`.
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
from locust.user.wait_time import constant_throughput

from drills.load.mix import users_per_class
from drills.load.outcome import Outcome, outcome
from drills.load.records import LoadSettings, Recorder
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
    known: dict[str, None]  # video ids known to this process, oldest first (bounded)


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


@events.init.add_listener
def _on_init(environment: Environment, **_kw: Any) -> None:
    """Open the recorder, route every request event to it, close it after the users stopped.

    Locust stops a user that is between tasks by killing its greenlet, which can land just
    after the user woke up and sent a request; the ``stopping`` flag (set by ``test_stopping``,
    before any user is stopped) makes such a user stop instead of sending.
    """
    settings = LoadSettings.from_env(os.environ)
    recorder = Recorder(settings.record_dir).__enter__()
    ctx = LoadContext(settings=settings, recorder=recorder, stopping=threading.Event(), known={})
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
    return None


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

    def on_start(self) -> None:
        self.ctx: LoadContext = self.environment.drills_load  # type: ignore[attr-defined]
        self.process = self.ctx.recorder.new_process()
        self.known = self.ctx.known
        self.pace = constant_throughput(self.ctx.settings.per_user_rate)
        self.ctx.recorder.mark_started(time.time())

    def wait_time(self) -> float:  # type: ignore[override]
        return self.pace(self)

    # -- tasks ---------------------------------------------------------------------------------

    def feed(self) -> None:
        self.halt_if_stopping()
        reply = self.call("GET", "/feed", "feed", params={"limit": 20}, check=_has_items)
        if reply.out.ok:
            for item in reply.body["items"]:
                self.remember(str(item["id"]))

    def view(self) -> None:
        self.increment("view", "views")

    def like(self) -> None:
        self.increment("like", "likes")

    def upload(self) -> None:
        vid = uuid.uuid4().hex
        title = " ".join(random.sample(WORDS, 3))
        body = random.randbytes(random.randint(MIN_UPLOAD, MAX_UPLOAD))

        def same_id(b: Any) -> str | None:
            return None if isinstance(b, dict) and b.get("id") == vid else "wrong id in answer"

        reply = self.write("upload", vid, vid, lambda: self.call(
            "POST", "/videos", "upload", params={"title": title, "client_id": vid},
            data=body, check=same_id))
        if reply.out.ok:
            self.remember(vid)

    def search(self) -> None:
        self.halt_if_stopping()
        self.call("GET", "/search", "search", params={"q": random.choice(WORDS)},
                  check=_has_items)

    def stats(self) -> None:
        vid = self.pick()
        if vid is None:
            return
        path = random.choice((f"/videos/{vid}/stats", f"/videos/{vid}"))
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
        """Record ``invoke``, send, record the completion (``info`` if interrupted)."""
        self.halt_if_stopping()
        rec = self.ctx.recorder
        rec.op(Op(process=self.process, type="invoke", f=f, id=op_id, time=time.time(), video=vid))
        try:
            reply = send()
        except BaseException as exc:  # GreenletExit: the user was stopped mid-request
            rec.op(Op(process=self.process, type="info", f=f, id=op_id, time=time.time(),
                      video=vid, error=f"interrupted: {type(exc).__name__}"))
            raise
        kind = reply.out.write_type()
        rec.op(Op(process=self.process, type=kind, f=f, id=op_id, time=time.time(), video=vid,
                  epoch=reply.epoch() if kind == "ok" else None,
                  store=reply.store() if kind == "ok" else None, error=reply.out.error))
        return reply

    def read(self, vid: str, send: Callable[[], Reply]) -> Reply:
        """Record a counter read: ``invoke``, then ``ok`` with views/likes, or ``fail``."""
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
        rec.op(Op(process=self.process, type="ok" if ok else "fail", f="read", id=op_id,
                  time=time.time(), video=vid,
                  views=reply.body["views"] if ok else None,
                  likes=reply.body["likes"] if ok else None,
                  epoch=reply.epoch() if ok else None, store=reply.store() if ok else None,
                  error=reply.out.error))
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

    # -- known videos --------------------------------------------------------------------------

    def remember(self, vid: str) -> None:
        self.known[vid] = None
        if len(self.known) > KNOWN_MAX:
            del self.known[next(iter(self.known))]

    def pick(self) -> str | None:
        return random.choice(list(self.known)) if self.known else None


class FeedUser(ClipStreamUser):
    op = "feed"

    @task
    def act(self) -> None:
        self.feed()


class ViewUser(ClipStreamUser):
    op = "view"

    @task
    def act(self) -> None:
        self.view()


class LikeUser(ClipStreamUser):
    op = "like"

    @task
    def act(self) -> None:
        self.like()


class UploadUser(ClipStreamUser):
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
