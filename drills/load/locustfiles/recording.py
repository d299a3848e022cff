"""The recording shim: Locust loads it beside any locustfile (``-f <this>,<locustfile>``).

It defines no User class; it only listens, so the locustfile beside it needs to know nothing
about drills for its requests to be recorded:

- **init**: read `drills.load.records.LoadSettings` from the environment (the runner sets it),
  open this process's record (`drills.record.history`, so a locustfile using the public
  recording API writes through the same `Recorder`), watch ``DRILLS_PARENT_PID``.
- **request**: every request becomes a `drills.model.Request` line in
  ``requests-<pid>.jsonl``; its ``op`` is the request's class, ``DRILLS_CLASSES`` mapping the
  Locust request name (``"GET /items"`` with its method, or ``"items"``) to a class, default the
  name itself. The outcome is classified by `drills.record.outcome_of`'s rules for
  ``HttpUser`` and ``FastHttpUser`` alike (a 2xx that the locustfile marked failed, e.g. with
  ``catch_response``, counts as failed).
- **test_start**: the ``started-<pid>.json`` marker, the load's ``t0``. Locust fires it
  synchronously just before it spawns the first user (and ``spawning_complete`` only after the
  last one), so it is the time the first user could send; offsets of the drill (faults,
  write bursts) count from it. Locust offers no per-user start event; this is its nearest.
- **quit**: close the record.

In Locust's distributed mode (``load.workers`` > 1) the master loads this file too, but runs no
user: it fires ``test_start`` when it *asks* the workers to spawn, before any of them can send.
So on the master the shim records nothing and writes no marker (it only watches the harness);
every worker records its own ``requests-<pid>.jsonl`` and writes its own ``started-<pid>.json``
when it gets its first users, and the harness takes the earliest marker over all of them.

A harness that dies without stopping the load is noticed: when this process's parent is no
longer ``DRILLS_PARENT_PID`` (we were reparented), the runner quits.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner

from drills import record
from drills.load.outcome import describe, outcome
from drills.load.records import LoadSettings, Recorder, class_of
from drills.model import Request

PARENT_POLL_S = 0.5


@events.init.add_listener
def _on_init(environment: Environment, **_kw: Any) -> None:
    settings = LoadSettings.from_env(os.environ)
    if settings.parent_pid is not None:
        gevent.spawn(_watch_parent, environment, settings.parent_pid)
    if isinstance(environment.runner, MasterRunner):
        return  # the master runs no user: nothing to record, no start to mark
    recorder = record.history().recorder
    environment.events.request.add_listener(request_listener(recorder, settings.classes))
    environment.events.test_start.add_listener(lambda **_: recorder.mark_started(time.time()))
    environment.events.quit.add_listener(lambda **_: recorder.close())


def request_listener(recorder: Recorder, classes: Mapping[str, str]) -> Callable[..., None]:
    """A Locust ``request`` listener writing one `Request` per request to ``recorder``."""

    def on_request(name: str, response_time: float, response: Any = None, exception: Any = None,
                   start_time: float | None = None, request_type: str | None = None,
                   **_kw: Any) -> None:
        duration = (response_time or 0.0) / 1000.0
        start = start_time if start_time is not None else time.time() - duration
        op = class_of(classes, name=name, method=request_type)
        if response is None:  # a client of its own (not HTTP): the exception is the outcome
            error = None if exception is None else (
                describe(exception)[0] if isinstance(exception, BaseException)
                else str(exception))[:200]
            recorder.request(Request(t=start, duration=duration, op=op, ok=exception is None,
                                     status=0, error=error))
            return
        status = int(getattr(response, "status_code", 0) or 0)
        transport = record.transport_error(response)
        if transport is None and status == 0 and isinstance(exception, BaseException):
            transport = exception
        failure = str(exception)[:200] if exception is not None and 200 <= status < 300 else None
        out = outcome(status, transport, failure)
        recorder.request(Request(t=start, duration=duration, op=op,
                                 ok=out.ok, status=out.status, error=out.error))

    return on_request


def _watch_parent(environment: Environment, parent_pid: int) -> None:
    """Quit the run when the harness that started us is gone (we were reparented)."""
    while os.getppid() == parent_pid:
        gevent.sleep(PARENT_POLL_S)
    logging.warning("harness pid %s is gone: stopping the load", parent_pid)
    if environment.runner is not None:
        environment.runner.quit()
