"""Starter load for your system (written by `drill init`).

Every Locust request is recorded by drills without any help from this file: its name is the
operation class its RTO is measured for (or map names to classes with ``load.classes``).

For the data checks, record each write as a Jepsen-style operation with `drills.record`:
``invoke`` before sending, then ``ok`` (acknowledged), ``fail`` (certainly not applied) or
``info`` (unknown: a timeout or a reset after sending).
"""

import uuid

from locust import HttpUser, constant_throughput, task

from drills import record


class AppUser(HttpUser):
    wait_time = constant_throughput(5)

    @task(5)
    def read(self) -> None:
        self.client.get("/items", name="GET /items")

    @task(1)
    def write(self) -> None:
        history = record.history()
        key = uuid.uuid4().hex
        op = history.invoke("write", key=key)
        try:
            resp = self.client.post("/items", json={"id": key}, name="POST /items")
        except Exception as exc:  # no answer: it may or may not have been applied
            history.info(op, error=str(exc))
            return
        if resp.ok:
            history.ok(op)
        elif resp.status_code < 500:
            history.fail(op, error=f"HTTP {resp.status_code}")
        else:
            history.info(op, error=f"HTTP {resp.status_code}")
