"""Load for kvapp: writes keys and increments counters, recorded with drills.record."""

import random
import uuid

from locust import HttpUser, constant_throughput, task

from drills import record

KEYS = [f"c{i}" for i in range(20)]


class KvUser(HttpUser):
    wait_time = constant_throughput(10)

    def _send(self, op: record.Pending, method: str, path: str, name: str) -> None:
        history = record.history()
        try:
            with self.client.request(method, path, name=name, catch_response=True,
                                     timeout=1.0) as resp:
                if resp.status_code == 200:
                    history.ok(op)
                elif resp.status_code == 0:
                    history.info(op, error=str(resp.error))
                    resp.failure(str(resp.error))
                else:
                    history.info(op, error=f"HTTP {resp.status_code}")
                    resp.failure(f"HTTP {resp.status_code}")
        except Exception as exc:
            history.info(op, error=str(exc))

    @task(3)
    def put(self) -> None:
        key = uuid.uuid4().hex
        self._send(record.history().invoke("write", key=key), "PUT", f"/keys/{key}", "put")

    @task(2)
    def incr(self) -> None:
        key = random.choice(KEYS)
        op = record.history().invoke("incr", key=key, counter="n")
        self._send(op, "POST", f"/counters/{key}", "incr")

    @task(2)
    def count(self) -> None:
        self.client.get("/keys", name="count", timeout=1.0)
